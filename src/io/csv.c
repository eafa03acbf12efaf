/* Numeric CSV tables.
 *
 * What is read: comma-separated cells, one row per line ("\n" or "\r\n"),
 * every cell a number as C's strtod reads it in the "C" locale (whatever
 * locale the program set), spaces and tabs around a cell ignored. A first
 * line with any cell that is not a number is a header and is skipped. A
 * UTF-8 byte-order mark at the start is skipped. Blank lines at the end are
 * fine; a blank line between rows is an error (it usually means a broken
 * file). Quoted cells are not supported.
 *
 * Every row must have as many cells as the first line. Errors name the
 * line and column (both counted from 1).
 *
 * The whole file is read into memory, checked in a first pass (counting the
 * rows), then converted in a second pass into the two tensors, whose shape
 * goes through the check of every tensor (NB_MAX_NUMEL). The file is opened
 * through nb__open_read (file.h): a FIFO or a device is refused without
 * blocking. */
#define _POSIX_C_SOURCE 200809L
#include "file.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct csv {
    const char *path;
    char *text; /* the file, NUL-terminated */
    size_t len;
    bool header;
    int64_t ncols, nrows;
    int64_t label; /* normalised label column */
    float *x, *y;  /* second pass: where values go */
} csv;

#define FN "nb_read_csv"

static int read_all(const char *path, char **out, size_t *len)
{
    *out = NULL;
    int fd = nb__open_read(FN, path, NULL);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return nb__error_code(NB_ERR_IO, FN ": %s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = nb__alloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1)
            break;
        char *bigger = nb__alloc(cap * 2);
        if (bigger)
            memcpy(bigger, buf, n);
        nb__free(buf);
        buf = bigger;
        cap *= 2;
    }
    if (buf && ferror(f)) {
        int e = errno;
        nb__free(buf);
        fclose(f);
        return nb__error_code(NB_ERR_IO, FN ": %s: read error: %s", path, strerror(e));
    }
    fclose(f);
    if (!buf)
        return -1;
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Parses a trimmed cell [s, e) as a number. */
static bool parse_number(const char *s, const char *e, double *v)
{
    if (s == e)
        return false;
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end == e;
}

/* Quotes a cell for a message (at most 40 characters). */
static const char *cell_str(const char *s, const char *e, char *buf)
{
    int n = (int)(e - s);
    if (n > 40)
        snprintf(buf, 64, "'%.37s...'", s);
    else
        snprintf(buf, 64, "'%.*s'", n, s);
    return buf;
}

/* One pass over the text: checks (first pass, c->x NULL) or stores. */
static int parse(csv *c)
{
    const char *p = c->text, *end = c->text + c->len;
    if (c->len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    int64_t line = 0, row = 0, blank = 0;
    char b[64];
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *next = eol < end ? eol + 1 : end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        line++;
        const char *q = p;
        while (q < eol && is_blank(*q))
            q++;
        if (q == eol) { /* a blank line: fine only if nothing follows */
            if (!blank)
                blank = line;
            p = next;
            continue;
        }
        if (blank)
            return nb__error_code(NB_ERR_FORMAT, FN ": %s: line %lld is empty", c->path, (long long)blank);

        /* Split into cells, check (and store) them. */
        bool first = line == 1 && !c->x;
        int64_t col = 0, fcol = 0;
        bool numeric = true;
        const char *bad_s = NULL, *bad_e = NULL;
        int64_t bad_col = 0;
        for (const char *s = p;; col++) {
            const char *e = memchr(s, ',', (size_t)(eol - s));
            const char *ce = e ? e : eol;
            const char *ts = s, *te = ce;
            while (ts < te && is_blank(*ts))
                ts++;
            while (te > ts && is_blank(te[-1]))
                te--;
            double v = 0;
            bool ok = parse_number(ts, te, &v);
            if (ok && isfinite(v) && fabs(v) > FLT_MAX)
                ok = false;
            if (!ok && numeric) {
                numeric = false;
                bad_s = ts, bad_e = te, bad_col = col;
            }
            if (c->x && !(c->header && line == 1)) {
                if (col == c->label)
                    c->y[row] = (float)v;
                else
                    c->x[row * (c->ncols - 1) + fcol++] = (float)v;
            }
            if (!e)
                break;
            s = e + 1;
        }
        col++;
        if (first) {
            c->ncols = col;
            c->header = !numeric;
        } else if (!c->x) {
            if (col != c->ncols)
                return nb__error_code(NB_ERR_FORMAT, FN ": %s: line %lld has %lld columns, line 1%s has %lld",
                                 c->path, (long long)line, (long long)col,
                                 c->header ? " (the header)" : "", (long long)c->ncols);
            if (!numeric) {
                if (bad_s == bad_e)
                    return nb__error_code(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld: empty cell", c->path,
                                     (long long)line, (long long)bad_col + 1);
                double v;
                if (parse_number(bad_s, bad_e, &v))
                    return nb__error_code(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld: %s does not fit in "
                                     "f32",
                                     c->path, (long long)line, (long long)bad_col + 1,
                                     cell_str(bad_s, bad_e, b));
                return nb__error_code(NB_ERR_FORMAT, FN ": %s: line %lld, column %lld: %s is not a number",
                                 c->path, (long long)line, (long long)bad_col + 1,
                                 cell_str(bad_s, bad_e, b));
            }
        }
        if (!(c->header && line == 1))
            row++;
        p = next;
    }
    c->nrows = row;
    return 0;
}

int nb_read_csv(const char *path, int label_column, nb_tensor **features,
                nb_tensor **labels)
{
    if (features)
        *features = NULL;
    if (labels)
        *labels = NULL;
    if (!path)
        return nb__error(FN ": path is NULL");
    if (!features || !labels)
        return nb__error(FN ": %s: %s output pointer is NULL", path,
                         features ? "labels" : "features");
    csv c = {.path = path};
    if (read_all(path, &c.text, &c.len) < 0)
        return -1;

    /* The C locale for strtod (a program may have set one with a decimal
     * comma); uselocale is per thread. */
    locale_t cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    locale_t old = cloc ? uselocale(cloc) : (locale_t)0;

    int rc = -1;
    nb_tensor *x = NULL, *y = NULL;
    c.label = -1;
    if (parse(&c) < 0)
        goto out;
    if (c.nrows == 0) {
        nb__error_code(NB_ERR_FORMAT, FN ": %s: no data rows%s", path, c.header ? " after the header" : "");
        goto out;
    }
    if (c.ncols < 2) {
        nb__error_code(NB_ERR_FORMAT, FN ": %s: one column only: a label and at least one feature are needed",
                  path);
        goto out;
    }
    int64_t lc = label_column < 0 ? label_column + c.ncols : label_column;
    if (lc < 0 || lc >= c.ncols) {
        nb__error(FN ": %s: label_column %d is out of range for %lld columns", path,
                  label_column, (long long)c.ncols);
        goto out;
    }
    c.label = lc;
    x = nb__new_heap_tensor("nb_read_csv", NB_F32, NB_SHAPE(c.nrows, c.ncols - 1));
    y = nb__new_heap_tensor("nb_read_csv", NB_F32, NB_SHAPE(c.nrows));
    if (!x || !y)
        goto out;
    c.x = nb__ptr(x);
    c.y = nb__ptr(y);
    parse(&c); /* cannot fail: the first pass checked everything */
    *features = x;
    *labels = y;
    x = y = NULL;
    rc = 0;
out:
    if (cloc) {
        uselocale(old);
        freelocale(cloc);
    }
    nb_free(x);
    nb_free(y);
    nb__free(c.text);
    return rc;
}
