/* y = sigmoid(x) = 1 / (1 + exp(-x));  dx = dy * y * (1 - y), as one op:
 *   sigmoid_grad(dy, y) = dy * (y * (1 - y))
 *     d/d(dy) = sigmoid_grad(g, y)      d/dy = dy (1 - 2y)
 * rounded step by step as the ops it replaces (the same bits).
 * Evaluated without overflow: for x < 0 as e / (1 + e) with e = exp(x), so
 * exp only ever sees a non-positive argument (sigmoid(-1000) = 0 exactly,
 * sigmoid(1000) = 1, and no overflow is raised). */
#include "internal.h"

#include <math.h>

static inline double sigmoid_d(double u)
{
    if (u >= 0)
        return 1.0 / (1.0 + exp(-u));
    double e = exp(u); /* NaN lands here and stays NaN */
    return e / (1.0 + e);
}

static inline float sigmoid_s(float u)
{
    if (u >= 0)
        return 1.0f / (1.0f + expf(-u));
    float e = expf(u);
    return e / (1.0f + e);
}

NB_UNARY_KERNEL_(sigmoid_f32, float, sigmoid_s(u))
NB_UNARY_KERNEL_(sigmoid_f64, double, sigmoid_d(u))

/* y is sigmoid(x) as recorded, so the rule differentiates again. */
static void sigmoid_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    dx[0] = nb_sigmoid_grad(dy, y);
}

/* Both branches of the kernel are exercised (x of either sign). */
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .domain = {{.lo = -4, .hi = 4}}},
    {.n = 1, .ndim = {0}, .domain = {{.lo = -4, .hi = 4}}},
    {.n = 0},
};

const nb_op nb_op_sigmoid = {.name = "sigmoid", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                             .forward = NB_KERNELS(sigmoid), .backward = sigmoid_backward,
                             .saves = NB_SAVES_Y, .batch = nb_batch_rows,
                             .examples = examples};

nb_tensor *nb_sigmoid(nb_tensor *x) { return nb_apply(&nb_op_sigmoid, &x, 1, NULL); }

NB_BINARY_KERNELS(sigmoid_grad, u * (v * (1 - v)))

static void sigmoid_grad_backward(nb_tensor *dx[], nb_tensor *g, nb_tensor *z,
                                  nb_tensor *const x[], int n, const void *attr)
{
    (void)z, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = nb_sigmoid_grad(g, x[1]);
    if (x[1]->requires_grad)
        dx[1] = nb_mul(nb_mul(g, x[0]),
                       nb_sub(nb_scalar_like(x[1], 1.0), nb_mul(nb_scalar_like(x[1], 2.0), x[1])));
}

static const nb_op_example grad_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}, .domain = {{0}, {.lo = 0, .hi = 1}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}, .domain = {{0}, {.lo = 0, .hi = 1}}},
    {.n = 0},
};

const nb_op nb_op_sigmoid_grad = {.name = "sigmoid_grad", .arity = 2, .elementwise = true,
                                  .shape = nb_shape_broadcast,
                                  .forward = NB_KERNELS(sigmoid_grad),
                                  .backward = sigmoid_grad_backward, .broadcast = true,
                                  .batch = nb_batch_rows, .saves = NB_SAVES_X(0) | NB_SAVES_X(1),
                                  .examples = grad_examples};

nb_tensor *nb_sigmoid_grad(nb_tensor *dy, nb_tensor *y)
{
    return nb_apply(&nb_op_sigmoid_grad, (nb_tensor *[]){dy, y}, 2, NULL);
}
