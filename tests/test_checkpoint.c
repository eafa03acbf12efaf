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

/* ---- models and data ----------------------------------------------------------------- */

/* A separable 3-class problem of n rows: class = which of three blobs. */
static void blobs(int64_t n, nb_dtype dt, nb_tensor **x, nb_tensor **y)
{
    nb_rng rng = nb_rng_new(11);
    *x = nb_zeros(dt, NB_SHAPE(n, 4));
    *y = nb_zeros(dt, NB_SHAPE(n, 3));
    for (int64_t i = 0; i < n; i++) {
        int c = (int)nb_rng_below(&rng, 3);
        for (int j = 0; j < 4; j++)
            nb_set(*x, NB_AT(i, j), (j == c ? 2.0 : 0.0) + 0.5 * nb_rng_normal(&rng));
        nb_set(*y, NB_AT(i, c), 1.0);
    }
}

typedef enum { ADAM, SGD_SCHEDULED, SGD_PLAIN } which_opt;

static nb_optimizer *optimizer(which_opt w)
{
    switch (w) {
    case ADAM:
        return nb_adam(.lr = 0.01);
    case SGD_SCHEDULED:
        return nb_sgd(.lr = 0.05, .momentum = 0.9, .nesterov = true,
                      .schedule = {NB_STEP_DECAY, .steps = 5, .rate = 0.7});
    default:
        return nb_sgd(.lr = 0.05);
    }
}

/* Dense, BatchNormalization (state), Dropout (the model's generator),
 * Dense: every kind of thing a checkpoint must carry. Built from seed, in
 * dtype, compiled with w. */
static nb_model *model(uint64_t seed, nb_dtype dt, which_opt w, int64_t width)
{
    nb_model *m = nb_sequential(nb_dense(width, .activation = NB_RELU, .input = 4),
                                nb_batch_normalization(), nb_dropout(0.3),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, seed), 0);
    assert_int_equal(nb_model_set_dtype(m, dt), 0);
    assert_int_equal(nb_compile(m, optimizer(w), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    return m;
}

/* A whole file (caller frees), its size in *n. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static bool same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* The models' weights and state, bit for bit: their weight files are the
 * same bytes (names, shapes, data, CRC). */
static bool same_model(nb_model *a, nb_model *b)
{
    assert_int_equal(nb_save_weights(a, P("cmp_a.st")), 0);
    assert_int_equal(nb_save_weights(b, P("cmp_b.st")), 0);
    return same_file(P("cmp_a.st"), P("cmp_b.st"));
}

/* A path in the test's folder that outlives P's rotating buffers. */
#define PATH(var, name)                                                        \
    char var[600];                                                             \
    snprintf(var, sizeof var, "%s", P(name))

#define FIT(m, x, y, ...)                                                      \
    nb_fit((m), (nb_dataset){.x = (x), .y = (y)}, .batch_size = 16, .verbose = -1, __VA_ARGS__)

/* ---- resuming ---------------------------------------------------------------------- */

/* .resume without a checkpoint: an untrained model starts with .seed's
 * stream, a trained one refuses another seed, early stopping marks the
 * resumed fit's first epoch, and a fit without .resume starts again. */
static void test_resume_rules(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    blobs(100, NB_F32, &x, &y);
    nb_model *a = model(1, NB_F32, ADAM, 16), *b = model(1, NB_F32, ADAM, 16);
    assert_non_null(FIT(a, x, y, .epochs = 2, .seed = 3));
    assert_non_null(FIT(b, x, y, .epochs = 2, .seed = 3, .resume = true));
    assert_true(same_model(a, b));
    FAILS(FIT(b, x, y, .epochs = 3, .seed = 4, .resume = true),
          "nb_fit: .seed is 4, but the model's training goes on with the shuffling of seed 3");
    assert_true(same_model(a, b)); /* nothing trained */
    assert_non_null(FIT(b, x, y, .epochs = 3, .seed = 3, .resume = true)); /* the same seed: fine */

    nb_early_stopping es = {.patience = 5, .monitor_loss = true};
    nb_callback cb = nb_early_stopping_callback(&es);
    const nb_history *h = FIT(b, x, y, .epochs = 6, .resume = true, .callbacks = &cb,
                              .ncallbacks = 1);
    assert_non_null(h);
    assert_int_equal(h->initial_epoch, 3);
    assert_int_equal(h->epochs, 3);
    assert_true(es.best > 0 && es.best_epoch >= 3);
    assert_false(es.stopped);

    h = FIT(b, x, y, .epochs = 1, .seed = 3); /* not resumed: epoch 0 again */
    assert_non_null(h);
    assert_int_equal(h->initial_epoch, 0);
    assert_int_equal(h->epochs, 1);
    nb_early_stopping_free(&es);
    nb_model_free(a);
    nb_model_free(b);
    nb_free(x);
    nb_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata, setup_dir, teardown),
        cmocka_unit_test_setup_teardown(test_resume_rules, setup_dir, teardown),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
