/* What a failing gradient check says: a catalogue of deliberately wrong user
 * ops, one per kind of mistake, each of whose reports must name the right
 * problem (verdict, pattern, the message's explanation) and the right
 * element; vacuous checks and kinks told apart from wrong gradients; the
 * second-order check naming a backward computed outside the graph; per-op
 * tolerances, seeds, the cost of the default check, the at-kink check. */
#define _POSIX_C_SOURCE 200809L /* open_memstream (testing.h's report_text) */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"
#include "testing.h"

NB_UNARY_KERNELS(square, u *u)
NB_UNARY_KERNELS(myrelu, u < 0 ? 0 : u)
NB_BINARY_KERNELS(times, u *v)
NB_BINARY_KERNELS(plus, u + v)

/* ---- the wrong ops ---- */

/* y = x^2 with dx = dy * k x: k = 4 counts a term twice, 1 halves, -2 flips
 * the sign, 2.002 is a slightly wrong constant. */
#define SQUARE_TIMES(id, k)                                                  \
    static void id##_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,   \
                                nb_tensor *const x[], int n, const void *attr) \
    {                                                                          \
        (void)y, (void)n, (void)attr;                                          \
        dx[0] = nb_mul(dy, nb_mul(x[0], nb_scalar_like(x[0], k)));             \
    }                                                                          \
    static const nb_op id = {.name = #id, .arity = 1, .shape = nb_shape_same, \
                               .forward = NB_KERNELS(square),                 \
                               .backward = id##_backward};
SQUARE_TIMES(twice, 4.0)
SQUARE_TIMES(half, 1.0)
SQUARE_TIMES(flipped, -2.0)
SQUARE_TIMES(nearly, 2.004)

/* The same slightly wrong op, declaring a looser tolerance for f64. */
static const nb_op nearly_loose = {.name = "nearly_loose", .arity = 1, .shape = nb_shape_same,
                                   .forward = NB_KERNELS(square), .backward = nearly_backward,
                                   .tolerance = {[NB_F64] = {.rtol = 1e-2}}};

/* y = x^2, wrong in element (1,2): 3x there instead of 2x. */
static void one_wrong_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                               nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *c = nb_full_like(x[0], 2.0);
    if (c && nb_ndim(c) == 2 && nb_dim(c, 0) > 1 && nb_dim(c, 1) > 2)
        nb_set(c, NB_AT(1, 2), 3.0);
    dx[0] = nb_mul(dy, nb_mul(x[0], c));
}
static const nb_op one_wrong = {.name = "one_wrong", .arity = 1, .shape = nb_shape_same,
                                .forward = NB_KERNELS(square), .backward = one_wrong_backward};

/* y = x^2 with its gradient transposed (x square). */
static void transposed_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_transpose(nb_mul(dy, nb_mul(x[0], nb_scalar_like(x[0], 2.0))), 0, 1);
}
static const nb_op transposed = {.name = "transposed", .arity = 1, .shape = nb_shape_same,
                                 .forward = NB_KERNELS(square),
                                 .backward = transposed_backward};

/* y = x^2 with dx = dy * 2x * (x / x): NaN where x = 0. */
static void nan_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *one = nb_div(x[0], x[0]);
    dx[0] = nb_mul(dy, nb_mul(nb_mul(x[0], nb_scalar_like(x[0], 2.0)), one));
}
static const nb_op nan_op = {.name = "nan_op", .arity = 1, .shape = nb_shape_same,
                             .forward = NB_KERNELS(square), .backward = nan_backward};

/* y = a * b (same shapes) with the two gradients swapped. */
static void swapped_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, x[0]);
    dx[1] = nb_mul(dy, x[1]);
}
static const nb_op swapped = {.name = "swapped", .arity = 2, .shape = nb_shape_broadcast,
                              .forward = NB_KERNELS(times), .backward = swapped_backward};

/* y = a * b with b's gradient zeroed (a right). */
static void zeroed_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                            nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, x[1]);
    dx[1] = nb_mul(dy, nb_scalar_like(dy, 0.0));
}
static const nb_op zeroed = {.name = "zeroed", .arity = 2, .shape = nb_shape_broadcast,
                             .forward = NB_KERNELS(times), .backward = zeroed_backward};

/* y = a + b with b broadcast along the rows, not declared .broadcast: the
 * backward reduces b's gradient itself and keeps only the first row. */
static void first_row_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                               nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = dy;
    dx[1] = nb_reshape(nb_slice(dy, 0, 0, 1, 1), nb_ndim(x[1]), nb_shape(x[1]));
}
static const nb_op first_row = {.name = "first_row", .arity = 2, .shape = nb_shape_broadcast,
                                .forward = NB_KERNELS(plus), .backward = first_row_backward};

/* relu without a kink declaration. */
static void myrelu_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_gt(x[0], nb_scalar_like(x[0], 0.0)));
}
static const nb_op myrelu = {.name = "myrelu", .arity = 1, .shape = nb_shape_same,
                             .forward = NB_KERNELS(myrelu), .backward = myrelu_backward};

/* relu declaring its kink with the wrong subgradient (the backward gives
 * the left derivative, 0; it declares the mean, 1/2). */
static double mean_kink(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                        nb_kink *k)
{
    (void)n, (void)i, (void)attr;
    *k = (nb_kink){.at = 0, .side = NB_SUBGRADIENT_MEAN};
    return fabs(nb_get_flat(x[0], j));
}
static const nb_op relu_says_mean = {.name = "relu_says_mean", .arity = 1,
                                     .shape = nb_shape_same, .forward = NB_KERNELS(myrelu),
                                     .backward = myrelu_backward, .kink = mean_kink};

/* y = x^2 whose backward fills dx in a loop: right values, outside the graph. */
static void loop_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *g = nb_zeros_like(x[0]);
    double *d = g && nb_dtype_of(g) == NB_F64 ? nb_data(g) : NULL;
    for (int64_t j = 0; d && j < nb_numel(g); j++)
        d[j] = 2 * nb_get_flat(x[0], j) * nb_get_flat(dy, j);
    dx[0] = g;
}
static const nb_op loop_op = {.name = "loop_op", .arity = 1, .shape = nb_shape_same,
                              .forward = NB_KERNELS(square), .backward = loop_backward};

static nb_tensor *apply_op(nb_tensor *const x[], int n, void *ctx)
{
    return nb_apply(ctx, x, n, NULL);
}

/* A leaf with these values, requiring grad. */
static nb_tensor *leaf(int ndim, const int64_t *shape, const double *v)
{
    return nb_set_requires_grad(nb_from_array(NB_F64, ndim, shape, v), true);
}

static nb_tensor *input34(void)
{
    double d[12];
    for (int i = 0; i < 12; i++)
        d[i] = 0.3 + 0.1 * i * (i % 2 ? 1 : -1);
    return leaf(NB_SHAPE(3, 4), d);
}

/* ---- wrong gradients: the pattern and what it means ---- */

static void expect_factor(const nb_op *op, double factor, nb_check_pattern p, const char *says)
{
    nb_tensor *x = input34();
    nb_check_report r;
    assert_false(nb_gradcheck(apply_op, (void *)op, 1, &x, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_FAILED);
    assert_int_equal(r.input[0].verdict, NB_CHECK_FAILED);
    assert_int_equal(r.input[0].pattern, p);
    if (p == NB_PATTERN_SCALED)
        assert_true(fabs(r.input[0].factor - factor) < 1e-6);
    if (!strstr(r.message, says))
        fail_msg("%s: message '%s' does not say '%s'", op->name, r.message, says);
    nb_free(x);
}

static void test_constant_factors(void **state)
{
    (void)state;
    expect_factor(&twice, 2, NB_PATTERN_SCALED, "2x the numeric one everywhere: the backward "
                                                "counts a term twice");
    expect_factor(&half, 0.5, NB_PATTERN_SCALED, "half the numeric one everywhere: a factor 2 "
                                                 "is missing");
    expect_factor(&flipped, -1, NB_PATTERN_SCALED, "wrong sign everywhere");
    expect_factor(&nearly, 1.002, NB_PATTERN_SCALED, "1.002 times the numeric one everywhere");
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_one_element(void **state)
{
    (void)state;
    nb_tensor *x = input34();
    nb_check_report r;
    assert_false(nb_gradcheck(apply_op, (void *)&one_wrong, 1, &x,
                              &(nb_check_opts){.keep_jacobians = true}, &r));
    const nb_check_input *in = &r.input[0];
    assert_int_equal(in->pattern, NB_PATTERN_FEW);
    assert_int_equal(in->worst, 6);
    assert_int_equal(in->worst_index[0], 1);
    assert_int_equal(in->worst_index[1], 2);
    assert_int_equal(in->worst_out, 6); /* elementwise: the same position of the output */
    assert_int_equal(in->worst_out_index[0], 1);
    assert_int_equal(in->worst_out_index[1], 2);
    assert_true(fabs(in->analytic - 3 * nb_get_flat(x, 6)) < 1e-12); /* a row of J: no u */
    assert_true(fabs(in->numeric - 2 * nb_get_flat(x, 6)) < 1e-8);
    assert_non_null(strstr(r.message, "Only 1 of the 12 elements of input 1 are wrong (the "
                                      "worst at (1,2)): an indexing mistake"));
    /* The whole Jacobians are kept: 12 x 12, diagonal, one entry off. */
    assert_int_equal(in->rows, 12);
    assert_int_equal(in->cols, 12);
    int off = 0;
    for (int e = 0; e < 144; e++) {
        double a = in->jacobian_analytic[e], n = in->jacobian_numeric[e];
        if (e / 12 != e % 12)
            assert_true(a == 0 && fabs(n) < 1e-9);
        off += fabs(a - n) > 1e-6;
    }
    assert_int_equal(off, 1);
    nb_check_report_free(&r);
    nb_check_report_free(&r); /* twice is safe */
    assert_null(r.input[0].jacobian_analytic);
    /* Without keep_jacobians, the same diagnosis and nothing kept. */
    assert_false(nb_gradcheck(apply_op, (void *)&one_wrong, 1, &x, NULL, &r));
    assert_int_equal(r.input[0].pattern, NB_PATTERN_FEW);
    assert_int_equal(r.input[0].worst, 6);
    assert_null(r.input[0].jacobian_analytic);
    assert_int_equal(r.input[0].rows, 0);
    nb_free(x);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_transposed_and_nan(void **state)
{
    (void)state;
    double v[9] = {0.3, -0.5, 0.7, 0.2, 0.9, -0.4, 0.6, -0.8, 0.1};
    nb_tensor *x = leaf(NB_SHAPE(3, 3), v);
    nb_check_report r;
    assert_false(nb_gradcheck(apply_op, (void *)&transposed, 1, &x, NULL, &r));
    assert_int_equal(r.input[0].pattern, NB_PATTERN_TRANSPOSED);
    assert_non_null(strstr(r.message, "last two dimensions swapped: the backward transposes"));
    nb_free(x);

    double w[12] = {0.3, -0.5, 0.7, 0.2, 0.9, 0.0, 0.6, -0.8, 0.1, 0.4, -0.2, 0.5};
    x = leaf(NB_SHAPE(3, 4), w);
    assert_false(nb_gradcheck(apply_op, (void *)&nan_op, 1, &x, NULL, &r));
    assert_int_equal(r.input[0].pattern, NB_PATTERN_NAN);
    assert_true(isnan(r.input[0].max_abs_err));
    assert_int_equal(r.input[0].worst, 5);
    assert_non_null(strstr(r.message, "at element (1,1) where the numeric one is 0"));
    assert_non_null(strstr(r.message, "a division by zero"));
    nb_free(x);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_which_input(void **state)
{
    (void)state;
    double bv12[12];
    for (int i = 0; i < 12; i++)
        bv12[i] = 1.1 - 0.15 * i;
    nb_tensor *a = input34(), *b = leaf(NB_SHAPE(3, 4), bv12);
    nb_check_report r;
    /* Swapped: each input's gradient is the other's numeric one. */
    assert_false(nb_gradcheck(apply_op, (void *)&swapped, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_int_equal(r.input[0].pattern, NB_PATTERN_SWAPPED);
    assert_int_equal(r.input[1].pattern, NB_PATTERN_SWAPPED);
    assert_true(r.input[0].factor == 1 && r.input[1].factor == 0);
    assert_non_null(strstr(r.message, "The gradient of input 1 is the numeric gradient of "
                                      "input 2: the backward swaps their gradients"));
    /* Zeroed in input 2 only: that input, and only it, is named. */
    assert_false(nb_gradcheck(apply_op, (void *)&zeroed, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_int_equal(r.input[0].verdict, NB_CHECK_PASSED);
    assert_int_equal(r.input[1].verdict, NB_CHECK_FAILED);
    assert_int_equal(r.input[1].pattern, NB_PATTERN_ZERO);
    assert_non_null(strstr(r.message, "The gradient of input 2 is zero everywhere but the "
                                      "numeric one is not"));
    assert_non_null(strstr(r.message, "Only input 2 is wrong; the other inputs pass."));
    nb_free(a);
    nb_free(b);

    /* The broadcast input's gradient counts only the first row. */
    double bv[4] = {0.5, -0.25, 0.75, 1.0};
    a = input34();
    b = leaf(NB_SHAPE(4), bv);
    assert_false(nb_gradcheck(apply_op, (void *)&first_row, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_int_equal(r.input[0].verdict, NB_CHECK_PASSED);
    assert_int_equal(r.input[1].pattern, NB_PATTERN_BROADCAST);
    assert_true(r.input[1].worst_out_index[0] > 0); /* a repeated row */
    assert_non_null(strstr(r.message, "Only the broadcast positions of input 2 are wrong"));
    nb_free(a);
    nb_free(b);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- vacuous checks and kinks ---- */

static nb_tensor *f_relu(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_relu(x[0]);
}

static nb_tensor *f_tanh_of_first(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_tanh(x[0]);
}

static nb_tensor *f_detached(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_tanh(nb_detach(x[0]));
}

static void test_vacuous(void **state)
{
    (void)state;
    nb_check_report r;
    /* All-zero gradients: relu of negative numbers. */
    double neg[4] = {-0.5, -0.3, -0.9, -0.2};
    nb_tensor *x = leaf(NB_SHAPE(4), neg);
    assert_false(nb_gradcheck(f_relu, NULL, 1, &x, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_VACUOUS);
    assert_non_null(strstr(r.message, "gradients are all zero here, analytic and numeric"));
    char *t = report_text(&r);
    assert_non_null(strstr(t, "gradcheck: VACUOUS (seed 0"));
    free(t);
    nb_free(x);

    /* An input the output does not depend on. */
    nb_tensor *a = input34(), *b = input34();
    assert_false(nb_gradcheck(f_tanh_of_first, NULL, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_VACUOUS);
    assert_int_equal(r.input[0].verdict, NB_CHECK_PASSED);
    assert_int_equal(r.input[1].verdict, NB_CHECK_VACUOUS);
    assert_non_null(strstr(r.message, "the output does not depend on input 2"));

    /* Depending on it outside the graph is a wrong (zero) gradient, said so. */
    assert_false(nb_gradcheck(f_detached, NULL, 1, &a, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_FAILED);
    assert_int_equal(r.input[0].pattern, NB_PATTERN_ZERO);
    assert_non_null(strstr(r.message, "The output has no path to input 1 in the graph, yet "
                                      "depends on it"));

    /* An input on a declared kink: relu at 0. */
    double z[4] = {0.5, 0.0, -0.9, 0.2};
    x = leaf(NB_SHAPE(4), z);
    assert_false(nb_gradcheck(f_relu, NULL, 1, &x, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_VACUOUS);
    assert_non_null(strstr(r.message, "Element (1,) of input 1 of nb_relu is 0 from a point "
                                      "where it is not differentiable (at 0)"));
    nb_free(x);
    nb_free(a);
    nb_free(b);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_kink_detected(void **state)
{
    (void)state;
    nb_check_report r;
    /* An undeclared kink within the step: one-sided differences disagree. */
    double z[4] = {0.5, 3e-7, -0.9, 0.2};
    nb_tensor *x = leaf(NB_SHAPE(4), z);
    assert_false(nb_gradcheck(apply_op, (void *)&myrelu, 1, &x, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_KINK);
    assert_int_equal(r.input[0].verdict, NB_CHECK_KINK);
    assert_non_null(strstr(r.message, "input 1 element (1,) (value 3e-07) is at a "
                                      "non-differentiable point"));
    assert_non_null(strstr(r.message, "not a wrong gradient"));
    /* Exactly at it too; and a smooth op with a large second derivative at
     * the same spot is not mistaken for one. */
    z[1] = 0;
    nb_free(x);
    x = leaf(NB_SHAPE(4), z);
    assert_false(nb_gradcheck(apply_op, (void *)&myrelu, 1, &x, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_KINK);
    assert_false(nb_gradcheck(apply_op, (void *)&twice, 1, &x, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_FAILED);
    /* A kink together with a real error: the error is what is reported. */
    nb_free(x);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_at_kinks(void **state)
{
    (void)state;
    nb_check_report r;
    nb_check_opts at = {.at_kinks = true};
    const nb_op *relu = nb_op_find("relu");
    assert_true(nb_check_example(relu, &relu->examples[0], 1, &at, &r));
    assert_non_null(strstr(r.message, "at kinks: 12 elements on kinks of relu match"));
    /* The wrong declaration is caught there, with the element. */
    nb_op_example ex = {.n = 1, .ndim = {1}, .shape = {{5}}};
    assert_false(nb_check_example(&relu_says_mean, &ex, 1, &at, &r));
    assert_int_equal(r.verdict, NB_CHECK_FAILED);
    assert_true(fabs(r.input[0].analytic) < 1e-12);
    assert_non_null(strstr(r.message, "declares the mean one-sided derivative"));
    /* Away from the kinks (the default) it passes: the draw avoids them. */
    assert_true(nb_check_example(&relu_says_mean, &ex, 1, NULL, &r));
    /* An op without kinks has nothing to check there. */
    assert_false(nb_check_example(&twice, &ex, 1, &at, &r));
    assert_int_equal(r.verdict, NB_CHECK_VACUOUS);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- second order ---- */

static void test_second_order_outside_graph(void **state)
{
    (void)state;
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{3, 4}}};
    nb_check_report r;
    assert_true(nb_check_example(&loop_op, &ex, 1, NULL, &r)); /* first order is right */
    assert_false(nb_check_example(&loop_op, &ex, 2, NULL, &r));
    assert_int_equal(r.verdict, NB_CHECK_FAILED);
    assert_non_null(strstr(r.message, "The backward of loop_op gave a gradient that is not "
                                      "part of the graph"));
    assert_non_null(strstr(r.message, "in a kernel loop or from a detached tensor"));
    /* A correct op says nothing of the kind. */
    const nb_op *tanh_op = nb_op_find("tanh");
    assert_true(nb_check_example(tanh_op, &tanh_op->examples[0], 2, NULL, &r));
    assert_null(strstr(r.message, "not part of the graph"));
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- tolerances, seeds, cost ---- */

static void test_tolerances(void **state)
{
    (void)state;
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{3, 4}}};
    nb_check_report r;
    assert_false(nb_check_example(&nearly, &ex, 1, NULL, &r));
    assert_true(r.rtol == 1e-3);
    /* The op's declaration loosens it for f64 ... */
    assert_true(nb_check_example(&nearly_loose, &ex, 1, NULL, &r));
    assert_true(r.rtol == 1e-2 && r.atol == 1e-5 && r.eps == 1e-6);
    /* ... and the caller's options win over the op's. */
    assert_false(nb_check_example(&nearly_loose, &ex, 1, &(nb_check_opts){.rtol = 1e-3}, &r));
    assert_true(r.rtol == 1e-3);
    /* f32 keeps its own defaults (the op declares only f64). */
    assert_true(nb_check_example(&nearly_loose, &ex, 1, &(nb_check_opts){.dtype = NB_F32}, &r));
    assert_true(r.rtol == 1e-2 && r.atol == 1e-3);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_seeds(void **state)
{
    (void)state;
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{3, 4}}};
    nb_check_report a, b, c;
    nb_check_opts s5 = {.seed = 5}, s6 = {.seed = 6};
    assert_false(nb_check_example(&one_wrong, &ex, 1, &s5, &a));
    assert_false(nb_check_example(&one_wrong, &ex, 1, &s5, &b));
    assert_false(nb_check_example(&one_wrong, &ex, 1, &s6, &c));
    assert_true(a.seed == 5 && c.seed == 6);
    assert_true(a.input[0].analytic == b.input[0].analytic); /* replayed bit for bit */
    assert_true(a.input[0].numeric == b.input[0].numeric);
    assert_true(a.input[0].analytic != c.input[0].analytic); /* other inputs drawn */
    assert_int_equal(c.input[0].worst, 6);                    /* the same element found */
    char *t = report_text(&c);
    assert_non_null(strstr(t, "(seed 6"));
    free(t);
    /* A draw that makes the check vacuous is replaced by the next seed's,
     * and the report names the seed used: with seed 16 the broadcast
     * layout repeats four negative values of relu's first example. */
    const nb_op *relu = nb_op_find("relu");
    nb_check_opts bc = {.seed = 16, .layout = NB_LAYOUT_BROADCAST};
    assert_true(nb_check_example(relu, &relu->examples[0], 1, &bc, &a));
    assert_true(a.seed == 17);
    nb_check_report first;
    assert_true(nb_check_example(relu, &relu->examples[0], 1, &(nb_check_opts){.seed = 17,
                                 .layout = NB_LAYOUT_BROADCAST}, &first));
    assert_true(first.input[0].analytic == a.input[0].analytic); /* 17 replays it */
    assert_int_equal(nb_live_tensors(), 0);
}

static int calls;
static nb_tensor *f_counted(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    calls++;
    return nb_tanh(x[0]);
}

static void test_cost(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(3);
    nb_tensor *x = nb_set_requires_grad(nb_rand(NB_F64, NB_SHAPE(100, 100), &rng), true);
    nb_check_report r;
    calls = 0;
    assert_true(nb_gradcheck(f_counted, NULL, 1, &x, NULL, &r));
    /* The output's shape, one backward, two directions of two evaluations. */
    assert_int_equal(calls, 6);
    assert_int_equal(r.input[0].directions, 2);
    assert_int_equal(r.input[0].worst, -1);
    /* The whole Jacobian costs two evaluations per element (and a backward
     * per output element). */
    nb_tensor *small = nb_set_requires_grad(nb_rand(NB_F64, NB_SHAPE(5, 4), &rng), true);
    calls = 0;
    assert_true(nb_gradcheck(f_counted, NULL, 1, &small, &(nb_check_opts){.full = true}, &r));
    assert_int_equal(calls, 1 + 1 + 1 + 2 * 20);
    assert_true(r.input[0].worst >= 0);
    nb_free(x);
    nb_free(small);
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_factors),
        cmocka_unit_test(test_one_element),
        cmocka_unit_test(test_transposed_and_nan),
        cmocka_unit_test(test_which_input),
        cmocka_unit_test(test_vacuous),
        cmocka_unit_test(test_kink_detected),
        cmocka_unit_test(test_at_kinks),
        cmocka_unit_test(test_second_order_outside_graph),
        cmocka_unit_test(test_tolerances),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
