/* Gradient checks of user-defined ops and of gradcheck itself: it must find
 * a wrong backward and say where, in every layout; read index inputs from
 * the op's .nondiff declaration; hand kernels the views its layouts promise
 * and catch a kernel that ignores strides; pass correct user ops; check ops
 * that declare no gradient; and refuse bad input with a message. The table
 * of built-in ops: test_gradcheck.c. */
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

/* ---- user-defined ops, written like built-ins (nabla/kernel.h) ---- */

NB_UNARY_KERNELS(square, u *u)
NB_UNARY_KERNELS(cube, u *u *u)

/* y = x^2 with a backward that is wrong in element (1,2) of a (3,4) input:
 * there it uses 3x instead of 2x, so analytic = 1.5 * numeric. */
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
                                 .forward = NB_KERNELS(square), .backward = square_bad_backward};

/* Wrong everywhere: dx = dy * 3x. */
static void square_3x_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                               nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(x[0], nb_scalar_like(x[0], 3.0)));
}
static const nb_op square_3x = {.name = "square_3x", .arity = 1, .shape = nb_shape_same,
                                .forward = NB_KERNELS(square), .backward = square_3x_backward};

/* Right to first order, but the backward goes through detach(x), so its own
 * gradient is missing: only gradgradcheck can see that. */
static void square_detached_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                     nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(nb_detach(x[0]), nb_scalar_like(x[0], 2.0)));
}
static const nb_op square_detached = {.name = "square_detached", .arity = 1,
                                      .shape = nb_shape_same, .forward = NB_KERNELS(square),
                                      .backward = square_detached_backward};

/* A correct user op: y = x^3, dx = dy * 3 x^2 (written with ops, so it is
 * twice differentiable). */
static void cube_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(nb_scalar_like(x[0], 3.0), nb_square(x[0])));
}

static const nb_op cube = {.name = "cube", .arity = 1, .shape = nb_shape_same,
                           .forward = NB_KERNELS(cube), .backward = cube_backward};

/* A correct binary broadcasting user op: y = a * b + a. Its backward returns
 * gradients of the output's shape; the engine sums them back to each
 * input's shape because the op declares .broadcast. */
NB_BINARY_KERNELS(axpa, u *v + u)

static void axpa_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *a = x[0], *b = x[1];
    if (nb_requires_grad(a))
        dx[0] = nb_mul(dy, nb_add(b, nb_scalar_like(b, 1.0)));
    if (nb_requires_grad(b))
        dx[1] = nb_mul(dy, a);
}

static const nb_op axpa = {.name = "axpa", .arity = 2, .shape = nb_shape_broadcast,
                           .forward = NB_KERNELS(axpa), .backward = axpa_backward,
                           .broadcast = true};

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
    assert_int_equal(r.layout, NB_LAYOUT_CONTIGUOUS);
    assert_int_equal(r.verdict, NB_CHECK_FAILED);
    assert_int_equal(r.input[0].pattern, NB_PATTERN_FEW);
    assert_non_null(strstr(r.message, "Only 1 of the 12 elements of input 1 are wrong (the worst at (1,2))"));
    assert_int_equal(r.input[0].worst_out, 6); /* elementwise: output (1,2) */
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
    assert_non_null(strstr(t, "at (1,2) of output (1,2): analytic"));
    free(t);

    /* The same error is visible in f32, at f32 tolerances. */
    assert_false(nb_gradcheck(apply_ctx_op, (void *)&square_bad, 1, &x,
                              &(nb_check_opts){.dtype = NB_F32}, &r));
    assert_int_equal(r.input[0].worst, 6);
    assert_true(fabs(r.input[0].analytic / r.input[0].numeric - 1.5) < 1e-4);
    nb_free(x);
    assert_int_equal(nb_live_tensors(), 0);
}

/* In the other layouts the wrong element (1,2) of the view is found in the
 * base, at the position the layout maps it to (check.h). */
static void test_wrong_element_found_in_layouts(void **state)
{
    (void)state;
    nb_tensor *x = input34();
    double before[12];
    memcpy(before, nb_data(x), sizeof before);
    static const struct {
        nb_check_layout layout;
        int64_t at[2]; /* in the base */
        bool ratio;    /* analytic / numeric = 1.5 there */
    } want[] = {
        {NB_LAYOUT_PERMUTED, {2, 1}, true},  /* base (4,3): the index reversed */
        {NB_LAYOUT_SLICED, {2, 5}, true},    /* base (6,8): rows 4,2,0; columns 1,3,5,7 */
        {NB_LAYOUT_BROADCAST, {0, 2}, false} /* base (1,4): column 2 gets all rows' sum */
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        nb_check_opts o = {.layout = want[k].layout};
        nb_check_report r;
        assert_false(nb_gradcheck(apply_ctx_op, (void *)&square_bad, 1, &x, &o, &r));
        assert_int_equal(r.layout, want[k].layout);
        assert_int_equal(r.verdict, NB_CHECK_FAILED);
        const nb_check_input *in = &r.input[0];
        assert_false(in->ok);
        assert_int_equal(in->worst_index[0], want[k].at[0]);
        assert_int_equal(in->worst_index[1], want[k].at[1]);
        assert_int_equal(in->worst_index[2], -1);
        if (want[k].ratio)
            assert_true(fabs(in->analytic / in->numeric - 1.5) < 1e-6);
        /* Second order sees it too, and f32. */
        assert_false(nb_gradcheck(apply_ctx_op, (void *)&square_bad, 1, &x,
                                  &(nb_check_opts){.layout = o.layout, .dtype = NB_F32}, &r));
        assert_int_equal(r.input[0].worst_index[1], want[k].at[1]);
        char *t = report_text(&r);
        char head[64];
        snprintf(head, sizeof head, "gradcheck [%s]: FAIL", nb_check_layout_name(o.layout));
        assert_non_null(strstr(t, head));
        free(t);
    }
    /* x itself is never touched in these layouts (its bases are copies). */
    assert_memory_equal(nb_data(x), before, sizeof before);
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
    /* Also through nb_gradcheck_op, on random inputs: the contiguous layout
     * (checked first) is the one reported. */
    assert_false(nb_gradcheck_op(&square_3x, NULL, NB_SHAPES({4, 3}), &r));
    assert_false(r.input[0].ok);
    assert_int_equal(r.layout, NB_LAYOUT_CONTIGUOUS);
    nb_free(x);
}

static void test_gradgrad_catches_detached_backward(void **state)
{
    (void)state;
    nb_check_report r;
    /* First order is right (in every layout)... */
    assert_true(nb_gradcheck_op(&square_detached, NULL, NB_SHAPES({3, 4}), &r));
    /* ...but the backward has no gradient of its own. */
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{3, 4}}};
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++) {
        nb_check_opts o = {.layout = (nb_check_layout)l};
        assert_false(nb_check_example(&square_detached, &ex, 2, &o, &r));
        assert_int_equal(r.order, 2);
        assert_int_equal(r.n, 2);
        assert_false(r.input[0].ok); /* d/dx wrong: missing 2 * dy * w */
        assert_true(r.input[1].ok);  /* d/dv is right */
        assert_true(fabs(r.input[0].analytic) < 1e-12);
        assert_true(fabs(r.input[0].numeric) > 0.1);
    }
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
    assert_int_equal(r.layout, NB_LAYOUT_CONTIGUOUS); /* all passed: the contiguous report */
    assert_true(r.input[0].ok);
    assert_true(r.input[0].checked);
    assert_true(r.input[0].max_abs_err < 1e-6);

    ok = nb_gradcheck_op(&axpa, NULL, NB_SHAPES({4, 3}, {3}), &r);
    if (!ok)
        print_report("axpa:", &r);
    assert_true(ok);
    assert_int_equal(r.n, 2);
    assert_true(r.input[1].checked);

    /* 0-d and 3-d shapes. */
    assert_true(nb_gradcheck_op(&axpa, NULL, NB_SHAPES({0}, {2, 1, 3}), &r));
    assert_int_equal(r.input[0].worst_index[0], -1); /* 0-d: () */

    /* f32 and second order through nb_check_example, in every layout. */
    nb_op_example ex = {.n = 2, .ndim = {2, 1}, .shape = {{4, 3}, {3}}};
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++) {
        nb_check_layout layout = (nb_check_layout)l;
        assert_true(nb_check_example(&axpa, &ex, 1,
                                     &(nb_check_opts){.dtype = NB_F32, .layout = layout}, &r));
        assert_true(nb_check_example(&axpa, &ex, 2, &(nb_check_opts){.layout = layout}, &r));
        assert_int_equal(r.n, 3);
    }
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- an index input declared .nondiff ---- */

/* y = take(x, idx): y[j] = x[idx[j]] for a 1-D x and 1-D whole-number idx.
 * dx = index_add(zeros_like(x), 0, idx, dy); idx gets no gradient. The
 * shape rule counts every index that is not a whole number in range: if
 * gradcheck perturbed idx or drew it as reals, it would see them. */
static int64_t bad_indices, good_indices;
static unsigned seen_values; /* bit k: index k was seen */
static const nb_op take_op;

static int take_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    int64_t len = nb_numel(x[0]);
    if (nb_ndim(x[0]) != 1 || nb_ndim(x[1]) != 1)
        return nb_op_error(&take_op, "x and idx must be 1-D");
    for (int64_t j = 0; j < nb_numel(x[1]); j++) {
        double v = nb_get_flat(x[1], j);
        if (!(v == floor(v)) || v < 0 || v >= (double)len) {
            bad_indices++;
            return nb_op_error(&take_op, "idx[%lld] = %g is not a whole number in [0, %lld)",
                               (long long)j, v, (long long)len);
        }
        good_indices++;
        seen_values |= 1u << (int)v;
    }
    out->dtype = nb_dtype_of(x[0]);
    out->ndim = 1;
    out->shape[0] = nb_numel(x[1]);
    return 0;
}

/* Reads x and idx through their strides (they may be any views). */
#define TAKE_KERNEL(fn, T)                                                     \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        T *Y = y->data;                                                        \
        const T *X = x[0].data, *I = x[1].data;                                \
        for (int64_t j = 0; j < y->numel; j++)                                 \
            Y[j] = X[(int64_t)I[j * x[1].strides[0]] * x[0].strides[0]];       \
    }
TAKE_KERNEL(take_f32, float)
TAKE_KERNEL(take_f64, double)

static void take_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_index_add(nb_zeros_like(x[0]), 0, x[1], dy);
}

static const nb_op take_op = {.name = "take", .arity = 2, .shape = take_shape,
                              .forward = NB_KERNELS(take), .backward = take_backward,
                              .nondiff = NB_INPUT(1), .saves = NB_SAVES_X(1)};

static void test_nondiff_input(void **state)
{
    (void)state;
    nb_check_report r;
    /* idx: 7 whole numbers in [0, 5): repeats accumulate in dx. */
    nb_op_example ex = {.n = 2, .ndim = {1, 1}, .shape = {{5}, {7}},
                        .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 5}}};
    bad_indices = good_indices = 0;
    seen_values = 0;
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        for (int k = 0; k < NRUNS; k++) {
            nb_check_opts o = {.dtype = runs[k].dtype, .layout = (nb_check_layout)l};
            bool ok = nb_check_example(&take_op, &ex, runs[k].order, &o, &r);
            if (!ok)
                print_report("take:", &r);
            assert_true(ok);
            assert_true(r.input[0].ok);
            assert_true(r.input[0].checked);
            assert_false(r.input[1].checked); /* idx: skipped, never requires grad */
            if (runs[k].order == 2)
                assert_true(r.input[2].checked); /* v */
        }
    /* Hundreds of evaluations, and idx never was anything but whole numbers
     * in range: it was not perturbed. They came from the domain, [0, 5). */
    assert_int_equal(bad_indices, 0);
    assert_true(good_indices > 100);
    assert_true(seen_values & ~1u);
    assert_int_equal(seen_values & ~0x1fu, 0);

    /* nb_gradcheck_op: a .nondiff input is a 0/1 mask. */
    seen_values = 0;
    assert_true(nb_gradcheck_op(&take_op, NULL, NB_SHAPES({4}, {6}), &r));
    assert_int_equal(seen_values, 3);
    assert_int_equal(bad_indices, 0);

    /* A whole-number domain that is empty is the example's mistake. */
    nb_op_example empty = ex;
    empty.domain[1] = (nb_domain){.lo = 2.5, .hi = 3};
    assert_false(nb_check_example(&take_op, &empty, 1, NULL, &r));
    assert_non_null(strstr(r.message, "holds no whole number"));

    /* It is the declaration that gradcheck reads: without it, idx is drawn
     * as reals, requires grad, and the op refuses it. */
    nb_op undeclared = take_op;
    undeclared.nondiff = 0;
    assert_false(nb_check_example(&undeclared, &ex, 1, NULL, &r));
    assert_non_null(strstr(r.message, "take: idx[0]"));
    assert_non_null(strstr(r.message, "is not a whole number"));
    assert_true(bad_indices > 0);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- layouts: the views the op receives ---- */

/* y = x (a copy), recording the view its kernel is handed (per dtype: an
 * f32 check also evaluates in f64). */
static nb_view probed_by[NB_F64 + 1];
static int probes;

#define PROBE_KERNEL(fn, T)                                                    \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        probed_by[y->dtype] = x[0];                                            \
        probes++;                                                              \
        NB_MAP1(T, y, &x[0], u);                                               \
    }
PROBE_KERNEL(probe_f32, float)
PROBE_KERNEL(probe_f64, double)

static void probe_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = dy;
}

static const nb_op probe_op = {.name = "probe", .arity = 1, .shape = nb_shape_same,
                               .forward = NB_KERNELS(probe),
                               .backward = probe_backward, .saves = NB_SAVES_NONE};

static void test_layouts_make_views(void **state)
{
    (void)state;
    static const struct {
        nb_check_layout layout;
        int64_t strides[2];
        bool contiguous;
    } want[] = {
        {NB_LAYOUT_CONTIGUOUS, {4, 1}, true},
        {NB_LAYOUT_PERMUTED, {1, 3}, false},   /* a (4,3) base, transposed */
        {NB_LAYOUT_SLICED, {-16, 2}, false},   /* a (6,8) base, [4::-2, 1::2] */
        {NB_LAYOUT_BROADCAST, {0, 1}, false},  /* a (1,4) base, expanded */
    };
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{3, 4}}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
        for (int run = 0; run < NRUNS; run++) {
            nb_check_opts o = {.layout = want[k].layout, .dtype = runs[run].dtype};
            nb_check_report r;
            probes = 0;
            assert_true(nb_check_example(&probe_op, &ex, runs[run].order, &o, &r));
            assert_true(probes > 0);
            nb_view probed = probed_by[runs[run].dtype];
            assert_int_equal(probed.dtype, runs[run].dtype);
            assert_int_equal(probed.ndim, 2);
            assert_int_equal(probed.shape[0], 3);
            assert_int_equal(probed.shape[1], 4);
            assert_int_equal(probed.strides[0], want[k].strides[0]);
            assert_int_equal(probed.strides[1], want[k].strides[1]);
        }

    /* Where a layout cannot apply, the input is passed as it is: 0-d, all
     * dimensions 1, and (permuted) one dimension of size > 1. */
    nb_op_example scalar = {.n = 1, .ndim = {0}};
    nb_op_example ones = {.n = 1, .ndim = {2}, .shape = {{1, 1}}};
    nb_op_example row = {.n = 1, .ndim = {2}, .shape = {{1, 5}}};
    nb_check_report r;
    const nb_view *probed = &probed_by[NB_F64];
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++) {
        nb_check_opts o = {.layout = (nb_check_layout)l};
        assert_true(nb_check_example(&probe_op, &scalar, 1, &o, &r));
        assert_int_equal(probed->ndim, 0);
        assert_true(nb_check_example(&probe_op, &ones, 1, &o, &r));
        assert_int_equal(probed->strides[0], 1);
        assert_int_equal(probed->strides[1], 1);
        assert_true(nb_check_example(&probe_op, &row, 1, &o, &r));
        int64_t s = l == NB_LAYOUT_SLICED ? -2 : l == NB_LAYOUT_BROADCAST ? 0 : 1;
        assert_int_equal(probed->strides[1], s);
    }
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- a kernel that ignores strides is caught ---- */

/* y = x^2, but the kernel reads x as if it were packed row-major. */
#define RAW_SQUARE(fn, T)                                                      \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        const T *X = x[0].data;                                                \
        T *Y = y->data;                                                        \
        for (int64_t i = 0; i < y->numel; i++)                                 \
            Y[i] = X[i] * X[i];                                                \
    }
RAW_SQUARE(raw_square_f32, float)
RAW_SQUARE(raw_square_f64, double)

static void raw_square_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_mul(nb_scalar_like(x[0], 2.0), x[0]));
}

static const nb_op raw_square = {.name = "raw_square", .arity = 1, .shape = nb_shape_same,
                                 .forward = NB_KERNELS(raw_square),
                                 .backward = raw_square_backward, .saves = NB_SAVES_X(0)};
/* The same kernel, declaring that it needs its input packed. */
static const nb_op raw_square_packed = {.name = "raw_square_packed", .arity = 1,
                                        .shape = nb_shape_same,
                                        .forward = NB_KERNELS(raw_square),
                                        .backward = raw_square_backward,
                                        .contiguous = NB_INPUT(0), .saves = NB_SAVES_X(0)};

static void test_strided_kernel_caught(void **state)
{
    (void)state;
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{3, 4}}};
    nb_check_report r;
    /* Contiguous inputs: right. */
    for (int k = 0; k < NRUNS; k++)
        assert_true(nb_check_example(&raw_square, &ex, runs[k].order,
                                     &(nb_check_opts){.dtype = runs[k].dtype}, &r));
    /* Permuted and sliced views: its values are wrong, so the numeric
     * gradient disagrees with the (correct) backward, in f64 and f32. (The
     * second order checks the backward's own derivative, which never reads
     * the forward's values, so it cannot see this. And not broadcast: read
     * as packed, that view's 12 elements would run past its 4-element
     * storage.) */
    nb_check_layout caught[] = {NB_LAYOUT_PERMUTED, NB_LAYOUT_SLICED};
    nb_dtype dtypes[] = {NB_F64, NB_F32};
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 2; k++) {
            nb_check_opts o = {.dtype = dtypes[k], .layout = caught[l]};
            assert_false(nb_check_example(&raw_square, &ex, 1, &o, &r));
            assert_false(r.ok);
            assert_false(r.input[0].ok);
            assert_int_equal(r.verdict, NB_CHECK_FAILED);
        }
    /* One call that checks every layout says which one broke. */
    assert_false(nb_gradcheck_op(&raw_square, NULL, NB_SHAPES({3, 4}), &r));
    assert_int_equal(r.layout, NB_LAYOUT_PERMUTED);

    /* Declared .contiguous, the engine packs its input: right everywhere. */
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        for (int k = 0; k < NRUNS; k++) {
            nb_check_opts o = {.dtype = runs[k].dtype, .layout = (nb_check_layout)l};
            bool ok = nb_check_example(&raw_square_packed, &ex, runs[k].order, &o, &r);
            if (!ok)
                print_report("raw_square_packed:", &r);
            assert_true(ok);
        }
    assert_true(nb_gradcheck_op(&raw_square_packed, NULL, NB_SHAPES({2, 3, 4}), &r));
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- ops without gradient ---- */

static void test_no_grad_ops(void **state)
{
    (void)state;
    nb_check_report r;
    const nb_op *lt = nb_op_find("lt");
    assert_non_null(lt);
    nb_op_example ex = {.n = 2, .ndim = {1, 2}, .shape = {{4}, {3, 4}}};
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++) {
        nb_check_opts o = {.layout = (nb_check_layout)l};
        assert_true(nb_check_example(lt, &ex, 1, &o, &r));
        assert_string_equal(r.message, "no gradient (by design)");
        assert_int_equal(r.layout, l);
        o.dtype = NB_F32;
        assert_true(nb_check_example(lt, &ex, 1, &o, &r));
    }

    /* A user op declaring no gradient passes; one with neither a backward
     * nor that declaration is refused by nb_apply, and the check says so. */
    nb_op nograd = {.name = "nograd", .arity = 1, .shape = nb_shape_same,
                    .forward = NB_KERNELS(cube), .no_gradient = true};
    nb_op_example ex1 = {.n = 1, .ndim = {1}, .shape = {{3}}};
    assert_true(nb_check_example(&nograd, &ex1, 1, NULL, &r));
    assert_string_equal(r.message, "no gradient (by design)");
    nb_op undeclared = nograd;
    undeclared.no_gradient = false;
    assert_false(nb_check_example(&undeclared, &ex1, 1, NULL, &r));
    assert_non_null(strstr(r.message, "nograd: backward not implemented"));
    assert_false(nb_gradcheck_op(&undeclared, NULL, NB_SHAPES({3}), &r));
    assert_non_null(strstr(r.message, "backward not implemented"));

    /* No gradient by design with an index input (as one_hot's labels): the
     * .nondiff declaration still makes the index whole, in every layout. */
    nb_op take_nograd = take_op;
    take_nograd.backward = NULL;
    take_nograd.no_gradient = true;
    nb_op_example tex = {.n = 2, .ndim = {1, 1}, .shape = {{5}, {7}},
                         .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 5}}};
    bad_indices = 0;
    for (int l = 0; l < NB_CHECK_LAYOUTS; l++)
        for (int k = 0; k < NRUNS; k++) {
            nb_check_opts o = {.dtype = runs[k].dtype, .layout = (nb_check_layout)l};
            assert_true(nb_check_example(&take_nograd, &tex, runs[k].order, &o, &r));
            assert_string_equal(r.message, "no gradient (by design)");
        }
    assert_int_equal(bad_indices, 0);

    /* Inputs that do not fit: the op's own message. */
    nb_op_example bad = {.n = 2, .ndim = {1, 1}, .shape = {{3}, {4}}};
    assert_false(nb_check_example(lt, &bad, 1, NULL, &r));
    assert_non_null(strstr(r.message, "nb_lt"));
    assert_int_equal(nb_live_tensors(), 0);
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

    /* NB_MAX_INPUTS is the one limit, at both orders (at order 2 the
     * projection takes the report's extra entry). */
    nb_tensor *nine[NB_MAX_INPUTS + 1];
    for (int i = 0; i <= NB_MAX_INPUTS; i++)
        nine[i] = x;
    assert_false(nb_gradcheck(f_ident, NULL, NB_MAX_INPUTS + 1, nine, NULL, &r));
    assert_non_null(strstr(r.message, "1 to 8 inputs (NB_MAX_INPUTS), got 9"));
    assert_false(nb_gradgradcheck(f_ident, NULL, NB_MAX_INPUTS + 1, nine, NULL, &r));
    assert_non_null(strstr(r.message, "got 9"));
    assert_true(nb_gradcheck(f_ident, NULL, NB_MAX_INPUTS, nine, NULL, &r));
    assert_int_equal(r.n, NB_MAX_INPUTS);
    assert_true(nb_gradgradcheck(f_ident, NULL, NB_MAX_INPUTS, nine, NULL, &r));
    assert_int_equal(r.n, NB_MAX_INPUTS + 1);
    assert_true(r.input[NB_MAX_INPUTS].checked); /* v */
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
    assert_false(nb_gradcheck(f_ident, NULL, 1, &x,
                              &(nb_check_opts){.layout = (nb_check_layout)NB_CHECK_LAYOUTS}, &r));
    assert_non_null(strstr(r.message, "opts.layout is 4"));
    assert_int_equal(r.layout, NB_LAYOUT_CONTIGUOUS);

    /* No report: false and an error. */
    nb_clear_error();
    assert_false(nb_gradcheck(f_ident, NULL, 1, &x, NULL, NULL));
    assert_non_null(nb_last_error());

    /* Nothing requires grad. */
    nb_tensor *c = nb_ones(NB_F64, NB_SHAPE(3));
    assert_false(nb_gradcheck(f_ident, NULL, 1, &c, NULL, &r));
    assert_non_null(strstr(r.message, "no input requires grad"));

    /* A broadcast view cannot be perturbed one element at a time; in the
     * broadcast layout its values are copied into a base and it can. */
    nb_graph *g = nb_graph_new();
    nb_tensor *row = rand_input(NB_SHAPE(1, 5), 7);
    nb_tensor *wide = nb_broadcast_to(row, NB_SHAPE(3, 5));
    assert_false(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){wide, y}, NULL, &r));
    assert_non_null(strstr(r.message, "input 1 is a view whose elements share memory"));
    assert_true(nb_gradcheck(f_mix, NULL, 2, (nb_tensor *[]){wide, y},
                             &(nb_check_opts){.layout = NB_LAYOUT_BROADCAST}, &r));
    nb_graph_free(g);
    nb_free(row);

    /* The function fails: its error is the message. */
    assert_false(nb_gradcheck(f_broken, NULL, 2, (nb_tensor *[]){x, y}, NULL, &r));
    assert_false(r.ok);
    assert_non_null(strstr(r.message, "nb_add"));
    assert_non_null(strstr(r.message, "(3,4)"));
    assert_false(nb_gradgradcheck(f_broken, NULL, 2, (nb_tensor *[]){x, y}, NULL, &r));
    assert_non_null(strstr(r.message, "nb_add"));
    assert_false(nb_gradcheck(f_broken, NULL, 2, (nb_tensor *[]){x, y},
                              &(nb_check_opts){.layout = NB_LAYOUT_SLICED}, &r));
    assert_non_null(strstr(r.message, "nb_add"));
    assert_int_equal(r.verdict, NB_CHECK_ERROR);
    char *t = report_text(&r);
    assert_non_null(strstr(t, "gradcheck [sliced]: ERROR (seed 0"));
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
    assert_false(nb_check_example(&cube, &ex, 1,
                                  &(nb_check_opts){.layout = (nb_check_layout)-1}, &r));
    assert_non_null(strstr(r.message, "opts.layout"));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrong_element_found),
        cmocka_unit_test(test_wrong_element_found_in_layouts),
        cmocka_unit_test(test_wrong_everywhere),
        cmocka_unit_test(test_gradgrad_catches_detached_backward),
        cmocka_unit_test(test_user_ops_pass),
        cmocka_unit_test(test_nondiff_input),
        cmocka_unit_test(test_layouts_make_views),
        cmocka_unit_test(test_strided_kernel_caught),
        cmocka_unit_test(test_no_grad_ops),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("gradcheck_user", tests, NULL, NULL);
}
