/* Comparisons, where and sign.
 *   y = (a == b), (a != b), (a < b), (a <= b), (a > b), (a >= b)
 *       1 or 0 in the inputs' dtype; broadcasting; no gradient (piecewise
 *       constant: the derivative is 0 where it exists, so nothing is recorded)
 *   y = where(c, a, b) = c != 0 ? a : b      broadcasting all three
 *       da = where(c, dy, 0)   db = where(c, 0, dy)   (summed back where broadcast)
 *       c is non-differentiable (no gradient flows to it)
 *   y = sign(x) in {-1, 0, 1} (NaN stays NaN); no gradient
 * Comparisons and where share a dtype across inputs (nb_shape_broadcast). */
#include "internal.h"

/* ---- comparisons ---- */

#define COMPARE_OP(NAME, OP)                                                   \
    NB_BINARY_KERNELS(NAME, (u OP v))                                          \
    const nb_op nb_op_##NAME = {.name = #NAME, .arity = 2, .elementwise = true, \
                                .shape = nb_shape_broadcast,                   \
                                .forward = NB_KERNELS(NAME),                   \
                                .no_gradient = true, .broadcast = true,        \
                                .batch = nb_batch_rows,                        \
                                .saves = NB_SAVES_NONE,                        \
                                .examples = compare_examples};                 \
    nb_tensor *nb_##NAME(nb_tensor *a, nb_tensor *b)                           \
    {                                                                          \
        return nb_apply(&nb_op_##NAME, (nb_tensor *[]){a, b}, 2, NULL);        \
    }

/* No gradient by design: gradcheck checks that the outputs carry none. */
static const nb_op_example compare_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}},
    {.n = 2, .ndim = {3, 0}, .shape = {{2, 1, 4}, {0}}},
    {.n = 0},
};

COMPARE_OP(eq, ==)
COMPARE_OP(ne, !=)
COMPARE_OP(lt, <)
COMPARE_OP(le, <=)
COMPARE_OP(gt, >)
COMPARE_OP(ge, >=)

/* ---- where ---- */

#define WHERE_KERNEL(fn, T)                                                    \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        NB_MAP3(T, y, &x[0], &x[1], &x[2], u != 0 ? v : w);                    \
    }
WHERE_KERNEL(where_f32, float)
WHERE_KERNEL(where_f64, double)

static void where_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *zero = nb_scalar_like(dy, 0.0);
    if (x[1]->requires_grad)
        dx[1] = nb_where(x[0], dy, zero);
    if (x[2]->requires_grad)
        dx[2] = nb_where(x[0], zero, dy);
}

/* c is non-differentiable, so gradcheck draws it as a 0/1 mask (mixed:
 * both branches get gradient) and checks a and b, broadcasting included. */
static const nb_op_example where_examples[] = {
    {.n = 3, .ndim = {2, 2, 2}, .shape = {{3, 4}, {3, 4}, {3, 4}}},
    {.n = 3, .ndim = {2, 1, 0}, .shape = {{3, 4}, {4}, {0}}},
    {.n = 3, .ndim = {1, 2, 3}, .shape = {{4}, {3, 1}, {2, 1, 4}}},
    {.n = 0},
};

const nb_op nb_op_where = {.name = "where", .arity = 3, .elementwise = true, .shape = nb_shape_broadcast,
                           .forward = NB_KERNELS(where), .backward = where_backward,
                           .nondiff = NB_INPUT(0), .broadcast = true, .batch = nb_batch_rows,
                           .saves = NB_SAVES_X(0), .examples = where_examples};

nb_tensor *nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_where, (nb_tensor *[]){cond, a, b}, 3, NULL);
}

/* ---- sign ---- */

/* u itself when neither: keeps 0 as 0 and NaN as NaN. */
NB_UNARY_KERNELS(sign, u > 0 ? 1 : u < 0 ? -1 : u)

static const nb_op_example sign_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}},
     .domain = {{.lo = -1, .hi = 1, .away_from_zero = true}}},
    {.n = 0},
};

const nb_op nb_op_sign = {.name = "sign", .arity = 1, .elementwise = true, .shape = nb_shape_same,
                          .forward = NB_KERNELS(sign), .no_gradient = true,
                          .saves = NB_SAVES_NONE, .batch = nb_batch_rows,
                          .examples = sign_examples};

nb_tensor *nb_sign(nb_tensor *x) { return nb_apply(&nb_op_sign, &x, 1, NULL); }
