/* maximum, minimum: broadcasting elementwise max / min.
 *   y = maximum(a, b)   ma = (a > b) + 0.5 * (a == b)   mb = (a < b) + 0.5 * (a == b)
 *   y = minimum(a, b)   ma = (a < b) + 0.5 * (a == b)   mb = (a > b) + 0.5 * (a == b)
 *   da = dy * ma   db = dy * mb   (summed back over broadcast dimensions)
 * A tie sends half the gradient to each side (the mean of the two one-sided
 * derivatives, as for nb_max). A NaN in either input gives NaN and no
 * gradient to either side (all comparisons with NaN are false). */
#include "internal.h"

#include <math.h>

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

/* The kinks: ties. Element j of input i meets, at each output position it
 * is broadcast to, an element of the other input; the nearest of those is
 * its kink, where the backward gives half, the mean of the two sides. The
 * other input's element stored in the same place (maximum(x, x)) moves
 * with j: no kink. */
static double minmax_kink(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                          nb_kink *k)
{
    (void)n, (void)attr;
    int64_t shape[NB_MAX_DIMS], idx[NB_MAX_DIMS];
    int nd = nb__broadcast_shape(x[0]->ndim, x[0]->shape, x[1]->ndim, x[1]->shape, shape);
    double v = nb__get(x[i], j), best = INFINITY;
    *k = (nb_kink){.at = NAN, .side = NB_SUBGRADIENT_MEAN};
    for (int64_t o = 0, total = nb__numel(nd, shape); nd >= 0 && o < total; o++) {
        int64_t rest = o, pos[2] = {0, 0}, mul[2] = {1, 1};
        for (int d = nd - 1; d >= 0; d--) {
            idx[d] = rest % shape[d];
            rest /= shape[d];
            for (int s = 0; s < 2; s++) {
                int sd = d - (nd - x[s]->ndim);
                if (sd < 0)
                    continue;
                pos[s] += (x[s]->shape[sd] == 1 ? 0 : idx[d]) * mul[s];
                mul[s] *= x[s]->shape[sd];
            }
        }
        double w = nb__get(x[1 - i], pos[1 - i]);
        bool alias = x[0]->storage == x[1]->storage &&
                     nb__elem(x[0], pos[0]) + x[0]->offset ==
                         nb__elem(x[1], pos[1]) + x[1]->offset;
        if (pos[i] == j && !alias && fabs(v - w) < best) {
            best = fabs(v - w);
            k->at = w;
        }
    }
    return best;
}

/* Inputs are drawn away from ties (minmax_kink); overlapping ranges make
 * both sides win somewhere. The last example uses separated ranges (b always wins for
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

const nb_op nb_op_maximum = {.name = "maximum", .arity = 2, .elementwise = true, .shape = nb_shape_broadcast,
                             .forward = NB_KERNELS(maximum), .backward = maximum_backward,
                             .broadcast = true, .batch = nb_batch_rows,
                             .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = examples,
                             .kink = minmax_kink};
const nb_op nb_op_minimum = {.name = "minimum", .arity = 2, .elementwise = true, .shape = nb_shape_broadcast,
                             .forward = NB_KERNELS(minimum), .backward = minimum_backward,
                             .broadcast = true, .batch = nb_batch_rows,
                             .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .examples = examples,
                             .kink = minmax_kink};

nb_tensor *nb_maximum(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_maximum, (nb_tensor *[]){a, b}, 2, NULL);
}

nb_tensor *nb_minimum(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_minimum, (nb_tensor *[]){a, b}, 2, NULL);
}
