/* The safetensors format (Hugging Face's safetensors library, read and
 * written by PyTorch users through safetensors.torch, by NumPy through
 * safetensors.numpy):
 *
 *   8 bytes   N, the header length, a little-endian u64
 *   N bytes   UTF-8 JSON: {"name": {"dtype": "F32", "shape": [2, 3],
 *             "data_offsets": [begin, end]}, ..., "__metadata__": {...}}
 *             padded with spaces to a multiple of 8 (as the reference does)
 *   the rest  the data buffer: offsets are relative to its start; each
 *             tensor's bytes are little-endian and row-major
 *
 * Saving writes the tensors in the order given, back to back from offset
 * 0, with no "__metadata__". (The reference sorts by dtype alignment, then
 * name; the format allows any order and every reader accepts both.) A view
 * (non-contiguous, broadcast, or at an offset in its storage) is written as
 * its own elements in row-major order, as a contiguous copy would be. The
 * file is written to "<path>.tmp.<pid>" in the same folder, flushed and
 * fsync'ed, then renamed over path, so path holds either the old file or
 * the whole new one; on any failure the temporary file is removed.
 *
 * Loading parses the header with the strict JSON reader of json.c, checks
 * every entry (dtype size times shape equals the byte range, the range
 * inside the buffer), then checks every requested tensor (present, F32 or
 * F64, the same shape, no two of its elements sharing memory) before
 * writing anything: a failed load leaves the tensors as they were, except
 * for I/O errors in the middle of reading the data. A view is filled
 * through its strides, so the tensor it views changes where the view looks.
 * Tensors of other dtypes (F16, BF16, I64, ...) may be in the file as long
 * as they are not requested. */
#define _POSIX_C_SOURCE 200809L
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_HEADER 100000000 /* the reference library's limit */

static bool host_is_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reverses the bytes of each of count elements of esize bytes. */
static void swap_each(void *p, size_t count, size_t esize)
{
    unsigned char *b = p;
    for (size_t i = 0; i < count; i++, b += esize)
        for (size_t k = 0; k < esize / 2; k++) {
            unsigned char t = b[k];
            b[k] = b[esize - 1 - k];
            b[esize - 1 - k] = t;
        }
}

/* A view's elements in row-major order: next() gives the offset (in
 * elements from nb__ptr(t)) of each in turn, whatever the strides. */
typedef struct cursor {
    const nb_tensor *t;
    int64_t idx[NB_MAX_DIMS], off;
} cursor;

static int64_t next(cursor *c)
{
    int64_t at = c->off;
    NB_ODOMETER(c->t->ndim, c->t->shape, c->t->strides, c->idx, c->off)
    return at;
}

static const char *dtype_tag(nb_dtype d) { return d == NB_F64 ? "F64" : "F32"; }

#define CHUNK 8192 /* bytes staged per read or write of a view or a dtype conversion */

/* ---- saving ---- */

static int cmp_name_idx(const void *a, const void *b)
{
    const nb_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Writes t's elements little-endian in row-major order. 0 or -1 (errno set). */
static int write_data(FILE *f, const nb_tensor *t)
{
    size_t es = nb__dtype_size(t->dtype), count = (size_t)t->numel;
    if (t->contiguous && host_is_le())
        return fwrite(nb__ptr(t), es, count, f) == count ? 0 : -1;
    unsigned char buf[CHUNK];
    const unsigned char *base = nb__ptr(t);
    cursor c = {.t = t};
    while (count) {
        size_t k = count < CHUNK / es ? count : CHUNK / es;
        for (size_t j = 0; j < k; j++)
            memcpy(buf + j * es, base + next(&c) * (int64_t)es, es);
        if (!host_is_le())
            swap_each(buf, k, es);
        if (fwrite(buf, es, k, f) != k)
            return -1;
        count -= k;
    }
    return 0;
}

/* Makes the rename durable: fsync of the folder holding path (best effort). */
static void sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* The arguments of a save: every tensor there, named, names distinct. */
static int check_save(const char *fn, const char *path, int n, nb_tensor *const tensors[])
{
    char b[NB_SHAPE_STR_LEN];
    if (n < 0)
        return nb__error("%s: %s: n is %d", fn, path, n);
    if (n > 0 && !tensors)
        return nb__error("%s: %s: tensors is NULL", fn, path);
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        if (!t)
            return nb__error("%s: %s: tensor %d is NULL", fn, path, i);
        if (!t->name)
            return nb__error("%s: %s: tensor %d %s has no name (give it one with "
                             "nb_set_name)",
                             fn, path, i, nb_shape_str(t, b));
        if (strcmp(t->name, "__metadata__") == 0)
            return nb__error("%s: %s: tensor %d: the name '__metadata__' is reserved", fn,
                             path, i);
        size_t len = strlen(t->name), bad = nb__json_utf8_prefix(t->name, len);
        if (bad != len)
            return nb__error("%s: %s: tensor %d: its name is not valid UTF-8 (byte %zu is "
                             "0x%02x)",
                             fn, path, i, bad, (unsigned char)t->name[bad]);
    }
    if (n < 2)
        return 0;
    /* Distinct names: sort a copy of the pointers. */
    nb_tensor **sorted = nb__alloc((size_t)n * sizeof *sorted);
    if (!sorted)
        return -1;
    memcpy(sorted, tensors, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_name_idx);
    int rc = 0;
    for (int i = 1; i < n && rc == 0; i++)
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0)
            rc = nb__error("%s: %s: two tensors are named '%s'", fn, path, sorted[i]->name);
    nb__free(sorted);
    return rc;
}

int nb_save_safetensors(const char *path, int n, nb_tensor *const tensors[])
{
    static const char fn[] = "nb_save_safetensors";
    if (!path)
        return nb__error("%s: path is NULL", fn);
    if (check_save(fn, path, n, tensors) < 0)
        return -1;

    /* The header: compact JSON as the reference writes it, then spaces. */
    nb_sbuf h = {0};
    uint64_t off = 0;
    nb__sb_puts(&h, "{");
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        uint64_t bytes = (uint64_t)t->numel * nb__dtype_size(t->dtype);
        if (i)
            nb__sb_puts(&h, ",");
        nb__json_put_string(&h, t->name);
        nb__sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_tag(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            nb__sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        nb__sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                      (unsigned long long)(off + bytes));
        off += bytes;
    }
    nb__sb_puts(&h, "}");
    while (!h.failed && h.n % 8)
        nb__sb_puts(&h, " ");
    if (h.failed) {
        nb__free(h.p);
        return nb__error_code(NB_ERR_MEMORY, "%s: %s: out of memory for the header of %d tensors", fn, path, n);
    }
    if (h.n > MAX_HEADER) {
        nb__free(h.p);
        return nb__error("%s: %s: the header would be %zu bytes, more than readers accept "
                         "(%d)",
                         fn, path, h.n, MAX_HEADER);
    }

    /* Write "<path>.tmp.<pid>", then rename it over path. */
    size_t plen = strlen(path);
    char *tmp = nb__alloc(plen + 32);
    if (!tmp) {
        nb__free(h.p);
        return -1;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
        nb__error_code(NB_ERR_IO, "%s: %s: cannot create %s: %s", fn, path, tmp, strerror(errno));
        nb__free(tmp);
        nb__free(h.p);
        return -1;
    }
    FILE *f = fdopen(fd, "wb");
    const char *step = "writing";
    int err = 0;
    if (!f) {
        err = errno;
        close(fd);
        goto fail;
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(h.p, 1, h.n, f) != h.n)
        goto fail_errno;
    for (int i = 0; i < n; i++)
        if (write_data(f, tensors[i]) < 0)
            goto fail_errno;
    if (fflush(f) != 0)
        goto fail_errno;
    step = "syncing";
    if (fsync(fileno(f)) != 0)
        goto fail_errno;
    step = "closing";
    if (fclose(f) != 0) {
        f = NULL;
        goto fail_errno;
    }
    f = NULL;
    step = "renaming";
    if (rename(tmp, path) != 0)
        goto fail_errno;
    sync_parent(path);
    nb__free(tmp);
    nb__free(h.p);
    return 0;

fail_errno:
    err = errno;
    if (f)
        fclose(f);
fail:
    unlink(tmp);
    nb__error_code(NB_ERR_IO, "%s: %s: %s %s failed: %s", fn, path, step, tmp, strerror(err));
    nb__free(tmp);
    nb__free(h.p);
    return -1;
}

/* ---- loading: the header ---- */

typedef struct st_entry {
    const char *name; /* decoded in place inside the header, NUL-terminated */
    const char *dtype;
    int ndim; /* as in the file; shape holds the first NB_MAX_DIMS */
    int64_t shape[NB_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

typedef struct st_header {
    nb_json j;
    nb_vec e; /* st_entry */
} st_header;

/* "shape": [d0, d1, ...] */
static int read_shape(nb_json *j, st_entry *e)
{
    int more = nb__json_open(j, '[');
    for (e->ndim = 0; more == 1; e->ndim++) {
        uint64_t d = 0;
        if (nb__json_uint(j, &d) < 0)
            return -1;
        if (e->ndim < NB_MAX_DIMS)
            e->shape[e->ndim] = (int64_t)d;
        if (e->ndim == 1000000)
            return nb__json_fail(j, "too many dimensions");
        more = nb__json_more(j, ']');
    }
    return more;
}

/* "data_offsets": [begin, end] */
static int read_offsets(nb_json *j, st_entry *e)
{
    if (nb__json_expect(j, '[') < 0 || nb__json_uint(j, &e->begin) < 0 ||
        nb__json_expect(j, ',') < 0 || nb__json_uint(j, &e->end) < 0)
        return -1;
    return nb__json_expect(j, ']');
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, keys in any
 * order, others skipped. */
static int read_entry(nb_json *j, st_entry *e)
{
    static const char *const keys[] = {"dtype", "shape", "data_offsets"};
    bool have[3] = {false, false, false};
    int more = nb__json_open(j, '{');
    while (more == 1) {
        char *key = NULL, *dt = NULL;
        if (nb__json_string(j, &key) < 0 || nb__json_expect(j, ':') < 0)
            return -1;
        int k = 0;
        while (k < 3 && strcmp(key, keys[k]) != 0)
            k++;
        if (k < 3 && have[k])
            return nb__json_fail(j, "repeated key in a tensor entry");
        int rc = k == 0   ? nb__json_string(j, &dt)
                 : k == 1 ? read_shape(j, e)
                 : k == 2 ? read_offsets(j, e)
                          : nb__json_skip(j);
        if (rc < 0)
            return -1;
        if (k == 0)
            e->dtype = dt;
        if (k < 3)
            have[k] = true;
        more = nb__json_more(j, '}');
    }
    if (more < 0)
        return -1;
    for (int k = 0; k < 3; k++)
        if (!have[k])
            return nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: tensor '%s' has no \"%s\"", j->fn,
                             j->path, e->name, keys[k]);
    return 0;
}

/* The whole header object: its entries into h->e ("__metadata__" skipped). */
static int read_header(st_header *h)
{
    nb_json *j = &h->j;
    int more = nb__json_open(j, '{');
    while (more == 1) {
        char *key = NULL;
        if (nb__json_string(j, &key) < 0 || nb__json_expect(j, ':') < 0)
            return -1;
        if (strcmp(key, "__metadata__") == 0) {
            if (nb__json_skip(j) < 0)
                return -1;
        } else {
            if (nb__vec_reserve(&h->e, 1) < 0)
                return -1;
            st_entry *e = (st_entry *)h->e.v + h->e.n++;
            *e = (st_entry){.name = key};
            if (read_entry(j, e) < 0)
                return -1;
        }
        more = nb__json_more(j, '}');
    }
    return more < 0 ? -1 : nb__json_end(j);
}

/* ---- loading: checks and data ---- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const st_entry *)a)->name, ((const st_entry *)b)->name);
}

static size_t tag_size(const char *tag)
{
    static const struct {
        const char *tag;
        size_t size;
    } known[] = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
                 {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
                 {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strcmp(tag, known[k].tag) == 0)
            return known[k].size;
    return 0;
}

static const char *entry_shape(const st_entry *e, char *buf)
{
    if (e->ndim > NB_MAX_DIMS) {
        snprintf(buf, NB_SHAPE_STR_LEN, "(%d dimensions)", e->ndim);
        return buf;
    }
    return nb_dims_str(e->ndim, e->shape, buf);
}

/* Every entry: a consistent byte range inside the data (blen bytes), no
 * name twice. Sorts the entries by name. */
static int check_entries(const char *fn, const char *path, nb_vec *v, uint64_t blen)
{
    char b[NB_SHAPE_STR_LEN];
    st_entry *es = v->v;
    for (int64_t k = 0; k < v->n; k++) {
        const st_entry *e = &es[k];
        if (e->begin > e->end)
            return nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: tensor '%s' has data_offsets "
                             "[%llu, %llu) that run backwards",
                             fn, path, e->name, (unsigned long long)e->begin,
                             (unsigned long long)e->end);
        if (e->end > blen)
            return nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated file: tensor '%s' needs bytes [%llu, %llu) of "
                             "the data, which has %llu",
                             fn, path, e->name, (unsigned long long)e->begin,
                             (unsigned long long)e->end, (unsigned long long)blen);
        size_t size = tag_size(e->dtype);
        if (!size || e->ndim > NB_MAX_DIMS)
            continue; /* never loaded: nabla cannot hold it */
        /* numel * size must equal end - begin (< 2^63): stop once past it. */
        uint64_t bytes = size;
        for (int d = 0; d < e->ndim; d++) {
            uint64_t dim = (uint64_t)e->shape[d];
            bytes = dim && bytes > UINT64_MAX / 2 / dim ? UINT64_MAX / 2 : bytes * dim;
        }
        if (bytes != e->end - e->begin)
            return nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: tensor '%s' is %s %s but data_offsets "
                             "[%llu, %llu) hold %llu bytes",
                             fn, path, e->name, e->dtype, entry_shape(e, b),
                             (unsigned long long)e->begin, (unsigned long long)e->end,
                             (unsigned long long)(e->end - e->begin));
    }
    if (v->n)
        qsort(es, (size_t)v->n, sizeof *es, cmp_entry);
    for (int64_t k = 1; k < v->n; k++)
        if (strcmp(es[k - 1].name, es[k].name) == 0)
            return nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: tensor '%s' appears twice", fn, path,
                             es[k].name);
    return 0;
}

static const st_entry *find_entry(const nb_vec *v, const char *name)
{
    st_entry key = {.name = name};
    return v->n ? bsearch(&key, v->v, (size_t)v->n, sizeof key, cmp_entry) : NULL;
}

/* A requested tensor: in the file, F32/F64, the same shape, and a place
 * where each element has memory of its own. */
static int check_request(const char *fn, const char *path, const nb_vec *v, const nb_tensor *t)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    const st_entry *e = find_entry(v, t->name), *es = v->v;
    if (!e) {
        char list[200] = "";
        size_t used = 0;
        for (int64_t k = 0; k < v->n; k++) {
            if (used + strlen(es[k].name) + 4 + 6 > sizeof list) {
                memcpy(list + used, ", ...", 6);
                break;
            }
            used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'", k ? ", " : "",
                                     es[k].name);
        }
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: tensor '%s' is not in the file (it has %lld: %s)", fn, path,
                         t->name, (long long)v->n, v->n ? list : "none");
    }
    if (strcmp(e->dtype, "F32") != 0 && strcmp(e->dtype, "F64") != 0)
        return nb__error_code(NB_ERR_DTYPE, "%s: %s: tensor '%s' has dtype %s in the file; nabla loads F32 and "
                         "F64",
                         fn, path, t->name, e->dtype);
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = e->shape[d] == t->shape[d];
    if (!same)
        return nb__error_code(NB_ERR_SHAPE, "%s: %s: tensor '%s' has shape %s in the file, %s expected", fn, path,
                         t->name, entry_shape(e, b), nb_shape_str(t, c));
    if (nb__layout_overlaps(t->ndim, t->shape, t->strides))
        return nb__error("%s: %s: tensor '%s' %s is a view whose elements share memory "
                         "(strides %s): load into the tensor it views instead",
                         fn, path, t->name, nb_shape_str(t, b),
                         nb_dims_str(t->ndim, t->strides, c));
    return 0;
}

/* Reads tensor t's bytes from f at its offset, converting as needed, and
 * through t's strides when it is a view. */
static int read_tensor(FILE *f, off_t at, const st_entry *e, nb_tensor *t)
{
    size_t fes = strcmp(e->dtype, "F64") == 0 ? 8 : 4, tes = nb__dtype_size(t->dtype);
    size_t count = (size_t)t->numel;
    unsigned char *base = nb__ptr(t);
    if (count == 0)
        return 0;
    if (fseeko(f, at, SEEK_SET) != 0)
        return -1;
    if (fes == tes && t->contiguous) {
        if (fread(base, tes, count, f) != count)
            return -1;
        if (!host_is_le())
            swap_each(base, count, tes);
        return 0;
    }
    unsigned char buf[CHUNK];
    cursor c = {.t = t};
    while (count) {
        size_t k = count < CHUNK / fes ? count : CHUNK / fes;
        if (fread(buf, fes, k, f) != k)
            return -1;
        if (!host_is_le())
            swap_each(buf, k, fes);
        for (size_t j = 0; j < k; j++) {
            unsigned char *to = base + next(&c) * (int64_t)tes;
            const unsigned char *from = buf + j * fes;
            if (fes == tes) {
                memcpy(to, from, tes);
            } else if (fes == 8) {
                double v;
                memcpy(&v, from, 8);
                float x = (float)v;
                memcpy(to, &x, 4);
            } else {
                float v;
                memcpy(&v, from, 4);
                double x = v;
                memcpy(to, &x, 8);
            }
        }
        count -= k;
    }
    return 0;
}

/* The file's size and header, read and parsed into h; 0 or -1. */
static int read_head(const char *fn, const char *path, FILE *f, st_header *h, uint64_t *fsize,
                     uint64_t *hlen)
{
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return nb__error_code(NB_ERR_IO, "%s: %s: cannot stat: %s", fn, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nb__error_code(NB_ERR_IO, "%s: %s: not a regular file", fn, path);
    *fsize = (uint64_t)st.st_size;
    unsigned char len8[8];
    if (*fsize < 8 || fread(len8, 1, 8, f) != 8)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated file: %llu bytes, the header length alone takes 8",
                         fn, path, (unsigned long long)*fsize);
    *hlen = 0;
    for (int k = 7; k >= 0; k--)
        *hlen = *hlen << 8 | len8[k];
    if (*hlen > MAX_HEADER)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: header length %llu is over the limit of %d bytes: not a "
                         "safetensors file?",
                         fn, path, (unsigned long long)*hlen, MAX_HEADER);
    if (*hlen > *fsize - 8)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated file: header length %llu, but only %llu bytes "
                         "follow",
                         fn, path, (unsigned long long)*hlen, (unsigned long long)(*fsize - 8));
    size_t n = (size_t)*hlen;
    char *text = nb__alloc(n + 1);
    if (!text)
        return -1;
    h->j.s = text; /* freed by the caller, even if init fails */
    if (fread(text, 1, n, f) != n)
        return nb__error_code(NB_ERR_IO, "%s: %s: cannot read the header: %s", fn, path,
                         ferror(f) ? strerror(errno) : "file shrank");
    text[n] = '\0';
    if (nb__json_init(&h->j, text, n, fn, path, "header") < 0 || read_header(h) < 0)
        return -1;
    return check_entries(fn, path, &h->e, *fsize - 8 - *hlen);
}

int nb_load_safetensors(const char *path, int n, nb_tensor *const tensors[])
{
    static const char fn[] = "nb_load_safetensors";
    char b[NB_SHAPE_STR_LEN];
    if (!path)
        return nb__error("%s: path is NULL", fn);
    if (n < 0)
        return nb__error("%s: %s: n is %d", fn, path, n);
    if (n > 0 && !tensors)
        return nb__error("%s: %s: tensors is NULL", fn, path);
    for (int i = 0; i < n; i++) {
        if (!tensors[i])
            return nb__error("%s: %s: tensor %d is NULL", fn, path, i);
        if (!tensors[i]->name)
            return nb__error("%s: %s: tensor %d %s has no name to look up (give it one with "
                             "nb_set_name)",
                             fn, path, i, nb_shape_str(tensors[i], b));
    }

    FILE *f = fopen(path, "rb");
    if (!f)
        return nb__error_code(NB_ERR_IO, "%s: %s: cannot open: %s", fn, path, strerror(errno));
    st_header h = {.e = {.elem = sizeof(st_entry)}};
    uint64_t fsize = 0, hlen = 0;
    int rc = -1;
    if (read_head(fn, path, f, &h, &fsize, &hlen) < 0)
        goto out;
    for (int i = 0; i < n; i++)
        if (check_request(fn, path, &h.e, tensors[i]) < 0)
            goto out;

    /* Only now write into the tensors. */
    for (int i = 0; i < n; i++) {
        nb_tensor *t = tensors[i];
        const st_entry *e = find_entry(&h.e, t->name);
        if (read_tensor(f, (off_t)(8 + hlen + e->begin), e, t) < 0) {
            nb__error_code(NB_ERR_IO, "%s: %s: tensor '%s': read failed: %s", fn, path, t->name,
                      ferror(f) ? strerror(errno) : "the file is shorter than it was");
            goto out;
        }
        nb__bump(t);
    }
    rc = 0;
out:
    fclose(f);
    nb__free(h.j.s);
    nb__vec_free(&h.e);
    return rc;
}
