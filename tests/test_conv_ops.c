/* The convolution ops behind nb_convolution (ops/conv.c): in f64 their
 * values and gradients are the bits of the composition they replaced
 * (im2col, matmul, col2im, add for the bias); in f32 (oneDNN's primitives in a build with
 * oneDNN, test_c_args NB_EXPECT_ONEDNN) they agree with f64 at the
 * convnet's real sizes, and oneDNN takes those sizes rather than falling
 * back; misuse through nb_apply is an error naming the op. The gradient
 * tables (test_gradcheck.c) check the three ops to second order. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* A window and groups, with x (n,h,w,c) and f filters. */
typedef struct {
    int64_t n, h, w, c, f, groups;
    nb_window2d win;
} op_case;

#define W2(kh, kw, sh, sw, dh, dw, t, b, l, r) {{kh, kw}, {sh, sw}, {dh, dw}, {t, b, l, r}}
static const op_case cases[] = {
    {2, 6, 7, 3, 4, 1, W2(3, 3, 1, 1, 1, 1, 0, 0, 0, 0)},
    {1, 7, 6, 2, 3, 1, W2(3, 2, 2, 1, 1, 1, 1, 2, 0, 1)},  /* strided, uneven padding */
    {2, 8, 8, 2, 2, 1, W2(3, 3, 1, 2, 2, 3, 2, 2, 3, 3)},  /* dilated */
    {2, 5, 5, 4, 6, 2, W2(3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},  /* groups */
    {1, 6, 6, 3, 6, 3, W2(2, 2, 2, 2, 1, 1, 0, 1, 0, 1)},  /* depthwise, 2 per channel */
    {2, 4, 5, 4, 3, 1, W2(1, 1, 1, 1, 1, 1, 0, 0, 0, 0)},  /* 1x1: x multiplied as it is */
    {1, 5, 5, 4, 4, 2, W2(1, 1, 1, 1, 1, 1, 0, 0, 0, 0)},  /* 1x1, groups */
    {1, 5, 6, 2, 3, 1, W2(1, 1, 2, 2, 1, 1, 1, 0, 0, 1)},  /* 1x1, strided and padded */
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

/* The composition nb_convolution was before the ops: im2col, one matmul
 * (batched over groups), reshapes and permutes. */
static nb_tensor *composed_(nb_tensor *x, nb_tensor *w, const op_case *c)
{
    int64_t g = c->groups, C = c->c, F = c->f, T = c->win.kernel[0] * c->win.kernel[1];
    nb_tensor *cols = nb_im2col(x, c->win);
    int64_t OH = nb_dim(cols, 1), OW = nb_dim(cols, 2), M = c->n * OH * OW;
    if (g == 1)
        return nb_reshape(nb_matmul(nb_reshape(cols, NB_SHAPE(M, T * C)),
                                    nb_reshape(w, NB_SHAPE(T * C, F))),
                          NB_SHAPE(c->n, OH, OW, F));
    nb_tensor *pg = nb_reshape(nb_permute(nb_reshape(cols, NB_SHAPE(M, T, g, C / g)), 4,
                                          (const int[]){2, 0, 1, 3}),
                               NB_SHAPE(g, M, T * C / g));
    nb_tensor *wg = nb_permute(nb_reshape(w, NB_SHAPE(T * C / g, g, F / g)), 3,
                               (const int[]){1, 0, 2});
    return nb_reshape(nb_permute(nb_matmul(pg, wg), 3, (const int[]){1, 0, 2}),
                      NB_SHAPE(c->n, OH, OW, F));
}

static nb_tensor *composed(nb_tensor *x, nb_tensor *w, nb_tensor *b, const op_case *c)
{
    nb_tensor *y = composed_(x, w, c);
    return b ? nb_add(y, b) : y;
}

static nb_tensor *by_op(nb_tensor *x, nb_tensor *w, nb_tensor *b, const op_case *c)
{
    nb__conv_attr a = {.win = c->win, .groups = c->groups, .h = c->h, .w = c->w};
    return nb__conv2d(x, w, b, &a);
}

typedef nb_tensor *conv_fn(nb_tensor *, nb_tensor *, nb_tensor *, const op_case *);

/* y and the gradients of sum(y * r) in x, w and b (when not NULL), into
 * out[0..3]. */
static void run(conv_fn *conv, nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_tensor *r,
                const op_case *c, nb_tensor *out[4])
{
    nb_tensor *y = conv(x, w, b, c);
    assert_non_null(y);
    nb_tensor *in[3] = {x, w, b};
    assert_int_equal(nb_grad(nb_sum(nb_mul(y, r)), .n = b ? 3 : 2, .inputs = in,
                             .grads = out + 1), 0);
    out[0] = y;
}

static const char *const what[4] = {"y", "dx", "dw", "db"};

static void test_f64_bits_of_the_composition(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(5);
    for (int k = 0; k < NCASES; k++) {
        const op_case *c = &cases[k];
        nb_graph *g = nb_graph_new();
        nb_tensor *x = nb_set_requires_grad(
            nb_randn(NB_F64, NB_SHAPE(c->n, c->h, c->w, c->c), &rng), true);
        nb_tensor *w = nb_set_requires_grad(
            nb_randn(NB_F64, NB_SHAPE(c->win.kernel[0], c->win.kernel[1], c->c / c->groups,
                                      c->f), &rng), true);
        nb_tensor *bias = nb_set_requires_grad(nb_randn(NB_F64, NB_SHAPE(c->f), &rng), true);
        int64_t oh, ow;
        assert_int_equal(nb__window_out("test", &c->win, c->h, c->w, &oh, &ow), 0);
        nb_tensor *r = nb_randn(NB_F64, NB_SHAPE(c->n, oh, ow, c->f), &rng), *a[4], *b[4];
        for (int with_b = 0; with_b < 2; with_b++) {
            run(by_op, x, w, with_b ? bias : NULL, r, c, a);
            run(composed, x, w, with_b ? bias : NULL, r, c, b);
            for (int i = 0; i < 3 + with_b; i++)
                if (!same_bits(nb_contiguous(a[i]), nb_contiguous(b[i])))
                    fail_msg("case %d%s: %s differs from the composition's", k,
                             with_b ? " with a bias" : "", what[i]);
        }
        nb_graph_free(g);
        nb_free(r), nb_free(x), nb_free(w), nb_free(bias);
    }
}

/* ---- f32 (oneDNN's where built with it) against f64 at real sizes ---- */

/* The Keras MNIST convnet's two layers at a small batch, a grouped strided
 * SAME layer, a dilated one, a depthwise one and a 1x1 one. */
static const op_case real[] = {
    {3, 28, 28, 1, 32, 1, W2(3, 3, 1, 1, 1, 1, 0, 0, 0, 0)},
    {3, 13, 13, 32, 64, 1, W2(3, 3, 1, 1, 1, 1, 0, 0, 0, 0)},
    {2, 9, 9, 16, 32, 4, W2(3, 3, 2, 2, 1, 1, 1, 1, 1, 1)},
    {2, 12, 11, 8, 16, 1, W2(3, 3, 1, 1, 2, 2, 2, 2, 2, 2)},
    {2, 10, 10, 24, 24, 24, W2(3, 3, 1, 1, 1, 1, 1, 1, 1, 1)},
    {2, 7, 7, 32, 16, 1, W2(1, 1, 1, 1, 1, 1, 0, 0, 0, 0)},
};
#define NREAL (int)(sizeof real / sizeof real[0])

/* The largest |a - b| over the largest |b|: a relative error of the whole. */
static double rel_err(nb_tensor *a, nb_tensor *b)
{
    int64_t n = nb_numel(b);
    assert_int_equal(nb_numel(a), n);
    double *p = malloc((size_t)n * sizeof *p), *q = malloc((size_t)n * sizeof *q), err = 0,
           big = 0;
    assert_true(p && q);
    assert_int_equal(nb_to_doubles(a, p), 0);
    assert_int_equal(nb_to_doubles(b, q), 0);
    for (int64_t i = 0; i < n; i++) {
        err = fmax(err, fabs(p[i] - q[i]));
        big = fmax(big, fabs(q[i]));
    }
    free(p), free(q);
    return big > 0 ? err / big : err;
}

static void test_f32_against_f64(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(9);
    for (int k = 0; k < NREAL; k++) {
        const op_case *c = &real[k];
        nb_graph *g = nb_graph_new();
        int64_t oh, ow;
        assert_int_equal(nb__window_out("test", &c->win, c->h, c->w, &oh, &ow), 0);
        nb_tensor *x = nb_set_requires_grad(
            nb_randn(NB_F64, NB_SHAPE(c->n, c->h, c->w, c->c), &rng), true);
        nb_tensor *w = nb_set_requires_grad(
            nb_randn(NB_F64, NB_SHAPE(c->win.kernel[0], c->win.kernel[1], c->c / c->groups,
                                      c->f), &rng), true);
        nb_tensor *r = nb_randn(NB_F64, NB_SHAPE(c->n, oh, ow, c->f), &rng);
        nb_tensor *b = nb_set_requires_grad(nb_randn(NB_F64, NB_SHAPE(c->f), &rng), true);
        nb_tensor *x32 = nb_set_requires_grad(nb_detach(nb_cast(x, NB_F32)), true);
        nb_tensor *w32 = nb_set_requires_grad(nb_detach(nb_cast(w, NB_F32)), true);
        nb_tensor *b32 = nb_set_requires_grad(nb_detach(nb_cast(b, NB_F32)), true);
        nb_tensor *d[4], *s[4];
        run(by_op, x, w, b, r, c, d);
        run(by_op, x32, w32, b32, nb_cast(r, NB_F32), c, s);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(nb_dtype_of(s[i]), NB_F32);
            double e = rel_err(s[i], d[i]);
            if (!(e < 2e-6))
                fail_msg("case %d: %s in f32 is off by %.3g of its largest value", k, what[i],
                         e);
        }
        nb_graph_free(g);
        nb_free(x), nb_free(w), nb_free(b), nb_free(r);
    }
}

#ifdef NB_EXPECT_ONEDNN
/* oneDNN takes every kind at these sizes (nothing falls back to the
 * portable kernel), and its results are those of f64 to f32 rounding. */
static nb_view view_of(nb_tensor *t)
{
    nb_view v = {.data = nb_data(t), .dtype = nb_dtype_of(t), .ndim = nb_ndim(t),
                 .numel = nb_numel(t)};
    for (int i = 0; i < v.ndim; i++)
        v.shape[i] = nb_dim(t, i);
    nb__strides(v.ndim, v.shape, v.strides);
    return v;
}

static void test_onednn_takes_them(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(13);
    for (int k = 0; k < NREAL; k++) {
        const op_case *c = &real[k];
        nb_graph *g = nb_graph_new();
        nb__conv_attr a = {.win = c->win, .groups = c->groups, .h = c->h, .w = c->w};
        int64_t oh, ow;
        assert_int_equal(nb__window_out("test", &c->win, c->h, c->w, &oh, &ow), 0);
        nb_tensor *x = nb_randn(NB_F64, NB_SHAPE(c->n, c->h, c->w, c->c), &rng);
        nb_tensor *w = nb_randn(NB_F64, NB_SHAPE(c->win.kernel[0], c->win.kernel[1],
                                                 c->c / c->groups, c->f), &rng);
        nb_tensor *dy = nb_randn(NB_F64, NB_SHAPE(c->n, oh, ow, c->f), &rng);
        nb_tensor *b = nb_randn(NB_F64, NB_SHAPE(c->f), &rng);
        nb_tensor *want[3] = {nb__conv2d(x, w, b, &a), nb__conv2d_input_grad(dy, w, &a),
                              nb__conv2d_kernel_grad(x, dy, &a)};
        nb_tensor *x32 = nb_cast(x, NB_F32), *w32 = nb_cast(w, NB_F32),
                  *dy32 = nb_cast(dy, NB_F32);
        nb_tensor *got[3] = {nb_zeros_like(nb_cast(want[0], NB_F32)),
                             nb_zeros_like(x32), nb_zeros_like(w32)};
        nb_view vx = view_of(x32), vw = view_of(w32), vdy = view_of(dy32),
                vb = view_of(nb_cast(b, NB_F32));
        nb_view out[3] = {view_of(got[0]), view_of(got[1]), view_of(got[2])};
        bool took[3] = {nb__onednn_conv(NB__CONV_FORWARD, &out[0], &vx, &vw, &vb, &a),
                        nb__onednn_conv(NB__CONV_INPUT_GRAD, &out[1], &vdy, &vw, NULL, &a),
                        nb__onednn_conv(NB__CONV_KERNEL_GRAD, &out[2], &vx, &vdy, NULL, &a)};
        for (int i = 0; i < 3; i++)
            if (!took[i])
                fail_msg("case %d: oneDNN refused the %s", k,
                         (const char *[]){"forward", "input gradient", "kernel gradient"}[i]);
        for (int i = 0; i < 3; i++)
            if (!(rel_err(got[i], want[i]) < 2e-6))
                fail_msg("case %d: oneDNN's %s is off by %.3g", k,
                         (const char *[]){"forward", "input gradient", "kernel gradient"}[i],
                         rel_err(got[i], want[i]));
        nb_graph_free(g);
        nb_free(x), nb_free(w), nb_free(dy), nb_free(b);
    }
}
#endif

/* ---- misuse through nb_apply: errors naming the op, never a crash ---- */

static void test_op_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    const nb_op *conv = nb_op_find("conv2d"), *ig = nb_op_find("conv2d_input_grad"),
                *kg = nb_op_find("conv2d_kernel_grad");
    assert_true(conv && ig && kg);
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(1, 5, 5, 4));
    nb_tensor *w = nb_zeros(NB_F32, NB_SHAPE(3, 3, 4, 2));
    nb_tensor *w64 = nb_zeros(NB_F64, NB_SHAPE(3, 3, 4, 2));
    nb_tensor *x3 = nb_zeros(NB_F32, NB_SHAPE(5, 5, 4));
    nb_tensor *dy = nb_zeros(NB_F32, NB_SHAPE(1, 3, 3, 2));
    nb_tensor *w7 = nb_zeros(NB_F32, NB_SHAPE(7, 7, 4, 2));
    nb_tensor *dy2 = nb_zeros(NB_F32, NB_SHAPE(2, 3, 3, 2));
    nb_tensor *b3 = nb_zeros(NB_F32, NB_SHAPE(3)), *b64 = nb_zeros(NB_F64, NB_SHAPE(2));
    nb_tensor *u8 = nb_zeros(NB_U8, NB_SHAPE(1, 5, 5, 4));
    nb_tensor *w8 = nb_zeros(NB_U8, NB_SHAPE(3, 3, 4, 2));
    nb__conv_attr a = {.win = W2(3, 3, 1, 1, 1, 1, 0, 0, 0, 0), .groups = 1, .h = 5, .w = 5};
    nb__conv_attr bad = a;
#define APPLY(op, p, q, attr) nb_apply(op, (nb_tensor *[]){p, q}, 2, attr)
    FAILS(APPLY(conv, x3, w, &a), "nb_conv2d: inputs must be 4-D, got (5,5,4) and (3,3,4,2)");
    FAILS(APPLY(conv, x, w64, &a), "nb_conv2d: dtypes differ: f32 (1,5,5,4) and f64 (3,3,4,2)");
    bad.groups = 0;
    FAILS(APPLY(conv, x, w, &bad),
          "nb_conv2d: groups 0 must be at least 1 and divide the 4 channels and 2 filters");
    bad = a, bad.win.kernel[1] = 2;
    FAILS(APPLY(conv, x, w, &bad), "nb_conv2d: the kernel (3,3,4,2) is not the window's (3,2) "
                                   "over 4 channels in 1 groups to 2 filters");
    bad = a, bad.win.stride[0] = 0;
    FAILS(APPLY(conv, x, w, &bad), "nb_conv2d: kernel (3,3), stride (0,1) and dilation (1,1) "
                                   "must be at least 1");
    bad = a, bad.win.kernel[0] = bad.win.kernel[1] = 7;
    FAILS(APPLY(conv, x, w7, &bad),
          "nb_conv2d: the window (7,7) with dilation (1,1) is larger than the padded image "
          "(5+0+0, 5+0+0)");
    bad = a, bad.h = -1;
    FAILS(APPLY(ig, dy, w, &bad), "nb_conv2d_input_grad: image size (-1,5) must not be negative");
    bad = a, bad.h = 6;
    FAILS(APPLY(ig, dy, w, &bad), "nb_conv2d_input_grad: dy (1,3,3,2) is not the output of the "
                                  "window over a 6x5 image, (N,4,3,2)");
    bad = a, bad.groups = INT64_MAX;
    FAILS(APPLY(ig, dy, w, &bad), "nb_conv2d_input_grad: 9223372036854775807 groups of w "
                                  "(3,3,4,2) overflow");
    FAILS(APPLY(kg, x, dy2, &a),
          "nb_conv2d_kernel_grad: dy (2,3,3,2) is not the output of the window over x "
          "(1,5,5,4), (1,3,3,F)");
    FAILS(nb_apply(conv, (nb_tensor *[]){x, w, b3}, 3, &a),
          "nb_conv2d: b f32 (3,) must be f32 (2,), one per filter of w (3,3,4,2)");
    FAILS(nb_apply(conv, (nb_tensor *[]){x, w, b64}, 3, &a),
          "nb_conv2d: b f64 (2,) must be f32 (2,)");
    FAILS(nb_apply(conv, (nb_tensor *[]){x, w, w, w}, 4, &a),
          "nb_conv2d: takes x, w and an optional b, got 4 inputs");
    assert_null(APPLY(conv, u8, w8, &a));
    assert_non_null(strstr(nb_last_error(), "nb_conv2d"));
    /* and the valid call works */
    assert_non_null(APPLY(conv, x, w, &a));
    assert_non_null(APPLY(ig, dy, w, &a));
    assert_non_null(APPLY(kg, x, dy, &a));
#undef APPLY
    nb_graph_free(g);
    nb_tensor *heap[] = {x, w, w64, x3, dy, w7, dy2, b3, b64, u8, w8};
    for (size_t i = 0; i < sizeof heap / sizeof *heap; i++)
        nb_free(heap[i]);
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f64_bits_of_the_composition),
        cmocka_unit_test(test_f32_against_f64),
#ifdef NB_EXPECT_ONEDNN
        cmocka_unit_test(test_onednn_takes_them),
#endif
        cmocka_unit_test(test_op_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
