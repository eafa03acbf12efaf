/* y = log(x);  dx = dy / x
 * (natural log; log(0) = -inf and log(x < 0) = NaN, as in C and NumPy) */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNEL_(log_f32, float, logf(u))
NB_UNARY_KERNEL_(log_f64, double, log(u))

static void log_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_div(dy, x[0]);
}

/* x kept in [0.5, 2], away from the pole at 0. */
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .domain = {{.lo = 0.5, .hi = 2}}},
    {.n = 1, .ndim = {0}, .domain = {{.lo = 0.5, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_log = {.name = "log", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                         .forward = NB_KERNELS(log), .backward = log_backward,
                         .saves = NB_SAVES_X(0), .batch = nb_batch_rows, .examples = examples};

nb_tensor *nb_log(nb_tensor *x) { return nb_apply(&nb_op_log, &x, 1, NULL); }
