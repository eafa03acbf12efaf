/* y = tanh(x);  dx = dy * (1 - y^2) */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNEL_(tanh_f32, float, tanhf(u))
NB_UNARY_KERNEL_(tanh_f64, double, tanh(u))

static void tanh_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_sub(nb_scalar_like(y, 1.0), nb_square(y)));
}

static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .domain = {{.lo = -2, .hi = 2}}},
    {.n = 1, .ndim = {0}, .domain = {{.lo = -2, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_tanh = {.name = "tanh", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                          .forward = NB_KERNELS(tanh), .backward = tanh_backward,
                          .saves = NB_SAVES_Y, .batch = nb_batch_rows, .examples = examples};

nb_tensor *nb_tanh(nb_tensor *x) { return nb_apply(&nb_op_tanh, &x, 1, NULL); }
