/* Activations, losses and metrics (src/nn/activations.c, losses.c,
 * metrics.c) and the erf op under them: known values in f32 and f64,
 * gradient checks (first and second order) of every activation and loss,
 * no NaN or inf at extreme inputs in values and gradients, and errors that
 * name the function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

/* ---- helpers ---- */

/* Heap tensors made in a test are kept here and freed at its end. */
static nb_tensor *keep[128];
static int nkeep;

static nb_tensor *T(nb_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    nb_tensor *t = nb_zeros(dt, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++) {
        if (dt == NB_F64)
            ((double *)nb_data(t))[i] = v[i];
        else
            ((float *)nb_data(t))[i] = (float)v[i];
    }
    assert_true(nkeep < 128);
    keep[nkeep++] = t;
    return t;
}
#define V(...) (const double[]){__VA_ARGS__}

/* A kept heap tensor of zeros. */
static nb_tensor *Z(nb_dtype dt, int ndim, const int64_t *shape)
{
    nb_tensor *t = nb_zeros(dt, ndim, shape);
    assert_non_null(t);
    keep[nkeep++] = t;
    return t;
}

/* An f64 leaf that requires grad, uniform in [lo, hi); with margin > 0,
 * values within margin of `avoid` are pushed out to avoid +- margin (to keep
 * gradient checks off kinks). */
static nb_tensor *R(int ndim, const int64_t *shape, double lo, double hi, uint64_t seed,
                    double avoid, double margin)
{
    nb_rng rng = nb_rng_new(seed);
    nb_tensor *t = nb_rand(NB_F64, ndim, shape, &rng);
    double *p = nb_data(t);
    for (int64_t i = 0; i < nb_numel(t); i++) {
        double v = lo + (hi - lo) * p[i];
        if (margin > 0 && fabs(v - avoid) < margin)
            v = avoid + (v < avoid ? -margin : margin);
        p[i] = v;
    }
    nb_set_requires_grad(t, true);
    keep[nkeep++] = t;
    return t;
}

static void release(void)
{
    while (nkeep)
        nb_free(keep[--nkeep]);
    nb_graph *g = nb_graph_current();
    if (g)
        nb_graph_reset(g);
}

static int setup(void **state)
{
    (void)state;
    nb_graph_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    release();
    nb_graph_free(nb_graph_current());
    assert_int_equal(nb_live_tensors(), 0);
    return 0;
}

/* Asserts t has the given shape and values (to tol, absolute). */
static void expect(nb_tensor *t, int ndim, const int64_t *shape, const double *want, double tol)
{
    if (!t)
        fail_msg("call failed: %s", nb_last_error());
    assert_int_equal(nb_ndim(t), ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(nb_dim(t, i), shape[i]);
    double v[64];
    assert_true(nb_numel(t) <= 64);
    assert_int_equal(nb_to_doubles(t, v), 0);
    for (int64_t i = 0; i < nb_numel(t); i++)
        if (!(fabs(v[i] - want[i]) <= tol) && !(v[i] == want[i]))
            fail_msg("element %lld: got %.17g, want %.17g", (long long)i, v[i], want[i]);
}

/* A 0-d result's value (fails the test on NULL). */
static double value(nb_tensor *t)
{
    if (!t)
        fail_msg("call failed: %s", nb_last_error());
    assert_int_equal(nb_ndim(t), 0);
    return nb_item(t);
}

/* d sum(y) / d x into out (numel of x), through nb_grad. */
static void grad_into(nb_tensor *y, nb_tensor *x, double *out)
{
    if (!y)
        fail_msg("call failed: %s", nb_last_error());
    nb_tensor *s = nb_ndim(y) == 0 ? y : nb_sum(y);
    nb_tensor *gx = NULL;
    if (nb_grad(s, .n = 1, .inputs = &x, .grads = &gx) != 0)
        fail_msg("nb_grad: %s", nb_last_error());
    assert_int_equal(nb_to_doubles(gx, out), 0);
}

static void all_finite(const char *what, nb_tensor *t)
{
    if (!t)
        fail_msg("%s failed: %s", what, nb_last_error());
    double v[64];
    assert_true(nb_numel(t) <= 64);
    assert_int_equal(nb_to_doubles(t, v), 0);
    for (int64_t i = 0; i < nb_numel(t); i++)
        if (!isfinite(v[i]))
            fail_msg("%s: element %lld is %g", what, (long long)i, v[i]);
}

static const nb_dtype dtypes[] = {NB_F32, NB_F64};

/* The call fails (returns NULL) with a message containing each string. */

/* ---- functions under gradient check ---- */

static nb_tensor *f_activate(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    return nb_activate(x[0], *(const nb_activation *)ctx);
}
static nb_tensor *f_leaky(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_leaky_relu(x[0], 0.1);
}
static nb_tensor *f_elu_half(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_elu(x[0], 0.5);
}
static nb_tensor *f_erf(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_erf(x[0]);
}

enum { MSE, MAE, HUBER, BCE, BCE_LOGITS, CCE, CCE_LOGITS, SCCE, SCCE_LOGITS, NLOSSES };
static const char *const loss_names[] = {"mse", "mae", "huber", "bce", "bce_logits",
                                         "cce", "cce_logits", "scce", "scce_logits"};

static nb_tensor *loss(int which, nb_tensor *p, nb_tensor *t)
{
    switch (which) {
    case MSE: return nb_mse(p, t);
    case MAE: return nb_mae(p, t);
    case HUBER: return nb_huber(p, t, 1.0);
    case BCE: return nb_binary_crossentropy(p, t);
    case BCE_LOGITS: return nb_binary_crossentropy_logits(p, t);
    case CCE: return nb_categorical_crossentropy(p, t);
    case CCE_LOGITS: return nb_categorical_crossentropy_logits(p, t);
    case SCCE: return nb_sparse_categorical_crossentropy(p, t);
    case SCCE_LOGITS: return nb_sparse_categorical_crossentropy_logits(p, t);
    }
    return NULL;
}

static nb_tensor *f_loss(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    return loss(*(const int *)ctx, x[0], x[1]);
}

static void check(const char *name, nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                  int order, nb_dtype dtype)
{
    nb_check_report r;
    nb_check_opts o = {.dtype = dtype};
    bool ok = order == 1 ? nb_gradcheck(f, ctx, n, x, &o, &r)
                         : nb_gradgradcheck(f, ctx, n, x, &o, &r);
    if (!ok) {
        fprintf(stderr, "# %s (order %d, %s):\n", name, order, nb_dtype_name(dtype ? dtype : NB_F64));
        nb_check_report_print(&r, stderr);
        fail_msg("%s: gradient check failed", name);
    }
    /* Every input that requires grad was really checked. */
    for (int i = 0; i < n; i++)
        if (nb_requires_grad(x[i]))
            assert_true(r.input[i].worst >= 0);
}

/* ---- erf ---- */

static void test_erf(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-15;
        nb_tensor *x = T(d, NB_SHAPE(6), V(0, 1, -1, 0.5, -INFINITY, 10));
        expect(nb_erf(x), NB_SHAPE(6),
               V(0, 0.8427007929497149, -0.8427007929497149, 0.5204998778130465, -1, 1), tol);
        /* d erf / dx = 2/sqrt(pi) exp(-x^2): at 0 it is 2/sqrt(pi); far out, 0. */
        nb_tensor *z = nb_set_requires_grad(T(d, NB_SHAPE(4), V(0, 1, 30, -1e30)), true);
        double gz[4];
        grad_into(nb_erf(z), z, gz);
        assert_true(fabs(gz[0] - 1.1283791670955126) <= tol * 2);
        assert_true(fabs(gz[1] - 1.1283791670955126 * exp(-1.0)) <= tol * 2);
        assert_true(gz[2] == 0 && gz[3] == 0);
        release();
    }
    nb_tensor *x = R(NB_SHAPE(3, 4), -2.5, 2.5, 1, 0, 0);
    check("erf", f_erf, NULL, 1, &x, 1, NB_F64);
    check("erf", f_erf, NULL, 1, &x, 2, NB_F64);
    check("erf", f_erf, NULL, 1, &x, 1, NB_F32);
    assert_ptr_equal(nb_op_find("erf"), nb_op_of(nb_erf(x)));
    release();
}

/* ---- activations ---- */

static void test_activation_values(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 2e-6 : 1e-15;
        nb_tensor *x = T(d, NB_SHAPE(5), V(-2, -1, 0, 1, 3));
        expect(nb_gelu(x), NB_SHAPE(5),
               V(-0.04550026389635842, -0.15865525393145707, 0, 0.8413447460685429,
                 2.99595030590511),
               tol * 3);
        expect(nb_softplus(x), NB_SHAPE(5),
               V(0.1269280110429725, 0.31326168751822286, log(2.0), 1.3132616875182228,
                 3.0485873515737420),
               tol * 2);
        expect(nb_leaky_relu(x, 0.1), NB_SHAPE(5), V(-0.2, -0.1, 0, 1, 3), tol);
        expect(nb_leaky_relu(x, 0), NB_SHAPE(5), V(0, 0, 0, 1, 3), 0);
        expect(nb_leaky_relu(x, 1), NB_SHAPE(5), V(-2, -1, 0, 1, 3), 0);
        expect(nb_elu(x, 1), NB_SHAPE(5), V(exp(-2.0) - 1, exp(-1.0) - 1, 0, 1, 3), tol);
        expect(nb_elu(x, 0.5), NB_SHAPE(5),
               V(0.5 * (exp(-2.0) - 1), 0.5 * (exp(-1.0) - 1), 0, 1, 3), tol);

        /* nb_activate picks the same functions (leaky 0.2, elu 1). */
        expect(nb_activate(x, NB_LEAKY_RELU), NB_SHAPE(5), V(-0.4, -0.2, 0, 1, 3), tol);
        expect(nb_activate(x, NB_ELU), NB_SHAPE(5), V(exp(-2.0) - 1, exp(-1.0) - 1, 0, 1, 3), tol);
        expect(nb_activate(x, NB_RELU), NB_SHAPE(5), V(0, 0, 0, 1, 3), 0);
        expect(nb_activate(x, NB_TANH), NB_SHAPE(5),
               V(tanh(-2.0), tanh(-1.0), 0, tanh(1.0), tanh(3.0)), tol);
        expect(nb_activate(x, NB_SIGMOID), NB_SHAPE(5),
               V(1 / (1 + exp(2.0)), 1 / (1 + exp(1.0)), 0.5, 1 / (1 + exp(-1.0)),
                 1 / (1 + exp(-3.0))),
               tol);
        expect(nb_activate(x, NB_GELU), NB_SHAPE(5),
               V(-0.04550026389635842, -0.15865525393145707, 0, 0.8413447460685429,
                 2.99595030590511),
               tol * 3);
        expect(nb_activate(x, NB_SOFTPLUS), NB_SHAPE(5),
               V(0.1269280110429725, 0.31326168751822286, log(2.0), 1.3132616875182228,
                 3.0485873515737420),
               tol * 2);
        assert_ptr_equal(nb_activate(x, NB_LINEAR), x);

        /* softmax / log_softmax over the last axis. */
        nb_tensor *m = T(d, NB_SHAPE(2, 3), V(1, 2, 3, 0, 0, 0));
        double s0 = 0.09003057317038046, s1 = 0.24472847105479767, s2 = 0.6652409557748219;
        expect(nb_activate(m, NB_SOFTMAX), NB_SHAPE(2, 3),
               V(s0, s1, s2, 1.0 / 3, 1.0 / 3, 1.0 / 3), tol);
        expect(nb_activate(m, NB_LOG_SOFTMAX), NB_SHAPE(2, 3),
               V(log(s0), log(s1), log(s2), -log(3.0), -log(3.0), -log(3.0)), tol * 4);
        release();
    }
}

static void test_activation_names(void **state)
{
    (void)state;
    const char *all[] = {"linear", "relu",     "leaky_relu", "elu",     "gelu",
                         "sigmoid", "tanh",    "softplus",   "softmax", "log_softmax"};
    const nb_activation ids[] = {NB_LINEAR, NB_RELU,     NB_LEAKY_RELU, NB_ELU,
                                 NB_GELU,   NB_SIGMOID,  NB_TANH,       NB_SOFTPLUS,
                                 NB_SOFTMAX, NB_LOG_SOFTMAX};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(nb_activation_from_name(all[i]), (int)ids[i]);
        assert_string_equal(nb_activation_name(ids[i]), all[i]);
    }
    nb_clear_error();
    assert_int_equal(nb_activation_from_name("swish"), -1);
    expect_msg("from_name", (const char *[]){"nb_activation_from_name", "swish", NULL});
    assert_int_equal(nb_activation_from_name("RELU"), -1);
    assert_int_equal(nb_activation_from_name(""), -1);
    nb_clear_error();
    assert_int_equal(nb_activation_from_name(NULL), -1);
    expect_msg("from_name(NULL)", (const char *[]){"nb_activation_from_name", "NULL", NULL});
    FAILS(nb_activation_name((nb_activation)42), "nb_activation_name", "42");
    FAILS(nb_activation_name((nb_activation)-1), "nb_activation_name");
}

/* Exact derivatives where the pieces of a composition have kinks. */
static void test_activation_derivatives(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-15;
        nb_tensor *x = nb_set_requires_grad(T(d, NB_SHAPE(4), V(0, 1, -1, 2)), true);
        double gd[4];
        /* softplus' = sigmoid, including at 0. */
        grad_into(nb_softplus(x), x, gd);
        for (int i = 0; i < 4; i++) {
            double xi = i == 0 ? 0 : i == 1 ? 1 : i == 2 ? -1 : 2;
            assert_true(fabs(gd[i] - 1 / (1 + exp(-xi))) <= tol);
        }
        /* elu' = 1 for x > 0, alpha exp(x) below, alpha at 0 (from the left). */
        grad_into(nb_elu(x, 1.0), x, gd);
        assert_true(fabs(gd[0] - 1) <= tol && gd[1] == 1 && gd[3] == 1);
        assert_true(fabs(gd[2] - exp(-1.0)) <= tol);
        grad_into(nb_elu(x, 0.5), x, gd);
        assert_true(fabs(gd[0] - 0.5) <= tol);
        /* gelu'(x) = Phi(x) + x phi(x): 1/2 at 0. */
        grad_into(nb_gelu(x), x, gd);
        assert_true(fabs(gd[0] - 0.5) <= tol);
        assert_true(fabs(gd[1] - (0.8413447460685429 + exp(-0.5) * 0.3989422804014327 /* 1/sqrt(2 pi) */)) <= tol * 2);
        /* leaky_relu: 1 above, alpha below. */
        grad_into(nb_leaky_relu(x, 0.1), x, gd);
        assert_true(gd[1] == 1 && gd[3] == 1 && fabs(gd[2] - 0.1) <= tol);
        /* softplus'' = sigmoid (1 - sigmoid): 1/4 at 0. */
        nb_tensor *g1 = NULL;
        assert_int_equal(nb_grad(nb_sum(nb_softplus(x)), .n = 1, .inputs = &x,
                                 .grads = &g1, .create_graph = true),
                         0);
        grad_into(g1, x, gd);
        assert_true(fabs(gd[0] - 0.25) <= tol);
        release();
    }
}

static void test_activation_gradcheck(void **state)
{
    (void)state;
    /* Away from 0 (the kinks of relu and leaky_relu, and elu's second
     * derivative) and in a range where every function has curvature. */
    nb_tensor *x = R(NB_SHAPE(3, 5), -3, 3, 7, 0, 0.1);
    static const nb_activation acts[] = {NB_LINEAR, NB_RELU,    NB_LEAKY_RELU, NB_ELU,
                                         NB_GELU,   NB_SIGMOID, NB_TANH,       NB_SOFTPLUS,
                                         NB_SOFTMAX, NB_LOG_SOFTMAX};
    for (int i = 0; i < 10; i++) {
        nb_activation a = acts[i];
        const char *name = nb_activation_name(a);
        check(name, f_activate, &a, 1, &x, 1, NB_F64);
        check(name, f_activate, &a, 1, &x, 1, NB_F32);
        /* Second order: all are smooth away from 0 (relu's is 0). */
        check(name, f_activate, &a, 1, &x, 2, NB_F64);
    }
    check("leaky_relu(0.1)", f_leaky, NULL, 1, &x, 1, NB_F64);
    check("elu(0.5)", f_elu_half, NULL, 1, &x, 1, NB_F64);
    check("elu(0.5)", f_elu_half, NULL, 1, &x, 2, NB_F64);

    /* gelu and softplus are smooth everywhere: check across 0 too, and at
     * large |x| where their pieces saturate. */
    nb_tensor *w = R(NB_SHAPE(4, 4), -6, 6, 8, 0, 0);
    nb_activation smooth[] = {NB_GELU, NB_SOFTPLUS};
    for (int i = 0; i < 2; i++) {
        check(nb_activation_name(smooth[i]), f_activate, &smooth[i], 1, &w, 1, NB_F64);
        check(nb_activation_name(smooth[i]), f_activate, &smooth[i], 1, &w, 2, NB_F64);
    }
    release();
}

static void test_activation_extremes(void **state)
{
    (void)state;
    static const nb_activation acts[] = {NB_RELU,    NB_LEAKY_RELU, NB_ELU,     NB_GELU,
                                         NB_SIGMOID, NB_TANH,       NB_SOFTPLUS, NB_SOFTMAX,
                                         NB_LOG_SOFTMAX};
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        nb_tensor *x = nb_set_requires_grad(
            T(d, NB_SHAPE(2, 4), V(-1000, -50, 50, 1000, -1e30, 0, 1e-30, 1e30)), true);
        for (int i = 0; i < 9; i++) {
            const char *name = nb_activation_name(acts[i]);
            nb_tensor *y = nb_activate(x, acts[i]);
            all_finite(name, y);
            /* First and second derivatives are finite too (no inf * 0). */
            nb_tensor *gx = NULL;
            nb_tensor *s = nb_sum(nb_mul(y, T(d, NB_SHAPE(2, 4), V(1, -2, 3, -1, 2, 1, -1, 1))));
            if (nb_grad(s, .n = 1, .inputs = &x, .grads = &gx, .create_graph = true))
                fail_msg("%s: %s", name, nb_last_error());
            all_finite(name, gx);
            nb_tensor *ggx = NULL;
            if (nb_requires_grad(gx)) {
                if (nb_grad(nb_sum(gx), .n = 1, .inputs = &x, .grads = &ggx,
                            .allow_unused = true))
                    fail_msg("%s (2nd): %s", name, nb_last_error());
                if (ggx)
                    all_finite(name, ggx);
            }
        }
        /* Values at the extremes. */
        nb_tensor *e = T(d, NB_SHAPE(4), V(-1000, -50, 50, 1000));
        expect(nb_softplus(e), NB_SHAPE(4), V(0, exp(-50.0), 50, 1000), 1e-20);
        expect(nb_gelu(e), NB_SHAPE(4), V(0, 0, 50, 1000), 0);
        expect(nb_elu(e, 1), NB_SHAPE(4), V(-1, -1, 50, 1000), 0);
        expect(nb_leaky_relu(e, 0.5), NB_SHAPE(4), V(-500, -25, 50, 1000), 0);
        /* Infinities and NaN go where the math says. */
        nb_tensor *inf = T(d, NB_SHAPE(3), V(-INFINITY, INFINITY, NAN));
        double v[3];
        nb_to_doubles(nb_softplus(inf), v);
        assert_true(v[0] == 0 && v[1] == INFINITY && isnan(v[2]));
        nb_to_doubles(nb_elu(inf, 1), v);
        assert_true(v[0] == -1 && v[1] == INFINITY && isnan(v[2]));
        nb_to_doubles(nb_gelu(inf), v);
        assert_true(isnan(v[0]) || v[0] == 0); /* -inf * 0 */
        assert_true(isnan(v[2]));
        release();
    }
}

/* ---- losses ---- */

static void test_loss_values(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-14;
        nb_tensor *p = T(d, NB_SHAPE(2, 2), V(1.5, 2, 3, 4));
        nb_tensor *t = T(d, NB_SHAPE(2, 2), V(1, 4, 3, 1));
        /* errors 0.5, -2, 0, 3 */
        assert_true(fabs(value(nb_mse(p, t)) - (0.25 + 4 + 0 + 9) / 4) <= tol);
        assert_true(fabs(value(nb_mae(p, t)) - (0.5 + 2 + 0 + 3) / 4) <= tol);
        /* delta 1: 0.125, 2 - 0.5, 0, 3 - 0.5 */
        assert_true(fabs(value(nb_huber(p, t, 1.0)) - (0.125 + 1.5 + 0 + 2.5) / 4) <= tol);
        /* delta 2.5: 0.125, 2, 0, 7.5 - 3.125 */
        assert_true(fabs(value(nb_huber(p, t, 2.5)) - (0.125 + 2 + 0 + 4.375) / 4) <= tol);
        /* The loss is the dtype of its inputs, 0-d. */
        assert_int_equal(nb_dtype_of(nb_mse(p, t)), d);

        /* Binary cross-entropy of probabilities and of logits. */
        nb_tensor *bp = T(d, NB_SHAPE(4), V(0.9, 0.2, 0.6, 0.5));
        nb_tensor *bt = T(d, NB_SHAPE(4), V(1, 0, 0, 0.25));
        double bce = -(log(0.9) + log(0.8) + log(0.4) + 0.25 * log(0.5) + 0.75 * log(0.5)) / 4;
        assert_true(fabs(value(nb_binary_crossentropy(bp, bt)) - bce) <= tol * 2);
        nb_tensor *z = T(d, NB_SHAPE(2, 2), V(0, 2, -1, 3));
        nb_tensor *zt = T(d, NB_SHAPE(2, 2), V(1, 0, 1, 0.5));
        /* softplus(z) - z t: log 2, softplus(2), softplus(-1) + 1, softplus(3) - 1.5 */
        double bcel = (log(2.0) + 2.1269280110429727 + 0.31326168751822286 + 1 +
                       3.0485873515737420 - 1.5) /
                      4;
        assert_true(fabs(value(nb_binary_crossentropy_logits(z, zt)) - bcel) <= tol * 2);
        /* The logit form agrees with the probability form of sigmoid(z). */
        assert_true(fabs(value(nb_binary_crossentropy(nb_sigmoid(z), zt)) - bcel) <= tol * 10);

        /* Categorical: one-hot targets give the mean of -log p[true]. */
        nb_tensor *cp = T(d, NB_SHAPE(2, 3), V(0.7, 0.2, 0.1, 0.1, 0.8, 0.1));
        nb_tensor *ct = T(d, NB_SHAPE(2, 3), V(1, 0, 0, 0, 1, 0));
        nb_tensor *cl = T(d, NB_SHAPE(2), V(0, 1));
        double cce = -(log(0.7) + log(0.8)) / 2;
        assert_true(fabs(value(nb_categorical_crossentropy(cp, ct)) - cce) <= tol);
        assert_true(fabs(value(nb_sparse_categorical_crossentropy(cp, cl)) - cce) <= tol);
        /* Soft targets: -sum t log p per row. */
        nb_tensor *st = T(d, NB_SHAPE(2, 3), V(0.5, 0.5, 0, 0.2, 0.3, 0.5));
        double soft = -(0.5 * log(0.7) + 0.5 * log(0.2) + 0.2 * log(0.1) + 0.3 * log(0.8) +
                        0.5 * log(0.1)) /
                      2;
        assert_true(fabs(value(nb_categorical_crossentropy(cp, st)) - soft) <= tol * 2);

        /* From logits: -log_softmax; [1,2,3] with class 2 gives
         * log(e + e^2 + e^3) - 3. */
        nb_tensor *lz = T(d, NB_SHAPE(2, 3), V(1, 2, 3, 0, 0, 0));
        nb_tensor *lt = T(d, NB_SHAPE(2, 3), V(0, 0, 1, 1, 0, 0));
        nb_tensor *ll = T(d, NB_SHAPE(2), V(2, 0));
        double ccel = (0.40760596444438013 + log(3.0)) / 2;
        assert_true(fabs(value(nb_categorical_crossentropy_logits(lz, lt)) - ccel) <= tol * 2);
        assert_true(fabs(value(nb_sparse_categorical_crossentropy_logits(lz, ll)) - ccel) <=
                    tol * 2);
        /* ... equal to the probability form of the softmax. */
        assert_true(fabs(value(nb_categorical_crossentropy(nb_softmax(lz, -1), lt)) - ccel) <=
                    tol * 4);

        /* One sample without a batch axis, and a 3-D batch (2, 2, 3). */
        nb_tensor *one = T(d, NB_SHAPE(3), V(0.7, 0.2, 0.1));
        nb_tensor *onet = T(d, NB_SHAPE(3), V(0, 1, 0));
        assert_true(fabs(value(nb_categorical_crossentropy(one, onet)) + log(0.2)) <= tol);
        assert_true(fabs(value(nb_sparse_categorical_crossentropy(one, T(d, 0, NULL, V(1)))) +
                         log(0.2)) <= tol);
        nb_tensor *p3 = T(d, NB_SHAPE(2, 2, 3),
                          V(0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.3, 0.3, 0.4, 0.5, 0.25, 0.25));
        nb_tensor *l3 = T(d, NB_SHAPE(2, 2), V(0, 1, 2, 1));
        double c3 = -(log(0.7) + log(0.8) + log(0.4) + log(0.25)) / 4;
        assert_true(fabs(value(nb_sparse_categorical_crossentropy(p3, l3)) - c3) <= tol);
        release();
    }
}

/* Analytic gradients of the losses against their closed forms. */
static void test_loss_gradients(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-15;
        double g[6];
        nb_tensor *p = nb_set_requires_grad(T(d, NB_SHAPE(2, 2), V(1.5, 2, 3, 4)), true);
        nb_tensor *t = T(d, NB_SHAPE(2, 2), V(1, 4, 3, 1));
        grad_into(nb_mse(p, t), p, g); /* 2 (p - t) / N */
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.25, -1, 0, 1.5), tol);
        grad_into(nb_huber(p, t, 1.0), p, g); /* clamp(e, -1, 1) / N */
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.125, -0.25, 0, 0.25), tol);
        grad_into(nb_mae(p, t), p, g); /* sign(e) / N */
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.25, -0.25, 0, 0.25), tol);

        /* BCE from logits: (sigmoid(z) - t) / N, including at z = 0. */
        nb_tensor *z = nb_set_requires_grad(T(d, NB_SHAPE(4), V(0, 0, 2, -1)), true);
        nb_tensor *zt = T(d, NB_SHAPE(4), V(1, 0, 0, 0.5));
        grad_into(nb_binary_crossentropy_logits(z, zt), z, g);
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4),
               V(-0.125, 0.125, (1 / (1 + exp(-2.0))) / 4, (1 / (1 + exp(1.0)) - 0.5) / 4), tol);

        /* CCE from logits: (softmax(z) - t) / rows. */
        nb_tensor *lz = nb_set_requires_grad(T(d, NB_SHAPE(2, 3), V(1, 2, 3, 0, 0, 0)), true);
        nb_tensor *lt = T(d, NB_SHAPE(2, 3), V(0, 0, 1, 1, 0, 0));
        double s0 = 0.09003057317038046, s1 = 0.24472847105479767, s2 = 0.6652409557748219;
        grad_into(nb_categorical_crossentropy_logits(lz, lt), lz, g);
        expect(T(NB_F64, NB_SHAPE(6), g), NB_SHAPE(6),
               V(s0 / 2, s1 / 2, (s2 - 1) / 2, (1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6), tol * 2);
        grad_into(nb_sparse_categorical_crossentropy_logits(lz, T(d, NB_SHAPE(2), V(2, 0))), lz,
                  g);
        expect(T(NB_F64, NB_SHAPE(6), g), NB_SHAPE(6),
               V(s0 / 2, s1 / 2, (s2 - 1) / 2, (1.0 / 3 - 1) / 2, 1.0 / 6, 1.0 / 6), tol * 2);

        /* CCE from probabilities: -t / p / rows. */
        nb_tensor *cp = nb_set_requires_grad(T(d, NB_SHAPE(1, 3), V(0.5, 0.25, 0.25)), true);
        grad_into(nb_categorical_crossentropy(cp, T(d, NB_SHAPE(1, 3), V(0, 1, 0))), cp, g);
        expect(T(NB_F64, NB_SHAPE(3), g), NB_SHAPE(3), V(0, -4, 0), tol * 4);
        release();
    }
}

static void test_loss_gradcheck(void **state)
{
    (void)state;
    const int64_t rows = 4, cols = 3;
    /* Regression: pred and target anywhere, but off the kinks: mae's at
     * pred == target, huber's (delta 1) at |pred - target| == 1. */
    nb_tensor *t = R(NB_SHAPE(rows, cols), -2, 2, 11, 0, 0);
    nb_tensor *e = R(NB_SHAPE(rows, cols), -2, 2, 12, 0, 0.15);
    double *pe = nb_data(e);
    for (int i = 0; i < rows * cols; i++)
        if (fabs(fabs(pe[i]) - 1) < 0.1)
            pe[i] = pe[i] > 0 ? (pe[i] > 1 ? 1.1 : 0.9) : (pe[i] < -1 ? -1.1 : -0.9);
    nb_tensor *p = nb_set_requires_grad(nb_clone(e), true);
    keep[nkeep++] = p;
    double *pp = nb_data(p), *pt = nb_data(t);
    for (int i = 0; i < rows * cols; i++)
        pp[i] += pt[i];
    for (int w = MSE; w <= HUBER; w++) {
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){p, t}, 1, NB_F64);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){p, t}, 1, NB_F32);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){p, t}, 2, NB_F64);
    }

    /* Probabilities inside the clipping range, targets in [0, 1] (soft
     * targets: the loss is linear in them, so they are checked too). */
    nb_tensor *prob = R(NB_SHAPE(rows, cols), 0.05, 0.95, 13, 0, 0);
    nb_tensor *tgt = R(NB_SHAPE(rows, cols), 0, 1, 14, 0, 0);
    nb_tensor *logits = R(NB_SHAPE(rows, cols), -4, 4, 15, 0, 0);
    for (int w = BCE; w <= CCE_LOGITS; w++) {
        nb_tensor *in = (w == BCE || w == CCE) ? prob : logits;
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, tgt}, 1, NB_F64);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, tgt}, 1, NB_F32);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, tgt}, 2, NB_F64);
    }

    /* Sparse: labels carry no gradient (not requiring grad: skipped). */
    nb_tensor *labels = T(NB_F64, NB_SHAPE(rows), V(0, 2, 1, 2));
    for (int w = SCCE; w <= SCCE_LOGITS; w++) {
        nb_tensor *in = w == SCCE ? prob : logits;
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, labels}, 1, NB_F64);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, labels}, 1, NB_F32);
        check(loss_names[w], f_loss, &w, 2, (nb_tensor *[]){in, labels}, 2, NB_F64);
    }

    /* A 3-D batch (2, 2, 3) for the categorical ones. */
    nb_tensor *l3 = R(NB_SHAPE(2, 2, 3), -3, 3, 16, 0, 0);
    nb_tensor *t3 = R(NB_SHAPE(2, 2, 3), 0, 1, 17, 0, 0);
    int w = CCE_LOGITS;
    check("cce_logits 3-D", f_loss, &w, 2, (nb_tensor *[]){l3, t3}, 2, NB_F64);
    w = SCCE_LOGITS;
    check("scce_logits 3-D", f_loss, &w, 2,
          (nb_tensor *[]){l3, T(NB_F64, NB_SHAPE(2, 2), V(1, 0, 2, 2))}, 1, NB_F64);
    release();
}

/* Confident wrong predictions: large finite losses, finite gradients. */
static void test_loss_stability(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double g[4];
        /* Logits [1000, -1000] for class 1: loss 2000. */
        nb_tensor *z = nb_set_requires_grad(T(d, NB_SHAPE(1, 2), V(1000, -1000)), true);
        nb_tensor *t = T(d, NB_SHAPE(1, 2), V(0, 1));
        nb_tensor *lab = T(d, NB_SHAPE(1), V(1));
        nb_tensor *l = nb_categorical_crossentropy_logits(z, t);
        assert_true(fabs(value(l) - 2000) <= 1e-9);
        grad_into(l, z, g);
        expect(T(NB_F64, NB_SHAPE(2), g), NB_SHAPE(2), V(1, -1), 0);
        l = nb_sparse_categorical_crossentropy_logits(z, lab);
        assert_true(fabs(value(l) - 2000) <= 1e-9);
        grad_into(l, z, g);
        expect(T(NB_F64, NB_SHAPE(2), g), NB_SHAPE(2), V(1, -1), 0);
        /* ... and the right class: loss 0. */
        assert_true(value(nb_sparse_categorical_crossentropy_logits(z, T(d, NB_SHAPE(1), V(0)))) ==
                    0);

        /* Binary logits 1000 for target 0 and -1000 for target 1: 1000 each. */
        nb_tensor *bz = nb_set_requires_grad(T(d, NB_SHAPE(4), V(1000, -1000, 1000, -1000)), true);
        nb_tensor *bt = T(d, NB_SHAPE(4), V(0, 1, 1, 0));
        l = nb_binary_crossentropy_logits(bz, bt);
        assert_true(fabs(value(l) - 500) <= 1e-9);
        grad_into(l, bz, g);
        expect(T(NB_F64, NB_SHAPE(4), g), NB_SHAPE(4), V(0.25, -0.25, 0, 0), 0);

        /* Probabilities [1, 0] for the wrong class: -log(1e-7) ~ 16.1 (in f32
         * 1 - 1e-7 rounds to 1 - 2^-23, so slightly less). */
        nb_tensor *p = nb_set_requires_grad(T(d, NB_SHAPE(1, 2), V(1, 0)), true);
        l = nb_categorical_crossentropy(p, t);
        assert_true(fabs(value(l) + log(1e-7)) <= 1e-6);
        grad_into(l, p, g);
        all_finite("cce grad", T(NB_F64, NB_SHAPE(2), g));
        l = nb_sparse_categorical_crossentropy(p, lab);
        assert_true(fabs(value(l) + log(1e-7)) <= 1e-6);
        grad_into(l, p, g);
        all_finite("scce grad", T(NB_F64, NB_SHAPE(2), g));
        nb_tensor *bp = nb_set_requires_grad(T(d, NB_SHAPE(2), V(1, 0)), true);
        l = nb_binary_crossentropy(bp, T(d, NB_SHAPE(2), V(0, 1)));
        double want = d == NB_F32 ? -(log(1.0 - (double)(float)(1 - 1e-7)) +
                                      log((double)(float)1e-7)) / 2
                                  : -log(1e-7);
        assert_true(fabs(value(l) - want) <= 1e-4);
        assert_true(value(l) > 15 && value(l) < 17);
        grad_into(l, bp, g);
        all_finite("bce grad", T(NB_F64, NB_SHAPE(2), g));
        /* Right and confident: a tiny loss, not -0 or NaN. */
        l = nb_binary_crossentropy(bp, T(d, NB_SHAPE(2), V(1, 0)));
        assert_true(value(l) >= 0 && value(l) < 1e-6);

        /* Huber never squares a large error. */
        nb_tensor *hp = nb_set_requires_grad(T(d, NB_SHAPE(2), V(1e30, -1e30)), true);
        l = nb_huber(hp, T(d, NB_SHAPE(2), V(0, 0)), 1.0);
        all_finite("huber", l);
        assert_true(fabs(value(l) / 1e30 - 1) < 1e-6);
        grad_into(l, hp, g);
        expect(T(NB_F64, NB_SHAPE(2), g), NB_SHAPE(2), V(0.5, -0.5), 0);
        release();
    }
}

/* ---- metrics ---- */

static void test_metrics(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        nb_tensor *p = nb_set_requires_grad(
            T(d, NB_SHAPE(4, 3),
              V(0.1, 0.7, 0.2, 0.5, 0.3, 0.2, 0.2, 0.2, 0.6, 0.9, 0.05, 0.05)),
            true);
        /* predicted 1, 0, 2, 0; true 1, 0, 1, 2: half right. */
        nb_tensor *t = T(d, NB_SHAPE(4, 3), V(0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1));
        nb_tensor *l = T(d, NB_SHAPE(4), V(1, 0, 1, 2));
        nb_tensor *a = nb_categorical_accuracy(p, t);
        assert_true(value(a) == 0.5);
        assert_int_equal(nb_dtype_of(a), d);
        assert_false(nb_requires_grad(a)); /* no gradient, even from a param */
        a = nb_sparse_categorical_accuracy(p, l);
        assert_true(value(a) == 0.5);
        assert_int_equal(nb_dtype_of(a), d);
        assert_false(nb_requires_grad(a));
        assert_true(value(nb_sparse_categorical_accuracy(p, T(d, NB_SHAPE(4), V(1, 0, 2, 0)))) ==
                    1);
        assert_true(value(nb_categorical_accuracy(t, t)) == 1);
        assert_true(value(nb_sparse_categorical_accuracy(p, T(d, NB_SHAPE(4), V(0, 1, 0, 1)))) ==
                    0);
        /* Logits work the same; a 3-D batch averages over all rows. */
        nb_tensor *p3 = T(d, NB_SHAPE(2, 2, 2), V(1, 0, 0, 1, 5, -5, -1, 3));
        nb_tensor *l3 = T(d, NB_SHAPE(2, 2), V(0, 1, 1, 1));
        assert_true(value(nb_sparse_categorical_accuracy(p3, l3)) == 0.75);
        /* Recording stays as it was. */
        assert_true(nb_is_grad_enabled());
        release();
    }
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    nb_tensor *a = Z(NB_F32, NB_SHAPE(32, 10));
    nb_tensor *b = Z(NB_F32, NB_SHAPE(32, 1));
    nb_tensor *a64 = Z(NB_F64, NB_SHAPE(32, 10));
    nb_tensor *lab = Z(NB_F32, NB_SHAPE(32));
    nb_tensor *lab64 = Z(NB_F64, NB_SHAPE(32));
    nb_tensor *s = T(NB_F32, 0, NULL, V(0.5));
    nb_tensor *empty = Z(NB_F32, NB_SHAPE(0, 10));

    /* Shapes must match exactly (no broadcasting). */
    FAILS(nb_mse(a, b), "nb_mse: pred (32,10) and target (32,1) differ");
    FAILS(nb_mae(a, b), "nb_mae", "(32,10)", "(32,1)");
    FAILS(nb_huber(a, b, 1), "nb_huber", "(32,10)", "(32,1)");
    FAILS(nb_binary_crossentropy(a, b), "nb_binary_crossentropy", "(32,10)", "(32,1)");
    FAILS(nb_binary_crossentropy_logits(b, a), "nb_binary_crossentropy_logits", "(32,1)",
          "(32,10)");
    FAILS(nb_categorical_crossentropy(a, b), "nb_categorical_crossentropy", "(32,10)", "(32,1)");
    FAILS(nb_categorical_crossentropy_logits(a, b), "nb_categorical_crossentropy_logits",
          "(32,10)", "(32,1)");
    FAILS(nb_categorical_accuracy(a, b), "nb_categorical_accuracy", "(32,10)", "(32,1)");
    FAILS(nb_mse(a, s), "nb_mse", "()");

    /* dtypes must match. */
    FAILS(nb_mse(a, a64), "nb_mse", "dtypes differ", "f32", "f64");
    FAILS(nb_binary_crossentropy(a64, a), "nb_binary_crossentropy", "f64", "f32");
    FAILS(nb_categorical_crossentropy_logits(a, a64), "nb_categorical_crossentropy_logits",
          "f32", "f64");
    FAILS(nb_sparse_categorical_crossentropy(a, lab64), "nb_sparse_categorical_crossentropy",
          "f32", "f64");
    FAILS(nb_categorical_accuracy(a64, a), "nb_categorical_accuracy", "f64", "f32");
    FAILS(nb_sparse_categorical_accuracy(a, lab64), "nb_sparse_categorical_accuracy", "f32",
          "f64");

    /* Labels: shape = pred's without the last axis, whole numbers in range. */
    FAILS(nb_sparse_categorical_crossentropy(a, b), "nb_sparse_categorical_crossentropy",
          "labels (32,1)", "(32,)", "(32,10)");
    FAILS(nb_sparse_categorical_crossentropy_logits(a, a),
          "nb_sparse_categorical_crossentropy_logits", "labels (32,10)");
    FAILS(nb_sparse_categorical_accuracy(a, Z(NB_F32, NB_SHAPE(10))),
          "nb_sparse_categorical_accuracy", "labels (10,)", "(32,)");
    nb_tensor *l2 = T(NB_F32, NB_SHAPE(2, 3), V(0, 1, 2, 3, 1, 0));
    nb_tensor *p23 = Z(NB_F32, NB_SHAPE(2, 3, 3));
    FAILS(nb_sparse_categorical_crossentropy(p23, l2), "nb_sparse_categorical_crossentropy",
          "labels[1,0] = 3", "[0, 3)");
    ((float *)nb_data(l2))[3] = 1.5f;
    FAILS(nb_sparse_categorical_crossentropy_logits(p23, l2),
          "nb_sparse_categorical_crossentropy_logits", "labels[1,0] = 1.5", "not a whole number");
    ((float *)nb_data(l2))[3] = -1;
    FAILS(nb_sparse_categorical_accuracy(p23, l2), "nb_sparse_categorical_accuracy",
          "labels[1,0] = -1");
    ((float *)nb_data(l2))[3] = NAN;
    FAILS(nb_sparse_categorical_crossentropy(p23, l2), "labels[1,0] = nan");
    ((float *)nb_data(lab))[31] = 10;
    FAILS(nb_sparse_categorical_crossentropy(a, lab), "nb_sparse_categorical_crossentropy",
          "labels[31] = 10", "[0, 10)");
    ((float *)nb_data(lab))[31] = 9;
    assert_non_null(nb_sparse_categorical_crossentropy(a, lab));

    /* A class axis is needed; empty batches are refused. */
    FAILS(nb_categorical_crossentropy(s, s), "nb_categorical_crossentropy", "class axis");
    FAILS(nb_sparse_categorical_crossentropy_logits(s, s), "class axis");
    FAILS(nb_categorical_accuracy(s, s), "nb_categorical_accuracy", "class axis");
    FAILS(nb_mse(empty, empty), "nb_mse", "(0,10)", "empty");
    FAILS(nb_categorical_crossentropy_logits(empty, empty), "empty");
    FAILS(nb_activate(s, NB_SOFTMAX), "nb_activate", "softmax", "()");
    FAILS(nb_activate(s, NB_LOG_SOFTMAX), "nb_activate", "log_softmax");

    /* Parameters. */
    FAILS(nb_leaky_relu(a, -0.1), "nb_leaky_relu", "alpha", "-0.1");
    FAILS(nb_leaky_relu(a, 1.5), "nb_leaky_relu", "alpha", "1.5");
    FAILS(nb_leaky_relu(a, NAN), "nb_leaky_relu", "alpha");
    FAILS(nb_elu(a, NAN), "nb_elu", "alpha");
    FAILS(nb_elu(a, INFINITY), "nb_elu", "alpha");
    FAILS(nb_huber(a, a, 0), "nb_huber", "delta", "0");
    FAILS(nb_huber(a, a, -1), "nb_huber", "delta", "-1");
    FAILS(nb_huber(a, a, NAN), "nb_huber", "delta");
    FAILS(nb_huber(a, a, INFINITY), "nb_huber", "delta");
    FAILS(nb_activate(a, (nb_activation)99), "nb_activate", "99");

    /* NULL inputs, each naming the function. */
    FAILS(nb_erf(NULL), "nb_erf");
    FAILS(nb_leaky_relu(NULL, 0.2), "nb_leaky_relu", "NULL");
    FAILS(nb_elu(NULL, 1), "nb_elu", "NULL");
    FAILS(nb_gelu(NULL), "nb_gelu", "NULL");
    FAILS(nb_softplus(NULL), "nb_softplus", "NULL");
    FAILS(nb_activate(NULL, NB_RELU), "nb_activate", "NULL");
    FAILS(nb_activate(NULL, NB_LINEAR), "nb_activate", "NULL");
    FAILS(nb_mse(NULL, a), "nb_mse", "pred is NULL");
    FAILS(nb_mse(a, NULL), "nb_mse", "target is NULL");
    FAILS(nb_mae(NULL, a), "nb_mae");
    FAILS(nb_huber(a, NULL, 1), "nb_huber");
    FAILS(nb_binary_crossentropy(NULL, a), "nb_binary_crossentropy", "prob is NULL");
    FAILS(nb_binary_crossentropy_logits(NULL, a), "nb_binary_crossentropy_logits",
          "logits is NULL");
    FAILS(nb_categorical_crossentropy(a, NULL), "nb_categorical_crossentropy", "target is NULL");
    FAILS(nb_categorical_crossentropy_logits(NULL, NULL), "nb_categorical_crossentropy_logits");
    FAILS(nb_sparse_categorical_crossentropy(a, NULL), "nb_sparse_categorical_crossentropy",
          "labels is NULL");
    FAILS(nb_sparse_categorical_crossentropy_logits(NULL, lab),
          "nb_sparse_categorical_crossentropy_logits", "logits is NULL");
    FAILS(nb_categorical_accuracy(NULL, a), "nb_categorical_accuracy", "pred is NULL");
    FAILS(nb_sparse_categorical_accuracy(a, NULL), "nb_sparse_categorical_accuracy",
          "labels is NULL");

    /* A NULL from an earlier failure keeps the first error. */
    FAILS(nb_mse(nb_matmul(a, b), a), "nb_matmul", "(32,10)", "(32,1)");
    FAILS(nb_gelu(nb_matmul(a, a)), "nb_matmul");
    FAILS(nb_sparse_categorical_crossentropy_logits(a, nb_reshape(lab, NB_SHAPE(7))),
          "nb_reshape");
    release();

    /* Without a current graph. */
    nb_graph *g = nb_graph_current();
    nb_graph_free(g);
    assert_null(nb_graph_current());
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(2, 3));
    nb_tensor *lx = nb_zeros(NB_F32, NB_SHAPE(2));
    FAILS(nb_mse(x, x), "nb_mse", "no current graph");
    FAILS(nb_sparse_categorical_crossentropy(x, lx), "nb_sparse_categorical_crossentropy",
          "graph");
    FAILS(nb_categorical_accuracy(x, x), "nb_categorical_accuracy", "graph");
    FAILS(nb_gelu(x), "nb_gelu", "graph");
    FAILS(nb_activate(x, NB_TANH), "nb_activate", "graph");
    nb_free(x);
    nb_free(lx);
    nb_graph_new();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_erf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_derivatives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_gradcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_extremes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_gradients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_gradcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loss_stability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
