/* y = exp(x);  dx = dy * y */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNEL_(exp_f32, float, expf(u))
NB_UNARY_KERNEL_(exp_f64, double, exp(u))

/* y is exp(x) as recorded, so dy * y differentiates again (d2y = y). */
static void exp_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    dx[0] = nb_mul(dy, y);
}

static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .domain = {{.lo = -2, .hi = 2}}},
    {.n = 1, .ndim = {0}, .domain = {{.lo = -2, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_exp = {.name = "exp", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                         .forward = NB_KERNELS(exp), .backward = exp_backward,
                         .saves = NB_SAVES_Y, .batch = nb_batch_rows, .examples = examples};

nb_tensor *nb_exp(nb_tensor *x) { return nb_apply(&nb_op_exp, &x, 1, NULL); }
