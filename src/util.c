/* Plumbing shared by the backward engine, DOT export and the file formats:
 * a growable array, a pointer map, a string builder, a UTF-8 check, and the
 * walk of a tensor's history. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>

/* ---- growable arrays ---- */

static void *mem(nb_graph *g, size_t bytes)
{
    return g ? nb__arena_alloc(g, bytes) : nb__alloc(bytes);
}

int nb__vec_grow(nb_vec *a, int64_t extra)
{
    if (a->n + extra <= a->cap)
        return 0;
    int64_t cap = a->cap ? a->cap : 64;
    while (cap < a->n + extra)
        cap *= 2;
    void *p = mem(a->g, (size_t)cap * a->elem);
    if (!p)
        return -1;
    if (a->n)
        memcpy(p, a->v, (size_t)a->n * a->elem);
    if (!a->g)
        nb__free(a->v);
    a->v = p;
    a->cap = cap;
    return 0;
}

void nb__vec_free(nb_vec *a)
{
    if (!a->g)
        nb__free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* ---- pointer map ---- */

struct nb_pmap_slot {
    const void *key;
    int64_t val;
};

static size_t hash(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

int64_t nb__pmap_get(const nb_pmap *m, const void *key)
{
    if (!m->cap)
        return -1;
    for (size_t i = hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->s[i].key == key)
            return m->s[i].val;
        if (!m->s[i].key)
            return -1;
    }
}

int nb__pmap_put(nb_pmap *m, const void *key, int64_t val)
{
    if (2 * (m->n + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        struct nb_pmap_slot *s = mem(m->g, cap * sizeof *s);
        if (!s)
            return -1;
        memset(s, 0, cap * sizeof *s);
        for (size_t i = 0; i < m->cap; i++)
            if (m->s[i].key) {
                size_t j = hash(m->s[i].key, cap);
                while (s[j].key)
                    j = (j + 1) & (cap - 1);
                s[j] = m->s[i];
            }
        if (!m->g)
            nb__free(m->s);
        m->s = s;
        m->cap = cap;
    }
    size_t i = hash(key, m->cap);
    while (m->s[i].key && m->s[i].key != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->s[i].key)
        m->n++;
    m->s[i].key = key;
    m->s[i].val = val;
    return 0;
}

void nb__pmap_free(nb_pmap *m)
{
    if (!m->g)
        nb__free(m->s);
    m->s = NULL;
    m->cap = m->n = 0;
}

/* ---- strings ---- */

static bool sb_reserve(nb_sbuf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->n + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = nb__alloc(cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    if (b->n)
        memcpy(p, b->p, b->n);
    p[b->n] = '\0';
    nb__free(b->p);
    b->p = p;
    b->cap = cap;
    return true;
}

void nb__sb_putn(nb_sbuf *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void nb__sb_puts(nb_sbuf *b, const char *s) { nb__sb_putn(b, s, strlen(s)); }

void nb__sb_printf(nb_sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k < sizeof small) {
        nb__sb_putn(b, small, (size_t)k);
        return;
    }
    if (!sb_reserve(b, (size_t)k))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

size_t nb__utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    unsigned v = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return len;
}

/* ---- the walk of a history ---- */

/* Sets t's position (or -2: on the stack). */
static int walk_put(nb_walk *w, const nb_tensor *t, int64_t pos)
{
    if (w->ids && t->own.gen == w->gen) {
        w->ids[t->id] = (nb_walk_slot){w->stamp, (int32_t)pos};
        return 0;
    }
    return nb__pmap_put(&w->index, t, pos);
}

int nb__walk(nb_walk *w, nb_tensor *root, bool grad_only, nb_graph *g)
{
    typedef struct {
        nb_tensor *t;
        int next_input;
    } frame;
    memset(w, 0, sizeof *w);
    w->order.elem = sizeof(nb_tensor *);
    w->order.g = g;
    w->index.g = g;
    nb_vec stack = {.elem = sizeof(frame), .g = g};
    int rc = -1;
    /* A tensor enters the index when first seen (as -2 until it takes its
     * place in the order), so each is pushed once. */
    char buf[64];
    const char *fn = nb__entry(buf);
    fn = fn ? fn : "nabla";
    if (!nb__live(root)) {
        nb__stale_error(fn, "the root", root);
        goto done;
    }
    if ((g && nb__walk_table(g, w)) || walk_put(w, root, -2) || nb__vec_reserve(&stack, 1))
        goto done;
    ((frame *)stack.v)[stack.n++] = (frame){root, 0};
    while (stack.n) {
        frame *f = (frame *)stack.v + stack.n - 1;
        nb_node *nd = f->t->node;
        if (nd && f->next_input < nd->n) {
            nb_tensor *x = nd->x[f->next_input++];
            /* A recorded input of another graph (nested graphs) may have gone
             * stale since, and a heap one freed: its node is not followed. */
            if (!nb__live(x)) {
                char what[96];
                snprintf(what, sizeof what, "input %d of %s%s in the history", f->next_input,
                         nb__op_prefix(nd->op), nd->op->name);
                nb__stale_error(fn, what, x);
                goto done;
            }
            if ((grad_only && !x->requires_grad) || nb__walk_pos(w, x) != -1)
                continue;
            if (walk_put(w, x, -2) || nb__vec_reserve(&stack, 1))
                goto done;
            ((frame *)stack.v)[stack.n++] = (frame){x, 0};
            continue;
        }
        if (nb__vec_reserve(&w->order, 1) || walk_put(w, f->t, w->order.n))
            goto done;
        ((nb_tensor **)w->order.v)[w->order.n++] = f->t;
        stack.n--;
    }
    rc = 0;
done:
    if (!g)
        nb__vec_free(&stack);
    return rc;
}

void nb__walk_free(nb_walk *w)
{
    nb__walk_table_release(w);
    nb__vec_free(&w->order);
    nb__pmap_free(&w->index);
}

/* Writes n bytes to path (removed again when writing fails). */
const char *nb__picture_format(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && slash > dot) || strlen(dot + 1) != 3)
        return NULL;
    char ext[4];
    for (int i = 0; i < 4; i++) {
        char ch = dot[1 + i];
        ext[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    if (strcmp(ext, "svg") == 0)
        return "svg";
    if (strcmp(ext, "png") == 0)
        return "png";
    return NULL;
}

int nb__write_file(const char *fn, const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return nb__error_code(NB_ERR_IO, "%s: cannot open '%s' for writing: %s", fn, path,
                              strerror(errno));
    bool ok = fwrite(data, 1, n, f) == n;
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        remove(path);
        return nb__error_code(NB_ERR_IO, "%s: writing '%s' failed: %s", fn, path, strerror(err));
    }
    return 0;
}
