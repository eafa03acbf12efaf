/* IDX files (the format of MNIST and Fashion-MNIST), the (Fashion-)MNIST
 * loader, and the helpers nb_scale_images and nb_to_one_hot.
 *
 * IDX layout:
 *   bytes 0, 1   zero
 *   byte 2       element type: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
 *                0x0D f32, 0x0E f64
 *   byte 3       number of dimensions d (nabla takes 0..8)
 *   4*d bytes    the sizes, big-endian u32
 *   the rest     the elements, big-endian, row-major
 *
 * Files are read through zlib, which passes plain files through unchanged,
 * so gzipped and plain files both work whatever their names say.
 *
 * Strictness: the sizes go through the shape check of every tensor
 * (nb__check_shape: at most 2^48 elements, NB_MAX_NUMEL, counting the
 * non-zero sizes even when one is zero) before any data is read. The data
 * must be exactly as long as the sizes say. Fewer bytes is "truncated
 * data", more is "trailing data": both mean the header is not what the
 * writer meant. Memory grows with the bytes actually there, never with the
 * declared sizes alone, so a corrupt header declaring terabytes fails with
 * "truncated data" (a plain file at once, from its size; a gzipped one
 * after decompressing what is there).
 *
 * Gzip bombs: the data of a gzipped file may be at most NB_GZIP_MAX_RATIO
 * times the file's size, or NB_GZIP_FREE_BYTES (io.h). The header says how
 * long the data is (exactly, or the file is refused anyway), so that is
 * checked before decompressing it.
 *
 * The file is opened through nb__open_read (file.h): a FIFO or a device is
 * refused without blocking. */
#define _POSIX_C_SOURCE 200809L
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* A plain file's data is allocated once it is known to be there (the file
 * is long enough). A gzipped file's is allocated for 8 times the file's
 * size, or this much when that is less, then grows by doubling as it
 * arrives: memory follows what the file holds, not what it claims. */
#define IDX_FIRST_CHUNK ((int64_t)1 << 20)

typedef struct idx_raw {
    int type;  /* IDX type code */
    int esize; /* bytes per element */
    int ndim;
    int64_t dims[NB_MAX_DIMS];
    int64_t numel;
    unsigned char *data; /* numel * esize bytes, big-endian (nb__alloc) ... */
    /* ... or, when the caller set want_u8 and the file is u8, the storage of
     * this u8 heap tensor of the file's shape (the caller owns it): the
     * bytes are read straight into it, so a data set is in memory once. */
    bool want_u8;
    nb_tensor *u8;
} idx_raw;

/* The data buffer once it has all cap bytes the header says (cap ==
 * total): the u8 tensor when the caller wants one, else plain memory.
 * NULL with an error. */
static unsigned char *data_alloc(const char *fn, idx_raw *r, int64_t cap, int64_t total)
{
    if (r->want_u8 && r->type == 0x08 && cap == total) {
        r->u8 = nb__new_heap_tensor(fn, NB_U8, r->ndim, r->dims);
        return r->u8 ? nb__ptr(r->u8) : NULL;
    }
    return nb__alloc(cap ? (size_t)cap : 1);
}

/* Frees what data_alloc gave. */
static void data_free(idx_raw *r)
{
    if (r->u8)
        nb_free(r->u8);
    else
        nb__free(r->data);
    r->u8 = NULL;
    r->data = NULL;
}

static int type_size(int type)
{
    switch (type) {
    case 0x08:
    case 0x09:
        return 1;
    case 0x0B:
        return 2;
    case 0x0C:
    case 0x0D:
        return 4;
    case 0x0E:
        return 8;
    default:
        return 0;
    }
}

static const char *type_name(int type)
{
    switch (type) {
    case 0x08:
        return "u8";
    case 0x09:
        return "i8";
    case 0x0B:
        return "i16";
    case 0x0C:
        return "i32";
    case 0x0D:
        return "f32";
    case 0x0E:
        return "f64";
    default:
        return "?";
    }
}

/* Reads up to n bytes into buf. Returns the count read; *failed is set when
 * zlib reported an error (as opposed to a clean end of file). */
static int64_t gz_read_all(gzFile f, unsigned char *buf, int64_t n, bool *failed)
{
    int64_t got = 0;
    *failed = false;
    while (got < n) {
        int64_t want = n - got;
        if (want > (1 << 30))
            want = 1 << 30;
        int k = gzread(f, buf + got, (unsigned)want);
        if (k < 0) {
            *failed = true;
            break;
        }
        if (k == 0)
            break;
        got += k;
    }
    return got;
}

/* Why the last read stopped early: a zlib message, or "" for a plain EOF. */
static const char *gz_why(gzFile f, char *buf, size_t size)
{
    int err = Z_OK;
    const char *msg = gzerror(f, &err);
    if (err == Z_OK) {
        buf[0] = '\0';
    } else if (err == Z_ERRNO) {
        snprintf(buf, size, " (%s)", strerror(errno));
    } else {
        /* zlib prefixes "<fd:3>: " for files opened with gzdopen. */
        if (msg && msg[0] == '<' && strstr(msg, ">: "))
            msg = strstr(msg, ">: ") + 3;
        snprintf(buf, size, " (gzip: %s)", msg ? msg : "error");
    }
    return buf;
}

/* r->data, of used bytes, moved into a buffer of cap bytes. */
static unsigned char *grow(const char *fn, idx_raw *r, int64_t used, int64_t cap, int64_t total)
{
    unsigned char *old = r->data, *p = data_alloc(fn, r, cap, total);
    if (p && used)
        memcpy(p, old, (size_t)used);
    nb__free(old); /* never the tensor: that one has all the bytes */
    return p;
}

/* Reads and checks a whole IDX file. fn names the public function in
 * messages; want_u8: a u8 file's data as a tensor (r->u8). 0, or -1 with
 * r->data and r->u8 NULL. */
static int idx_read(const char *fn, const char *path, idx_raw *r, bool want_u8)
{
    memset(r, 0, sizeof *r);
    r->want_u8 = want_u8;
    struct stat st;
    int fd = nb__open_read(fn, path, &st);
    if (fd < 0)
        return -1;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return nb__error_code(NB_ERR_MEMORY, "%s: %s: cannot open: out of memory", fn, path);
    }
    char why[160], b[NB_SHAPE_STR_LEN];
    bool failed;
    unsigned char head[4 + 4 * 255];
    int64_t got = gz_read_all(f, head, 4, &failed);
    if (got < 4) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated header: %lld of 4 bytes%s", fn, path, (long long)got,
                  gz_why(f, why, sizeof why));
        goto fail;
    }
    if (head[0] != 0 || head[1] != 0) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: bad magic %02x %02x %02x %02x: not an IDX file (which starts "
                  "00 00 <type> <ndims>)",
                  fn, path, head[0], head[1], head[2], head[3]);
        goto fail;
    }
    r->type = head[2];
    r->esize = type_size(r->type);
    if (!r->esize) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: unsupported element type 0x%02x (known: 0x08 u8, 0x09 i8, "
                  "0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64)",
                  fn, path, r->type);
        goto fail;
    }
    if (head[3] > NB_MAX_DIMS) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: %d dimensions, nabla supports at most %d", fn, path, head[3],
                  NB_MAX_DIMS);
        goto fail;
    }
    r->ndim = head[3];
    got = gz_read_all(f, head + 4, 4 * r->ndim, &failed);
    if (got < 4 * r->ndim) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated header: %lld of %d bytes of sizes%s", fn, path,
                  (long long)got, 4 * r->ndim, gz_why(f, why, sizeof why));
        goto fail;
    }
    for (int i = 0; i < r->ndim; i++) {
        const unsigned char *p = head + 4 + 4 * i;
        r->dims[i] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
                               (uint32_t)p[2] << 8 | p[3]);
    }
    /* The one shape check every tensor passes (NB_MAX_NUMEL), made before
     * reading the data: then numel * esize cannot overflow either. */
    char where[600];
    snprintf(where, sizeof where, "%s: %s", fn, path);
    int64_t numel;
    if (nb__check_shape(where, r->ndim, r->dims, &numel) < 0)
        goto fail;
    r->numel = numel;
    int64_t total = numel * r->esize;
    /* gzdirect is known after the first read: 0 for gzip. */
    int64_t fsize = (int64_t)st.st_size, limit = NB_GZIP_FREE_BYTES;
    if (fsize > NB_GZIP_FREE_BYTES / NB_GZIP_MAX_RATIO)
        limit = fsize > INT64_MAX / NB_GZIP_MAX_RATIO ? INT64_MAX : fsize * NB_GZIP_MAX_RATIO;
    if (!gzdirect(f) && total > limit) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: %s %s needs %lld bytes, more than the %lld a gzipped file of %lld "
                  "bytes may expand to (NB_GZIP_MAX_RATIO: %d times its size, at least %lld): "
                  "gunzip it first if it is genuine",
                  fn, path, type_name(r->type), nb_dims_str(r->ndim, r->dims, b),
                  (long long)total, (long long)limit, (long long)fsize, NB_GZIP_MAX_RATIO,
                  (long long)NB_GZIP_FREE_BYTES);
        goto fail;
    }
    int64_t hbytes = 4 + 4 * (int64_t)r->ndim, cap = total;
    if (gzdirect(f) && fsize - hbytes < total) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated data: %s %s needs %lld bytes, got %lld", fn, path,
                  type_name(r->type), nb_dims_str(r->ndim, r->dims, b), (long long)total,
                  (long long)(fsize - hbytes));
        goto fail;
    }
    if (!gzdirect(f)) {
        int64_t first = fsize > IDX_FIRST_CHUNK / 8 ? 8 * fsize : IDX_FIRST_CHUNK;
        cap = total < first ? total : first;
    }
    r->data = data_alloc(fn, r, cap, total);
    if (!r->data)
        goto fail;
    got = 0;
    for (;;) {
        int64_t k = gz_read_all(f, r->data + got, cap - got, &failed);
        got += k;
        if (got < cap || cap == total)
            break;
        cap = cap > total / 2 ? total : 2 * cap;
        if (!(r->data = grow(fn, r, got, cap, total)))
            goto fail;
    }
    if (got < total) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated data: %s %s needs %lld bytes, got %lld%s", fn, path,
                  type_name(r->type), nb_dims_str(r->ndim, r->dims, b), (long long)total,
                  (long long)got, gz_why(f, why, sizeof why));
        goto fail;
    }
    unsigned char extra;
    if (gz_read_all(f, &extra, 1, &failed) == 1) {
        nb__error_code(NB_ERR_FORMAT, "%s: %s: trailing data after the %lld bytes that %s %s needs", fn, path,
                  (long long)total, type_name(r->type), nb_dims_str(r->ndim, r->dims, b));
        goto fail;
    }
    if (failed) {
        nb__error_code(NB_ERR_IO, "%s: %s: read error after the data%s", fn, path, gz_why(f, why, sizeof why));
        goto fail;
    }
    gzclose(f);
    return 0;
fail:
    gzclose(f);
    data_free(r);
    return -1;
}

/* Element i of a raw IDX buffer as a double (exact for every type). */
static double idx_value(const idx_raw *r, int64_t i)
{
    const unsigned char *p = r->data + i * r->esize;
    uint32_t u;
    uint64_t w;
    float f;
    double d;
    switch (r->type) {
    case 0x08:
        return p[0];
    case 0x09:
        return (double)p[0] - (p[0] & 0x80 ? 256 : 0);
    case 0x0B:
        u = (uint32_t)p[0] << 8 | p[1];
        return (double)u - (u & 0x8000 ? 65536 : 0);
    case 0x0C:
        u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        return (double)u - (u & 0x80000000u ? 4294967296.0 : 0);
    case 0x0D:
        u = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        memcpy(&f, &u, 4);
        return f;
    default: /* 0x0E */
        w = 0;
        for (int k = 0; k < 8; k++)
            w = w << 8 | p[k];
        memcpy(&d, &w, 8);
        return d;
    }
}

nb_tensor *nb_read_idx(const char *path)
{
    if (!path) {
        nb__error("nb_read_idx: path is NULL");
        return NULL;
    }
    idx_raw r;
    if (idx_read("nb_read_idx", path, &r, false) < 0)
        return NULL;
    nb_tensor *t = nb__new_heap_tensor("nb_read_idx", NB_F32, r.ndim, r.dims);
    if (t) {
        float *y = nb__ptr(t);
        if (r.type == 0x08)
            for (int64_t i = 0; i < r.numel; i++)
                y[i] = r.data[i];
        else
            for (int64_t i = 0; i < r.numel; i++)
                y[i] = (float)idx_value(&r, i);
    }
    nb__free(r.data);
    return t;
}

/* ---- (Fashion-)MNIST ---- */

/* dir/base if it is there, else dir/base.gz; "" and an error otherwise. */
static int find_file(const char *dir, const char *base, char *out, size_t size)
{
    const char *sep = dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/";
    for (int gz = 0; gz < 2; gz++) {
        int k = snprintf(out, size, "%s%s%s%s", dir, sep, base, gz ? ".gz" : "");
        if (k < 0 || (size_t)k >= size) {
            out[0] = '\0';
            return nb__error("nb_load_mnist: %s: path too long", dir);
        }
        /* Whatever is there is taken: the reader refuses what is not a
         * regular file, saying what it is. */
        struct stat st;
        if (stat(out, &st) == 0)
            return 0;
    }
    out[0] = '\0';
    return nb__error_code(NB_ERR_IO, "nb_load_mnist: %s: neither %s nor %s.gz is there", dir, base, base);
}

/* One split: labels (checked against classes 0..9), one-hot, and images
 * (u8, (N,28,28) or (N,784)), read into a u8 tensor that becomes (N,784). */
static int load_split(const char *dir, const char *img_base, const char *lab_base,
                      nb_tensor **x, nb_tensor **y)
{
    char ipath[4096], lpath[4096], b[NB_SHAPE_STR_LEN];
    idx_raw li, im;
    if (find_file(dir, lab_base, lpath, sizeof lpath) < 0 ||
        find_file(dir, img_base, ipath, sizeof ipath) < 0)
        return -1;
    if (idx_read("nb_load_mnist", lpath, &li, false) < 0)
        return -1;
    if (li.type != 0x08 || li.ndim != 1) {
        nb__free(li.data);
        return nb__error_code(NB_ERR_FORMAT, "nb_load_mnist: %s: labels must be u8 (N,), found %s %s", lpath,
                         type_name(li.type), nb_dims_str(li.ndim, li.dims, b));
    }
    for (int64_t i = 0; i < li.numel; i++)
        if (li.data[i] >= 10) {
            int v = li.data[i];
            nb__free(li.data);
            return nb__error_code(NB_ERR_FORMAT, "nb_load_mnist: %s: label %d at index %lld is out of range "
                             "[0, 10)",
                             lpath, v, (long long)i);
        }
    if (idx_read("nb_load_mnist", ipath, &im, true) < 0) {
        nb__free(li.data);
        return -1;
    }
    int rc = -1;
    if (im.type != 0x08 || !((im.ndim == 3 && im.dims[1] == 28 && im.dims[2] == 28) ||
                             (im.ndim == 2 && im.dims[1] == 784))) {
        nb__error_code(NB_ERR_FORMAT, "nb_load_mnist: %s: images must be u8 (N,28,28), found %s %s", ipath,
                  type_name(im.type), nb_dims_str(im.ndim, im.dims, b));
        goto out;
    }
    if (im.dims[0] != li.dims[0]) {
        nb__error_code(NB_ERR_FORMAT, "nb_load_mnist: %s: mismatched counts: %lld images (%s), %lld labels (%s)",
                  dir, (long long)im.dims[0], img_base, (long long)li.dims[0], lab_base);
        goto out;
    }
    int64_t n = im.dims[0];
    *y = nb__new_heap_tensor("nb_load_mnist", NB_F32, NB_SHAPE(n, 10));
    if (!*y)
        goto out;
    /* The images' tensor, flattened in place (it is packed, row-major). */
    *x = im.u8;
    im.u8 = NULL;
    im.data = NULL;
    (*x)->ndim = 2;
    (*x)->shape[1] = 784;
    nb__strides(2, (*x)->shape, (*x)->strides);
    float *yd = nb__ptr(*y);
    memset(yd, 0, (size_t)n * 10 * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        yd[i * 10 + li.data[i]] = 1.0f;
    rc = 0;
out:
    nb__free(li.data);
    data_free(&im);
    return rc;
}

int nb_load_mnist(const char *dir, nb_tensor **x_train, nb_tensor **y_train,
                  nb_tensor **x_test, nb_tensor **y_test)
{
    nb_tensor **outs[4] = {x_train, y_train, x_test, y_test};
    for (int i = 0; i < 4; i++)
        if (outs[i])
            *outs[i] = NULL;
    if (!dir)
        return nb__error("nb_load_mnist: dir is NULL");
    for (int i = 0; i < 4; i++)
        if (!outs[i])
            return nb__error("nb_load_mnist: output pointer %d is NULL", i + 1);
    if (load_split(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte", x_train,
                   y_train) == 0 &&
        load_split(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", x_test,
                   y_test) == 0)
        return 0;
    for (int i = 0; i < 4; i++) {
        nb_free(*outs[i]);
        *outs[i] = NULL;
    }
    return -1;
}

/* ---- helpers ---- */

nb_tensor *nb_scale_images(const nb_tensor *images)
{
    char b[NB_SHAPE_STR_LEN];
    if (!images) {
        if (!nb__has_error())
            nb__error("nb_scale_images: tensor is NULL");
        return NULL;
    }
    const nb_tensor *t = images;
    if (!((t->ndim == 3 && t->shape[1] == 28 && t->shape[2] == 28) ||
          (t->ndim == 2 && t->shape[1] == 784))) {
        nb__error_code(NB_ERR_SHAPE, "nb_scale_images: images must be (N,28,28) or (N,784), got %s",
                  nb_shape_str(t, b));
        return NULL;
    }
    for (int64_t i = 0; t->dtype != NB_U8 && i < t->numel; i++) {
        double v = nb__get(t, i);
        if (!(v >= 0 && v <= 255)) {
            nb__error("nb_scale_images: value %g at flat index %lld is outside [0, 255]", v,
                      (long long)i);
            return NULL;
        }
    }
    nb_tensor *y = nb__new_heap_tensor("nb_scale_images", NB_F32, NB_SHAPE(t->shape[0], 784));
    if (!y)
        return NULL;
    float *yd = nb__ptr(y);
    /* Rounded once from double: the float nearest to v / 255, for every
     * byte the same as (float)v / 255.0f and as nb_fit's (float)(v * (1 /
     * 255.0)) (tests/test_u8.c checks all 256). */
    for (int64_t i = 0; i < t->numel; i++)
        yd[i] = (float)(nb__get(t, i) / 255.0);
    return y;
}

nb_tensor *nb_to_one_hot(const nb_tensor *labels, int64_t classes)
{
    char b[NB_SHAPE_STR_LEN];
    if (!labels) {
        if (!nb__has_error())
            nb__error("nb_to_one_hot: tensor is NULL");
        return NULL;
    }
    if (labels->ndim != 1) {
        nb__error_code(NB_ERR_SHAPE, "nb_to_one_hot: labels must be 1-D (N,), got %s", nb_shape_str(labels, b));
        return NULL;
    }
    if (classes < 1) {
        nb__error("nb_to_one_hot: classes must be at least 1, got %lld", (long long)classes);
        return NULL;
    }
    for (int64_t i = 0; i < labels->numel; i++) {
        double v = nb__get(labels, i);
        if (!(v >= 0 && v < (double)classes && v == floor(v))) {
            nb__error("nb_to_one_hot: label %g at index %lld is not a whole number in "
                      "[0, %lld)",
                      v, (long long)i, (long long)classes);
            return NULL;
        }
    }
    nb_tensor *y = nb__new_heap_tensor("nb_to_one_hot", NB_F32, NB_SHAPE(labels->numel, classes));
    if (!y)
        return NULL;
    float *yd = nb__ptr(y);
    memset(yd, 0, (size_t)y->numel * sizeof(float));
    for (int64_t i = 0; i < labels->numel; i++)
        yd[i * classes + (int64_t)nb__get(labels, i)] = 1.0f;
    return y;
}
