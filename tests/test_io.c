/* Reading data: IDX (plain and gzipped), (Fashion-)MNIST, the scaling and
 * one-hot helpers, CSV. (safetensors: test_safetensors.c.) Every fixture is
 * generated into a fresh temporary folder (mkdtemp), which each test
 * removes; the real Fashion-MNIST comes from the Debian package
 * dataset-fashion-mnist (or $NB_FASHION_MNIST). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nabla/nabla.h"

#define DIR_TEMPLATE "/tmp/nb_test_io_XXXXXX"
#include "file_testing.h"

/* ---- gzip without zlib: stored (uncompressed) deflate blocks, which zlib
 * reads like any other gzip stream. (The test links only libnabla.) ---- */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

static size_t gzip_stored(const unsigned char *p, size_t n, unsigned char *out)
{
    static const unsigned char hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    size_t o = 0, off = 0;
    memcpy(out, hdr, 10);
    o = 10;
    do {
        size_t k = n - off > 65535 ? 65535 : n - off;
        out[o++] = off + k == n ? 1 : 0;
        out[o++] = (unsigned char)(k & 0xff);
        out[o++] = (unsigned char)(k >> 8);
        out[o++] = (unsigned char)(~k & 0xff);
        out[o++] = (unsigned char)((~k >> 8) & 0xff);
        memcpy(out + o, p + off, k);
        o += k;
        off += k;
    } while (off < n);
    uint32_t crc = crc32_of(p, n), isz = (uint32_t)n;
    for (int k = 0; k < 4; k++)
        out[o++] = (unsigned char)(crc >> (8 * k));
    for (int k = 0; k < 4; k++)
        out[o++] = (unsigned char)(isz >> (8 * k));
    return o;
}

/* An IDX file: header for (type, dims) then the given data bytes. */
static size_t idx_bytes(unsigned char *out, int type, int ndim, const uint32_t *dims,
                        const void *data, size_t n)
{
    size_t o = 0;
    out[o++] = 0;
    out[o++] = 0;
    out[o++] = (unsigned char)type;
    out[o++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++)
        for (int k = 3; k >= 0; k--)
            out[o++] = (unsigned char)(dims[i] >> (8 * k));
    if (n)
        memcpy(out + o, data, n);
    return o + n;
}

static void write_idx(const char *path, bool gz, int type, int ndim, const uint32_t *dims,
                      const void *data, size_t n)
{
    static unsigned char raw[1 << 16], z[(1 << 16) + 1024];
    size_t len = idx_bytes(raw, type, ndim, dims, data, n);
    if (gz)
        write_bytes(path, z, gzip_stored(raw, len, z));
    else
        write_bytes(path, raw, len);
}

/* ---- IDX ---- */

static void test_idx_types(void **state)
{
    (void)state;
    const unsigned char u8[6] = {0, 1, 2, 127, 128, 255};
    for (int gz = 0; gz < 2; gz++) {
        const char *p = P(gz ? "u8.idx.gz" : "u8.idx");
        write_idx(p, gz, 0x08, 2, (const uint32_t[]){2, 3}, u8, 6);
        nb_tensor *t = nb_read_idx(p);
        assert_non_null(t);
        assert_int_equal(nb_dtype_of(t), NB_F32);
        assert_int_equal(nb_ndim(t), 2);
        assert_int_equal(nb_dim(t, 0), 2);
        assert_int_equal(nb_dim(t, 1), 3);
        for (int i = 0; i < 6; i++)
            assert_true(((float *)nb_data(t))[i] == (float)u8[i]);
        nb_free(t);
    }
    /* Signed and wide types, big-endian. */
    const unsigned char i8[3] = {0x80, 0xff, 0x05};
    const unsigned char i16[4] = {0x80, 0x00, 0x01, 0x02};
    const unsigned char i32[8] = {0xff, 0xff, 0xff, 0xfe, 0x00, 0x01, 0x00, 0x00};
    const unsigned char f32[8] = {0x3f, 0xc0, 0, 0, 0xc1, 0x20, 0, 0};       /* 1.5, -10 */
    const unsigned char f64[16] = {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18,
                                   0xbf, 0xf0, 0, 0, 0, 0, 0, 0};              /* pi, -1 */
    struct {
        int type;
        const void *data;
        size_t n;
        uint32_t count;
        float want[3];
    } cases[] = {
        {0x09, i8, 3, 3, {-128, -1, 5}},
        {0x0B, i16, 4, 2, {-32768, 258}},
        {0x0C, i32, 8, 2, {-2, 65536}},
        {0x0D, f32, 8, 2, {1.5f, -10}},
        {0x0E, f64, 16, 2, {(float)3.14159265358979323846, -1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *p = P("typed.idx.gz");
        write_idx(p, true, cases[c].type, 1, &cases[c].count, cases[c].data, cases[c].n);
        nb_tensor *t = nb_read_idx(p);
        assert_non_null(t);
        assert_int_equal(nb_numel(t), cases[c].count);
        for (uint32_t i = 0; i < cases[c].count; i++)
            assert_true(((float *)nb_data(t))[i] == cases[c].want[i]);
        nb_free(t);
    }
    /* Empty and 0-d. */
    write_idx(P("empty.idx"), false, 0x08, 3, (const uint32_t[]){0, 28, 28}, NULL, 0);
    nb_tensor *e = nb_read_idx(P("empty.idx"));
    assert_non_null(e);
    assert_int_equal(nb_numel(e), 0);
    assert_int_equal(nb_dim(e, 1), 28);
    nb_free(e);
    write_idx(P("scalar.idx"), false, 0x08, 0, NULL, (const unsigned char[]){7}, 1);
    nb_tensor *s = nb_read_idx(P("scalar.idx"));
    assert_non_null(s);
    assert_int_equal(nb_ndim(s), 0);
    assert_true(nb_item(s) == 7.0);
    nb_free(s);
    /* Larger than one 64 KB stored block: several deflate blocks. */
    static unsigned char big[200 * 300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    static unsigned char raw[sizeof big + 64], z[sizeof big + 1024];
    size_t len = idx_bytes(raw, 0x08, 2, (const uint32_t[]){200, 300}, big, sizeof big);
    write_bytes(P("big.gz"), z, gzip_stored(raw, len, z));
    nb_tensor *t = nb_read_idx(P("big.gz"));
    assert_non_null(t);
    assert_true(nb_get(t, NB_AT(199, 299)) == (double)(unsigned char)((sizeof big - 1) * 7));
    nb_free(t);
}

static void test_idx_errors(void **state)
{
    (void)state;
    FAILS(nb_read_idx(NULL), "nb_read_idx", "NULL");
    FAILS(nb_read_idx(P("nope.idx")), "nb_read_idx", "nope.idx", "cannot open",
          "No such file");

    write_bytes(P("empty"), "", 0);
    FAILS(nb_read_idx(P("empty")), "empty", "truncated header: 0 of 4 bytes");
    write_bytes(P("magic"), "\x00\x01\x08\x01", 4);
    FAILS(nb_read_idx(P("magic")), "magic", "bad magic 00 01 08 01");
    /* gzip's own magic, then nothing: zlib says why. */
    write_bytes(P("gzmagic"), "\x1f\x8b\x08\x00", 4);
    FAILS(nb_read_idx(P("gzmagic")), "gzmagic: truncated header: 0 of 4 bytes (gzip: "
                                     "unexpected end of file)");
    write_bytes(P("text"), "P5 28 28\n", 9);
    FAILS(nb_read_idx(P("text")), "bad magic 50 35 20 32", "not an IDX file");
    write_bytes(P("type"), "\0\0\x0a\x01\0\0\0\x01x", 9);
    FAILS(nb_read_idx(P("type")), "unsupported element type 0x0a");
    write_bytes(P("dims"), "\0\0\x08\x09", 4);
    FAILS(nb_read_idx(P("dims")), "9 dimensions", "at most 8");
    write_bytes(P("shortdims"), "\0\0\x08\x02\0\0\0\x02\0\0", 10);
    FAILS(nb_read_idx(P("shortdims")), "shortdims", "truncated header: 6 of 8 bytes");

    const unsigned char d[6] = {1, 2, 3, 4, 5, 6};
    for (int gz = 0; gz < 2; gz++) {
        write_idx(P("short"), gz, 0x08, 2, (const uint32_t[]){2, 3}, d, 4);
        FAILS(nb_read_idx(P("short")), "short", "truncated data: u8 (2,3) needs 6 bytes, got 4");
        write_idx(P("long"), gz, 0x08, 1, (const uint32_t[]){5}, d, 6);
        FAILS(nb_read_idx(P("long")), "long", "trailing data after the 5 bytes");
        write_idx(P("i32"), gz, 0x0C, 1, (const uint32_t[]){2}, d, 6);
        FAILS(nb_read_idx(P("i32")), "truncated data: i32 (2,) needs 8 bytes, got 6");
    }
    /* Absurd sizes: more than 2^48 elements (NB_MAX_NUMEL, the limit of
     * every tensor) is refused before any data is read, even when a zero
     * size would make the tensor empty; a merely huge declaration fails on
     * the missing data instead of allocating it. */
    write_idx(P("huge"), false, 0x0E, 4,
              (const uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 2}, d, 6);
    FAILS(nb_read_idx(P("huge")), "nb_read_idx: ", "huge: shape (4294967295,4294967295,"
          "4294967295,2) has more than 2^48 elements (NB_MAX_NUMEL)");
    write_idx(P("zero"), false, 0x0E, 4,
              (const uint32_t[]){0xffffffffu, 0, 0xffffffffu, 0xffffffffu}, NULL, 0);
    FAILS(nb_read_idx(P("zero")), "nb_read_idx: ", "zero: shape (4294967295,0,4294967295,"
          "4294967295) has more than 2^48 elements (NB_MAX_NUMEL)");
    assert_true(strncmp(nb_last_error(), "nb_read_idx: ", 13) == 0);
    write_idx(P("tera"), false, 0x08, 3, (const uint32_t[]){65535, 65535, 255}, d, 6);
    FAILS(nb_read_idx(P("tera")), "truncated data", "needs 1095183237375 bytes, got 6");
    /* Gzipped, the same claim is refused before decompressing anything: it
     * is beyond what a file of that size may expand to (NB_GZIP_MAX_RATIO). */
    write_idx(P("tera.gz"), true, 0x08, 3, (const uint32_t[]){65535, 65535, 255}, d, 6);
    FAILS(nb_read_idx(P("tera.gz")), "nb_read_idx: ", "tera.gz: u8 (65535,65535,255) needs "
          "1095183237375 bytes, more than the 67108864 a gzipped file of 45 bytes may expand to",
          "gunzip it first");
    /* A zero size next to moderate ones (their product, 2^40, is within
     * the limit) makes an empty tensor. */
    write_idx(P("empty4"), false, 0x0E, 4, (const uint32_t[]){65535, 0, 65535, 255}, NULL, 0);
    nb_tensor *z = nb_read_idx(P("empty4"));
    assert_non_null(z);
    assert_int_equal(nb_numel(z), 0);
    assert_int_equal(nb_ndim(z), 4);
    assert_int_equal(nb_dim(z, 0), 65535);
    assert_int_equal(nb_dim(z, 1), 0);
    assert_int_equal(nb_dim(z, 3), 255);
    nb_free(z);
    /* The loader goes through the same check, under its own name. */
    write_idx(P("train-labels-idx1-ubyte"), false, 0x08, 3,
              (const uint32_t[]){0, 0xffffffffu, 0x20000}, NULL, 0);
    write_bytes(P("train-images-idx3-ubyte"), "", 0);
    nb_tensor *o[4];
    FAILS_RC(nb_load_mnist(dir, &o[0], &o[1], &o[2], &o[3]), "nb_load_mnist: ",
             "train-labels-idx1-ubyte: shape (0,4294967295,131072) has more than 2^48 elements");
    assert_int_equal(nb_live_tensors(), 0);

    /* Broken gzip: a wrong checksum, and a stream cut in the middle. */
    static unsigned char raw[256], gz[512], hundred[100];
    size_t len = idx_bytes(raw, 0x08, 1, (const uint32_t[]){100}, hundred, 100);
    size_t glen = gzip_stored(raw, len, gz);
    gz[glen - 8] ^= 0xff;
    write_bytes(P("crc.gz"), gz, glen);
    FAILS(nb_read_idx(P("crc.gz")), "crc.gz", "gzip", "incorrect data check");
    gz[glen - 8] ^= 0xff;
    write_bytes(P("cut.gz"), gz, glen / 2);
    FAILS(nb_read_idx(P("cut.gz")), "cut.gz", "truncated data: u8 (100,) needs 100 bytes",
          "unexpected end of file");
    write_bytes(P("ok.gz"), gz, glen);
    nb_tensor *t = nb_read_idx(P("ok.gz"));
    assert_non_null(t);
    nb_free(t);
    /* A folder is not a file. */
    mkdir(P("sub"), 0700);
    FAILS(nb_read_idx(P("sub")), "nb_read_idx: ", "sub: is a directory, not a regular file");
}

/* ---- MNIST ---- */

/* A small MNIST folder: n_train/n_test images with pixel (i, j) = i + j,
 * labels i % 10 (bad_label: one 10); gz picks .gz for the training files. */
static void make_mnist(int n_train, int n_train_labels, int n_test, bool gz, bool bad_label)
{
    static unsigned char img[8 * 784], lab[16];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 784; j++)
            img[i * 784 + j] = (unsigned char)((i + j) % 256);
    for (int i = 0; i < 16; i++)
        lab[i] = (unsigned char)(i % 10);
    if (bad_label)
        lab[1] = 10;
    write_idx(P(gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte"), gz, 0x08, 3,
              (const uint32_t[]){(uint32_t)n_train, 28, 28}, img, (size_t)n_train * 784);
    write_idx(P(gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte"), gz, 0x08, 1,
              (const uint32_t[]){(uint32_t)n_train_labels}, lab, (size_t)n_train_labels);
    write_idx(P("t10k-images-idx3-ubyte"), false, 0x08, 3,
              (const uint32_t[]){(uint32_t)n_test, 28, 28}, img, (size_t)n_test * 784);
    write_idx(P("t10k-labels-idx1-ubyte.gz"), true, 0x08, 1, (const uint32_t[]){(uint32_t)n_test},
              lab, (size_t)n_test);
}

static void test_mnist_small(void **state)
{
    (void)state;
    nb_tensor *xt, *yt, *xv, *yv;
    for (int gz = 0; gz < 2; gz++) {
        make_mnist(5, 5, 3, gz, false);
        assert_int_equal(nb_load_mnist(dir, &xt, &yt, &xv, &yv), 0);
        assert_int_equal(nb_dim(xt, 0), 5);
        assert_int_equal(nb_dim(xt, 1), 784);
        assert_int_equal(nb_dim(yt, 0), 5);
        assert_int_equal(nb_dim(yt, 1), 10);
        assert_int_equal(nb_dim(xv, 0), 3);
        assert_int_equal(nb_dim(yv, 0), 3);
        /* The images as the file holds them: bytes, flattened. */
        assert_int_equal(nb_dtype_of(xt), NB_U8);
        assert_int_equal(nb_dtype_of(xv), NB_U8);
        assert_int_equal(nb_dtype_of(yt), NB_F32);
        assert_int_equal(nb_ndim(xt), 2);
        assert_true(nb_is_contiguous(xt));
        assert_float_equal(nb_get(xt, NB_AT(0, 0)), 0.0, 0);
        assert_float_equal(nb_get(xt, NB_AT(0, 255)), 255.0, 0);
        assert_float_equal(nb_get(xt, NB_AT(4, 3)), 7.0, 0);
        assert_float_equal(nb_get(xv, NB_AT(2, 10)), 12.0, 0);
        assert_int_equal(((const uint8_t *)nb_data(xt))[1 * 784 + 300], (1 + 300) % 256);
        for (int i = 0; i < 5; i++)
            for (int c = 0; c < 10; c++)
                assert_float_equal(nb_get(yt, NB_AT(i, c)), c == i % 10, 0);
        assert_float_equal(nb_get(yv, NB_AT(2, 2)), 1.0, 0);
        nb_free(xt);
        nb_free(yt);
        nb_free(xv);
        nb_free(yv);
        remove_tree(dir);
        mkdir(dir, 0700);
    }
    /* A trailing slash is fine. */
    make_mnist(2, 2, 1, false, false);
    char slash[80];
    snprintf(slash, sizeof slash, "%s/", dir);
    assert_int_equal(nb_load_mnist(slash, &xt, &yt, &xv, &yv), 0);
    nb_free(xt);
    nb_free(yt);
    nb_free(xv);
    nb_free(yv);
}

static void test_mnist_errors(void **state)
{
    (void)state;
    nb_tensor *sentinel = (nb_tensor *)&sentinel;
    nb_tensor *xt = sentinel, *yt = sentinel, *xv = sentinel, *yv = sentinel;
    FAILS_RC(nb_load_mnist(dir, &xt, &yt, &xv, &yv), "nb_load_mnist", dir,
             "neither train-labels-idx1-ubyte nor train-labels-idx1-ubyte.gz");
    assert_null(xt);
    assert_null(yv);
    FAILS_RC(nb_load_mnist(NULL, &xt, &yt, &xv, &yv), "nb_load_mnist", "NULL");
    FAILS_RC(nb_load_mnist(dir, &xt, NULL, &xv, &yv), "nb_load_mnist", "NULL");

    make_mnist(5, 4, 3, true, false);
    xt = yt = xv = yv = sentinel;
    FAILS_RC(nb_load_mnist(dir, &xt, &yt, &xv, &yv),
             "mismatched counts: 5 images (train-images-idx3-ubyte), 4 labels");
    assert_null(xt);
    assert_null(yt);
    assert_null(xv);
    assert_null(yv);
    remove_tree(dir);
    mkdir(dir, 0700);

    make_mnist(5, 5, 3, false, true);
    FAILS_RC(nb_load_mnist(dir, &xt, &yt, &xv, &yv), "train-labels-idx1-ubyte",
             "label 10 at index 1 is out of range [0, 10)");

    /* The training split loads, then the test split fails: all freed. */
    make_mnist(5, 5, 3, false, false);
    const unsigned char lab[3] = {0, 1, 2};
    write_idx(P("t10k-labels-idx1-ubyte.gz"), true, 0x08, 1, (const uint32_t[]){2}, lab, 2);
    xt = yt = xv = yv = sentinel;
    FAILS_RC(nb_load_mnist(dir, &xt, &yt, &xv, &yv), "mismatched counts: 3 images", "2 labels");
    assert_null(xt);
    assert_null(yt);
    assert_int_equal(nb_live_tensors(), 0);

    /* Wrong image size, wrong type, broken labels file. */
    write_idx(P("t10k-labels-idx1-ubyte.gz"), true, 0x08, 1, (const uint32_t[]){3}, lab, 3);
    static unsigned char img[3 * 27 * 28];
    write_idx(P("t10k-images-idx3-ubyte"), false, 0x08, 3, (const uint32_t[]){3, 27, 28}, img,
              sizeof img);
    FAILS_RC(nb_load_mnist(dir, &xt, &yt, &xv, &yv), "t10k-images-idx3-ubyte",
             "images must be u8 (N,28,28), found u8 (3,27,28)");
    write_idx(P("t10k-labels-idx1-ubyte.gz"), true, 0x0C, 1, (const uint32_t[]){1}, img, 4);
    FAILS_RC(nb_load_mnist(dir, &xt, &yt, &xv, &yv), "labels must be u8 (N,), found i32 (1,)");
    write_bytes(P("t10k-labels-idx1-ubyte.gz"), "\0\0\x08\x01\0\0\0\x03\0", 9);
    FAILS_RC(nb_load_mnist(dir, &xt, &yt, &xv, &yv), "t10k-labels-idx1-ubyte.gz",
             "truncated data");
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_fashion_mnist(void **state)
{
    (void)state;
    const char *d = getenv("NB_FASHION_MNIST");
    if (!d)
        d = "/usr/share/datasets/fashion-mnist";
    nb_tensor *xt, *yt, *xv, *yv;
    if (nb_load_mnist(d, &xt, &yt, &xv, &yv) != 0)
        fail_msg("%s (install the Debian package dataset-fashion-mnist or set "
                 "NB_FASHION_MNIST)",
                 nb_last_error());
    assert_int_equal(nb_dim(xt, 0), 60000);
    assert_int_equal(nb_dim(xt, 1), 784);
    assert_int_equal(nb_dim(yt, 0), 60000);
    assert_int_equal(nb_dim(yt, 1), 10);
    assert_int_equal(nb_dim(xv, 0), 10000);
    assert_int_equal(nb_dim(yv, 0), 10000);
    nb_tensor *xs[2] = {xt, xv}, *ys[2] = {yt, yv};
    for (int s = 0; s < 2; s++) {
        assert_int_equal(nb_dtype_of(xs[s]), NB_U8); /* 47 MB and 7.8 MB, as stored */
        const uint8_t *x = nb_data(xs[s]);
        int lo = 255, hi = 0;
        for (int64_t i = 0; i < nb_numel(xs[s]); i++) {
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
        assert_int_equal(lo, 0);
        assert_int_equal(hi, 255);
        int64_t n = nb_dim(ys[s], 0), count[10] = {0};
        const float *y = nb_data(ys[s]);
        for (int64_t i = 0; i < n; i++) {
            int ones = 0, at = -1;
            for (int c = 0; c < 10; c++)
                if (y[i * 10 + c] == 1.0f)
                    ones++, at = c;
                else
                    assert_true(y[i * 10 + c] == 0.0f);
            assert_int_equal(ones, 1);
            count[at]++;
        }
        for (int c = 0; c < 10; c++)
            assert_int_equal(count[c], n / 10);
    }
    /* Known values: both splits start with an ankle boot (class 9); the
     * first training image's pixels sum to 76247. */
    assert_true(nb_get(yt, NB_AT(0, 9)) == 1.0);
    assert_true(nb_get(yv, NB_AT(0, 9)) == 1.0);
    double sum = 0;
    for (int j = 0; j < 784; j++)
        sum += nb_get(xt, NB_AT(0, j));
    assert_float_equal(sum, 76247.0, 0);
    nb_free(xt);
    nb_free(yt);
    nb_free(xv);
    nb_free(yv);
}

static void test_scale_one_hot(void **state)
{
    (void)state;
    double v[2 * 784];
    for (int i = 0; i < 2 * 784; i++)
        v[i] = i % 256;
    nb_tensor *img = nb_from_array(NB_F64, NB_SHAPE(2, 28, 28), v);
    nb_tensor *s = nb_scale_images(img);
    assert_non_null(s);
    assert_int_equal(nb_dtype_of(s), NB_F32);
    assert_int_equal(nb_ndim(s), 2);
    assert_int_equal(nb_dim(s, 1), 784);
    assert_float_equal(nb_get(s, NB_AT(0, 255)), 1.0, 0);
    assert_float_equal(nb_get(s, NB_AT(1, 0)), (784 % 256) / 255.0, 1e-7);
    nb_free(s);
    nb_tensor *flat = nb_zeros(NB_F32, NB_SHAPE(3, 784));
    s = nb_scale_images(flat);
    assert_non_null(s);
    assert_int_equal(nb_dim(s, 0), 3);
    nb_free(s);

    nb_tensor *bad = nb_zeros(NB_F32, NB_SHAPE(2, 10));
    FAILS(nb_scale_images(bad), "nb_scale_images", "(N,28,28) or (N,784)", "(2,10)");
    FAILS(nb_scale_images(NULL), "nb_scale_images", "NULL");
    nb_set(img, NB_AT(1, 2, 3), 256);
    FAILS(nb_scale_images(img), "value 256 at flat index 843 is outside [0, 255]");
    nb_set(img, NB_AT(1, 2, 3), NAN);
    FAILS(nb_scale_images(img), "value nan");
    nb_set(img, NB_AT(1, 2, 3), -1);
    FAILS(nb_scale_images(img), "value -1");

    nb_tensor *lab = nb_from_array(NB_F64, NB_SHAPE(4), (double[]){2, 0, 1, 2});
    nb_tensor *oh = nb_to_one_hot(lab, 3);
    assert_non_null(oh);
    assert_int_equal(nb_dim(oh, 0), 4);
    assert_int_equal(nb_dim(oh, 1), 3);
    const float want[12] = {0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1};
    assert_memory_equal(nb_data(oh), want, sizeof want);
    nb_free(oh);
    FAILS(nb_to_one_hot(lab, 2), "nb_to_one_hot", "label 2 at index 0", "[0, 2)");
    FAILS(nb_to_one_hot(lab, 0), "classes must be at least 1");
    FAILS(nb_to_one_hot(bad, 3), "labels must be 1-D", "(2,10)");
    FAILS(nb_to_one_hot(NULL, 3), "nb_to_one_hot", "NULL");
    nb_set(lab, NB_AT(3), 1.5);
    FAILS(nb_to_one_hot(lab, 3), "label 1.5 at index 3 is not a whole number");
    nb_set(lab, NB_AT(3), -1);
    FAILS(nb_to_one_hot(lab, 3), "label -1");
    /* Views read through their strides: reversed labels, a broadcast image. */
    nb_graph *g = nb_graph_new();
    nb_set(lab, NB_AT(3), 1);
    nb_set(img, NB_AT(1, 2, 3), 51);
    oh = nb_to_one_hot(nb_slice(lab, 0, INT64_MAX, INT64_MIN, -1), 3); /* 1, 1, 0, 2 */
    assert_non_null(oh);
    const float want_rev[12] = {0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1};
    assert_memory_equal(nb_data(oh), want_rev, sizeof want_rev);
    nb_free(oh);
    nb_tensor *row = nb_slice(nb_reshape(img, NB_SHAPE(2, 784)), 0, 1, 2, 1);
    s = nb_scale_images(nb_broadcast_to(row, NB_SHAPE(3, 784)));
    assert_non_null(s);
    assert_int_equal(nb_dim(s, 0), 3);
    assert_float_equal(nb_get(s, NB_AT(2, 0)), (784 % 256) / 255.0, 1e-7);
    assert_float_equal(nb_get(s, NB_AT(1, 2 * 28 + 3)), 51 / 255.0, 1e-7);
    nb_free(s);
    nb_graph_free(g);
    nb_tensor *none = nb_zeros(NB_F32, NB_SHAPE(0));
    oh = nb_to_one_hot(none, 5);
    assert_non_null(oh);
    assert_int_equal(nb_dim(oh, 0), 0);
    assert_int_equal(nb_dim(oh, 1), 5);
    nb_free(oh);
    nb_free(none);
    nb_free(lab);
    nb_free(bad);
    nb_free(flat);
    nb_free(img);
}

/* ---- CSV ---- */

static void test_csv_good(void **state)
{
    (void)state;
    const char *text = "\xEF\xBB\xBF"
                       "sepal length,width, label\r\n"
                       "1.5, 2,0\r\n"
                       " -3e2 ,\t4.25 , 1\r\n"
                       "0x10,1e-3,2\r\n"
                       "\r\n"
                       "\n";
    write_bytes(P("h.csv"), text, strlen(text));
    nb_tensor *x, *y;
    assert_int_equal(nb_read_csv(P("h.csv"), -1, &x, &y), 0);
    assert_int_equal(nb_dim(x, 0), 3);
    assert_int_equal(nb_dim(x, 1), 2);
    assert_int_equal(nb_ndim(y), 1);
    assert_int_equal(nb_dim(y, 0), 3);
    const float wx[6] = {1.5f, 2, -300, 4.25f, 16, 1e-3f}, wy[3] = {0, 1, 2};
    assert_memory_equal(nb_data(x), wx, sizeof wx);
    assert_memory_equal(nb_data(y), wy, sizeof wy);
    nb_free(x);
    nb_free(y);

    /* No header, label first, no final newline. */
    write_bytes(P("n.csv"), "7,1,2\n8,3,4", 11);
    assert_int_equal(nb_read_csv(P("n.csv"), 0, &x, &y), 0);
    const float wx2[4] = {1, 2, 3, 4}, wy2[2] = {7, 8};
    assert_memory_equal(nb_data(x), wx2, sizeof wx2);
    assert_memory_equal(nb_data(y), wy2, sizeof wy2);
    nb_free(x);
    nb_free(y);
    /* A middle label column, counted from the end. */
    assert_int_equal(nb_read_csv(P("n.csv"), -2, &x, &y), 0);
    const float wx3[4] = {7, 2, 8, 4}, wy3[2] = {1, 3};
    assert_memory_equal(nb_data(x), wx3, sizeof wx3);
    assert_memory_equal(nb_data(y), wy3, sizeof wy3);
    nb_free(x);
    nb_free(y);
}

static void test_csv_errors(void **state)
{
    (void)state;
    nb_tensor *sentinel = (nb_tensor *)&sentinel, *x = sentinel, *y = sentinel;
    FAILS_RC(nb_read_csv(P("missing.csv"), -1, &x, &y), "nb_read_csv", "missing.csv",
             "cannot open", "No such file");
    assert_null(x);
    assert_null(y);
    FAILS_RC(nb_read_csv(NULL, -1, &x, &y), "nb_read_csv", "NULL");
    FAILS_RC(nb_read_csv(P("missing.csv"), -1, NULL, &y), "features output pointer is NULL");
    FAILS_RC(nb_read_csv(P("missing.csv"), -1, &x, NULL), "labels output pointer is NULL");

    static const struct {
        const char *text;
        int label;
        const char *want1, *want2;
    } bad[] = {
        {"a,b,c\n1,2,3\n4,x5,6\n", -1, "line 3, column 2: 'x5' is not a number", NULL},
        {"1,2,3\n4,5\n", -1, "line 2 has 2 columns, line 1 has 3", NULL},
        {"a,b,c\n1,2,3\n4,5,6,7\n", -1, "line 3 has 4 columns, line 1 (the header) has 3",
         NULL},
        {"1,2,3\n4,,6\n", -1, "line 2, column 2: empty cell", NULL},
        {"1,2,3\n4,5,\n", -1, "line 2, column 3: empty cell", NULL},
        {"1,2,3\n\n4,5,6\n", -1, "line 2 is empty", NULL},
        {"1,2,3\n4,5,6\n", 3, "label_column 3 is out of range for 3 columns", NULL},
        {"1,2,3\n4,5,6\n", -4, "label_column -4 is out of range for 3 columns", NULL},
        {"a,b,c\n", -1, "no data rows after the header", NULL},
        {"", -1, "no data rows", NULL},
        {"\n\n", -1, "no data rows", NULL},
        {"1\n2\n", 0, "one column only", NULL},
        {"1,2\n3,1e39\n", -1, "line 2, column 2: '1e39' does not fit in f32", NULL},
        {"1,2\n3,\"4\"\n", -1, "'\"4\"' is not a number", NULL},
        {"1,2\n3,12345678901234567890123456789012345678901234567890x\n", -1,
         "'1234567890123456789012345678901234567...' is not a number", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_bytes(P("bad.csv"), bad[i].text, strlen(bad[i].text));
        x = y = sentinel;
        FAILS_RC(nb_read_csv(P("bad.csv"), bad[i].label, &x, &y), "nb_read_csv", "bad.csv",
                 bad[i].want1);
        assert_null(x);
        assert_null(y);
    }
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idx_types, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_idx_errors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_mnist_small, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_mnist_errors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_fashion_mnist, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_scale_one_hot, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_csv_good, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_csv_errors, setup_dir, teardown_dir),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
