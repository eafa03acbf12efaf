/* Comparisons, where and sign.
 *   y = (a == b), (a != b), (a < b), (a <= b), (a > b), (a >= b)
 *       1 or 0 in the inputs' dtype; broadcasting; no gradient (piecewise
 *       constant: the derivative is 0 where it exists, so nothing is recorded)
 *   y = where(c, a, b) = c != 0 ? a : b      broadcasting all three
 *       da = sum_to(where(c, dy, 0), a)   db = sum_to(where(c, 0, dy), b)
 *       dc = 0 (only if c itself requires grad)
 *   y = sign(x) in {-1, 0, 1} (NaN stays NaN); no gradient
 * Comparisons and where share a dtype across inputs (nb_shape_broadcast). */
#include "internal.h"

/* ---- comparisons ---- */

#define COMPARE_OP(NAME, OP)                                                   \
    static void NAME##_forward(nb_tensor *y, nb_tensor *const x[], int n,      \
                               const void *attr)                              \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        NB_BY_DTYPE(y, NB_LOOP2, y, x[0], x[1], (u OP v));                     \
    }                                                                          \
    const nb_op nb_op_##NAME = {.name = #NAME, .arity = 2,                     \
                                .shape = nb_shape_broadcast,                   \
                                .forward = NAME##_forward,                     \
                                .saves = NB_SAVES_NONE,                        \
                                .examples = compare_examples};                 \
    nb_tensor *nb_##NAME(nb_tensor *a, nb_tensor *b)                           \
    {                                                                          \
        return nb_apply(&nb_op_##NAME, (nb_tensor *[]){a, b}, 2, NULL);        \
    }

/* No backward: gradcheck only checks that the outputs carry no gradient. */
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

static void where_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    NB_BY_DTYPE(y, NB_LOOP3, y, x[0], x[1], x[2], c != 0 ? u : v);
}

/* Sums a broadcast gradient back down to the shape of the input it is for. */
static nb_tensor *to(nb_tensor *g, const nb_tensor *x)
{
    return (!g || nb__same_shape(g, x)) ? g : nb_sum_to(g, x->ndim, x->shape);
}

static void where_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    nb_tensor *zero = nb_scalar_like(dy, 0.0);
    if (x[0]->requires_grad) /* a condition has no gradient: zero */
        dx[0] = nb_zeros_like(x[0]);
    if (x[1]->requires_grad)
        dx[1] = to(nb_where(x[0], dy, zero), x[1]);
    if (x[2]->requires_grad)
        dx[2] = to(nb_where(x[0], zero, dy), x[2]);
}

/* Examples draw c from [-1, 1] off 0, so every c is "true" and these check
 * the path to a, the broadcasting, and that c's gradient is exactly 0 (a
 * step never flips c). A domain cannot express a 0/1 condition (an all-zero
 * domain means the default [-1, 1]), so a mixed mask is tested by hand. */
#define COND {.lo = -1, .hi = 1, .away_from_zero = true}
#define ANY {.lo = -1, .hi = 1}
static const nb_op_example where_examples[] = {
    {.n = 3, .ndim = {2, 2, 2}, .shape = {{3, 4}, {3, 4}, {3, 4}}, .domain = {COND, ANY, ANY}},
    {.n = 3, .ndim = {2, 1, 0}, .shape = {{3, 4}, {4}, {0}}, .domain = {COND, ANY, ANY}},
    {.n = 3, .ndim = {1, 2, 3}, .shape = {{4}, {3, 1}, {2, 1, 4}}, .domain = {COND, ANY, ANY}},
    {.n = 0},
};
#undef COND
#undef ANY

const nb_op nb_op_where = {.name = "where", .arity = 3, .shape = nb_shape_broadcast,
                           .forward = where_forward, .backward = where_backward,
                           .saves = NB_SAVES_X(0), .examples = where_examples};

nb_tensor *nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_where, (nb_tensor *[]){cond, a, b}, 3, NULL);
}

/* ---- sign ---- */

static void sign_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    /* u itself when neither: keeps 0 as 0 and NaN as NaN. */
    NB_BY_DTYPE(y, NB_LOOP1, y, x[0], u > 0 ? 1 : u < 0 ? -1 : u);
}

static const nb_op_example sign_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}},
     .domain = {{.lo = -1, .hi = 1, .away_from_zero = true}}},
    {.n = 0},
};

const nb_op nb_op_sign = {.name = "sign", .arity = 1, .shape = nb_shape_same,
                          .forward = sign_forward, .saves = NB_SAVES_NONE,
                          .examples = sign_examples};

nb_tensor *nb_sign(nb_tensor *x) { return nb_apply(&nb_op_sign, &x, 1, NULL); }
