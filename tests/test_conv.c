/* Convolution and pooling (src/conv.c over ops/im2col.c): values against
 * direct loops written here (f64, exact to rounding) over strides,
 * dilations, every padding mode, groups, bias, non-square shapes, batches
 * and strided input views; Keras's output shapes; first and second
 * derivatives of the whole composition, a gradient penalty among them;
 * average pooling both ways of counting; im2col and col2im as adjoints;
 * misuse messages, and the counted bad-argument cases (bad_args.h). */
#define _POSIX_C_SOURCE 200809L
#include "bad_args.h"

/* ---- the reference: direct loops over row-major doubles ---- */

typedef struct {
    int64_t n, h, w, c;    /* x */
    int64_t kh, kw, f;     /* w is (kh, kw, c/groups, f) */
    int64_t sh, sw, dh, dw;
    nb_padding padding;
    int64_t pad[4];        /* explicit padding */
    int64_t groups;
    bool bias;
    int view;              /* 0 packed; 1 every other W column; 2 channels transposed in */
} conv_case;

/* TensorFlow's SAME padding, written out again here rather than taken
 * from the library. */
static void same_pad(int64_t in, int64_t k, int64_t s, int64_t d, int64_t *lo, int64_t *hi)
{
    int64_t out = (in + s - 1) / s, total = (out - 1) * s + (k - 1) * d + 1 - in;
    total = total > 0 ? total : 0;
    *lo = total / 2;
    *hi = total - *lo;
}

/* The padding a case applies (top, bottom, left, right) and its output size. */
static void resolve(const conv_case *c, int64_t pad[4], int64_t *oh, int64_t *ow)
{
    for (int i = 0; i < 4; i++)
        pad[i] = c->padding == NB_PAD_EXPLICIT ? c->pad[i] : 0;
    if (c->padding == NB_PAD_SAME) {
        same_pad(c->h, c->kh, c->sh, c->dh, &pad[0], &pad[1]);
        same_pad(c->w, c->kw, c->sw, c->dw, &pad[2], &pad[3]);
    }
    *oh = (c->h + pad[0] + pad[1] - (c->kh - 1) * c->dh - 1) / c->sh + 1;
    *ow = (c->w + pad[2] + pad[3] - (c->kw - 1) * c->dw - 1) / c->sw + 1;
}

static void ref_conv(const conv_case *c, const double *x, const double *w, const double *b,
                     double *y)
{
    int64_t pad[4], OH, OW, cg = c->c / c->groups, fg = c->f / c->groups;
    resolve(c, pad, &OH, &OW);
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t f = 0; f < c->f; f++) {
                    double acc = b ? b[f] : 0;
                    int64_t g = f / fg;
                    for (int64_t i = 0; i < c->kh; i++)
                        for (int64_t j = 0; j < c->kw; j++) {
                            int64_t ih = oh * c->sh - pad[0] + i * c->dh;
                            int64_t iw = ow * c->sw - pad[2] + j * c->dw;
                            if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w)
                                continue;
                            for (int64_t k = 0; k < cg; k++)
                                acc += x[((n * c->h + ih) * c->w + iw) * c->c + g * cg + k] *
                                       w[((i * c->kw + j) * cg + k) * c->f + f];
                        }
                    y[((n * OH + oh) * OW + ow) * c->f + f] = acc;
                }
}

/* x of the case's shape as the view it asks for, filled from rng; the
 * owner (to free) in *base. */
static nb_tensor *make_x(const conv_case *c, nb_dtype dt, nb_rng *rng, nb_tensor **base)
{
    if (c->view == 1) { /* every other column: W stride 2*C */
        *base = nb_randn(dt, NB_SHAPE(c->n, c->h, 2 * c->w, c->c), rng);
        return nb_slice(*base, 2, 1, 2 * c->w, 2);
    }
    if (c->view == 2) { /* (N,C,H,W) seen as (N,H,W,C): channel stride H*W */
        *base = nb_randn(dt, NB_SHAPE(c->n, c->c, c->h, c->w), rng);
        return nb_permute(*base, 4, (const int[]){0, 2, 3, 1});
    }
    *base = nb_randn(dt, NB_SHAPE(c->n, c->h, c->w, c->c), rng);
    return *base;
}

static nb_tensor *run_conv(const conv_case *c, nb_tensor *x, nb_tensor *w, nb_tensor *b)
{
    return nb_convolution(x, w, c->bias ? b : NULL, .stride = {c->sh, c->sw},
                          .dilation = {c->dh, c->dw}, .padding = c->padding,
                          .pad = {c->pad[0], c->pad[1], c->pad[2], c->pad[3]},
                          .groups = c->groups);
}

static double *doubles(const nb_tensor *t)
{
    double *d = malloc((size_t)(nb_numel(t) + 1) * sizeof(double));
    assert_non_null(d);
    assert_int_equal(nb_to_doubles(t, d), 0);
    return d;
}

static const conv_case cases[] = {
    /* n  h  w  c  kh kw f  sh sw dh dw padding         pad           g  bias view */
    {2, 5, 5, 3, 3, 3, 4, 1, 1, 1, 1, NB_PAD_VALID, {0}, 1, true, 0},
    {1, 6, 7, 2, 2, 3, 3, 2, 1, 1, 1, NB_PAD_VALID, {0}, 1, false, 0}, /* non-square */
    {3, 7, 6, 2, 3, 3, 2, 2, 2, 1, 1, NB_PAD_SAME, {0}, 1, true, 0},  /* odd totals */
    {2, 6, 6, 1, 4, 2, 3, 1, 1, 1, 1, NB_PAD_SAME, {0}, 1, true, 0},  /* even kernel: 3 = 1+2 */
    {1, 8, 9, 2, 3, 2, 2, 3, 2, 1, 1, NB_PAD_SAME, {0}, 1, false, 0}, /* 3 = 1+2 and 1 = 0+1 */
    {2, 7, 8, 3, 3, 3, 2, 1, 1, 2, 3, NB_PAD_VALID, {0}, 1, true, 0}, /* dilated */
    {1, 7, 7, 2, 3, 3, 2, 2, 1, 2, 1, NB_PAD_SAME, {0}, 1, true, 0},  /* dilated SAME */
    {2, 5, 6, 2, 3, 2, 3, 2, 1, 1, 2, NB_PAD_EXPLICIT, {1, 2, 0, 3}, 1, true, 0},
    {1, 4, 4, 4, 2, 2, 6, 1, 1, 1, 1, NB_PAD_VALID, {0}, 2, true, 0},  /* groups */
    {2, 5, 6, 6, 3, 3, 9, 2, 1, 1, 1, NB_PAD_SAME, {0}, 3, false, 0}, /* groups, SAME */
    {2, 6, 5, 4, 3, 3, 4, 1, 1, 1, 1, NB_PAD_SAME, {0}, 4, true, 0},  /* depthwise */
    {1, 5, 5, 3, 3, 2, 6, 1, 2, 2, 1, NB_PAD_EXPLICIT, {2, 0, 1, 1}, 3, true, 0}, /* x2 */
    {2, 5, 6, 3, 3, 3, 4, 1, 1, 1, 1, NB_PAD_SAME, {0}, 1, true, 1},  /* W-strided view */
    {2, 5, 4, 3, 2, 3, 2, 2, 1, 1, 1, NB_PAD_VALID, {0}, 1, false, 2}, /* transposed C */
    {1, 6, 6, 4, 3, 3, 4, 1, 1, 1, 2, NB_PAD_SAME, {0}, 2, true, 2},  /* groups on a view */
    {3, 1, 1, 2, 1, 1, 3, 1, 1, 1, 1, NB_PAD_VALID, {0}, 1, true, 0}, /* 1x1 image */
    {1, 3, 3, 1, 3, 3, 1, 1, 1, 1, 1, NB_PAD_EXPLICIT, {4, 4, 3, 4}, 1, false, 0}, /* wide pad */
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

static void test_values_against_loops(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(7);
    for (int k = 0; k < NCASES; k++) {
        const conv_case *c = &cases[k];
        nb_graph *g = nb_graph_new();
        nb_tensor *base, *x = make_x(c, NB_F64, &rng, &base);
        nb_tensor *w = nb_randn(NB_F64, NB_SHAPE(c->kh, c->kw, c->c / c->groups, c->f), &rng);
        nb_tensor *b = nb_randn(NB_F64, NB_SHAPE(c->f), &rng);
        nb_tensor *y = run_conv(c, x, w, b);
        if (!y)
            fail_msg("case %d: %s", k, nb_last_error());
        int64_t pad[4], OH, OW;
        resolve(c, pad, &OH, &OW);
        assert_int_equal(nb_ndim(y), 4);
        assert_true(nb_dim(y, 0) == c->n && nb_dim(y, 1) == OH && nb_dim(y, 2) == OW &&
                    nb_dim(y, 3) == c->f);
        double *xd = doubles(x), *wd = doubles(w), *bd = doubles(b), *yd = doubles(y);
        double *want = malloc((size_t)nb_numel(y) * sizeof(double));
        ref_conv(c, xd, wd, c->bias ? bd : NULL, want);
        for (int64_t i = 0; i < nb_numel(y); i++)
            if (fabs(yd[i] - want[i]) > 1e-12 * (1 + fabs(want[i])))
                fail_msg("case %d element %lld: %.17g, loops give %.17g", k, (long long)i,
                         yd[i], want[i]);
        /* f32 runs the same path: the same values to f32 rounding. */
        nb_tensor *y32 = run_conv(c, nb_cast(x, NB_F32), nb_cast(w, NB_F32), nb_cast(b, NB_F32));
        assert_non_null(y32);
        assert_int_equal(nb_dtype_of(y32), NB_F32);
        double *y32d = doubles(y32);
        for (int64_t i = 0; i < nb_numel(y); i++)
            assert_true(fabs(y32d[i] - want[i]) < 1e-4 * (1 + fabs(want[i])));
        free(xd), free(wd), free(bd), free(yd), free(y32d), free(want);
        nb_graph_free(g);
        nb_free(base), nb_free(w), nb_free(b);
    }
}

/* 1-D: x (N,W,C), w (K,C/groups,F), against the 2-D loops with H = 1. */
static void test_1d_values(void **state)
{
    (void)state;
    const conv_case c1[] = {
        {2, 1, 9, 3, 1, 3, 4, 1, 2, 1, 1, NB_PAD_VALID, {0}, 1, true, 0},
        {1, 1, 8, 4, 1, 3, 2, 1, 1, 1, 2, NB_PAD_SAME, {0}, 2, true, 0},
        {2, 1, 7, 2, 1, 2, 2, 1, 3, 1, 1, NB_PAD_EXPLICIT, {0, 0, 2, 1}, 2, false, 0},
    };
    nb_rng rng = nb_rng_new(11);
    for (int k = 0; k < 3; k++) {
        const conv_case *c = &c1[k];
        nb_graph *g = nb_graph_new();
        nb_tensor *x = nb_randn(NB_F64, NB_SHAPE(c->n, c->w, c->c), &rng);
        nb_tensor *w = nb_randn(NB_F64, NB_SHAPE(c->kw, c->c / c->groups, c->f), &rng);
        nb_tensor *b = nb_randn(NB_F64, NB_SHAPE(c->f), &rng);
        nb_tensor *y = nb_convolution(x, w, c->bias ? b : NULL, .stride = {c->sw},
                                      .dilation = {c->dw}, .padding = c->padding,
                                      .pad = {c->pad[2], c->pad[3]}, .groups = c->groups);
        if (!y)
            fail_msg("1-D case %d: %s", k, nb_last_error());
        int64_t pad[4], OH, OW;
        resolve(c, pad, &OH, &OW);
        assert_int_equal(nb_ndim(y), 3);
        assert_true(nb_dim(y, 0) == c->n && nb_dim(y, 1) == OW && nb_dim(y, 2) == c->f);
        double *xd = doubles(x), *wd = doubles(w), *bd = doubles(b), *yd = doubles(y);
        double *want = malloc((size_t)nb_numel(y) * sizeof(double));
        ref_conv(c, xd, wd, c->bias ? bd : NULL, want);
        for (int64_t i = 0; i < nb_numel(y); i++)
            assert_true(fabs(yd[i] - want[i]) <= 1e-12 * (1 + fabs(want[i])));
        free(xd), free(wd), free(bd), free(yd), free(want);
        nb_graph_free(g);
        nb_free(x), nb_free(w), nb_free(b);
    }
}

/* ---- shapes as Keras gives them ---- */

static void test_keras_shapes(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(2, 28, 28, 1));
    nb_tensor *w1 = nb_zeros(NB_F32, NB_SHAPE(3, 3, 1, 32));
    nb_tensor *w2 = nb_zeros(NB_F32, NB_SHAPE(3, 3, 32, 64));
    nb_tensor *h = nb_convolution(x, w1); /* Conv2D(32, 3) on 28x28x1 */
    assert_true(nb_dim(h, 1) == 26 && nb_dim(h, 2) == 26 && nb_dim(h, 3) == 32);
    nb_tensor *p = nb_avg_pool2d(h); /* the MNIST net's pooling, 2x2 */
    assert_true(nb_dim(p, 1) == 13 && nb_dim(p, 2) == 13 && nb_dim(p, 3) == 32);
    nb_tensor *h2 = nb_convolution(p, w2);
    assert_true(nb_dim(h2, 1) == 11 && nb_dim(h2, 2) == 11 && nb_dim(h2, 3) == 64);
    nb_tensor *s = nb_convolution(x, w1, .stride = {2, 2}, .padding = NB_PAD_SAME);
    assert_true(nb_dim(s, 1) == 14 && nb_dim(s, 2) == 14);
    nb_tensor *gp = nb_global_avg_pool2d(h2);
    assert_int_equal(nb_ndim(gp), 2);
    assert_true(nb_dim(gp, 0) == 2 && nb_dim(gp, 1) == 64);
    /* Conv1D(8, 5, strides=2, padding='same') on (2,15,3): ceil(15/2) = 8. */
    nb_tensor *x1 = nb_zeros(NB_F32, NB_SHAPE(2, 15, 3)), *k1 = nb_zeros(NB_F32, NB_SHAPE(5, 3, 8));
    nb_tensor *y1 = nb_convolution(x1, k1, .stride = {2}, .padding = NB_PAD_SAME);
    assert_true(nb_ndim(y1) == 3 && nb_dim(y1, 1) == 8 && nb_dim(y1, 2) == 8);
    /* The helper, for layers: sizes and the padding TensorFlow applies. */
    nb_window_size r = nb_conv_output_size(28, 3);
    assert_true(r.out == 26 && r.pad_before == 0 && r.pad_after == 0);
    r = nb_conv_output_size(28, 3, .stride = 2, .padding = NB_PAD_SAME);
    assert_true(r.out == 14 && r.pad_before == 0 && r.pad_after == 1);
    r = nb_conv_output_size(10, 4, .padding = NB_PAD_SAME);
    assert_true(r.out == 10 && r.pad_before == 1 && r.pad_after == 2);
    r = nb_conv_output_size(7, 3, .stride = 2, .dilation = 2, .padding = NB_PAD_SAME);
    assert_true(r.out == 4 && r.pad_before == 2 && r.pad_after == 2);
    r = nb_conv_output_size(5, 3, .stride = 3, .padding = NB_PAD_SAME); /* odd total, 1 */
    assert_true(r.out == 2 && r.pad_before == 0 && r.pad_after == 1);
    r = nb_conv_output_size(9, 3, .stride = 4, .padding = NB_PAD_SAME);
    assert_true(r.out == 3 && r.pad_before == 1 && r.pad_after == 1);
    r = nb_conv_output_size(5, 2, .padding = NB_PAD_EXPLICIT, .pad = {1, 2});
    assert_true(r.out == 7 && r.pad_before == 1 && r.pad_after == 2);
    nb_clear_error();
    r = nb_conv_output_size(2, 3);
    assert_int_equal(r.out, -1);
    ERR_HAS("nb_conv_output_size: the kernel 3 (dilation 1: 3 wide) is larger than the padded "
            "input 2 + 0 + 0");
    nb_graph_free(g);
    nb_free(x), nb_free(w1), nb_free(w2), nb_free(x1), nb_free(k1);
}

/* ---- derivatives of the whole composition ---- */

static nb_tensor *conv_fn(nb_tensor *const x[], int n, void *ctx)
{
    const conv_case *c = ctx;
    return run_conv(c, x[0], x[1], n > 2 ? x[2] : NULL);
}

static nb_tensor *conv1d_fn(nb_tensor *const x[], int n, void *ctx)
{
    (void)ctx;
    return nb_convolution(x[0], x[1], n > 2 ? x[2] : NULL, .stride = {2}, .dilation = {2},
                          .padding = NB_PAD_SAME, .groups = 2);
}

/* A gradient penalty: || d/dx sum(tanh(conv(x, w) + b)) ||, itself
 * differentiated with respect to x, w and b (the training step of a WGAN-GP
 * critic): second derivatives of im2col, col2im and matmul in one check. */
static nb_tensor *penalty_fn(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    nb_tensor *loss = nb_sum(nb_tanh(conv_fn(x, 3, ctx)));
    nb_tensor *gx = NULL;
    if (!loss || nb_grad(loss, .n = 1, .inputs = x, .grads = &gx, .create_graph = true))
        return NULL;
    return nb_sqrt(nb_sum(nb_square(gx)));
}

static void check_passes(bool ok, const nb_check_report *r, const char *what)
{
    if (!ok || !r->ok) {
        nb_check_report_print(r, stderr);
        fail_msg("%s failed", what);
    }
}

/* Checked configurations: groups with stride and SAME padding, dilation
 * with explicit padding, depthwise; small enough for the full Jacobian
 * when a check fails. */
static const conv_case grad_cases[] = {
    {2, 5, 4, 4, 3, 2, 6, 2, 1, 1, 1, NB_PAD_SAME, {0}, 2, true, 0},
    {1, 6, 5, 2, 2, 2, 3, 1, 2, 2, 1, NB_PAD_EXPLICIT, {1, 0, 2, 1}, 1, true, 0},
    {2, 4, 4, 3, 3, 3, 3, 1, 1, 1, 1, NB_PAD_SAME, {0}, 3, true, 0},
};

static nb_tensor *leaf(nb_rng *rng, int ndim, const int64_t *shape)
{
    return nb_set_requires_grad(nb_randn(NB_F64, ndim, shape, rng), true);
}

static void test_gradients(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(3);
    nb_check_report r;
    int64_t live = nb_live_tensors();
    for (int k = 0; k < 3; k++) {
        const conv_case *c = &grad_cases[k];
        nb_tensor *x[3] = {leaf(&rng, NB_SHAPE(c->n, c->h, c->w, c->c)),
                           leaf(&rng, NB_SHAPE(c->kh, c->kw, c->c / c->groups, c->f)),
                           leaf(&rng, NB_SHAPE(c->f))};
        void *ctx = (void *)c;
        check_passes(nb_gradcheck(conv_fn, ctx, 3, x, NULL, &r), &r, "gradcheck");
        check_passes(nb_gradcheck(conv_fn, ctx, 3, x,
                                  &(nb_check_opts){.layout = NB_LAYOUT_PERMUTED}, &r),
                     &r, "gradcheck, permuted inputs");
        check_passes(nb_gradgradcheck(conv_fn, ctx, 3, x, NULL, &r), &r, "gradgradcheck");
        check_passes(nb_gradcheck(penalty_fn, ctx, 3, x, NULL, &r), &r, "gradient penalty");
        assert_int_equal(r.n, 3);
        for (int i = 0; i < 3; i++) /* every input reaches the penalty */
            assert_int_equal(r.input[i].verdict, NB_CHECK_PASSED);
        for (int i = 0; i < 3; i++)
            nb_free(x[i]);
    }
    nb_tensor *x1[3] = {leaf(&rng, NB_SHAPE(2, 9, 4)), leaf(&rng, NB_SHAPE(3, 2, 4)),
                        leaf(&rng, NB_SHAPE(4))};
    check_passes(nb_gradcheck(conv1d_fn, NULL, 3, x1, NULL, &r), &r, "1-D gradcheck");
    check_passes(nb_gradgradcheck(conv1d_fn, NULL, 3, x1, NULL, &r), &r, "1-D gradgradcheck");
    for (int i = 0; i < 3; i++)
        nb_free(x1[i]);
    assert_int_equal(nb_live_tensors(), live);
}

/* ---- pooling ---- */

typedef struct {
    int64_t n, h, w, c, kh, kw, sh, sw; /* kernel and stride 0: the defaults */
    nb_padding padding;
    int64_t pad[4];
} pool_case;

static void ref_avg_pool(const pool_case *p, bool include, const double *x, double *y,
                         int64_t *oh_, int64_t *ow_)
{
    int64_t kh = p->kh ? p->kh : 2, kw = p->kw ? p->kw : 2;
    conv_case c = {p->n, p->h, p->w, p->c, kh, kw, 1, p->sh ? p->sh : kh, p->sw ? p->sw : kw,
                   1, 1, p->padding, {p->pad[0], p->pad[1], p->pad[2], p->pad[3]}, 1, false, 0};
    int64_t pad[4], OH, OW;
    resolve(&c, pad, &OH, &OW);
    *oh_ = OH, *ow_ = OW;
    for (int64_t n = 0; n < p->n; n++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++)
                for (int64_t ch = 0; ch < p->c; ch++) {
                    double acc = 0, count = 0;
                    for (int64_t i = 0; i < kh; i++)
                        for (int64_t j = 0; j < kw; j++) {
                            int64_t ih = oh * c.sh - pad[0] + i, iw = ow * c.sw - pad[2] + j;
                            if (ih < 0 || ih >= p->h || iw < 0 || iw >= p->w)
                                continue;
                            acc += x[((n * p->h + ih) * p->w + iw) * p->c + ch];
                            count++;
                        }
                    y[((n * OH + oh) * OW + ow) * p->c + ch] = acc / (include ? kh * kw : count);
                }
}

static const pool_case pools[] = {
    {2, 6, 6, 3, 0, 0, 0, 0, NB_PAD_VALID, {0}},   /* Keras's AveragePooling2D() */
    {1, 7, 5, 2, 2, 2, 0, 0, NB_PAD_VALID, {0}},   /* odd sizes drop the last row */
    {1, 7, 5, 2, 3, 3, 1, 1, NB_PAD_SAME, {0}},    /* totals 2 and 2 */
    {2, 5, 8, 2, 3, 2, 2, 3, NB_PAD_SAME, {0}},    /* totals 2 and 1 */
    {1, 6, 6, 1, 4, 4, 1, 1, NB_PAD_SAME, {0}},    /* even window: 1 + 2 */
    {1, 6, 7, 3, 3, 3, 2, 2, NB_PAD_EXPLICIT, {1, 2, 2, 0}},
    {2, 4, 6, 2, 3, 2, 1, 2, NB_PAD_EXPLICIT, {2, 0, 1, 1}},
};

static void test_avg_pool(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(5);
    for (size_t k = 0; k < sizeof pools / sizeof pools[0]; k++)
        for (int include = 0; include < 2; include++) {
            const pool_case *p = &pools[k];
            nb_graph *g = nb_graph_new();
            nb_tensor *x = nb_randn(NB_F64, NB_SHAPE(p->n, p->h, p->w, p->c), &rng);
            nb_tensor *y = nb_avg_pool2d(x, {p->kh, p->kw}, {p->sh, p->sw}, .padding = p->padding,
                                         .pad = {p->pad[0], p->pad[1], p->pad[2], p->pad[3]},
                                         .count_include_pad = include);
            if (!y)
                fail_msg("pool %zu: %s", k, nb_last_error());
            double *xd = doubles(x), *yd = doubles(y);
            double *want = malloc((size_t)nb_numel(y) * sizeof(double));
            int64_t OH, OW;
            ref_avg_pool(p, include, xd, want, &OH, &OW);
            assert_true(nb_dim(y, 0) == p->n && nb_dim(y, 1) == OH && nb_dim(y, 2) == OW &&
                        nb_dim(y, 3) == p->c);
            for (int64_t i = 0; i < nb_numel(y); i++)
                if (fabs(yd[i] - want[i]) > 1e-13 * (1 + fabs(want[i])))
                    fail_msg("pool %zu (include %d) element %lld: %.17g, loops give %.17g", k,
                             include, (long long)i, yd[i], want[i]);
            free(xd), free(yd), free(want);
            nb_graph_free(g);
            nb_free(x);
        }
    /* Padding changes the mean only where a window overlaps it: a corner
     * of ones under SAME 3x3 is 1 without counting the padding, 4/9 with. */
    nb_graph *g = nb_graph_new();
    nb_tensor *ones = nb_ones(NB_F64, NB_SHAPE(1, 4, 4, 1));
    nb_tensor *a = nb_avg_pool2d(ones, {3, 3}, {1, 1}, .padding = NB_PAD_SAME);
    nb_tensor *b = nb_avg_pool2d(ones, {3, 3}, {1, 1}, .padding = NB_PAD_SAME,
                                 .count_include_pad = true);
    assert_true(nb_get_flat(a, 0) == 1.0 && nb_get_flat(a, 5) == 1.0);
    assert_true(fabs(nb_get_flat(b, 0) - 4.0 / 9) < 1e-15 && nb_get_flat(b, 5) == 1.0);
    /* Global pooling: per-image, per-channel means. */
    nb_tensor *x = nb_randn(NB_F64, NB_SHAPE(2, 3, 5, 4), &rng);
    nb_tensor *m = nb_global_avg_pool2d(x);
    assert_true(nb_ndim(m) == 2 && nb_dim(m, 0) == 2 && nb_dim(m, 1) == 4);
    for (int64_t n = 0; n < 2; n++)
        for (int64_t c = 0; c < 4; c++) {
            double acc = 0;
            for (int64_t i = 0; i < 15; i++)
                acc += nb_get_flat(x, (n * 15 + i) * 4 + c);
            assert_true(fabs(nb_get_flat(m, n * 4 + c) - acc / 15) < 1e-14);
        }
    nb_graph_free(g);
    nb_free(ones), nb_free(x);
}

static nb_tensor *pool_fn(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_avg_pool2d(x[0], {3, 2}, {2, 1}, .padding = NB_PAD_SAME);
}

static nb_tensor *global_fn(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_global_avg_pool2d(x[0]);
}

static void test_pool_gradients(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(9);
    nb_tensor *x = leaf(&rng, NB_SHAPE(2, 5, 4, 3));
    nb_check_report r;
    for (int l = 0; l < 3; l++) {
        nb_check_opts o = {.layout = (nb_check_layout)l};
        check_passes(nb_gradcheck(pool_fn, NULL, 1, &x, &o, &r), &r, "avg pool gradcheck");
        check_passes(nb_gradcheck(global_fn, NULL, 1, &x, &o, &r), &r, "global pool gradcheck");
    }
    nb_free(x);
}

/* ---- im2col and col2im are adjoint: <im2col(x), p> = <x, col2im(p)> ---- */

static void test_adjoint(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(13);
    const nb_window2d wins[] = {
        {{3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}},
        {{2, 3}, {2, 1}, {1, 2}, {0, 1, 2, 0}},
        {{3, 2}, {3, 2}, {2, 1}, {2, 2, 0, 1}},
        {{1, 1}, {2, 3}, {0, 0}, {0, 0, 0, 0}}, /* stride and dilation 0: 1 */
    };
    for (int k = 0; k < 4; k++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *x = nb_randn(NB_F64, NB_SHAPE(2, 7, 6, 3), &rng);
        nb_tensor *cols = nb_im2col(x, wins[k]);
        assert_non_null(cols);
        nb_tensor *p = nb_randn(NB_F64, nb_ndim(cols), nb_shape(cols), &rng);
        nb_tensor *back = nb_col2im(p, wins[k], 7, 6);
        assert_non_null(back);
        double lhs = nb_item(nb_sum(nb_mul(cols, p))), rhs = nb_item(nb_sum(nb_mul(x, back)));
        assert_true(fabs(lhs - rhs) < 1e-12 * (1 + fabs(lhs)));
        assert_true(fabs(lhs) > 1e-3); /* not trivially 0 = 0 */
        nb_graph_free(g);
        nb_free(x), nb_free(p);
    }
}

/* Forward and backward twice give the same bits (the scatter of col2im
 * runs in a fixed order). */
static void test_deterministic(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(17);
    const conv_case *c = &grad_cases[0];
    nb_tensor *x = leaf(&rng, NB_SHAPE(c->n, c->h, c->w, c->c));
    nb_tensor *w = leaf(&rng, NB_SHAPE(c->kh, c->kw, c->c / c->groups, c->f));
    double first[2][256];
    for (int run = 0; run < 2; run++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *xs[2] = {x, w}, *gs[2];
        nb_tensor *loss = nb_sum(nb_square(run_conv(c, x, w, NULL)));
        assert_int_equal(nb_grad(loss, .n = 2, .inputs = xs, .grads = gs), 0);
        assert_true(nb_numel(gs[0]) <= 256 && nb_numel(gs[1]) <= 256);
        double now[2][256] = {{0}};
        nb_to_doubles(gs[0], now[0]);
        nb_to_doubles(gs[1], now[1]);
        if (run == 0)
            memcpy(first, now, sizeof now);
        else
            assert_memory_equal(first, now, sizeof now);
        nb_graph_free(g);
    }
    nb_free(x), nb_free(w);
}

/* ---- misuse: the message names the function and the values ---- */

static void test_misuse_messages(void **state)
{
    (void)state;
    nb_graph *gr = nb_graph_new();
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(1, 5, 5, 4)), *w = nb_zeros(NB_F32, NB_SHAPE(3, 3, 2, 6));
    nb_tensor *w64 = nb_zeros(NB_F64, NB_SHAPE(3, 3, 4, 6)), *b = nb_zeros(NB_F32, NB_SHAPE(5));
    nb_tensor *big = nb_zeros(NB_F32, NB_SHAPE(6, 3, 2, 2)), *x3 = nb_zeros(NB_F32, NB_SHAPE(1, 5, 4));
    FAILS(nb_convolution(x, w, .groups = 3),
          "nb_convolution: groups 3 must be at least 1 and divide the 4 input channels of x "
          "(1,5,5,4) and the 6 filters of w (3,3,2,6)");
    FAILS(nb_convolution(x, w), "nb_convolution: w (3,3,2,6) has 2 input channels per group, "
                                "but x (1,5,5,4) with groups 1 needs 4");
    FAILS(nb_convolution(x, w64), "nb_convolution: dtypes differ: x is f32 (1,5,5,4), w is f64 "
                                  "(3,3,4,6)");
    FAILS(nb_convolution(x, w, b, .groups = 2),
          "nb_convolution: b (5,) must be (6,), one per filter of w (3,3,2,6)");
    FAILS(nb_convolution(x, big, .groups = 2),
          "nb_convolution: the kernel 6 (dilation 1: 6 wide) along H is larger than the padded "
          "input 5 + 0 + 0");
    FAILS(nb_convolution(x, w, .groups = 2, .dilation = {1, 3}),
          "nb_convolution: the kernel 3 (dilation 3: 7 wide) along W is larger than the padded "
          "input 5 + 0 + 0");
    FAILS(nb_convolution(x, w, .groups = 2, .stride = {-1, 1}),
          "nb_convolution: kernel 3, stride -1 and dilation 0 along H must be at least 1");
    FAILS(nb_convolution(x, w, .groups = 2, .padding = NB_PAD_EXPLICIT, .pad = {0, 0, -1, 2}),
          "nb_convolution: padding (-1,2) along W must not be negative");
    FAILS(nb_convolution(x, w, .groups = 2, .pad = {1, 1, 1, 1}),
          "nb_convolution: padding (1,1) along H given without .padding = NB_PAD_EXPLICIT");
    FAILS(nb_convolution(x, w, .groups = 2, .padding = (nb_padding)7),
          "nb_convolution: padding 7 is not NB_PAD_VALID, NB_PAD_SAME or NB_PAD_EXPLICIT");
    FAILS(nb_convolution(x3, w), "nb_convolution: w (3,3,2,6) does not fit x (1,5,4): w is "
                                 "(K,C/groups,F)");
    FAILS(nb_convolution(x3, nb_zeros_like(nb_reshape(w, NB_SHAPE(9, 2, 6))), .stride = {1, 2},
                         .groups = 2),
          "nb_convolution: a 1-D convolution takes stride[0], dilation[0] and pad[0..1]");
    FAILS(nb_convolution(b, w), "nb_convolution: x must be (N,H,W,C) or, 1-D, (N,W,C); got (5,)");
    FAILS(nb_avg_pool2d(x, {2, 2}, .padding = NB_PAD_EXPLICIT, .pad = {2, 0, 0, 0}),
          "nb_avg_pool2d: padding (2,0,0,0) must be smaller than the pool size (2,2)");
    FAILS(nb_avg_pool2d(x, {6, 1}), "nb_avg_pool2d: the kernel 6 (dilation 1: 6 wide) along H "
                                    "is larger than the padded input 5 + 0 + 0");
    FAILS(nb_avg_pool2d(x3), "nb_avg_pool2d: x must be (N,H,W,C), got (1,5,4)");
    FAILS(nb_global_avg_pool2d(x3), "nb_global_avg_pool2d: x must be (N,H,W,C), got (1,5,4)");
    FAILS(nb_im2col(x3, (nb_window2d){.kernel = {2, 2}}), "nb_im2col: x must be (N,H,W,C), got (1,5,4)");
    FAILS(nb_im2col(x, (nb_window2d){.kernel = {2, 0}}), "nb_im2col: kernel (2,0), stride (1,1) and "
                                               "dilation (1,1) must be at least 1");
    FAILS(nb_im2col(x, (nb_window2d){.kernel = {3, 3}, .pad = {0, -1}}),
          "nb_im2col: padding (0,-1,0,0) must not be negative");
    FAILS(nb_im2col(x, (nb_window2d){.kernel = {3, 9}}),
          "nb_im2col: the window (3,9) with dilation (1,1) is larger than the padded image "
          "(5+0+0, 5+0+0)");
    FAILS(nb_col2im(x, (nb_window2d){.kernel = {2, 2}}, 5, 5),
          "nb_col2im: patches (1,5,5,4) are not those of a (2,2) window over a 5x5 image, "
          "which are (N,4,4,4*C)");
    FAILS(nb_col2im(x, (nb_window2d){.kernel = {1, 1}}, -5, 5),
          "nb_col2im: image size (-5,5) must not be negative");
    nb_graph_free(gr);
    nb_free(x), nb_free(w), nb_free(w64), nb_free(b), nb_free(big), nb_free(x3);
}

/* ---- the counted bad-argument cases (bad_args.h's runner and fixtures) ---- */

static nb_tensor *cx, *cw, *cb, *cx64, *cx8, *cx3, *cw3;

static void test_bad_args_conv(void **state)
{
    (void)state;
    SECTION_BEGIN();
    cx = nb_ones(NB_F32, NB_SHAPE(1, 5, 5, 4));
    cw = nb_ones(NB_F32, NB_SHAPE(3, 3, 4, 6));
    cb = nb_ones(NB_F32, NB_SHAPE(6));
    cx64 = nb_ones(NB_F64, NB_SHAPE(1, 5, 5, 4));
    cx8 = nb_zeros(NB_U8, NB_SHAPE(1, 5, 5, 4));
    cx3 = nb_ones(NB_F32, NB_SHAPE(1, 5, 4));
    cw3 = nb_ones(NB_F32, NB_SHAPE(3, 4, 6));
    const nb_window2d win = {.kernel = {3, 3}};
    /* The valid calls work (not counted). */
    assert_non_null(nb_convolution(cx, cw, cb));
    assert_non_null(nb_convolution(cx3, cw3, cb));
    assert_non_null(nb_col2im(nb_im2col(cx, win), win, 5, 5));
    CASE("nb_convolution", INV, nb_convolution(NULL, cw) == NULL);
    CASE("nb_convolution", INV, nb_convolution(cx, NULL) == NULL);
    KEEP(nb_convolution(NULL, cw) == NULL);
    KEEP(nb_convolution(cx, NULL, cb) == NULL);
    CASE("nb_avg_pool2d", INV, nb_avg_pool2d(NULL) == NULL);
    KEEP(nb_avg_pool2d(NULL) == NULL);
    CASE("nb_global_avg_pool2d", INV, nb_global_avg_pool2d(NULL) == NULL);
    KEEP(nb_global_avg_pool2d(NULL) == NULL);
    CASE("nb_im2col", INV, nb_im2col(NULL, win) == NULL);
    KEEP(nb_im2col(NULL, win) == NULL);
    CASE("nb_col2im", INV, nb_col2im(NULL, win, 5, 5) == NULL);
    KEEP(nb_col2im(NULL, win, 5, 5) == NULL);
    for (int b = 0; b < 4; b++) {
        nb_tensor *bad = bad_tensors()[b];
        CASE("nb_convolution", STA, nb_convolution(bad, cw) == NULL);
        CASE("nb_convolution", STA, nb_convolution(cx, bad) == NULL);
        CASE("nb_convolution", STA, nb_convolution(cx, cw, bad) == NULL);
        CASE("nb_avg_pool2d", STA, nb_avg_pool2d(bad) == NULL);
        CASE("nb_global_avg_pool2d", STA, nb_global_avg_pool2d(bad) == NULL);
        CASE("nb_im2col", STA, nb_im2col(bad, win) == NULL);
        CASE("nb_col2im", STA, nb_col2im(bad, win, 5, 5) == NULL);
    }
    CASE("nb_convolution", DTY, nb_convolution(cx8, cw) == NULL);
    CASE("nb_convolution", DTY, nb_convolution(cx64, cw) == NULL);
    CASE("nb_convolution", DTY, nb_convolution(cx, cw, nb_cast(cb, NB_F64)) == NULL);
    CASE("nb_avg_pool2d", DTY, nb_avg_pool2d(cx8) == NULL);
    CASE("nb_global_avg_pool2d", DTY, nb_global_avg_pool2d(cx8) == NULL);
    CASE("nb_im2col", DTY, nb_im2col(cx8, win) == NULL);
    /* Shapes that do not fit. */
    CASE("nb_convolution", SHP, nb_convolution(f23, cw) == NULL);
    CASE("nb_convolution", SHP, nb_convolution(f8d, cw) == NULL);
    CASE("nb_convolution", SHP, nb_convolution(cx, cw3) == NULL);
    CASE("nb_convolution", SHP, nb_convolution(cx3, cw) == NULL);
    CASE("nb_convolution", SHP, nb_convolution(cx, cw, f4) == NULL);
    CASE("nb_convolution", SHP, nb_convolution(cx, nb_ones_like(cx)) == NULL); /* C/g */
    CASE("nb_convolution", SHP, nb_convolution(cx, cw, .dilation = {3, 1}) == NULL);
    CASE("nb_convolution", SHP, nb_convolution(cx3, cw3, .dilation = {3}) == NULL);
    CASE("nb_avg_pool2d", SHP, nb_avg_pool2d(cx3) == NULL);
    CASE("nb_avg_pool2d", SHP, nb_avg_pool2d(cx, {6, 6}) == NULL);
    CASE("nb_global_avg_pool2d", SHP, nb_global_avg_pool2d(f23) == NULL);
    CASE("nb_im2col", SHP, nb_im2col(f23, win) == NULL);
    CASE("nb_im2col", SHP, nb_im2col(cx, (nb_window2d){.kernel = {6, 1}}) == NULL);
    CASE("nb_col2im", SHP, nb_col2im(cx, win, 5, 5) == NULL);
    CASE("nb_col2im", SHP, nb_col2im(f23, win, 5, 5) == NULL);
    CASE("nb_col2im", SHP, nb_col2im(cx, win, -1, 5) == NULL);
    CASE("nb_col2im", SHP, nb_col2im(cx, win, INT64_MAX, 5) == NULL);
    /* Option values out of range. */
    const int64_t bad_vals[] = {-1, -2, INT64_MIN};
    for (int k = 0; k < 3; k++) {
        int64_t v = bad_vals[k];
        CASE("nb_convolution", INV, nb_convolution(cx, cw, .stride = {v, 1}) == NULL);
        CASE("nb_convolution", INV, nb_convolution(cx, cw, .stride = {1, v}) == NULL);
        CASE("nb_convolution", INV, nb_convolution(cx, cw, .dilation = {v, 1}) == NULL);
        CASE("nb_convolution", INV, nb_convolution(cx, cw, .dilation = {1, v}) == NULL);
        CASE("nb_convolution", INV, nb_convolution(cx, cw, .groups = v) == NULL);
        CASE("nb_convolution", INV,
             nb_convolution(cx, cw, .padding = NB_PAD_EXPLICIT, .pad = {0, 0, v, 0}) == NULL);
        CASE("nb_convolution", INV, nb_convolution(cx3, cw3, .stride = {v}) == NULL);
        CASE("nb_avg_pool2d", INV, nb_avg_pool2d(cx, {v, 2}) == NULL);
        CASE("nb_avg_pool2d", INV, nb_avg_pool2d(cx, {2, 2}, {1, v}) == NULL);
        CASE("nb_avg_pool2d", INV,
             nb_avg_pool2d(cx, .padding = NB_PAD_EXPLICIT, .pad = {v, 0, 0, 0}) == NULL);
        CASE("nb_im2col", INV, nb_im2col(cx, (nb_window2d){.kernel = {3, 3}, {v, 1}}) == NULL);
        CASE("nb_im2col", INV, nb_im2col(cx, (nb_window2d){.kernel = {3, 3}, .dilation = {1, v}}) == NULL);
        CASE("nb_im2col", INV, nb_im2col(cx, (nb_window2d){.kernel = {3, 3}, .pad = {0, 0, 0, v}}) == NULL);
        CASE("nb_im2col", INV, nb_im2col(cx, (nb_window2d){.kernel = {v, 3}}) == NULL);
        CASE("nb_col2im", INV, nb_col2im(cx, (nb_window2d){.kernel = {1, v}}, 5, 5) == NULL);
        CASE("nb_conv_output_size", INV, nb_conv_output_size(5, 3, .stride = v).out == -1);
        CASE("nb_conv_output_size", INV, nb_conv_output_size(5, 3, .dilation = v).out == -1);
        CASE("nb_conv_output_size", INV, nb_conv_output_size(5, v).out == -1);
        CASE("nb_conv_output_size", SHP, nb_conv_output_size(v, 3).out == -1);
        CASE("nb_conv_output_size", INV,
             nb_conv_output_size(5, 3, .padding = NB_PAD_EXPLICIT, .pad = {0, v}).out == -1);
    }
    CASE("nb_convolution", INV, nb_convolution(cx, cw, .groups = 3) == NULL);
    CASE("nb_convolution", INV, nb_convolution(cx, cw, .groups = 4) == NULL); /* 6 filters */
    CASE("nb_convolution", INV, nb_convolution(cx, cw, .pad = {1, 0, 0, 0}) == NULL);
    CASE("nb_convolution", INV, nb_convolution(cx, cw, .padding = (nb_padding)-1) == NULL);
    CASE("nb_convolution", INV, nb_convolution(cx3, cw3, .pad = {0, 0, 1, 0}) == NULL);
    CASE("nb_convolution", INV, nb_convolution(cx3, cw3, .dilation = {1, 2}) == NULL);
    CASE("nb_avg_pool2d", INV, nb_avg_pool2d(cx, {3, 3}, .padding = NB_PAD_EXPLICIT,
                                             .pad = {0, 0, 3, 0}) == NULL);
    CASE("nb_conv_output_size", INV, nb_conv_output_size(5, 3, .padding = (nb_padding)9).out == -1);
    CASE("nb_conv_output_size", SHP, nb_conv_output_size(2, 3).out == -1);
    /* Sizes whose products overflow are errors, not wrapped windows. */
    CASE("nb_conv_output_size", SHP,
         nb_conv_output_size(5, INT64_MAX, .dilation = INT64_MAX).out == -1);
    CASE("nb_conv_output_size", SHP,
         nb_conv_output_size(INT64_MAX, 3, .padding = NB_PAD_EXPLICIT, .pad = {INT64_MAX, 1})
             .out == -1);
    CASE("nb_im2col", SHP, nb_im2col(cx, (nb_window2d){.kernel = {2, 2}, .dilation = {INT64_MAX, 1}}) ==
                               NULL);
    CASE("nb_im2col", SHP, nb_im2col(cx, (nb_window2d){.kernel = {1, 1}, .pad = {INT64_MAX, 1}}) == NULL);
    CASE("nb_col2im", SHP, nb_col2im(cx, (nb_window2d){.kernel = {INT64_MAX, INT64_MAX}, .pad =
                               {INT64_MAX, 0, INT64_MAX, 0}}, 5, 5) == NULL);
    /* No current graph (the group's graphs are freed here, as in test_bad_args.c). */
    while (nb_graph_current())
        nb_graph_free(nb_graph_current());
    nb_graph_free(outer);
    outer = NULL;
    CASE("nb_convolution", STA, nb_convolution(cx, cw) == NULL);
    CASE("nb_avg_pool2d", STA, nb_avg_pool2d(cx) == NULL);
    CASE("nb_global_avg_pool2d", STA, nb_global_avg_pool2d(cx) == NULL);
    CASE("nb_im2col", STA, nb_im2col(cx, win) == NULL);
    nb_tensor *all[] = {cx, cw, cb, cx64, cx8, cx3, cw3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nb_free(all[i]);
    (void)bad_shapes, (void)bad_dtypes; /* bad_args.h's other fixtures: no dims or dtypes here */
    SECTION_END();
    printf("# bad arguments (convolution and pooling): %d cases tried, %d gave the documented "
           "error\n", tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 140);
}

int main(void)
{
    /* One group (one TAP plan): bad_args.h's fixtures are set up for all,
     * and the bad-argument test, which frees the group's graphs, runs last. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_against_loops), cmocka_unit_test(test_1d_values),
        cmocka_unit_test(test_keras_shapes),         cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_avg_pool),             cmocka_unit_test(test_pool_gradients),
        cmocka_unit_test(test_adjoint),              cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_misuse_messages),      cmocka_unit_test(test_bad_args_conv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
