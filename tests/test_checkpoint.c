/* Checkpoints and resumed training: the safetensors metadata they are
 * written with, nb_save_checkpoint / nb_load_checkpoint, nb_fit's .resume
 * and the .full checkpoint callback. The promise tested: training resumed
 * from a checkpoint ends with the weights, bit for bit, of training that was
 * never interrupted. Files go to a fresh temporary folder per test. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

#define DIR_TEMPLATE "/tmp/nb_test_ck_XXXXXX"
#include "file_testing.h"

static int teardown(void **state)
{
    cleanup(state);
    return teardown_dir(state);
}

/* ---- safetensors metadata ---------------------------------------------------------- */

typedef struct {
    int calls, n;
    char keys[8][32], values[8][32];
    bool refuse;
} seen_meta;

static int look(int n, const nb_metadata *m, void *ctx)
{
    seen_meta *s = ctx;
    s->calls++;
    s->n = n;
    for (int i = 0; i < n && i < 8; i++) {
        snprintf(s->keys[i], sizeof s->keys[i], "%s", m[i].key);
        snprintf(s->values[i], sizeof s->values[i], "%s", m[i].value);
    }
    return s->refuse ? nb_set_error("look: refused") : 0;
}

static void test_metadata(void **state)
{
    (void)state;
    nb_tensor *w = nb_set_name(nb_full(NB_F32, NB_SHAPE(2), 3), "w");
    const nb_metadata kv[] = {{"run", "7"}, {"note", "a \"quoted\" \xc3\xa9"}, {"empty", ""}};
    assert_int_equal(nb_save_safetensors(P("m.st"), 1, &w, .metadata = kv, .nmetadata = 3), 0);
    /* The entries follow nabla's two, escaped as JSON. */
    FILE *f = fopen(P("m.st"), "rb");
    char head[256] = {0};
    assert_non_null(f);
    assert_true(fread(head, 1, sizeof head - 1, f) > 8);
    fclose(f);
    assert_non_null(strstr(head + 8, "\"nabla_crc32\":\""));
    assert_non_null(strstr(head + 8, "\",\"run\":\"7\",\"note\":\"a \\\"quoted\\\" \xc3\xa9\","
                                     "\"empty\":\"\"},\"w\":"));

    /* A load shows them, in order, before it writes; a refusal writes nothing. */
    nb_tensor *r = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(2)), "w");
    seen_meta s = {0};
    assert_int_equal(nb_load_safetensors(P("m.st"), 1, &r, .on_metadata = look, .ctx = &s), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.keys[0], "run");
    assert_string_equal(s.values[1], "a \"quoted\" \xc3\xa9");
    assert_string_equal(s.keys[2], "empty");
    assert_string_equal(s.values[2], "");
    assert_true(nb_get(r, NB_AT(1)) == 3);
    nb_tensor *r2 = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(2)), "w");
    s = (seen_meta){.refuse = true};
    FAILS_RC(nb_load_safetensors(P("m.st"), 1, &r2, .on_metadata = look, .ctx = &s),
             "look: refused");
    assert_true(nb_get(r2, NB_AT(0)) == 0);
    /* The metadata alone. */
    s = (seen_meta){0};
    assert_int_equal(nb_load_safetensors(P("m.st"), 0, NULL, .partial = true, .on_metadata = look,
                                         .ctx = &s), 0);
    assert_int_equal(s.n, 3);

    /* Another writer's file: only entries with string values are shown. */
    const char *json = "{\"__metadata__\":{\"a\":\"x\",\"n\":5,\"b\":\"y\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    unsigned char raw[256];
    size_t hl = strlen(json);
    for (int k = 0; k < 8; k++)
        raw[k] = (unsigned char)(hl >> (8 * k));
    memcpy(raw + 8, json, hl);
    memcpy(raw + 8 + hl, (float[]){1.5f}, 4);
    write_bytes(P("other.st"), raw, 8 + hl + 4);
    nb_tensor *one = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(1)), "w");
    s = (seen_meta){0};
    assert_int_equal(nb_load_safetensors(P("other.st"), 1, &one, .on_metadata = look, .ctx = &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[1], "b");
    assert_true(nb_item(one) == 1.5);

    /* Bad metadata: refused before the file is touched. */
    const char *bad = P("bad.st");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{"nabla_crc32", "0"}},
                                 .nmetadata = 1),
             "nb_save_safetensors: ", "bad.st: metadata 0: the key 'nabla_crc32' is nabla's own");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{"k", "1"}, {"k", "2"}},
                                 .nmetadata = 2),
             "metadata 0 and 1 have the same key 'k'");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{NULL, "1"}},
                                 .nmetadata = 1),
             "metadata 0: its key is NULL");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = (nb_metadata[]){{"k", "\xff"}},
                                 .nmetadata = 1),
             "metadata 0: its value is not valid UTF-8 (byte 0 is 0xff)");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .nmetadata = 1), "bad.st: metadata is NULL");
    FAILS_RC(nb_save_safetensors(bad, 1, &w, .metadata = kv, .nmetadata = -1), "nmetadata is -1");
    assert_int_equal(access(bad, F_OK), -1);

    nb_free(w);
    nb_free(r);
    nb_free(r2);
    nb_free(one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata, setup_dir, teardown),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
