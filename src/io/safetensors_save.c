/* Writing safetensors files (the format: safetensors.c). */
#define _POSIX_C_SOURCE 200809L
#include "file.h"
#include "json.h"
#include "safetensors.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

static const char *dtype_tag(nb_dtype d) { return d == NB_F64 ? "F64" : d == NB_U8 ? "U8" : "F32"; }

static int cmp_name_idx(const void *a, const void *b)
{
    const nb_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* The CRC-32 of n more bytes (zlib takes at most 4 GB per call). */
static uLong crc_more(uLong crc, const unsigned char *p, size_t n)
{
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

/* Writes t's elements little-endian in row-major order, adding them to
 * *crc. 0 or -1 (errno set). */
static int write_data(FILE *f, const nb_tensor *t, uLong *crc)
{
    size_t es = nb__dtype_size(t->dtype), count = (size_t)t->numel;
    if (t->contiguous && host_is_le()) {
        *crc = crc_more(*crc, nb__ptr(t), es * count);
        return fwrite(nb__ptr(t), es, count, f) == count ? 0 : -1;
    }
    unsigned char buf[CHUNK];
    const unsigned char *base = nb__ptr(t);
    cursor c = {.t = t};
    while (count) {
        size_t k = count < CHUNK / es ? count : CHUNK / es;
        for (size_t j = 0; j < k; j++)
            memcpy(buf + j * es, base + next(&c) * (int64_t)es, es);
        if (!host_is_le())
            swap_each(buf, k, es);
        *crc = crc_more(*crc, buf, k * es);
        if (fwrite(buf, es, k, f) != k)
            return -1;
        count -= k;
    }
    return 0;
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

/* One metadata string: there, and UTF-8. */
static int check_string(const char *fn, const char *path, int i, const char *what,
                        const char *s)
{
    if (!s)
        return nb__error("%s: %s: metadata %d: its %s is NULL", fn, path, i, what);
    size_t len = strlen(s), bad = nb__json_utf8_prefix(s, len);
    if (bad != len)
        return nb__error("%s: %s: metadata %d: its %s is not valid UTF-8 (byte %zu is 0x%02x)",
                         fn, path, i, what, bad, (unsigned char)s[bad]);
    return 0;
}

/* The metadata of a save: strings, keys distinct and not nabla's own. */
static int check_metadata(const char *fn, const char *path, int n, const nb_metadata *m)
{
    if (n < 0)
        return nb__error("%s: %s: nmetadata is %d", fn, path, n);
    if (n > 0 && !m)
        return nb__error("%s: %s: metadata is NULL", fn, path);
    for (int i = 0; i < n; i++) {
        if (check_string(fn, path, i, "key", m[i].key) < 0 ||
            check_string(fn, path, i, "value", m[i].value) < 0)
            return -1;
        if (strcmp(m[i].key, "nabla_format") == 0 || strcmp(m[i].key, "nabla_crc32") == 0)
            return nb__error("%s: %s: metadata %d: the key '%s' is nabla's own", fn, path, i,
                             m[i].key);
        for (int k = 0; k < i; k++) /* a few entries: pairs are cheap */
            if (strcmp(m[k].key, m[i].key) == 0)
                return nb__error("%s: %s: metadata %d and %d have the same key '%s'", fn, path,
                                 k, i, m[i].key);
    }
    return 0;
}

#define CRC_KEY "\"nabla_crc32\":\""

int nb_save_safetensors_(nb_save_args a)
{
    static const char fn[] = "nb_save_safetensors";
    const char *path = a.path;
    int n = a.n;
    nb_tensor *const *tensors = a.tensors;
    if (!path)
        return nb__error("%s: path is NULL", fn);
    if (check_save(fn, path, n, tensors) < 0 ||
        check_metadata(fn, path, a.nmetadata, a.metadata) < 0)
        return -1;

    /* The header: compact JSON as the reference writes it, then spaces.
     * The CRC is a placeholder of fixed width until the data is written. */
    nb_sbuf h = {0};
    uint64_t off = 0;
    nb__sb_printf(&h, "{\"__metadata__\":{\"nabla_format\":\"%d\"," CRC_KEY,
                  NB_SAFETENSORS_FORMAT);
    size_t crc_at = h.n;
    nb__sb_puts(&h, "00000000\"");
    for (int i = 0; i < a.nmetadata; i++) {
        nb__sb_puts(&h, ",");
        nb__json_put_string(&h, a.metadata[i].key);
        nb__sb_puts(&h, ":");
        nb__json_put_string(&h, a.metadata[i].value);
    }
    nb__sb_puts(&h, "}");
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        uint64_t bytes = (uint64_t)t->numel * nb__dtype_size(t->dtype);
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

    nb_save s;
    if (nb__save_open(&s, fn, path) < 0) {
        nb__free(h.p);
        return -1;
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    uLong crc = crc32(0L, Z_NULL, 0);
    bool ok = fwrite(len8, 1, 8, s.f) == 8 && fwrite(h.p, 1, h.n, s.f) == h.n;
    for (int i = 0; ok && i < n; i++)
        ok = write_data(s.f, tensors[i], &crc) == 0;
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)(crc & 0xffffffffu));
    ok = ok && fflush(s.f) == 0 &&
         pwrite(fileno(s.f), hex, 8, (off_t)(8 + crc_at)) == 8;
    nb__free(h.p);
    if (!ok) {
        nb__error_code(NB_ERR_IO, "%s: %s: writing %s failed: %s", fn, path, s.tmp, strerror(errno));
        nb__save_abort(&s);
        return -1;
    }
    return nb__save_commit(&s);
}
