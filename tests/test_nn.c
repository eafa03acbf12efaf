/* Activations (src/nn/activations.c) and the erf op under them: known
 * values in f32 and f64, exact derivatives at the kinks, gradient checks
 * (first and second order) of every activation, no NaN or inf at extreme
 * inputs in values and gradients, and errors that name the function.
 * Losses and metrics are in test_losses.c. */
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

#include "nn_testing.h"


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

/* leaky_relu'(0) is alpha, as in PyTorch (leaky_relu_backward: x > 0 ? dy :
 * dy * slope) and Keras/TensorFlow (LeakyReluGrad: the same test), not the
 * (1 + alpha) / 2 a tie in maximum(x, alpha x) would give. In f64, at 0, at
 * negative and at positive x, through nb_leaky_relu and nb_activate. */
static void test_leaky_relu_at_zero(void **state)
{
    (void)state;
    nb_tensor *x = nb_set_requires_grad(T(NB_F64, NB_SHAPE(5), V(0, -2, 3, -1e-300, 1e-300)), true);
    const double alphas[] = {0.1, 0.2, 0, 1, 1.5};
    double g[5];
    for (int k = 0; k < 5; k++) {
        double a = alphas[k];
        nb_tensor *y = nb_leaky_relu(x, a);
        expect(y, NB_SHAPE(5), V(0, -2 * a, 3, -1e-300 * a, 1e-300), 0);
        grad_into(y, x, g);
        if (g[0] != a)
            fail_msg("leaky_relu(alpha %g)'(0) = %.17g, want alpha", a, g[0]);
        assert_true(g[1] == a && g[3] == a); /* negative x */
        assert_true(g[2] == 1 && g[4] == 1); /* positive x */
    }
    /* NB_LEAKY_RELU is alpha 0.2 (Keras's default negative_slope). */
    grad_into(nb_activate(x, NB_LEAKY_RELU), x, g);
    assert_true(g[0] == 0.2 && g[1] == 0.2 && g[2] == 1);
    /* The second derivative is 0 everywhere, 0 included. */
    nb_tensor *g1 = NULL;
    assert_int_equal(nb_grad(nb_sum(nb_leaky_relu(x, 0.1)), .n = 1, .inputs = &x, .grads = &g1,
                             .create_graph = true),
                     0);
    nb_tensor *g2 = NULL;
    if (nb_requires_grad(g1)) {
        assert_int_equal(nb_grad(nb_sum(g1), .n = 1, .inputs = &x, .grads = &g2,
                                 .allow_unused = true),
                         0);
        if (g2)
            expect(g2, NB_SHAPE(5), V(0, 0, 0, 0, 0), 0);
    }
    release();
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

/* ---- errors ---- */

static void test_activation_errors(void **state)
{
    (void)state;
    nb_tensor *a = Z(NB_F32, NB_SHAPE(32, 10));
    nb_tensor *b = Z(NB_F32, NB_SHAPE(32, 1));
    nb_tensor *s = T(NB_F32, 0, NULL, V(0.5));

    /* softmax variants need the last axis. */
    FAILS(nb_activate(s, NB_SOFTMAX), "nb_activate", "softmax", "()");
    FAILS(nb_activate(s, NB_LOG_SOFTMAX), "nb_activate", "log_softmax");

    /* Parameters. */
    FAILS(nb_leaky_relu(a, NAN), "nb_leaky_relu", "alpha", "nan");
    FAILS(nb_leaky_relu(a, INFINITY), "nb_leaky_relu", "alpha", "inf");
    FAILS(nb_elu(a, NAN), "nb_elu", "alpha");
    FAILS(nb_elu(a, INFINITY), "nb_elu", "alpha");
    FAILS(nb_activate(a, (nb_activation)99), "nb_activate", "99");

    /* NULL inputs, each naming the function. */
    FAILS(nb_erf(NULL), "nb_erf");
    FAILS(nb_leaky_relu(NULL, 0.2), "nb_leaky_relu", "NULL");
    FAILS(nb_elu(NULL, 1), "nb_elu", "NULL");
    FAILS(nb_gelu(NULL), "nb_gelu", "NULL");
    FAILS(nb_softplus(NULL), "nb_softplus", "NULL");
    FAILS(nb_activate(NULL, NB_RELU), "nb_activate", "NULL");
    FAILS(nb_activate(NULL, NB_LINEAR), "nb_activate", "NULL");

    /* A NULL from an earlier failure keeps the first error. */
    FAILS(nb_gelu(nb_matmul(a, a)), "nb_matmul");
    FAILS(nb_leaky_relu(nb_matmul(a, a), 0.1), "nb_matmul", "(32,10)");
    (void)b;
    release();

    /* Without a current graph. */
    nb_graph *g = nb_graph_current();
    nb_graph_free(g);
    assert_null(nb_graph_current());
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(2, 3));
    FAILS(nb_gelu(x), "nb_gelu", "graph");
    FAILS(nb_leaky_relu(x, 0.1), "nb_leaky_relu", "graph");
    FAILS(nb_activate(x, NB_TANH), "nb_activate", "graph");
    nb_free(x);
    nb_graph_new();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_erf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_derivatives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leaky_relu_at_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_gradcheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_extremes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_activation_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
