/* Graph pictures: the DOT text (content, clusters, styles, escaping), its
 * validity for the real `dot` binary (no stderr at all), rendering through
 * libgvc, and errors. Registered only when `dot` is found (NB_DOT is its path). */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, access, rmdir */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nabla/nabla.h"
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <unistd.h>

/* ---- helpers ---- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nb_test_dot_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    static const char *const names[] = {"g.dot", "g.svg",   "g.err",   "g.png",  "t0.svg",
                                        "t1.svg", "bad.pdf", "big.dot", "x.SVG", NULL};
    char p[128];
    for (int i = 0; names[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        remove(p);
    }
    return rmdir(tmpdir);
}

static const char *tmp(const char *name)
{
    static char p[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

/* The whole file, NUL-terminated (malloc'd), and its size. */
static char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0) {
            char *b2 = realloc(buf, cap * 2);
            if (!b2) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b2;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (size)
        *size = n;
    return buf;
}

/* Occurrences of needle in s. (Not a strstr loop: under ASan each strstr
 * measures the whole rest of s, which is quadratic on the long chain.) */
static int count(const char *s, const char *needle)
{
    size_t n = strlen(s), k = strlen(needle);
    int c = 0;
    for (size_t i = 0; i + k <= n; i++)
        if (s[i] == needle[0] && memcmp(s + i, needle, k) == 0)
            c++;
    return c;
}

/* The line of the DOT text that declares node `label` (the first line
 * holding it), copied into line. */
static const char *line_with(const char *dot, const char *needle, char *line, size_t cap)
{
    const char *p = strstr(dot, needle);
    if (!p)
        return NULL;
    const char *a = p, *b = p;
    while (a > dot && a[-1] != '\n')
        a--;
    while (*b && *b != '\n')
        b++;
    size_t n = (size_t)(b - a) < cap - 1 ? (size_t)(b - a) : cap - 1;
    memcpy(line, a, n);
    line[n] = '\0';
    return line;
}

/* Runs `$NB_DOT -Tsvg` on the DOT text; asserts exit 0 and an empty stderr;
 * returns the SVG (malloc'd). */
static char *run_dot(const char *dot)
{
    const char *exe = getenv("NB_DOT");
    assert_non_null(exe);
    FILE *f = fopen(tmp("g.dot"), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(dot, 1, strlen(dot), f), strlen(dot));
    assert_int_equal(fclose(f), 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -Tsvg '%s' -o '%s' 2>'%s'", exe, tmp("g.dot"), tmp("g.svg"),
             tmp("g.err"));
    int rc = system(cmd);
    size_t nerr = 0;
    char *err = slurp(tmp("g.err"), &nerr);
    assert_non_null(err);
    if (nerr)
        fprintf(stderr, "# dot said: %s\n", err);
    assert_int_equal(nerr, 0);
    free(err);
    assert_int_equal(rc, 0);
    char *svg = slurp(tmp("g.svg"), NULL);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "<svg"));
    return svg;
}

/* ---- a small model: two dense layers with tanh, an MSE-like loss ---- */

typedef struct {
    nb_tensor *x, *W1, *b1, *W2, *b2;
    nb_graph *g;
    nb_tensor *loss;
    int64_t live; /* heap tensors alive before */
} mlp;

static void mlp_build(mlp *m)
{
    nb_rng r = nb_rng_new(7);
    m->live = nb_live_tensors();
    m->x = nb_set_name(nb_randn(NB_F32, NB_SHAPE(4, 3), &r), "x");
    m->W1 = nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(4, 3), &r)), "W1");
    m->b1 = nb_set_name(nb_param(nb_zeros(NB_F32, NB_SHAPE(3))), "b1");
    m->W2 = nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(3), &r)), "W2");
    m->b2 = nb_set_name(nb_param(nb_zeros(NB_F32, NB_SHAPE(1))), "b2");
    m->g = nb_graph_new();
    assert_non_null(m->g);
    assert_int_equal(nb_scope_push("model"), 0);
    assert_int_equal(nb_scope_push("dense"), 0);
    nb_tensor *h = nb_set_name(nb_tanh(nb_add(nb_mul(m->x, m->W1), m->b1)), "h1");
    nb_scope_pop();
    assert_int_equal(nb_scope_push("dense_1"), 0);
    nb_tensor *o = nb_add(nb_sum(nb_mul(h, m->W2), .axes = NB_AXES(1), .keepdims = true), m->b2);
    nb_scope_pop();
    nb_scope_pop();
    m->loss = nb_set_name(nb_mean(nb_square(o)), "loss");
    assert_non_null(m->loss);
}

static void mlp_free(mlp *m)
{
    nb_graph_free(m->g);
    nb_free(m->x);
    nb_free(m->W1);
    nb_free(m->b1);
    nb_free(m->W2);
    nb_free(m->b2);
    assert_int_equal(nb_live_tensors(), m->live);
}

/* ---- tests ---- */

static void test_forward_text(void **state)
{
    (void)state;
    mlp m;
    mlp_build(&m);
    char *dot = nb_dot_string(m.loss, NULL);
    assert_non_null(dot);
    char line[1024];

    assert_true(strncmp(dot, "digraph", 7) == 0);
    /* Parameters: orange boxes with name, shape and dtype. */
    assert_non_null(line_with(dot, "<b>W1</b>", line, sizeof line));
    assert_non_null(strstr(line, "shape=box"));
    assert_non_null(strstr(line, "#ffe6cc"));
    assert_non_null(strstr(line, "(4,3) f32"));
    assert_non_null(line_with(dot, "<b>b1</b>", line, sizeof line));
    assert_non_null(strstr(line, "#ffe6cc"));
    assert_non_null(strstr(line, "(3,) f32"));
    /* Data without grad: grey ellipse, not a parameter colour. */
    assert_non_null(line_with(dot, "<b>x</b>", line, sizeof line));
    assert_non_null(strstr(line, "shape=ellipse"));
    assert_null(strstr(line, "#ffe6cc"));
    /* Ops: name first, the tensor's name, shape and dtype. */
    assert_non_null(line_with(dot, "<b>tanh</b>", line, sizeof line));
    assert_non_null(strstr(line, "<i>h1</i>"));
    assert_non_null(strstr(line, "(4,3) f32"));
    assert_non_null(strstr(line, "#dae8fc"));
    assert_non_null(strstr(dot, "<b>sum</b><br/>(4,1) f32")); /* dense_1 */
    assert_non_null(strstr(dot, "<b>sum</b><br/>() f32"));    /* mean */
    /* The root stands out. */
    assert_non_null(line_with(dot, "<i>loss</i>", line, sizeof line));
    assert_non_null(strstr(line, "<b>div</b>"));
    assert_non_null(strstr(line, "penwidth"));
    /* mean's divisor is a scalar constant that shows its value. */
    assert_non_null(strstr(dot, "<b>4</b><br/>() f32"));
    /* square(o) = o * o: two edges from the same node. */
    assert_int_equal(count(dot, "<b>mul</b>"), 3);
    /* Scopes: nested clusters labelled with the last component. */
    assert_int_equal(count(dot, "subgraph cluster_"), 3);
    const char *model = strstr(dot, "label=<<b>model</b>>");
    const char *d1 = strstr(dot, "label=<<b>dense</b>>");
    const char *d2 = strstr(dot, "label=<<b>dense_1</b>>");
    assert_non_null(model);
    assert_non_null(d1);
    assert_non_null(d2);
    assert_true(model < d1 && d1 < d2);
    /* W1 sits in dense's cluster, W2 in dense_1's, x outside them all. */
    const char *w1 = strstr(dot, "<b>W1</b>"), *w2 = strstr(dot, "<b>W2</b>");
    assert_true(d1 < w1 && w1 < d2);
    assert_true(d2 < w2);
    assert_true(strstr(dot, "<b>x</b>") < model);
    /* No backward nodes unless asked, no title unless given. */
    assert_null(strstr(dot, "_backward"));
    assert_null(strstr(dot, ".grad"));
    assert_null(strstr(dot, "labelloc"));
    /* Every op input is one edge: 2+2+1 (dense) + 2+1+2 (dense_1) + 2+1+2 (loss). */
    assert_int_equal(count(dot, " -> "), 15);
    nb_dot_free(dot);
    mlp_free(&m);
}

static void test_backward_text(void **state)
{
    (void)state;
    mlp m;
    mlp_build(&m);
    assert_int_equal(nb_backward(m.loss), 0);
    nb_dot_opts o = {.backward = true, .title = "step 1", .values = true};
    char *dot = nb_dot_string(m.loss, &o);
    assert_non_null(dot);
    char line[1024];
    assert_non_null(line_with(dot, "tanh_backward", line, sizeof line));
    assert_non_null(strstr(line, "dashed"));
    assert_non_null(strstr(line, "#f8cecc"));
    assert_int_equal(count(dot, "mul_backward"), 3);
    assert_int_equal(count(dot, "div_backward"), 1);
    /* One .grad node per leaf that requires grad; x does not. */
    assert_non_null(strstr(dot, "W1.grad"));
    assert_non_null(strstr(dot, "b1.grad"));
    assert_non_null(strstr(dot, "W2.grad"));
    assert_non_null(strstr(dot, "b2.grad"));
    assert_null(strstr(dot, "x.grad"));
    assert_int_equal(count(dot, ".grad</b>"), 4);
    /* Gradient edges: every forward edge into an input that requires grad
     * (all but x -> mul and 4 -> div): 15 - 2. */
    assert_int_equal(count(dot, "dir=back"), 13);
    /* Values: b1 is zero, and its gradient (4 elements or fewer) is shown. */
    assert_non_null(line_with(dot, "<b>b1</b>", line, sizeof line));
    assert_non_null(strstr(line, "[0, 0, 0]"));
    assert_non_null(line_with(dot, "<b>b2.grad</b>", line, sizeof line));
    assert_non_null(strstr(line, "point-size"));
    /* The 12-element tensors show none. */
    assert_non_null(line_with(dot, "<b>W1</b>", line, sizeof line));
    assert_null(strstr(line, "point-size"));
    assert_non_null(strstr(dot, "label=<<b>step 1</b>>"));
    nb_dot_free(dot);
    mlp_free(&m);
}

static void test_dot_accepts_it(void **state)
{
    (void)state;
    mlp m;
    mlp_build(&m);
    assert_int_equal(nb_backward(m.loss), 0);
    const nb_dot_opts opts[] = {{0}, {.backward = true, .values = true, .title = "t"}};
    for (int i = 0; i < 2; i++) {
        char *dot = nb_dot_string(m.loss, &opts[i]);
        assert_non_null(dot);
        char *svg = run_dot(dot);
        assert_non_null(strstr(svg, "<title>cluster_"));
        assert_non_null(strstr(svg, ">W1</text>"));
        assert_non_null(strstr(svg, ">tanh</text>"));
        assert_non_null(strstr(svg, ">(4,3) f32</text>"));
        assert_non_null(strstr(svg, ">dense</text>"));
        if (opts[i].backward) {
            assert_non_null(strstr(svg, ">tanh_backward</text>"));
            assert_non_null(strstr(svg, ">W1.grad</text>"));
        } else
            assert_null(strstr(svg, "_backward"));
        free(svg);
        nb_dot_free(dot);
    }
    mlp_free(&m);
}

/* A user-defined op with the kernel contract of nabla/kernel.h: y = 2x;
 * dx = 2 dy. One kernel per dtype, any strides. */
NB_UNARY_KERNELS(twice, 2 * u)
static void twice_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = nb_add(dy, dy);
}
static const nb_op twice = {.name = "tw<i>ce & \"co\"", .arity = 1, .shape = nb_shape_same,
                            .forward = NB_KERNELS(twice), .backward = twice_backward};

static void test_escaping(void **state)
{
    (void)state;
    /* Quotes, backslashes, markup, control characters, UTF-8 and broken UTF-8. */
    nb_tensor *a = nb_set_name(nb_param(nb_ones(NB_F64, NB_SHAPE(2))), "a\"b\\c<d>&e\n\tf");
    nb_tensor *b = nb_set_name(nb_param(nb_ones(NB_F64, NB_SHAPE(2))), "\xce\xa9 ok \xff\xc3(");
    nb_tensor *c = nb_set_name(nb_ones(NB_F64, NB_SHAPE(2)), "\\");
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_scope_push("s\"1<b>\\"), 0);
    assert_int_equal(nb_scope_push("x/y"), 0); /* a slash inside a name nests too */
    nb_tensor *y = nb_apply(&twice, (nb_tensor *[]){nb_mul(nb_add(a, b), c)}, 1, NULL);
    nb_scope_pop();
    nb_scope_pop();
    y = nb_set_name(nb_sum(y), "\"");
    assert_non_null(y);
    assert_int_equal(nb_backward(y), 0);
    nb_dot_opts o = {.backward = true, .values = true, .title = "</b>\"\\"};
    char *dot = nb_dot_string(y, &o);
    assert_non_null(dot);
    assert_non_null(strstr(dot, "a&quot;b\\c&lt;d&gt;&amp;e  f"));
    assert_non_null(strstr(dot, "\xce\xa9 ok ?" "?("));
    assert_non_null(strstr(dot, "tw&lt;i&gt;ce &amp; &quot;co&quot;_backward"));
    assert_non_null(strstr(dot, "<b>s&quot;1&lt;b&gt;\\</b>"));
    assert_int_equal(count(dot, "subgraph cluster_"), 3); /* s"1<b>\, x, y */
    assert_null(strstr(dot, "\xff"));
    char *svg = run_dot(dot);
    assert_non_null(strstr(svg, ">a&quot;b\\c&lt;d&gt;&amp;e ")); /* SVG writes "  " as " &#160;" */
    assert_non_null(strstr(svg, ">\xce\xa9 ok ?" "?(.grad</text>"));
    assert_non_null(strstr(svg, ">tw&lt;i&gt;ce &amp; &quot;co&quot;</text>"));
    free(svg);
    nb_dot_free(dot);
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
    nb_free(c);
}

/* Marked tensors (nb_check_graph's failing nodes) are filled red, the root
 * and a leaf among them, each with its note escaped; the others are not. */
static void test_marked(void **state)
{
    (void)state;
    nb_tensor *x = nb_set_requires_grad(nb_ones(NB_F64, NB_SHAPE(2)), true);
    nb_graph *g = nb_graph_new();
    nb_tensor *t = nb_tanh(x), *y = nb_sum(nb_exp(t));
    assert_non_null(y);
    nb_tensor *const marked[] = {t, y, x};
    const char *const notes[] = {"wrong <&> \"here\"", NULL, "leaf note"};
    nb_dot_opts o = {.marked = marked, .marked_notes = notes, .n_marked = 3};
    char *dot = nb_dot_string(y, &o);
    assert_non_null(dot);
    assert_int_equal(count(dot, "fillcolor=\"#f28b82\""), 3);
    assert_int_equal(count(dot, "penwidth=2,"), 3); /* the root's 2.5 gives way */
    assert_int_equal(count(dot, "penwidth=2.5"), 0);
    assert_non_null(strstr(dot, "<b>wrong &lt;&amp;&gt; &quot;here&quot;</b>"));
    assert_non_null(strstr(dot, "<b>leaf note</b>"));
    const char *e = strstr(dot, "<b>exp</b>"), *red = NULL; /* exp stays blue */
    assert_non_null(e);
    while (e > dot && e[-1] != '\n')
        e--;
    for (const char *p = e; *p && *p != '\n' && !red; p++)
        red = strncmp(p, "#f28b82", 7) == 0 ? p : NULL;
    assert_null(red);
    assert_non_null(strstr(e, "#dae8fc"));
    free(run_dot(dot));
    nb_dot_free(dot);
    /* Without notes, and with n_marked but no array: no mark at all. */
    o.marked_notes = NULL;
    dot = nb_dot_string(y, &o);
    assert_int_equal(count(dot, "#f28b82"), 3);
    assert_null(strstr(dot, "note"));
    nb_dot_free(dot);
    o.marked = NULL;
    dot = nb_dot_string(y, &o);
    assert_int_equal(count(dot, "#f28b82"), 0);
    assert_int_equal(count(dot, "penwidth=2.5"), 1);
    nb_dot_free(dot);
    nb_graph_free(g);
    nb_free(x);
}

static void test_shapes_of_graphs(void **state)
{
    (void)state;
    /* A leaf alone. */
    nb_tensor *w = nb_set_name(nb_param(nb_ones(NB_F32, NB_SHAPE(2, 2))), "w");
    char *dot = nb_dot_string(w, &(nb_dot_opts){.backward = true});
    assert_non_null(dot);
    assert_non_null(strstr(dot, "<b>w</b>"));
    assert_non_null(strstr(dot, "w.grad"));
    assert_null(strstr(dot, " -> "));
    assert_null(strstr(dot, "cluster"));
    nb_dot_free(dot);

    /* A parameter shared by two scopes goes to their common parent. */
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_scope_push("net"), 0);
    assert_int_equal(nb_scope_push("left"), 0);
    nb_tensor *l = nb_tanh(w);
    nb_scope_pop();
    assert_int_equal(nb_scope_push("right"), 0);
    nb_tensor *r = nb_neg(w);
    nb_scope_pop();
    nb_scope_pop();
    nb_tensor *y = nb_sum(nb_sub(l, r));
    assert_non_null(y);
    dot = nb_dot_string(y, NULL);
    assert_non_null(dot);
    const char *net = strstr(dot, "<b>net</b>"), *left = strstr(dot, "<b>left</b>"),
               *right = strstr(dot, "<b>right</b>"), *pw = strstr(dot, "<b>w</b>");
    assert_true(net && left && right && pw);
    assert_true(net < pw && pw < left && pw < right);
    free(run_dot(dot));
    nb_dot_free(dot);

    /* A scope pushed twice with the same path is one cluster; a tensor made
     * with gradients off is a constant leaf (it has no history). */
    nb_graph_reset(g);
    nb_tensor *acc = w;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(nb_scope_push("cell"), 0);
        acc = nb_tanh(acc);
        nb_scope_pop();
    }
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *k = nb_set_name(nb_tanh(w), "k");
    nb_set_grad_enabled(prev);
    y = nb_mul(acc, k);
    dot = nb_dot_string(y, NULL);
    assert_non_null(dot);
    assert_int_equal(count(dot, "subgraph cluster_"), 1);
    assert_int_equal(count(dot, "<b>tanh</b>"), 3);
    char line[1024];
    assert_non_null(line_with(dot, "<b>k</b>", line, sizeof line));
    assert_non_null(strstr(line, "ellipse"));
    nb_dot_free(dot);
    nb_graph_free(g);
    nb_free(w);
}

/* Views copy nothing, but each is a node with its own shape, and .values
 * reads its elements through its strides (permuted, reversed and stepped,
 * broadcast with stride 0, a view of data with no history). */
static void test_views(void **state)
{
    (void)state;
    nb_tensor *a = nb_set_name(
        nb_param(nb_from_array(NB_F64, NB_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6})), "a");
    nb_tensor *c = nb_set_name(nb_param(nb_from_array(NB_F64, NB_SHAPE(2), (double[]){10, 20})),
                               "c");
    nb_tensor *x = nb_from_array(NB_F64, NB_SHAPE(2, 2), (double[]){1, 2, 3, 4});
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_permute(a, 2, (int[]){1, 0});                  /* [[1,4],[2,5],[3,6]] */
    nb_tensor *s = nb_slice(p, 0, INT64_MAX, INT64_MIN, -2);         /* rows 2, 0 */
    nb_tensor *bc = nb_broadcast_to(c, NB_SHAPE(2, 2));              /* stride 0 */
    nb_tensor *xt = nb_set_name(nb_transpose(x, 0, 1), "xt");        /* no history */
    nb_tensor *y = nb_sum(nb_mul(nb_mul(s, bc), xt));
    assert_non_null(y);
    assert_false(nb_is_contiguous(p));
    assert_true(nb_strides(s)[0] < 0);
    assert_int_equal(nb_strides(bc)[0], 0);
    assert_float_equal(nb_item(y), 730, 0);
    assert_int_equal(nb_backward(y), 0);

    char *dot = nb_dot_string(y, &(nb_dot_opts){.values = true, .backward = true});
    assert_non_null(dot);
    char line[1024];
    assert_non_null(line_with(dot, "<b>permute</b>", line, sizeof line));
    assert_non_null(strstr(line, "(3,2) f64"));
    assert_non_null(strstr(line, "[[1, 4], [2, 5], [3, 6]]"));
    assert_non_null(line_with(dot, "<b>slice</b>", line, sizeof line));
    assert_non_null(strstr(line, "(2,2) f64"));
    assert_non_null(strstr(line, "[[3, 6], [1, 4]]"));
    assert_non_null(line_with(dot, "<b>broadcast_to</b>", line, sizeof line));
    assert_non_null(strstr(line, "(2,2) f64"));
    assert_non_null(strstr(line, "[[10, 20], [10, 20]]"));
    /* A view of data that needs no grad records nothing: a constant leaf,
     * still with its own (transposed) values. */
    assert_non_null(line_with(dot, "<b>xt</b>", line, sizeof line));
    assert_non_null(strstr(line, "ellipse"));
    assert_non_null(strstr(line, "[[1, 3], [2, 4]]"));
    assert_non_null(strstr(dot, "[[30, 120], [10, 80]]")); /* s * bc */
    assert_non_null(strstr(dot, "<b>sum</b><br/>() f64<br/><font point-size=\"10\">730"));
    /* Gradients through the views: back to a's and c's shapes. */
    assert_non_null(line_with(dot, "<b>a.grad</b>", line, sizeof line));
    assert_non_null(strstr(line, "(2,3) f64"));
    assert_non_null(strstr(line, "[[20, 0, 10], [80, 0, 60]]"));
    assert_non_null(line_with(dot, "<b>c.grad</b>", line, sizeof line));
    assert_non_null(strstr(line, "[5, 34]"));
    assert_int_equal(count(dot, "permute_backward"), 1);
    assert_int_equal(count(dot, "slice_backward"), 1);
    assert_int_equal(count(dot, "broadcast_to_backward"), 1);
    /* a -> permute -> slice, c -> broadcast_to, 2 + 2 into the muls, 1 sum. */
    assert_int_equal(count(dot, " -> n"), 8);
    free(run_dot(dot));
    nb_dot_free(dot);
    nb_graph_free(g);
    nb_free(a);
    nb_free(c);
    nb_free(x);
}

/* Much deeper than any recursion could go. */
static void test_long_chain(void **state)
{
    (void)state;
    enum { N = 100000 };
    nb_tensor *w = nb_param(nb_ones(NB_F32, NB_SHAPE(1)));
    nb_graph *g = nb_graph_new();
    nb_tensor *y = w;
    for (int i = 0; i < N; i++)
        y = nb_neg(y);
    assert_non_null(y);
    char *dot = nb_dot_string(y, &(nb_dot_opts){.backward = true});
    assert_non_null(dot);
    assert_int_equal(count(dot, "<b>neg</b>"), N);
    assert_int_equal(count(dot, "neg_backward"), N);
    assert_non_null(strstr(dot, "n0 -> n1;"));
    char last[64];
    snprintf(last, sizeof last, "n%d -> n%d;", N - 1, N);
    assert_non_null(strstr(dot, last));
    nb_dot_free(dot);
    /* nb_dot_write agrees with nb_dot_string. */
    assert_int_equal(nb_dot_write(y, tmp("big.dot"), NULL), 0);
    size_t n = 0;
    char *text = slurp(tmp("big.dot"), &n);
    dot = nb_dot_string(y, NULL);
    assert_non_null(text);
    assert_non_null(dot);
    assert_int_equal(n, strlen(dot));
    assert_string_equal(text, dot);
    free(text);
    nb_dot_free(dot);
    nb_graph_free(g);
    nb_free(w);
}

static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static void test_render(void **state)
{
    (void)state;
    mlp m;
    mlp_build(&m);
    nb_clear_error();
    if (!nb_dot_can_render()) {
        assert_int_equal(nb_dot_render(m.loss, tmp("g.svg"), NULL), -1);
        assert_non_null(strstr(nb_last_error(), "nb_dot_render"));
        assert_non_null(strstr(nb_last_error(), "Graphviz"));
        mlp_free(&m);
        return;
    }
    assert_int_equal(nb_dot_render(m.loss, tmp("g.svg"), NULL), 0);
    size_t n = 0;
    char *svg = slurp(tmp("g.svg"), &n);
    assert_non_null(svg);
    assert_true(strncmp(svg, "<?xml", 5) == 0 || strncmp(svg, "<svg", 4) == 0);
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, ">W1</text>"));
    free(svg);
    assert_int_equal(nb_dot_render(m.loss, tmp("g.png"), &(nb_dot_opts){.backward = true}), 0);
    unsigned char *png = (unsigned char *)slurp(tmp("g.png"), &n);
    assert_non_null(png);
    assert_true(n > 1000);
    assert_memory_equal(png, png_sig, 8);
    free(png);
    /* The extension is read case-insensitively. */
    assert_int_equal(nb_dot_render(m.loss, tmp("x.SVG"), NULL), 0);
    assert_null(nb_last_error());
    mlp_free(&m);
}

typedef struct {
    nb_tensor *root;
    const char *path;
    int rc;
} job;

static int render_job(void *arg)
{
    job *j = arg;
    for (int i = 0; i < 3 && j->rc == 0; i++)
        j->rc = nb_dot_render(j->root, j->path, &(nb_dot_opts){.backward = i % 2 == 1});
    return 0;
}

/* Renders from two threads at once (Graphviz itself is not reentrant). */
static void test_render_threads(void **state)
{
    (void)state;
    if (!nb_dot_can_render())
        return; /* test_render checked the error */
    mlp m;
    mlp_build(&m);
    job jobs[2] = {{m.loss, tmp("t0.svg"), 0}, {m.loss, tmp("t1.svg"), 0}};
    thrd_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(thrd_create(&th[i], render_job, &jobs[i]), thrd_success);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(thrd_join(th[i], NULL), thrd_success);
        assert_int_equal(jobs[i].rc, 0);
        char *svg = slurp(jobs[i].path, NULL);
        assert_non_null(svg);
        assert_non_null(strstr(svg, ">tanh</text>"));
        free(svg);
    }
    mlp_free(&m);
}

static void expect_error(int rc, const char *fn, const char *part)
{
    assert_int_equal(rc, -1);
    const char *e = nb_last_error();
    assert_non_null(e);
    if (!strstr(e, fn) || (part && !strstr(e, part)))
        fail_msg("error '%s' should name %s and say '%s'", e, fn, part ? part : "");
    nb_clear_error();
}

static void test_bad_inputs(void **state)
{
    (void)state;
    nb_tensor *w = nb_param(nb_ones(NB_F32, NB_SHAPE(2)));
    nb_clear_error();
    assert_null(nb_dot_string(NULL, NULL));
    expect_error(-1, "nb_dot_string", "NULL");
    expect_error(nb_dot_write(NULL, tmp("g.dot"), NULL), "nb_dot_write", "NULL");
    expect_error(nb_dot_write(w, NULL, NULL), "nb_dot_write", "path");
    expect_error(nb_dot_write(w, "/nonexistent-dir/g.dot", NULL), "nb_dot_write",
                 "/nonexistent-dir/g.dot");
    expect_error(nb_dot_write(w, tmpdir, NULL), "nb_dot_write", "cannot open");
    nb_dot_free(NULL);

    if (nb_dot_can_render()) {
        expect_error(nb_dot_render(NULL, tmp("g.svg"), NULL), "nb_dot_render", "NULL");
        expect_error(nb_dot_render(w, NULL, NULL), "nb_dot_render", "path");
        expect_error(nb_dot_render(w, tmp("bad.pdf"), NULL), "nb_dot_render", ".svg or .png");
        expect_error(nb_dot_render(w, tmp("g"), NULL), "nb_dot_render", ".svg or .png");
        expect_error(nb_dot_render(w, tmp("g.svgz"), NULL), "nb_dot_render", ".svg or .png");
        expect_error(nb_dot_render(w, "/nonexistent-dir/g.svg", NULL), "nb_dot_render",
                     "/nonexistent-dir/g.svg");
        assert_int_equal(access(tmp("bad.pdf"), F_OK), -1); /* nothing written */
    } else {
        expect_error(nb_dot_render(w, tmp("g.svg"), NULL), "nb_dot_render", "Graphviz");
    }

    /* A failed expression keeps its own (first) error. */
    nb_graph *g = nb_graph_new();
    nb_tensor *d = nb_ones(NB_F64, NB_SHAPE(2));
    nb_tensor *bad = nb_tanh(nb_add(d, w)); /* dtypes differ */
    assert_null(bad);
    assert_non_null(strstr(nb_last_error(), "nb_add"));
    char first[512];
    snprintf(first, sizeof first, "%s", nb_last_error());
    assert_null(nb_dot_string(bad, NULL));
    assert_string_equal(nb_last_error(), first);
    assert_int_equal(nb_dot_write(bad, tmp("g.dot"), NULL), -1);
    assert_string_equal(nb_last_error(), first);
    nb_clear_error();
    nb_graph_free(g);
    nb_free(d);
    nb_free(w);
}


static void test_out_of_memory(void **state)
{
    (void)state;
    mlp m;
    mlp_build(&m);
    nb_dot_opts o = {.backward = true};
    char *want = nb_dot_string(m.loss, &o);
    assert_non_null(want);
    /* Every allocation of nb_dot_string fails in turn: NULL and a message,
     * nothing leaked (ASan and valgrind check that), until it succeeds. */
    bool done = false;
    for (int64_t k = 0; k < 200 && !done; k++) {
        alloc_budget = k;
        nb_set_allocator(&failing_allocator);
        nb_clear_error();
        char *dot = nb_dot_string(m.loss, &o);
        nb_set_allocator(NULL);
        if (dot) {
            assert_string_equal(dot, want);
            nb_dot_free(dot);
            done = true;
        } else {
            assert_non_null(nb_last_error());
            assert_non_null(strstr(nb_last_error(), "nb_dot_string: out of memory"));
        }
    }
    assert_true(done);
    nb_dot_free(want);
    mlp_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_text),   cmocka_unit_test(test_backward_text),
        cmocka_unit_test(test_dot_accepts_it), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_marked),
        cmocka_unit_test(test_shapes_of_graphs), cmocka_unit_test(test_views),
        cmocka_unit_test(test_long_chain),
        cmocka_unit_test(test_render),         cmocka_unit_test(test_render_threads),
        cmocka_unit_test(test_bad_inputs),     cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
