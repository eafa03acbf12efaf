/* y = -x;  dx = -dy */
#include "internal.h"

NB_UNARY_KERNELS(neg, -u)

static void neg_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = nb_neg(dy);
}

static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}},
    {.n = 0},
};

const nb_op nb_op_neg = {.name = "neg", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                         .forward = NB_KERNELS(neg), .backward = neg_backward,
                         .saves = NB_SAVES_NONE, .batch = nb_batch_rows, .examples = examples};

nb_tensor *nb_neg(nb_tensor *x) { return nb_apply(&nb_op_neg, &x, 1, NULL); }
