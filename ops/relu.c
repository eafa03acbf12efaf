/* y = max(x, 0);  dx = dy * (x > 0)   (0 at x = 0; NaN stays NaN)
 * The backward is one op of its own, one pass with no mask tensor:
 *   relu_grad(dy, x) = dy * (x > 0)
 *     d/d(dy) = relu_grad(g, x)      d/dx = 0 (a step in x, at 0)
 * Its kernel multiplies by 1 or 0 as the comparison and the product it
 * replaces did, so the gradients are the same bits (-0 and NaN included). */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNELS(relu, u < 0 ? 0 : u)

static void relu_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_relu_grad(dy, x[0]);
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

NB_BINARY_KERNELS(relu_grad, u * (v > 0 ? 1 : 0))

static void relu_grad_backward(nb_tensor *dx[], nb_tensor *g, nb_tensor *z, nb_tensor *const x[],
                               int n, const void *attr)
{
    (void)z, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = nb_relu_grad(g, x[1]);
    if (x[1]->requires_grad) /* the step is flat on both sides */
        dx[1] = nb_full_like(x[1], 0.0);
}

/* The step: at 0 in x (input 2), where the mask is that from below. */
static double relu_grad_kink(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                             nb_kink *k)
{
    (void)n, (void)attr;
    if (i == 0)
        return INFINITY;
    *k = (nb_kink){.at = 0, .side = NB_SUBGRADIENT_LEFT};
    return fabs(nb__get(x[1], j));
}

static const nb_op_example grad_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}, .domain = {{0}, {.lo = -2, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_relu_grad = {.name = "relu_grad", .arity = 2, .elementwise = true,
                               .shape = nb_shape_broadcast, .forward = NB_KERNELS(relu_grad),
                               .backward = relu_grad_backward, .broadcast = true,
                               .batch = nb_batch_rows, .saves = NB_SAVES_X(1),
                               .examples = grad_examples, .kink = relu_grad_kink};

nb_tensor *nb_relu_grad(nb_tensor *dy, nb_tensor *x)
{
    return nb_apply(&nb_op_relu_grad, (nb_tensor *[]){dy, x}, 2, NULL);
}
