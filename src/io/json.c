/* The strict JSON reader and the string writer of json.h. */
#include "json.h"

#include <stdio.h>

size_t nb__json_utf8_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    while (i < n && (k = nb__utf8_len(u + i, n - i)) > 0)
        i += k;
    return i;
}

int nb__json_fail(nb_json *j, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nb__error_code(NB_ERR_FORMAT, "%s: %s: corrupt %s (JSON) at byte %zu: %s", j->fn, j->path, j->doc, j->i,
                     what);
}

int nb__json_init(nb_json *j, char *s, size_t n, const char *fn, const char *path,
                  const char *doc)
{
    *j = (nb_json){.s = s, .n = n, .fn = fn, .path = path, .doc = doc};
    j->i = nb__json_utf8_prefix(s, n);
    if (j->i != n)
        return nb__json_fail(j, "invalid UTF-8");
    j->i = 0;
    return 0;
}

static void ws(nb_json *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                           j->s[j->i] == '\r'))
        j->i++;
}

/* After ws: the next character is c (not consumed). */
static bool at(const nb_json *j, char c) { return j->i < j->n && j->s[j->i] == c; }

static int fail_end(nb_json *j) { return nb__json_fail(j, "unexpected end of %s", j->doc); }

char nb__json_peek(nb_json *j)
{
    ws(j);
    return j->i < j->n ? j->s[j->i] : 0;
}

int nb__json_expect(nb_json *j, char c)
{
    ws(j);
    if (at(j, c)) {
        j->i++;
        return 0;
    }
    return j->i < j->n ? nb__json_fail(j, "expected '%c'", c) : fail_end(j);
}

int nb__json_open(nb_json *j, char open)
{
    if (nb__json_expect(j, open) < 0)
        return -1;
    ws(j);
    if (at(j, open == '{' ? '}' : ']')) {
        j->i++;
        return 0;
    }
    return 1;
}

int nb__json_more(nb_json *j, char close)
{
    ws(j);
    if (at(j, ',') || at(j, close))
        return j->s[j->i++] == ',';
    if (j->i >= j->n)
        return fail_end(j);
    return nb__json_fail(j, "expected ',' or '%c'", close);
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

/* Writes code point cp as UTF-8 at w; returns the end. */
static char *put_utf8(char *w, unsigned cp)
{
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
    return w;
}

/* The \u escape at the cursor (one, or a surrogate pair) into *cp; returns
 * the bytes it takes (6 or 12), or -1. */
static int unicode_escape(nb_json *j, unsigned *cp)
{
    const char *s = j->s + j->i;
    unsigned lo;
    if (j->i + 6 > j->n || hex4(s + 2, cp) < 0)
        return nb__json_fail(j, "invalid \\u escape");
    if (*cp >= 0xDC00 && *cp <= 0xDFFF)
        return nb__json_fail(j, "unpaired surrogate in a \\u escape");
    if (*cp < 0xD800 || *cp > 0xDBFF)
        return 6;
    if (j->i + 12 > j->n || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, &lo) < 0 ||
        lo < 0xDC00 || lo > 0xDFFF)
        return nb__json_fail(j, "unpaired surrogate in a \\u escape");
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return 12;
}

int nb__json_string(nb_json *j, char **out)
{
    ws(j);
    if (!at(j, '"'))
        return j->i < j->n ? nb__json_fail(j, "expected a string") : fail_end(j);
    j->i++;
    /* Decoding never lengthens: the write stays at or behind the read. */
    char *w = j->s + j->i, *start = w;
    for (;;) {
        if (j->i >= j->n)
            return nb__json_fail(j, "unterminated string");
        unsigned char c = (unsigned char)j->s[j->i];
        if (c == '"') {
            j->i++;
            break;
        }
        if (c < 0x20)
            return nb__json_fail(j, "control character in a string");
        if (c != '\\') {
            *w++ = (char)c;
            j->i++;
            continue;
        }
        if (j->i + 1 >= j->n)
            return nb__json_fail(j, "unterminated string");
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        char e = j->s[j->i + 1];
        const char *simple = e ? strchr(from, e) : NULL;
        if (simple) {
            *w++ = to[simple - from];
            j->i += 2;
            continue;
        }
        if (e != 'u')
            return nb__json_fail(j, "invalid escape in a string");
        unsigned cp = 0;
        int used = unicode_escape(j, &cp);
        if (used < 0)
            return -1;
        if (cp == 0)
            return nb__json_fail(j, "\\u0000 in a string");
        w = put_utf8(w, cp);
        j->i += (size_t)used;
    }
    *w = '\0'; /* at or before the closing quote, already consumed */
    *out = start;
    return 0;
}

static bool digit(const nb_json *j, size_t k) { return k < j->n && j->s[k] >= '0' && j->s[k] <= '9'; }

int nb__json_uint(nb_json *j, uint64_t *v)
{
    ws(j);
    size_t i = j->i;
    if (at(j, '-'))
        return nb__json_fail(j, "expected a non-negative integer");
    if (!digit(j, i))
        return j->i < j->n ? nb__json_fail(j, "expected an integer") : fail_end(j);
    if (j->s[i] == '0' && digit(j, i + 1))
        return nb__json_fail(j, "leading zero in a number");
    uint64_t x = 0;
    for (; digit(j, i); i++) {
        unsigned d = (unsigned)(j->s[i] - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10)
            return nb__json_fail(j, "integer too large");
        x = x * 10 + d;
    }
    if (i < j->n && (j->s[i] == '.' || j->s[i] == 'e' || j->s[i] == 'E'))
        return nb__json_fail(j, "expected an integer");
    j->i = i;
    *v = x;
    return 0;
}

/* A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int number(nb_json *j)
{
    size_t i = j->i;
    if (at(j, '-'))
        i++;
    if (!digit(j, i))
        return nb__json_fail(j, "expected a value");
    if (j->s[i] == '0')
        i++;
    else
        while (digit(j, i))
            i++;
    if (i < j->n && j->s[i] == '.') {
        if (!digit(j, i + 1))
            return nb__json_fail(j, "bad number");
        for (i++; digit(j, i); i++)
            ;
    }
    if (i < j->n && (j->s[i] == 'e' || j->s[i] == 'E')) {
        i++;
        if (i < j->n && (j->s[i] == '+' || j->s[i] == '-'))
            i++;
        if (!digit(j, i))
            return nb__json_fail(j, "bad number");
        while (digit(j, i))
            i++;
    }
    j->i = i;
    return 0;
}

static int skip(nb_json *j, int depth)
{
    if (depth > 64)
        return nb__json_fail(j, "nested too deeply");
    ws(j);
    if (j->i >= j->n)
        return fail_end(j);
    char c = j->s[j->i], *str;
    if (c == '"')
        return nb__json_string(j, &str);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        int more = nb__json_open(j, c);
        while (more == 1) {
            if (c == '{' && (nb__json_string(j, &str) < 0 || nb__json_expect(j, ':') < 0))
                return -1;
            if (skip(j, depth + 1) < 0)
                return -1;
            more = nb__json_more(j, close);
        }
        return more;
    }
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (j->n - j->i >= l && memcmp(j->s + j->i, lits[k], l) == 0) {
            j->i += l;
            return 0;
        }
    }
    return number(j);
}

int nb__json_skip(nb_json *j) { return skip(j, 1); }

int nb__json_end(nb_json *j)
{
    ws(j);
    return j->i == j->n ? 0 : nb__json_fail(j, "unexpected text after the %s object", j->doc);
}

void nb__json_put_string(nb_sbuf *b, const char *s)
{
    nb__sb_putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: break;
        }
        if (esc)
            nb__sb_puts(b, esc);
        else if (*p < 0x20)
            nb__sb_printf(b, "\\u%04x", *p);
        else
            nb__sb_putn(b, (const char *)p, 1);
    }
    nb__sb_putn(b, "\"", 1);
}
