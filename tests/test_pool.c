/* Max pooling against a naive loop, its ties, NaNs, shapes and derivatives;
 * inverted dropout's mask, scaling and gradient; their bad arguments,
 * counted as test_bad_args_api.c counts them. */
#define _POSIX_C_SOURCE 200809L
#include "bad_args.h"

/* ---- the reference: a loop over every window position ---- */

typedef struct {
    int64_t n, h, w, c;       /* x's shape */
    int64_t kh, kw, sh, sw;   /* 0 stride: as the public default (the kernel) */
    nb_padding mode;
    int64_t pad[4];           /* EXPLICIT only */
} config;

/* The padding a config means, worked out independently of the library. */
static void ref_pads(const config *c, int64_t p[4])
{
    int64_t k[2] = {c->kh, c->kw}, s[2] = {c->sh ? c->sh : c->kh, c->sw ? c->sw : c->kw},
            n[2] = {c->h, c->w};
    for (int d = 0; d < 2; d++) {
        if (c->mode == NB_PAD_EXPLICIT) {
            p[2 * d] = c->pad[2 * d], p[2 * d + 1] = c->pad[2 * d + 1];
        } else if (c->mode == NB_PAD_SAME) {
            int64_t out = (n[d] + s[d] - 1) / s[d], t = (out - 1) * s[d] + k[d] - n[d];
            t = t < 0 ? 0 : t;
            p[2 * d] = t / 2, p[2 * d + 1] = t - t / 2;
        } else {
            p[2 * d] = p[2 * d + 1] = 0;
        }
    }
}

static void ref_out(const config *c, int64_t *ho, int64_t *wo)
{
    int64_t p[4];
    ref_pads(c, p);
    int64_t sh = c->sh ? c->sh : c->kh, sw = c->sw ? c->sw : c->kw;
    *ho = (c->h + p[0] + p[1] - c->kh) / sh + 1;
    *wo = (c->w + p[2] + p[3] - c->kw) / sw + 1;
}

/* y and, per output element, the flat index in x of the window's winner:
 * padded positions are skipped (they never win), then the first of the
 * largest in row-major window order, a NaN beating any number. */
static void ref_pool(const config *c, const double *x, double *y, int64_t *at)
{
    int64_t p[4], ho, wo, sh = c->sh ? c->sh : c->kh, sw = c->sw ? c->sw : c->kw;
    ref_pads(c, p);
    ref_out(c, &ho, &wo);
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t i = 0; i < ho; i++)
            for (int64_t j = 0; j < wo; j++)
                for (int64_t ch = 0; ch < c->c; ch++) {
                    int64_t best = -1;
                    for (int64_t a = 0; a < c->kh; a++)
                        for (int64_t b = 0; b < c->kw; b++) {
                            int64_t h = i * sh - p[0] + a, w = j * sw - p[2] + b;
                            if (h < 0 || h >= c->h || w < 0 || w >= c->w)
                                continue;
                            int64_t e = ((n * c->h + h) * c->w + w) * c->c + ch;
                            if (best < 0 || x[e] > x[best] || (isnan(x[e]) && !isnan(x[best])))
                                best = e;
                        }
                    int64_t o = ((n * ho + i) * wo + j) * c->c + ch;
                    at[o] = best;
                    y[o] = x[best];
                }
}

static nb_tensor *pool_of(nb_tensor *x, const config *c)
{
    return nb_max_pool2d(x, .kernel = {c->kh, c->kw}, .stride = {c->sh, c->sw},
                         .padding = c->mode,
                         .pad = {c->pad[0], c->pad[1], c->pad[2], c->pad[3]});
}

/* The base that `layout` makes x a view of: 0 x itself, 1 every second
 * column and rows reversed of a larger tensor, 2 a permuted NCHW tensor
 * (channels strided). The view gets x's values. */
static nb_tensor *view_of(nb_tensor *base, int layout)
{
    if (layout == 1)
        return nb_slice(nb_slice(base, 2, 1, INT64_MAX, 2), 1, INT64_MAX, INT64_MIN, -1);
    if (layout == 2)
        return nb_permute(base, 4, (const int[]){0, 2, 3, 1});
    return base;
}

static nb_tensor *base_for(nb_dtype dt, const config *c, int layout, const double *v)
{
    int64_t n = c->n, h = c->h, w = c->w, ch = c->c;
    nb_tensor *b = layout == 1   ? nb_zeros(dt, NB_SHAPE(n, h, 2 * w + 1, ch))
                   : layout == 2 ? nb_zeros(dt, NB_SHAPE(n, ch, h, w))
                                 : nb_zeros(dt, NB_SHAPE(n, h, w, ch));
    nb_graph *g = nb_graph_new();
    nb_tensor *view = view_of(b, layout);
    for (int64_t i = 0; i < n * h * w * ch; i++) {
        int64_t idx[4] = {i / (h * w * ch), i / (w * ch) % h, i / ch % w, i % ch};
        assert_int_equal(nb_set(view, 4, idx, v[i]), 0);
    }
    nb_graph_free(g);
    return b;
}

static const config configs[] = {
    {2, 6, 6, 3, 2, 2, 0, 0, NB_PAD_VALID, {0}},
    {1, 7, 5, 2, 2, 2, 0, 0, NB_PAD_VALID, {0}},  /* a row and column left over */
    {2, 7, 6, 2, 3, 3, 2, 2, NB_PAD_VALID, {0}},  /* overlapping windows */
    {1, 5, 8, 3, 2, 3, 1, 2, NB_PAD_VALID, {0}},  /* non-square, stride 1 rows */
    {3, 4, 4, 1, 1, 1, 1, 1, NB_PAD_VALID, {0}},  /* identity */
    {2, 5, 7, 2, 2, 2, 1, 3, NB_PAD_VALID, {0}},  /* stride > kernel along w */
    {2, 5, 5, 2, 3, 3, 2, 2, NB_PAD_SAME, {0}},   /* total 2 each: even */
    {1, 6, 6, 3, 3, 3, 2, 2, NB_PAD_SAME, {0}},   /* total 1: odd, at the bottom */
    {2, 7, 4, 2, 2, 3, 2, 1, NB_PAD_SAME, {0}},
    {1, 11, 11, 4, 2, 2, 0, 0, NB_PAD_SAME, {0}}, /* 11 -> 6 */
    {2, 5, 6, 2, 3, 2, 2, 2, NB_PAD_EXPLICIT, {1, 0, 1, 1}}, /* odd, even totals */
    {1, 6, 5, 3, 3, 3, 1, 1, NB_PAD_EXPLICIT, {2, 2, 0, 1}},
    {2, 4, 4, 2, 4, 4, 4, 4, NB_PAD_EXPLICIT, {3, 0, 0, 3}},
};
#define NCONFIGS (int)(sizeof configs / sizeof configs[0])

/* Every config, dtype and input layout: the values and the gradient of
 * sum(y * u) against the reference, exactly (both pick single elements;
 * overlapping windows add in the same order). */
static void test_against_reference(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(7);
    int checked = 0;
    for (int k = 0; k < NCONFIGS; k++) {
        const config *c = &configs[k];
        int64_t ho, wo, nx = c->n * c->h * c->w * c->c;
        ref_out(c, &ho, &wo);
        int64_t ny = c->n * ho * wo * c->c;
        double *v = malloc((size_t)nx * sizeof *v), *y = malloc((size_t)ny * sizeof *y);
        double *u = malloc((size_t)ny * sizeof *u), *dx = calloc((size_t)nx, sizeof *dx);
        double *got = malloc((size_t)(nx > ny ? nx : ny) * sizeof *got);
        int64_t *at = malloc((size_t)ny * sizeof *at);
        for (int64_t i = 0; i < nx; i++) /* exact in f32: the reference sees the same values */
            v[i] = (double)(float)nb_rng_normal(&rng);
        for (int64_t i = 0; i < ny; i++)
            u[i] = (double)(float)nb_rng_normal(&rng);
        ref_pool(c, v, y, at);
        for (int64_t i = 0; i < ny; i++)
            dx[at[i]] += u[i];
        for (int dt = 0; dt < 2; dt++)
            for (int layout = 0; layout < 3; layout++) {
                nb_dtype type = dt ? NB_F64 : NB_F32;
                nb_tensor *base = nb_param(base_for(type, c, layout, v));
                nb_tensor *ut = nb_from_array(NB_F64, NB_SHAPE(c->n, ho, wo, c->c), u);
                nb_graph *g = nb_graph_new();
                nb_tensor *yt = pool_of(view_of(base, layout), c);
                if (!yt)
                    fail_msg("config %d: %s", k, nb_last_error());
                assert_int_equal(nb_ndim(yt), 4);
                assert_int_equal(nb_dim(yt, 1), ho);
                assert_int_equal(nb_dim(yt, 2), wo);
                assert_int_equal(nb_to_doubles(yt, got), 0);
                for (int64_t i = 0; i < ny; i++)
                    if (got[i] != y[i])
                        fail_msg("config %d %s layout %d: y[%lld] = %g, want %g", k,
                                 nb_dtype_name(type), layout, (long long)i, got[i], y[i]);
                assert_int_equal(nb_backward(nb_sum(nb_mul(yt, nb_cast(ut, type)))), 0);
                nb_tensor *gx = view_of(nb_grad_of(base), layout);
                assert_int_equal(nb_to_doubles(gx, got), 0);
                for (int64_t i = 0; i < nx; i++)
                    if (fabs(got[i] - dx[i]) > 1e-6 * (1 + fabs(dx[i])))
                        fail_msg("config %d %s layout %d: dx[%lld] = %g, want %g", k,
                                 nb_dtype_name(type), layout, (long long)i, got[i], dx[i]);
                nb_graph_free(g);
                nb_free(ut);
                nb_free(base);
                checked++;
            }
        free(v), free(y), free(u), free(dx), free(got), free(at);
    }
    assert_int_equal(checked, NCONFIGS * 6);
}

/* Ties: the gradient goes to the first maximum in row-major window order,
 * by hand. */
static void test_ties(void **state)
{
    (void)state;
    /* (1,2,4,1): windows {1,3 / 3,2} and {3,0 / 1,3}, and -0 before +0. */
    nb_tensor *x = nb_param(nb_from_array(NB_F64, NB_SHAPE(1, 2, 6, 1),
                                          (double[]){1, 3, 3, 0, -0.0, 0, 3, 2, 1, 3, 0, 0}));
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_max_pool2d(x, .kernel = {2});
    double got[12];
    assert_int_equal(nb_to_doubles(y, got), 0);
    assert_true(got[0] == 3 && got[1] == 3 && got[2] == 0 && signbit(got[2]));
    assert_int_equal(nb_backward(nb_sum(y)), 0);
    assert_int_equal(nb_to_doubles(nb_grad_of(x), got), 0);
    const double want[12] = {0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++)
        if (got[i] != want[i])
            fail_msg("tie gradient [%d] = %g, want %g", i, got[i], want[i]);
    /* All equal, overlapping 2x2 windows with stride 1: each window's
     * top-left element gets its gradient. */
    nb_tensor *ones = nb_param(nb_ones(NB_F32, NB_SHAPE(1, 3, 3, 1)));
    nb_tensor *z = nb_max_pool2d(ones, .kernel = {2}, .stride = {1});
    assert_int_equal(nb_backward(nb_sum(z)), 0);
    assert_int_equal(nb_to_doubles(nb_grad_of(ones), got), 0);
    const double want2[9] = {1, 1, 0, 1, 1, 0, 0, 0, 0};
    for (int i = 0; i < 9; i++)
        if (got[i] != want2[i])
            fail_msg("overlapping tie gradient [%d] = %g, want %g", i, got[i], want2[i]);
    /* SAME padding with a window of equal -inf: the real element wins,
     * never the padding. */
    nb_tensor *m = nb_param(nb_full(NB_F64, NB_SHAPE(1, 1, 1, 1), -INFINITY));
    nb_tensor *w = nb_max_pool2d(m, .kernel = {3}, .stride = {1}, .padding = NB_PAD_SAME);
    assert_true(isinf(nb_item(w)) && nb_item(w) < 0);
    assert_int_equal(nb_backward(nb_sum(w)), 0);
    assert_true(nb_item(nb_grad_of(m)) == 1);
    nb_graph_free(g);
    nb_free(x), nb_free(ones), nb_free(m);
}

/* A NaN is the window's maximum and takes the gradient (the first NaN). */
static void test_nan(void **state)
{
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype type = dt ? NB_F64 : NB_F32;
        const double v[8] = {5, NAN, 1, 2, NAN, 9, 3, 4};
        const float vf[8] = {5, NAN, 1, 2, NAN, 9, 3, 4};
        nb_tensor *xt = nb_param(nb_from_array(type, NB_SHAPE(1, 2, 4, 1), dt ? (const void *)v
                                                                            : (const void *)vf));
        nb_graph *g = nb_graph_new();
        nb_tensor *y = nb_max_pool2d(xt, .kernel = {2});
        double got[8];
        assert_int_equal(nb_to_doubles(y, got), 0);
        assert_true(isnan(got[0]));
        assert_true(got[1] == 4);
        assert_int_equal(nb_backward(nb_sum(y)), 0);
        assert_int_equal(nb_to_doubles(nb_grad_of(xt), got), 0);
        const double want[8] = {0, 1, 0, 0, 0, 0, 0, 1};
        for (int i = 0; i < 8; i++)
            if (got[i] != want[i])
                fail_msg("%s NaN gradient [%d] = %g, want %g", nb_dtype_name(type), i, got[i],
                         want[i]);
        nb_graph_free(g);
        nb_free(xt);
    }
}

/* The output shapes Keras gives. */
static void test_keras_shapes(void **state)
{
    (void)state;
    nb_tensor *a = nb_zeros(NB_F32, NB_SHAPE(4, 26, 26, 32));
    nb_tensor *b = nb_zeros(NB_F32, NB_SHAPE(4, 11, 11, 64));
    nb_graph *g = nb_graph_new();
    struct {
        nb_tensor *y;
        int64_t h, w;
    } cases[] = {
        {nb_max_pool2d(a, .kernel = {2}), 13, 13},                      /* MaxPooling2D(2) */
        {nb_max_pool2d(b, .kernel = {2}), 5, 5},
        {nb_max_pool2d(b, .kernel = {2}, .padding = NB_PAD_SAME), 6, 6},
        {nb_max_pool2d(b, .kernel = {3}, .stride = {2}), 5, 5},
        {nb_max_pool2d(b, .kernel = {3}, .stride = {1}, .padding = NB_PAD_SAME), 11, 11},
        {nb_max_pool2d(a, .kernel = {3, 2}, .stride = {2, 3}), 12, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_non_null(cases[i].y);
        assert_int_equal(nb_dim(cases[i].y, 0), 4);
        assert_int_equal(nb_dim(cases[i].y, 1), cases[i].h);
        assert_int_equal(nb_dim(cases[i].y, 2), cases[i].w);
        assert_int_equal(nb_dim(cases[i].y, 3), nb_dim(i == 0 || i == 5 ? a : b, 3));
    }
    nb_tensor *gm = nb_global_max_pool2d(b);
    assert_int_equal(nb_ndim(gm), 2);
    assert_int_equal(nb_dim(gm, 0), 4);
    assert_int_equal(nb_dim(gm, 1), 64);
    nb_graph_free(g);
    nb_free(a), nb_free(b);
}

/* ---- derivatives, on inputs without ties ---- */

static nb_tensor *pool_fn(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    return pool_of(x[0], ctx);
}

static nb_tensor *global_fn(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_global_max_pool2d(x[0]);
}

/* x's elements: a shuffled 0.01 * arange, so no two are closer than the
 * central differences' steps reach. */
static nb_tensor *tie_free(const config *c, uint64_t seed)
{
    int64_t nx = c->n * c->h * c->w * c->c;
    double *v = malloc((size_t)nx * sizeof *v);
    nb_rng r = nb_rng_new(seed);
    for (int64_t i = 0; i < nx; i++)
        v[i] = 0.01 * (double)i - 0.005 * (double)nx;
    for (int64_t i = nx - 1; i > 0; i--) {
        int64_t j = (int64_t)nb_rng_below(&r, (uint64_t)i + 1);
        double t = v[i];
        v[i] = v[j], v[j] = t;
    }
    nb_tensor *x = nb_set_requires_grad(
        nb_from_array(NB_F64, NB_SHAPE(c->n, c->h, c->w, c->c), v), true);
    free(v);
    return x;
}

static void test_gradcheck(void **state)
{
    (void)state;
    for (int k = 0; k < NCONFIGS; k++) {
        nb_tensor *x = tie_free(&configs[k], (uint64_t)k);
        nb_check_report r;
        for (int layout = 0; layout < NB_CHECK_LAYOUTS; layout++) {
            if (layout == NB_LAYOUT_BROADCAST)
                continue; /* a broadcast base repeats values: ties by construction */
            nb_check_opts o = {.layout = (nb_check_layout)layout};
            if (!nb_gradcheck(pool_fn, (void *)&configs[k], 1, &x, &o, &r)) {
                nb_check_report_print(&r, stderr);
                fail_msg("gradcheck of config %d, layout %d", k, layout);
            }
            if (!nb_gradgradcheck(pool_fn, (void *)&configs[k], 1, &x, &o, &r)) {
                nb_check_report_print(&r, stderr);
                fail_msg("gradgradcheck of config %d, layout %d", k, layout);
            }
        }
        if (!nb_gradcheck(global_fn, NULL, 1, &x, NULL, &r)) {
            nb_check_report_print(&r, stderr);
            fail_msg("gradcheck of global max pool, config %d", k);
        }
        nb_free(x);
    }
}

/* The adjoint identity <select(x, g), d> = <g, scatter(x, d)>, on an x
 * full of ties (integers), where the two ops must agree on the winners. */
static void test_adjoint(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(3);
    for (int k = 0; k < NCONFIGS; k++) {
        const config *c = &configs[k];
        int64_t ho, wo;
        ref_out(c, &ho, &wo);
        nb_tensor *x = nb_rand(NB_F64, NB_SHAPE(c->n, c->h, c->w, c->c), &rng);
        nb_tensor *gg = nb_randn(NB_F64, NB_SHAPE(c->n, c->h, c->w, c->c), &rng);
        nb_tensor *d = nb_randn(NB_F64, NB_SHAPE(c->n, ho, wo, c->c), &rng);
        nb_graph *g = nb_graph_new();
        nb_tensor *xi = nb_mul(nb_cast(nb_gt(x, nb_scalar_like(x, 0.5)), NB_F64),
                               nb_scalar_like(x, 2.0)); /* 0 or 2: ties everywhere */
        nb_tensor *s = nb_pool_select(gg, xi, .kernel = {c->kh, c->kw},
                                      .stride = {c->sh, c->sw}, .padding = c->mode,
                                      .pad = {c->pad[0], c->pad[1], c->pad[2], c->pad[3]});
        nb_tensor *t = nb_pool_scatter(d, xi, .kernel = {c->kh, c->kw},
                                       .stride = {c->sh, c->sw}, .padding = c->mode,
                                       .pad = {c->pad[0], c->pad[1], c->pad[2], c->pad[3]});
        double lhs = nb_item(nb_sum(nb_mul(s, d))), rhs = nb_item(nb_sum(nb_mul(gg, t)));
        if (!(fabs(lhs - rhs) <= 1e-12 * (1 + fabs(lhs))))
            fail_msg("config %d: <select, d> = %.17g, <g, scatter> = %.17g", k, lhs, rhs);
        nb_graph_free(g);
        nb_free(x), nb_free(gg), nb_free(d);
    }
}

/* ---- dropout ---- */

#define PINNED_BITS 0x988fd7fcu
static void test_dropout_mask(void **state)
{
    (void)state;
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(1000, 1000));
    nb_graph *g = nb_graph_new();
    nb_rng a = nb_rng_new(42), b = nb_rng_new(42), c = nb_rng_new(42);
    nb_tensor *m1 = nb_dropout_mask(x, 0.3, &a), *m2 = nb_dropout_mask(x, 0.3, &b);
    assert_non_null(m1);
    assert_false(nb_is_heap(m1));
    assert_false(nb_requires_grad(m1));
    const float *p = nb_data(m1), *q = nb_data(m2);
    int64_t kept = 0, n = nb_numel(m1);
    for (int64_t i = 0; i < n; i++) {
        if (p[i] != q[i])
            fail_msg("mask differs at %lld with the same seed", (long long)i);
        if (p[i] != 0 && p[i] != 1)
            fail_msg("mask[%lld] = %g", (long long)i, p[i]);
        kept += p[i] == 1;
    }
    /* Binomial(1e6, 0.7): sd 458; 10 sd never happens by chance. */
    assert_true(kept > 700000 - 4600 && kept < 700000 + 4600);
    /* The documented rule, element by element: the i-th uniform >= rate,
     * and the generator advanced by one draw per element. */
    for (int64_t i = 0; i < n; i++)
        assert_true(p[i] == (nb_rng_uniform(&c) >= 0.3 ? 1.0f : 0.0f));
    assert_true(nb_rng_next(&a) == nb_rng_next(&c));
    /* At the edges of the rule: rates a draw equals exactly (kept, as
     * u >= u), the next double above it (dropped), the smallest and largest
     * rates, and f64 masks. */
    nb_rng u = nb_rng_new(7);
    double d3 = (nb_rng_uniform(&u), nb_rng_uniform(&u), nb_rng_uniform(&u));
    const double rates[] = {d3, nextafter(d3, 1), 0x1p-53, 1 - 0x1p-53, 1.0 / 3, 0};
    for (int k = 0; k < 6; k++)
        for (int dt = 0; dt < 2; dt++) {
            nb_rng e = nb_rng_new(7), f = nb_rng_new(7);
            nb_tensor *xs = nb_slice(x, 0, 0, 3, 1);
            nb_tensor *m = nb_dropout_mask(dt ? nb_cast(xs, NB_F64) : xs, rates[k], &e);
            assert_non_null(m);
            for (int64_t i = 0; i < nb_numel(m); i++)
                if (nb_get_flat(m, i) != (nb_rng_uniform(&f) >= rates[k] ? 1 : 0))
                    fail_msg("rate %.17g, %s: mask[%lld] = %g", rates[k], dt ? "f64" : "f32",
                             (long long)i, nb_get_flat(m, i));
            assert_true(nb_rng_next(&e) == nb_rng_next(&f));
            if (k < 2) /* the third draw sits on the edge */
                assert_true(nb_get_flat(m, 2) == (k == 0 ? 1 : 0));
        }
    /* Pinned bits, so that a change of generator or rule shows: the first 32
     * of seed 42 at rate 0.5, element 0 in the lowest bit. */
    nb_rng s = nb_rng_new(42);
    nb_tensor *m3 = nb_dropout_mask(nb_slice(x, 0, 0, 1, 1), 0.5, &s);
    const float *r = nb_data(m3);
    uint32_t bits = 0;
    for (int i = 0; i < 32; i++)
        bits |= (uint32_t)(r[i] == 1) << i;
    printf("# mask bits of seed 42 at rate 0.5: 0x%08x\n", (unsigned)bits);
    assert_true(bits == PINNED_BITS);
    /* Another seed, another mask. */
    nb_rng d = nb_rng_new(43);
    nb_tensor *m4 = nb_dropout_mask(x, 0.3, &d);
    assert_int_not_equal(memcmp(nb_data(m4), p, (size_t)n * sizeof *p), 0);
    nb_graph_free(g);
    nb_free(x);
}

static void test_inverted_dropout(void **state)
{
    (void)state;
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype type = dt ? NB_F64 : NB_F32;
        nb_rng init = nb_rng_new(5);
        nb_tensor *x = nb_param(nb_randn(type, NB_SHAPE(64, 50), &init));
        nb_graph *g = nb_graph_new();
        nb_rng a = nb_rng_new(9), b = nb_rng_new(9);
        double rate = 0.25, scale = 1 / (1 - rate);
        nb_tensor *y = nb_inverted_dropout(x, rate, &a);
        nb_tensor *m = nb_dropout_mask(x, rate, &b);
        assert_non_null(y);
        assert_true(nb_requires_grad(y));
        assert_int_equal(nb_backward(nb_sum(y)), 0);
        int64_t n = nb_numel(x), dropped = 0;
        for (int64_t i = 0; i < n; i++) {
            double xi = nb_get_flat(x, i), yi = nb_get_flat(y, i), mi = nb_get_flat(m, i);
            double gi = nb_get_flat(nb_grad_of(x), i);
            double want = dt ? xi * (mi * scale) : (double)((float)xi * (float)(mi * scale));
            if (yi != want)
                fail_msg("%s: y[%lld] = %g, want x * mask / (1 - rate) = %g", nb_dtype_name(type),
                         (long long)i, yi, want);
            if (fabs(gi - mi * scale) > 1e-7 * scale)
                fail_msg("%s: grad[%lld] = %g, want mask / (1 - rate) = %g",
                         nb_dtype_name(type), (long long)i, gi, mi * scale);
            dropped += mi == 0;
        }
        assert_true(dropped > 0 && dropped < n);
        /* Rate 0 is the identity and draws nothing. */
        nb_rng c = nb_rng_new(1), c0 = nb_rng_new(1);
        assert_ptr_equal(nb_inverted_dropout(x, 0.0, &c), x);
        assert_true(nb_rng_next(&c) == nb_rng_next(&c0));
        nb_graph_free(g);
        nb_free(x);
    }
}

/* A training step with dropout allocates nothing once its graph has grown. */
static void test_dropout_no_alloc(void **state)
{
    (void)state;
    nb_tensor *w = nb_param(nb_ones(NB_F32, NB_SHAPE(32, 16)));
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(8, 8, 8, 32));
    nb_rng rng = nb_rng_new(2);
    nb_graph *g = nb_graph_new();
    for (int step = 0; step < 4; step++) {
        if (step == 2) {
            allocs = 0;
            nb_set_allocator(&counting_allocator);
        }
        nb_tensor *h = nb_max_pool2d(nb_inverted_dropout(x, 0.5, &rng), .kernel = {2});
        nb_tensor *loss = nb_sum(nb_matmul(nb_reshape(h, NB_SHAPE(-1, 32)), w));
        assert_int_equal(nb_backward(loss), 0);
        nb_zero_grad(w);
        nb_graph_reset(g);
    }
    nb_set_allocator(NULL);
    assert_int_equal(allocs, 0);
    nb_graph_free(g);
    nb_free(w), nb_free(x);
}

/* ---- bad arguments, counted ---- */

static void test_bad_args(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *x4 = nb_ones(NB_F32, NB_SHAPE(2, 4, 4, 3));
    nb_tensor *x4d = nb_ones(NB_F64, NB_SHAPE(2, 4, 4, 3));
    nb_tensor *u8 = nb_zeros(NB_U8, NB_SHAPE(2, 4, 4, 3));
    nb_tensor *small = nb_ones(NB_F32, NB_SHAPE(1, 1, 5, 1));
    nb_tensor *d2 = nb_ones(NB_F32, NB_SHAPE(2, 2, 2, 3));
    nb_tensor *e0 = nb_zeros(NB_F32, NB_SHAPE(2, 0, 3, 1));
    nb_rng rng = nb_rng_new(0);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(NULL, .kernel = {2}) == NULL);
    KEEP(nb_max_pool2d(NULL, .kernel = {2}) == NULL);
    CASE("nb_max_pool2d", SHP, nb_max_pool2d(f23, .kernel = {2}) == NULL);
    CASE("nb_max_pool2d", SHP, nb_max_pool2d(f8d, .kernel = {1}) == NULL);
    CASE("nb_max_pool2d", DTY, nb_max_pool2d(u8, .kernel = {2}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .count_include_pad = true) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {-2}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2, -1}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .stride = {-1}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .stride = {0, 2}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {INT64_MAX}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {1 << 20, 1 << 20}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .stride = {INT64_MAX}) == NULL);
    CASE("nb_max_pool2d", SHP, nb_max_pool2d(x4, .kernel = {5}) == NULL);
    CASE("nb_max_pool2d", SHP, nb_max_pool2d(small, .kernel = {2}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .padding = (nb_padding)7) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .pad = {1}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .padding = NB_PAD_SAME,
                                             .pad = {0, 1}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .padding = NB_PAD_EXPLICIT,
                                             .pad = {2, 0, 0, 0}) == NULL);
    CASE("nb_max_pool2d", INV, nb_max_pool2d(x4, .kernel = {2}, .padding = NB_PAD_EXPLICIT,
                                             .pad = {0, 0, -1, 0}) == NULL);
    for (int b = 0; b < 4; b++)
        CASE("nb_max_pool2d", STA, nb_max_pool2d(bad_tensors()[b], .kernel = {1}) == NULL);
    CASE("nb_pool_select", INV, nb_pool_select(NULL, x4, .kernel = {2}) == NULL);
    CASE("nb_pool_select", INV, nb_pool_select(x4, NULL, .kernel = {2}) == NULL);
    CASE("nb_pool_select", SHP, nb_pool_select(d2, x4, .kernel = {2}) == NULL);
    CASE("nb_pool_select", DTY, nb_pool_select(x4d, x4, .kernel = {2}) == NULL);
    CASE("nb_pool_select", INV, nb_pool_select(x4, x4, .kernel = {0, 2}) == NULL);
    CASE("nb_pool_scatter", INV, nb_pool_scatter(NULL, x4, .kernel = {2}) == NULL);
    CASE("nb_pool_scatter", SHP, nb_pool_scatter(x4, x4, .kernel = {2}) == NULL);
    CASE("nb_pool_scatter", SHP, nb_pool_scatter(d2, x4, .kernel = {2}, .stride = {1}) == NULL);
    CASE("nb_pool_scatter", DTY, nb_pool_scatter(d2, x4d, .kernel = {2}) == NULL);
    CASE("nb_global_max_pool2d", INV, nb_global_max_pool2d(NULL) == NULL);
    CASE("nb_global_max_pool2d", SHP, nb_global_max_pool2d(f23) == NULL);
    CASE("nb_global_max_pool2d", SHP, nb_global_max_pool2d(e0) == NULL);
    /* The op's own shape rule, applied directly with attributes it cannot take. */
    const nb_op *sel = nb_op_find("pool_select");
    int64_t bad_attr[8] = {2, 2, 0, 2, 0, 0, 0, 0};
    CASE("nb_pool_select", INV, nb_apply(sel, (nb_tensor *[]){x4, x4}, 2, bad_attr) == NULL);
    const double rates[] = {-0.1, 1.0, 1.5, NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 6; i++) {
        CASE("nb_inverted_dropout", INV, nb_inverted_dropout(x4, rates[i], &rng) == NULL);
        CASE("nb_dropout_mask", INV, nb_dropout_mask(x4, rates[i], &rng) == NULL);
    }
    CASE("nb_inverted_dropout", INV, nb_inverted_dropout(x4, 0.5, NULL) == NULL);
    CASE("nb_inverted_dropout", INV, nb_inverted_dropout(x4, 0.0, NULL) == NULL);
    CASE("nb_inverted_dropout", INV, nb_inverted_dropout(NULL, 0.5, &rng) == NULL);
    KEEP(nb_inverted_dropout(NULL, 0.5, &rng) == NULL);
    CASE("nb_inverted_dropout", DTY, nb_inverted_dropout(u8, 0.5, &rng) == NULL);
    CASE("nb_dropout_mask", INV, nb_dropout_mask(x4, 0.5, NULL) == NULL);
    CASE("nb_dropout_mask", INV, nb_dropout_mask(NULL, 0.5, &rng) == NULL);
    KEEP(nb_dropout_mask(NULL, 0.5, &rng) == NULL);
    CASE("nb_dropout_mask", DTY, nb_dropout_mask(u8, 0.5, &rng) == NULL);
    for (int b = 0; b < 4; b++) {
        CASE("nb_inverted_dropout", STA, nb_inverted_dropout(bad_tensors()[b], 0.5, &rng) == NULL);
        CASE("nb_dropout_mask", STA, nb_dropout_mask(bad_tensors()[b], 0.5, &rng) == NULL);
    }
    /* The messages name the values. */
    nb_clear_error();
    assert_null(nb_inverted_dropout(x4, 1.5, &rng));
    ERR_HAS("nb_inverted_dropout: rate must be in [0, 1), got 1.5");
    assert_null(nb_max_pool2d(x4, .kernel = {5}));
    ERR_HAS("nb_max_pool2d: a 5x5 window does not fit in x (2,4,4,3)");
    assert_null(nb_max_pool2d(x4, .kernel = {2}, .padding = NB_PAD_EXPLICIT, .pad = {2}));
    ERR_HAS("padding (2,0,0,0) (top, bottom, left, right) must be in [0, kernel - 1]");
    nb_clear_error();
    nb_free(x4), nb_free(x4d), nb_free(u8), nb_free(small), nb_free(d2), nb_free(e0);
    SECTION_END();
}

/* Last: the group's graphs are freed here. */
static void test_no_graph(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *x4 = nb_ones(NB_F32, NB_SHAPE(2, 4, 4, 3));
    nb_rng rng = nb_rng_new(0);
    while (nb_graph_current())
        nb_graph_free(nb_graph_current());
    nb_graph_free(outer);
    outer = NULL;
    CASE("nb_max_pool2d", STA, nb_max_pool2d(x4, .kernel = {2}) == NULL);
    CASE("nb_pool_select", STA, nb_pool_select(x4, x4, .kernel = {2}) == NULL);
    CASE("nb_global_max_pool2d", STA, nb_global_max_pool2d(x4) == NULL);
    CASE("nb_inverted_dropout", STA, nb_inverted_dropout(x4, 0.5, &rng) == NULL);
    CASE("nb_dropout_mask", STA, nb_dropout_mask(x4, 0.5, &rng) == NULL);
    nb_free(x4);
    printf("# bad arguments (pooling, dropout): %d cases tried, %d gave the documented error\n",
           tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 70);
    SECTION_END();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_nan),
        cmocka_unit_test(test_keras_shapes),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_adjoint),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_inverted_dropout),
        cmocka_unit_test(test_dropout_no_alloc),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_no_graph),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
