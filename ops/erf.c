/* y = erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt;
 * dx = dy * 2/sqrt(pi) * exp(-x^2)
 * (erf(+-inf) = +-1, NaN stays NaN). The exact GELU is built on it. */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNEL_(erf_f32, float, erff(u))
NB_UNARY_KERNEL_(erf_f64, double, erf(u))

/* Written with ops on the recorded x, so it differentiates again
 * (d2y = -2x * 2/sqrt(pi) * exp(-x^2)). For large |x| the square overflows
 * to inf and exp(-inf) = 0: the gradient is 0, never NaN. */
static void erf_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    const double two_over_sqrt_pi = 1.1283791670955125739; /* 2 / sqrt(pi) */
    nb_tensor *d = nb_mul(nb_scalar_like(x[0], two_over_sqrt_pi),
                          nb_exp(nb_neg(nb_square(x[0]))));
    dx[0] = nb_mul(dy, d);
}

/* Over [-2.5, 2.5]: the flat tails and the steep middle. */
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .domain = {{.lo = -2.5, .hi = 2.5}}},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 2}}, .domain = {{.lo = -1, .hi = 1}}},
    {.n = 1, .ndim = {0}, .domain = {{.lo = -2, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_erf = {.name = "erf", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                         .forward = NB_KERNELS(erf), .backward = erf_backward,
                         .saves = NB_SAVES_X(0), .batch = nb_batch_rows, .examples = examples};

nb_tensor *nb_erf(nb_tensor *x) { return nb_apply(&nb_op_erf, &x, 1, NULL); }
