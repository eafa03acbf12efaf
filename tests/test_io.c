/* Reading and writing: IDX (plain and gzipped), (Fashion-)MNIST, CSV,
 * safetensors. Every fixture is generated into a fresh temporary folder
 * (mkdtemp), which each test removes; the real Fashion-MNIST comes from the
 * Debian package dataset-fashion-mnist (or $NB_FASHION_MNIST). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nabla/nabla.h"

/* ---- helpers ---- */

static char dir[64];
static char pathbuf[4][512];

/* dir/name, in one of four rotating buffers. */
static const char *P(const char *name)
{
    static int k;
    k = (k + 1) % 4;
    snprintf(pathbuf[k], sizeof pathbuf[k], "%s/%s", dir, name);
    return pathbuf[k];
}

static int setup_dir(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/nb_test_io_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static void remove_tree(const char *d)
{
    DIR *dd = opendir(d);
    if (!dd)
        return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(dd))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(dd);
    rmdir(d);
}

static int teardown_dir(void **state)
{
    (void)state;
    remove_tree(dir);
    nb_clear_error();
    return 0;
}

/* Run last: every test freed what it made. */
static void test_no_leaks(void **state)
{
    (void)state;
    assert_int_equal(nb_live_tensors(), 0);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

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


/* The call returns -1 (FAILS_RC) or NULL (FAILS) with a message containing
 * each given string. */

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
    /* Absurd sizes: overflow is refused outright; a merely huge declaration
     * fails on the missing data instead of allocating it. */
    write_idx(P("huge"), false, 0x0E, 4,
              (const uint32_t[]){0xffffffffu, 0xffffffffu, 0xffffffffu, 2}, d, 6);
    FAILS(nb_read_idx(P("huge")), "huge", "declared size", "too large");
    write_idx(P("tera"), true, 0x08, 3, (const uint32_t[]){65535, 65535, 255}, d, 6);
    FAILS(nb_read_idx(P("tera")), "truncated data", "needs 1095183237375 bytes, got 6");
    /* A zero size makes it empty even next to huge ones. */
    write_idx(P("zero"), false, 0x0E, 4,
              (const uint32_t[]){0xffffffffu, 0, 0xffffffffu, 0xffffffffu}, NULL, 0);
    nb_tensor *z = nb_read_idx(P("zero"));
    assert_non_null(z);
    assert_int_equal(nb_numel(z), 0);
    nb_free(z);

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
    FAILS(nb_read_idx(P("sub")), "sub", "truncated header");
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
        assert_float_equal(nb_get(xt, NB_AT(0, 0)), 0.0, 0);
        assert_float_equal(nb_get(xt, NB_AT(0, 255)), 1.0, 0);
        assert_float_equal(nb_get(xt, NB_AT(4, 3)), 7.0f / 255.0f, 0);
        assert_float_equal(nb_get(xv, NB_AT(2, 10)), 12.0f / 255.0f, 0);
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
        const float *x = nb_data(xs[s]);
        float lo = 1, hi = 0;
        for (int64_t i = 0; i < nb_numel(xs[s]); i++) {
            lo = x[i] < lo ? x[i] : lo;
            hi = x[i] > hi ? x[i] : hi;
        }
        assert_true(lo == 0.0f);
        assert_true(hi == 1.0f);
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
     * first training image's pixels sum to 76247 / 255. */
    assert_true(nb_get(yt, NB_AT(0, 9)) == 1.0);
    assert_true(nb_get(yv, NB_AT(0, 9)) == 1.0);
    double sum = 0;
    for (int j = 0; j < 784; j++)
        sum += nb_get(xt, NB_AT(0, j));
    assert_float_equal(sum, 76247.0 / 255.0, 1e-3);
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

/* ---- safetensors ---- */

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
        named(nb_randn(NB_F32, NB_SHAPE(3, 4), &rng), "dense_1.kernel"),
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
    /* Load in another order than saved. */
    nb_tensor *rev[6];
    for (int i = 0; i < n; i++)
        rev[i] = dst[n - 1 - i];
    assert_int_equal(nb_load_safetensors(P("m.safetensors"), n, rev), 0);
    for (int i = 0; i < n; i++)
        assert_true(nb_allclose(dst[i], src[i], 0, 0));

    /* Across dtypes: F64 in the file into f32 and back. */
    nb_tensor *b32 = named(nb_zeros(NB_F32, NB_SHAPE(5)), "bias");
    nb_tensor *k64 = named(nb_zeros(NB_F64, NB_SHAPE(3, 4)), "dense_1.kernel");
    assert_int_equal(nb_load_safetensors(P("m.safetensors"), 2, (nb_tensor *[]){b32, k64}), 0);
    for (int i = 0; i < 5; i++)
        assert_true(nb_get(b32, NB_AT(i)) == (double)(float)nb_get(src[1], NB_AT(i)));
    assert_true(nb_allclose(k64, src[0], 0, 0));
    /* A subset; nothing requested is fine too. */
    assert_int_equal(nb_load_safetensors(P("m.safetensors"), 0, NULL), 0);

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
    assert_int_equal(len, 16);
    assert_memory_equal(raw, "\x08\0\0\0\0\0\0\0{}      ", 16);

    for (int i = 0; i < n; i++) {
        nb_free(src[i]);
        nb_free(dst[i]);
    }
    nb_free(b32);
    nb_free(k64);
    nb_free(one);
}

/* The exact bytes: compact JSON as the reference writes it, space-padded
 * to a multiple of 8, little-endian data. */
static void test_st_layout(void **state)
{
    (void)state;
    nb_tensor *t[2] = {named(nb_from_array(NB_F32, NB_SHAPE(2), (float[]){1.0f, -2.0f}), "w"),
                       named(nb_scalar(NB_F64, 0.5), "b")};
    assert_int_equal(nb_save_safetensors(P("l.safetensors"), 2, t), 0);
    const char json[] = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[8,16]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8, len;
    const unsigned char *raw = read_bytes(P("l.safetensors"), &len);
    assert_int_equal(len, 8 + hl + 16);
    assert_int_equal(raw[0], hl);
    for (int k = 1; k < 8; k++)
        assert_int_equal(raw[k], 0);
    assert_memory_equal(raw + 8, json, jl);
    for (size_t k = jl; k < hl; k++)
        assert_int_equal(raw[8 + k], ' ');
    const unsigned char data[16] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0,
                                    0, 0, 0,    0,    0, 0, 0xe0, 0x3f};
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
               (const char *[]){"nb_save_safetensors", "keep.safetensors.tmp.", "File too large",
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

    /* Fails at the rename: the target is a folder. */
    mkdir(P("folder.safetensors"), 0700);
    FAILS_RC(nb_save_safetensors(P("folder.safetensors"), 1, &w), "renaming",
             "Is a directory");
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
                         "dense_1.kernel");
    nb_tensor *b = named(nb_full(NB_F32, NB_SHAPE(3), 9), "dense_1.bias");
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
    FAILS_RC(nb_load_safetensors(cut, 2, both), "truncated file: tensor 'dense_1.kernel' "
                                                "needs bytes [0, 24) of the data, which has 0");
    write_bytes(cut, orig, len - 1);
    FAILS_RC(nb_load_safetensors(cut, 2, both),
             "truncated file: tensor 'dense_1.bias' needs bytes [24, 36)", "which has 35");

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
    nb_tensor *w32 = named(nb_zeros(NB_F32, NB_SHAPE(2, 4)), "dense_1.kernel");
    nb_tensor *b0 = named(nb_zeros(NB_F32, NB_SHAPE(3)), "dense_1.bias");
    FAILS_RC(nb_load_safetensors(good, 2, (nb_tensor *[]){b0, w32}),
             "nb_load_safetensors: ", "good.safetensors: tensor 'dense_1.kernel' has shape "
                                      "(2,3) in the file, (2,4) expected");
    assert_true(nb_get(b0, NB_AT(0)) == 0.0);
    nb_tensor *v = named(nb_zeros(NB_F32, NB_SHAPE(6)), "dense_1.kernel");
    FAILS_RC(nb_load_safetensors(good, 1, &v), "has shape (2,3) in the file, (6,) expected");
    nb_tensor *s0 = named(nb_scalar(NB_F32, 0), "dense_1.bias");
    FAILS_RC(nb_load_safetensors(good, 1, &s0), "has shape (3,) in the file, () expected");
    nb_tensor *other = named(nb_zeros(NB_F32, NB_SHAPE(3)), "dense_2.bias");
    FAILS_RC(nb_load_safetensors(good, 2, (nb_tensor *[]){b0, other}),
             "tensor 'dense_2.bias' is not in the file (it has 2: 'dense_1.bias', "
             "'dense_1.kernel')");
    assert_true(nb_get(b0, NB_AT(0)) == 0.0);
    assert_int_equal(nb_load_safetensors(good, 1, &b0), 0);
    assert_true(nb_get(b0, NB_AT(2)) == 9.0);

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
        {"{\"__metadata__\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
         "]]]]]}",
         "nested too deeply"},
        {"{\"t\":{\"dtype\":\"BF16\",\"shape\":[6],\"data_offsets\":[0,12]}}",
         "tensor 't' has dtype BF16 in the file; nabla loads F32 and F64"},
        {"{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,3],\"data_offsets\":[0,12]}}",
         "tensor 't' has shape (9 dimensions) in the file, (3,) expected"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         "'t' is not in the file (it has 1: 'x')"},
        {"{}", "'t' is not in the file (it has 0: none)"},
    };
    nb_tensor *t = named(nb_zeros(NB_F32, NB_SHAPE(3)), "t");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_st(cut, bad[i].json, d3, sizeof d3);
        nb_clear_error();
        if (nb_load_safetensors(cut, 1, &t) != -1)
            fail_msg("case %zu (%s) loaded", i, bad[i].json);
        const char *msg = nb_last_error();
        if (!msg || !strstr(msg, bad[i].want))
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
        "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
        "\"q\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,3]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        write_st(cut, ok[i], d3, sizeof d3);
        ((float *)nb_data(t))[1] = 0;
        if (nb_load_safetensors(cut, 1, &t) != 0)
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
    assert_int_equal(nb_load_safetensors(P("ref.safetensors"), 5, t), 0);
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
        cmocka_unit_test_setup_teardown(test_st_round_trip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_layout, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_atomic, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_load_errors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_bumps_version, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_st_reference_file, setup_dir, teardown_dir),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
