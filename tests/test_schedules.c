/* Learning-rate schedules and gradient clipping (src/optim/): the rate of
 * each schedule at known steps, the rate a step really uses, clipvalue and
 * the global clipnorm inside a step (on temporaries), and the clipping
 * functions for hand-written loops (on the .grad tensors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <string.h>

#include "nabla/nabla.h"

#include "optim_testing.h"


/* ---- schedules ----------------------------------------------------------------- */

static void test_schedules(void **state)
{
    (void)state;
    nb_schedule c = {0}, st = {NB_STEP_DECAY, 10, 0.5}, ex = {NB_EXPONENTIAL_DECAY, 10, 0.5},
                co = {NB_COSINE_DECAY, 10, 0.1};
    assert_true(nb_schedule_lr(c, 0.2, 0) == 0.2);
    assert_true(nb_schedule_lr(c, 0.2, 12345) == 0.2);
    /* step decay: 0.2 * 0.5^floor(t / 10) */
    assert_true(nb_schedule_lr(st, 0.2, 0) == 0.2);
    assert_true(nb_schedule_lr(st, 0.2, 9) == 0.2);
    assert_true(nb_schedule_lr(st, 0.2, 10) == 0.1);
    assert_true(nb_schedule_lr(st, 0.2, 25) == 0.05);
    /* exponential: 0.2 * 0.5^(t / 10) */
    assert_float_equal(nb_schedule_lr(ex, 0.2, 0), 0.2, 1e-15);
    assert_float_equal(nb_schedule_lr(ex, 0.2, 5), 0.2 * 0.70710678118654752, 1e-15);
    assert_float_equal(nb_schedule_lr(ex, 0.2, 10), 0.1, 1e-15);
    assert_float_equal(nb_schedule_lr(ex, 0.2, 30), 0.025, 1e-15);
    /* cosine to alpha = 0.1: lr, 0.55 lr halfway, 0.1 lr at the end and after */
    assert_float_equal(nb_schedule_lr(co, 0.2, 0), 0.2, 1e-15);
    assert_float_equal(nb_schedule_lr(co, 0.2, 5), 0.11, 1e-15);
    assert_float_equal(nb_schedule_lr(co, 0.2, 10), 0.02, 1e-15);
    assert_float_equal(nb_schedule_lr(co, 0.2, 1000), 0.02, 1e-15);
    /* 1 - 0.9 * (1 - cos(pi / 10)) / 2 at t = 1 */
    assert_float_equal(nb_schedule_lr(co, 0.2, 1), 0.2 * (1 - 0.45 * (1 - 0.95105651629515357)),
                       1e-15);

    /* bad schedules */
    nb_clear_error();
    assert_true(isnan(nb_schedule_lr((nb_schedule){NB_STEP_DECAY, 0, 0.5}, 0.1, 3)));
    assert_msg("nb_schedule_lr: step decay needs schedule.steps > 0");
    assert_true(isnan(nb_schedule_lr((nb_schedule){NB_EXPONENTIAL_DECAY, 5, 0}, 0.1, 3)));
    assert_msg("nb_schedule_lr: exponential decay needs a positive schedule.rate");
    assert_true(isnan(nb_schedule_lr((nb_schedule){NB_COSINE_DECAY, 5, 1.5}, 0.1, 3)));
    assert_msg("nb_schedule_lr: cosine decay needs schedule.rate");
    assert_true(isnan(nb_schedule_lr((nb_schedule){NB_CONSTANT, 5, 0}, 0.1, 3)));
    assert_msg("nb_schedule_lr: schedule.steps/rate are set");
    assert_true(isnan(nb_schedule_lr((nb_schedule){(nb_schedule_kind)99, 5, 0.5}, 0.1, 3)));
    assert_msg("nb_schedule_lr: unknown schedule kind 99");
    assert_true(isnan(nb_schedule_lr(st, 0.1, -1)));
    assert_msg("nb_schedule_lr: step must be >= 0");
    assert_null(nb_sgd(.schedule = {NB_COSINE_DECAY, -3, 0}));
    assert_msg("nb_sgd: cosine decay needs schedule.steps > 0, got -3");

    /* nb_optimizer_lr is the rate of the NEXT step: schedule at steps taken */
    nb_optimizer *opt = nb_sgd(.lr = 0.4, .schedule = {NB_STEP_DECAY, 2, 0.5});
    assert_non_null(opt);
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_param(vec(NB_F64, N, P0)), *cf = vec(NB_F64, N, COEF);
    const double next[] = {0.4, 0.4, 0.2, 0.2, 0.1, 0.1};
    for (int s = 0; s < 6; s++) {
        assert_true(nb_optimizer_lr(opt) == next[s]);
        double before = at(p, 0);
        assert_int_equal(lib_step(g, opt, 1, &p, &cf), 0);
        /* the step used that rate: p0 -= lr * 2 * 1 * p0 */
        assert_float_equal(at(p, 0), before - next[s] * 2 * before, 1e-15);
    }
    nb_free(p);
    nb_free(cf);
    nb_graph_free(g);
    nb_optimizer_free(opt);
}

/* ---- clipping ------------------------------------------------------------------ */

/* A param with gradient exactly gr (loss = sum(gr * p)). */
static nb_tensor *with_grad(nb_dtype dt, int n, const double *p0, const double *gr)
{
    nb_tensor *p = nb_param(vec(dt, n, p0)), *c = vec(dt, n, gr);
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_backward(nb_sum(nb_mul(c, p))), 0);
    nb_graph_free(g);
    nb_free(c);
    return p;
}

static void test_clip_in_step(void **state)
{
    (void)state;
    const double p0[3] = {1, -2, 0.5}, gr[3] = {2, -1, 3}, q0[1] = {5}, gq[1] = {4};
    nb_graph *g = nb_graph_new();

    /* clipvalue: g = [1.5, -1, 1.5]; the .grad stays as it was */
    nb_tensor *p = with_grad(NB_F64, 3, p0, gr);
    nb_optimizer *opt = nb_sgd(.lr = 1, .clipvalue = 1.5);
    assert_int_equal(nb_optimizer_step(opt, 1, &p), 0);
    assert_true(at(p, 0) == -0.5 && at(p, 1) == -1.0 && at(p, 2) == -1.0);
    for (int i = 0; i < 3; i++)
        assert_true(at(nb_grad_of(p), i) == gr[i]);
    nb_optimizer_free(opt);
    nb_free(p);

    /* clipnorm is global: norm of ([2, -1, 3], [4]) is sqrt(30) */
    p = with_grad(NB_F64, 3, p0, gr);
    nb_tensor *q = with_grad(NB_F64, 1, q0, gq), *pq[2] = {p, q};
    opt = nb_sgd(.lr = 1, .clipnorm = 2);
    assert_int_equal(nb_optimizer_step(opt, 2, pq), 0);
    double s = 2 / sqrt(30.0);
    for (int i = 0; i < 3; i++) {
        assert_float_equal(at(p, i), p0[i] - s * gr[i], 1e-15);
        assert_true(at(nb_grad_of(p), i) == gr[i]);
    }
    assert_float_equal(at(q, 0), 5 - s * 4, 1e-15);
    nb_optimizer_free(opt);
    nb_free(p);
    nb_free(q);

    /* a norm under clipnorm leaves the gradient alone */
    p = with_grad(NB_F64, 3, p0, gr);
    opt = nb_sgd(.lr = 1, .clipnorm = 100);
    assert_int_equal(nb_optimizer_step(opt, 1, &p), 0);
    for (int i = 0; i < 3; i++)
        assert_true(at(p, i) == p0[i] - gr[i]);
    nb_optimizer_free(opt);
    nb_free(p);

    /* both: clamp to 1.5 first ([1.5, -1, 1.5], norm sqrt(5.5)), then scale to 1 */
    p = with_grad(NB_F64, 3, p0, gr);
    opt = nb_sgd(.lr = 1, .clipvalue = 1.5, .clipnorm = 1);
    assert_int_equal(nb_optimizer_step(opt, 1, &p), 0);
    const double cl[3] = {1.5, -1, 1.5};
    for (int i = 0; i < 3; i++)
        assert_float_equal(at(p, i), p0[i] - cl[i] / sqrt(5.5), 1e-15);
    nb_optimizer_free(opt);
    nb_free(p);

    /* mixed dtypes in one optimizer and one global norm; state in each dtype */
    p = with_grad(NB_F64, 3, p0, gr);
    q = with_grad(NB_F32, 1, q0, gq);
    pq[0] = p;
    pq[1] = q;
    opt = nb_adam(.lr = 0.1, .clipnorm = 2);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(nb_optimizer_step(opt, 2, pq), 0);
        nb_graph_reset(g);
    }
    /* Adam on a constant (scaled) gradient moves each element by about lr a step */
    for (int i = 0; i < 3; i++)
        assert_float_equal(at(p, i), p0[i] - 0.3 * (gr[i] > 0 ? 1 : -1), 1e-5);
    assert_float_equal(at(q, 0), 5 - 0.3, 1e-5);
    nb_optimizer_free(opt);
    nb_free(p);
    nb_free(q);
    nb_graph_free(g);
}

static void test_clip_grad_functions(void **state)
{
    (void)state;
    const double p0[3] = {1, -2, 0.5}, gr[3] = {2, -1, 3}, q0[1] = {5}, gq[1] = {4};
    nb_tensor *p = with_grad(NB_F64, 3, p0, gr), *q = with_grad(NB_F32, 1, q0, gq);
    nb_tensor *none = nb_param(nb_zeros(NB_F64, NB_SHAPE(2))); /* no grad: skipped */
    nb_tensor *ps[3] = {p, none, q};

    /* no current graph: it makes its own */
    assert_null(nb_graph_current());
    double norm = nb_clip_grad_norm(3, ps, 1.0);
    assert_float_equal(norm, sqrt(30.0), 1e-12);
    for (int i = 0; i < 3; i++)
        assert_float_equal(at(nb_grad_of(p), i), gr[i] / sqrt(30.0), 1e-15);
    assert_float_equal(at(nb_grad_of(q), 0), 4 / sqrt(30.0), 1e-7);
    assert_null(nb_grad_of(none));
    assert_null(nb_graph_current());
    /* now the norm is 1: returned, nothing changes */
    nb_graph *g = nb_graph_new();
    norm = nb_clip_grad_norm(3, ps, 2.0);
    assert_float_equal(norm, 1.0, 1e-7);
    assert_float_equal(at(nb_grad_of(p), 2), 3 / sqrt(30.0), 1e-15);

    /* value clipping */
    nb_free(p);
    p = with_grad(NB_F64, 3, p0, gr);
    ps[0] = p;
    assert_int_equal(nb_clip_grad_value(3, ps, 1.5), 0);
    assert_true(at(nb_grad_of(p), 0) == 1.5 && at(nb_grad_of(p), 1) == -1 &&
                at(nb_grad_of(p), 2) == 1.5);
    assert_float_equal(at(nb_grad_of(q), 0), 4 / sqrt(30.0), 1e-7);
    assert_int_equal(nb_clip_grad_value(1, &q, 0.25), 0);
    assert_true(at(nb_grad_of(q), 0) == 0.25);

    /* clipping bumps the version: a graph that saved the gradient fails */
    nb_tensor *gp = nb_grad_of(p);
    nb_tensor *h = nb_param(nb_ones(NB_F64, NB_SHAPE(3)));
    nb_tensor *y = nb_sum(nb_mul(h, gp)); /* mul saves gp */
    assert_non_null(y);
    assert_int_equal(nb_clip_grad_value(1, &p, 1.0), 0);
    assert_int_equal(nb_backward(y), -1);
    nb_free(h);

    /* errors */
    nb_clear_error();
    assert_true(nb_clip_grad_norm(3, ps, 0) == -1);
    assert_msg("nb_clip_grad_norm: max_norm must be a positive number, got 0");
    assert_true(nb_clip_grad_norm(3, ps, NAN) == -1);
    assert_true(nb_clip_grad_norm(2, (nb_tensor *[]){p, NULL}, 1) == -1);
    assert_msg("nb_clip_grad_norm: params[1] is NULL");
    assert_true(nb_clip_grad_norm(2, (nb_tensor *[]){p, p}, 1) == -1);
    assert_msg("nb_clip_grad_norm: params[0] and params[1] are the same tensor");
    assert_true(nb_clip_grad_norm(1, NULL, 1) == -1);
    assert_int_equal(nb_clip_grad_value(3, ps, -1), -1);
    assert_msg("nb_clip_grad_value: the bound must be a positive number, got -1");
    assert_int_equal(nb_clip_grad_value(-1, ps, 1), -1);
    assert_int_equal(nb_clip_grad_value(1, (nb_tensor *[]){NULL}, 1), -1);
    assert_msg("nb_clip_grad_value: params[0] is NULL");
    assert_true(nb_clip_grad_norm(0, NULL, 1) == 0); /* nothing to clip */

    nb_graph_free(g);
    nb_free(p);
    nb_free(q);
    nb_free(none);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_schedules, cleanup),
        cmocka_unit_test_teardown(test_clip_in_step, cleanup),
        cmocka_unit_test_teardown(test_clip_grad_functions, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
