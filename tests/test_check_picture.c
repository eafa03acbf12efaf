/* Pictures of failing gradient checks: the Jacobian error as a heat map
 * (SVG read back as XML, PNG decoded back: signature, chunks, CRCs, pixels)
 * of reports made by hand and by a failing nb_gradcheck, the graph of a function with its failing node red (nb_check_graph), and
 * bad input to both. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nabla/nabla.h"
#include "testing.h"
#define DIR_TEMPLATE "/tmp/nb_test_picture_XXXXXX"
#include "file_testing.h"

/* ---- files ---- */

/* The whole file, NUL-terminated (malloc'd), and its size; NULL if absent. */
static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, k;
    unsigned char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0)
        if ((n += k) == cap - 1) {
            unsigned char *b2 = realloc(buf, cap *= 2);
            if (!b2)
                free(buf);
            buf = b2;
        }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (size)
        *size = n;
    return buf;
}

static int count(const char *s, const char *needle)
{
    size_t n = strlen(s), k = strlen(needle);
    int c = 0;
    for (size_t i = 0; i + k <= n; i++)
        c += memcmp(s + i, needle, k) == 0;
    return c;
}

/* Well-formed XML, as far as elements go: every start tag closed in order
 * (or self-closing), attribute values quoted, no stray '<' or '&'. */
static void assert_xml(const char *s)
{
    const char *stack[64];
    size_t len[64];
    int depth = 0, roots = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '&') {
            assert_true(strncmp(p, "&amp;", 5) == 0 || strncmp(p, "&lt;", 4) == 0 ||
                        strncmp(p, "&gt;", 4) == 0 || strncmp(p, "&quot;", 6) == 0);
            continue;
        }
        if (*p != '<')
            continue;
        if (p[1] == '?') { /* declaration */
            p = strstr(p, "?>");
            assert_non_null(p);
            continue;
        }
        bool closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t n = strcspn(name, " \t\n/>");
        assert_true(n > 0);
        const char *q = name + n;
        bool quoted = false;
        for (; *q && (quoted || *q != '>'); q++) {
            assert_true(quoted || *q != '<');
            if (*q == '"')
                quoted = !quoted;
        }
        assert_int_equal(*q, '>');
        if (closing) {
            assert_true(depth > 0);
            depth--;
            assert_true(len[depth] == n && memcmp(stack[depth], name, n) == 0);
        } else if (q[-1] != '/') {
            assert_true(depth < 64);
            roots += depth == 0;
            stack[depth] = name;
            len[depth++] = n;
        }
        p = q;
    }
    assert_int_equal(depth, 0);
    assert_int_equal(roots, 1);
}

/* ---- a report built by hand ---- */

/* rows x cols: N(i,j) = 1 + i + j/10, A = N but at entries (2,1) (+0.5, the
 * worst), (0,3) (+0.02, beyond tolerance) and (1,0) (+2e-3, within).
 * Entries off the grid of a bigger report are right. */
static void make_report(nb_check_report *r, int64_t rows, int64_t cols)
{
    memset(r, 0, sizeof *r);
    r->n = 1;
    r->order = 1;
    r->atol = 1e-5;
    r->rtol = 1e-3;
    r->out_ndim = 1;
    r->out_shape[0] = rows;
    nb_check_input *in = &r->input[0];
    in->rows = rows;
    in->cols = cols;
    in->jacobian_analytic = nb_mem_alloc((size_t)(rows * cols) * sizeof(double));
    in->jacobian_numeric = nb_mem_alloc((size_t)(rows * cols) * sizeof(double));
    assert_non_null(in->jacobian_analytic);
    assert_non_null(in->jacobian_numeric);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            in->jacobian_numeric[i * cols + j] = in->jacobian_analytic[i * cols + j] =
                1 + (double)i + (double)j / 10;
    in->jacobian_analytic[2 * cols + 1] += 0.5;
    in->jacobian_analytic[0 * cols + 3] += 0.02;
    in->jacobian_analytic[1 * cols + 0] += 2e-3; /* tolerance there: 2.01e-3 */
    in->worst = 1;
    in->worst_out = 2;
    in->worst_index[0] = 1;
    in->max_abs_err = 0.5;
    in->analytic = in->jacobian_analytic[2 * cols + 1];
    in->numeric = in->jacobian_numeric[2 * cols + 1];
}

/* The fill of the cell rect at (x, y) in the SVG: "#rrggbb". */
static void svg_fill_at(const char *svg, int x, int y, char out[8])
{
    char key[64];
    snprintf(key, sizeof key, "<rect x=\"%d\" y=\"%d\" ", x, y);
    const char *p = strstr(svg, key);
    assert_non_null(p);
    p = strstr(p, "fill=\"");
    assert_non_null(p);
    memcpy(out, p + 6, 7);
    out[7] = '\0';
}

/* The rects in the SVG's group of cells. */
static int cells_of(const char *svg)
{
    const char *g = strstr(svg, "<g id=\"cells\"");
    assert_non_null(g);
    const char *end = strstr(g, "</g>");
    assert_non_null(end);
    int rects = 0;
    for (const char *p = g; (p = strstr(p, "<rect ")) && p < end; p++)
        rects++;
    return rects;
}

/* Cells start at (78, 84) in the SVG (check_picture.c's margins). */
#define SVG_X0 78
#define SVG_Y0 84

static void test_heatmap_svg(void **state)
{
    (void)state;
    nb_check_report r;
    make_report(&r, 3, 4);
    assert_int_equal(nb_check_heatmap(&r, 0, P("h.svg")), 0);
    char *svg = (char *)slurp(P("h.svg"), NULL);
    assert_non_null(svg);
    assert_xml(svg);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    /* One rect per entry in the cells group. */
    assert_int_equal(cells_of(svg), 12);
    /* 3 x 4 cells of 24 pixels (480 / 4, capped at 24); the worst outlined. */
    assert_non_null(strstr(svg, "<rect id=\"worst\" data-row=\"2\" data-col=\"1\""));
    char fill[8];
    svg_fill_at(svg, SVG_X0 + 24, SVG_Y0 + 48, fill); /* worst: the darkest */
    assert_string_equal(fill, "#67000d");
    svg_fill_at(svg, SVG_X0 + 72, SVG_Y0, fill); /* beyond tolerance: warm, lighter */
    assert_true(strcmp(fill, "#67000d") != 0 && fill[1] != fill[3]);
    svg_fill_at(svg, SVG_X0, SVG_Y0 + 24, fill); /* within: grey */
    assert_true(fill[1] == fill[3] && fill[3] == fill[5] && fill[2] == fill[4]);
    assert_string_not_equal(fill, "#ffffff");
    svg_fill_at(svg, SVG_X0 + 24, SVG_Y0, fill); /* exact: white */
    assert_string_equal(fill, "#ffffff");
    /* Title, axes, legend. */
    assert_non_null(strstr(svg, "of input 1<"));
    assert_non_null(strstr(svg, "max abs error 5.00e-01"));
    assert_non_null(strstr(svg, "2 of 12 entries beyond tolerance atol 1e-05 + rtol 1e-03"));
    assert_non_null(strstr(svg, ">input element<"));
    assert_non_null(strstr(svg, ">output element<"));
    assert_non_null(strstr(svg, ">worst entry<"));
    assert_non_null(strstr(svg, " tolerance<"));
    assert_null(strstr(svg, "NaN or inf"));
    assert_null(strstr(svg, "each cell"));
    free(svg);
    nb_check_report_free(&r);
}

/* ---- PNG, decoded back ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

typedef struct {
    uint32_t w, h;
    unsigned char *px; /* w*h*3 (malloc'd) */
} image;

/* Checks the file's structure (signature, IHDR first and RGB 8-bit, CRCs,
 * IDAT, IEND last) and decodes its pixels (filter 0 on every row). */
static image read_png(const char *path)
{
    size_t n;
    unsigned char *f = slurp(path, &n);
    assert_non_null(f);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    assert_true(n > 8 + 25 + 12 && memcmp(f, sig, 8) == 0);
    image im = {0};
    unsigned char *z = NULL;
    size_t zn = 0, at = 8;
    bool iend = false;
    for (int k = 0; at < n; k++) {
        assert_false(iend); /* nothing after IEND */
        assert_true(at + 12 <= n);
        uint32_t len = be32(f + at);
        assert_true(at + 12 + len <= n);
        const unsigned char *type = f + at + 4, *data = f + at + 8;
        assert_int_equal(be32(data + len), (uint32_t)crc32(0, type, 4 + len));
        if (k == 0) {
            assert_memory_equal(type, "IHDR", 4);
            assert_int_equal(len, 13);
            im.w = be32(data);
            im.h = be32(data + 4);
            assert_memory_equal(data + 8, ((const unsigned char[]){8, 2, 0, 0, 0}), 5);
        } else if (memcmp(type, "IDAT", 4) == 0) {
            z = realloc(z, zn + len);
            memcpy(z + zn, data, len);
            zn += len;
        } else if (memcmp(type, "IEND", 4) == 0) {
            assert_int_equal(len, 0);
            iend = true;
        }
        at += 12 + len;
    }
    assert_true(iend && z);
    uLongf raw_n = (uLongf)im.h * (1 + 3 * im.w), got = raw_n + 1;
    unsigned char *raw = malloc(raw_n + 1);
    assert_int_equal(uncompress(raw, &got, z, zn), Z_OK);
    assert_int_equal(got, raw_n);
    im.px = malloc((size_t)im.w * im.h * 3);
    for (uint32_t y = 0; y < im.h; y++) {
        assert_int_equal(raw[y * (1 + 3 * im.w)], 0);
        memcpy(im.px + (size_t)y * im.w * 3, raw + y * (1 + 3 * im.w) + 1, 3 * im.w);
    }
    free(raw);
    free(z);
    free(f);
    return im;
}

static uint32_t pixel(const image *im, uint32_t x, uint32_t y)
{
    const unsigned char *p = im->px + 3 * ((size_t)y * im->w + x);
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static void test_heatmap_png(void **state)
{
    (void)state;
    nb_check_report r;
    make_report(&r, 3, 4);
    assert_int_equal(nb_check_heatmap(&r, 0, P("h.png")), 0);
    image im = read_png(P("h.png"));
    /* 24-pixel cells and a 4-pixel margin. */
    assert_int_equal(im.w, 4 * 24 + 8);
    assert_int_equal(im.h, 3 * 24 + 8);
    uint32_t x0 = 4 + 24, y0 = 4 + 48; /* the worst cell, (2,1) */
    for (uint32_t y = y0; y < y0 + 24; y++)
        for (uint32_t x = x0; x < x0 + 24; x++)
            assert_int_equal(pixel(&im, x, y), 0x67000d);
    assert_int_equal(pixel(&im, x0 - 1, y0 + 12), 0x1565c0); /* the outline */
    assert_int_equal(pixel(&im, x0 + 24, y0 - 2), 0x1565c0);
    assert_int_equal(pixel(&im, 4 + 36, 4 + 12), 0xffffff); /* (0,1): exact */
    uint32_t within = pixel(&im, 4 + 12, 4 + 36), beyond = pixel(&im, 4 + 84, 4 + 12);
    assert_true((within >> 16) == (within & 0xff) && within != 0xffffff); /* grey */
    assert_true((beyond >> 16) > (beyond & 0xff) + 64 && beyond != 0x67000d); /* warm */
    assert_int_equal(pixel(&im, 0, 0), 0xffffff); /* margin */
    free(im.px);
    nb_check_report_free(&r);
}

/* Beyond 256 rows, blocks of rows aggregate by max; 2-pixel cells. */
static void test_heatmap_large(void **state)
{
    (void)state;
    nb_check_report r;
    make_report(&r, 600, 10);
    r.input[0].jacobian_analytic[599 * 10 + 9] += 7; /* the worst now */
    r.input[0].worst = 9;
    r.input[0].worst_out = 599;
    assert_int_equal(nb_check_heatmap(&r, 0, P("big.svg")), 0);
    char *svg = (char *)slurp(P("big.svg"), NULL);
    assert_non_null(svg);
    assert_int_equal(cells_of(svg), 200 * 10);
    assert_non_null(strstr(svg, "data-row=\"199\" data-col=\"9\""));
    assert_non_null(strstr(svg, "each cell: the largest error of 3 x 1 entries"));
    free(svg);
    assert_int_equal(nb_check_heatmap(&r, 0, P("big.png")), 0);
    image im = read_png(P("big.png"));
    assert_int_equal(im.w, 10 * 2 + 8);
    assert_int_equal(im.h, 200 * 2 + 8);
    assert_int_equal(pixel(&im, 4 + 18, 4 + 398), 0x67000d);
    /* Rows 0..2 hold the +0.5 at (2,1): darker than row block 1's exact cells. */
    assert_true(pixel(&im, 4 + 2, 4) != 0xffffff && pixel(&im, 4 + 2, 4 + 2) == 0xffffff);
    free(im.px);
    nb_check_report_free(&r);
}

/* A kept Jacobian that is one projected row (worst_out -1), the projection
 * of a gradgradcheck, and NaN entries. */
static void test_heatmap_row_and_nan(void **state)
{
    (void)state;
    nb_check_report r;
    make_report(&r, 3, 4);
    r.order = 2;
    r.n = 2; /* input 1 is v */
    r.input[1] = r.input[0];
    r.input[0] = (nb_check_input){0};
    r.input[1].rows = 1; /* the first row alone */
    r.input[1].worst = 3;
    r.input[1].worst_out = -1;
    assert_int_equal(nb_check_heatmap(&r, 1, P("v.svg")), 0);
    char *svg = (char *)slurp(P("v.svg"), NULL);
    assert_non_null(svg);
    assert_xml(svg);
    assert_non_null(strstr(svg, "gradgradcheck: "));
    assert_non_null(strstr(svg, "of the projection v<"));
    assert_non_null(strstr(svg, "1 row (projected)"));
    assert_non_null(strstr(svg, "data-row=\"0\" data-col=\"3\""));
    free(svg);
    /* NaN: black, and a legend entry for it. */
    r.input[1].jacobian_analytic[2] = NAN;
    assert_int_equal(nb_check_heatmap(&r, 1, P("nan.svg")), 0);
    svg = (char *)slurp(P("nan.svg"), NULL);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "NaN or inf"));
    char fill[8];
    svg_fill_at(svg, SVG_X0 + 48, SVG_Y0, fill);
    assert_string_equal(fill, "#000000");
    free(svg);
    assert_int_equal(nb_check_heatmap(&r, 1, P("nan.png")), 0);
    image im = read_png(P("nan.png"));
    assert_int_equal(pixel(&im, 4 + 60, 4 + 12), 0x000000);
    free(im.px);
    nb_check_report_free(&r);
}

/* ---- nb_check_graph ---- */

NB_UNARY_KERNELS(square, u *u)

/* y = x^2 with dx = 3 x dy: wrong everywhere. */
static void square_3x_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                               nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(x[0], nb_scalar_like(x[0], 3.0)));
}
static const nb_op square_3x = {.name = "square_3x", .arity = 1, .shape = nb_shape_same,
                                .forward = NB_KERNELS(square), .backward = square_3x_backward};

/* The same op without an f64 kernel: its node cannot be checked. */
static const nb_op square_f32_only = {.name = "square_f32_only", .arity = 1, .shape = nb_shape_same,
                                 .forward = {[NB_F32] = square_f32},
                                 .backward = square_3x_backward};

/* sum(op(tanh(x))) with op from ctx. */
static nb_tensor *f_wrong(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    nb_tensor *t = nb_tanh(x[0]);
    return nb_sum(nb_apply(ctx, &t, 1, NULL));
}

/* Right everywhere: sum(t * t + x * c) with t = tanh(x) used twice by one
 * node, and a constant c. */
static nb_tensor *f_right(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *t = nb_tanh(x[0]);
    return nb_sum(nb_add(nb_mul(t, t), nb_mul(x[0], nb_scalar_like(x[0], 0.5))));
}

static nb_tensor *f_null(nb_tensor *const x[], int n, void *ctx)
{
    (void)x, (void)n, (void)ctx;
    nb_set_error("f_null: no output today");
    return NULL;
}

/* The DOT line of the node labelled <b>op</b>. */
static char *node_line(const char *dot, const char *op)
{
    char key[64];
    snprintf(key, sizeof key, "<b>%s</b>", op);
    const char *p = strstr(dot, key);
    assert_non_null(p);
    while (p > dot && p[-1] != '\n')
        p--;
    size_t n = strcspn(p, "\n");
    char *line = malloc(n + 1);
    memcpy(line, p, n);
    line[n] = '\0';
    return line;
}

static nb_tensor *input34(void)
{
    return rand_input(NB_SHAPE(3, 4), 7);
}

static void test_graph_marks_the_wrong_node(void **state)
{
    (void)state;
    nb_tensor *x = input34();
    double before[12];
    assert_int_equal(nb_to_doubles(x, before), 0);
    int64_t live = nb_live_tensors();
    /* The caller's graph, with a node of its own, stays current and as it was. */
    nb_graph *mine = nb_graph_new();
    assert_non_null(nb_tanh(x));
    int64_t nodes = nb_graph_nodes(mine);
    assert_int_equal(nb_check_graph(f_wrong, (void *)&square_3x, 1, &x, NULL, P("g.dot")), 1);
    assert_ptr_equal(nb_graph_current(), mine);
    assert_int_equal(nb_graph_nodes(mine), nodes);
    nb_graph_free(mine);
    assert_int_equal(nb_live_tensors(), live);
    double after[12];
    assert_int_equal(nb_to_doubles(x, after), 0);
    assert_memory_equal(before, after, sizeof before);
    assert_null(nb_grad_of(x));

    char *dot = (char *)slurp(P("g.dot"), NULL);
    assert_non_null(dot);
    assert_int_equal(count(dot, "#f28b82"), 1); /* one red node... */
    char *bad = node_line(dot, "square_3x"), *t = node_line(dot, "tanh"),
         *s = node_line(dot, "sum");
    assert_non_null(strstr(bad, "fillcolor=\"#f28b82\""));      /* ...the wrong op */
    assert_non_null(strstr(bad, "gradcheck FAIL: max abs err ")); /* with its error */
    assert_non_null(strstr(bad, "(input 1, scaled by 1.5)"));     /* and its pattern */
    assert_null(strstr(t, "#f28b82"));
    assert_null(strstr(s, "#f28b82"));
    assert_null(strstr(t, "gradcheck"));
    assert_non_null(strstr(dot, "1 of 3 failing"));
    free(bad), free(t), free(s), free(dot);

    /* Rendered: the same marks in the picture. */
    if (nb_dot_can_render()) {
        assert_int_equal(nb_check_graph(f_wrong, (void *)&square_3x, 1, &x, NULL, P("g.svg")),
                         1);
        char *svg = (char *)slurp(P("g.svg"), NULL);
        assert_non_null(svg);
        assert_non_null(strstr(svg, "gradcheck FAIL"));
        assert_non_null(strstr(svg, "#f28b82"));
        free(svg);
    }
    nb_free(x);
}

static void test_graph_right_function(void **state)
{
    (void)state;
    nb_tensor *x = input34();
    /* f32 inputs too: nodes are checked in f64 all the same. */
    nb_rng rng = nb_rng_new(3);
    nb_tensor *x32 = nb_set_requires_grad(nb_randn(NB_F32, NB_SHAPE(3, 4), &rng), true);
    nb_tensor *xs[] = {x, x32};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nb_check_graph(f_right, NULL, 1, &xs[i], NULL, P("ok.dot")), 0);
        char *dot = (char *)slurp(P("ok.dot"), NULL);
        assert_non_null(dot);
        assert_int_equal(count(dot, "#f28b82"), 0);
        assert_non_null(strstr(dot, "0 of 5 failing"));
        free(dot);
    }
    assert_null(nb_last_error()); /* a success leaves no error behind */
    /* With no graph current before, none after. */
    assert_null(nb_graph_current());
    nb_free(x32);
    nb_free(x);
}

/* The heat map of a real failing check: square_3x on a (3,4) input, whose
 * Jacobian is diagonal with the analytic side 1.5 times the numeric. */
static nb_tensor *apply_op(nb_tensor *const x[], int n, void *ctx)
{
    return nb_apply(ctx, x, n, NULL);
}

static void test_heatmap_of_a_check(void **state)
{
    (void)state;
    nb_tensor *x = input34();
    nb_check_report r;
    nb_check_opts o = {.full = true, .keep_jacobians = true};
    assert_false(nb_gradcheck(apply_op, (void *)&square_3x, 1, &x, &o, &r));
    const nb_check_input *in = &r.input[0];
    assert_int_equal(in->rows, 12);
    assert_int_equal(in->cols, 12);
    assert_true(in->worst >= 0 && in->worst_out >= 0);
    assert_int_equal(nb_check_heatmap(&r, 0, P("h.png")), 0);
    image im = read_png(P("h.png"));
    assert_int_equal(im.w, 12 * 24 + 8);
    assert_int_equal(im.h, 12 * 24 + 8);
    int warm = 0;
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 12; j++) {
            uint32_t p = pixel(&im, 4 + 24 * (uint32_t)j + 12, 4 + 24 * (uint32_t)i + 12);
            if (i != j)
                assert_int_equal(p, 0xffffff); /* J is diagonal: exact off it */
            else
                warm += (p >> 16) > (p & 0xff) + 64;
        }
    assert_int_equal(warm, 12); /* every diagonal entry is wrong */
    assert_int_equal(pixel(&im, 4 + 24 * (uint32_t)in->worst + 12,
                           4 + 24 * (uint32_t)in->worst_out + 12),
                     0x67000d);
    free(im.px);
    assert_int_equal(nb_check_heatmap(&r, 0, P("h.svg")), 0);
    char *svg = (char *)slurp(P("h.svg"), NULL);
    assert_non_null(svg);
    assert_xml(svg);
    assert_int_equal(cells_of(svg), 144);
    assert_non_null(strstr(svg, "12 of 144 entries beyond tolerance"));
    assert_non_null(strstr(svg, "output (3,4): 12 rows"));
    free(svg);
    nb_check_report_free(&r);
    nb_free(x);
}

static void test_heatmap_bad_input(void **state)
{
    (void)state;
    nb_check_report r;
    make_report(&r, 3, 4);
    FAILS_RC(nb_check_heatmap(NULL, 0, P("h.svg")), "nb_check_heatmap", "report is NULL");
    FAILS_RC(nb_check_heatmap(&r, 0, NULL), "nb_check_heatmap", "path is NULL");
    FAILS_RC(nb_check_heatmap(&r, -1, P("h.svg")), "nb_check_heatmap", "input index -1",
             "out of range", "entries: 1");
    FAILS_RC(nb_check_heatmap(&r, 1, P("h.svg")), "nb_check_heatmap", "input index 1");
    FAILS_RC(nb_check_heatmap(&r, 0, P("x.pdf")), "nb_check_heatmap", "x.pdf", ".svg or .png");
    FAILS_RC(nb_check_heatmap(&r, 0, dir), "nb_check_heatmap", "cannot tell the format");
    FAILS_RC(nb_check_heatmap(&r, 0, "/nonexistent/dir/h.svg"), "nb_check_heatmap",
             "/nonexistent/dir/h.svg", "cannot open");
    assert_int_equal(access(P("x.pdf"), F_OK), -1);
    nb_check_report_free(&r);
    /* A passing report keeps no Jacobian. */
    r = (nb_check_report){.n = 1, .ok = true};
    FAILS_RC(nb_check_heatmap(&r, 0, P("h.png")), "nb_check_heatmap", "no Jacobian kept",
             "input index 0", "rows 0");
}

static void test_graph_bad_input(void **state)
{
    (void)state;
    nb_tensor *x = input34(), *none = NULL;
    int64_t live = nb_live_tensors();
    const char *p = P("g.dot");
    FAILS_RC(nb_check_graph(NULL, NULL, 1, &x, NULL, p), "nb_check_graph", "function is NULL");
    FAILS_RC(nb_check_graph(f_right, NULL, 0, &x, NULL, p), "nb_check_graph", "got 0");
    FAILS_RC(nb_check_graph(f_right, NULL, NB_MAX_INPUTS + 1, &x, NULL, p), "nb_check_graph",
             "1 to");
    FAILS_RC(nb_check_graph(f_right, NULL, 1, NULL, NULL, p), "nb_check_graph", "array is NULL");
    FAILS_RC(nb_check_graph(f_right, NULL, 1, &none, NULL, p), "nb_check_graph",
             "input 1 is NULL");
    FAILS_RC(nb_check_graph(f_right, NULL, 1, &x, NULL, NULL), "nb_check_graph", "path is NULL");
    FAILS_RC(nb_check_graph(f_right, NULL, 1, &x, NULL, P("x.pdf")), "nb_check_graph",
             "x.pdf", ".dot, .svg or .png");
    FAILS_RC(nb_check_graph(f_right, NULL, 1, &x, &(nb_check_opts){.dtype = 7}, p),
             "nb_check_graph", "opts.dtype is 7");
    FAILS_RC(nb_check_graph(f_right, NULL, 1, &x, &(nb_check_opts){.layout = 9}, p),
             "nb_check_graph", "opts.layout is 9");
    /* Failures after recording leave no graph behind either. */
    nb_graph *mine = nb_graph_new();
    FAILS_RC(nb_check_graph(f_null, NULL, 1, &x, NULL, p), "nb_check_graph",
             "the function failed", "f_null: no output today");
    FAILS_RC(nb_check_graph(f_right, NULL, 1, &x, NULL, "/nonexistent/dir/g.dot"),
             "nb_check_graph", "nb_dot_write", "/nonexistent/dir/g.dot");
    nb_rng rng = nb_rng_new(3);
    nb_tensor *x32 = nb_set_requires_grad(nb_randn(NB_F32, NB_SHAPE(3, 4), &rng), true);
    FAILS_RC(nb_check_graph(f_wrong, (void *)&square_f32_only, 1, &x32, NULL, p), "nb_check_graph",
             "square_f32_only node could not run", "f64 kernel");
    if (!nb_dot_can_render())
        FAILS_RC(nb_check_graph(f_right, NULL, 1, &x, NULL, P("g.svg")), "nb_check_graph",
                 "without Graphviz");
    assert_ptr_equal(nb_graph_current(), mine);
    assert_int_equal(nb_graph_nodes(mine), 0);
    nb_graph_free(mine);
    nb_free(x32);
    assert_int_equal(nb_live_tensors(), live);
    nb_free(x);
}


/* Every allocation failing in turn: -1 and a message, nothing leaked (ASan
 * and valgrind check that), until the call succeeds. */
static void test_out_of_memory(void **state)
{
    (void)state;
    nb_check_report r;
    make_report(&r, 3, 4);
    nb_tensor *x = input34();
    for (int which = 0; which < 3; which++) {
        bool done = false;
        for (int64_t k = 0; k < 100000 && !done; k++) {
            alloc_budget = k;
            nb_set_allocator(&failing_allocator);
            nb_clear_error();
            int rc = which == 0   ? nb_check_heatmap(&r, 0, P("h.svg"))
                     : which == 1 ? nb_check_heatmap(&r, 0, P("h.png"))
                                  : nb_check_graph(f_wrong, (void *)&square_3x, 1, &x, NULL,
                                                   P("g.dot"));
            nb_set_allocator(NULL);
            assert_null(nb_graph_current());
            if (rc >= 0) {
                assert_int_equal(rc, which == 2);
                done = true;
            } else {
                assert_int_equal(rc, -1);
                assert_non_null(nb_last_error());
                assert_non_null(strstr(nb_last_error(), "memory"));
            }
        }
        assert_true(done);
    }
    nb_free(x);
    nb_check_report_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_heatmap_svg, cleanup),
        cmocka_unit_test_teardown(test_heatmap_png, cleanup),
        cmocka_unit_test_teardown(test_heatmap_large, cleanup),
        cmocka_unit_test_teardown(test_heatmap_row_and_nan, cleanup),
        cmocka_unit_test_teardown(test_graph_marks_the_wrong_node, cleanup),
        cmocka_unit_test_teardown(test_graph_right_function, cleanup),
        cmocka_unit_test_teardown(test_heatmap_of_a_check, cleanup),
        cmocka_unit_test_teardown(test_heatmap_bad_input, cleanup),
        cmocka_unit_test_teardown(test_graph_bad_input, cleanup),
        cmocka_unit_test_teardown(test_out_of_memory, cleanup),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
