/* add, sub, mul, div: broadcasting arithmetic.
 *   y = a + b   da = sum_to(dy, a)         db = sum_to(dy, b)
 *   y = a - b   da = sum_to(dy, a)         db = sum_to(-dy, b)
 *   y = a * b   da = sum_to(dy * b, a)     db = sum_to(dy * a, b)
 *   y = a / b   da = sum_to(dy / b, a)     db = sum_to(-dy * y / b, b)  */
#include "internal.h"

/* Sums a broadcast gradient back down to the shape of the input it is for. */
static nb_tensor *to(nb_tensor *g, const nb_tensor *x)
{
    return nb__same_shape(g, x) ? g : nb_sum_to(g, x->ndim, x->shape);
}

#define ARITH_FORWARD(name, EXPR)                                              \
    static void name##_forward(nb_tensor *y, nb_tensor *const x[], int n,      \
                               const void *attr)                              \
    {                                                                          \
        (void)n;                                                               \
        (void)attr;                                                            \
        NB_BY_DTYPE(y, NB_LOOP2, y, x[0], x[1], EXPR);                         \
    }

ARITH_FORWARD(add, u + v)
ARITH_FORWARD(sub, u - v)
ARITH_FORWARD(mul, u *v)
ARITH_FORWARD(div, u / v)

static void add_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = to(dy, x[0]);
    if (x[1]->requires_grad)
        dx[1] = to(dy, x[1]);
}

static void sub_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = to(dy, x[0]);
    if (x[1]->requires_grad)
        dx[1] = to(nb_neg(dy), x[1]);
}

static void mul_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    if (x[0]->requires_grad)
        dx[0] = to(nb_mul(dy, x[1]), x[0]);
    if (x[1]->requires_grad)
        dx[1] = to(nb_mul(dy, x[0]), x[1]);
}

static void div_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *g = nb_div(dy, x[1]);
    if (x[0]->requires_grad)
        dx[0] = to(g, x[0]);
    /* -dy * a / b^2, written from the inputs (not y) so it differentiates again. */
    if (x[1]->requires_grad)
        dx[1] = to(nb_neg(nb_div(nb_mul(g, x[0]), x[1])), x[1]);
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

const nb_op nb_op_add = {.name = "add", .arity = 2, .shape = nb_shape_broadcast,
                         .forward = add_forward, .backward = add_backward,
                         .saves = NB_SAVES_NONE, .examples = examples};
const nb_op nb_op_sub = {.name = "sub", .arity = 2, .shape = nb_shape_broadcast,
                         .forward = sub_forward, .backward = sub_backward,
                         .saves = NB_SAVES_NONE, .examples = examples};
const nb_op nb_op_mul = {.name = "mul", .arity = 2, .shape = nb_shape_broadcast,
                         .forward = mul_forward, .backward = mul_backward,
                         .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = examples};
const nb_op nb_op_div = {.name = "div", .arity = 2, .shape = nb_shape_broadcast,
                         .forward = div_forward, .backward = div_backward,
                         .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = div_examples};

nb_tensor *nb_add(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_add, (nb_tensor *[]){a, b}, 2, NULL); }
nb_tensor *nb_sub(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_sub, (nb_tensor *[]){a, b}, 2, NULL); }
nb_tensor *nb_mul(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_mul, (nb_tensor *[]){a, b}, 2, NULL); }
nb_tensor *nb_div(nb_tensor *a, nb_tensor *b) { return nb_apply(&nb_op_div, (nb_tensor *[]){a, b}, 2, NULL); }
