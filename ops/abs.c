/* y = |x|;  dx = dy * sign(x)   (0 at x = 0: sign(0) = 0) */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNEL_(abs_f32, float, fabsf(u))
NB_UNARY_KERNEL_(abs_f64, double, fabs(u))

/* sign(x) is a constant (no gradient), so the second derivative is 0. */
static void abs_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_sign(x[0]));
}

/* Away from the kink at 0. */
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}},
     .domain = {{.lo = -1, .hi = 1, .away_from_zero = true}}},
    {.n = 1, .ndim = {0}, .domain = {{.lo = -1, .hi = 1, .away_from_zero = true}}},
    {.n = 0},
};

const nb_op nb_op_abs = {.name = "abs", .arity = 1, .shape = nb_shape_same,
                         .forward = NB_KERNELS(abs), .backward = abs_backward,
                         .saves = NB_SAVES_X(0), .batch = nb_batch_rows, .examples = examples};

nb_tensor *nb_abs(nb_tensor *x) { return nb_apply(&nb_op_abs, &x, 1, NULL); }
