/* Pictures of graphs: a tensor's history as Graphviz DOT, and (with libgvc)
 * rendered to SVG or PNG.
 *
 * The history comes from nb__walk (src/util.c), the same iterative walk the
 * backward engine uses, here following every input: the tensors in
 * topological order (inputs first) with each one's position, which is also
 * its DOT id. The walk keeps its marks in tables of its own, so nothing is
 * written into the tensors. Every tensor becomes one DOT node:
 *   op output       rounded blue box:   op name (bold), name, shape dtype
 *   parameter       orange box:         name (bold), shape dtype
 *   grad leaf       green box:          name (bold), shape dtype
 *   constant/data   grey ellipse:       name or "const", shape dtype
 *   marked (opts)   red box:            as above, then the mark's note
 *   anomaly (opts)  red box:            as above, then what anomaly mode found
 * A view (permute, slice, broadcast_to ...) is drawn like any op output:
 * its own shape, and with .values its own elements, read through its
 * strides. Edges run input -> op. Scopes ("model/dense") become nested
 * clusters; a parameter (or a constant made in the graph) goes into the
 * innermost scope that holds all of its users. With opts->backward, each op
 * gets a dashed red "<op>_backward" node on its rank, and gradient edges
 * (drawn upwards, against the data flow) run from an op's backward node to
 * its inputs' backward nodes, ending at "<leaf>.grad" nodes.
 *
 * Labels are Graphviz HTML-like labels: user text is entity-escaped, control
 * characters become spaces and invalid UTF-8 becomes '?', so any name gives
 * a file `dot` reads without a warning. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef NB_HAVE_GRAPHVIZ
#include <gvc.h>
#include <threads.h>
#endif

/* Appends n bytes of user text for an HTML-like label. */
static void put_html(nb_sbuf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c == '&')
            nb__sb_puts(b, "&amp;");
        else if (c == '<')
            nb__sb_puts(b, "&lt;");
        else if (c == '>')
            nb__sb_puts(b, "&gt;");
        else if (c == '"')
            nb__sb_puts(b, "&quot;");
        else if (c == '\'')
            nb__sb_puts(b, "&#39;");
        else if (c < 0x20 || c == 0x7F)
            nb__sb_putn(b, " ", 1);
        else if (c < 0x80)
            nb__sb_putn(b, s + i, 1);
        else {
            size_t k = nb__utf8_len(u + i, n - i);
            if (k) {
                nb__sb_putn(b, s + i, k);
                i += k;
                continue;
            }
            nb__sb_putn(b, "?", 1);
        }
        i++;
    }
}

static void put_text(nb_sbuf *b, const char *s) { put_html(b, s, strlen(s)); }

/* ---- the picture's model ------------------------------------------------------ */

enum { UNPLACED = -2 };

/* Tensors with at most this many elements show their values (nb_dot_opts). */
#define VALUES_MAX 8

/* Per tensor, by its position in the walk's order. */
typedef struct {
    int scope;    /* index into scopes; 0 is the top level */
    int64_t next; /* next tensor in the same scope, in topological order */
} entry;

typedef struct {
    const char *path; /* not NUL-terminated at len */
    size_t len;
    int parent, depth;
    int child, sibling; /* first child, next sibling */
    int64_t first;      /* first tensor in this scope */
} scope;

typedef struct {
    const nb_dot_opts *o;
    nb_tensor *root;
    nb_walk w;    /* the history: order (nb_tensor *), index (tensor -> position) */
    entry *e;     /* w.order.n of them */
    nb_vec sc;    /* scope */
    nb_pmap path; /* scope path pointer -> scope index */
    nb_sbuf out;
    int indent; /* spaces before each statement */
} dot_ctx;

static int64_t count_of(const dot_ctx *c) { return c->w.order.n; }
static nb_tensor *at(const dot_ctx *c, int64_t k) { return ((nb_tensor **)c->w.order.v)[k]; }
static int64_t pos(const dot_ctx *c, const nb_tensor *t) { return nb__pmap_get(&c->w.index, t); }
static scope *sc(const dot_ctx *c, int k) { return (scope *)c->sc.v + k; }

/* The scope with this exact path, or -1. */
static int scope_find(const dot_ctx *c, const char *path, size_t len)
{
    for (int64_t i = 1; i < c->sc.n; i++)
        if (sc(c, (int)i)->len == len && memcmp(sc(c, (int)i)->path, path, len) == 0)
            return (int)i;
    return -1;
}

/* The scope of a path, created (with its parents) if new; -1 on error. */
static int scope_of_path(dot_ctx *c, const char *path)
{
    int64_t cached = nb__pmap_get(&c->path, path);
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
            if (c->sc.n >= INT32_MAX || nb__vec_reserve(&c->sc, 1))
                return -1;
            s = (int)c->sc.n++;
            scope *p = sc(c, parent);
            *sc(c, s) = (scope){.path = path, .len = end, .parent = parent,
                                .depth = p->depth + 1, .child = -1, .sibling = -1,
                                .first = -1};
            /* Append to the parent's children, keeping first-use order. */
            if (p->child < 0)
                p->child = s;
            else {
                int k = p->child;
                while (sc(c, k)->sibling >= 0)
                    k = sc(c, k)->sibling;
                sc(c, k)->sibling = s;
            }
        }
        parent = s;
    }
    if (nb__pmap_put(&c->path, path, parent))
        return -1;
    return parent;
}

static int scope_common(const dot_ctx *c, int a, int b)
{
    while (sc(c, a)->depth > sc(c, b)->depth)
        a = sc(c, a)->parent;
    while (sc(c, b)->depth > sc(c, a)->depth)
        b = sc(c, b)->parent;
    while (a != b) {
        a = sc(c, a)->parent;
        b = sc(c, b)->parent;
    }
    return a;
}

/* Leaves that belong with the ops using them: parameters, and constants the
 * step itself made (in the graph's arena). Data and inputs stay outside. */
static bool follows_users(const nb_tensor *t)
{
    return !t->node && (t->param || (!t->requires_grad && t->lifetime == NB_ARENA));
}

/* Puts every tensor into a scope and chains each scope's tensors. */
static int place(dot_ctx *c)
{
    int64_t n = count_of(c);
    if (!(c->e = nb__alloc((size_t)n * sizeof *c->e)) || nb__vec_reserve(&c->sc, 1))
        return -1;
    *sc(c, 0) = (scope){.path = "", .parent = -1, .child = -1, .sibling = -1, .first = -1};
    c->sc.n = 1;
    for (int64_t k = 0; k < n; k++)
        c->e[k] = (entry){.scope = UNPLACED, .next = -1};
    for (int64_t k = 0; k < n; k++) {
        const nb_node *nd = at(c, k)->node;
        if (!nd)
            continue;
        int s = nd->scope ? scope_of_path(c, nd->scope) : 0;
        if (s < 0)
            return -1;
        c->e[k].scope = s;
        for (int i = 0; i < nd->n; i++) {
            if (!follows_users(nd->x[i]))
                continue;
            entry *xe = &c->e[pos(c, nd->x[i])];
            xe->scope = xe->scope == UNPLACED ? s : scope_common(c, xe->scope, s);
        }
    }
    for (int64_t k = n - 1; k >= 0; k--) {
        entry *e = &c->e[k];
        if (e->scope == UNPLACED)
            e->scope = 0;
        e->next = sc(c, e->scope)->first;
        sc(c, e->scope)->first = k;
    }
    return 0;
}

/* ---- writing --------------------------------------------------------------------- */

static void put_shape(nb_sbuf *b, const nb_tensor *t)
{
    char s[NB_SHAPE_STR_LEN];
    nb__sb_printf(b, "%s %s", nb_shape_str(t, s), nb_dtype_name(t->dtype));
}

/* Values of a small tensor in row-major order, nested like its shape:
 * [[1, 2], [3, 4]]. Read element by element through the strides, so views
 * (permuted, sliced, broadcast) show their own values. */
static void put_values(nb_sbuf *b, const nb_tensor *t)
{
    if (t->numel == 0) {
        nb__sb_puts(b, "[]");
        return;
    }
    int64_t prod[NB_MAX_DIMS + 1];
    prod[t->ndim] = 1;
    for (int d = t->ndim - 1; d >= 0; d--)
        prod[d] = prod[d + 1] * t->shape[d];
    for (int64_t k = 0; k < t->numel; k++) {
        for (int d = 0; d < t->ndim; d++)
            if (k % prod[d] == 0)
                nb__sb_putn(b, "[", 1);
        nb__sb_printf(b, "%.4g", nb__get(t, k));
        for (int d = t->ndim - 1; d >= 0; d--)
            if ((k + 1) % prod[d] == 0)
                nb__sb_putn(b, "]", 1);
        if (k + 1 < t->numel)
            nb__sb_puts(b, ", ");
    }
}

static const char *leaf_word(const nb_tensor *t)
{
    return t->param ? "param" : t->requires_grad ? "leaf" : "const";
}

static bool show_values(const dot_ctx *c, const nb_tensor *t)
{
    /* Scalar constants always show their value: "const 32" says more than "()". */
    return t->numel <= VALUES_MAX && (c->o->values || (!t->node && !t->requires_grad && t->numel == 1));
}

/* t's position in opts->marked, or -1 (few are marked: a linear search). */
static int marked_at(const dot_ctx *c, const nb_tensor *t)
{
    for (int i = 0; c->o->marked && i < c->o->n_marked; i++)
        if (c->o->marked[i] == t)
            return i;
    return -1;
}

static void put_node(dot_ctx *c, int64_t id)
{
    nb_sbuf *b = &c->out;
    const nb_tensor *t = at(c, id);
    const char *op = t->node && t->node->op->name ? t->node->op->name : "?";
    bool scalar_const = !t->node && !t->name && !t->requires_grad && t->numel == 1;
    int mark = marked_at(c, t);
    const char *anomaly = c->o->anomaly ? nb__anomaly_note(t) : NULL;
    const char *note = anomaly     ? anomaly
                       : mark >= 0 && c->o->marked_notes ? c->o->marked_notes[mark]
                                                         : NULL;
    if (anomaly)
        mark = 0; /* drawn as marked, with the anomaly's note */
    nb__sb_printf(b, "%*sn%lld [", c->indent, "", (long long)id);
    if (mark >= 0)
        nb__sb_printf(b, "shape=box, style=\"%sfilled\", fillcolor=\"#f28b82\", "
                         "color=\"#a50e0e\", penwidth=2, ",
                      t->node ? "rounded," : "");
    else if (t->node)
        nb__sb_puts(b, "shape=box, style=\"rounded,filled\", fillcolor=\"#dae8fc\", "
                       "color=\"#6c8ebf\", ");
    else if (t->param)
        nb__sb_puts(b, "shape=box, style=filled, fillcolor=\"#ffe6cc\", color=\"#d79b00\", ");
    else if (t->requires_grad)
        nb__sb_puts(b, "shape=box, style=filled, fillcolor=\"#d5e8d4\", color=\"#82b366\", ");
    else
        nb__sb_puts(b, "shape=ellipse, style=filled, fillcolor=\"#f5f5f5\", color=\"#999999\", "
                       "fontcolor=\"#444444\", ");
    if (t == c->root && mark < 0)
        nb__sb_puts(b, "penwidth=2.5, ");
    nb__sb_puts(b, "label=<");
    if (t->node) {
        nb__sb_puts(b, "<b>");
        put_text(b, op);
        nb__sb_puts(b, "</b>");
        if (t->name) {
            nb__sb_puts(b, "<br/><i>");
            put_text(b, t->name);
            nb__sb_puts(b, "</i>");
        }
    } else if (t->name) {
        nb__sb_puts(b, "<b>");
        put_text(b, t->name);
        nb__sb_puts(b, "</b>");
    } else if (scalar_const) {
        nb__sb_puts(b, "<b>"); /* the value says more than "const" */
        put_values(b, t);
        nb__sb_puts(b, "</b>");
    } else
        nb__sb_puts(b, leaf_word(t));
    nb__sb_puts(b, "<br/>");
    put_shape(b, t);
    if (!scalar_const && show_values(c, t)) {
        nb__sb_puts(b, "<br/><font point-size=\"10\">");
        put_values(b, t);
        nb__sb_puts(b, "</font>");
    }
    if (note) {
        nb__sb_puts(b, "<br/><font color=\"#7f0000\"><b>");
        put_text(b, note);
        nb__sb_puts(b, "</b></font>");
    }
    nb__sb_puts(b, ">];\n");

    if (!c->o->backward)
        return;
    if (t->node) {
        nb__sb_printf(b, "%*sb%lld [shape=box, style=\"rounded,dashed,filled\", "
                         "fillcolor=\"#f8cecc\", color=\"#b85450\", fontcolor=\"#6f1d1b\", "
                         "label=<",
                      c->indent, "", (long long)id);
        put_text(b, op);
        nb__sb_puts(b, "_backward>];\n");
    } else if (t->requires_grad) {
        nb__sb_printf(b, "%*sg%lld [shape=box, style=\"dashed,filled\", fillcolor=\"#fff2cc\", "
                         "color=\"#d6b656\", label=<<b>",
                      c->indent, "", (long long)id);
        put_text(b, t->name ? t->name : leaf_word(t));
        nb__sb_puts(b, ".grad</b><br/>");
        put_shape(b, t);
        if (c->o->values && t->grad && t->grad->numel <= VALUES_MAX) {
            nb__sb_puts(b, "<br/><font point-size=\"10\">");
            put_values(b, t->grad);
            nb__sb_puts(b, "</font>");
        }
        nb__sb_puts(b, ">];\n");
    } else
        return;
    /* The backward node sits beside its forward node. */
    nb__sb_printf(b, "%*s{rank=same; n%lld; %c%lld;}\n", c->indent, "", (long long)id,
                  t->node ? 'b' : 'g', (long long)id);
}

static void open_cluster(dot_ctx *c, int k)
{
    static const char *const fills[] = {"#f4f6fa", "#e8edf5", "#dde4f0"};
    nb_sbuf *b = &c->out;
    const scope *s = sc(c, k);
    nb__sb_printf(b, "%*ssubgraph cluster_%d_", c->indent, "", k);
    for (size_t i = 0; i < s->len && i < 40; i++) {
        char ch = s->path[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        nb__sb_putn(b, ok ? &ch : "_", 1);
    }
    c->indent += 2;
    nb__sb_printf(b, " {\n%*sstyle=\"rounded,filled\"; color=\"#8a9bb5\"; fillcolor=\"%s\";\n"
                     "%*slabeljust=l; fontsize=12; label=<<b>",
                  c->indent, "", fills[(s->depth - 1) % 3], c->indent, "");
    /* The last component of the path. */
    size_t start = s->len;
    while (start > 0 && s->path[start - 1] != '/')
        start--;
    put_html(b, s->path + start, s->len - start);
    nb__sb_puts(b, "</b>>;\n");
}

static void close_cluster(dot_ctx *c)
{
    c->indent -= 2;
    nb__sb_printf(&c->out, "%*s}\n", c->indent, "");
}

static void put_scope_nodes(dot_ctx *c, int k)
{
    for (int64_t i = sc(c, k)->first; i >= 0; i = c->e[i].next)
        put_node(c, i);
}

/* Clusters nest like scopes; walked without recursion. */
static void put_clusters(dot_ctx *c)
{
    int k = sc(c, 0)->child;
    while (k > 0) {
        open_cluster(c, k);
        put_scope_nodes(c, k);
        if (sc(c, k)->child > 0) {
            k = sc(c, k)->child;
            continue;
        }
        close_cluster(c);
        while (k > 0 && sc(c, k)->sibling < 0) {
            k = sc(c, k)->parent;
            if (k > 0)
                close_cluster(c);
        }
        if (k > 0)
            k = sc(c, k)->sibling;
    }
}

static void put_edges(dot_ctx *c)
{
    nb_sbuf *b = &c->out;
    for (int64_t k = 0; k < count_of(c); k++) {
        const nb_node *nd = at(c, k)->node;
        for (int i = 0; nd && i < nd->n; i++)
            nb__sb_printf(b, "  n%lld -> n%lld;\n", (long long)pos(c, nd->x[i]), (long long)k);
    }
    if (!c->o->backward)
        return;
    /* Gradients flow from an op's backward node to its inputs' backward (or
     * .grad) nodes; drawn with dir=back so that the backward column reads
     * bottom-up beside the forward one. */
    for (int64_t k = 0; k < count_of(c); k++) {
        const nb_node *nd = at(c, k)->node;
        for (int i = 0; nd && i < nd->n; i++) {
            const nb_tensor *x = nd->x[i];
            if (x->requires_grad)
                nb__sb_printf(b, "  %c%lld -> b%lld [dir=back, style=dashed, "
                                 "color=\"#b85450\"];\n",
                              x->node ? 'b' : 'g', (long long)pos(c, x), (long long)k);
        }
    }
}

static char *build(nb_tensor *root, const nb_dot_opts *opts, const char *fn)
{
    static const nb_dot_opts defaults = {0};
    if (nb__usable(fn, "root", root))
        return NULL;
    const char *outer = nb_error_scope_begin(fn);
    dot_ctx c = {.o = opts ? opts : &defaults, .root = root, .indent = 2,
                 .sc = {.elem = sizeof(scope)}};
    char *result = NULL;
    uint64_t errors = nb__thread()->errors; /* a stale tensor in the walk says so itself */
    if (nb__walk(&c.w, root, false, NULL) || place(&c))
        goto done;

    nb_sbuf *b = &c.out;
    nb__sb_puts(b, "digraph nabla {\n"
                   "  graph [rankdir=TB, nodesep=0.3, ranksep=0.35, fontname=\"Helvetica\"];\n"
                   "  node [fontname=\"Helvetica\", fontsize=11, margin=\"0.12,0.05\"];\n"
                   "  edge [color=\"#555555\", arrowsize=0.7];\n");
    put_scope_nodes(&c, 0);
    put_clusters(&c);
    put_edges(&c);
    if (c.o->title) {
        /* Last, so that clusters do not inherit it as their label. */
        nb__sb_puts(b, "  labelloc=t; fontsize=16; label=<<b>");
        put_text(b, c.o->title);
        nb__sb_puts(b, "</b>>;\n");
    }
    nb__sb_puts(b, "}\n");
    if (!b->failed) {
        result = b->p;
        b->p = NULL;
    }
done:
    if (!result && nb__thread()->errors == errors)
        nb__memory_error("%s: out of memory building the DOT text of %lld tensors", fn,
                  (long long)count_of(&c));
    nb__free(c.out.p);
    nb__free(c.e);
    nb__vec_free(&c.sc);
    nb__pmap_free(&c.path);
    nb__walk_free(&c.w);
    nb_error_scope_end(outer);
    return result;
}
char *nb_dot_string(nb_tensor *root, const nb_dot_opts *opts)
{
    return build(root, opts, "nb_dot_string");
}

void nb_dot_free(char *dot) { nb__free(dot); }


int nb_dot_write(nb_tensor *root, const char *path, const nb_dot_opts *opts)
{
    if (!path)
        return nb__error("nb_dot_write: path is NULL");
    char *dot = build(root, opts, "nb_dot_write");
    if (!dot)
        return -1;
    int rc = nb__write_file("nb_dot_write", path, dot, strlen(dot));
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

#ifdef NB_HAVE_GRAPHVIZ
/* Lays out and renders DOT text to path in fmt ("svg", "png"), under the
 * lock; errors name fn. */
static int render_text(const char *fn, const char *dot, const char *path, const char *fmt)
{
    call_once(&gv_once, gv_init);
    if (!gv_lock_ok || !gv)
        return nb__error("%s: could not start Graphviz (gvContext failed)", fn);
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

    if (rc == 0)
        rc = nb__write_file(fn, path, data, len);
    else
        nb__error("%s: Graphviz failed %s for '%s'%s%s", fn, stage, path, msg[0] ? ": " : "",
                  msg);
    if (data)
        gvFreeRenderData(data);
    return rc;
}
#endif

/* The format of path for fn ("svg", "png"), or NULL with an error (also
 * without Graphviz, which is checked first). */
static const char *render_format(const char *fn, const char *path)
{
    if (!nb_dot_can_render()) {
        nb__state_error("%s: this nabla was built without Graphviz (libgvc); use nb_dot_write "
                        "and run `dot -Tsvg file.dot -o file.svg`",
                        fn);
        return NULL;
    }
    if (!path) {
        nb__error("%s: path is NULL", fn);
        return NULL;
    }
    const char *fmt = nb__picture_format(path);
    if (!fmt)
        nb__error("%s: cannot tell the format of '%s': the name must end in .svg or .png", fn,
                  path);
    return fmt;
}

int nb_dot_render(nb_tensor *root, const char *path, const nb_dot_opts *opts)
{
    const char *fmt = render_format("nb_dot_render", path);
    if (!fmt || nb__usable("nb_dot_render", "root", root))
        return -1;
#ifdef NB_HAVE_GRAPHVIZ
    char *dot = build(root, opts, "nb_dot_render");
    if (!dot)
        return -1;
    int rc = render_text("nb_dot_render", dot, path, fmt);
    nb_dot_free(dot);
    return rc;
#else
    (void)opts;
    return -1;
#endif
}

int nb_dot_render_string(const char *dot, const char *path)
{
    const char *fmt = render_format("nb_dot_render_string", path);
    if (!fmt)
        return -1;
    if (!dot)
        return nb__error("nb_dot_render_string: dot is NULL");
#ifdef NB_HAVE_GRAPHVIZ
    return render_text("nb_dot_render_string", dot, path, fmt);
#else
    return -1;
#endif
}
