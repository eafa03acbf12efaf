/* add, sub, mul, div: broadcasting arithmetic.
 *   y = a + b   da = dy         db = dy
 *   y = a - b   da = dy         db = -dy
 *   y = a * b   da = dy * b     db = dy * a
 *   y = a / b   da = dy / b     db = -dy * a / b^2
 * each summed back to its input's shape where that input was broadcast. */
#include "internal.h"

NB_BINARY_KERNELS(add, u + v)
NB_BINARY_KERNELS(sub, u - v)
NB_BINARY_KERNELS(mul, u *v)
NB_BINARY_KERNELS(div, u / v)

/* Gradients come back in the output's shape; the engine sums them down to
 * each input's (these ops declare .broadcast). */
static void add_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = dy;
    if (x[1]->requires_grad)
        dx[1] = dy;
}

static void sub_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = dy;
    if (x[1]->requires_grad)
        dx[1] = nb_neg(dy);
}

static void mul_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = nb_mul(dy, x[1]);
    if (x[1]->requires_grad)
        dx[1] = nb_mul(dy, x[0]);
}

static void div_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *g = nb_div(dy, x[1]);
    if (x[0]->requires_grad)
        dx[0] = g;
    /* -dy * a / b^2, written from the inputs (not y) so it differentiates again. */
    if (x[1]->requires_grad)
        dx[1] = nb_neg(nb_div(nb_mul(g, x[0]), x[1]));
}

static const nb_op_example examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}},
    {.n = 2, .ndim = {3, 2}, .shape = {{2, 1, 4}, {3, 1}}},
    {.n = 2, .ndim = {0, 2}, .shape = {{0}, {2, 3}}},
    {.n = 0},
};
static const nb_op_example div_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}, .domain = {{.lo = -1, .hi = 1}, {.lo = 0.5, .hi = 2}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}, .domain = {{.lo = -1, .hi = 1}, {.lo = -2, .hi = -0.5}}},
    {.n = 2, .ndim = {1, 3}, .shape = {{4}, {2, 3, 1}}, .domain = {{.lo = -1, .hi = 1}, {.lo = 0.5, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_add = {.name = "add", .arity = 2, .elementwise = true, .shape = nb_shape_broadcast,
                         .forward = NB_KERNELS(add), .backward = add_backward, .broadcast = true,
                         .batch = nb_batch_rows,
                         .saves = NB_SAVES_NONE, .examples = examples};
const nb_op nb_op_sub = {.name = "sub", .arity = 2, .elementwise = true, .shape = nb_shape_broadcast,
                         .forward = NB_KERNELS(sub), .backward = sub_backward, .broadcast = true,
                         .batch = nb_batch_rows,
                         .saves = NB_SAVES_NONE, .examples = examples};
const nb_op nb_op_mul = {.name = "mul", .arity = 2, .elementwise = true, .shape = nb_shape_broadcast,
                         .forward = NB_KERNELS(mul), .backward = mul_backward, .broadcast = true,
                         .batch = nb_batch_rows,
                         .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = examples};
const nb_op nb_op_div = {.name = "div", .arity = 2, .elementwise = true, .shape = nb_shape_broadcast,
                         .forward = NB_KERNELS(div), .backward = div_backward, .broadcast = true,
                         .batch = nb_batch_rows,
                         .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = div_examples};

nb_tensor *nb_add(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_add, (nb_tensor *[]){a, b}, 2, NULL); }
nb_tensor *nb_sub(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_sub, (nb_tensor *[]){a, b}, 2, NULL); }
nb_tensor *nb_mul(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_mul, (nb_tensor *[]){a, b}, 2, NULL); }
nb_tensor *nb_div(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_div, (nb_tensor *[]){a, b}, 2, NULL); }
