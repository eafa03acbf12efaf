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
 * name; the format allows any order and every reader accepts both.) The
 * file is written to "<path>.tmp.<pid>" in the same folder, flushed and
 * fsync'ed, then renamed over path, so path holds either the old file or
 * the whole new one; on any failure the temporary file is removed.
 *
 * Loading parses the header with the small strict JSON parser below,
 * checks every entry (dtype size times shape equals the byte range, the
 * range inside the buffer), then checks every requested tensor (present,
 * F32 or F64, the same shape) before writing anything: a failed load leaves
 * the tensors as they were, except for I/O errors in the middle of reading
 * the data. Tensors of other dtypes (F16, BF16, I64, ...) may be in the
 * file as long as they are not requested. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"

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

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
 * Returns the offset of the first bad byte, or n. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return i;
        }
        if (n - i < len)
            return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            c = c << 6 | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return i;
        i += len;
    }
    return n;
}

static const char *dtype_tag(nb_dtype d) { return d == NB_F64 ? "F64" : "F32"; }

/* ---- saving ---- */

/* A growing text buffer; a failed allocation sets failed (error already set). */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = nb__alloc(cap);
        if (!p) {
            b->failed = true;
            return;
        }
        if (b->len)
            memcpy(p, b->p, b->len);
        nb__free(b->p);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char t[24];
    int k = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    sb_put(b, t, (size_t)k);
}

/* A JSON string literal: quotes, backslashes and control characters escaped
 * (as serde_json does); other bytes, UTF-8 included, as they are. */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char t[8];
        switch (*p) {
        case '"':
            sb_str(b, "\\\"");
            break;
        case '\\':
            sb_str(b, "\\\\");
            break;
        case '\b':
            sb_str(b, "\\b");
            break;
        case '\f':
            sb_str(b, "\\f");
            break;
        case '\n':
            sb_str(b, "\\n");
            break;
        case '\r':
            sb_str(b, "\\r");
            break;
        case '\t':
            sb_str(b, "\\t");
            break;
        default:
            if (*p < 0x20) {
                snprintf(t, sizeof t, "\\u%04x", *p);
                sb_str(b, t);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_name_idx(const void *a, const void *b)
{
    const nb_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Writes count elements of t's data little-endian. 0 or -1 (errno set). */
static int write_data(FILE *f, const nb_tensor *t)
{
    size_t es = nb__dtype_size(t->dtype), count = (size_t)t->numel;
    if (host_is_le())
        return fwrite(nb__ptr(t), es, count, f) == count ? 0 : -1;
    unsigned char buf[8192];
    const unsigned char *src = nb__ptr(t);
    while (count) {
        size_t k = count < sizeof buf / es ? count : sizeof buf / es;
        memcpy(buf, src, k * es);
        swap_each(buf, k, es);
        if (fwrite(buf, es, k, f) != k)
            return -1;
        src += k * es;
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

int nb_save_safetensors(const char *path, int n, nb_tensor *const tensors[])
{
    static const char fn[] = "nb_save_safetensors";
    char b[96];
    if (!path)
        return nb__error("%s: path is NULL", fn);
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
        size_t len = strlen(t->name);
        if (utf8_check((const unsigned char *)t->name, len) != len)
            return nb__error("%s: %s: tensor %d: its name is not valid UTF-8", fn, path, i);
    }

    /* Distinct names: sort a copy of the pointers. */
    if (n > 1) {
        nb_tensor **sorted = nb__alloc((size_t)n * sizeof *sorted);
        if (!sorted)
            return -1;
        memcpy(sorted, tensors, (size_t)n * sizeof *sorted);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_name_idx);
        for (int i = 1; i < n; i++)
            if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
                nb__error("%s: %s: two tensors are named '%s'", fn, path, sorted[i]->name);
                nb__free(sorted);
                return -1;
            }
        nb__free(sorted);
    }

    /* The header: compact JSON as the reference writes it, then spaces. */
    sbuf h = {0};
    uint64_t off = 0;
    sb_str(&h, "{");
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        uint64_t bytes = (uint64_t)t->numel * nb__dtype_size(t->dtype);
        if (i)
            sb_str(&h, ",");
        sb_json_string(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, dtype_tag(t->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d)
                sb_str(&h, ",");
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, off);
        sb_str(&h, ",");
        sb_u64(&h, off + bytes);
        sb_str(&h, "]}");
        off += bytes;
    }
    sb_str(&h, "}");
    while (!h.failed && h.len % 8)
        sb_str(&h, " ");
    if (h.failed)
        return -1;
    if (h.len > MAX_HEADER) {
        nb__free(h.p);
        return nb__error("%s: %s: the header would be %zu bytes, more than readers accept "
                         "(%d)",
                         fn, path, h.len, MAX_HEADER);
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
        nb__error("%s: %s: cannot create %s: %s", fn, path, tmp, strerror(errno));
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
        len8[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(h.p, 1, h.len, f) != h.len)
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
    nb__error("%s: %s: %s %s failed: %s", fn, path, step, tmp, strerror(err));
    nb__free(tmp);
    nb__free(h.p);
    return -1;
}

/* ---- loading: a small strict JSON parser ---- */

typedef struct st_entry {
    const char *name; /* decoded in place inside the header, NUL-terminated */
    const char *dtype;
    int ndim; /* as in the file; shape holds the first NB_MAX_DIMS */
    int64_t shape[NB_MAX_DIMS];
    uint64_t begin, end;
} st_entry;

typedef struct jp {
    char *s; /* the header text; strings are decoded in place */
    size_t n, i;
    const char *fn, *path;
    st_entry *e;
    size_t ne, cap;
} jp;

static int jp_fail(jp *p, const char *what)
{
    nb__error("%s: %s: corrupt header (JSON) at byte %zu: %s", p->fn, p->path, p->i, what);
    return -1;
}

static void jp_ws(jp *p)
{
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

/* Skips whitespace and consumes c. */
static int jp_expect(jp *p, char c)
{
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return 0;
    }
    char msg[32];
    snprintf(msg, sizeof msg, "expected '%c'", c);
    return jp_fail(p, p->i < p->n ? msg : "unexpected end of header");
}

/* After a member or element: 1 on ',', 0 on the closing bracket, -1 else. */
static int jp_more(jp *p, char close)
{
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == ',') {
        p->i++;
        return 1;
    }
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        return 0;
    }
    if (p->i >= p->n)
        return jp_fail(p, "unexpected end of header");
    return jp_fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return -1;
        *v = *v << 4 | d;
    }
    return 0;
}

/* A string; decoded (escapes resolved, UTF-8) in place and NUL-terminated.
 * The text was checked to be UTF-8 already. \u0000 is refused. */
static int jp_string(jp *p, char **out)
{
    jp_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"')
        return jp_fail(p, p->i < p->n ? "expected a string" : "unexpected end of header");
    p->i++;
    char *w = p->s + p->i, *start = w;
    for (;;) {
        if (p->i >= p->n)
            return jp_fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            break;
        }
        if (c < 0x20)
            return jp_fail(p, "control character in a string");
        if (c != '\\') {
            *w++ = (char)c;
            p->i++;
            continue;
        }
        if (p->i + 1 >= p->n)
            return jp_fail(p, "unterminated string");
        char e = p->s[p->i + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            *w++ = to[simple - "\"\\/bfnrt"];
            p->i += 2;
            continue;
        }
        if (e != 'u')
            return jp_fail(p, "invalid escape in a string");
        unsigned cp, lo;
        if (p->i + 6 > p->n || hex4(p->s + p->i + 2, &cp) < 0)
            return jp_fail(p, "invalid \\u escape");
        size_t used = 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return jp_fail(p, "unpaired surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (p->i + 12 > p->n || p->s[p->i + 6] != '\\' || p->s[p->i + 7] != 'u' ||
                hex4(p->s + p->i + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                return jp_fail(p, "unpaired surrogate in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            used = 12;
        }
        if (cp == 0)
            return jp_fail(p, "\\u0000 in a string");
        /* At most 4 bytes out for 6 or 12 in: the write stays behind. */
        if (cp < 0x80) {
            *w++ = (char)cp;
        } else if (cp < 0x800) {
            *w++ = (char)(0xC0 | cp >> 6);
            *w++ = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            *w++ = (char)(0xE0 | cp >> 12);
            *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *w++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *w++ = (char)(0xF0 | cp >> 18);
            *w++ = (char)(0x80 | (cp >> 12 & 0x3F));
            *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
            *w++ = (char)(0x80 | (cp & 0x3F));
        }
        p->i += used;
    }
    *w = '\0'; /* at or before the closing quote, already consumed */
    *out = start;
    return 0;
}

/* A non-negative integer below 2^63, in strict JSON form. */
static int jp_uint(jp *p, uint64_t *v)
{
    jp_ws(p);
    size_t i = p->i;
    if (i < p->n && p->s[i] == '-')
        return jp_fail(p, "expected a non-negative integer");
    if (i >= p->n || p->s[i] < '0' || p->s[i] > '9')
        return jp_fail(p, p->i < p->n ? "expected an integer" : "unexpected end of header");
    if (p->s[i] == '0' && i + 1 < p->n && p->s[i + 1] >= '0' && p->s[i + 1] <= '9')
        return jp_fail(p, "leading zero in a number");
    uint64_t x = 0;
    while (i < p->n && p->s[i] >= '0' && p->s[i] <= '9') {
        unsigned d = (unsigned)(p->s[i] - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            return jp_fail(p, "integer too large");
        x = x * 10 + d;
        i++;
    }
    if (i < p->n && (p->s[i] == '.' || p->s[i] == 'e' || p->s[i] == 'E'))
        return jp_fail(p, "expected an integer");
    p->i = i;
    *v = x;
    return 0;
}

/* Any JSON value (for "__metadata__" and keys nabla does not use). */
static int jp_skip(jp *p, int depth)
{
    if (depth > 64)
        return jp_fail(p, "nested too deeply");
    jp_ws(p);
    if (p->i >= p->n)
        return jp_fail(p, "unexpected end of header");
    char c = p->s[p->i];
    char *str = NULL;
    int more;
    if (c == '"')
        return jp_string(p, &str);
    if (c == '{') {
        p->i++;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return 0;
        }
        do {
            if (jp_string(p, &str) < 0 || jp_expect(p, ':') < 0 || jp_skip(p, depth + 1) < 0)
                return -1;
        } while ((more = jp_more(p, '}')) == 1);
        return more;
    }
    if (c == '[') {
        p->i++;
        jp_ws(p);
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return 0;
        }
        do {
            if (jp_skip(p, depth + 1) < 0)
                return -1;
        } while ((more = jp_more(p, ']')) == 1);
        return more;
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (p->n - p->i >= l && memcmp(p->s + p->i, lits[k], l) == 0) {
            p->i += l;
            return 0;
        }
    }
    /* A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
    size_t i = p->i;
#define DIGIT(k) ((k) < p->n && p->s[k] >= '0' && p->s[k] <= '9')
    if (i < p->n && p->s[i] == '-')
        i++;
    if (!DIGIT(i))
        return jp_fail(p, "expected a value");
    if (p->s[i] == '0')
        i++;
    else
        while (DIGIT(i))
            i++;
    if (i < p->n && p->s[i] == '.') {
        if (!DIGIT(i + 1))
            return jp_fail(p, "bad number");
        i++;
        while (DIGIT(i))
            i++;
    }
    if (i < p->n && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->n && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (!DIGIT(i))
            return jp_fail(p, "bad number");
        while (DIGIT(i))
            i++;
    }
#undef DIGIT
    p->i = i;
    return 0;
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} */
static int jp_entry(jp *p, st_entry *e)
{
    bool have[3] = {false, false, false};
    int more;
    if (jp_expect(p, '{') < 0)
        return -1;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        more = 0;
    } else {
        do {
            char *key = NULL;
            if (jp_string(p, &key) < 0 || jp_expect(p, ':') < 0)
                return -1;
            int k = strcmp(key, "dtype") == 0          ? 0
                    : strcmp(key, "shape") == 0        ? 1
                    : strcmp(key, "data_offsets") == 0 ? 2
                                                       : -1;
            if (k >= 0 && have[k])
                return jp_fail(p, "repeated key in a tensor entry");
            if (k == 0) {
                char *dt = NULL;
                if (jp_string(p, &dt) < 0)
                    return -1;
                e->dtype = dt;
            } else if (k == 1) {
                if (jp_expect(p, '[') < 0)
                    return -1;
                e->ndim = 0;
                jp_ws(p);
                if (p->i < p->n && p->s[p->i] == ']') {
                    p->i++;
                } else {
                    int m;
                    do {
                        uint64_t d = 0;
                        if (jp_uint(p, &d) < 0)
                            return -1;
                        if (e->ndim < NB_MAX_DIMS)
                            e->shape[e->ndim] = (int64_t)d;
                        if (e->ndim == 1000000)
                            return jp_fail(p, "too many dimensions");
                        e->ndim++;
                    } while ((m = jp_more(p, ']')) == 1);
                    if (m < 0)
                        return -1;
                }
            } else if (k == 2) {
                if (jp_expect(p, '[') < 0 || jp_uint(p, &e->begin) < 0 ||
                    jp_expect(p, ',') < 0 || jp_uint(p, &e->end) < 0 ||
                    jp_expect(p, ']') < 0)
                    return -1;
            } else if (jp_skip(p, 1) < 0) {
                return -1;
            }
            if (k >= 0)
                have[k] = true;
        } while ((more = jp_more(p, '}')) == 1);
    }
    if (more < 0)
        return -1;
    static const char *const keys[] = {"dtype", "shape", "data_offsets"};
    for (int k = 0; k < 3; k++)
        if (!have[k])
            return nb__error("%s: %s: corrupt header: tensor '%s' has no \"%s\"", p->fn,
                             p->path, e->name, keys[k]);
    return 0;
}

static int jp_header(jp *p)
{
    int more;
    if (jp_expect(p, '{') < 0)
        return -1;
    jp_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        more = 0;
    } else {
        do {
            char *key = NULL;
            if (jp_string(p, &key) < 0 || jp_expect(p, ':') < 0)
                return -1;
            if (strcmp(key, "__metadata__") == 0) {
                if (jp_skip(p, 1) < 0)
                    return -1;
                continue;
            }
            if (p->ne == p->cap) {
                size_t cap = p->cap ? 2 * p->cap : 16;
                st_entry *e = nb__alloc(cap * sizeof *e);
                if (!e)
                    return -1;
                if (p->ne)
                    memcpy(e, p->e, p->ne * sizeof *e);
                nb__free(p->e);
                p->e = e;
                p->cap = cap;
            }
            st_entry *e = &p->e[p->ne++];
            memset(e, 0, sizeof *e);
            e->name = key;
            if (jp_entry(p, e) < 0)
                return -1;
        } while ((more = jp_more(p, '}')) == 1);
    }
    if (more < 0)
        return -1;
    jp_ws(p);
    if (p->i != p->n)
        return jp_fail(p, "unexpected text after the header object");
    return 0;
}

/* ---- loading ---- */

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
        snprintf(buf, 96, "(%d dimensions)", e->ndim);
        return buf;
    }
    return nb_dims_str(e->ndim, e->shape, buf);
}

/* Reads tensor t's bytes from f at its offset, converting as needed. */
static int read_tensor(FILE *f, off_t at, const st_entry *e, nb_tensor *t)
{
    size_t fes = strcmp(e->dtype, "F64") == 0 ? 8 : 4, tes = nb__dtype_size(t->dtype);
    size_t count = (size_t)t->numel;
    if (count == 0)
        return 0;
    if (fseeko(f, at, SEEK_SET) != 0)
        return -1;
    if (fes == tes) {
        if (fread(nb__ptr(t), tes, count, f) != count)
            return -1;
        if (!host_is_le())
            swap_each(nb__ptr(t), count, tes);
        return 0;
    }
    unsigned char buf[8192];
    size_t done = 0;
    while (done < count) {
        size_t k = count - done < sizeof buf / fes ? count - done : sizeof buf / fes;
        if (fread(buf, fes, k, f) != k)
            return -1;
        if (!host_is_le())
            swap_each(buf, k, fes);
        for (size_t j = 0; j < k; j++) {
            if (fes == 8) {
                double v;
                memcpy(&v, buf + 8 * j, 8);
                ((float *)nb__ptr(t))[done + j] = (float)v;
            } else {
                float v;
                memcpy(&v, buf + 4 * j, 4);
                ((double *)nb__ptr(t))[done + j] = v;
            }
        }
        done += k;
    }
    return 0;
}

int nb_load_safetensors(const char *path, int n, nb_tensor *const tensors[])
{
    static const char fn[] = "nb_load_safetensors";
    char b[96], c[96];
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
        return nb__error("%s: %s: cannot open: %s", fn, path, strerror(errno));
    jp p = {.fn = fn, .path = path};
    int rc = -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        nb__error("%s: %s: cannot stat: %s", fn, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        nb__error("%s: %s: not a regular file", fn, path);
        goto out;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    unsigned char len8[8];
    if (fsize < 8 || fread(len8, 1, 8, f) != 8) {
        nb__error("%s: %s: truncated file: %llu bytes, the header length alone takes 8", fn,
                  path, (unsigned long long)fsize);
        goto out;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | len8[k];
    if (hlen > MAX_HEADER) {
        nb__error("%s: %s: header length %llu is over the limit of %d bytes: not a "
                  "safetensors file?",
                  fn, path, (unsigned long long)hlen, MAX_HEADER);
        goto out;
    }
    if (hlen > fsize - 8) {
        nb__error("%s: %s: truncated file: header length %llu, but only %llu bytes follow",
                  fn, path, (unsigned long long)hlen, (unsigned long long)(fsize - 8));
        goto out;
    }
    p.n = (size_t)hlen;
    p.s = nb__alloc(p.n + 1);
    if (!p.s)
        goto out;
    if (fread(p.s, 1, p.n, f) != p.n) {
        nb__error("%s: %s: cannot read the header: %s", fn, path,
                  ferror(f) ? strerror(errno) : "file shrank");
        goto out;
    }
    p.s[p.n] = '\0';
    size_t bad = utf8_check((const unsigned char *)p.s, p.n);
    if (bad != p.n) {
        p.i = bad;
        jp_fail(&p, "invalid UTF-8");
        goto out;
    }
    if (jp_header(&p) < 0)
        goto out;

    /* Every entry: a consistent byte range inside the buffer. */
    uint64_t blen = fsize - 8 - hlen;
    for (size_t k = 0; k < p.ne; k++) {
        const st_entry *e = &p.e[k];
        if (e->begin > e->end) {
            nb__error("%s: %s: corrupt header: tensor '%s' has data_offsets [%llu, %llu) "
                      "that run backwards",
                      fn, path, e->name, (unsigned long long)e->begin,
                      (unsigned long long)e->end);
            goto out;
        }
        if (e->end > blen) {
            nb__error("%s: %s: truncated file: tensor '%s' needs bytes [%llu, %llu) of the "
                      "data, which has %llu",
                      fn, path, e->name, (unsigned long long)e->begin,
                      (unsigned long long)e->end, (unsigned long long)blen);
            goto out;
        }
        size_t es = tag_size(e->dtype);
        if (!es)
            continue;
        /* numel * es must equal end - begin (< 2^63): stop once past it. */
        uint64_t bytes = es;
        for (int d = 0; d < e->ndim && d < NB_MAX_DIMS; d++) {
            uint64_t dim = (uint64_t)e->shape[d];
            bytes = dim && bytes > UINT64_MAX / 2 / dim ? UINT64_MAX / 2 : bytes * dim;
        }
        if (e->ndim > NB_MAX_DIMS)
            bytes = e->end - e->begin; /* never requested: nabla cannot hold it */
        if (bytes != e->end - e->begin) {
            nb__error("%s: %s: corrupt header: tensor '%s' is %s %s but data_offsets "
                      "[%llu, %llu) hold %llu bytes",
                      fn, path, e->name, e->dtype, entry_shape(e, b),
                      (unsigned long long)e->begin, (unsigned long long)e->end,
                      (unsigned long long)(e->end - e->begin));
            goto out;
        }
    }
    if (p.ne)
        qsort(p.e, p.ne, sizeof *p.e, cmp_entry);
    for (size_t k = 1; k < p.ne; k++)
        if (strcmp(p.e[k - 1].name, p.e[k].name) == 0) {
            nb__error("%s: %s: corrupt header: tensor '%s' appears twice", fn, path,
                      p.e[k].name);
            goto out;
        }

    /* Every requested tensor: present, F32/F64, the same shape. */
    for (int i = 0; i < n; i++) {
        const nb_tensor *t = tensors[i];
        st_entry key = {.name = t->name};
        const st_entry *e = p.ne ? bsearch(&key, p.e, p.ne, sizeof *p.e, cmp_entry) : NULL;
        if (!e) {
            char list[200] = "";
            size_t used = 0;
            for (size_t k = 0; k < p.ne; k++) {
                if (used + strlen(p.e[k].name) + 4 + 6 > sizeof list) {
                    memcpy(list + used, ", ...", 6);
                    break;
                }
                used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'",
                                         k ? ", " : "", p.e[k].name);
            }
            nb__error("%s: %s: tensor '%s' is not in the file (it has %zu: %s)", fn, path,
                      t->name, p.ne, p.ne ? list : "none");
            goto out;
        }
        if (strcmp(e->dtype, "F32") != 0 && strcmp(e->dtype, "F64") != 0) {
            nb__error("%s: %s: tensor '%s' has dtype %s in the file; nabla loads F32 and F64",
                      fn, path, t->name, e->dtype);
            goto out;
        }
        bool same = e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = e->shape[d] == t->shape[d];
        if (!same) {
            nb__error("%s: %s: tensor '%s' has shape %s in the file, %s expected", fn, path,
                      t->name, entry_shape(e, b), nb_shape_str(t, c));
            goto out;
        }
    }

    /* Only now write into the tensors. */
    for (int i = 0; i < n; i++) {
        nb_tensor *t = tensors[i];
        st_entry key = {.name = t->name};
        const st_entry *e = bsearch(&key, p.e, p.ne, sizeof *p.e, cmp_entry);
        if (read_tensor(f, (off_t)(8 + hlen + e->begin), e, t) < 0) {
            nb__error("%s: %s: tensor '%s': read failed: %s", fn, path, t->name,
                      ferror(f) ? strerror(errno) : "the file is shorter than it was");
            goto out;
        }
        nb__bump(t);
    }
    rc = 0;
out:
    fclose(f);
    nb__free(p.s);
    nb__free(p.e);
    return rc;
}
