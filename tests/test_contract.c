/* The contract checks of an op (nb_check_contract): every built-in op keeps
 * its contract, and each contract is seen to hold somewhere; user ops each
 * broken in one way are caught by exactly the contract they break, with the
 * example and input in the detail (ops declaring .elementwise that are not,
 * by the elementwise contract, also without examples); bad input is refused
 * with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"
#include "testing.h"

static void print_contract(const nb_contract_report *r)
{
    print_error("%s: %s%s\n", r->op ? r->op : "?", r->ok ? "ok" : "NOT ok", r->message);
    for (int c = 0; c < NB_CONTRACTS; c++)
        print_error("  %-15s %s %s\n", nb_contract_name((nb_contract)c),
                    r->status[c] == NB_CONTRACT_HELD     ? "held"
                    : r->status[c] == NB_CONTRACT_BROKEN ? "BROKEN"
                                                         : "n/a",
                    r->detail[c]);
}

/* ---- the built-in ops ---- */

static void test_builtin_ops_keep_their_contract(void **state)
{
    (void)state;
    int held[NB_CONTRACTS] = {0}, elementwise = 0;
    nb_graph *g = nb_graph_new(); /* the caller's graph: left as it was */
    int64_t nodes = nb_graph_nodes(g);
    for (const nb_op *const *p = nb_builtin_ops(); *p; p++) {
        nb_contract_report r;
        bool ok = nb_check_contract(*p, NULL, &r);
        if (!ok)
            print_contract(&r);
        assert_true(ok);
        assert_true(r.ok);
        assert_string_equal(r.op, (*p)->name);
        assert_string_equal(r.message, "");
        assert_null(nb_last_error());
        for (int c = 0; c < NB_CONTRACTS; c++) {
            held[c] += r.status[c] == NB_CONTRACT_HELD;
            /* Whatever is not applicable says why. */
            if (r.status[c] == NB_CONTRACT_NOT_APPLICABLE && !r.detail[c][0])
                fail_msg("%s: %s not applicable without a reason", (*p)->name,
                         nb_contract_name((nb_contract)c));
        }
        if ((*p)->no_gradient && (*p)->examples)
            assert_int_equal(r.status[NB_CONTRACT_NONDIFF], NB_CONTRACT_HELD);
        /* Every op declaring .elementwise is checked to be, the others skipped. */
        elementwise += (*p)->elementwise;
        assert_int_equal(r.status[NB_CONTRACT_ELEMENTWISE],
                         (*p)->elementwise ? NB_CONTRACT_HELD : NB_CONTRACT_NOT_APPLICABLE);
        if (!(*p)->elementwise)
            assert_string_equal(r.detail[NB_CONTRACT_ELEMENTWISE],
                                "not declared (nb_op.elementwise)");
    }
    /* arith 4, pow, maximum, minimum, 6 comparisons, where, sign, neg, exp,
     * log, sqrt, abs, tanh(_grad), sigmoid(_grad), erf, relu(_grad), clamp. */
    assert_int_equal(elementwise, 28);
    for (int c = 0; c < NB_CONTRACTS; c++)
        if (held[c] == 0)
            fail_msg("contract %s holds for no built-in op", nb_contract_name((nb_contract)c));
    /* Where each contract comes from: not vacuous. */
    nb_contract_report r;
    assert_true(nb_check_contract(nb_op_find("matmul"), NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_BATCH], NB_CONTRACT_HELD);
    assert_true(nb_check_contract(nb_op_find("index_select"), NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_NONDIFF], NB_CONTRACT_HELD);
    assert_int_equal(r.status[NB_CONTRACT_BATCH], NB_CONTRACT_HELD);
    assert_true(nb_check_contract(nb_op_find("exp"), NULL, &r)); /* saves y only */
    assert_int_equal(r.status[NB_CONTRACT_INPLACE], NB_CONTRACT_HELD);
    assert_true(nb_check_contract(nb_op_find("concat"), NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_BATCH], NB_CONTRACT_HELD);

    assert_true(nb_graph_current() == g);
    assert_int_equal(nb_graph_nodes(g), nodes);
    nb_graph_free(g);
    assert_int_equal(nb_live_tensors(), 0);
}

/* Recording off and another seed: the check turns recording on for itself
 * and restores it. */
static void test_options_and_grad_mode(void **state)
{
    (void)state;
    nb_contract_report r;
    nb_set_grad_enabled(false);
    assert_true(nb_check_contract(nb_op_find("mul"), &(nb_check_opts){.seed = 7}, &r));
    assert_false(nb_is_grad_enabled());
    nb_set_grad_enabled(true);
    for (int c = 0; c < NB_CONTRACTS; c++)
        if (c != NB_CONTRACT_NONDIFF)
            assert_int_equal(r.status[c], NB_CONTRACT_HELD);
    assert_string_equal(r.detail[NB_CONTRACT_NONDIFF], "no input declared .nondiff");
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- user ops, correct and broken ---- */

NB_BINARY_KERNELS(times, u *v)
NB_BINARY_KERNELS(plus, u + v)
NB_UNARY_KERNELS(twice, 2 * u)
NB_UNARY_KERNELS(sq, u *u)

static void times_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, x[1]);
    dx[1] = nb_mul(dy, x[0]);
}

static const nb_op_example two_34[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}},
    {.n = 0},
};
static const nb_op_example bcast_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}},
    {.n = 0},
};
static const nb_op_example one_34[] = {{.n = 1, .ndim = {2}, .shape = {{3, 4}}}, {.n = 0}};

/* Correct: y = a * b, broadcasting, saving both inputs. */
static const nb_op good_times = {.name = "good_times", .arity = 2, .shape = nb_shape_broadcast,
                                 .forward = NB_KERNELS(times), .backward = times_backward,
                                 .broadcast = true, .batch = nb_batch_rows, .elementwise = true,
                                 .saves = NB_SAVES_X(0) | NB_SAVES_X(1),
                                 .examples = bcast_examples};

/* deterministic: y = a + b, whose gradient for b moves by two ulps every
 * other call (as a sum in a racing order would). */
static int calls;
static void noisy_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = dy;
    dx[1] = nb_mul(dy, nb_scalar_like(dy, 1.0 + (calls++ & 1) * 2 * DBL_EPSILON));
}
static const nb_op noisy_plus = {.name = "noisy_plus", .arity = 2, .shape = nb_shape_same,
                                 .forward = NB_KERNELS(plus), .backward = noisy_backward,
                                 .saves = NB_SAVES_NONE, .examples = two_34};

/* accumulates: y = 2x with a backward that "cleans up" its input's .grad,
 * so a second nb_backward replaces the first instead of adding to it. (The
 * engine does the accumulating: only a backward with side effects on the
 * leaves can break it.) */
static void resetting_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                               nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_zero_grad(x[0]);
    dx[0] = nb_mul(dy, nb_scalar_like(dy, 2.0));
}
static const nb_op resetting = {.name = "resetting", .arity = 1, .shape = nb_shape_same,
                                .forward = NB_KERNELS(twice), .backward = resetting_backward,
                                .saves = NB_SAVES_NONE, .examples = one_34};

/* no-grad-inputs: y = a * b, computed in f32 unless both inputs require
 * grad (an "inference shortcut" that changes the output). */
static int lazy_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    if (nb_shape_same(out, x, n, attr))
        return -1;
    if (!nb_requires_grad(x[0]) || !nb_requires_grad(x[1]))
        out->dtype = NB_F32;
    return 0;
}
static void lazy_f32(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n, (void)attr;
    const double *a = x[0].data, *b = x[1].data; /* contiguous f64 in these checks */
    float *Y = y->data;
    for (int64_t i = 0; i < y->numel; i++)
        Y[i] = (float)(a[i] * b[i]);
}
static const nb_op lazy_times = {.name = "lazy_times", .arity = 2, .shape = lazy_shape,
                                 .forward = {[NB_F32] = lazy_f32, [NB_F64] = times_f64},
                                 .backward = times_backward,
                                 .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = two_34};

/* nondiff: y = m * a for a 0/1 mask m that the op refuses when it requires
 * grad, although it declares m .nondiff (nb_apply ignores its flag). */
static const nb_op strict_mask;
static int strict_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    if (nb_requires_grad(x[0]))
        return nb_op_error(&strict_mask, "the mask must not require grad");
    return nb_shape_same(out, x, n, attr);
}
static void strict_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[1] = nb_mul(dy, x[0]);
}
static const nb_op strict_mask = {.name = "strict_mask", .arity = 2, .shape = strict_shape,
                                  .forward = NB_KERNELS(times), .backward = strict_backward,
                                  .nondiff = NB_INPUT(0), .saves = NB_SAVES_X(0),
                                  .examples = two_34};

/* batch: y = 2x declared row by row, with a backward that adds every row's
 * dy to each row (a wrong gradient mixing the batch). Example 1 is a batch
 * of one, where mixing shows nothing. */
static void mixing_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = nb_add(nb_mul(dy, nb_scalar_like(dy, 2.0)),
                   nb_sum(dy, .axes = NB_AXES(0), .keepdims = true));
}
static const nb_op_example mixing_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{1, 4}}},
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}},
    {.n = 0},
};
static const nb_op row_mixer = {.name = "row_mixer", .arity = 1, .shape = nb_shape_same,
                                .forward = NB_KERNELS(twice), .backward = mixing_backward,
                                .batch = nb_batch_rows,
                                .saves = NB_SAVES_NONE, .examples = mixing_examples};

/* layouts: y = a * b whose kernel walks a by its strides but reads b as if
 * it were packed (and declares no .contiguous). */
static int64_t offset_of(const nb_view *v, int64_t i)
{
    int64_t off = 0;
    for (int d = v->ndim - 1; d >= 0; d--) {
        off += (i % v->shape[d]) * v->strides[d];
        i /= v->shape[d];
    }
    return off;
}
static void raw_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n, (void)attr;
    const double *a = x[0].data, *b = x[1].data;
    double *Y = y->data;
    for (int64_t i = 0; i < y->numel; i++)
        Y[i] = a[offset_of(&x[0], i)] * b[i];
}
static const nb_op raw_times = {.name = "raw_times", .arity = 2, .shape = nb_shape_same,
                                .forward = {[NB_F64] = raw_f64}, .backward = times_backward,
                                .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = two_34};

/* inplace: y = a * b declaring that its backward reads a only; and y = x^2
 * declaring it reads nothing. Writing to the inputs after recording then
 * goes unnoticed and changes the gradient. */
static const nb_op half_saved = {.name = "half_saved", .arity = 2, .shape = nb_shape_same,
                                 .forward = NB_KERNELS(times), .backward = times_backward,
                                 .saves = NB_SAVES_X(0), .examples = two_34};
static void sq_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                        int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(nb_scalar_like(x[0], 2.0), x[0]));
}
static const nb_op unsaved_square = {.name = "unsaved_square", .arity = 1,
                                     .shape = nb_shape_same, .forward = NB_KERNELS(sq),
                                     .backward = sq_backward, .saves = NB_SAVES_NONE,
                                     .batch = nb_batch_rows, .examples = one_34};
/* The same, declared right. */
static const nb_op saved_square = {.name = "saved_square", .arity = 1, .shape = nb_shape_same,
                                   .forward = NB_KERNELS(sq), .backward = sq_backward,
                                   .saves = NB_SAVES_X(0), .batch = nb_batch_rows,
                                   .examples = one_34};

/* elementwise: ops declaring .elementwise that are not (no gradient, so
 * that only this contract applies beyond nondiff). A running sum over the
 * flat index (right on the whole, wrong on any piece); y[i] = x[n-1-i]; the
 * same in f32 only (its f64 kernel is 2x); a flattening op (another shape);
 * y = 2x that zeroes its input's first element, always or on 1-d views only;
 * a view of x (no kernel runs); y = 2x whose kernel refuses 0-d views; and
 * below, one whose kernel reads the shape along its attribute's axis. */
static void running_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n, (void)attr;
    const double *a = x[0].data; /* packed in these checks */
    double *Y = y->data, s = 0;
    for (int64_t i = 0; i < y->numel; i++)
        Y[i] = s += a[i];
}
#define MIRROR_KERNEL(fn, T)                                                   \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        const T *a = x[0].data;                                                \
        T *Y = y->data;                                                        \
        for (int64_t i = 0; i < y->numel; i++)                                 \
            Y[i] = a[y->numel - 1 - i];                                        \
    }
MIRROR_KERNEL(mirror_f32, float)
MIRROR_KERNEL(mirror_f64, double)
static int flat_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    *out = (nb_meta){.dtype = nb_dtype_of(x[0]), .ndim = 1, .shape = {nb_numel(x[0])}};
    return 0;
}
static void scribble_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    twice_f64(y, x, n, attr);
    ((double *)x[0].data)[0] = 0;
}
static void scribble_1d_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    twice_f64(y, x, n, attr);
    if (y->ndim == 1) /* only as fused functions run it */
        ((double *)x[0].data)[0] = 0;
}
static int alias_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    if (nb_shape_same(out, x, n, attr))
        return -1;
    out->view = true;
    out->offset = nb_offset(x[0]);
    for (int d = out->ndim - 1, s = 1; d >= 0; s *= (int)out->shape[d--])
        out->strides[d] = s;
    return 0;
}
static const nb_op no_scalars;
static void no_scalars_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    if (y->ndim == 0)
        nb_op_error(&no_scalars, "no 0-d views, please");
    else
        twice_f64(y, x, n, attr);
}
/* y = x * (x's index along the axis of its attribute): elementwise on the
 * example's shape, not on a flat block. */
static void axis_scaled_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    int axis = *(const int *)attr;
    int64_t inner = 1;
    for (int d = axis + 1; d < y->ndim; d++)
        inner *= y->shape[d];
    const double *a = x[0].data;
    double *Y = y->data;
    for (int64_t i = 0; i < y->numel; i++)
        Y[i] = a[i] * (double)(i / inner % y->shape[axis]);
}
static const int axis_1 = 1;
static const nb_op_example axis_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &axis_1}, {.n = 0}};
#define NOT_ELEMENTWISE(var, shape_rule, ...)                                  \
    static const nb_op var = {.name = #var, .arity = 1, .shape = shape_rule,   \
                              .forward = __VA_ARGS__, .no_gradient = true,     \
                              .saves = NB_SAVES_NONE, .elementwise = true,     \
                              .examples = one_34}
NOT_ELEMENTWISE(running_sum, nb_shape_same, {[NB_F64] = running_f64});
NOT_ELEMENTWISE(mirror, nb_shape_same, NB_KERNELS(mirror));
NOT_ELEMENTWISE(mirror_f32_only, nb_shape_same, {[NB_F32] = mirror_f32, [NB_F64] = twice_f64});
NOT_ELEMENTWISE(flatten, flat_shape, NB_KERNELS(twice));
NOT_ELEMENTWISE(scribbler, nb_shape_same, {[NB_F64] = scribble_f64});
NOT_ELEMENTWISE(scribbler_1d, nb_shape_same, {[NB_F64] = scribble_1d_f64});
NOT_ELEMENTWISE(alias, alias_shape, NB_KERNELS(twice));
NOT_ELEMENTWISE(no_scalars, nb_shape_same, {[NB_F64] = no_scalars_f64});
static const nb_op axis_scaled = {.name = "axis_scaled", .arity = 1, .attr_size = sizeof(int),
                                  .shape = nb_shape_same, .forward = {[NB_F64] = axis_scaled_f64},
                                  .no_gradient = true, .saves = NB_SAVES_NONE,
                                  .elementwise = true, .examples = axis_examples};

/* Checks op and expects exactly contract `broken` broken, its detail
 * holding each of the given strings. */
static nb_contract_report expect_broken(const nb_op *op, nb_contract broken, const char *a,
                                        const char *b)
{
    nb_contract_report r;
    bool ok = nb_check_contract(op, NULL, &r);
    if (ok || r.status[broken] != NB_CONTRACT_BROKEN)
        print_contract(&r);
    assert_false(ok);
    assert_false(r.ok);
    assert_string_equal(r.message, "");
    for (int c = 0; c < NB_CONTRACTS; c++)
        if ((c == (int)broken) != (r.status[c] == NB_CONTRACT_BROKEN)) {
            print_contract(&r);
            fail_msg("%s: %s is %s", op->name, nb_contract_name((nb_contract)c),
                     c == (int)broken ? "not broken" : "broken too");
        }
    const char *d = r.detail[broken];
    if (!strstr(d, a) || !strstr(d, b))
        fail_msg("%s: detail \"%s\" lacks \"%s\" or \"%s\"", op->name, d, a, b);
    assert_int_equal(nb_live_tensors(), 0);
    return r;
}

static void test_correct_user_ops_pass(void **state)
{
    (void)state;
    nb_contract_report r;
    assert_true(nb_check_contract(&good_times, NULL, &r));
    for (int c = 0; c < NB_CONTRACTS; c++)
        assert_int_equal(r.status[c], c == NB_CONTRACT_NONDIFF ? NB_CONTRACT_NOT_APPLICABLE
                                                               : NB_CONTRACT_HELD);
    assert_true(nb_check_contract(&saved_square, NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_INPLACE], NB_CONTRACT_HELD);
    assert_int_equal(r.status[NB_CONTRACT_BATCH], NB_CONTRACT_HELD);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_each_broken_contract_caught(void **state)
{
    (void)state;
    nb_contract_report r;
    r = expect_broken(&noisy_plus, NB_CONTRACT_DETERMINISTIC, "example 1, input 2,", "then");
    /* Repeated passes of a nondeterministic backward cannot be compared. */
    assert_int_equal(r.status[NB_CONTRACT_ACCUMULATES], NB_CONTRACT_NOT_APPLICABLE);
    assert_non_null(strstr(r.detail[NB_CONTRACT_ACCUMULATES], "not deterministic"));

    expect_broken(&resetting, NB_CONTRACT_ACCUMULATES, "example 1, input 1,", "after two");
    expect_broken(&lazy_times, NB_CONTRACT_NO_GRAD_INPUTS, "example 1, input 1 not requiring",
                  "output element");
    expect_broken(&strict_mask, NB_CONTRACT_NONDIFF, "example 1:", "must not require grad");
    r = expect_broken(&row_mixer, NB_CONTRACT_BATCH, "example 2, input 1, row 0,", "alone");
    expect_broken(&raw_times, NB_CONTRACT_LAYOUTS, "example 1, permuted, input 2:",
                  "output element");
    expect_broken(&half_saved, NB_CONTRACT_INPLACE, "example 1, input 2, not in .saves",
                  "input 1's gradient");
    expect_broken(&unsaved_square, NB_CONTRACT_INPLACE, "example 1, input 1, not in .saves",
                  "input 1's gradient");

    /* Element 1 alone is x[1], in the whole x[0] + x[1]. */
    expect_broken(&running_sum, NB_CONTRACT_ELEMENTWISE, "example 1, each element alone (0-d)",
                  "output element 1 is");
    expect_broken(&mirror, NB_CONTRACT_ELEMENTWISE, "example 1, each element alone (0-d)",
                  "output element 0 is");
    expect_broken(&mirror_f32_only, NB_CONTRACT_ELEMENTWISE,
                  "example 1 (f32), each element alone (0-d)", "output element 0 is");
    expect_broken(&flatten, NB_CONTRACT_ELEMENTWISE, "example 1: the output is (12,),",
                  "not the inputs' broadcast shape (3,4)");
    expect_broken(&scribbler, NB_CONTRACT_ELEMENTWISE, "example 1, the op itself",
                  "writes to input 1 (element 0)");
    expect_broken(&scribbler_1d, NB_CONTRACT_ELEMENTWISE, "example 1, the whole as one 1-d "
                  "block: the kernel writes to input 1", "(element 0)");
    expect_broken(&alias, NB_CONTRACT_ELEMENTWISE, "example 1: the output is a view of input 1",
                  "fused functions run kernels");
    expect_broken(&axis_scaled, NB_CONTRACT_ELEMENTWISE, "example 1, the whole as one 1-d "
                  "block: output element 1 is", "as on the whole");
    expect_broken(&no_scalars, NB_CONTRACT_ELEMENTWISE, "each element alone (0-d): the kernel "
                  "fails", "no_scalars: no 0-d views, please");
    assert_null(nb_last_error());
}

/* Without examples, an elementwise op is checked on made-up inputs, unless
 * it takes attributes. */
static void test_elementwise_without_examples(void **state)
{
    (void)state;
    nb_contract_report r;
    nb_op op = mirror;
    op.examples = NULL;
    assert_false(nb_check_contract(&op, NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_ELEMENTWISE], NB_CONTRACT_BROKEN);
    assert_non_null(strstr(r.detail[NB_CONTRACT_ELEMENTWISE],
                           "made-up inputs (3,5), each element alone (0-d): output element 0"));

    op = good_times;
    op.examples = NULL;
    assert_true(nb_check_contract(&op, NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_ELEMENTWISE], NB_CONTRACT_HELD);
    assert_int_equal(r.status[NB_CONTRACT_BATCH], NB_CONTRACT_NOT_APPLICABLE);

    op.attr_size = 8;
    assert_true(nb_check_contract(&op, NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_ELEMENTWISE], NB_CONTRACT_NOT_APPLICABLE);
    assert_non_null(strstr(r.detail[NB_CONTRACT_ELEMENTWISE], "attributes (nb_op.attr_size)"));

    /* Made-up inputs the op refuses: not applicable, and why. */
    op = good_times;
    op.examples = NULL;
    op.forward[NB_F64] = NULL;
    assert_true(nb_check_contract(&op, NULL, &r));
    assert_int_equal(r.status[NB_CONTRACT_ELEMENTWISE], NB_CONTRACT_NOT_APPLICABLE);
    assert_non_null(strstr(r.detail[NB_CONTRACT_ELEMENTWISE], "made-up inputs (3,5) fail"));
    assert_non_null(strstr(r.detail[NB_CONTRACT_ELEMENTWISE], "f64 kernel"));
    assert_null(nb_last_error());
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- bad input ---- */

static const nb_op_example too_many[] = {{.n = NB_MAX_INPUTS + 1}, {.n = 0}};
static const nb_op_example too_deep[] = {{.n = 1, .ndim = {NB_MAX_DIMS + 1}}, {.n = 0}};
static const nb_op_example empty[] = {{.n = 0}};

static void test_bad_input(void **state)
{
    (void)state;
    nb_contract_report r;
    nb_clear_error();
    assert_false(nb_check_contract(&good_times, NULL, NULL));
    ERR_HAS("nb_check_contract: report is NULL");

    assert_false(nb_check_contract(NULL, NULL, &r));
    assert_false(r.ok);
    assert_non_null(strstr(r.message, "nb_check_contract: op is NULL"));
    ERR_HAS("nb_check_contract: op is NULL");

    assert_false(nb_check_contract(&good_times, &(nb_check_opts){.dtype = (nb_dtype)7}, &r));
    assert_non_null(strstr(r.message, "nb_check_contract: opts.dtype is 7"));
    assert_false(
        nb_check_contract(&good_times, &(nb_check_opts){.layout = (nb_check_layout)9}, &r));
    assert_non_null(strstr(r.message, "nb_check_contract: opts.layout is 9"));

    nb_op op = good_times;
    op.examples = too_many;
    assert_false(nb_check_contract(&op, NULL, &r));
    assert_non_null(strstr(r.message, "nb_check_contract: example 1 of good_times"));
    op.examples = too_deep;
    assert_false(nb_check_contract(&op, NULL, &r));
    assert_non_null(strstr(r.message, "example 1"));

    /* An op that cannot run on its own example: not ok, and why. */
    op = good_times;
    op.forward[NB_F64] = NULL;
    assert_false(nb_check_contract(&op, NULL, &r));
    assert_false(r.ok);
    assert_non_null(strstr(r.message, "good_times example 1"));
    assert_non_null(strstr(r.message, "f64 kernel"));
    ERR_HAS("f64 kernel");

    /* Nothing to check: every contract not applicable, and ok. */
    op = good_times;
    op.examples = empty;
    assert_true(nb_check_contract(&op, NULL, &r));
    op.examples = NULL;
    op.elementwise = false; /* else checked on made-up inputs */
    assert_true(nb_check_contract(&op, NULL, &r));
    for (int c = 0; c < NB_CONTRACTS; c++) {
        assert_int_equal(r.status[c], NB_CONTRACT_NOT_APPLICABLE);
        assert_string_equal(r.detail[c], c == NB_CONTRACT_ELEMENTWISE
                                             ? "not declared (nb_op.elementwise)"
                                             : "no examples (nb_op.examples)");
    }
    assert_string_equal(nb_contract_name(NB_CONTRACT_ELEMENTWISE), "elementwise");
    assert_string_equal(nb_contract_name(NB_CONTRACT_INPLACE), "inplace");
    assert_string_equal(nb_contract_name((nb_contract)NB_CONTRACTS), "?");
    assert_string_equal(nb_contract_name((nb_contract)-1), "?");
    assert_null(nb_graph_current());
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_builtin_ops_keep_their_contract, cleanup),
        cmocka_unit_test_teardown(test_options_and_grad_mode, cleanup),
        cmocka_unit_test_teardown(test_correct_user_ops_pass, cleanup),
        cmocka_unit_test_teardown(test_each_broken_contract_caught, cleanup),
        cmocka_unit_test_teardown(test_elementwise_without_examples, cleanup),
        cmocka_unit_test_teardown(test_bad_input, cleanup),
    };
    return cmocka_run_group_tests_name("contract", tests, NULL, NULL);
}
