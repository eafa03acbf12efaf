/* Pictures of graphs: a tensor's history as Graphviz DOT, and (with libgvc)
 * rendered to SVG or PNG.
 *
 * The history is walked with an explicit stack (no recursion, so a chain of
 * a million ops is fine) and a private visited set (an open-addressing
 * pointer hash), so tensor->pass/acc, which belong to the backward engine,
 * are never touched. Every tensor becomes one DOT node:
 *   op output       rounded blue box:   op name (bold), name, shape dtype
 *   parameter       orange box:         name (bold), shape dtype
 *   grad leaf       green box:          name (bold), shape dtype
 *   constant/data   grey ellipse:       name or "const", shape dtype
 * Edges run input -> op. Scopes ("model/dense_1") become nested clusters;
 * a parameter (or a constant made in the graph) goes into the innermost
 * scope that holds all of its users. With opts->backward, each op gets a
 * dashed red "<op>_backward" node on its rank, and gradient edges (drawn
 * upwards, against the data flow) run from an op's backward node to its
 * inputs' backward nodes, ending at "<leaf>.grad" nodes.
 *
 * Labels are Graphviz HTML-like labels: user text is entity-escaped, control
 * characters become spaces and invalid UTF-8 becomes '?', so any name gives
 * a file `dot` reads without a warning. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef NB_HAVE_GRAPHVIZ
#include <gvc.h>
#include <threads.h>
#endif

/* ---- a growing string ---------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static bool sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->n + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = nb__alloc(cap);
    if (!p) {
        b->oom = true;
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

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (!sb_reserve(b, n))
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k < sizeof small) {
        sb_putn(b, small, (size_t)k);
        return;
    }
    if (!sb_reserve(b, (size_t)k))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Length of a valid UTF-8 sequence starting at s (at most n bytes), 0 if
 * invalid (overlong forms, surrogates and values above U+10FFFF included). */
static size_t utf8_len(const unsigned char *s, size_t n)
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

/* Appends user text for an HTML-like label. */
static void sb_html(sbuf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == '&')
            sb_puts(b, "&amp;");
        else if (c == '<')
            sb_puts(b, "&lt;");
        else if (c == '>')
            sb_puts(b, "&gt;");
        else if (c == '"')
            sb_puts(b, "&quot;");
        else if (c == '\'')
            sb_puts(b, "&#39;");
        else if (c < 0x20 || c == 0x7F)
            sb_putn(b, " ", 1);
        else if (c < 0x80)
            sb_putn(b, s + i, 1);
        else {
            size_t k = utf8_len(u + i, n - i);
            if (k) {
                sb_putn(b, s + i, k);
                i += k;
                continue;
            }
            sb_putn(b, "?", 1);
        }
        i++;
    }
}

/* ---- a pointer -> index map (open addressing, linear probing) ------------- */

typedef struct {
    const void *key;
    int64_t val;
} slot;

typedef struct {
    slot *s;
    size_t cap, n; /* cap is a power of two */
} pmap;

static size_t pmap_hash(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static int64_t pmap_get(const pmap *m, const void *key)
{
    if (!m->cap)
        return -1;
    for (size_t i = pmap_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->s[i].key == key)
            return m->s[i].val;
        if (!m->s[i].key)
            return -1;
    }
}

static int pmap_put(pmap *m, const void *key, int64_t val)
{
    if (2 * (m->n + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        slot *s = nb__alloc(cap * sizeof *s);
        if (!s)
            return -1;
        memset(s, 0, cap * sizeof *s);
        for (size_t i = 0; i < m->cap; i++)
            if (m->s[i].key) {
                size_t j = pmap_hash(m->s[i].key, cap);
                while (s[j].key)
                    j = (j + 1) & (cap - 1);
                s[j] = m->s[i];
            }
        nb__free(m->s);
        m->s = s;
        m->cap = cap;
    }
    size_t i = pmap_hash(key, m->cap);
    while (m->s[i].key && m->s[i].key != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->s[i].key)
        m->n++;
    m->s[i].key = key;
    m->s[i].val = val;
    return 0;
}

/* ---- growing arrays --------------------------------------------------------- */

static int grow(void **v, int64_t *cap, int64_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int64_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *p = nb__alloc((size_t)c * elem);
    if (!p)
        return -1;
    if (*cap)
        memcpy(p, *v, (size_t)*cap * elem);
    nb__free(*v);
    *v = p;
    *cap = c;
    return 0;
}

/* ---- the picture's model ------------------------------------------------------ */

enum { UNPLACED = -2 };

typedef struct {
    nb_tensor *t;
    int64_t id;    /* position in topological order: DOT names n<id>, b<id>, g<id> */
    int scope;     /* index into scopes; 0 is the top level */
    int64_t next;  /* next entry in the same scope, in topological order */
} entry;

typedef struct {
    const char *path; /* not NUL-terminated at len */
    size_t len;
    int parent, depth;
    int child, sibling; /* first child, next sibling */
    int64_t first;      /* first entry in this scope */
} scope;

typedef struct {
    const nb_dot_opts *o;
    nb_tensor *root;
    pmap map; /* tensor -> entry index, and scope path pointer -> scope index */
    entry *e;
    int64_t ne, cape;
    int64_t *order; /* entry indices in topological order */
    scope *sc;
    int64_t nsc, capsc;
    sbuf out;
    int indent; /* spaces before each statement */
} dot_ctx;

/* Collects root's history in topological order (inputs first). */
static int collect(dot_ctx *c)
{
    typedef struct {
        int64_t ent;
        int next_input;
    } frame;
    frame *stack = NULL;
    int64_t nst = 0, capst = 0, norder = 0, caporder = 0;
    int rc = -1;

    if (grow((void **)&c->e, &c->cape, 1, sizeof *c->e) ||
        grow((void **)&stack, &capst, 1, sizeof *stack) || pmap_put(&c->map, c->root, 0))
        goto done;
    c->e[0] = (entry){.t = c->root, .scope = UNPLACED, .next = -1};
    c->ne = 1;
    stack[nst++] = (frame){0, 0};
    while (nst) {
        frame *f = &stack[nst - 1];
        nb_tensor *t = c->e[f->ent].t;
        if (t->node && f->next_input < t->node->n) {
            nb_tensor *x = t->node->x[f->next_input++];
            if (!x || pmap_get(&c->map, x) >= 0)
                continue;
            if (grow((void **)&c->e, &c->cape, c->ne + 1, sizeof *c->e) ||
                grow((void **)&stack, &capst, nst + 1, sizeof *stack) ||
                pmap_put(&c->map, x, c->ne))
                goto done;
            c->e[c->ne] = (entry){.t = x, .scope = UNPLACED, .next = -1};
            stack[nst++] = (frame){c->ne++, 0};
            continue;
        }
        if (grow((void **)&c->order, &caporder, norder + 1, sizeof *c->order))
            goto done;
        c->e[f->ent].id = norder;
        c->order[norder++] = f->ent;
        nst--;
    }
    rc = 0;
done:
    nb__free(stack);
    return rc;
}

/* The scope with this exact path, created (with its parents) if new. */
static int scope_find(dot_ctx *c, const char *path, size_t len)
{
    for (int64_t i = 1; i < c->nsc; i++)
        if (c->sc[i].len == len && memcmp(c->sc[i].path, path, len) == 0)
            return (int)i;
    return -1;
}

static int scope_of_path(dot_ctx *c, const char *path)
{
    int64_t cached = pmap_get(&c->map, path);
    if (cached >= 0)
        return (int)cached;
    size_t n = strlen(path);
    int parent = 0;
    for (size_t end = 0; end <= n; end++) {
        if (end < n && path[end] != '/')
            continue;
        if (end == 0 || path[end - 1] == '/') /* empty component: skip */
            continue;
        int s = scope_find(c, path, end);
        if (s < 0) {
            if (c->nsc >= INT32_MAX ||
                grow((void **)&c->sc, &c->capsc, c->nsc + 1, sizeof *c->sc))
                return -1;
            s = (int)c->nsc++;
            scope *p = &c->sc[parent];
            c->sc[s] = (scope){.path = path, .len = end, .parent = parent,
                               .depth = p->depth + 1, .child = -1, .sibling = -1,
                               .first = -1};
            /* Append to the parent's children, keeping first-use order. */
            if (p->child < 0)
                p->child = s;
            else {
                int k = p->child;
                while (c->sc[k].sibling >= 0)
                    k = c->sc[k].sibling;
                c->sc[k].sibling = s;
            }
        }
        parent = s;
    }
    if (pmap_put(&c->map, path, parent))
        return -1;
    return parent;
}

static int scope_common(const dot_ctx *c, int a, int b)
{
    while (c->sc[a].depth > c->sc[b].depth)
        a = c->sc[a].parent;
    while (c->sc[b].depth > c->sc[a].depth)
        b = c->sc[b].parent;
    while (a != b) {
        a = c->sc[a].parent;
        b = c->sc[b].parent;
    }
    return a;
}

/* Leaves that belong with the ops using them: parameters, and constants the
 * step itself made (in the graph's arena). Data and inputs stay outside. */
static bool follows_users(const nb_tensor *t)
{
    return !t->node && (t->param || (!t->requires_grad && t->lifetime == NB_ARENA));
}

static int place(dot_ctx *c)
{
    if (grow((void **)&c->sc, &c->capsc, 1, sizeof *c->sc))
        return -1;
    c->sc[0] = (scope){.path = "", .parent = -1, .child = -1, .sibling = -1, .first = -1};
    c->nsc = 1;
    for (int64_t k = 0; k < c->ne; k++) {
        entry *e = &c->e[c->order[k]];
        if (!e->t->node)
            continue;
        int s = e->t->node->scope ? scope_of_path(c, e->t->node->scope) : 0;
        if (s < 0)
            return -1;
        e->scope = s;
        for (int i = 0; i < e->t->node->n; i++) {
            nb_tensor *x = e->t->node->x[i];
            if (!x || !follows_users(x))
                continue;
            entry *xe = &c->e[pmap_get(&c->map, x)];
            xe->scope = xe->scope == UNPLACED ? s : scope_common(c, xe->scope, s);
        }
    }
    /* Chain each scope's entries in topological order. */
    for (int64_t k = c->ne - 1; k >= 0; k--) {
        int64_t ei = c->order[k];
        entry *e = &c->e[ei];
        if (e->scope == UNPLACED)
            e->scope = 0;
        e->next = c->sc[e->scope].first;
        c->sc[e->scope].first = ei;
    }
    return 0;
}

/* ---- writing --------------------------------------------------------------------- */

static void put_shape(sbuf *b, const nb_tensor *t)
{
    char s[96];
    sb_printf(b, "%s %s", nb_shape_str(t, s), nb_dtype_name(t->dtype));
}

/* Values of a small tensor, nested like its shape: [[1, 2], [3, 4]]. */
static void put_values(sbuf *b, const nb_tensor *t)
{
    if (!nb__ptr(t))
        return;
    if (t->numel == 0) {
        sb_puts(b, "[]");
        return;
    }
    int64_t prod[NB_MAX_DIMS + 1];
    prod[t->ndim] = 1;
    for (int d = t->ndim - 1; d >= 0; d--)
        prod[d] = prod[d + 1] * t->shape[d];
    for (int64_t k = 0; k < t->numel; k++) {
        for (int d = 0; d < t->ndim; d++)
            if (k % prod[d] == 0)
                sb_putn(b, "[", 1);
        sb_printf(b, "%.4g", nb__get(t, k));
        for (int d = t->ndim - 1; d >= 0; d--)
            if ((k + 1) % prod[d] == 0)
                sb_putn(b, "]", 1);
        if (k + 1 < t->numel)
            sb_puts(b, ", ");
    }
}

static const char *leaf_word(const nb_tensor *t)
{
    return t->param ? "param" : t->requires_grad ? "leaf" : "const";
}

static bool show_values(const dot_ctx *c, const nb_tensor *t)
{
    /* Scalar constants always show their value: "const 32" says more than "()". */
    return t->numel <= 8 && (c->o->values || (!t->node && !t->requires_grad && t->numel == 1));
}

static void put_node(dot_ctx *c, const entry *e)
{
    sbuf *b = &c->out;
    const nb_tensor *t = e->t;
    bool scalar_const = !t->node && !t->name && !t->requires_grad && t->numel == 1 && nb__ptr(t);
    sb_printf(b, "%*sn%lld [", c->indent, "", (long long)e->id);
    if (t->node)
        sb_puts(b, "shape=box, style=\"rounded,filled\", fillcolor=\"#dae8fc\", "
                   "color=\"#6c8ebf\", ");
    else if (t->param)
        sb_puts(b, "shape=box, style=filled, fillcolor=\"#ffe6cc\", color=\"#d79b00\", ");
    else if (t->requires_grad)
        sb_puts(b, "shape=box, style=filled, fillcolor=\"#d5e8d4\", color=\"#82b366\", ");
    else
        sb_puts(b, "shape=ellipse, style=filled, fillcolor=\"#f5f5f5\", color=\"#999999\", "
                   "fontcolor=\"#444444\", ");
    if (t == c->root)
        sb_puts(b, "penwidth=2.5, ");
    sb_puts(b, "label=<");
    if (t->node) {
        sb_puts(b, "<b>");
        sb_html(b, t->node->op->name ? t->node->op->name : "?");
        sb_puts(b, "</b>");
        if (t->name) {
            sb_puts(b, "<br/><i>");
            sb_html(b, t->name);
            sb_puts(b, "</i>");
        }
    } else if (t->name) {
        sb_puts(b, "<b>");
        sb_html(b, t->name);
        sb_puts(b, "</b>");
    } else if (scalar_const) {
        sb_puts(b, "<b>"); /* the value says more than "const" */
        put_values(b, t);
        sb_puts(b, "</b>");
    } else
        sb_puts(b, leaf_word(t));
    sb_puts(b, "<br/>");
    put_shape(b, t);
    if (!scalar_const && show_values(c, t)) {
        sb_puts(b, "<br/><font point-size=\"10\">");
        put_values(b, t);
        sb_puts(b, "</font>");
    }
    sb_puts(b, ">];\n");

    if (!c->o->backward)
        return;
    if (t->node) {
        sb_printf(b, "%*sb%lld [shape=box, style=\"rounded,dashed,filled\", "
                     "fillcolor=\"#f8cecc\", color=\"#b85450\", fontcolor=\"#6f1d1b\", label=<",
                  c->indent, "", (long long)e->id);
        sb_html(b, t->node->op->name ? t->node->op->name : "?");
        sb_puts(b, "_backward>];\n");
    } else if (t->requires_grad) {
        sb_printf(b, "%*sg%lld [shape=box, style=\"dashed,filled\", fillcolor=\"#fff2cc\", "
                     "color=\"#d6b656\", label=<<b>",
                  c->indent, "", (long long)e->id);
        sb_html(b, t->name ? t->name : leaf_word(t));
        sb_puts(b, ".grad</b><br/>");
        put_shape(b, t);
        if (c->o->values && t->grad && t->grad->numel <= 8) {
            sb_puts(b, "<br/><font point-size=\"10\">");
            put_values(b, t->grad);
            sb_puts(b, "</font>");
        }
        sb_puts(b, ">];\n");
    } else
        return;
    /* The backward node sits beside its forward node. */
    sb_printf(b, "%*s{rank=same; n%lld; %c%lld;}\n", c->indent, "", (long long)e->id,
              t->node ? 'b' : 'g', (long long)e->id);
}

/* The last component of a scope path, for the cluster's label. */
static void put_scope_label(sbuf *b, const scope *s)
{
    size_t start = s->len;
    while (start > 0 && s->path[start - 1] != '/')
        start--;
    char small[128];
    size_t n = s->len - start;
    if (n >= sizeof small)
        n = sizeof small - 1;
    memcpy(small, s->path + start, n);
    small[n] = '\0';
    sb_html(b, small);
}

static void open_cluster(dot_ctx *c, int k)
{
    static const char *const fills[] = {"#f4f6fa", "#e8edf5", "#dde4f0"};
    sbuf *b = &c->out;
    const scope *s = &c->sc[k];
    sb_printf(b, "%*ssubgraph cluster_%d_", c->indent, "", k);
    for (size_t i = 0; i < s->len && i < 40; i++) {
        char ch = s->path[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        sb_putn(b, ok ? &ch : "_", 1);
    }
    c->indent += 2;
    sb_printf(b, " {\n%*sstyle=\"rounded,filled\"; color=\"#8a9bb5\"; fillcolor=\"%s\";\n"
                 "%*slabeljust=l; fontsize=12; label=<<b>",
              c->indent, "", fills[(s->depth - 1) % 3], c->indent, "");
    put_scope_label(b, s);
    sb_puts(b, "</b>>;\n");
}

static void close_cluster(dot_ctx *c)
{
    c->indent -= 2;
    sb_printf(&c->out, "%*s}\n", c->indent, "");
}

static void put_scope_nodes(dot_ctx *c, int k)
{
    for (int64_t i = c->sc[k].first; i >= 0; i = c->e[i].next)
        put_node(c, &c->e[i]);
}

/* Clusters nest like scopes; walked without recursion. */
static void put_clusters(dot_ctx *c)
{
    int k = c->sc[0].child;
    while (k > 0) {
        open_cluster(c, k);
        put_scope_nodes(c, k);
        if (c->sc[k].child > 0) {
            k = c->sc[k].child;
            continue;
        }
        close_cluster(c);
        while (k > 0 && c->sc[k].sibling < 0) {
            k = c->sc[k].parent;
            if (k > 0)
                close_cluster(c);
        }
        if (k > 0)
            k = c->sc[k].sibling;
    }
}

static void put_edges(dot_ctx *c)
{
    sbuf *b = &c->out;
    for (int64_t k = 0; k < c->ne; k++) {
        const entry *e = &c->e[c->order[k]];
        if (!e->t->node)
            continue;
        for (int i = 0; i < e->t->node->n; i++) {
            int64_t xi = pmap_get(&c->map, e->t->node->x[i]);
            if (xi >= 0)
                sb_printf(b, "  n%lld -> n%lld;\n", (long long)c->e[xi].id, (long long)e->id);
        }
    }
    if (!c->o->backward)
        return;
    /* Gradients flow from an op's backward node to its inputs' backward (or
     * .grad) nodes; drawn with dir=back so that the backward column reads
     * bottom-up beside the forward one. */
    for (int64_t k = 0; k < c->ne; k++) {
        const entry *e = &c->e[c->order[k]];
        if (!e->t->node)
            continue;
        for (int i = 0; i < e->t->node->n; i++) {
            int64_t xi = pmap_get(&c->map, e->t->node->x[i]);
            if (xi < 0)
                continue;
            const nb_tensor *x = c->e[xi].t;
            if (!x->requires_grad)
                continue;
            sb_printf(b, "  %c%lld -> b%lld [dir=back, style=dashed, color=\"#b85450\"];\n",
                      x->node ? 'b' : 'g', (long long)c->e[xi].id, (long long)e->id);
        }
    }
}

static char *build(nb_tensor *root, const nb_dot_opts *opts, const char *fn)
{
    static const nb_dot_opts defaults = {0};
    if (!root) {
        if (!nb__has_error())
            nb__error("%s: root tensor is NULL", fn);
        return NULL;
    }
    dot_ctx c = {.o = opts ? opts : &defaults, .root = root, .indent = 2};
    char *result = NULL;
    if (collect(&c) || place(&c))
        goto done;

    sbuf *b = &c.out;
    sb_puts(b, "digraph nabla {\n"
               "  graph [rankdir=TB, nodesep=0.3, ranksep=0.35, fontname=\"Helvetica\"];\n"
               "  node [fontname=\"Helvetica\", fontsize=11, margin=\"0.12,0.05\"];\n"
               "  edge [color=\"#555555\", arrowsize=0.7];\n");
    put_scope_nodes(&c, 0);
    put_clusters(&c);
    put_edges(&c);
    if (c.o->title) {
        /* Last, so that clusters do not inherit it as their label. */
        sb_puts(b, "  labelloc=t; fontsize=16; label=<<b>");
        sb_html(b, c.o->title);
        sb_puts(b, "</b>>;\n");
    }
    sb_puts(b, "}\n");
    if (!b->oom) {
        result = b->p;
        b->p = NULL;
    }
done:
    if (!result)
        nb__error("%s: out of memory building the DOT text of %lld tensors", fn,
                  (long long)c.ne);
    nb__free(c.out.p);
    nb__free(c.map.s);
    nb__free(c.e);
    nb__free(c.order);
    nb__free(c.sc);
    return result;
}

char *nb_dot_string(nb_tensor *root, const nb_dot_opts *opts)
{
    return build(root, opts, "nb_dot_string");
}

void nb_dot_free(char *dot) { nb__free(dot); }

/* Writes n bytes to path; -1 with an error naming fn otherwise. */
static int write_file(const char *fn, const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return nb__error("%s: cannot open '%s' for writing: %s", fn, path, strerror(errno));
    bool ok = fwrite(data, 1, n, f) == n;
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (!ok) {
        remove(path);
        return nb__error("%s: writing '%s' failed: %s", fn, path, strerror(err));
    }
    return 0;
}

int nb_dot_write(nb_tensor *root, const char *path, const nb_dot_opts *opts)
{
    if (!path)
        return nb__error("nb_dot_write: path is NULL");
    char *dot = build(root, opts, "nb_dot_write");
    if (!dot)
        return -1;
    int rc = write_file("nb_dot_write", path, dot, strlen(dot));
    nb_dot_free(dot);
    return rc;
}

/* ---- rendering with libgvc ------------------------------------------------------ */

#ifdef NB_HAVE_GRAPHVIZ

/* Graphviz 2.42 breaks when a second context is made after freeing one (a
 * use-after-free in the pango plugin), and cgraph/gvc are not reentrant: one
 * context per process, freed at exit, and one render at a time. */
static once_flag gv_once = ONCE_FLAG_INIT;
static mtx_t gv_lock;
static bool gv_lock_ok;
static GVC_t *gv;
static char gv_msg[400]; /* the first message cgraph reported, under gv_lock */

static void gv_at_exit(void)
{
    if (gv) {
        gvFreeContext(gv);
        gv = NULL;
    }
}

static void gv_init(void)
{
    gv_lock_ok = mtx_init(&gv_lock, mtx_plain) == thrd_success;
    if (!gv_lock_ok)
        return;
    gv = gvContext();
    if (gv)
        atexit(gv_at_exit);
}

static int gv_catch(char *msg)
{
    if (!gv_msg[0] && msg) {
        snprintf(gv_msg, sizeof gv_msg, "%s", msg);
        size_t n = strlen(gv_msg);
        while (n && (gv_msg[n - 1] == '\n' || gv_msg[n - 1] == ' '))
            gv_msg[--n] = '\0';
    }
    return 0;
}

#endif

bool nb_dot_can_render(void)
{
#ifdef NB_HAVE_GRAPHVIZ
    return true;
#else
    return false;
#endif
}

/* "svg" or "png" from path's extension (any case), NULL otherwise. */
static const char *format_of(const char *path)
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

int nb_dot_render(nb_tensor *root, const char *path, const nb_dot_opts *opts)
{
    if (!nb_dot_can_render())
        return nb__error("nb_dot_render: this nabla was built without Graphviz (libgvc); "
                         "use nb_dot_write and run `dot -Tsvg file.dot -o file.svg`");
    if (!path)
        return nb__error("nb_dot_render: path is NULL");
    const char *fmt = format_of(path);
    if (!fmt)
        return nb__error("nb_dot_render: cannot tell the format of '%s': the name must end "
                         "in .svg or .png",
                         path);
    if (!root) {
        if (!nb__has_error())
            nb__error("nb_dot_render: root tensor is NULL");
        return -1;
    }
#ifdef NB_HAVE_GRAPHVIZ
    char *dot = build(root, opts, "nb_dot_render");
    if (!dot)
        return -1;

    call_once(&gv_once, gv_init);
    if (!gv_lock_ok || !gv) {
        nb_dot_free(dot);
        return nb__error("nb_dot_render: could not start Graphviz (gvContext failed)");
    }
    mtx_lock(&gv_lock);
    gv_msg[0] = '\0';
    agusererrf prev = agseterrf(gv_catch);
    int rc = -1;
    const char *stage = "reading the DOT text";
    /* Rendered into memory: on a failed write to a file, Graphviz 2.42 calls
     * exit(1); writing the bytes ourselves turns that into an error. */
    char *data = NULL;
    unsigned int len = 0;
    Agraph_t *g = agmemread(dot);
    if (g) {
        stage = "laying out the graph";
        if (gvLayout(gv, g, "dot") == 0) {
            stage = "rendering";
            rc = gvRenderData(gv, g, fmt, &data, &len) == 0 && data ? 0 : -1;
            gvFreeLayout(gv, g);
        }
        agclose(g);
    }
    agseterrf(prev);
    char msg[sizeof gv_msg];
    memcpy(msg, gv_msg, sizeof msg);
    mtx_unlock(&gv_lock);
    nb_dot_free(dot);

    if (rc == 0)
        rc = write_file("nb_dot_render", path, data, len);
    else
        nb__error("nb_dot_render: Graphviz failed %s for '%s'%s%s", stage, path,
                  msg[0] ? ": " : "", msg);
    if (data)
        gvFreeRenderData(data);
    return rc;
#else
    (void)opts;
    return -1;
#endif
}
