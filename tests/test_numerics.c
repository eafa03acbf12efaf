/* Numerics pinned against PyTorch 2.15 (float64): pow's derivatives where a
 * factor is 0 and another infinite, reductions over empty axes, f32 sums
 * that must be exact, and the subnormal setting. Then numeric faults:
 * anomaly mode (which op, scope, shapes and direction it names; off by
 * default; per thread; the picture), and finite weights (an optimizer step
 * refuses a NaN or an infinity and changes nothing; nb_fit stops at the bad
 * batch with the weights of the last good step, or skips and counts it). */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* ---- anomaly mode ---- */

/* A kept heap tensor filled with v, with element `at` (flat) set to bad. */
static nb_tensor *filled(nb_dtype dt, int ndim, const int64_t *shape, double v, int64_t at,
                         double bad)
{
    nb_tensor *t = nb_full(dt, ndim, shape, v);
    assert_non_null(t);
    if (at >= 0) {
        if (dt == NB_F64)
            ((double *)nb_data(t))[at] = bad;
        else
            ((float *)nb_data(t))[at] = (float)bad;
        nb_bump_version(t);
    }
    return t;
}

/* The scan: every position of the unrolled loop and its tail, both
 * dtypes, both signs, views read through their strides. */
static void test_find_nonfinite(void **state)
{
    (void)state;
    const double bads[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (int d = 1; d <= 2; d++)
        for (int64_t at = 0; at < 37; at++)
            for (int b = 0; b < 4; b++) {
                nb_tensor *t = filled((nb_dtype)d, NB_SHAPE(37), d == 1 ? FLT_MAX : DBL_MAX,
                                      at, bads[b]);
                assert_int_equal(nb_find_nonfinite(t), at);
                nb_free(t);
            }
    nb_tensor *t = filled(NB_F32, NB_SHAPE(3, 4), -0.0, 1 * 4 + 2, NAN);
    assert_int_equal(nb_find_nonfinite(t), 6);
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_find_nonfinite(nb_transpose(t, 0, 1)), 2 * 3 + 1);
    assert_int_equal(nb_find_nonfinite(nb_slice(t, 0, 0, 1, 1)), -1);
    nb_graph_free(g);
    nb_free(t);
    FAILS_RC(nb_find_nonfinite(NULL) + 1, "nb_find_nonfinite: tensor is NULL");
}

static void test_anomaly_off_by_default(void **state)
{
    (void)state;
    assert_false(nb_is_anomaly_enabled());
    nb_graph *g = nb_graph_new();
    nb_tensor *x = filled(NB_F32, NB_SHAPE(4), 1.0, 2, 0.0);
    nb_tensor *l = nb_log(x); /* -inf at 2, no error: IEEE arithmetic */
    assert_non_null(l);
    assert_true(nb_get(l, NB_AT(2)) == -INFINITY);
    assert_null(nb_anomaly_tensor());
    assert_false(nb_set_detect_anomaly(true));
    assert_true(nb_is_anomaly_enabled());
    assert_true(nb_set_detect_anomaly(true));
    assert_true(nb_set_detect_anomaly(false));
    assert_false(nb_is_anomaly_enabled());
    nb_graph_free(g);
    nb_free(x);
}

/* The first op in execution order whose output holds a value it produced. */
static void test_anomaly_forward(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = filled(NB_F32, NB_SHAPE(32, 10), 2.0, 3 * 10 + 1, 0.0);
    nb_tensor *w = nb_param(nb_ones(NB_F32, NB_SHAPE(10)));
    nb_set_detect_anomaly(true);

    /* log(0) in dense_1: the log is reported, not the ops after it. */
    nb_scope_push("model");
    nb_scope_push("dense_1");
    FAILS(nb_exp(nb_mul(nb_log(x), w)),
          "nb_log: produced -inf in the forward at element (3,1) "
          "(scope model/dense_1/log, input (32,10)); anomaly mode is on");
    nb_scope_pop();
    nb_scope_pop();
    nb_tensor *a = nb_anomaly_tensor();
    assert_non_null(a);
    assert_ptr_equal(nb_op_of(a), nb_op_find("log"));
    assert_int_equal(nb_dim(a, 0), 32);

    /* 0 * inf: NaN from inputs without NaN, named with both shapes. */
    nb_tensor *z = filled(NB_F64, NB_SHAPE(2, 3), 1.0, 4, 0.0);
    nb_tensor *inf = filled(NB_F64, NB_SHAPE(3), 1.0, 1, INFINITY);
    FAILS(nb_mul(z, inf), "nb_mul: produced NaN in the forward at element (1,1) "
                          "(inputs (2,3), (3,)); anomaly mode is on");
    /* Overflow in f32. */
    FAILS(nb_mul(x, nb_scalar_like(x, 3e38)), "nb_mul: produced inf in the forward at "
                                              "element (0,0)");
    /* A NaN already in the data is reported at the first op to see it. */
    nb_tensor *d = nb_set_name(filled(NB_F32, NB_SHAPE(4, 3), 1.0, 7, NAN), "data");
    nb_tensor *ones = nb_ones(NB_F32, NB_SHAPE(3, 4));
    FAILS(nb_matmul(d, ones),
          "nb_matmul: got NaN in the forward at element (2,0) from input 1 'data' (4,3), "
          "which already held NaN at element (2,1) (inputs (4,3), (3,4))");
    /* ... a view too (transpose is a permute) */
    FAILS(nb_transpose(d, 0, 1), "nb_permute: got NaN in the forward at element (1,2)");
    nb_free(ones);
    /* Infinities passed on are taken as meant (a mask), and so are
     * constants; finite work gives no error and no report. */
    nb_clear_error();
    nb_tensor *mask = filled(NB_F32, NB_SHAPE(10), 0.0, 9, -INFINITY);
    nb_tensor *sm = nb_softmax(nb_add(x, mask), 1);
    assert_non_null(sm);
    assert_true(nb_get(sm, NB_AT(0, 9)) == 0);
    assert_non_null(nb_full_like(x, INFINITY));
    assert_non_null(nb_log_softmax(nb_mul(x, nb_scalar_like(x, 1e30)), 1));
    assert_null(nb_last_error());

    /* Off again: the same ops succeed. */
    nb_set_detect_anomaly(false);
    assert_non_null(nb_log(x));
    assert_non_null(nb_mul(z, inf));
    nb_graph_free(g);
    nb_free(x);
    nb_free(w);
    nb_free(z);
    nb_free(inf);
    nb_free(d);
    nb_free(mask);
}

/* The backward: the rule whose gradient holds the value, named with the
 * function called, and not the ops inside a rule. */
static void test_anomaly_backward(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_set_name(nb_param(filled(NB_F32, NB_SHAPE(3), 4.0, 1, 0.0)), "x");
    nb_set_detect_anomaly(true);
    nb_scope_push("loss");
    nb_tensor *loss = nb_sum(nb_sqrt(x)); /* sqrt(0) = 0: the forward is fine */
    nb_scope_pop();
    assert_non_null(loss);
    FAILS_RC(nb_backward(loss, .retain_graph = true),
             "nb_backward: the backward of nb_sqrt produced inf in the gradient of input 1 at "
             "element (1,) (scope loss/sqrt, input (3,)); anomaly mode is on");
    assert_ptr_equal(nb_op_of(nb_anomaly_tensor()), nb_op_find("sqrt"));
    assert_null(nb_grad_of(x)); /* nothing accumulated */
    nb_tensor *gx;
    FAILS_RC(nb_grad(loss, .n = 1, .inputs = &x, .grads = &gx, .retain_graph = true),
             "nb_grad: the backward of nb_sqrt produced inf");
    /* 0 * inf inside the rule: dy = 0 reaches sqrt at 0. */
    nb_tensor *zero = nb_sum(nb_mul(nb_sqrt(x), nb_zeros_like(x)));
    FAILS_RC(nb_backward(zero), "nb_backward: the backward of nb_sqrt produced NaN in the "
                                "gradient of input 1 at element (1,)");
    /* Gradients that each are finite but add up to inf in f32. */
    nb_tensor *t = nb_set_name(nb_param(nb_full(NB_F32, NB_SHAPE(2), 1e-30)), "t");
    nb_tensor *big = nb_full_like(t, 3e38);
    nb_tensor *two = nb_add(nb_sum(nb_mul(t, big)), nb_sum(nb_mul(t, big)));
    FAILS_RC(nb_backward(two), "nb_backward: the gradients reaching the leaf 't' (2,) add up to "
                               "inf at element (0,)");
    /* pow's rule computes log(0) for a base of 0 and selects it away: the
     * gradient it gives is finite, so there is nothing to report. */
    nb_tensor *a = nb_param(nb_scalar(NB_F64, 0)), *b = nb_param(nb_scalar(NB_F64, 2));
    nb_tensor *gb;
    nb_clear_error();
    assert_int_equal(nb_grad(nb_pow(a, b), .n = 1, .inputs = &b, .grads = &gb), 0);
    assert_true(nb_item(gb) == 0);
    /* Off: the same backward succeeds and leaves the infinity. */
    nb_set_detect_anomaly(false);
    assert_int_equal(nb_backward(loss), 0);
    assert_true(nb_get(nb_grad_of(x), NB_AT(1)) == INFINITY);
    nb_graph_free(g);
    nb_free(x);
    nb_free(t);
    nb_free(a);
    nb_free(b);
}

/* Graph pictures fill the anomaly's node red, with what was found. */
static void test_anomaly_picture(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_set_name(nb_param(filled(NB_F32, NB_SHAPE(2, 2), 1.0, 3, -1.0)), "x");
    nb_set_detect_anomaly(true);
    nb_scope_push("dense");
    assert_null(nb_sqrt(nb_add(x, x)));
    nb_scope_pop();
    nb_tensor *a = nb_anomaly_tensor();
    assert_non_null(a);
    const char *red = "fillcolor=\"#f28b82\"";
    char *marked = nb_dot_string(a, &(nb_dot_opts){.anomaly = true});
    char *plain = nb_dot_string(a, NULL);
    assert_non_null(marked);
    assert_non_null(plain);
    char *node = strstr(marked, "<b>sqrt</b>");
    assert_non_null(node);
    const char *start = node;
    while (start > marked && start[-1] != '\n')
        start--;
    assert_true(strstr(start, red) && strstr(start, red) < node); /* this node is the red one */
    assert_non_null(strstr(node, "NaN in the forward at (1,1)"));
    assert_null(strstr(strstr(marked, red) + 1, red)); /* and only it */
    assert_null(strstr(plain, red));
    assert_null(strstr(plain, "in the forward"));
    nb_dot_free(marked);
    nb_dot_free(plain);
    /* In the backward, the op whose rule failed. */
    nb_tensor *x0 = nb_param(filled(NB_F32, NB_SHAPE(2, 2), 1.0, 0, 0.0));
    nb_tensor *l = nb_sum(nb_sqrt(x0));
    assert_int_equal(nb_backward(nb_mul(l, nb_scalar_like(l, 0))), -1);
    char *back = nb_dot_string(l, &(nb_dot_opts){.anomaly = true, .backward = true});
    assert_non_null(back);
    assert_non_null(strstr(back, "NaN in the backward, gradient of input 1 at (0,0)"));
    nb_dot_free(back);
    /* A reset ends the report. */
    nb_graph_reset(g);
    assert_null(nb_anomaly_tensor());
    nb_set_detect_anomaly(false);
    nb_graph_free(g);
    nb_free(x);
    nb_free(x0);
}

/* Another thread's mode is its own. */
static void *other_thread(void *arg)
{
    bool *ok = arg;
    nb_graph *g = nb_graph_new();
    nb_tensor *z = nb_zeros(NB_F32, NB_SHAPE(3));
    *ok = !nb_is_anomaly_enabled() && nb_log(z) != NULL && nb_anomaly_tensor() == NULL;
    nb_set_detect_anomaly(true); /* does not reach the main thread */
    *ok = *ok && nb_log(z) == NULL;
    nb_graph_free(g);
    nb_free(z);
    return NULL;
}

static void test_anomaly_thread_local(void **state)
{
    (void)state;
    nb_set_detect_anomaly(true);
    bool ok = false;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, &ok), 0);
    pthread_join(t, NULL);
    assert_true(ok);
    assert_true(nb_set_detect_anomaly(false)); /* still on here */
    nb_set_detect_anomaly(true);
    assert_int_equal(pthread_create(&t, NULL, other_thread, &ok), 0);
    pthread_join(t, NULL);
    nb_set_detect_anomaly(false);
    assert_true(ok);
}

/* ---- finite weights: the optimizer step ---- */

static nb_optimizer *make_opt(int k)
{
    switch (k) {
    case 0: return nb_sgd(.lr = 0.1);
    case 1: return nb_sgd(.lr = 0.1, .momentum = 0.9, .nesterov = true);
    case 2: return nb_adam(.lr = 0.1);
    case 3: return nb_adamw(.lr = 0.1);
    case 4: return nb_rmsprop(.lr = 0.1, .momentum = 0.5);
    default: return nb_adagrad(.lr = 0.1);
    }
}

/* ps = {'p' (3,), 'q' (2,3)}, the same values for every call. */
static void make_params(nb_tensor *ps[2])
{
    nb_rng rng = nb_rng_new(11);
    ps[0] = nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(3), &rng)), "p");
    ps[1] = nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(2, 3), &rng)), "q");
}

enum { GOOD, BAD_GRAD, BAD_LOSS };

/* One step on sum(p^2) + sum(q^3); BAD_GRAD puts `bad` into q's gradient
 * at (1,2), BAD_LOSS passes a loss of `bad`. */
static int step_once(nb_optimizer *opt, nb_tensor *ps[2], int mode, double bad, bool skip)
{
    nb_graph *g = nb_graph_new();
    nb_zero_grad(ps[0]);
    nb_zero_grad(ps[1]);
    nb_tensor *loss =
        nb_add(nb_sum(nb_square(ps[0])), nb_sum(nb_mul(ps[1], nb_square(ps[1]))));
    assert_int_equal(nb_backward(loss), 0);
    if (mode == BAD_GRAD)
        assert_int_equal(nb_set(nb_grad_of(ps[1]), NB_AT(1, 2), bad), 0);
    if (mode == BAD_LOSS)
        loss = nb_full_like(loss, bad);
    int rc = nb_optimizer_step(opt, 2, ps, .loss = loss, .skip_nonfinite = skip);
    nb_graph_free(g);
    return rc;
}

static const char *kind_of(double v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

/* A refused step changes no parameter, no state and no step count: the
 * next steps give exactly what they give without it. */
static void test_step_refuses_nonfinite(void **state)
{
    (void)state;
    const double bads[] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 6; k++)
        for (int b = 0; b < 3; b++)
            for (int mode = BAD_GRAD; mode <= BAD_LOSS; mode++) {
                nb_tensor *pa[2], *pb[2], *pc[2], *snap[2];
                make_params(pa);
                make_params(pb);
                make_params(pc);
                nb_optimizer *a = make_opt(k), *o = make_opt(k), *c = make_opt(k);
                /* a: good, bad (refused), good; o: good, good. */
                assert_int_equal(step_once(a, pa, GOOD, 0, false), 0);
                snap[0] = nb_clone(pa[0]);
                snap[1] = nb_clone(pa[1]);
                char want[128];
                if (mode == BAD_GRAD)
                    snprintf(want, sizeof want, "nb_optimizer_step: the gradient of 'q' (2,3) is "
                             "%s at element (1,2); nothing was updated", kind_of(bads[b]));
                else
                    snprintf(want, sizeof want, "nb_optimizer_step: the loss is %s; nothing was "
                             "updated", kind_of(bads[b]));
                FAILS_RC(step_once(a, pa, mode, bads[b], false), want);
                assert_true(same_bits(pa[0], snap[0]) && same_bits(pa[1], snap[1]));
                assert_int_equal(nb_optimizer_steps(a), 1);
                assert_int_equal(nb_optimizer_skipped(a), 0);
                assert_int_equal(step_once(a, pa, GOOD, 0, false), 0);
                assert_int_equal(step_once(o, pb, GOOD, 0, false), 0);
                assert_int_equal(step_once(o, pb, GOOD, 0, false), 0);
                if (!same_bits(pa[0], pb[0]) || !same_bits(pa[1], pb[1]))
                    fail_msg("%s: a refused step changed the state", nb_optimizer_name(a));
                assert_false(same_bits(pa[1], snap[1])); /* the good steps did update */
                /* c: good, bad (skipped), good gives the same again. */
                assert_int_equal(step_once(c, pc, GOOD, 0, false), 0);
                nb_clear_error();
                assert_int_equal(step_once(c, pc, mode, bads[b], true), 1);
                assert_null(nb_last_error());
                assert_int_equal(nb_optimizer_skipped(c), 1);
                assert_int_equal(nb_optimizer_steps(c), 1);
                assert_int_equal(step_once(c, pc, GOOD, 0, true), 0);
                assert_true(same_bits(pc[0], pb[0]) && same_bits(pc[1], pb[1]));
                for (int i = 0; i < 2; i++) {
                    nb_free(pa[i]);
                    nb_free(pb[i]);
                    nb_free(pc[i]);
                    nb_free(snap[i]);
                }
                nb_optimizer_free(a);
                nb_optimizer_free(o);
                nb_optimizer_free(c);
            }
}

/* Clipping first: a clamp makes an infinity finite (accepted), a global
 * norm makes it NaN (refused, saying so); a refused first step fixes no
 * parameter list; an update that overflows is refused as well. */
static void test_step_clipping_and_overflow(void **state)
{
    (void)state;
    nb_tensor *ps[2];
    make_params(ps);
    nb_optimizer *cv = nb_adam(.clipvalue = 1), *cn = nb_adam(.clipnorm = 1);
    assert_int_equal(step_once(cv, ps, BAD_GRAD, INFINITY, false), 0);
    FAILS_RC(step_once(cn, ps, BAD_GRAD, INFINITY, false),
             "nb_optimizer_step: the gradient of 'q' (2,3) is NaN at element (1,2) after "
             "clipping (inf before); nothing was updated");
    assert_int_equal(nb_optimizer_steps(cn), 0);
    /* The refused first step did not fix the list: another one is fine. */
    nb_graph *g = nb_graph_new();
    nb_tensor *w = nb_set_name(nb_param(nb_full(NB_F32, NB_SHAPE(2), 2.0)), "w");
    assert_int_equal(nb_backward(nb_sum(nb_square(w))), 0); /* gradient 4 */
    assert_int_equal(nb_optimizer_step(cn, 1, &w), 0);
    /* lr * 4 overflows in f32: refused, though every gradient is finite. */
    nb_optimizer *huge = nb_sgd(.lr = 1e38);
    nb_tensor *before = nb_clone(w);
    FAILS_RC(nb_optimizer_step(huge, 1, &w),
             "nb_optimizer_step: the update of 'w' (2,) overflows to -inf at element (0,) "
             "(its gradient there is", "nothing was updated");
    assert_true(same_bits(w, before));
    nb_graph_free(g);
    nb_free(w);
    nb_free(before);
    nb_free(ps[0]);
    nb_free(ps[1]);
    nb_optimizer_free(cv);
    nb_optimizer_free(cn);
    nb_optimizer_free(huge);
}

/* The case that used to pass: a finite loss (sum of sqrt(0)) whose
 * gradient is infinite made Adam return 0 with NaN weights. */
static void test_adam_finite_loss_infinite_gradient(void **state)
{
    (void)state;
    nb_tensor *w = nb_set_name(nb_param(nb_zeros(NB_F32, NB_SHAPE(3))), "w");
    nb_optimizer *adam = nb_adam();
    nb_graph *g = nb_graph_new();
    nb_tensor *loss = nb_sum(nb_sqrt(w));
    assert_true(nb_item(loss) == 0);
    assert_int_equal(nb_backward(loss), 0);
    FAILS_RC(nb_optimizer_step(adam, 1, &w, .loss = loss),
             "nb_optimizer_step: the gradient of 'w' (3,) is inf at element (0,); nothing was "
             "updated");
    nb_tensor *zero = nb_zeros(NB_F32, NB_SHAPE(3));
    assert_true(same_bits(w, zero));
    assert_int_equal(nb_optimizer_steps(adam), 0);
    nb_graph_free(g);
    nb_optimizer_free(adam);
    nb_free(w);
    nb_free(zero);
}

/* ---- finite weights: nb_fit ---- */

/* (n, 4) inputs and (n, 2) targets, NaN at (row, 2) for each row given. */
static void regression(int64_t n, const int64_t *nan_rows, int nnan, nb_tensor **x,
                       nb_tensor **y)
{
    nb_rng rng = nb_rng_new(21);
    *x = nb_randn(NB_F32, NB_SHAPE(n, 4), &rng);
    *y = nb_randn(NB_F32, NB_SHAPE(n, 2), &rng);
    for (int i = 0; i < nnan; i++)
        assert_int_equal(nb_set(*x, NB_AT(nan_rows[i], 2), NAN), 0);
}

/* Rows [a, b) of x as a heap tensor. */
static nb_tensor *rows(nb_tensor *x, int64_t a, int64_t b)
{
    int64_t cols = nb_dim(x, 1);
    nb_tensor *r = nb_zeros(NB_F32, NB_SHAPE(b - a, cols));
    memcpy(nb_data(r), (float *)nb_data(x) + a * cols, (size_t)((b - a) * cols) * sizeof(float));
    nb_bump_version(r);
    return r;
}

static nb_model *reg_model(void)
{
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_TANH, .input = 4), nb_dense(2));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 4, 5), 0);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.05), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), 0);
    return m;
}

static bool all_finite(nb_model *m)
{
    nb_tensor *const *p;
    int n = nb_model_params(m, &p);
    for (int i = 0; i < n; i++)
        if (nb_find_nonfinite(p[i]) != -1)
            return false;
    return true;
}

/* One NaN row: the fit stops at its batch, with the weights of the step
 * before (the same as training on the rows before that batch). */
static void test_fit_stops_at_nan(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    regression(64, (const int64_t[]){40}, 1, &x, &y); /* row 40: batch 3 of 16 */
    nb_model *m = reg_model(), *ref = reg_model(), *init = reg_model();
    assert_true(same_weights(m, ref));
    FAILS(nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 2, .batch_size = 16, .no_shuffle = true),
          "nb_fit: epoch 1, batch 3: the loss is NaN", "the weights are those of the last good "
          "step (.skip_nonfinite skips such batches)");
    assert_true(all_finite(m));
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(m)), 2);
    nb_tensor *x2 = rows(x, 0, 32), *y2 = rows(y, 0, 32);
    assert_non_null(nb_fit(ref, (nb_dataset){.x = x2, .y = y2}, .batch_size = 16, .no_shuffle = true));
    assert_true(same_weights(m, ref));
    assert_false(same_weights(m, init)); /* two steps were taken */
    /* With anomaly mode on, the first op to see the NaN says where. */
    nb_model *am = reg_model();
    nb_set_detect_anomaly(true);
    FAILS(nb_fit(am, (nb_dataset){.x = x, .y = y}, .batch_size = 16, .no_shuffle = true),
          "nb_fit: epoch 1, batch 3: nb_matmul: got NaN in the forward at element (8,0) from "
          "input 1 (16,4), which already held NaN at element (8,2) (scope dense/matmul, "
          "inputs (16,4), (4,8))");
    nb_set_detect_anomaly(false);
    assert_true(all_finite(am));
    nb_model_free(m);
    nb_model_free(ref);
    nb_model_free(init);
    nb_model_free(am);
    nb_free(x);
    nb_free(y);
    nb_free(x2);
    nb_free(y2);
}

/* A finite loss with an infinite gradient: 1.5e38 * 2e-38 is 3, but the
 * kernel's gradient there is 1.5e38 * 200. */
static void test_fit_stops_at_infinite_gradient(void **state)
{
    (void)state;
    for (int skip = 0; skip < 2; skip++) {
        nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(4, 2)), *y = nb_zeros(NB_F32, NB_SHAPE(4, 1));
        for (int i = 0; i < 4; i++)
            nb_set(x, NB_AT(i, 1), 1.0);
        nb_set(x, NB_AT(2, 0), 1.5e38);
        nb_set(x, NB_AT(2, 1), 0.0);
        nb_set(y, NB_AT(2, 0), -97.0);
        nb_model *m = nb_sequential(nb_dense(1, .input = 2));
        assert_int_equal(nb_compile(m, nb_adam(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), 0);
        nb_tensor *const *p;
        nb_model_params(m, &p);
        ((float *)nb_data(p[0]))[0] = 2e-38f; /* a normal float; only row 2 has x0 != 0 */
        nb_bump_version(p[0]);
        const nb_history *h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .batch_size = 1, .no_shuffle = true, .skip_nonfinite = skip);
        if (!skip) {
            assert_null(h);
            ERR_HAS("nb_fit: epoch 1, batch 3: the gradient of 'dense.kernel' (2,1) is inf at "
                    "element (0,0); the weights are those of the last good step");
            assert_int_equal(nb_optimizer_steps(nb_model_optimizer(m)), 2);
        } else {
            assert_non_null(h);
            assert_int_equal(h->skipped[0], 1);
            assert_int_equal(nb_optimizer_skipped(nb_model_optimizer(m)), 1);
            assert_int_equal(nb_optimizer_steps(nb_model_optimizer(m)), 3);
        }
        assert_true(nb_get(p[0], NB_AT(0, 0)) == (double)2e-38f); /* its gradient was 0 */
        assert_true(all_finite(m));
        nb_model_free(m);
        nb_free(x);
        nb_free(y);
    }
}

/* .skip_nonfinite: the bad batches are skipped and counted, and the rest
 * train exactly as the data without them would. */
static void test_fit_skips_and_counts(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    regression(64, (const int64_t[]){20, 50, 52}, 3, &x, &y); /* batches 2 and 4 of 16 */
    nb_model *m = reg_model(), *ref = reg_model();
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    const nb_history *h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 3, .batch_size = 16,
                                 .no_shuffle = true, .skip_nonfinite = true, .verbose = 2,
                                 .out = out);
    fclose(out);
    if (!h)
        fail_msg("fit: %s", nb_last_error());
    for (int e = 0; e < 3; e++)
        assert_int_equal(h->skipped[e], 2);
    /* A NaN loss is skipped before the backward: the optimizer never sees it. */
    assert_int_equal(nb_optimizer_skipped(nb_model_optimizer(m)), 0);
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(m)), 6);
    assert_non_null(strstr(text, "Epoch 1/3\n4/4 - "));
    assert_non_null(strstr(text, "\nEpoch 3/3: skipped 2 of 4 batches (a NaN or an infinity in "
                                 "the loss or the gradients)\n"));
    double loss[3];
    for (int e = 0; e < 3; e++)
        loss[e] = h->loss[e];
    /* The reference: batches 1 and 3 only. */
    nb_tensor *xa = rows(x, 0, 16), *xb = rows(x, 32, 48), *ya = rows(y, 0, 16),
              *yb = rows(y, 32, 48);
    nb_tensor *x2 = nb_zeros(NB_F32, NB_SHAPE(32, 4)), *y2 = nb_zeros(NB_F32, NB_SHAPE(32, 2));
    memcpy(nb_data(x2), nb_data(xa), 16 * 4 * sizeof(float));
    memcpy((float *)nb_data(x2) + 64, nb_data(xb), 16 * 4 * sizeof(float));
    memcpy(nb_data(y2), nb_data(ya), 16 * 2 * sizeof(float));
    memcpy((float *)nb_data(y2) + 32, nb_data(yb), 16 * 2 * sizeof(float));
    nb_bump_version(x2);
    nb_bump_version(y2);
    h = nb_fit(ref, (nb_dataset){.x = x2, .y = y2}, .epochs = 3, .batch_size = 16, .no_shuffle = true);
    assert_non_null(h);
    assert_true(same_weights(m, ref));
    for (int e = 0; e < 3; e++) {
        assert_true(loss[e] == h->loss[e]); /* means over the batches trained on */
        assert_int_equal(h->skipped[e], 0);
    }
    free(text);
    nb_model_free(m);
    nb_model_free(ref);
    nb_tensor *all[] = {x, y, xa, xb, ya, yb, x2, y2};
    for (int i = 0; i < 8; i++)
        nb_free(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pow_at_zero),
        cmocka_unit_test(test_empty_axes),
        cmocka_unit_test(test_f32_sums_exact),
        cmocka_unit_test(test_flush_subnormals),
        cmocka_unit_test(test_find_nonfinite),
        cmocka_unit_test(test_anomaly_off_by_default),
        cmocka_unit_test(test_anomaly_forward),
        cmocka_unit_test(test_anomaly_backward),
        cmocka_unit_test(test_anomaly_picture),
        cmocka_unit_test(test_anomaly_thread_local),
        cmocka_unit_test(test_step_refuses_nonfinite),
        cmocka_unit_test(test_step_clipping_and_overflow),
        cmocka_unit_test(test_adam_finite_loss_infinite_gradient),
        cmocka_unit_test(test_fit_stops_at_nan),
        cmocka_unit_test(test_fit_stops_at_infinite_gradient),
        cmocka_unit_test(test_fit_skips_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
