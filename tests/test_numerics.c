/* Numerics pinned against PyTorch 2.15 (float64): pow's derivatives where a
 * factor is 0 and another infinite, reductions over empty axes, f32 sums
 * that must be exact, and the subnormal setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <float.h>
#include <math.h>

#include "nabla/nabla.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* y = a^b and its first three derivatives along a or b (nb_grad with
 * create_graph, repeatedly). */
static void pow_derivs(double a0, double b0, bool wrt_b, double out[4])
{
    nb_graph *g = nb_graph_new();
    nb_tensor *a = nb_param(nb_scalar(NB_F64, a0)), *b = nb_param(nb_scalar(NB_F64, b0));
    nb_tensor *x = wrt_b ? b : a, *d = nb_pow(a, b);
    out[0] = nb_item(d);
    for (int k = 1; k < 4; k++) {
        nb_tensor *gr;
        assert_int_equal(nb_grad(d, .n = 1, .inputs = &x, .grads = &gr, .create_graph = true), 0);
        out[k] = nb_item(gr);
        d = gr;
    }
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
}

static bool same(double x, double y) { return (isnan(x) && isnan(y)) || x == y; }

static void test_pow_at_zero(void **state)
{
    (void)state;
    /* torch.autograd.grad(..., create_graph=True) three times, torch 2.15,
     * float64; "da" along the base, "db" along the exponent. */
    static const struct {
        double a, b;
        bool wrt_b;
        double want[4];
    } rows[] = {
        {0, 0, false, {1, 0, NAN, NAN}},
        {0, 1, false, {0, 1, 0, NAN}},
        {0, 2, false, {0, 0, 2, 0}},
        {0, 3, false, {0, 0, 0, 6}},
        {0, 0.5, false, {0, INFINITY, -INFINITY, INFINITY}},
        {2, 0, false, {1, 0, -0.0, 0}},
        {0, -1, false, {INFINITY, -INFINITY, INFINITY, -INFINITY}},
        /* PyTorch gives {0, 0, nan, nan} for these: its mask is multiplied
         * by the incoming gradient outside the where, so the 0 * log(0)
         * of the masked branch comes back at second order. a^b is 0 for
         * every b > 0 near 0, so 0 is the true value, and nabla gives it. */
        {0, 0, true, {1, 0, 0, 0}},
        {0, 1, true, {0, 0, 0, 0}},
        {0, 2, true, {0, 0, 0, 0}},
        {2, 0, true, {1, 0.6931471805599453, 0.4804530139182014, 0.33302465198892944}},
        {0, -1, true, {INFINITY, -INFINITY, INFINITY, -INFINITY}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double got[4];
        pow_derivs(rows[i].a, rows[i].b, rows[i].wrt_b, got);
        for (int k = 0; k < 4; k++)
            if (!(same(got[k], rows[i].want[k]) ||
                  fabs(got[k] - rows[i].want[k]) <= 1e-15 * fabs(rows[i].want[k])))
                fail_msg("pow(%g, %g): derivative %d along %s is %.17g, PyTorch %.17g",
                         rows[i].a, rows[i].b, k, rows[i].wrt_b ? "b" : "a", got[k],
                         rows[i].want[k]);
    }
    /* Mixed: d/db (d/da a^b) at (0, 1) is 1 and at (0, 2) is 0 in PyTorch. */
    nb_graph *g = nb_graph_new();
    nb_tensor *a = nb_param(nb_scalar(NB_F64, 0));
    double b0[] = {1, 2}, want[] = {1, 0};
    for (int i = 0; i < 2; i++) {
        nb_tensor *b = nb_param(nb_scalar(NB_F64, b0[i])), *ga, *gab;
        assert_int_equal(nb_grad(nb_pow(a, b), .n = 1, .inputs = &a, .grads = &ga,
                                 .create_graph = true), 0);
        assert_int_equal(nb_grad(ga, .n = 1, .inputs = &b, .grads = &gab), 0);
        assert_true(nb_item(gab) == want[i]);
        nb_free(b);
    }
    nb_graph_free(g);
    nb_free(a);
}

static void test_empty_axes(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *e = nb_param(nb_zeros(NB_F64, NB_SHAPE(3, 0)));
    nb_tensor *s = nb_softmax(e, 1), *ls = nb_log_softmax(e, 1);
    nb_tensor *lse = nb_logsumexp(e, .axes = NB_AXES(1));
    assert_non_null(s);
    assert_non_null(ls);
    assert_non_null(lse);
    assert_int_equal(nb_ndim(s), 2);
    assert_int_equal(nb_dim(s, 1), 0);
    assert_int_equal(nb_dim(ls, 0), 3);
    assert_int_equal(nb_numel(ls), 0);
    assert_int_equal(nb_numel(lse), 3);
    for (int i = 0; i < 3; i++)
        assert_true(nb_get(lse, NB_AT(i)) == -INFINITY);
    /* Differentiable like any other: the gradient is empty too. */
    nb_tensor *gr;
    assert_int_equal(nb_grad(nb_sum(s), .n = 1, .inputs = &e, .grads = &gr), 0);
    assert_int_equal(nb_numel(gr), 0);
    /* Errors name the function called, not an op inside it. */
    FAILS(nb_softmax(e, 2), "nb_softmax: axis 2", "(3,0)");
    FAILS(nb_log_softmax(e, -3), "nb_log_softmax: axis -3");
    FAILS(nb_logsumexp(e, .axes = NB_AXES(5)), "nb_logsumexp: axis 5");
    FAILS(nb_min(e, .axes = NB_AXES(1)), "nb_min", "size 0");
    nb_graph_free(g);
    nb_free(e);
}

static void test_f32_sums_exact(void **state)
{
    (void)state;
    /* 2^24 + 8 ones along axis 0 of an (N, 2) f32 tensor: a float
     * accumulator stops at 2^24 (2^24 + 1 rounds back down); the double one
     * counts them all, and 2^24 + 8 is a float. */
    int64_t n = (INT64_C(1) << 24) + 8;
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(n, 2));
    nb_graph *g = nb_graph_new();
    nb_tensor *s0 = nb_sum(x, .axes = NB_AXES(0));
    assert_true(nb_get(s0, NB_AT(0)) == (double)n);
    assert_true(nb_get(s0, NB_AT(1)) == (double)n);
    nb_tensor *s1 = nb_sum(nb_transpose(x, 0, 1), .axes = NB_AXES(1));
    assert_true(nb_get(s1, NB_AT(1)) == (double)n);
    assert_true(nb_item(nb_sum(x)) == (double)(2 * n));
    assert_true(nb_item(nb_mean(x)) == 1.0);
    nb_graph_free(g);
    nb_free(x);
}

/* 1e-30 * 1e-10 is subnormal in f32 (below FLT_MIN, about 1.2e-38). */
static double tiny_product(void)
{
    nb_graph *g = nb_graph_new();
    nb_tensor *a = nb_full(NB_F32, NB_SHAPE(16), 1e-30), *b = nb_full(NB_F32, NB_SHAPE(16), 1e-10);
    double v = nb_get(nb_mul(a, b), NB_AT(15));
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
    return v;
}

static void test_flush_subnormals(void **state)
{
    (void)state;
    assert_false(nb_flush_subnormals()); /* IEEE by default */
    double ieee = tiny_product();
    assert_true(ieee > 0 && ieee < FLT_MIN);
    assert_false(nb_set_flush_subnormals(true));
    assert_true(nb_flush_subnormals());
#if defined(__SSE2__)
    if (!RUNNING_ON_VALGRIND) /* valgrind does not emulate FTZ/DAZ */
        assert_true(tiny_product() == 0);
#endif
    assert_true(nb_set_flush_subnormals(false));
    assert_true(tiny_product() == ieee); /* IEEE again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pow_at_zero),
        cmocka_unit_test(test_empty_axes),
        cmocka_unit_test(test_f32_sums_exact),
        cmocka_unit_test(test_flush_subnormals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
