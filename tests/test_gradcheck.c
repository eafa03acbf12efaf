/* Gradient checks: every built-in op on every one of its examples (f64 first
 * and second order, f32 first order), then gradcheck itself: it must find a
 * wrong backward and say where, pass correct user ops and compositions, and
 * refuse bad input with a message. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

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

/* The report as text (for print_error and for checking the format). */
static char *report_text(const nb_check_report *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    nb_check_report_print(r, f);
    fclose(f);
    return buf;
}

static void print_report(const char *what, const nb_check_report *r)
{
    char *t = report_text(r);
    print_error("%s\n%s", what, t);
    free(t);
}

/* ---- the table: every built-in op, every example ---- */

static void test_builtin_op(void **state)
{
    const nb_op *op = *state;
    if (!op->shape || !op->forward)
        fail_msg("%s: not implemented (no shape rule or forward)", op->name);
    int examples = 0;
    for (const nb_op_example *e = op->examples; e && e->n > 0; e++)
        examples++;
    if (op->backward && examples == 0)
        fail_msg("%s: differentiable but has no gradcheck examples", op->name);

    int failures = 0;
    for (int e = 0; e < examples; e++) {
        const nb_op_example *ex = &op->examples[e];
        struct {
            int order;
            nb_dtype dtype;
        } runs[] = {{1, NB_F64}, {2, NB_F64}, {1, NB_F32}};
        for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
            nb_check_report r;
            bool ok = nb_check_example(op, ex, runs[k].order,
                                       &(nb_check_opts){.dtype = runs[k].dtype}, &r);
            assert_true(ok == r.ok);
            if (!ok) {
                char what[128];
                snprintf(what, sizeof what, "%s example %d, order %d, %s:", op->name, e + 1,
                         runs[k].order, nb_dtype_name(runs[k].dtype));
                print_report(what, &r);
                failures++;
            }
        }
    }
    if (failures)
        fail_msg("%s: %d failing checks", op->name, failures);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- user-defined ops ---- */

/* y = x^2 with a backward that is wrong in element (1,2) of a (3,4) input:
 * there it uses 3x instead of 2x, so analytic = 1.5 * numeric. */
static void square_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    for (int64_t i = 0; i < nb_numel(y); i++) {
        if (nb_dtype_of(y) == NB_F64) {
            double u = ((double *)nb_data(x[0]))[i];
            ((double *)nb_data(y))[i] = u * u;
        } else {
            float u = ((float *)nb_data(x[0]))[i];
            ((float *)nb_data(y))[i] = u * u;
        }
    }
}

static void square_bad_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *c = nb_full_like(x[0], 2.0);
    if (c && nb_ndim(c) == 2 && nb_dim(c, 0) > 1 && nb_dim(c, 1) > 2)
        nb_set(c, NB_AT(1, 2), 3.0);
    dx[0] = nb_mul(dy, nb_mul(x[0], c));
}

static const nb_op square_bad = {.name = "square_bad", .arity = 1, .shape = nb_shape_same,
                                 .forward = square_forward, .backward = square_bad_backward};

/* Wrong everywhere: dx = dy * 3x. */
static void square_3x_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                               nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(x[0], nb_scalar_like(x[0], 3.0)));
}
static const nb_op square_3x = {.name = "square_3x", .arity = 1, .shape = nb_shape_same,
                                .forward = square_forward, .backward = square_3x_backward};

/* Right to first order, but the backward goes through detach(x), so its own
 * gradient is missing: only gradgradcheck can see that. */
static void square_detached_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                     nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(nb_detach(x[0]), nb_scalar_like(x[0], 2.0)));
}
static const nb_op square_detached = {.name = "square_detached", .arity = 1,
                                      .shape = nb_shape_same, .forward = square_forward,
                                      .backward = square_detached_backward};

/* A correct user op: y = x^3, dx = dy * 3 x^2 (written with ops, so it is
 * twice differentiable). */
static void cube_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    for (int64_t i = 0; i < nb_numel(y); i++) {
        if (nb_dtype_of(y) == NB_F64) {
            double u = ((double *)nb_data(x[0]))[i];
            ((double *)nb_data(y))[i] = u * u * u;
        } else {
            float u = ((float *)nb_data(x[0]))[i];
            ((float *)nb_data(y))[i] = u * u * u;
        }
    }
}

static void cube_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(nb_scalar_like(x[0], 3.0), nb_square(x[0])));
}

static const nb_op cube = {.name = "cube", .arity = 1, .shape = nb_shape_same,
                           .forward = cube_forward, .backward = cube_backward};

/* A correct binary broadcasting user op: y = a * b + a. */
static void axpa_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    /* Reuse the library's kernels: y's values equal mul/add of the inputs. */
    nb_graph *g = nb_graph_new();
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *t = nb_add(nb_mul(x[0], x[1]), x[0]);
    nb_set_grad_enabled(prev);
    if (t) {
        double tmp;
        for (int64_t i = 0; i < nb_numel(y); i++) {
            tmp = nb_dtype_of(t) == NB_F64 ? ((double *)nb_data(t))[i]
                                           : (double)((float *)nb_data(t))[i];
            if (nb_dtype_of(y) == NB_F64)
                ((double *)nb_data(y))[i] = tmp;
            else
                ((float *)nb_data(y))[i] = (float)tmp;
        }
    }
    nb_graph_free(g);
}

static void axpa_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *a = x[0], *b = x[1];
    if (nb_requires_grad(a))
        dx[0] = nb_sum_to(nb_mul(dy, nb_add(b, nb_scalar_like(b, 1.0))), nb_ndim(a),
                          nb_shape(a));
    if (nb_requires_grad(b))
        dx[1] = nb_sum_to(nb_mul(dy, a), nb_ndim(b), nb_shape(b));
}

static const nb_op axpa = {.name = "axpa", .arity = 2, .shape = nb_shape_broadcast,
                           .forward = axpa_forward, .backward = axpa_backward};

static nb_tensor *apply_ctx_op(nb_tensor *const x[], int n, void *ctx)
{
    return nb_apply(ctx, x, n, NULL);
}

/* A (3,4) f64 input with known values, none near 0. */
static nb_tensor *input34(void)
{
    double d[12];
    for (int i = 0; i < 12; i++)
        d[i] = 0.3 + 0.1 * i * (i % 2 ? 1 : -1);
    return nb_set_requires_grad(nb_from_array(NB_F64, NB_SHAPE(3, 4), d), true);
}

static void test_wrong_element_found(void **state)
{
    (void)state;
    nb_tensor *x = input34();
    double before[12];
    memcpy(before, nb_data(x), sizeof before);
    nb_check_report r;
    assert_false(nb_gradcheck(apply_ctx_op, (void *)&square_bad, 1, &x, NULL, &r));
    assert_false(r.ok);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.order, 1);
    assert_string_equal(r.message, "");
    const nb_check_input *in = &r.input[0];
    assert_false(in->ok);
    assert_int_equal(in->worst, 1 * 4 + 2);
    assert_int_equal(in->worst_index[0], 1);
    assert_int_equal(in->worst_index[1], 2);
    assert_int_equal(in->worst_index[2], -1);
    /* analytic = v * 3x, numeric = v * 2x with |v| in [0.5, 1.5]. */
    double x12 = before[6];
    assert_true(fabs(in->analytic / in->numeric - 1.5) < 1e-6);
    assert_true(fabs(in->numeric) >= 0.5 * 2 * fabs(x12) - 1e-9);
    assert_true(fabs(in->numeric) <= 1.5 * 2 * fabs(x12) + 1e-9);
    assert_true(fabs(in->max_abs_err - fabs(in->analytic - in->numeric)) < 1e-12);
    assert_true(fabs(in->max_rel_err - 0.5) < 1e-6);
    /* The inputs are restored bit for bit. */
    assert_memory_equal(nb_data(x), before, sizeof before);

    char *t = report_text(&r);
    assert_non_null(strstr(t, "input 1: FAIL max abs"));
    assert_non_null(strstr(t, "at (1,2): analytic"));
    free(t);

    /* The same error is visible in f32, at f32 tolerances. */
    assert_false(nb_gradcheck(apply_ctx_op, (void *)&square_bad, 1, &x,
                              &(nb_check_opts){.dtype = NB_F32}, &r));
    assert_int_equal(r.input[0].worst, 6);
    assert_true(fabs(r.input[0].analytic / r.input[0].numeric - 1.5) < 1e-4);
    nb_free(x);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_wrong_everywhere(void **state)
{
    (void)state;
    nb_tensor *x = input34();
    nb_check_report r;
    assert_false(nb_gradcheck(apply_ctx_op, (void *)&square_3x, 1, &x, NULL, &r));
    const nb_check_input *in = &r.input[0];
    assert_true(in->worst >= 0 && in->worst < 12);
    assert_true(fabs(in->analytic / in->numeric - 1.5) < 1e-6);
    assert_true(fabs(in->max_rel_err - 0.5) < 1e-6);
    /* Also through nb_gradcheck_op, on random inputs. */
    assert_false(nb_gradcheck_op(&square_3x, NULL, NB_SHAPES({4, 3}), &r));
    assert_false(r.input[0].ok);
    nb_free(x);
}

static void test_gradgrad_catches_detached_backward(void **state)
{
    (void)state;
    nb_check_report r;
    /* First order is right... */
    assert_true(nb_gradcheck_op(&square_detached, NULL, NB_SHAPES({3, 4}), &r));
    /* ...but the backward has no gradient of its own. */
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{3, 4}}};
    assert_false(nb_check_example(&square_detached, &ex, 2, NULL, &r));
    assert_int_equal(r.order, 2);
    assert_int_equal(r.n, 2);
    assert_false(r.input[0].ok); /* d/dx wrong: missing 2 * dy * w */
    assert_true(r.input[1].ok);  /* d/dv is right */
    assert_true(fabs(r.input[0].analytic) < 1e-12);
    assert_true(fabs(r.input[0].numeric) > 0.1);
    /* Marked once differentiable, order 2 is skipped. */
    ex.once_differentiable = true;
    assert_true(nb_check_example(&square_detached, &ex, 2, NULL, &r));
    assert_string_equal(r.message, "once differentiable");
    /* The correct cube passes at second order. */
    ex.once_differentiable = false;
    assert_true(nb_check_example(&cube, &ex, 2, NULL, &r));
}

static void test_user_ops_pass(void **state)
{
    (void)state;
    nb_check_report r;
    bool ok = nb_gradcheck_op(&cube, NULL, NB_SHAPES({4, 3}), &r);
    if (!ok)
        print_report("cube:", &r);
    assert_true(ok);
    assert_int_equal(r.n, 1);
    assert_true(r.input[0].ok);
    assert_true(r.input[0].worst >= 0);
    assert_true(r.input[0].max_abs_err < 1e-6);

    ok = nb_gradcheck_op(&axpa, NULL, NB_SHAPES({4, 3}, {3}), &r);
    if (!ok)
        print_report("axpa:", &r);
    assert_true(ok);
    assert_int_equal(r.n, 2);
    assert_true(r.input[1].worst >= 0 && r.input[1].worst < 3);

    /* 0-d and 3-d shapes. */
    assert_true(nb_gradcheck_op(&axpa, NULL, NB_SHAPES({0}, {2, 1, 3}), &r));
    assert_int_equal(r.input[0].worst_index[0], -1); /* 0-d: () */

    /* f32 and second order through nb_check_example. */
    nb_op_example ex = {.n = 2, .ndim = {2, 1}, .shape = {{4, 3}, {3}}};
    assert_true(nb_check_example(&axpa, &ex, 1, &(nb_check_opts){.dtype = NB_F32}, &r));
    assert_true(nb_check_example(&axpa, &ex, 2, NULL, &r));
    assert_int_equal(r.n, 3);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- compositions ---- */

static nb_tensor *f_log_softmax(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_log_softmax(x[0], -1);
}

static nb_tensor *f_logsumexp(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_logsumexp(x[0], .axes = NB_AXES(0));
}

static nb_tensor *f_var(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_var(x[0], .axes = NB_AXES(1), .keepdims = true);
}

static nb_tensor *f_softmax(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_softmax(x[0], 1);
}

/* tanh(a * b) / (1 + a^2), broadcasting b over a's rows. */
static nb_tensor *f_mix(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *a = x[0], *b = x[1];
    return nb_div(nb_tanh(nb_mul(a, b)), nb_add(nb_scalar_like(a, 1.0), nb_square(a)));
}

static nb_tensor *rand_input(int ndim, const int64_t *shape, uint64_t seed)
{
    nb_rng rng = nb_rng_new(seed);
    nb_tensor *t = nb_randn(NB_F64, ndim, shape, &rng);
    return nb_set_requires_grad(t, true);
}

static void check_fn(const char *name, nb_check_fn f, int n, nb_tensor *const x[], int order)
{
    nb_check_report r;
    bool ok = order == 1 ? nb_gradcheck(f, NULL, n, x, NULL, &r)
                         : nb_gradgradcheck(f, NULL, n, x, NULL, &r);
    if (!ok)
        print_report(name, &r);
    assert_true(ok);
    assert_int_equal(r.order, order);
    assert_int_equal(r.n, order == 1 ? n : n + 1);
}

static void test_compositions(void **state)
{
    (void)state;
    nb_tensor *x = rand_input(NB_SHAPE(3, 5), 1);
    nb_tensor *b = rand_input(NB_SHAPE(5), 2);
    check_fn("log_softmax", f_log_softmax, 1, &x, 1);
    check_fn("logsumexp", f_logsumexp, 1, &x, 1);
    check_fn("var", f_var, 1, &x, 1);
    check_fn("mix", f_mix, 2, (nb_tensor *[]){x, b}, 1);
    check_fn("softmax (2nd order)", f_softmax, 1, &x, 2);
    check_fn("mix (2nd order)", f_mix, 2, (nb_tensor *[]){x, b}, 2);
    check_fn("var (2nd order)", f_var, 1, &x, 2);

    /* f32: the same function in f32 against the f64 numeric gradient. */
    nb_check_report r;
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){x, b},
                             &(nb_check_opts){.dtype = NB_F32}, &r));
    assert_true(r.input[0].max_abs_err > 0); /* f32 rounding is visible */
    /* One tensor passed twice: both entries get the total gradient. */
    check_fn("mix (x, x)", f_mix, 2, (nb_tensor *[]){x, x}, 1);
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){x, x},
                             &(nb_check_opts){.dtype = NB_F32}, &r));
    nb_free(x);
    nb_free(b);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- isolation from the caller ---- */

static void test_leaves_caller_alone(void **state)
{
    (void)state;
    nb_tensor *a = rand_input(NB_SHAPE(3, 5), 3);
    nb_tensor *b = nb_set_requires_grad(rand_input(NB_SHAPE(5), 4), false);
    double before_a[15], before_b[5];
    memcpy(before_a, nb_data(a), sizeof before_a);
    memcpy(before_b, nb_data(b), sizeof before_b);

    nb_graph *g = nb_graph_new();
    nb_tensor *keep = nb_mul(a, a); /* the caller's own work in progress */
    int64_t nodes = nb_graph_nodes(g);
    size_t bytes = nb_graph_bytes(g);
    nb_check_report r;
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_true(nb_gradgradcheck(f_mix, NULL, 2, (nb_tensor *[]){a, b}, NULL, &r));
    assert_ptr_equal(nb_graph_current(), g);
    assert_int_equal(nb_graph_nodes(g), nodes);
    assert_int_equal(nb_graph_bytes(g), bytes);
    assert_memory_equal(nb_data(a), before_a, sizeof before_a);
    assert_memory_equal(nb_data(b), before_b, sizeof before_b);
    assert_null(nb_grad_of(a)); /* functional gradients only: no .grad */

    /* b does not require grad: skipped, and in the second-order report the
     * last entry is the projection v. */
    assert_int_equal(r.input[1].worst, -1);
    assert_true(r.input[1].ok);
    assert_true(r.input[2].worst >= 0);
    char *t = report_text(&r);
    assert_non_null(strstr(t, "input 2: skipped"));
    assert_non_null(strstr(t, "v (projection):"));
    free(t);

    /* The caller's graph still works. */
    assert_int_equal(nb_backward(nb_sum(keep)), 0);
    assert_non_null(nb_grad_of(a));
    nb_graph_free(g);
    assert_null(nb_graph_current());

    /* Inputs that are results in the caller's graph work too (and the
     * caller's graph can still be backpropagated afterwards). */
    g = nb_graph_new();
    nb_tensor *h = nb_tanh(a);
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){h, b}, NULL, &r));
    assert_int_equal(nb_backward(nb_sum(h)), 0);
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- ops without gradient ---- */

static void test_no_grad_ops(void **state)
{
    (void)state;
    nb_check_report r;
    const nb_op *lt = nb_op_find("lt");
    assert_non_null(lt);
    nb_op_example ex = {.n = 2, .ndim = {1, 1}, .shape = {{4}, {4}}};
    assert_true(nb_check_example(lt, &ex, 1, NULL, &r));
    assert_string_equal(r.message, "no gradient (by design)");

    /* A user op without backward passes too; one whose output is NULL not. */
    nb_op nograd = {.name = "nograd", .arity = 1, .shape = nb_shape_same,
                    .forward = cube_forward};
    nb_op_example ex1 = {.n = 1, .ndim = {1}, .shape = {{3}}};
    assert_true(nb_check_example(&nograd, &ex1, 1, NULL, &r));
    nb_op_example bad = {.n = 2, .ndim = {1, 1}, .shape = {{3}, {4}}};
    assert_false(nb_check_example(lt, &bad, 1, NULL, &r));
    assert_non_null(strstr(r.message, "nb_lt"));
}

/* ---- bad input ---- */

static nb_tensor *f_broken(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_add(x[0], x[1]); /* (3,4) + (5,): does not broadcast */
}

static nb_tensor *f_ident(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return x[0];
}

static void test_bad_input(void **state)
{
    (void)state;
    nb_check_report r;
    nb_tensor *x = input34();
    nb_tensor *y = rand_input(NB_SHAPE(5), 5);

    assert_false(nb_gradcheck(NULL, NULL, 1, &x, NULL, &r));
    assert_false(r.ok);
    assert_non_null(strstr(r.message, "function is NULL"));
    assert_non_null(nb_last_error());

    nb_tensor *nine[9] = {x, x, x, x, x, x, x, x, x};
    assert_false(nb_gradcheck(f_ident, NULL, 9, nine, NULL, &r));
    assert_non_null(strstr(r.message, "1 to 8 inputs, got 9"));
    assert_false(nb_gradgradcheck(f_ident, NULL, 8, nine, NULL, &r));
    assert_non_null(strstr(r.message, "1 to 7 inputs, got 8"));
    assert_false(nb_gradcheck(f_ident, NULL, 0, nine, NULL, &r));
    assert_false(nb_gradcheck(f_ident, NULL, 1, NULL, NULL, &r));
    assert_non_null(strstr(r.message, "NULL"));
    assert_false(nb_gradcheck(f_ident, NULL, 2, (nb_tensor *[]){x, NULL}, NULL, &r));
    assert_non_null(strstr(r.message, "input 2 is NULL"));

    nb_tensor *x32 = nb_set_requires_grad(nb_ones(NB_F32, NB_SHAPE(3)), true);
    assert_false(nb_gradcheck(f_ident, NULL, 1, &x32, NULL, &r));
    assert_non_null(strstr(r.message, "input 1 is f32"));
    assert_false(nb_gradgradcheck(f_ident, NULL, 1, &x32, NULL, &r));
    assert_non_null(strstr(r.message, "f32"));

    assert_false(nb_gradcheck(f_ident, NULL, 1, &x, &(nb_check_opts){.dtype = (nb_dtype)7}, &r));
    assert_non_null(strstr(r.message, "opts.dtype"));

    /* No report: false and an error. */
    nb_clear_error();
    assert_false(nb_gradcheck(f_ident, NULL, 1, &x, NULL, NULL));
    assert_non_null(nb_last_error());

    /* Nothing requires grad. */
    nb_tensor *c = nb_ones(NB_F64, NB_SHAPE(3));
    assert_false(nb_gradcheck(f_ident, NULL, 1, &c, NULL, &r));
    assert_non_null(strstr(r.message, "no input requires grad"));

    /* The function fails: its error is the message. */
    assert_false(nb_gradcheck(f_broken, NULL, 2, (nb_tensor *[]){x, y}, NULL, &r));
    assert_false(r.ok);
    assert_non_null(strstr(r.message, "nb_add"));
    assert_non_null(strstr(r.message, "(3,4)"));
    assert_false(nb_gradgradcheck(f_broken, NULL, 2, (nb_tensor *[]){x, y}, NULL, &r));
    assert_non_null(strstr(r.message, "nb_add"));
    char *t = report_text(&r);
    assert_non_null(strstr(t, "FAIL"));
    free(t);

    /* The identity passes (the output is an input, no op in between). */
    assert_true(nb_gradcheck(f_ident, NULL, 1, &x, NULL, &r));

    /* Examples and ops. */
    nb_op_example ex = {.n = 1, .ndim = {1}, .shape = {{3}}};
    assert_false(nb_check_example(NULL, &ex, 1, NULL, &r));
    assert_non_null(strstr(r.message, "op is NULL"));
    assert_false(nb_check_example(&cube, NULL, 1, NULL, &r));
    assert_false(nb_check_example(&cube, &ex, 3, NULL, &r));
    assert_non_null(strstr(r.message, "order must be 1 or 2"));
    nb_op_example ex0 = {.n = 0};
    assert_false(nb_check_example(&cube, &ex0, 1, NULL, &r));
    nb_op empty = {.name = "empty"};
    assert_false(nb_check_example(&empty, &ex, 1, NULL, &r));
    assert_non_null(strstr(r.message, "not implemented"));
    assert_false(nb_gradcheck_op(&cube, NULL, 0, NULL, &r));
    assert_non_null(strstr(r.message, "nb_gradcheck_op"));
    assert_false(nb_gradcheck_op(&cube, NULL, NB_SHAPES({3}), NULL));
    /* Wrong arity: nb_apply's message. */
    assert_false(nb_gradcheck_op(&cube, NULL, NB_SHAPES({3}, {3}), &r));
    assert_non_null(strstr(r.message, "takes 1 inputs, got 2"));

    nb_check_report_print(NULL, NULL); /* no crash */
    nb_free(x);
    nb_free(y);
    nb_free(x32);
    nb_free(c);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- the printed report ---- */

static void test_report_format(void **state)
{
    (void)state;
    nb_check_report r;
    memset(&r, 0, sizeof r);
    r.n = 2;
    r.order = 1;
    r.input[0] = (nb_check_input){.ok = false, .max_abs_err = 0.32, .max_rel_err = 0.5,
                                  .worst = 6, .worst_index = {1, 2, -1, -1, -1, -1, -1, -1},
                                  .analytic = 0.5, .numeric = 1.0};
    r.input[1] = (nb_check_input){.ok = true, .max_abs_err = 1e-10, .max_rel_err = 2e-9,
                                  .worst = 2, .worst_index = {2, -1, -1, -1, -1, -1, -1, -1},
                                  .analytic = 3, .numeric = 3};
    char *t = report_text(&r);
    assert_string_equal(t, "gradcheck: FAIL\n"
                           "  input 1: FAIL max abs 3.2e-01 rel 5.0e-01 at (1,2): analytic "
                           "0.5 numeric 1\n"
                           "  input 2: ok   max abs 1.0e-10 rel 2.0e-09 at (2,): analytic 3 "
                           "numeric 3\n");
    free(t);
}

int main(void)
{
    const nb_op *const *ops = nb_builtin_ops();
    size_t nops = 0;
    while (ops[nops])
        nops++;
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_wrong_element_found),
        cmocka_unit_test(test_wrong_everywhere),
        cmocka_unit_test(test_gradgrad_catches_detached_backward),
        cmocka_unit_test(test_user_ops_pass),
        cmocka_unit_test(test_compositions),
        cmocka_unit_test(test_leaves_caller_alone),
        cmocka_unit_test(test_no_grad_ops),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_report_format),
    };
    size_t nfixed = sizeof fixed / sizeof fixed[0];
    struct CMUnitTest *tests = calloc(nops + nfixed, sizeof *tests);
    char (*names)[64] = calloc(nops ? nops : 1, sizeof *names);
    if (!tests || !names)
        return 1;
    for (size_t i = 0; i < nops; i++) {
        snprintf(names[i], sizeof names[i], "gradcheck_%s", ops[i]->name);
        tests[i] = (struct CMUnitTest){.name = names[i], .test_func = test_builtin_op,
                                       .initial_state = (void *)ops[i]};
    }
    memcpy(tests + nops, fixed, sizeof fixed);
    int rc = _cmocka_run_group_tests("gradcheck", tests, nops + nfixed, NULL, NULL);
    free(tests);
    free(names);
    return rc;
}
