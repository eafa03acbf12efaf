/* safetensors: round trips (dtypes, 0-d, 8-d, empty, odd names), the exact
 * bytes, atomic saves, every load error (truncations, corrupt JSON headers,
 * mismatches), version bumps, a file written by the reference library, and
 * views: saving one writes its elements in row-major order, loading into
 * one writes through its strides. Every fixture is generated into a fresh
 * temporary folder (mkdtemp), which each test removes. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "nabla/nabla.h"

#define DIR_TEMPLATE "/tmp/nb_test_st_XXXXXX"
#include "file_testing.h"

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return buf;
}

static int count_entries(const char *d)
{
    DIR *dd = opendir(d);
    assert_non_null(dd);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dd);
    return n;
}

static nb_tensor *named(nb_tensor *t, const char *name)
{
    assert_non_null(nb_set_name(t, name));
    return t;
}

static void test_st_round_trip(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(7);
    nb_tensor *src[] = {
        named(nb_randn(NB_F32, NB_SHAPE(3, 4), &rng), "dense.kernel"),
        named(nb_randn(NB_F64, NB_SHAPE(5), &rng), "bias"),
        named(nb_scalar(NB_F32, -2.5), "scalar"),
        named(nb_randn(NB_F64, NB_SHAPE(1, 2, 1, 2, 1, 1, 2, 1), &rng), "eight"),
        named(nb_zeros(NB_F32, NB_SHAPE(0, 3)), "empty"),
        named(nb_full(NB_F64, NB_SHAPE(2), 1e-300), "quote\"back\\slash\nnew\x01/\xc3\xa9"),
    };
    const int n = 6;
    assert_int_equal(nb_save_safetensors(P("m.safetensors"), n, src), 0);
    assert_int_equal(count_entries(dir), 1); /* no temporary left */

    nb_tensor *dst[6];
    for (int i = 0; i < n; i++) {
        dst[i] = nb_zeros(nb_dtype_of(src[i]), nb_ndim(src[i]), nb_shape(src[i]));
        named(dst[i], nb_name(src[i]));
    }
    assert_int_equal(nb_load_safetensors(P("m.safetensors"), n, dst), 0);
    for (int i = 0; i < n; i++)
        assert_true(nb_allclose(dst[i], src[i], 0, 0));
    /* In another order than saved: the file records its order (nabla wrote
     * it), so only a partial load takes them by name alone. */
    nb_tensor *rev[6];
    for (int i = 0; i < n; i++) {
        rev[i] = dst[n - 1 - i];
        memset(nb_data(rev[i]), 0,
               (size_t)nb_numel(rev[i]) * nb_dtype_size(nb_dtype_of(rev[i])));
    }
    FAILS_RC(nb_load_safetensors(P("m.safetensors"), n, rev), "nb_load_safetensors: ",
             "m.safetensors: tensor 0 is 'quote", "but the file's tensor 0 is 'dense.kernel'",
             "is its tensor 5)", ".partial = true");
    assert_true(nb_get(dst[1], NB_AT(0)) == 0.0); /* nothing written */
    assert_int_equal(nb_load_safetensors(P("m.safetensors"), n, rev, .partial = true), 0);
    for (int i = 0; i < n; i++)
        assert_true(nb_allclose(dst[i], src[i], 0, 0));

    /* Across dtypes: F64 in the file into f32 and back. */
    nb_tensor *b32 = named(nb_zeros(NB_F32, NB_SHAPE(5)), "bias");
    nb_tensor *k64 = named(nb_zeros(NB_F64, NB_SHAPE(3, 4)), "dense.kernel");
    assert_int_equal(
        nb_load_safetensors(P("m.safetensors"), 2, (nb_tensor *[]){b32, k64}, .partial = true), 0);
    for (int i = 0; i < 5; i++)
        assert_true(nb_get(b32, NB_AT(i)) == (double)(float)nb_get(src[1], NB_AT(i)));
    assert_true(nb_allclose(k64, src[0], 0, 0));
    /* A subset is partial; so is nothing requested. */
    FAILS_RC(nb_load_safetensors(P("m.safetensors"), 2, (nb_tensor *[]){k64, b32}),
             "the file has 6 tensors, 2 asked for: its tensor 2 'scalar' F32 () is not asked "
             "for");
    assert_int_equal(nb_load_safetensors(P("m.safetensors"), 0, NULL, .partial = true), 0);
    FAILS_RC(nb_load_safetensors(P("m.safetensors"), 0, NULL), "the file has 6 tensors, 0 "
             "asked for: its tensor 0 'dense.kernel' F32 (3,4) is not asked for");

    /* Overwriting an existing file. */
    assert_int_equal(nb_save_safetensors(P("m.safetensors"), 1, &src[2]), 0);
    nb_tensor *one = named(nb_scalar(NB_F64, 0), "scalar");
    assert_int_equal(nb_load_safetensors(P("m.safetensors"), 1, &one), 0);
    assert_true(nb_item(one) == -2.5);
    FAILS_RC(nb_load_safetensors(P("m.safetensors"), 1, &b32), "'bias' is not in the file",
             "it has 1: 'scalar'");
    assert_int_equal(count_entries(dir), 1);

    /* No tensors at all is a valid (empty) file. */
    assert_int_equal(nb_save_safetensors(P("none.safetensors"), 0, NULL), 0);
    size_t len;
    const unsigned char *raw = read_bytes(P("none.safetensors"), &len);
    assert_int_equal(len, 8 + 64);
    assert_memory_equal(raw, "\x40\0\0\0\0\0\0\0{\"__metadata__\":{\"nabla_format\":\"1\","
                             "\"nabla_crc32\":\"00000000\"}}  ",
                        8 + 64);
    assert_int_equal(nb_load_safetensors(P("none.safetensors"), 0, NULL), 0);

    for (int i = 0; i < n; i++) {
        nb_free(src[i]);
        nb_free(dst[i]);
    }
    nb_free(b32);
    nb_free(k64);
    nb_free(one);
}

/* The exact bytes: nabla's metadata (format, CRC-32 of the data), compact
 * JSON as the reference writes it, space-padded to a multiple of 8,
 * little-endian data. */
static void test_st_layout(void **state)
{
    (void)state;
    nb_tensor *t[2] = {named(nb_from_array(NB_F32, NB_SHAPE(2), (float[]){1.0f, -2.0f}), "w"),
                       named(nb_scalar(NB_F64, 0.5), "b")};
    assert_int_equal(nb_save_safetensors(P("l.safetensors"), 2, t), 0);
    const unsigned char data[16] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0,
                                    0, 0, 0,    0,    0, 0, 0xe0, 0x3f};
    char json[256];
    snprintf(json, sizeof json,
             "{\"__metadata__\":{\"nabla_format\":\"1\",\"nabla_crc32\":\"%08lx\"},"
             "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[8,16]}}",
             (unsigned long)crc32(0, data, 16));
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8, len;
    const unsigned char *raw = read_bytes(P("l.safetensors"), &len);
    assert_int_equal(len, 8 + hl + 16);
    assert_int_equal(raw[0], hl);
    for (int k = 1; k < 8; k++)
        assert_int_equal(raw[k], 0);
    assert_memory_equal(raw + 8, json, jl);
    for (size_t k = jl; k < hl; k++)
        assert_int_equal(raw[8 + k], ' ');
    assert_memory_equal(raw + 8 + hl, data, 16);
    nb_free(t[0]);
    nb_free(t[1]);
}

static void test_st_atomic(void **state)
{
    (void)state;
    const char *target = P("keep.safetensors");
    write_bytes(target, "old contents", 12);
    nb_tensor *big = named(nb_zeros(NB_F32, NB_SHAPE(256, 256)), "big");
    nb_tensor *w = named(nb_zeros(NB_F32, NB_SHAPE(2)), "w");
    nb_tensor *w2 = named(nb_zeros(NB_F32, NB_SHAPE(3)), "w");
    nb_tensor *anon = nb_zeros(NB_F32, NB_SHAPE(2));

    /* Fails while writing the data: the file size limit stops it at 4 KB. */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    nb_clear_error();
    int rc = nb_save_safetensors(target, 1, &big);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -1);
    expect_msg("save over the size limit",
               (const char *[]){"nb_save_safetensors", "keep.safetensors.nbtmp", "File too large",
                                NULL});

    /* Fails before writing: duplicate names, no name, bad arguments. */
    FAILS_RC(nb_save_safetensors(target, 2, (nb_tensor *[]){w, w2}), "nb_save_safetensors",
             "keep.safetensors", "two tensors are named 'w'");
    FAILS_RC(nb_save_safetensors(target, 2, (nb_tensor *[]){w, anon}),
             "tensor 1 (2,) has no name");
    FAILS_RC(nb_save_safetensors(target, 2, (nb_tensor *[]){w, NULL}), "tensor 1 is NULL");
    FAILS_RC(nb_save_safetensors(target, 1, NULL), "tensors is NULL");
    FAILS_RC(nb_save_safetensors(target, -1, &w), "n is -1");
    FAILS_RC(nb_save_safetensors(NULL, 1, &w), "nb_save_safetensors", "path is NULL");
    nb_set_name(anon, "__metadata__");
    FAILS_RC(nb_save_safetensors(target, 1, &anon), "'__metadata__' is reserved");
    nb_set_name(anon, "bad\xff");
    FAILS_RC(nb_save_safetensors(target, 1, &anon), "not valid UTF-8");

    /* Refused before writing: the target is a folder. */
    mkdir(P("folder.safetensors"), 0700);
    FAILS_RC(nb_save_safetensors(P("folder.safetensors"), 1, &w), "nb_save_safetensors: ",
             "folder.safetensors: is a directory, not a regular file: refusing to replace it");
    /* Fails at the start: no such folder. */
    FAILS_RC(nb_save_safetensors(P("no/such/dir/x.safetensors"), 1, &w), "cannot create",
             "No such file");

    size_t len;
    const unsigned char *raw = read_bytes(target, &len);
    assert_int_equal(len, 12);
    assert_memory_equal(raw, "old contents", 12);
    assert_int_equal(count_entries(dir), 2); /* keep.safetensors, folder.safetensors */
    nb_free(big);
    nb_free(w);
    nb_free(w2);
    nb_free(anon);
}

/* A safetensors file from a header text (not padded) and data bytes. */
static void write_st(const char *path, const char *json, const void *data, size_t n)
{
    static unsigned char buf[4096];
    size_t hl = strlen(json);
    for (int k = 0; k < 8; k++)
        buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(buf + 8, json, hl);
    memcpy(buf + 8 + hl, data, n);
    write_bytes(path, buf, 8 + hl + n);
}

static void test_st_load_errors(void **state)
{
    (void)state;
    nb_tensor *w = named(nb_from_array(NB_F32, NB_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6}),
                         "dense.kernel");
    nb_tensor *b = named(nb_full(NB_F32, NB_SHAPE(3), 9), "dense.bias");
    nb_tensor *both[2] = {w, b};
    const char *good = P("good.safetensors");
    assert_int_equal(nb_save_safetensors(good, 2, both), 0);
    size_t len;
    static unsigned char orig[1024];
    const unsigned char *got = read_bytes(good, &len);
    memcpy(orig, got, len);
    size_t hl = orig[0] | (size_t)orig[1] << 8;
    assert_int_equal(len, 8 + hl + 36);

    /* Truncated at several points. */
    const char *cut = P("cut.safetensors");
    write_bytes(cut, orig, 0);
    FAILS_RC(nb_load_safetensors(cut, 2, both), "nb_load_safetensors", "cut.safetensors",
             "truncated file: 0 bytes");
    write_bytes(cut, orig, 5);
    FAILS_RC(nb_load_safetensors(cut, 2, both), "truncated file: 5 bytes");
    write_bytes(cut, orig, 8);
    FAILS_RC(nb_load_safetensors(cut, 2, both), "truncated file: header length",
             "only 0 bytes follow");
    write_bytes(cut, orig, 8 + hl / 2);
    FAILS_RC(nb_load_safetensors(cut, 2, both), "truncated file: header length");
    write_bytes(cut, orig, 8 + hl);
    FAILS_RC(nb_load_safetensors(cut, 2, both), "truncated file: tensor 'dense.kernel' "
                                                "needs bytes [0, 24) of the data, which has 0");
    write_bytes(cut, orig, len - 1);
    FAILS_RC(nb_load_safetensors(cut, 2, both),
             "truncated file: tensor 'dense.bias' needs bytes [24, 36)", "which has 35");

    /* Header length absurd. */
    unsigned char huge[16] = {0, 0, 0, 0, 0, 1, 0, 0};
    write_bytes(cut, huge, 16);
    FAILS_RC(nb_load_safetensors(cut, 2, both), "header length 1099511627776 is over the limit");
    huge[0] = 9, huge[5] = 0;
    write_bytes(cut, huge, 16);
    FAILS_RC(nb_load_safetensors(cut, 2, both), "header length 9, but only 8 bytes follow");

    /* Nothing was written into the tensors by any of these. */
    assert_true(nb_get(w, NB_AT(1, 2)) == 6.0);
    assert_true(nb_get(b, NB_AT(0)) == 9.0);

    /* Wrong shape, missing tensor: the message names file and tensor, and
     * the load writes nothing (the good tensor first in the list too). */
    nb_tensor *w32 = named(nb_zeros(NB_F32, NB_SHAPE(2, 4)), "dense.kernel");
    nb_tensor *b0 = named(nb_zeros(NB_F32, NB_SHAPE(3)), "dense.bias");
    FAILS_RC(nb_load_safetensors(good, 2, (nb_tensor *[]){b0, w32}, .partial = true),
             "nb_load_safetensors: ", "good.safetensors: tensor 'dense.kernel' has shape "
                                      "(2,3) in the file, (2,4) expected");
    FAILS_RC(nb_load_safetensors(good, 2, (nb_tensor *[]){w32, b0}),
             "good.safetensors: tensor 'dense.kernel' has shape (2,3) in the file, (2,4) "
             "expected");
    assert_true(nb_get(b0, NB_AT(0)) == 0.0);
    nb_tensor *v = named(nb_zeros(NB_F32, NB_SHAPE(6)), "dense.kernel");
    FAILS_RC(nb_load_safetensors(good, 1, &v), "has shape (2,3) in the file, (6,) expected");
    nb_tensor *s0 = named(nb_scalar(NB_F32, 0), "dense.bias");
    FAILS_RC(nb_load_safetensors(good, 1, &s0, .partial = true),
             "has shape (3,) in the file, () expected");
    nb_tensor *other = named(nb_zeros(NB_F32, NB_SHAPE(3)), "dense_1.bias");
    nb_tensor *k0 = named(nb_zeros(NB_F32, NB_SHAPE(2, 3)), "dense.kernel");
    FAILS_RC(nb_load_safetensors(good, 2, (nb_tensor *[]){k0, other}),
             "tensor 'dense_1.bias' is not in the file (it has 2: 'dense.bias', "
             "'dense.kernel')");
    assert_true(nb_get(k0, NB_AT(0, 0)) == 0.0);
    /* Partial: what the file lacks is left alone; nothing at all is an error. */
    assert_int_equal(nb_load_safetensors(good, 2, (nb_tensor *[]){other, b0}, .partial = true),
                     0);
    assert_true(nb_get(b0, NB_AT(2)) == 9.0);
    assert_true(nb_get(other, NB_AT(2)) == 0.0);
    FAILS_RC(nb_load_safetensors(good, 1, &other, .partial = true),
             "none of the 1 tensors asked for is in the file (it has 2: 'dense.bias', "
             "'dense.kernel')");
    nb_free(k0);

    /* Bad arguments. */
    nb_tensor *anon = nb_zeros(NB_F32, NB_SHAPE(3));
    FAILS_RC(nb_load_safetensors(NULL, 1, &b0), "nb_load_safetensors", "path is NULL");
    FAILS_RC(nb_load_safetensors(good, 1, NULL), "tensors is NULL");
    FAILS_RC(nb_load_safetensors(good, -2, &b0), "n is -2");
    FAILS_RC(nb_load_safetensors(good, 2, (nb_tensor *[]){b0, NULL}), "tensor 1 is NULL");
    FAILS_RC(nb_load_safetensors(good, 1, &anon), "tensor 0 (3,) has no name");
    FAILS_RC(nb_load_safetensors(P("nope"), 1, &b0), "nope", "cannot open", "No such file");
    mkdir(P("dir.safetensors"), 0700);
    FAILS_RC(nb_load_safetensors(P("dir.safetensors"), 1, &b0), "not a regular file");

    /* Corrupt headers: each a well-framed file whose JSON is wrong. */
    static const float d3[3] = {1, 2, 3};
    static const struct {
        const char *json;
        const char *want;
    } bad[] = {
        {"", "at byte 0: unexpected end of header"},
        {"[]", "at byte 0: expected '{'"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}",
         "unexpected end of header"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}} x",
         "at byte 56: unexpected text after the header object"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},}",
         "at byte 55: expected a string"},
        {"{\"t\" {}}", "at byte 5: expected ':'"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3.0],\"data_offsets\":[0,12]}}",
         "expected an integer"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[-3],\"data_offsets\":[0,12]}}",
         "expected a non-negative integer"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[03],\"data_offsets\":[0,12]}}",
         "leading zero"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,12]}}",
         "integer too large"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12,4]}}",
         "expected ']'"},
        {"{\"t\":{\"dtype\":F32,\"shape\":[3],\"data_offsets\":[0,12]}}", "expected a string"},
        {"{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,12]}}",
         "corrupt header: tensor 't' has no \"shape\""},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"shape\":[3],\"data_offsets\":[0,12]}}",
         "repeated key"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
         "tensor 't' is F32 (3,) but data_offsets [0, 8) hold 8 bytes"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[12,0]}}", "run backwards"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[4,16]}}",
         "truncated file: tensor 't' needs bytes [4, 16) of the data, which has 12"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "tensor 't' appears twice"},
        {"{\"t\\q\":{}}", "invalid escape"},
        {"{\"t\\u12\":{}}", "invalid \\u escape"},
        {"{\"t\\ud800\":{}}", "unpaired surrogate"},
        {"{\"t\\udc00\":{}}", "unpaired surrogate"},
        {"{\"t\\u0000\":{}}", "\\u0000"},
        {"{\"t\n\":{}}", "control character"},
        {"{\"t", "unterminated string"},
        {"{\"t\xff\":{}}", "at byte 3: invalid UTF-8"},
        {"{\"t\xc0\x80\":{}}", "invalid UTF-8"},
        {"{\"__metadata__\":{\"a\":[1,{\"b\":tru}]}}", "expected a value"},
        {"{\"__metadata__\":{\"a\":1.}}", "bad number"},
        {"{\"__metadata__\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
         "]]]]]]]]]}}",
         "nested too deeply"},
        {"{\"t\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[0,12]}}",
         "tensor 't' has dtype BF16 in the file; nabla loads F32, F64 and U8"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,3],\"data_offsets\":[0,12]}}",
         "tensor 't' has shape (9 dimensions) in the file, (3,) expected"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "'t' is not in the file (it has 1: 'x')"},
        {"{}", "corrupt header: bytes [0, 12) of the data belong to no tensor (after the "
               "last)"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
         "\"y\":{\"dtype\":\"U8\",\"shape\":[12],\"data_offsets\":[0,12]}}",
         "'t' is not in the file (it has 2: 'x', 'y')"},
        /* The entries tile the data: no overlap, no hole, nothing after. */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "corrupt header: tensors 'a' [0, 8) and 't' [0, 12) overlap"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
         "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
         "tensors 't' [0, 12) and 'e' [4, 4) overlap"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
         "corrupt header: bytes [4, 8) of the data belong to no tensor (a hole before 'u')"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         "bytes [0, 4) of the data belong to no tensor (a hole before 't')"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "bytes [8, 12) of the data belong to no tensor (after the last)"},
        /* Shapes are checked as every tensor's, a zero size or not. */
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[0,4294967295,4294967295,2],"
         "\"data_offsets\":[0,0]},\"p\":{\"dtype\":\"U8\",\"shape\":[12],"
         "\"data_offsets\":[0,12]}}",
         "tensor 't': shape (0,4294967295,4294967295,2) has more than 2^48 elements "
         "(NB_MAX_NUMEL)"},
        {"{\"t\":{\"dtype\":\"X9\",\"shape\":[1,1,1,1,1,1,1,1099511627776,1099511627776],"
         "\"data_offsets\":[0,12]}}",
         "tensor 't': shape (9 dimensions) has more than 2^48 elements"},
        /* nabla's metadata: its format, its checksum. */
        {"{\"__metadata__\":{\"nabla_format\":\"2\"},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "the file is in nabla's format '2'; this nabla reads format 1"},
        {"{\"__metadata__\":{\"nabla_format\":1},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "__metadata__ 'nabla_format' must be a string"},
        {"{\"__metadata__\":{\"nabla_crc32\":\"12345\"},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "corrupt header: nabla_crc32 '12345' is not 8 lowercase hex digits"},
        {"{\"__metadata__\":{\"nabla_crc32\":\"00000000\"},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "checksum mismatch: the data's CRC-32 is b20e96b1, the header says 00000000: the "
         "file is damaged"},
        {"{\"__metadata__\":{\"nabla_crc32\":\"00000000\",\"nabla_crc32\":\"00000000\"},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "repeated key 'nabla_crc32' in __metadata__"},
        {"{\"__metadata__\":[\"pt\"],"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "at byte 16: __metadata__ must be an object"},
        {"{\"__metadata__\":{},\"__metadata__\":{},"
         "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "repeated key '__metadata__'"},
    };
    nb_tensor *t = named(nb_zeros(NB_F32, NB_SHAPE(3)), "t");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_st(cut, bad[i].json, d3, sizeof d3);
        nb_clear_error();
        if (nb_load_safetensors(cut, 1, &t) != -1)
            fail_msg("case %zu (%s) loaded", i, bad[i].json);
        const char *msg = nb_last_error();
        if (!msg || !strstr(msg, bad[i].want) || strncmp(msg, "nb_load_safetensors: ", 21))
            fail_msg("case %zu (%s): message \"%s\" lacks \"%s\"", i, bad[i].json,
                     msg ? msg : "(none)", bad[i].want);
        assert_true(nb_get(t, NB_AT(0)) == 0.0);
    }

    /* Valid variations: whitespace, metadata of any JSON, unknown keys,
     * escapes that decode to the tensor's name, other dtypes not asked for. */
    static const char *const ok[] = {
        " \n{ \"t\" : { \"dtype\" : \"F32\" , \"shape\" : [ 3 ] , \"data_offsets\" : [ 0 , 12 ] "
        "} }\t\r\n   ",
        "{\"__metadata__\":{\"format\":\"pt\",\"n\":[1,-2.5e+3,true,false,null,{}]},"
        "\"t\":{\"data_offsets\":[0,12],\"extra\":{\"k\":[]},\"shape\":[3],\"dtype\":\"F32\"}}",
        "{\"\\u0074\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
        "\"h\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[12,12]},"
        "\"q\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[12,12]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
        "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
        "\"z\":{\"dtype\":\"F64\",\"shape\":[0,5],\"data_offsets\":[12,12]}}",
        "{\"__metadata__\":{\"nabla_format\":\"1\",\"nabla_crc32\":\"%08lx\"},"
        "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, ok[i], (unsigned long)crc32(0, (const void *)d3, 12));
        write_st(cut, json, d3, sizeof d3);
        ((float *)nb_data(t))[1] = 0;
        if (nb_load_safetensors(cut, 1, &t, .partial = true) != 0)
            fail_msg("case %zu: %s", i, nb_last_error());
        assert_true(nb_get(t, NB_AT(1)) == 2.0);
    }
    /* Unicode names: \u escapes with a surrogate pair equal the UTF-8. */
    write_st(cut,
             "{\"\\u00e9\\ud83d\\ude00\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
             d3, sizeof d3);
    nb_tensor *u = named(nb_zeros(NB_F64, NB_SHAPE(3)), "\xc3\xa9\xf0\x9f\x98\x80");
    assert_int_equal(nb_load_safetensors(cut, 1, &u), 0);
    assert_true(nb_get(u, NB_AT(2)) == 3.0);

    nb_free(w);
    nb_free(b);
    nb_free(w32);
    nb_free(b0);
    nb_free(v);
    nb_free(s0);
    nb_free(other);
    nb_free(anon);
    nb_free(t);
    nb_free(u);
}

/* Loading writes in place: it bumps the version, so a graph that recorded
 * the old values refuses to backpropagate through them. */
static void test_st_bumps_version(void **state)
{
    (void)state;
    nb_tensor *w = nb_param(named(nb_full(NB_F64, NB_SHAPE(2), 3.0), "w"));
    assert_int_equal(nb_save_safetensors(P("w.safetensors"), 1, &w), 0);
    nb_graph *g = nb_graph_new();
    nb_tensor *loss = nb_sum(nb_mul(w, w));
    assert_non_null(loss);
    assert_int_equal(nb_load_safetensors(P("w.safetensors"), 1, &w), 0);
    FAILS_RC(nb_backward(loss), "modified in place");
    nb_graph_reset(g);
    loss = nb_sum(nb_mul(w, w));
    assert_int_equal(nb_backward(loss), 0);
    assert_true(nb_get(nb_grad_of(w), NB_AT(0)) == 6.0);
    nb_graph_free(g);
    nb_free(w);
}

/* Written by the reference library (tests/data/make_reference.py:
 * safetensors 0.8.0, numpy 2.4): metadata, sorted entries, I64 and F16
 * tensors nabla cannot hold, a non-ASCII name. */
static const unsigned char reference_st[] = {
    0xe8, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x5f, 0x5f,
    0x6d, 0x65, 0x74, 0x61, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a,
    0x7b, 0x22, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74, 0x22, 0x3a, 0x22, 0x6e,
    0x70, 0x22, 0x2c, 0x22, 0x6e, 0x6f, 0x74, 0x65, 0x22, 0x3a, 0x22, 0x6d,
    0x61, 0x64, 0x65, 0x20, 0x62, 0x79, 0x20, 0x73, 0x61, 0x66, 0x65, 0x74,
    0x65, 0x6e, 0x73, 0x6f, 0x72, 0x73, 0x2e, 0x6e, 0x75, 0x6d, 0x70, 0x79,
    0x22, 0x7d, 0x2c, 0x22, 0x69, 0x64, 0x73, 0x22, 0x3a, 0x7b, 0x22, 0x64,
    0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x49, 0x36, 0x34, 0x22, 0x2c,
    0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x5d, 0x2c,
    0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74,
    0x73, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x31, 0x36, 0x5d, 0x7d, 0x2c, 0x22,
    0x62, 0x69, 0x61, 0x73, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70,
    0x65, 0x22, 0x3a, 0x22, 0x46, 0x36, 0x34, 0x22, 0x2c, 0x22, 0x73, 0x68,
    0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61,
    0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a,
    0x5b, 0x31, 0x36, 0x2c, 0x34, 0x30, 0x5d, 0x7d, 0x2c, 0x22, 0x65, 0x6d,
    0x70, 0x74, 0x79, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65,
    0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61,
    0x70, 0x65, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x34, 0x5d, 0x2c, 0x22, 0x64,
    0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22,
    0x3a, 0x5b, 0x34, 0x30, 0x2c, 0x34, 0x30, 0x5d, 0x7d, 0x2c, 0x22, 0x6e,
    0x61, 0xc3, 0xaf, 0x76, 0x65, 0x2f, 0xc3, 0xa9, 0x22, 0x3a, 0x7b, 0x22,
    0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22,
    0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x31, 0x5d,
    0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65,
    0x74, 0x73, 0x22, 0x3a, 0x5b, 0x34, 0x30, 0x2c, 0x34, 0x34, 0x5d, 0x7d,
    0x2c, 0x22, 0x73, 0x63, 0x61, 0x6c, 0x61, 0x72, 0x22, 0x3a, 0x7b, 0x22,
    0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22,
    0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x5d, 0x2c,
    0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74,
    0x73, 0x22, 0x3a, 0x5b, 0x34, 0x34, 0x2c, 0x34, 0x38, 0x5d, 0x7d, 0x2c,
    0x22, 0x77, 0x65, 0x69, 0x67, 0x68, 0x74, 0x22, 0x3a, 0x7b, 0x22, 0x64,
    0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c,
    0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x2c, 0x33,
    0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73,
    0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x34, 0x38, 0x2c, 0x37, 0x32, 0x5d,
    0x7d, 0x2c, 0x22, 0x68, 0x61, 0x6c, 0x66, 0x22, 0x3a, 0x7b, 0x22, 0x64,
    0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x31, 0x36, 0x22, 0x2c,
    0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x5d, 0x2c,
    0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74,
    0x73, 0x22, 0x3a, 0x5b, 0x37, 0x32, 0x2c, 0x37, 0x36, 0x5d, 0x7d, 0x7d,
    0x20, 0x20, 0x20, 0x20, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xf8, 0xbf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x59, 0xf3, 0xf8, 0xc2, 0x1f, 0x6e, 0xa5, 0x01, 0x00, 0x00, 0x28, 0x42,
    0x00, 0x00, 0x50, 0x40, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0x3f,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x20, 0x40,
    0x00, 0x00, 0x40, 0x40, 0x00, 0x3c, 0x00, 0x40
};

static void test_st_reference_file(void **state)
{
    (void)state;
    write_bytes(P("ref.safetensors"), reference_st, sizeof reference_st);
    nb_tensor *t[] = {
        named(nb_zeros(NB_F32, NB_SHAPE(2, 3)), "weight"),
        named(nb_zeros(NB_F64, NB_SHAPE(3)), "bias"),
        named(nb_zeros(NB_F64, 0, NULL), "scalar"),
        named(nb_zeros(NB_F32, NB_SHAPE(0, 4)), "empty"),
        named(nb_zeros(NB_F32, NB_SHAPE(1)), "na\xc3\xafve/\xc3\xa9"),
    };
    FAILS_RC(nb_load_safetensors(P("ref.safetensors"), 5, t), "the file has 7 tensors, 5 asked "
             "for: its tensor 0 'ids' I64 (2,) is not asked for");
    assert_int_equal(nb_load_safetensors(P("ref.safetensors"), 5, t, .partial = true), 0);
    for (int i = 0; i < 6; i++)
        assert_true(((float *)nb_data(t[0]))[i] == 0.5f * (float)(i + 1));
    assert_true(nb_get(t[1], NB_AT(0)) == -1.5);
    assert_true(nb_get(t[1], NB_AT(1)) == 0.0);
    assert_true(nb_get(t[1], NB_AT(2)) == 1e-300);
    assert_true(nb_item(t[2]) == 3.25);
    assert_true(nb_item(t[4]) == 42.0);
    nb_tensor *ids = named(nb_zeros(NB_F32, NB_SHAPE(2)), "ids");
    FAILS_RC(nb_load_safetensors(P("ref.safetensors"), 1, &ids), "'ids' has dtype I64");
    for (int i = 0; i < 5; i++)
        nb_free(t[i]);
    nb_free(ids);
}

/* Saving a view writes its own elements in row-major order: the file is
 * byte for byte the file of contiguous copies of the same tensors. */
static void test_st_save_views(void **state)
{
    (void)state;
    double v[12];
    for (int i = 0; i < 12; i++)
        v[i] = i;
    nb_tensor *a = nb_from_array(NB_F64, NB_SHAPE(3, 4), v);
    nb_tensor *a32 = nb_from_array(NB_F32, NB_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    nb_graph *g = nb_graph_new();
    nb_tensor *views[] = {
        named(nb_transpose(a, 0, 1), "transposed"),                      /* (4,3) */
        named(nb_slice(a, 0, 1, 3, 1), "rows"),                          /* offset 4 */
        named(nb_slice(a, 1, INT64_MAX, INT64_MIN, -2), "reversed"),     /* a[:, ::-2] */
        named(nb_broadcast_to(nb_slice(a, 0, 2, 3, 1), NB_SHAPE(2, 4)), "broadcast"),
        named(nb_transpose(a32, 0, 1), "f32"),
    };
    enum { N = 5 };
    assert_false(nb_is_contiguous(views[0]));
    assert_true(nb_is_contiguous(views[1]));
    assert_int_equal(nb_offset(views[1]), 4);
    assert_true(nb_strides(views[2])[1] == -2);
    assert_int_equal(nb_offset(views[2]), 3);
    assert_int_equal(nb_strides(views[3])[0], 0);
    assert_int_equal(nb_save_safetensors(P("views.safetensors"), N, views), 0);

    nb_tensor *copies[N];
    for (int i = 0; i < N; i++) {
        copies[i] = nb_clone(views[i]);
        assert_true(nb_is_contiguous(copies[i]));
        assert_string_equal(nb_name(copies[i]), nb_name(views[i]));
    }
    assert_int_equal(nb_save_safetensors(P("copies.safetensors"), N, copies), 0);
    size_t n1, n2;
    static unsigned char first[4096];
    const unsigned char *raw = read_bytes(P("views.safetensors"), &n1);
    memcpy(first, raw, n1);
    raw = read_bytes(P("copies.safetensors"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(first, raw, n1);

    /* The values, read back into plain tensors. */
    nb_tensor *back[N];
    for (int i = 0; i < N; i++)
        back[i] = named(nb_zeros(nb_dtype_of(views[i]), nb_ndim(views[i]), nb_shape(views[i])),
                        nb_name(views[i]));
    assert_int_equal(nb_load_safetensors(P("views.safetensors"), N, back), 0);
    const double rev[6] = {3, 1, 7, 5, 11, 9};
    for (int i = 0; i < 6; i++)
        assert_true(nb_get_flat(back[2], i) == rev[i]);
    for (int i = 0; i < 12; i++)
        assert_true(nb_get_flat(back[0], i) == (double)(i % 3 * 4 + i / 3));
    for (int i = 0; i < 8; i++) {
        assert_true(nb_get_flat(back[1], i) == 4.0 + i);
        assert_true(nb_get_flat(back[3], i) == 8.0 + i % 4);
    }
    const float t32[6] = {1, 4, 2, 5, 3, 6};
    assert_memory_equal(nb_data(back[4]), t32, sizeof t32);
    for (int i = 0; i < N; i++) {
        nb_free(copies[i]);
        nb_free(back[i]);
    }
    nb_graph_free(g);
    nb_free(a);
    nb_free(a32);
}

/* Loading into a view writes through its strides into the tensor it views
 * (converting dtypes on the way), bumps the version it shares with it, and
 * refuses a view whose elements share memory before writing anything. */
static void test_st_load_views(void **state)
{
    (void)state;
    double v[12], c[6] = {-1, -2, -3, -4, -5, -6};
    for (int i = 0; i < 12; i++)
        v[i] = 100 + i;
    nb_tensor *src[] = {
        named(nb_from_array(NB_F64, NB_SHAPE(4, 3), v), "t"),
        named(nb_from_array(NB_F64, NB_SHAPE(3, 2), c), "c"),
        named(nb_from_array(NB_F32, NB_SHAPE(2, 4), (float[]){1, 2, 3, 4, 5, 6, 7, 8}), "b"),
    };
    const char *path = P("src.safetensors");
    assert_int_equal(nb_save_safetensors(path, 3, src), 0);

    nb_tensor *A = nb_zeros(NB_F64, NB_SHAPE(3, 4));
    nb_tensor *B = nb_full(NB_F32, NB_SHAPE(3, 4), 0.5);
    nb_tensor *D = nb_zeros(NB_F32, NB_SHAPE(1, 4));
    nb_tensor *E = nb_full(NB_F32, NB_SHAPE(3, 4), 9);
    nb_graph *g = nb_graph_new();
    nb_tensor *tv = named(nb_transpose(A, 0, 1), "t");                  /* (4,3) */
    nb_tensor *cv = named(nb_slice(B, 1, INT64_MAX, INT64_MIN, -2), "c"); /* B[:, 3], B[:, 1] */
    nb_tensor *bv = named(nb_broadcast_to(D, NB_SHAPE(2, 4)), "b");
    nb_tensor *rows = named(nb_slice(E, 0, 1, 3, 1), "b");              /* offset 4 */

    /* A broadcast view is refused, and nothing is written, also into the
     * good view before it in the list. */
    FAILS_RC(nb_load_safetensors(path, 2, (nb_tensor *[]){tv, bv}, .partial = true),
             "nb_load_safetensors: ",
             "src.safetensors: tensor 'b' (2,4) is a view whose elements share memory "
             "(strides (0,1))");
    for (int i = 0; i < 12; i++)
        assert_true(nb_get_flat(A, i) == 0.0);

    assert_int_equal(nb_load_safetensors(path, 3, (nb_tensor *[]){tv, cv, rows}), 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            assert_true(nb_get(A, NB_AT(i, j)) == 100.0 + j * 3 + i);
            /* F64 in the file into an f32 view stepping backwards. */
            double want = j == 3 ? c[2 * i] : j == 1 ? c[2 * i + 1] : 0.5;
            assert_true(nb_get(B, NB_AT(i, j)) == want);
            /* A contiguous view at an offset: rows 1 and 2 only. */
            assert_true(nb_get(E, NB_AT(i, j)) == (i == 0 ? 9.0 : 1.0 + (i - 1) * 4 + j));
        }

    /* The write through a view bumps the version of the storage it shares
     * with its base: a graph that recorded the base refuses to backpropagate. */
    nb_tensor *w = nb_param(nb_zeros(NB_F64, NB_SHAPE(3, 4)));
    nb_tensor *loss = nb_sum(nb_mul(w, w));
    assert_non_null(loss);
    nb_tensor *wt = named(nb_transpose(w, 0, 1), "t");
    assert_int_equal(nb_load_safetensors(path, 1, &wt, .partial = true), 0);
    assert_true(nb_get(w, NB_AT(2, 1)) == 100.0 + 1 * 3 + 2);
    FAILS_RC(nb_backward(loss), "nb_backward", "modified in place");
    nb_graph_reset(g);
    loss = nb_sum(nb_mul(w, w));
    assert_int_equal(nb_backward(loss), 0);
    assert_true(nb_get(nb_grad_of(w), NB_AT(2, 1)) == 2 * (100.0 + 1 * 3 + 2));

    nb_graph_free(g);
    for (int i = 0; i < 3; i++)
        nb_free(src[i]);
    nb_free(A);
    nb_free(B);
    nb_free(D);
    nb_free(E);
    nb_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_st_round_trip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_layout, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_atomic, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_load_errors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_bumps_version, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_reference_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_save_views, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_load_views, setup_dir, teardown_dir),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
