/* Optimizers.
 *
 * Each optimizer's first steps are pinned against a reference written here
 * in plain C doubles from the published (Keras 3) formulas, to 1e-12 in f64;
 * f32 runs must stay close to it. Keras's own test values (its
 * optimizers/<name>_test.py "golden" tables) check parity to their 5e-4. Also:
 * the no-allocation property and bad input. Schedules and clipping are in
 * test_schedules.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

#include "optim_testing.h"

/* ---- the reference: plain doubles, written from the formulas ---------------- */

typedef enum { R_SGD, R_ADAM, R_RMSPROP, R_ADAGRAD } ralgo;

typedef struct {
    ralgo algo;
    double lr, momentum;
    bool nesterov;
    double b1, b2, rho, eps, wd, acc0, clipnorm, clipvalue;
    nb_schedule sched;
} rcfg;

static double ref_lr(const rcfg *c, int64_t step)
{
    const nb_schedule *s = &c->sched;
    double k;
    switch (s->kind) {
    case NB_STEP_DECAY:
        k = floor((double)step / (double)s->steps);
        return c->lr * pow(s->rate, k);
    case NB_EXPONENTIAL_DECAY:
        return c->lr * pow(s->rate, (double)step / (double)s->steps);
    case NB_COSINE_DECAY:
        k = (double)(step < s->steps ? step : s->steps) / (double)s->steps;
        return c->lr * ((1 - s->rate) * 0.5 * (1 + cos(acos(-1.0) * k)) + s->rate);
    default:
        return c->lr;
    }
}

/* `steps` steps of c on the quadratic from P0; out[s] = p after step s+1. */
static void ref_run(const rcfg *c, int steps, double out[][N])
{
    double p[N], a[N], b[N], g[N];
    for (int i = 0; i < N; i++) {
        p[i] = P0[i];
        a[i] = c->algo == R_ADAGRAD ? c->acc0 : 0.0;
        b[i] = 0.0;
    }
    for (int t = 1; t <= steps; t++) {
        double lr = ref_lr(c, t - 1), sq = 0;
        for (int i = 0; i < N; i++) {
            g[i] = 2 * COEF[i] * p[i];
            if (c->clipvalue > 0)
                g[i] = g[i] > c->clipvalue ? c->clipvalue : g[i] < -c->clipvalue ? -c->clipvalue : g[i];
            sq += g[i] * g[i];
        }
        if (c->clipnorm > 0 && sqrt(sq) > c->clipnorm)
            for (int i = 0; i < N; i++)
                g[i] *= c->clipnorm / sqrt(sq);
        for (int i = 0; i < N; i++) {
            p[i] -= p[i] * c->wd * lr;
            switch (c->algo) {
            case R_SGD:
                if (c->momentum == 0) {
                    p[i] -= lr * g[i];
                } else {
                    a[i] = c->momentum * a[i] - lr * g[i];
                    p[i] += c->nesterov ? c->momentum * a[i] - lr * g[i] : a[i];
                }
                break;
            case R_ADAM: {
                a[i] = c->b1 * a[i] + (1 - c->b1) * g[i];
                b[i] = c->b2 * b[i] + (1 - c->b2) * g[i] * g[i];
                double alpha = lr * sqrt(1 - pow(c->b2, t)) / (1 - pow(c->b1, t));
                p[i] -= alpha * a[i] / (sqrt(b[i]) + c->eps);
                break;
            }
            case R_RMSPROP: {
                a[i] = c->rho * a[i] + (1 - c->rho) * g[i] * g[i];
                double inc = lr * g[i] / sqrt(a[i] + c->eps);
                if (c->momentum > 0) {
                    b[i] = c->momentum * b[i] + inc;
                    p[i] -= b[i];
                } else {
                    p[i] -= inc;
                }
                break;
            }
            case R_ADAGRAD:
                a[i] += g[i] * g[i];
                p[i] -= lr * g[i] / sqrt(a[i] + c->eps);
                break;
            }
            out[t - 1][i] = p[i];
        }
    }
}

/* ---- the library on the same problem ---------------------------------------- */


static void lib_run(nb_optimizer *opt, nb_dtype dt, int steps, double out[][N])
{
    assert_non_null(opt);
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_param(vec(dt, N, P0)), *c = vec(dt, N, COEF);
    for (int s = 0; s < steps; s++) {
        assert_int_equal(lib_step(g, opt, 1, &p, &c), 0);
        for (int i = 0; i < N; i++)
            out[s][i] = at(p, i);
    }
    assert_int_equal(nb_optimizer_steps(opt), steps);
    nb_free(p);
    nb_free(c);
    nb_graph_free(g);
}

typedef struct {
    const char *name;
    nb_optimizer *(*make)(void);
    rcfg ref;
} pin_case;

static nb_optimizer *sgd_plain(void) { return nb_sgd(.lr = 0.1); }
static nb_optimizer *sgd_momentum(void) { return nb_sgd(.lr = 0.1, .momentum = 0.9); }
static nb_optimizer *sgd_nesterov(void)
{
    return nb_sgd(.lr = 0.1, .momentum = 0.9, .nesterov = true);
}
static nb_optimizer *sgd_wd(void) { return nb_sgd(.lr = 0.1, .weight_decay = 0.05); }
static nb_optimizer *sgd_default(void) { return nb_sgd(); }
static nb_optimizer *sgd_step_decay(void)
{
    return nb_sgd(.lr = 0.1, .momentum = 0.5,
                  .schedule = {.kind = NB_STEP_DECAY, .steps = 1, .rate = 0.5});
}
static nb_optimizer *adam(void) { return nb_adam(.lr = 0.1); }
static nb_optimizer *adam_default(void) { return nb_adam(); }
static nb_optimizer *adam_custom(void)
{
    return nb_adam(.lr = 0.05, .betas = {0.5, 0.75}, .eps = 0.1);
}
/* beta1 = 0: no momentum, m is the gradient itself (PyTorch's betas form). */
static nb_optimizer *adam_beta1_zero(void) { return nb_adam(.lr = 0.1, .betas = {0.0, 0.999}); }
static nb_optimizer *adam_beta2_zero(void)
{
    return nb_adam(.lr = 0.1, .betas = {0.5, NB_ZERO}, .eps = 0.01);
}
static nb_optimizer *adam_clipped(void)
{
    return nb_adam(.lr = 0.1, .clipvalue = 1.2, .clipnorm = 1.5,
                   .schedule = {.kind = NB_COSINE_DECAY, .steps = 4, .rate = 0.1});
}
static nb_optimizer *adamw(void) { return nb_adamw(.lr = 0.1); }
static nb_optimizer *adamw_wd(void) { return nb_adamw(.lr = 0.1, .weight_decay = 0.3); }
static nb_optimizer *adamw_no_decay(void) { return nb_adamw(.lr = 0.1, .weight_decay = NB_ZERO); }
static nb_optimizer *rmsprop(void) { return nb_rmsprop(.lr = 0.01); }
static nb_optimizer *rmsprop_eps(void) { return nb_rmsprop(.lr = 0.01, .rho = 0.8, .eps = 0.5); }
static nb_optimizer *rmsprop_rho_zero(void) { return nb_rmsprop(.lr = 0.01, .rho = NB_ZERO); }
static nb_optimizer *rmsprop_momentum(void)
{
    return nb_rmsprop(.lr = 0.01, .momentum = 0.9,
                      .schedule = {.kind = NB_EXPONENTIAL_DECAY, .steps = 2, .rate = 0.5});
}
static nb_optimizer *adagrad(void) { return nb_adagrad(.lr = 0.1); }
/* PyTorch's Adagrad starts its accumulator at 0. */
static nb_optimizer *adagrad_from_zero(void)
{
    return nb_adagrad(.lr = 0.1, .initial_accumulator = NB_ZERO);
}
static nb_optimizer *adagrad_custom(void)
{
    return nb_adagrad(.lr = 0.2, .initial_accumulator = 0.3, .eps = 0.01, .weight_decay = 0.1);
}

#define ADAM_DEF .b1 = 0.9, .b2 = 0.999, .eps = 1e-7
static const pin_case pins[] = {
    {"sgd", sgd_plain, {R_SGD, .lr = 0.1}},
    {"sgd momentum", sgd_momentum, {R_SGD, .lr = 0.1, .momentum = 0.9}},
    {"sgd nesterov", sgd_nesterov, {R_SGD, .lr = 0.1, .momentum = 0.9, .nesterov = true}},
    {"sgd weight decay", sgd_wd, {R_SGD, .lr = 0.1, .wd = 0.05}},
    {"sgd defaults", sgd_default, {R_SGD, .lr = 0.01}},
    {"sgd step decay", sgd_step_decay,
     {R_SGD, .lr = 0.1, .momentum = 0.5, .sched = {NB_STEP_DECAY, 1, 0.5}}},
    {"adam", adam, {R_ADAM, .lr = 0.1, ADAM_DEF}},
    {"adam defaults", adam_default, {R_ADAM, .lr = 1e-3, ADAM_DEF}},
    {"adam custom", adam_custom, {R_ADAM, .lr = 0.05, .b1 = 0.5, .b2 = 0.75, .eps = 0.1}},
    {"adam beta1 0", adam_beta1_zero, {R_ADAM, .lr = 0.1, .b1 = 0, .b2 = 0.999, .eps = 1e-7}},
    {"adam beta2 0", adam_beta2_zero, {R_ADAM, .lr = 0.1, .b1 = 0.5, .b2 = 0, .eps = 0.01}},
    {"adam clipped", adam_clipped,
     {R_ADAM, .lr = 0.1, ADAM_DEF, .clipvalue = 1.2, .clipnorm = 1.5,
      .sched = {NB_COSINE_DECAY, 4, 0.1}}},
    {"adamw", adamw, {R_ADAM, .lr = 0.1, ADAM_DEF, .wd = 0.004}},
    {"adamw weight decay", adamw_wd, {R_ADAM, .lr = 0.1, ADAM_DEF, .wd = 0.3}},
    {"adamw without decay", adamw_no_decay, {R_ADAM, .lr = 0.1, ADAM_DEF, .wd = 0}},
    {"rmsprop", rmsprop, {R_RMSPROP, .lr = 0.01, .rho = 0.9, .eps = 1e-7}},
    {"rmsprop eps", rmsprop_eps, {R_RMSPROP, .lr = 0.01, .rho = 0.8, .eps = 0.5}},
    {"rmsprop rho 0", rmsprop_rho_zero, {R_RMSPROP, .lr = 0.01, .rho = 0, .eps = 1e-7}},
    {"rmsprop momentum", rmsprop_momentum,
     {R_RMSPROP, .lr = 0.01, .momentum = 0.9, .rho = 0.9, .eps = 1e-7,
      .sched = {NB_EXPONENTIAL_DECAY, 2, 0.5}}},
    {"adagrad", adagrad, {R_ADAGRAD, .lr = 0.1, .eps = 1e-7, .acc0 = 0.1}},
    {"adagrad from 0", adagrad_from_zero, {R_ADAGRAD, .lr = 0.1, .eps = 1e-7, .acc0 = 0}},
    {"adagrad custom", adagrad_custom,
     {R_ADAGRAD, .lr = 0.2, .eps = 0.01, .acc0 = 0.3, .wd = 0.1}},
};
#define NPINS (int)(sizeof pins / sizeof pins[0])

static void test_pinned_f64(void **state)
{
    (void)state;
    for (int k = 0; k < NPINS; k++) {
        double want[3][N], got[3][N];
        ref_run(&pins[k].ref, 3, want);
        nb_optimizer *opt = pins[k].make();
        if (!opt)
            fail_msg("%s: %s", pins[k].name, nb_last_error());
        lib_run(opt, NB_F64, 3, got);
        nb_optimizer_free(opt);
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < N; i++) {
                if (fabs(got[s][i] - want[s][i]) > 1e-12)
                    fail_msg("%s step %d p[%d]: got %.17g, want %.17g", pins[k].name, s + 1,
                             i, got[s][i], want[s][i]);
                /* and it did move: a no-op would not pass by accident */
                if (s == 0 && got[s][i] == P0[i])
                    fail_msg("%s: p[%d] did not change", pins[k].name, i);
            }
    }
}

static void test_pinned_f32(void **state)
{
    (void)state;
    for (int k = 0; k < NPINS; k++) {
        double want[3][N], got[3][N];
        ref_run(&pins[k].ref, 3, want);
        nb_optimizer *opt = pins[k].make();
        assert_non_null(opt);
        lib_run(opt, NB_F32, 3, got);
        nb_optimizer_free(opt);
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < N; i++)
                if (fabs(got[s][i] - want[s][i]) > 2e-6 * (1 + fabs(want[s][i])))
                    fail_msg("%s f32 step %d p[%d]: got %.9g, want %.9g", pins[k].name, s + 1,
                             i, got[s][i], want[s][i]);
    }
}

/* The defaults and names the header promises. */
static void test_defaults_and_names(void **state)
{
    (void)state;
    struct {
        nb_optimizer *opt;
        const char *name;
        double lr;
    } cases[] = {
        {nb_sgd(), "sgd", 0.01},         {nb_adam(), "adam", 1e-3},
        {nb_adamw(), "adamw", 1e-3},     {nb_rmsprop(), "rmsprop", 1e-3},
        {nb_adagrad(), "adagrad", 1e-3}, {nb_adam(.lr = 0.5), "adam", 0.5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_non_null(cases[i].opt);
        assert_string_equal(nb_optimizer_name(cases[i].opt), cases[i].name);
        assert_true(nb_optimizer_lr(cases[i].opt) == cases[i].lr);
        assert_int_equal(nb_optimizer_steps(cases[i].opt), 0);
        nb_optimizer_free(cases[i].opt);
    }
}

/* Keras's published single-step and golden values (keras/src/optimizers/
 * *_test.py): grads set directly (loss = sum(grad * p)), tolerance 5e-4 / 1e-4. */
static void keras_run(nb_optimizer *opt, const double *x0, int n, int steps,
                      const double *(*grads)(int step), const double *golden, double tol)
{
    assert_non_null(opt);
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_param(vec(NB_F32, n, x0));
    for (int s = 0; s < steps; s++) {
        nb_tensor *c = vec(NB_F32, n, grads(s));
        nb_zero_grad(p);
        assert_int_equal(nb_backward(nb_sum(nb_mul(c, p))), 0);
        assert_int_equal(nb_optimizer_step(opt, 1, &p), 0);
        nb_graph_reset(g);
        nb_free(c);
        for (int i = 0; i < n; i++)
            if (fabs(at(p, i) - golden[s * n + i]) > tol)
                fail_msg("%s step %d x[%d]: got %.6f, Keras %.6f", nb_optimizer_name(opt),
                         s + 1, i, at(p, i), golden[s * n + i]);
    }
    nb_free(p);
    nb_graph_free(g);
    nb_optimizer_free(opt);
}

static const double *single_grads(int s)
{
    (void)s;
    static const double gr[4] = {1, 6, 7, 2};
    return gr;
}
/* 0.01 first, then arange(0.1, 1.1, 0.1) */
static const double *golden_grads(int s)
{
    static double first[10], rest[10];
    for (int i = 0; i < 10; i++) {
        first[i] = 0.01;
        rest[i] = 0.1 * (i + 1);
    }
    return s == 0 ? first : rest;
}

static void test_keras_parity(void **state)
{
    (void)state;
    const double x4[4] = {1, 2, 3, 4};
    double ones[10];
    for (int i = 0; i < 10; i++)
        ones[i] = 1;
    keras_run(nb_sgd(.lr = 0.5), x4, 4, 1, single_grads, (const double[]){0.5, -1.0, -0.5, 3.0}, 1e-4);
    keras_run(nb_adam(.lr = 0.5), x4, 4, 1, single_grads, (const double[]){0.5, 1.5, 2.5, 3.5}, 1e-4);
    keras_run(nb_adamw(.lr = 0.5), x4, 4, 1, single_grads,
              (const double[]){0.4980, 1.4960, 2.494, 3.492}, 1e-4);
    keras_run(nb_rmsprop(.lr = 0.5), x4, 4, 1, single_grads,
              (const double[]){-0.5811, 0.4189, 1.4189, 2.4189}, 1e-4);
    keras_run(nb_adagrad(.lr = 0.5), x4, 4, 1, single_grads,
              (const double[]){0.5233, 1.5007, 2.5005, 3.5061}, 1e-4);

    /* Golden tables: the value after the first step and four more. */
    static const double sgd_golden[5][10] = {
        {0.9999, 0.9999, 0.9999, 0.9999, 0.9999, 0.9999, 0.9999, 0.9999, 0.9999, 0.9999},
        {0.9989, 0.9979, 0.9969, 0.9959, 0.9949, 0.9939, 0.9929, 0.9919, 0.9909, 0.9899},
        {0.9979, 0.9959, 0.9939, 0.9919, 0.9899, 0.9879, 0.9859, 0.9839, 0.9819, 0.9799},
        {0.9969, 0.9939, 0.9909, 0.9879, 0.9849, 0.9819, 0.9789, 0.9759, 0.9729, 0.9699},
        {0.9959, 0.9919, 0.9879, 0.9839, 0.9799, 0.9759, 0.9719, 0.9679, 0.9639, 0.9599}};
    keras_run(nb_sgd(.nesterov = true), ones, 10, 5, golden_grads, &sgd_golden[0][0], 5e-4);
    static const double adagrad_golden[5][10] = {
        {0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963, 0.9963},
        {0.9604, 0.9278, 0.9003, 0.8784, 0.8615, 0.8487, 0.8388, 0.8313, 0.8255, 0.8209},
        {0.9251, 0.8629, 0.8137, 0.7768, 0.7497, 0.7298, 0.7151, 0.704, 0.6956, 0.6891},
        {0.8903, 0.8012, 0.7342, 0.6862, 0.6521, 0.6277, 0.6099, 0.5967, 0.5867, 0.579},
        {0.856, 0.7422, 0.6604, 0.6037, 0.5644, 0.5367, 0.5168, 0.5021, 0.491, 0.4825}};
    keras_run(nb_adagrad(.lr = 0.2, .initial_accumulator = 0.3, .eps = 1e-6), ones, 10, 5,
              golden_grads, &adagrad_golden[0][0], 5e-4);
    static const double adamw_golden[5][10] = {
        {0.4998, 0.4998, 0.4998, 0.4998, 0.4998, 0.4998, 0.4998, 0.4998, 0.4998, 0.4998},
        {0.2486, 0.2475, 0.2463, 0.2451, 0.244, 0.2428, 0.2417, 0.2405, 0.2394, 0.2382},
        {0.1223, 0.1198, 0.1174, 0.1149, 0.1124, 0.11, 0.1075, 0.1051, 0.1027, 0.1003},
        {0.0586, 0.0549, 0.0512, 0.0475, 0.0439, 0.0402, 0.0366, 0.033, 0.0294, 0.0258},
        {0.0263, 0.0215, 0.0167, 0.012, 0.0073, 0.0026, -0.0021, -0.0067, -0.0113, -0.0159}};
    keras_run(nb_adamw(.lr = 1.0, .weight_decay = 0.5, .eps = 2), ones, 10, 5, golden_grads,
              &adamw_golden[0][0], 5e-4);
    /* Keras's weight-decay test: three optimizers (lr 1, wd 0.004) each step a
     * variable at 2.0 with a zero gradient: 2 * 0.996^3. */
    nb_graph *g = nb_graph_new();
    for (int k = 0; k < 4; k++) {
        nb_tensor *v = nb_param(nb_full(NB_F32, 0, NULL, 2.0));
        for (int j = 0; j < 3; j++) {
            nb_optimizer *o = k == 0   ? nb_sgd(.lr = 1, .weight_decay = 0.004)
                              : k == 1 ? nb_adam(.lr = 1, .weight_decay = 0.004)
                              : k == 2 ? nb_rmsprop(.lr = 1, .weight_decay = 0.004)
                                       : nb_adagrad(.lr = 1, .weight_decay = 0.004);
            nb_zero_grad(v);
            assert_int_equal(nb_backward(nb_mul(v, nb_scalar_like(v, 0.0))), 0);
            assert_int_equal(nb_optimizer_step(o, 1, &v), 0);
            nb_optimizer_free(o);
            nb_graph_reset(g);
        }
        assert_float_equal(nb_item(v), 1.9760959, 1e-6);
        nb_free(v);
    }
    nb_graph_free(g);
}

/* Adam with beta1 = 0 (.betas = {0.0, 0.999}), two steps worked out by hand
 * from Keras 3's Adam (keras/src/optimizers/adam.py) with beta_1 = 0:
 *   alpha_t = lr sqrt(1 - 0.999^t) / (1 - 0^t) = lr sqrt(1 - 0.999^t)
 *   m_t = g_t (no momentum);  v_t = 0.999 v_(t-1) + 0.001 g_t^2
 *   p_t = p_(t-1) - m_t alpha_t / (sqrt(v_t) + 1e-7)
 * with lr 0.1, p0 = (1, -2, 0.5), g1 = (0.5, -1, 2), g2 = (-1, 0.25, 2).
 * Step 1: v1 = 0.001 g1^2, so p1 = p0 - 0.1 g1 / (|g1| + 1e-7 / sqrt(0.001)),
 *   = (0.9000006324515321, -1.900000316226766, 0.400000158113633).
 * Step 2: alpha2 = 0.1 sqrt(1 - 0.999^2) = 0.0044710177812216,
 *   v2 = 0.999 * 0.001 g1^2 + 0.001 g2^2 = (0.00124975, 0.0010615, 0.007996),
 *   p2 = p1 - g2 alpha2 / (sqrt(v2) + 1e-7)
 *   = (1.0264724022210439, -1.9343075003619878, 0.30000026994486884). */
static void test_adam_beta1_zero_by_hand(void **state)
{
    (void)state;
    const double g[2][N] = {{0.5, -1, 2}, {-1, 0.25, 2}};
    const double want[2][N] = {{0.9000006324515321, -1.900000316226766, 0.400000158113633},
                               {1.0264724022210439, -1.9343075003619878, 0.30000026994486884}};
    nb_optimizer *opt = nb_adam(.lr = 0.1, .betas = {0.0, 0.999});
    if (!opt)
        fail_msg("nb_adam(.betas = {0.0, 0.999}): %s", nb_last_error());
    nb_graph *gr = nb_graph_new();
    nb_tensor *p = nb_param(vec(NB_F64, N, P0));
    for (int s = 0; s < 2; s++) {
        nb_tensor *c = vec(NB_F64, N, g[s]);
        nb_zero_grad(p);
        assert_int_equal(nb_backward(nb_sum(nb_mul(c, p))), 0); /* grad = c */
        assert_int_equal(nb_optimizer_step(opt, 1, &p), 0);
        nb_graph_reset(gr);
        nb_free(c);
        for (int i = 0; i < N; i++) {
            if (fabs(at(p, i) - want[s][i]) > 1e-12)
                fail_msg("step %d p[%d]: got %.17g, by hand %.17g", s + 1, i, at(p, i),
                         want[s][i]);
            if (s == 0) /* the closed form of the first step */
                assert_float_equal(at(p, i),
                                   P0[i] - 0.1 * g[0][i] / (fabs(g[0][i]) + 1e-7 / sqrt(0.001)),
                                   1e-15);
        }
    }
    nb_free(p);
    nb_graph_free(gr);
    nb_optimizer_free(opt);
}

/* ---- allocation: after the first step, none ------------------------------------- */

static nb_optimizer *full_sgd(void)
{
    return nb_sgd(.lr = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01,
                  .clipnorm = 1, .clipvalue = 0.5,
                  .schedule = {NB_COSINE_DECAY, 5, 0.1});
}
static nb_optimizer *full_adamw(void)
{
    return nb_adamw(.clipnorm = 0.5, .schedule = {NB_STEP_DECAY, 2, 0.5});
}
static nb_optimizer *full_rmsprop(void)
{
    return nb_rmsprop(.momentum = 0.5, .clipvalue = 0.1, .weight_decay = 0.1,
                      .schedule = {NB_EXPONENTIAL_DECAY, 3, 0.9});
}

static void test_no_allocations_after_first_step(void **state)
{
    (void)state;
    nb_optimizer *(*makers[])(void) = {sgd_plain, full_sgd, adam, full_adamw, rmsprop,
                                       full_rmsprop, adagrad_custom};
    nb_set_allocator(&counting_allocator);
    int64_t live0 = nb_live_tensors();
    for (size_t k = 0; k < sizeof makers / sizeof makers[0]; k++) {
        nb_optimizer *opt = makers[k]();
        assert_non_null(opt);
        nb_graph *g = nb_graph_new();
        nb_tensor *ps[2] = {nb_param(vec(NB_F64, N, P0)), nb_param(vec(NB_F32, N, P0))};
        nb_tensor *cs[2] = {vec(NB_F64, N, COEF), vec(NB_F32, N, COEF)};
        assert_int_equal(lib_step(g, opt, 2, ps, cs), 0); /* warm-up: grads, state, arena */
        long before = allocs;
        for (int s = 0; s < 10; s++) {
            assert_int_equal(lib_step(g, opt, 2, ps, cs), 0);
            assert_true(nb_clip_grad_norm(2, ps, 10.0) >= 0); /* in a graph: no allocation */
            nb_graph_reset(g);
        }
        if (allocs != before)
            fail_msg("%s: %ld allocations in 10 steps after the first", nb_optimizer_name(opt),
                     allocs - before);
        assert_int_equal(nb_optimizer_steps(opt), 11);
        for (int i = 0; i < 2; i++) {
            nb_free(ps[i]);
            nb_free(cs[i]);
        }
        nb_graph_free(g);
        nb_optimizer_free(opt); /* frees its state */
    }
    assert_int_equal(nb_live_tensors(), live0);
    nb_set_allocator(NULL);
}

/* ---- bad input ----------------------------------------------------------------- */

/* Each constructor refuses the value with a message naming itself. */
#define BAD(call, msg)                                                         \
    do {                                                                       \
        nb_clear_error();                                                      \
        nb_optimizer *o_ = (call);                                             \
        if (o_) {                                                              \
            nb_optimizer_free(o_);                                             \
            fail_msg("%s made an optimizer", #call);                           \
        }                                                                      \
        assert_msg(msg);                                                       \
    } while (0)

static void test_bad_hyperparameters(void **state)
{
    (void)state;
    BAD(nb_adam(.lr = -1), "nb_adam: lr must be positive, got -1");
    assert_string_equal(nb_last_error(), "nb_adam: lr must be positive, got -1");
    BAD(nb_sgd(.lr = NAN), "nb_sgd: lr must be a finite number");
    BAD(nb_sgd(.lr = INFINITY), "nb_sgd: lr must be a finite number");
    BAD(nb_sgd(.momentum = -0.5), "nb_sgd: momentum must be in [0, 1), got -0.5");
    BAD(nb_sgd(.momentum = 1), "nb_sgd: momentum must be in [0, 1), got 1");
    BAD(nb_rmsprop(.momentum = 2), "nb_rmsprop: momentum must be in [0, 1), got 2");
    BAD(nb_adam(.betas = {1, 0.999}), "nb_adam: betas[0] (beta1) must be in [0, 1), got 1");
    BAD(nb_adamw(.betas = {0.9, -0.1}), "nb_adamw: betas[1] (beta2) must be in [0, 1), got -0.1");
    BAD(nb_adam(.betas = {0.9, 1}), "nb_adam: betas[1] (beta2) must be in [0, 1), got 1");
    BAD(nb_adam(.betas = {NAN, 0.999}), "nb_adam: betas[0] (beta1) must be a finite number");
    /* a half-written pair is not read as beta2 = 0 */
    BAD(nb_adam(.betas = {0.5}), "nb_adam: betas = {0.5, 0} sets beta1 but leaves beta2 at 0; "
                                 "give both, as in .betas = {0.5, 0.999}");
    /* NB_ZERO where no zero makes sense, or for an option not read */
    BAD(nb_adam(.lr = NB_ZERO), "nb_adam: lr must be > 0 (leave it 0 for the default)");
    BAD(nb_rmsprop(.eps = NB_ZERO), "nb_rmsprop: eps must be > 0");
    BAD(nb_adam(.rho = NB_ZERO), "nb_adam: rho is not an option of adam");
    BAD(nb_sgd(.initial_accumulator = NB_ZERO), "nb_sgd: initial_accumulator is not an option");
    BAD(nb_rmsprop(.rho = 1.5), "nb_rmsprop: rho must be in [0, 1), got 1.5");
    BAD(nb_adam(.eps = -1e-8), "nb_adam: eps must be positive, got -1e-08");
    BAD(nb_sgd(.weight_decay = -1), "nb_sgd: weight_decay must be positive, got -1");
    BAD(nb_adagrad(.initial_accumulator = -0.1),
        "nb_adagrad: initial_accumulator must be positive, got -0.1");
    BAD(nb_adagrad(.lr = -0.1), "nb_adagrad: lr must be positive, got -0.1");
    BAD(nb_sgd(.clipnorm = -1), "nb_sgd: clipnorm must be positive, got -1");
    BAD(nb_adam(.clipvalue = -2), "nb_adam: clipvalue must be positive, got -2");
    /* an option the optimizer does not read is a mistake, not a no-op */
    BAD(nb_adam(.momentum = 0.9), "nb_adam: momentum is not an option of adam");
    BAD(nb_rmsprop(.nesterov = true), "nb_rmsprop: nesterov is not an option of rmsprop");
    BAD(nb_sgd(.betas = {0.8, 0.9}), "nb_sgd: betas is not an option of sgd");
    BAD(nb_rmsprop(.betas = {NB_ZERO, 0}), "nb_rmsprop: betas is not an option");
    BAD(nb_adagrad(.rho = 0.8), "nb_adagrad: rho is not an option of adagrad");
    BAD(nb_adam(.initial_accumulator = 1), "nb_adam: initial_accumulator is not an option");
    BAD(nb_adam(.schedule = {NB_STEP_DECAY, 0, 0.5}),
        "nb_adam: step decay needs schedule.steps > 0, got 0");
    BAD(nb_adam(.schedule = {NB_STEP_DECAY, 3, -0.5}),
        "nb_adam: step decay needs a positive schedule.rate (gamma), got -0.5");
    BAD(nb_rmsprop(.schedule = {.rate = 0.5}), "nb_rmsprop: schedule.steps/rate are set");
    /* and the values at the edges are fine */
    nb_optimizer *ok[] = {nb_sgd(.momentum = 0.999),
                          nb_adam(.betas = {0.01, 0.9999}),
                          nb_adam(.betas = {0.0, 0.999}),
                          nb_adamw(.betas = {NB_ZERO, NB_ZERO}),
                          nb_sgd(.momentum = NB_ZERO, .clipnorm = NB_ZERO),
                          nb_adagrad(.eps = 1e-300),
                          nb_adam(.schedule = {NB_COSINE_DECAY, 1, 1})};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_non_null(ok[i]);
        nb_optimizer_free(ok[i]);
    }
}

static void test_step_errors(void **state)
{
    (void)state;
    nb_tensor *a = nb_param(vec(NB_F64, N, P0)), *b = nb_param(vec(NB_F64, N, P0));
    nb_tensor *c = vec(NB_F64, N, COEF);
    nb_optimizer *opt = nb_adam(.lr = 0.1);
    assert_non_null(opt);
    nb_clear_error();

    /* NULLs and accessors */
    assert_int_equal(nb_optimizer_step(NULL, 1, &a), -1);
    assert_msg("nb_optimizer_step: optimizer is NULL");
    assert_int_equal(nb_optimizer_steps(NULL), -1);
    assert_true(isnan(nb_optimizer_lr(NULL)));
    assert_null(nb_optimizer_name(NULL));
    nb_optimizer_free(NULL);

    /* no graph: refused, and the parameter list is not fixed by the failure */
    assert_null(nb_graph_current());
    assert_int_equal(nb_optimizer_step(opt, 2, (nb_tensor *[]){a, b}), -1);
    assert_msg("nb_optimizer_step: no current graph");
    assert_int_equal(nb_optimizer_steps(opt), 0);

    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_optimizer_step(opt, 1, NULL), -1);
    assert_msg("nb_optimizer_step: params is NULL");
    assert_int_equal(nb_optimizer_step(opt, -1, &a), -1);
    assert_msg("nb_optimizer_step: negative parameter count");
    assert_int_equal(nb_optimizer_step(opt, 2, (nb_tensor *[]){a, NULL}), -1);
    assert_msg("nb_optimizer_step: params[1] is NULL");
    assert_int_equal(nb_optimizer_step(opt, 2, (nb_tensor *[]){a, a}), -1);
    assert_msg("nb_optimizer_step: params[0] and params[1] are the same tensor");
    nb_tensor *tmp = nb_mul(a, c);
    assert_int_equal(nb_optimizer_step(opt, 1, &tmp), -1);
    assert_msg("nb_optimizer_step: params[0] (3,) is an op's result in a graph");
    nb_graph_reset(g);
    assert_int_equal(nb_optimizer_steps(opt), 0);

    /* a parameter without a gradient is left alone but belongs to the list */
    nb_tensor *ab[2] = {a, b};
    assert_int_equal(nb_backward(nb_sum(nb_mul(c, a))), 0);
    assert_null(nb_grad_of(b));
    assert_int_equal(nb_optimizer_step(opt, 2, ab), 0);
    assert_int_equal(nb_optimizer_steps(opt), 1);
    for (int i = 0; i < N; i++) {
        assert_true(at(b, i) == P0[i]);
        /* Adam's first step is lr * sign(g) up to eps */
        assert_float_equal(at(a, i), P0[i] - 0.1, 1e-5);
    }
    nb_graph_reset(g);

    /* the list is fixed now */
    assert_int_equal(nb_optimizer_step(opt, 1, ab), -1);
    assert_msg("nb_optimizer_step: the parameter list changed: the first step had 2 "
               "parameters, this one has 1");
    assert_int_equal(nb_optimizer_step(opt, 2, (nb_tensor *[]){b, a}), -1);
    assert_msg("nb_optimizer_step: the parameter list changed: params[0] is not the tensor");
    nb_tensor *other = nb_param(vec(NB_F64, N, P0));
    assert_int_equal(nb_optimizer_step(opt, 2, (nb_tensor *[]){a, other}), -1);
    assert_msg("nb_optimizer_step: the parameter list changed: params[1]");
    assert_int_equal(nb_optimizer_steps(opt), 1);
    assert_int_equal(nb_optimizer_step(opt, 2, ab), 0); /* the same list still works */
    assert_int_equal(nb_optimizer_steps(opt), 2);

    /* recording is restored, on and off */
    assert_true(nb_is_grad_enabled());
    nb_set_grad_enabled(false);
    assert_int_equal(nb_optimizer_step(opt, 2, ab), 0);
    assert_false(nb_is_grad_enabled());
    nb_set_grad_enabled(true);
    /* and the update recorded nothing */
    assert_int_equal(nb_graph_nodes(g), 0);

    nb_graph_free(g);
    nb_optimizer_free(opt);
    nb_free(a);
    nb_free(b);
    nb_free(c);
    nb_free(other);
}

/* ---- end to end ---------------------------------------------------------------- */

static void test_adam_minimises_quadratic(void **state)
{
    (void)state;
    /* loss = sum(w * (p - target)^2), badly scaled on purpose */
    const double t0[4] = {3, -1, 0.5, 10}, w0[4] = {1, 100, 0.01, 5};
    nb_tensor *p = nb_param(nb_zeros(NB_F64, NB_SHAPE(4)));
    nb_tensor *target = vec(NB_F64, 4, t0), *w = vec(NB_F64, 4, w0);
    nb_optimizer *opt = nb_adam(.lr = 0.1, .schedule = {NB_COSINE_DECAY, 3000, 0});
    nb_graph *g = nb_graph_new();
    double loss = INFINITY;
    for (int s = 0; s < 3000 && loss >= 1e-6; s++) {
        nb_zero_grad(p);
        nb_tensor *l = nb_sum(nb_mul(w, nb_square(nb_sub(p, target))));
        assert_int_equal(nb_backward(l), 0);
        loss = nb_item(l);
        assert_int_equal(nb_optimizer_step(opt, 1, &p), 0);
        nb_graph_reset(g);
    }
    if (!(loss < 1e-6))
        fail_msg("Adam left the loss at %g after %lld steps", loss,
                 (long long)nb_optimizer_steps(opt));
    nb_graph_free(g);
    nb_optimizer_free(opt);
    nb_free(p);
    nb_free(target);
    nb_free(w);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pinned_f64, cleanup),
        cmocka_unit_test_teardown(test_pinned_f32, cleanup),
        cmocka_unit_test_teardown(test_defaults_and_names, cleanup),
        cmocka_unit_test_teardown(test_keras_parity, cleanup),
        cmocka_unit_test_teardown(test_adam_beta1_zero_by_hand, cleanup),
        cmocka_unit_test_teardown(test_no_allocations_after_first_step, cleanup),
        cmocka_unit_test_teardown(test_bad_hyperparameters, cleanup),
        cmocka_unit_test_teardown(test_step_errors, cleanup),
        cmocka_unit_test_teardown(test_adam_minimises_quadratic, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
