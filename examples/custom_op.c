/* Defining your own ops and gradient-checking them (docs/adding-an-op.md).
 *
 *   softplus(x) = log(1 + exp(x))          dx = dy * sigmoid(x)
 *   rowdot(a, b) = sum(a * b, axis=-1)     da = dy[..., None] * b
 *                                          db = dy[..., None] * a
 *   reverse(x) = x[::-1] (along axis 0)    dx = reverse(dy)
 * rowdot's leading dimensions broadcast (a (4,3) with b (3,) is a @ b); its
 * backward returns gradients of the broadcast shape and the engine sums
 * each back to its input's shape. reverse is a view: its shape rule makes
 * y look into x's storage with a negative stride, and no kernel runs.
 *
 * The ops are written exactly like the built-in ones, with the kernel
 * helpers of nabla/kernel.h, and nothing is registered anywhere: an op is a
 * struct that nb_apply runs. The program uses the ops, checks them (first
 * order in every layout, second order, f32), then checks a softplus with a
 * broken backward, and prints the reports. Exit status 0 when the right ops
 * pass and the broken one is caught. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

/* ---- softplus: one input, same shape out ---- */

/* log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|). One kernel per
 * dtype, each an elementwise loop over u = x's elements, whatever x's
 * strides; NB_KERNELS(softplus) below collects them. */
NB_UNARY_KERNEL_(softplus_f32, float, fmaxf(u, 0.0f) + log1pf(expf(-fabsf(u))))
NB_UNARY_KERNEL_(softplus_f64, double, fmax(u, 0.0) + log1p(exp(-fabs(u))))

/* Written with nabla ops, so it can be differentiated again. */
static void softplus_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                              nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_sigmoid(x[0]));
}

static const nb_op softplus_op = {
    .name = "softplus",
    .arity = 1,
    .shape = nb_shape_same,          /* y has x's shape and dtype */
    .forward = NB_KERNELS(softplus), /* softplus_f32, softplus_f64 */
    .backward = softplus_backward,
    .saves = NB_SAVES_X(0), /* the backward reads x, not y */
};

static nb_tensor *softplus(nb_tensor *x) { return nb_apply(&softplus_op, &x, 1, NULL); }

/* The same op with a classic mistake: the derivative of the sigmoid
 * (s * (1 - s)) where the sigmoid itself belongs. */
static void softplus_wrong_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                    nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *s = nb_sigmoid(x[0]);
    dx[0] = nb_mul(dy, nb_mul(s, nb_sub(nb_ones_like(s), s)));
}

static const nb_op softplus_wrong = {
    .name = "softplus_wrong", .arity = 1, .shape = nb_shape_same,
    .forward = NB_KERNELS(softplus), .backward = softplus_wrong_backward,
    .saves = NB_SAVES_X(0),
};

/* ---- rowdot: two broadcasting inputs, a shape rule and a reduction ---- */

static const nb_op rowdot_op; /* defined below; the shape rule names it */

/* y: the broadcast of a and b without the last axis, which both must have. */
static int rowdot_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    char p[NB_SHAPE_STR_LEN], q[NB_SHAPE_STR_LEN];
    if (nb_ndim(x[0]) < 1 || nb_ndim(x[1]) < 1 || nb_dim(x[0], -1) != nb_dim(x[1], -1))
        return nb_op_error(&rowdot_op, "needs inputs with the same last dimension, got %s and %s",
                           nb_shape_str(x[0], p), nb_shape_str(x[1], q));
    if (nb_shape_broadcast(out, x, n, attr)) /* one dtype; the rest broadcasts */
        return -1;
    out->ndim--; /* the last axis is summed away */
    return 0;
}

/* The product a * b, broadcast, into scratch memory (a packed view of it),
 * then NB_REDUCE sums its last axis into y; f32 sums in double. */
#define ROWDOT_KERNEL(fn, T)                                                   \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        nb_view p = {.dtype = y->dtype, .ndim = y->ndim + 1, .numel = 1};     \
        for (int d = 0; d < p.ndim; d++) {                                     \
            p.shape[d] = d < y->ndim ? y->shape[d] : x[0].shape[x[0].ndim - 1]; \
            p.numel *= p.shape[d];                                             \
        }                                                                      \
        for (int64_t d = p.ndim - 1, s = 1; d >= 0; s *= p.shape[d], d--)     \
            p.strides[d] = s; /* row-major */                                  \
        if (!(p.data = nb_kernel_scratch((size_t)(p.numel + 1) * sizeof(T))))  \
            return; /* out of memory: nb_apply returns NULL with the error */  \
        NB_MAP2(T, &p, &x[0], &x[1], u * v);                                   \
        NB_REDUCE(T, double, y, &p, 1u << (p.ndim - 1), 0.0, acc + u);        \
    }
ROWDOT_KERNEL(rowdot_f32, float)
ROWDOT_KERNEL(rowdot_f64, double)

static void rowdot_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                            nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    /* dy has shape (...); as (..., 1) it broadcasts against a and b. The
     * products have the broadcast shape (..., k); the engine sums each
     * back to its input's shape, because the op declares .broadcast. */
    nb_tensor *g = nb_unsqueeze(dy, -1);
    if (nb_requires_grad(x[0]))
        dx[0] = nb_mul(g, x[1]);
    if (nb_requires_grad(x[1]))
        dx[1] = nb_mul(g, x[0]);
}

static const nb_op rowdot_op = {.name = "rowdot", .arity = 2, .shape = rowdot_shape,
                                .forward = NB_KERNELS(rowdot), .backward = rowdot_backward,
                                .broadcast = true, .saves = NB_SAVES_X(0) | NB_SAVES_X(1)};

static nb_tensor *rowdot(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&rowdot_op, (nb_tensor *[]){a, b}, 2, NULL);
}

/* ---- reverse: a view made by its shape rule, no kernel ---- */

static const nb_op reverse_op;

static nb_tensor *reverse(nb_tensor *x) { return nb_apply(&reverse_op, &x, 1, NULL); }

/* y = x[::-1] along axis 0: x's storage, walked backwards along axis 0. */
static int reverse_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    char b[NB_SHAPE_STR_LEN];
    if (nb_ndim(x[0]) < 1)
        return nb_op_error(&reverse_op, "needs at least one dimension, got %s",
                           nb_shape_str(x[0], b));
    nb_shape_same(out, x, n, attr); /* x's dtype and shape */
    out->view = true;               /* y looks into x[0]'s storage: no kernel runs */
    memcpy(out->strides, nb_strides(x[0]), (size_t)out->ndim * sizeof(int64_t));
    out->offset = nb_offset(x[0]);
    if (out->shape[0] > 1) {
        out->offset += (out->shape[0] - 1) * out->strides[0]; /* the last row first */
        out->strides[0] = -out->strides[0];
    }
    return 0;
}

/* dx = reverse(dy). */
static void reverse_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = reverse(dy);
}

static const nb_op reverse_op = {.name = "reverse", .arity = 1, .shape = reverse_shape,
                                 .backward = reverse_backward, .saves = NB_SAVES_NONE};

int main(void)
{
    int status = 0;
    nb_check_report r;

    /* 1. Use the ops like built-ins. */
    nb_tensor *x = nb_param(nb_from_array(NB_F64, NB_SHAPE(4), (double[]){-2, -0.5, 0.5, 3}));
    nb_graph *g = nb_graph_new();
    nb_tensor *loss = nb_sum(softplus(x));
    if (!loss || nb_backward(loss) != 0) {
        fprintf(stderr, "custom_op: %s\n", nb_last_error());
        return 1;
    }
    printf("softplus(x) summed = %.6f\nd/dx = sigmoid(x):\n", nb_item(loss));
    nb_print(nb_grad_of(x), stdout);

    /* rowdot of a transposed view (no copy) with a broadcast vector: A^T b. */
    nb_tensor *a = nb_from_array(NB_F64, NB_SHAPE(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    nb_tensor *b = nb_from_array(NB_F64, NB_SHAPE(3), (double[]){1, 0.5, -1});
    printf("rowdot(transpose(a), b):\n");
    nb_print(rowdot(nb_transpose(a, 0, 1), b), stdout);

    /* A view op: the rows of a in reverse order, sharing a's memory. */
    nb_tensor *ra = reverse(a);
    printf("reverse(a), strides (%lld,%lld):\n", (long long)nb_strides(ra)[0],
           (long long)nb_strides(ra)[1]);
    nb_print(ra, stdout);

    /* A user op's errors read like a built-in's. */
    if (!rowdot(a, b))
        printf("error, as expected: %s\n", nb_last_error());
    nb_graph_free(g);

    /* 2. Gradient checks: random inputs of the given shapes in [-1, 1],
     * handed to the op contiguous, then permuted, sliced and broadcast. */
    printf("\nnb_gradcheck_op(&softplus_op, NULL, NB_SHAPES({4, 3}), &r):\n");
    if (!nb_gradcheck_op(&softplus_op, NULL, NB_SHAPES({4, 3}), &r))
        status = 1;
    nb_check_report_print(&r, stdout);

    printf("\nnb_gradcheck_op(&rowdot_op, NULL, NB_SHAPES({2, 4, 3}, {4, 3}), &r):\n");
    if (!nb_gradcheck_op(&rowdot_op, NULL, NB_SHAPES({2, 4, 3}, {4, 3}), &r))
        status = 1;
    nb_check_report_print(&r, stdout);

    printf("\nnb_gradcheck_op(&reverse_op, NULL, NB_SHAPES({4, 3}), &r):\n");
    if (!nb_gradcheck_op(&reverse_op, NULL, NB_SHAPES({4, 3}), &r))
        status = 1;
    nb_check_report_print(&r, stdout);

    /* One layout, second order (the backward's own backward), and f32. */
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{4, 3}}, .domain = {{.lo = -3, .hi = 3}}};
    printf("\nsoftplus on (4,3) in [-3, 3], sliced inputs:\n");
    if (!nb_check_example(&softplus_op, &ex, 1, &(nb_check_opts){.layout = NB_LAYOUT_SLICED},
                          &r))
        status = 1;
    nb_check_report_print(&r, stdout);
    printf("\nsecond order:\n");
    if (!nb_check_example(&softplus_op, &ex, 2, NULL, &r))
        status = 1;
    nb_check_report_print(&r, stdout);
    printf("\nfirst order in f32:\n");
    if (!nb_check_example(&softplus_op, &ex, 1, &(nb_check_opts){.dtype = NB_F32}, &r))
        status = 1;
    nb_check_report_print(&r, stdout);

    /* 3. The broken backward is caught, with the worst element. */
    printf("\nnb_gradcheck_op(&softplus_wrong, NULL, NB_SHAPES({4, 3}), &r):\n");
    if (nb_gradcheck_op(&softplus_wrong, NULL, NB_SHAPES({4, 3}), &r))
        status = 1; /* it should have failed */
    nb_check_report_print(&r, stdout);

    nb_free(x);
    nb_free(a);
    nb_free(b);
    printf("\n%s\n", status ? "FAILED" : "the right ops pass, the broken one is caught");
    return status;
}
