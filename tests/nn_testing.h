/* Helpers of the nn tests (test_nn.c, test_losses.c): tensors kept and
 * freed at the end of each test, a graph per test, value checks. Include
 * after "testing.h". */
#ifndef NABLA_NN_TESTING_H
#define NABLA_NN_TESTING_H

#include <math.h>

/* Heap tensors made in a test are kept here and freed at its end. */
static nb_tensor *keep[128];
static int nkeep;

static nb_tensor *T(nb_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    nb_tensor *t = tensor_of(dt, ndim, shape, v);
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

/* Gradient check of f at x (order 1 or 2, in dtype), with the report on
 * failure; every input that requires grad must really have been checked. */
static inline void check(const char *name, nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
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
            assert_true(r.input[i].checked);
}

/* d sum(y) / d x into out (numel of x), through nb_grad. */
static inline void grad_into(nb_tensor *y, nb_tensor *x, double *out)
{
    if (!y)
        fail_msg("call failed: %s", nb_last_error());
    nb_tensor *s = nb_ndim(y) == 0 ? y : nb_sum(y);
    nb_tensor *gx = NULL;
    if (nb_grad(s, .n = 1, .inputs = &x, .grads = &gx) != 0)
        fail_msg("nb_grad: %s", nb_last_error());
    assert_int_equal(nb_to_doubles(gx, out), 0);
}

/* Fails unless every element of t is finite. */
static inline void all_finite(const char *what, nb_tensor *t)
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

#endif
