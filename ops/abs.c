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

/* The kink: at 0, where sign(0) = 0 is the mean of the one-sided -1 and 1. */
static double abs_kink(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                       nb_kink *k)
{
    (void)n, (void)i, (void)attr;
    *k = (nb_kink){.at = 0, .side = NB_SUBGRADIENT_MEAN};
    return fabs(nb__get(x[0], j));
}

static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}},
    {.n = 1, .ndim = {0}},
    {.n = 0},
};

const nb_op nb_op_abs = {.name = "abs", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                         .forward = NB_KERNELS(abs), .backward = abs_backward,
                         .saves = NB_SAVES_X(0), .batch = nb_batch_rows, .examples = examples,
                         .kink = abs_kink};

nb_tensor *nb_abs(nb_tensor *x) { return nb_apply(&nb_op_abs, &x, 1, NULL); }
