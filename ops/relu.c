/* y = max(x, 0);  dx = dy * (x > 0)   (0 at x = 0; NaN stays NaN) */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNELS(relu, u < 0 ? 0 : u)

/* The mask is a comparison (a constant), so the second derivative is 0. */
static void relu_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_mul(dy, nb_gt(x[0], nb_scalar_like(x[0], 0.0)));
}

/* The kink: at 0, where the backward gives the derivative from below. */
static double relu_kink(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                        nb_kink *k)
{
    (void)n, (void)i, (void)attr;
    *k = (nb_kink){.at = 0, .side = NB_SUBGRADIENT_LEFT};
    return fabs(nb__get(x[0], j));
}

static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .domain = {{.lo = -2, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_relu = {.name = "relu", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                          .forward = NB_KERNELS(relu), .backward = relu_backward,
                          .saves = NB_SAVES_X(0), .batch = nb_batch_rows, .examples = examples,
                          .kink = relu_kink};

nb_tensor *nb_relu(nb_tensor *x) { return nb_apply(&nb_op_relu, &x, 1, NULL); }
