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
    char b[96];
    nb__reduce_shape(out, x[0], a);
    int64_t outn = nb__numel(out->ndim, out->shape);
    for (int i = 0; i < x[0]->ndim; i++)
        if ((a->mask & (1u << i)) && x[0]->shape[i] == 0 && outn > 0)
            return nb__error("nb_max: cannot take the max over axis %d of size 0 (shape %s)",
                             i, nb__shape_str(x[0], b));
    return 0;
}

static void max_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    nb__reduce_max(y, x[0], ((const nb_reduce_attr *)attr)->mask);
}

static void max_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)n;
    const nb_reduce_attr *a = attr;
    int64_t keep[NB_MAX_DIMS];
    int axes[NB_MAX_DIMS], naxes = 0;
    nb__keep_shape(x[0], a->mask, keep);
    for (int i = 0; i < x[0]->ndim; i++)
        if (a->mask & (1u << i))
            axes[naxes++] = i;
    /* The weights m / count do not depend on dy and carry no gradient. */
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *m = nb_eq(x[0], nb_reshape(y, x[0]->ndim, keep));
    nb_tensor *w = naxes ? nb_div(m, nb_sum(m, naxes, axes, true)) : m;
    nb_set_grad_enabled(prev);
    dx[0] = nb_mul(nb_reshape(dy, x[0]->ndim, keep), w);
}

/* Random inputs have no ties, so every example is differentiable. */
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
                         .shape = max_shape, .forward = max_forward, .backward = max_backward,
                         .saves = NB_SAVES_X(0) | NB_SAVES_Y, .examples = max_examples};

nb_tensor *nb_max(nb_tensor *x, int naxes, const int *axes, bool keepdims)
{
    nb_reduce_attr a = {0};
    if (x) {
        if (nb__reduce_attr("nb_max", x, naxes, axes, keepdims, &a))
            return NULL;
        a.mask &= (1u << x->ndim) - 1u;
    }
    return nb_apply(&nb_op_max, &x, 1, &a);
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
    char b[96];
    int ax = nb__axis(a->axis, x[0]->ndim);
    if (ax < 0)
        return nb__error("nb_argmax: axis %d is out of range for shape %s", a->axis,
                         nb__shape_str(x[0], b));
    out->dtype = x[0]->dtype;
    out->ndim = 0;
    for (int i = 0; i < x[0]->ndim; i++) {
        if (i != ax)
            out->shape[out->ndim++] = x[0]->shape[i];
        else if (a->keepdims)
            out->shape[out->ndim++] = 1;
    }
    if (x[0]->shape[ax] == 0 && nb__numel(out->ndim, out->shape) > 0)
        return nb__error("nb_argmax: axis %d of shape %s is empty", a->axis,
                         nb__shape_str(x[0], b));
    return 0;
}

/* For each (outer, inner) position, the first j with the largest value. */
#define ARGMAX(T, y, x, outer, len, inner)                                     \
    do {                                                                       \
        const T *X = (const T *)(x)->data;                                     \
        T *Y = (T *)(y)->data;                                                 \
        for (int64_t o = 0; o < (outer); o++)                                  \
            for (int64_t i = 0; i < (inner); i++) {                            \
                const T *p = X + o * (len) * (inner) + i;                      \
                T best = p[0];                                                 \
                int64_t bi = 0;                                                \
                for (int64_t j = 1; j < (len) && !isnan(best); j++) {          \
                    T v = p[j * (inner)];                                      \
                    if (v > best || isnan(v)) {                                \
                        best = v;                                              \
                        bi = j;                                                \
                    }                                                          \
                }                                                              \
                Y[o * (inner) + i] = (T)bi;                                    \
            }                                                                  \
    } while (0)

static void argmax_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    int ax = nb__axis(((const argmax_attr *)attr)->axis, x[0]->ndim);
    int64_t outer = nb__numel(ax, x[0]->shape), len = x[0]->shape[ax];
    int64_t inner = nb__numel(x[0]->ndim - ax - 1, x[0]->shape + ax + 1);
    if (y->numel == 0)
        return;
    NB_BY_DTYPE(y, ARGMAX, y, x[0], outer, len, inner);
}

static const argmax_attr am1 = {1, false}, am0k = {0, true};
static const nb_op_example argmax_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &am1},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &am0k},
    {.n = 0},
};

const nb_op nb_op_argmax = {.name = "argmax", .arity = 1, .attr_size = sizeof(argmax_attr),
                            .shape = argmax_shape, .forward = argmax_forward,
                            .examples = argmax_examples};

nb_tensor *nb_argmax(nb_tensor *x, int axis, bool keepdims)
{
    argmax_attr a = {.axis = axis, .keepdims = keepdims};
    if (x && nb__axis(axis, x->ndim) >= 0)
        a.axis = nb__axis(axis, x->ndim);
    return nb_apply(&nb_op_argmax, &x, 1, &a);
}
