/* Defining your own ops and gradient-checking them (docs/adding-an-op.md).
 *
 *   softplus(x) = log(1 + exp(x))     dx = dy * sigmoid(x)
 *   rowdot(a, b) = sum(a * b, axis=-1) da = dy[..., None] * b
 *                                      db = dy[..., None] * a
 *
 * Nothing is registered anywhere: an op is a struct that nb_apply runs.
 * The program checks both ops, then a softplus with a broken backward, and
 * prints the reports. Exit status 0 when the right ops pass and the broken
 * one is caught. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

/* ---- softplus: one input, same shape out ---- */

/* log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|). */
static void softplus_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    int64_t count = nb_numel(y);
    if (nb_dtype_of(y) == NB_F64) {
        const double *u = nb_data(x[0]);
        double *out = nb_data(y);
        for (int64_t i = 0; i < count; i++)
            out[i] = fmax(u[i], 0.0) + log1p(exp(-fabs(u[i])));
    } else {
        const float *u = nb_data(x[0]);
        float *out = nb_data(y);
        for (int64_t i = 0; i < count; i++)
            out[i] = fmaxf(u[i], 0.0f) + log1pf(expf(-fabsf(u[i])));
    }
}

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
    .shape = nb_shape_same, /* y has x's shape and dtype */
    .forward = softplus_forward,
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
    .forward = softplus_forward, .backward = softplus_wrong_backward,
    .saves = NB_SAVES_X(0),
};

/* ---- rowdot: two inputs, its own shape rule ---- */

static const nb_op rowdot_op; /* defined below; the shape rule names it */

/* "(4,3)" */
static const char *dims(const nb_tensor *t, char buf[96])
{
    int k = snprintf(buf, 96, "(");
    for (int i = 0; i < nb_ndim(t) && k < 80; i++)
        k += snprintf(buf + k, 96 - (size_t)k, i ? ",%lld" : "%lld", (long long)nb_dim(t, i));
    snprintf(buf + k, 96 - (size_t)k, ")");
    return buf;
}

/* Fills in y's dtype and shape, or explains why the inputs do not fit. */
static int rowdot_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    char p[96], q[96];
    int nd = nb_ndim(x[0]);
    if (nd < 1 || nb_ndim(x[1]) != nd ||
        memcmp(nb_shape(x[0]), nb_shape(x[1]), (size_t)nd * sizeof(int64_t)) != 0)
        return nb_op_error(&rowdot_op,
                           "needs two tensors of one shape (at least 1-D), got %s and %s",
                           dims(x[0], p), dims(x[1], q));
    if (nb_dtype_of(x[0]) != nb_dtype_of(x[1]))
        return nb_op_error(&rowdot_op, "dtypes differ: %s and %s",
                           nb_dtype_name(nb_dtype_of(x[0])), nb_dtype_name(nb_dtype_of(x[1])));
    out->dtype = nb_dtype_of(x[0]);
    out->ndim = nd - 1; /* the last axis is summed away */
    memcpy(out->shape, nb_shape(x[0]), (size_t)(nd - 1) * sizeof(int64_t));
    return 0;
}

static void rowdot_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    int64_t rows = nb_numel(y), k = nb_dim(x[0], -1);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        if (nb_dtype_of(y) == NB_F64) {
            const double *a = nb_data(x[0]), *b = nb_data(x[1]);
            for (int64_t j = 0; j < k; j++)
                s += a[r * k + j] * b[r * k + j];
            ((double *)nb_data(y))[r] = s;
        } else {
            const float *a = nb_data(x[0]), *b = nb_data(x[1]);
            for (int64_t j = 0; j < k; j++)
                s += (double)a[r * k + j] * b[r * k + j];
            ((float *)nb_data(y))[r] = (float)s;
        }
    }
}

static void rowdot_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                            nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    /* dy has shape (...); as (..., 1) it broadcasts against a and b. */
    int64_t keep[8];
    int nd = nb_ndim(x[0]);
    memcpy(keep, nb_shape(x[0]), (size_t)nd * sizeof(int64_t));
    keep[nd - 1] = 1;
    nb_tensor *g = nb_reshape(dy, nd, keep);
    if (nb_requires_grad(x[0]))
        dx[0] = nb_mul(g, x[1]);
    if (nb_requires_grad(x[1]))
        dx[1] = nb_mul(g, x[0]);
}

static const nb_op rowdot_op = {.name = "rowdot", .arity = 2, .shape = rowdot_shape,
                                .forward = rowdot_forward, .backward = rowdot_backward,
                                .saves = NB_SAVES_X(0) | NB_SAVES_X(1)};

static nb_tensor *rowdot(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&rowdot_op, (nb_tensor *[]){a, b}, 2, NULL);
}

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

    /* A user op's errors read like a built-in's. */
    nb_tensor *a = nb_ones(NB_F64, NB_SHAPE(4, 3)), *b = nb_ones(NB_F64, NB_SHAPE(4, 2));
    if (!rowdot(a, b))
        printf("error, as expected: %s\n", nb_last_error());
    nb_graph_free(g);

    /* 2. Gradient checks: random inputs of the given shapes in [-1, 1]. */
    printf("\nnb_gradcheck_op(&softplus_op, NULL, NB_SHAPES({4, 3}), &r):\n");
    if (!nb_gradcheck_op(&softplus_op, NULL, NB_SHAPES({4, 3}), &r))
        status = 1;
    nb_check_report_print(&r, stdout);

    printf("\nnb_gradcheck_op(&rowdot_op, NULL, NB_SHAPES({2, 4, 3}, {2, 4, 3}), &r):\n");
    if (!nb_gradcheck_op(&rowdot_op, NULL, NB_SHAPES({2, 4, 3}, {2, 4, 3}), &r))
        status = 1;
    nb_check_report_print(&r, stdout);

    /* Second order (the backward's own backward) and f32. */
    nb_op_example ex = {.n = 1, .ndim = {2}, .shape = {{4, 3}}, .domain = {{.lo = -3, .hi = 3}}};
    printf("\nsecond order, softplus on (4,3) in [-3, 3]:\n");
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
    return status;
}
