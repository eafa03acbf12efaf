/* y = tanh(x);  dx = dy * (1 - y^2), as one op of its own:
 *   tanh_grad(dy, y) = dy * (1 - y*y)
 *     d/d(dy) = 1 - y*y = tanh_grad(g, y)      d/dy = -2 y dy
 * Its kernel rounds each step as the three ops it replaces did (ISO C, no
 * contraction), so the gradients are the same bits; one op instead of four
 * (with the constant) is most of what a small tanh's backward costs. */
#include "internal.h"

#include <math.h>

NB_UNARY_KERNEL_(tanh_f32, float, tanhf(u))
NB_UNARY_KERNEL_(tanh_f64, double, tanh(u))

static void tanh_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                          int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    dx[0] = nb_tanh_grad(dy, y);
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

NB_BINARY_KERNELS(tanh_grad, u * (1 - v * v))

static void tanh_grad_backward(nb_tensor *dx[], nb_tensor *g, nb_tensor *z, nb_tensor *const x[],
                               int n, const void *attr)
{
    (void)z, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = nb_tanh_grad(g, x[1]);
    if (x[1]->requires_grad)
        dx[1] = nb_mul(g, nb_mul(nb_scalar_like(x[1], -2.0), nb_mul(x[1], x[0])));
}

static const nb_op_example grad_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}, .domain = {{0}, {.lo = -1, .hi = 1}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}, .domain = {{0}, {.lo = -1, .hi = 1}}},
    {.n = 0},
};

const nb_op nb_op_tanh_grad = {.name = "tanh_grad", .arity = 2, .elementwise = true,
                               .shape = nb_shape_broadcast, .forward = NB_KERNELS(tanh_grad),
                               .backward = tanh_grad_backward, .broadcast = true,
                               .batch = nb_batch_rows, .saves = NB_SAVES_X(0) | NB_SAVES_X(1),
                               .examples = grad_examples};

nb_tensor *nb_tanh_grad(nb_tensor *dy, nb_tensor *y)
{
    return nb_apply(&nb_op_tanh_grad, (nb_tensor *[]){dy, y}, 2, NULL);
}
