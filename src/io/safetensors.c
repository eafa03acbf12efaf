/* The safetensors format (Hugging Face's safetensors library, read and
 * written by PyTorch users through safetensors.torch, by NumPy through
 * safetensors.numpy):
 *
 *   8 bytes   N, the header length, a little-endian u64
 *   N bytes   UTF-8 JSON: {"name": {"dtype": "F32", "shape": [2, 3],
 *             "data_offsets": [begin, end]}, ..., "__metadata__": {...}}
 *             padded with spaces to a multiple of 8 (as the reference does)
 *   the rest  the data buffer: offsets are relative to its start; each
 *             tensor's bytes are little-endian and row-major; together the
 *             tensors cover it exactly, without holes or overlaps
 *
 * Saving writes "__metadata__" first, {"nabla_format": "1", "nabla_crc32":
 * "<8 hex digits>", ...} (strings, as the reference requires): the version
 * of nabla's use of the format and the CRC-32 (zlib's) of the data buffer,
 * then the caller's entries (.metadata), which a load hands to
 * .on_metadata.
 * Then the tensors in the order given, back to back from offset 0. (The
 * reference sorts by dtype alignment, then name; the format allows any
 * order and every reader accepts both.) A view (non-contiguous, broadcast,
 * or at an offset in its storage) is written as its own elements in
 * row-major order, as a contiguous copy would be. The CRC is computed as
 * the data is written and patched into the header (fixed width) at the
 * end. The file is replaced atomically through file.h.
 *
 * Loading parses the header with the strict JSON reader of json.c, checks
 * every entry (dtype size times shape equals the byte range, the element
 * count within NB_MAX_NUMEL, the range inside the buffer), that the
 * entries tile the buffer, the metadata nabla writes (a known format, a
 * matching CRC: the whole buffer is read once to check it), then the
 * requested tensors against the file's (present, F32 or F64, or U8 for
 * u8, the same shape, no two of a view's elements sharing memory; unless
 * partial, the same set, and the same order when nabla wrote the file)
 * before writing anything: a failed load leaves the tensors as they were,
 * except for I/O errors in the middle of reading the data. A view is filled through its
 * strides, so the tensor it views changes where the view looks. Tensors of
 * other dtypes (F16, BF16, I64, ...) may be in the file as long as they are
 * not requested (in a partial load).
 *
 * Saving lives in safetensors_save.c, loading here; safetensors.h has what
 * both use. */
#define _POSIX_C_SOURCE 200809L
#include "file.h"
#include "json.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

/* ---- loading: the header ---- */

typedef struct st_entry {
    const char *name; /* decoded in place inside the header, NUL-terminated */
    const char *dtype;
    int ndim; /* as in the file; shape holds the first NB_MAX_DIMS */
    int64_t shape[NB_MAX_DIMS];
    bool huge;   /* beyond NB_MAX_DIMS: the non-zero sizes multiply past NB_MAX_NUMEL */
    int64_t pos; /* its place among the header's entries */
    uint64_t begin, end;
} st_entry;

typedef struct st_header {
    nb_json j;
    nb_vec e;           /* st_entry */
    const char *format; /* __metadata__'s nabla_format and nabla_crc32, or NULL */
    const char *crc;
    nb_vec meta;        /* nb_metadata: its other entries with string values */
} st_header;

/* "shape": [d0, d1, ...] */
static int read_shape(nb_json *j, st_entry *e)
{
    int more = nb__json_open(j, '[');
    uint64_t prod = 1; /* of the non-zero sizes, saturating past NB_MAX_NUMEL */
    for (e->ndim = 0; more == 1; e->ndim++) {
        uint64_t d = 0;
        if (nb__json_uint(j, &d) < 0)
            return -1;
        if (e->ndim < NB_MAX_DIMS)
            e->shape[e->ndim] = (int64_t)d;
        if (d)
            prod = prod > (uint64_t)NB_MAX_NUMEL / d ? (uint64_t)NB_MAX_NUMEL + 1 : prod * d;
        if (e->ndim == 1000000)
            return nb__json_fail(j, "too many dimensions");
        more = nb__json_more(j, ']');
    }
    e->huge = prod > (uint64_t)NB_MAX_NUMEL;
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

/* "__metadata__": {...}: nabla's two keys (strings) are kept, and so are
 * the other entries whose values are strings (for on_metadata); the rest
 * (any JSON: the format says strings, but nothing here needs them) is
 * checked and skipped. */
static int read_metadata(st_header *h)
{
    nb_json *j = &h->j;
    if (nb__json_peek(j) != '{')
        return nb__json_fail(j, "__metadata__ must be an object");
    int more = nb__json_open(j, '{');
    while (more == 1) {
        char *key = NULL;
        if (nb__json_string(j, &key) < 0 || nb__json_expect(j, ':') < 0)
            return -1;
        const char **slot = strcmp(key, "nabla_format") == 0  ? &h->format
                            : strcmp(key, "nabla_crc32") == 0 ? &h->crc
                                                              : NULL;
        if (slot && *slot)
            return nb__json_fail(j, "repeated key '%s' in __metadata__", key);
        if (slot) {
            char *v = NULL;
            if (nb__json_peek(j) != '"')
                return nb__json_fail(j, "__metadata__ '%s' must be a string", key);
            if (nb__json_string(j, &v) < 0)
                return -1;
            *slot = v;
        } else if (nb__json_peek(j) == '"') {
            char *v = NULL;
            if (nb__json_string(j, &v) < 0 || nb__vec_reserve(&h->meta, 1) < 0)
                return -1;
            ((nb_metadata *)h->meta.v)[h->meta.n++] = (nb_metadata){key, v};
        } else if (nb__json_skip(j) < 0) {
            return -1;
        }
        more = nb__json_more(j, '}');
    }
    return more;
}

/* The whole header object: its entries into h->e. */
static int read_header(st_header *h)
{
    nb_json *j = &h->j;
    bool meta = false;
    int more = nb__json_open(j, '{');
    while (more == 1) {
        char *key = NULL;
        if (nb__json_string(j, &key) < 0 || nb__json_expect(j, ':') < 0)
            return -1;
        if (strcmp(key, "__metadata__") == 0) {
            if (meta)
                return nb__json_fail(j, "repeated key '__metadata__'");
            meta = true;
            if (read_metadata(h) < 0)
                return -1;
        } else {
            if (nb__vec_reserve(&h->e, 1) < 0)
                return -1;
            st_entry *e = (st_entry *)h->e.v + h->e.n;
            *e = (st_entry){.name = key, .pos = h->e.n};
            h->e.n++;
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

/* By byte range, then header order: the order the entries must tile in. */
static int cmp_range(const void *a, const void *b)
{
    const st_entry *x = *(const st_entry *const *)a, *y = *(const st_entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
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

/* The entries, sorted by byte range, cover [0, blen) exactly: no hole, no
 * overlap, nothing after the last (the format requires it, and the
 * reference library refuses files that do not). */
static int check_tiling(const char *fn, const char *path, const nb_vec *v, uint64_t blen)
{
    const st_entry *es = v->v;
    const st_entry **by = NULL;
    if (v->n && !(by = nb__alloc((size_t)v->n * sizeof *by)))
        return -1;
    for (int64_t k = 0; k < v->n; k++)
        by[k] = &es[k];
    if (v->n)
        qsort(by, (size_t)v->n, sizeof *by, cmp_range);
    uint64_t at = 0;
    int rc = 0;
    for (int64_t k = 0; k < v->n && rc == 0; k++) {
        const st_entry *e = by[k];
        if (e->begin > at)
            rc = nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: bytes [%llu, %llu) of the data belong to no "
                           "tensor (a hole before '%s')",
                           fn, path, (unsigned long long)at, (unsigned long long)e->begin,
                           e->name);
        else if (e->begin < at)
            rc = nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: tensors '%s' [%llu, %llu) and '%s' [%llu, "
                           "%llu) overlap",
                           fn, path, by[k - 1]->name, (unsigned long long)by[k - 1]->begin,
                           (unsigned long long)by[k - 1]->end, e->name,
                           (unsigned long long)e->begin, (unsigned long long)e->end);
        at = e->end;
    }
    if (rc == 0 && at != blen)
        rc = nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: bytes [%llu, %llu) of the data belong to no "
                       "tensor (after the last)",
                       fn, path, (unsigned long long)at, (unsigned long long)blen);
    nb__free(by);
    return rc;
}

/* Every entry: a consistent byte range inside the data (blen bytes), a
 * shape nabla could hold (NB_MAX_NUMEL), no name twice, the entries tiling
 * the data. Sorts the entries by name. */
static int check_entries(const char *fn, const char *path, nb_vec *v, uint64_t blen)
{
    char b[NB_SHAPE_STR_LEN], where[600];
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
        /* The element count, checked as every tensor's is (a zero size
         * does not excuse the others). */
        int64_t numel;
        snprintf(where, sizeof where, "%s: %s: tensor '%.200s'", fn, path, e->name);
        if (e->ndim <= NB_MAX_DIMS ? nb__check_shape(where, e->ndim, e->shape, &numel) < 0
                                   : e->huge)
            return e->ndim <= NB_MAX_DIMS
                       ? -1
                       : nb__error_code(NB_ERR_FORMAT, "%s: shape %s has more than 2^48 elements (NB_MAX_NUMEL)",
                                   where, entry_shape(e, b));
        size_t size = tag_size(e->dtype);
        if (!size || e->ndim > NB_MAX_DIMS)
            continue; /* never loaded: nabla cannot hold it */
        /* numel < 2^48 and size <= 8: no overflow. */
        if ((uint64_t)numel * size != e->end - e->begin)
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
    return check_tiling(fn, path, v, blen);
}

/* nabla's metadata: a format this nabla reads, a well-formed checksum. */
static int check_metadata(const char *fn, const char *path, const st_header *h, uLong *want)
{
    char fmt[16];
    snprintf(fmt, sizeof fmt, "%d", NB_SAFETENSORS_FORMAT);
    if (h->format && strcmp(h->format, fmt) != 0)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: the file is in nabla's format '%.40s'; this nabla reads "
                         "format %s (a newer nabla wrote it?)",
                         fn, path, h->format, fmt);
    if (!h->crc)
        return 0;
    bool hex = strlen(h->crc) == 8;
    for (int k = 0; hex && k < 8; k++)
        hex = (h->crc[k] >= '0' && h->crc[k] <= '9') || (h->crc[k] >= 'a' && h->crc[k] <= 'f');
    if (!hex)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt header: nabla_crc32 '%.40s' is not 8 lowercase hex "
                         "digits",
                         fn, path, h->crc);
    *want = (uLong)strtoul(h->crc, NULL, 16);
    return 0;
}

/* The CRC-32 of the data (blen bytes at at) against the header's. */
static int check_crc(const char *fn, const char *path, FILE *f, off_t at, uint64_t blen,
                     uLong want)
{
    enum { BUF = 1 << 16 };
    unsigned char *buf = nb__alloc(BUF);
    if (!buf)
        return -1;
    uLong crc = crc32(0L, Z_NULL, 0);
    int rc = 0;
    if (blen && fseeko(f, at, SEEK_SET) != 0)
        rc = nb__error_code(NB_ERR_IO, "%s: %s: cannot seek to the data: %s", fn, path, strerror(errno));
    for (uint64_t left = blen; rc == 0 && left;) {
        size_t k = left < BUF ? (size_t)left : BUF;
        if (fread(buf, 1, k, f) != k)
            rc = nb__error_code(NB_ERR_IO, "%s: %s: cannot read the data: %s", fn, path,
                           ferror(f) ? strerror(errno) : "the file is shorter than it was");
        crc = crc32(crc, buf, (uInt)k);
        left -= k;
    }
    nb__free(buf);
    if (rc == 0 && crc != want)
        rc = nb__error_code(NB_ERR_FORMAT, "%s: %s: checksum mismatch: the data's CRC-32 is %08lx, the header says "
                       "%08lx: the file is damaged",
                       fn, path, (unsigned long)crc, (unsigned long)want);
    return rc;
}

static const st_entry *find_entry(const nb_vec *v, const char *name)
{
    st_entry key = {.name = name};
    return v->n ? bsearch(&key, v->v, (size_t)v->n, sizeof key, cmp_entry) : NULL;
}

/* "'a', 'b', ..." of the file's entries (sorted by name), for messages. */
static const char *entry_list(const nb_vec *v, char *list, size_t size)
{
    const st_entry *es = v->v;
    size_t used = 0;
    list[0] = '\0';
    for (int64_t k = 0; k < v->n; k++) {
        if (used + strlen(es[k].name) + 4 + 6 > size) {
            memcpy(list + used, ", ...", 6);
            break;
        }
        used += (size_t)snprintf(list + used, size - used, "%s'%s'", k ? ", " : "", es[k].name);
    }
    return v->n ? list : "none";
}

#define PARTIAL_HINT "(.partial = true loads the tensors that match)"

static int not_in_file(const char *fn, const char *path, const nb_vec *v, const nb_tensor *t)
{
    char list[200];
    return nb__error_code(NB_ERR_FORMAT, "%s: %s: tensor '%s' is not in the file (it has %lld: %s) " PARTIAL_HINT,
                     fn, path, t->name, (long long)v->n, entry_list(v, list, sizeof list));
}

/* A requested tensor against its entry e: F32/F64 (U8 for u8), the same
 * shape, and a place where each element has memory of its own. */
static int check_request(const char *fn, const char *path, const st_entry *e, const nb_tensor *t)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    bool u8 = strcmp(e->dtype, "U8") == 0;
    if (!u8 && strcmp(e->dtype, "F32") != 0 && strcmp(e->dtype, "F64") != 0)
        return nb__error_code(NB_ERR_DTYPE, "%s: %s: tensor '%s' has dtype %s in the file; nabla loads F32, "
                         "F64 and U8",
                         fn, path, t->name, e->dtype);
    if (u8 != (t->dtype == NB_U8)) /* bytes are not converted to floats or back */
        return nb__error_code(NB_ERR_DTYPE, "%s: %s: tensor '%s' is %s in the file and %s here; U8 loads "
                         "into u8 tensors only, F32 and F64 into f32 and f64 ones",
                         fn, path, t->name, e->dtype, nb_dtype_name(t->dtype));
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

/* The requested tensors against the file's entries: each found entry into
 * found[i] (NULL: not in the file, a partial load only). Strict: the file
 * holds exactly these tensors, and in this order when nabla wrote it (it
 * writes them in the order given; other writers order them as they like).
 * The first difference is the error. */
static int match_requests(const char *fn, const char *path, const st_header *h, int n,
                          nb_tensor *const tensors[], bool partial, const st_entry **found)
{
    char b[NB_SHAPE_STR_LEN];
    const nb_vec *v = &h->e;
    const st_entry *es = v->v;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        const st_entry *e = find_entry(v, t->name);
        if (!e && !partial)
            return not_in_file(fn, path, v, t);
        if (e && !partial && h->format && e->pos != i) {
            const st_entry *there = NULL;
            for (int64_t k = 0; k < v->n && !there; k++)
                there = es[k].pos == i ? &es[k] : NULL;
            return nb__error_code(NB_ERR_FORMAT, "%s: %s: tensor %d is '%s', but the file's tensor %d is '%.200s' "
                             "('%s' is its tensor %lld) " PARTIAL_HINT,
                             fn, path, i, t->name, i, there ? there->name : "?", t->name,
                             (long long)e->pos);
        }
        if (e && check_request(fn, path, e, t) < 0)
            return -1;
        found[i] = e;
        hits += e != NULL;
    }
    if (partial) {
        if (n > 0 && hits == 0) {
            char list[200];
            return nb__error_code(NB_ERR_FORMAT, "%s: %s: none of the %d tensors asked for is in the file (it has "
                             "%lld: %s)",
                             fn, path, n, (long long)v->n, entry_list(v, list, sizeof list));
        }
        return 0;
    }
    /* Every request is in the file; the file may hold more. The first of
     * those (in the header's order) is the difference. */
    bool *used = v->n ? nb__alloc((size_t)v->n) : NULL;
    if (v->n && !used)
        return -1;
    if (v->n)
        memset(used, 0, (size_t)v->n);
    for (int i = 0; i < n; i++)
        used[found[i] - es] = true;
    const st_entry *extra = NULL;
    for (int64_t k = 0; k < v->n; k++)
        if (!used[k] && (!extra || es[k].pos < extra->pos))
            extra = &es[k];
    nb__free(used);
    if (extra)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: the file has %lld tensors, %d asked for: its tensor %lld "
                         "'%.200s' %s %s is not asked for " PARTIAL_HINT,
                         fn, path, (long long)v->n, n, (long long)extra->pos, extra->name,
                         extra->dtype, entry_shape(extra, b));
    return 0;
}

/* Reads tensor t's bytes from f at its offset, converting as needed, and
 * through t's strides when it is a view. */
static int read_tensor(FILE *f, off_t at, const st_entry *e, nb_tensor *t)
{
    size_t fes = tag_size(e->dtype), tes = nb__dtype_size(t->dtype);
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

/* The file's header, read and parsed into h (fsize: the file's size);
 * 0 or -1. */
static int read_head(const char *fn, const char *path, FILE *f, uint64_t fsize, st_header *h,
                     uint64_t *hlen)
{
    unsigned char len8[8];
    if (fsize < 8 || fread(len8, 1, 8, f) != 8)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated file: %llu bytes, the header length alone takes 8",
                         fn, path, (unsigned long long)fsize);
    *hlen = 0;
    for (int k = 7; k >= 0; k--)
        *hlen = *hlen << 8 | len8[k];
    if (*hlen > MAX_HEADER)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: header length %llu is over the limit of %d bytes: not a "
                         "safetensors file?",
                         fn, path, (unsigned long long)*hlen, MAX_HEADER);
    if (*hlen > fsize - 8)
        return nb__error_code(NB_ERR_FORMAT, "%s: %s: truncated file: header length %llu, but only %llu bytes "
                         "follow",
                         fn, path, (unsigned long long)*hlen, (unsigned long long)(fsize - 8));
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
    return check_entries(fn, path, &h->e, fsize - 8 - *hlen);
}

int nb_load_safetensors_(nb_load_args a)
{
    static const char fn[] = "nb_load_safetensors";
    char b[NB_SHAPE_STR_LEN];
    const char *path = a.path;
    int n = a.n;
    nb_tensor *const *tensors = a.tensors;
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

    struct stat st;
    int fd = nb__open_read(fn, path, &st);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return nb__error_code(NB_ERR_IO, "%s: %s: cannot open: %s", fn, path, strerror(errno));
    }
    st_header h = {.e = {.elem = sizeof(st_entry)}, .meta = {.elem = sizeof(nb_metadata)}};
    const st_entry **found = n ? nb__alloc((size_t)n * sizeof *found) : NULL;
    uint64_t fsize = (uint64_t)st.st_size, hlen = 0;
    uLong want = 0;
    int rc = -1;
    if ((n && !found) || read_head(fn, path, f, fsize, &h, &hlen) < 0 ||
        check_metadata(fn, path, &h, &want) < 0 ||
        (a.on_metadata && a.on_metadata((int)h.meta.n, h.meta.v, a.ctx) < 0) ||
        match_requests(fn, path, &h, n, tensors, a.partial, found) < 0)
        goto out;
    if (h.crc && check_crc(fn, path, f, (off_t)(8 + hlen), fsize - 8 - hlen, want) < 0)
        goto out;

    /* Only now write into the tensors. */
    for (int i = 0; i < n; i++) {
        nb_tensor *t = tensors[i];
        const st_entry *e = found[i];
        if (!e)
            continue;
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
    nb__free(found);
    nb__free(h.j.s);
    nb__vec_free(&h.e);
    nb__vec_free(&h.meta);
    return rc;
}
