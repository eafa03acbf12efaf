/* maximum, minimum: broadcasting elementwise max / min.
 *   y = maximum(a, b)   ma = (a > b) + 0.5 * (a == b)   mb = (a < b) + 0.5 * (a == b)
 *   y = minimum(a, b)   ma = (a < b) + 0.5 * (a == b)   mb = (a > b) + 0.5 * (a == b)
 *   da = dy * ma   db = dy * mb   (summed back over broadcast dimensions)
 * A tie sends half the gradient to each side (the mean of the two one-sided
 * derivatives, as for nb_max). A NaN in either input gives NaN and no
 * gradient to either side (all comparisons with NaN are false). */
#include "internal.h"

/* NaN propagates from either side: (u > v || u != u) picks a NaN u, and a
 * NaN v fails the comparison and is picked. */
NB_BINARY_KERNELS(maximum, (u > v || u != u) ? u : v)
NB_BINARY_KERNELS(minimum, (u < v || u != u) ? u : v)

/* The masks are comparisons (constants), so the second derivative is 0 almost
 * everywhere, as it should be; dy stays differentiable. */
static void minmax_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *const x[], bool is_max)
{
    nb_tensor *a = x[0], *b = x[1];
    nb_tensor *half = nb_mul(nb_eq(a, b), nb_scalar_like(dy, 0.5));
    if (a->requires_grad) {
        nb_tensor *wins = is_max ? nb_gt(a, b) : nb_lt(a, b);
        dx[0] = nb_mul(dy, nb_add(wins, half));
    }
    if (b->requires_grad) {
        nb_tensor *wins = is_max ? nb_lt(a, b) : nb_gt(a, b);
        dx[1] = nb_mul(dy, nb_add(wins, half));
    }
}

static void maximum_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    minmax_backward(dx, dy, x, true);
}

static void minimum_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    minmax_backward(dx, dy, x, false);
}

/* Inputs are continuous random draws, so exact ties (and near ties within the
 * finite-difference step) do not happen; overlapping ranges make both sides
 * win somewhere. The last example uses separated ranges (b always wins for
 * maximum, a for minimum) to check an all-or-nothing mask with broadcasting. */
static const nb_op_example examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}}},
    {.n = 2, .ndim = {3, 2}, .shape = {{2, 1, 4}, {3, 1}}},
    {.n = 2, .ndim = {0, 2}, .shape = {{0}, {2, 3}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}},
     .domain = {{.lo = -2, .hi = -1}, {.lo = 1, .hi = 2}}},
    {.n = 0},
};

const nb_op nb_op_maximum = {.name = "maximum", .arity = 2, .shape = nb_shape_broadcast,
                             .forward = NB_KERNELS(maximum), .backward = maximum_backward,
                             .broadcast = true, .batch = nb_batch_rows,
                             .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = examples};
const nb_op nb_op_minimum = {.name = "minimum", .arity = 2, .shape = nb_shape_broadcast,
                             .forward = NB_KERNELS(minimum), .backward = minimum_backward,
                             .broadcast = true, .batch = nb_batch_rows,
                             .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = examples};

nb_tensor *nb_maximum(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_maximum, (nb_tensor *[]){a, b}, 2, NULL);
}

nb_tensor *nb_minimum(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_minimum, (nb_tensor *[]){a, b}, 2, NULL);
}
