/* y = sigmoid(x) = 1 / (1 + exp(-x));  dx = dy * y * (1 - y)
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
    dx[0] = nb_mul(dy, nb_mul(y, nb_sub(nb_scalar_like(y, 1.0), y)));
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
