/* max over axes, argmax along one axis.
 *   y = max(x, axes)   dx = reshape(dy, keep) * m / count
 *        where m = eq(x, reshape(y, keep)) marks the maxima and
 *        count = sum(m, axes, keep): the gradient goes to the arg-max and is
 *        split evenly between tied maxima. m and count are constants (made
 *        with recording off), so dx is linear in dy and differentiates again.
 *   y = argmax(x, axis)  index of the first maximum as a number in x's dtype
 *        (a NaN counts as the maximum, as in NumPy); no gradient.
 * Shapes: the reduced axes are removed, or kept as 1 with keepdims. A max
 * over an empty axis is an error unless the output is empty as well. */
#include "internal.h"

#include <math.h>

/* ---- max ---- */

static int max_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const nb_reduce_attr *a = attr;
    char b[NB_SHAPE_STR_LEN];
    nb__reduce_shape(out, x[0], a);
    int64_t outn = nb__numel(out->ndim, out->shape);
    for (int i = 0; i < x[0]->ndim; i++)
        if ((a->mask & (1u << i)) && x[0]->shape[i] == 0 && outn > 0)
            return nb__shape_error("nb_max: cannot take the max over axis %d of size 0 (shape %s)",
                             i, nb_shape_str(x[0], b));
    return 0;
}

/* A NaN wins (and stays): (u > acc || u != u) picks it, nothing beats it. */
#define MAX_KERNEL(fn, T)                                                      \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        unsigned mask = ((const nb_reduce_attr *)attr)->mask;                  \
        NB_REDUCE(T, T, y, &x[0], mask, -INFINITY, (u > acc || u != u) ? u : acc); \
    }
MAX_KERNEL(max_f32, float)
MAX_KERNEL(max_f64, double)

static void max_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)n;
    const nb_reduce_attr *a = attr;
    int64_t keep[NB_MAX_DIMS];
    nb_axes axes = {0};
    nb__keep_shape(x[0], a->mask, keep);
    for (int i = 0; i < x[0]->ndim; i++)
        if (a->mask & (1u << i))
            axes.axis[axes.n++] = i;
    /* The weights m / count do not depend on dy and carry no gradient. */
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *m = nb_eq(x[0], nb_reshape(y, x[0]->ndim, keep));
    nb_tensor *w = axes.n ? nb_div(m, nb_sum(m, .axes = axes, .keepdims = true)) : m;
    nb_set_grad_enabled(prev);
    dx[0] = nb_mul(nb_reshape(dy, x[0]->ndim, keep), w);
}

/* The kinks: ties at the maximum. Element j's nearest is where it meets the
 * largest other element of its group (the elements it is reduced with):
 * above it j alone wins, below it j loses, and at the tie the backward
 * splits the gradient evenly, the mean of the two sides. An element of a
 * broadcast view that is stored in the same place as j is no other element:
 * it moves with j, and the two stay tied smoothly. */
static double max_kink(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                       nb_kink *k)
{
    (void)n, (void)i;
    unsigned mask = ((const nb_reduce_attr *)attr)->mask;
    const nb_tensor *t = x[0];
    int64_t idx[NB_MAX_DIMS], at[NB_MAX_DIMS], rest = j;
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = rest % t->shape[d];
        rest /= t->shape[d];
    }
    double best = -INFINITY;
    for (int64_t e = 0; e < t->numel; e++) {
        rest = e;
        bool same = nb__elem(t, e) != nb__elem(t, j);
        for (int d = t->ndim - 1; d >= 0; d--) {
            at[d] = rest % t->shape[d];
            rest /= t->shape[d];
            same &= (mask & (1u << d)) || at[d] == idx[d];
        }
        if (same)
            best = fmax(best, nb__get(t, e));
    }
    *k = (nb_kink){.at = best, .side = NB_SUBGRADIENT_MEAN};
    return isfinite(best) ? fabs(nb__get(t, j) - best) : INFINITY;
}

/* Inputs are drawn away from ties (max_kink). */
static const nb_reduce_attr all = {.mask = ~0u}, ax1 = {.mask = 2},
                            ax0k = {.mask = 1, .keepdims = true},
                            ax02 = {.mask = 5}, ax12k = {.mask = 6, .keepdims = true};
static const nb_op_example max_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &all},
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &ax1},
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &ax0k},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &ax02},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &ax12k},
    {.n = 1, .ndim = {1}, .shape = {{5}}, .attr = &all},
    {.n = 0},
};

const nb_op nb_op_max = {.name = "max", .arity = 1, .attr_size = sizeof(nb_reduce_attr),
                         .shape = max_shape, .forward = NB_KERNELS(max), .backward = max_backward,
                         .saves = NB_SAVES_X(0) | NB_SAVES_Y, .batch = nb__reduce_batch,
                         .examples = max_examples, .kink = max_kink};

nb_tensor *nb_max_(nb_reduce_args args)
{
    nb_reduce_attr a = {0};
    if (args.x && nb__reduce_attr("nb_max", args.x, &args.axes, args.keepdims, &a))
        return NULL;
    return nb_apply(&nb_op_max, &args.x, 1, &a);
}

/* ---- argmax ---- */

typedef struct {
    int axis; /* normalised */
    bool keepdims;
} argmax_attr;

static int argmax_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const argmax_attr *a = attr;
    char b[NB_SHAPE_STR_LEN];
    int ax = nb__axis(a->axis, x[0]->ndim);
    if (ax < 0)
        return nb__error("nb_argmax: axis %d is out of range for shape %s", a->axis,
                         nb_shape_str(x[0], b));
    out->dtype = x[0]->dtype;
    out->ndim = 0;
    for (int i = 0; i < x[0]->ndim; i++) {
        if (i != ax)
            out->shape[out->ndim++] = x[0]->shape[i];
        else if (a->keepdims)
            out->shape[out->ndim++] = 1;
    }
    if (x[0]->shape[ax] == 0 && nb__numel(out->ndim, out->shape) > 0)
        return nb__shape_error("nb_argmax: axis %d of shape %s is empty", a->axis,
                         nb_shape_str(x[0], b));
    return 0;
}

/* For each output position, the first j along the axis with the largest
 * value; the other dimensions are walked with an odometer (any strides). */
#define ARGMAX_KERNEL(fn, T)                                                   \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        int ax = nb__axis(((const argmax_attr *)attr)->axis, x->ndim);         \
        int64_t len = x->shape[ax], s = x->strides[ax];                        \
        int64_t shp[NB_MAX_DIMS], st[NB_MAX_DIMS], idx[NB_MAX_DIMS] = {0}, off = 0; \
        int m = 0;                                                             \
        for (int i = 0; i < x->ndim; i++)                                      \
            if (i != ax) {                                                     \
                shp[m] = x->shape[i];                                          \
                st[m++] = x->strides[i];                                       \
            }                                                                  \
        T *Y = y->data;                                                        \
        const T *X = x->data;                                                  \
        for (int64_t o = 0; o < y->numel; o++) {                               \
            const T *p = X + off;                                              \
            T best = p[0];                                                     \
            int64_t bi = 0;                                                    \
            for (int64_t j = 1; j < len && !isnan(best); j++) {                \
                T v = p[j * s];                                                \
                if (v > best || isnan(v)) {                                    \
                    best = v;                                                  \
                    bi = j;                                                    \
                }                                                              \
            }                                                                  \
            Y[o] = (T)bi;                                                      \
            NB_ODOMETER(m, shp, st, idx, off)                                  \
        }                                                                      \
    }
ARGMAX_KERNEL(argmax_f32, float)
ARGMAX_KERNEL(argmax_f64, double)

static const argmax_attr am1 = {1, false}, am0k = {0, true};
static const nb_op_example argmax_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &am1},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &am0k},
    {.n = 0},
};

const nb_op nb_op_argmax = {.name = "argmax", .arity = 1, .attr_size = sizeof(argmax_attr),
                            .shape = argmax_shape, .forward = NB_KERNELS(argmax),
                            .no_gradient = true, .examples = argmax_examples};

nb_tensor *nb_argmax_(nb_argmax_args args)
{
    argmax_attr a = {.axis = args.axis, .keepdims = args.keepdims};
    if (args.x && nb__axis(args.axis, args.x->ndim) >= 0)
        a.axis = nb__axis(args.axis, args.x->ndim);
    return nb_apply(&nb_op_argmax, &args.x, 1, &a);
}
