/* y = sqrt(x);  dx = dy / (2 y)
 * (sqrt(x < 0) = NaN; the gradient at 0 is +inf, as in C and PyTorch) */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNEL_(sqrt_f32, float, sqrtf(u))
NB_UNARY_KERNEL_(sqrt_f64, double, sqrt(u))

/* y is sqrt(x) as recorded, so the rule differentiates again. */
static void sqrt_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    dx[0] = nb_div(dy, nb_mul(y, nb_scalar_like(y, 2.0)));
}

/* x kept in [0.5, 2], away from the infinite slope at 0. */
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .domain = {{.lo = 0.5, .hi = 2}}},
    {.n = 1, .ndim = {0}, .domain = {{.lo = 0.5, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_sqrt = {.name = "sqrt", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                          .forward = NB_KERNELS(sqrt), .backward = sqrt_backward,
                          .saves = NB_SAVES_Y, .batch = nb_batch_rows, .examples = examples};

nb_tensor *nb_sqrt(nb_tensor *x) { return nb_apply(&nb_op_sqrt, &x, 1, NULL); }
