/* Gather / scatter-add along one axis, and one-hot encoding. Indices are
 * whole numbers stored in the data's dtype; they are checked (range, whole)
 * by the shape rule, before anything is computed, and are declared
 * non-differentiable (the output is piecewise constant in them).
 *   y = index_select(x, axis, idx)     y[.., j, ..] = x[.., idx[j], ..]
 *       dx = index_add(zeros_like(x), axis, idx, dy)
 *   y = index_add(x, axis, idx, src)   y = x; y[.., idx[j], ..] += src[.., j, ..]
 *       dx = dy,  dsrc = index_select(dy, axis, idx)   (repeats accumulate)
 *   y = one_hot(labels, n)             y[..., c] = (labels[...] == c); no gradient
 * Shapes: idx is 1-D of length L; index_select gives x's shape with axis
 * sized L; index_add needs src of that shape and gives x's shape; one_hot
 * gives labels.shape + (n,). */
#include "internal.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    int axis; /* normalised by the public functions; nb__axis is applied again */
} index_attr;

/* Checks idx (1-D, x's dtype, whole numbers in [0, x.shape[axis])); sets ax. */
static int check_idx(const char *fn, const nb_tensor *x, const nb_tensor *idx, int axis,
                     int *ax)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    *ax = nb__axis(axis, x->ndim);
    if (*ax < 0)
        return nb__error("%s: axis %d is out of range for shape %s", fn, axis,
                         nb_shape_str(x, b));
    if (idx->dtype != x->dtype)
        return nb__dtype_error("%s: idx must have x's dtype %s (whole numbers), got %s", fn,
                         nb_dtype_name(x->dtype), nb_dtype_name(idx->dtype));
    if (idx->ndim != 1)
        return nb__shape_error("%s: idx must be 1-D, got shape %s", fn, nb_shape_str(idx, b));
    int64_t k = x->shape[*ax];
    for (int64_t j = 0; j < idx->numel; j++) {
        double v = nb__get(idx, j);
        if (!(v == floor(v)))
            return nb__error("%s: idx[%lld] = %g is not a whole number", fn, (long long)j, v);
        if (v < 0 || v >= (double)k)
            return nb__error("%s: idx[%lld] = %g is out of range for axis %d of size %lld "
                             "(x %s, idx %s)",
                             fn, (long long)j, v, *ax, (long long)k, nb_shape_str(x, b),
                             nb_shape_str(idx, c));
    }
    return 0;
}

/* ---- index_select ---- */

static int select_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    int ax;
    if (check_idx("nb_index_select", x[0], x[1], ((const index_attr *)attr)->axis, &ax))
        return -1;
    nb_shape_same(out, x, 1, NULL);
    out->shape[ax] = x[1]->numel;
    return 0;
}

/* The sub-view of v at index k along axis (the axis kept with size 1). */
static nb_view at_index(const nb_view *v, int ax, int64_t k)
{
    nb_view r = *v;
    r.data = (char *)v->data + (size_t)(k * v->strides[ax]) * nb__dtype_size(v->dtype);
    r.shape[ax] = 1;
    r.numel = v->shape[ax] ? v->numel / v->shape[ax] : 0;
    return r;
}

/* Index j of a 1-D index view (whole numbers, checked by the shape rule). */
static int64_t index_at(const nb_view *idx, int64_t j)
{
    const char *p = (const char *)idx->data;
    int64_t s = idx->strides[0];
    return idx->dtype == NB_F64 ? (int64_t)((const double *)p)[j * s]
                                : (int64_t)((const float *)p)[j * s];
}

static void select_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    int ax = nb__axis(((const index_attr *)attr)->axis, y->ndim);
    const nb_view *src = &x[0], *idx = &x[1];
    int64_t len = idx->numel;
    if (y->numel == 0)
        return;
    /* Rows of a contiguous x are memcpy'd; other layouts go view by view. */
    if (nb__layout_contiguous(src->ndim, src->shape, src->strides)) {
        int64_t outer = nb__numel(ax, y->shape), k = src->shape[ax];
        size_t row = (size_t)nb__numel(y->ndim - ax - 1, y->shape + ax + 1) * nb__dtype_size(y->dtype);
        char *Y = y->data;
        const char *X = src->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < len; j++, Y += row)
                memcpy(Y, X + (size_t)(o * k + index_at(idx, j)) * row, row);
        return;
    }
    for (int64_t j = 0; j < len; j++) {
        nb_view d = at_index(y, ax, j), s = at_index(src, ax, index_at(idx, j));
        nb__copy(&d, &s);
    }
}

static void select_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n;
    int ax = nb__axis(((const index_attr *)attr)->axis, x[0]->ndim);
    if (x[0]->requires_grad)
        dx[0] = nb_index_add(nb_zeros_like(x[0]), ax, x[1], dy);
}

/* Along another axis than 0 rows stay apart: x (and src) are batches, idx
 * is shared. */
static unsigned index_batch(nb_tensor *const x[], int n, const void *attr)
{
    if (nb__axis(((const index_attr *)attr)->axis, x[0]->ndim) <= 0)
        return 0;
    return n == 3 ? NB_INPUT(0) | NB_INPUT(2) : NB_INPUT(0);
}

static const index_attr ax0 = {0}, ax1 = {1}, axm1 = {-1};
/* idx inputs: draw whole numbers from [lo, hi) (e.g. floor of a uniform
 * draw) and do not perturb them; more indices than K forces repeats. */
static const nb_op_example select_examples[] = {
    /* idx: integers in [0, 4) */
    {.n = 2, .ndim = {2, 1}, .shape = {{4, 3}, {6}}, .attr = &ax0,
     .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 4}}},
    /* idx: integers in [0, 5) */
    {.n = 2, .ndim = {3, 1}, .shape = {{2, 5, 3}, {7}}, .attr = &ax1,
     .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 5}}},
    /* idx: integers in [0, 3) */
    {.n = 2, .ndim = {2, 1}, .shape = {{2, 3}, {2}}, .attr = &axm1,
     .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 3}}},
    {.n = 0},
};

const nb_op nb_op_index_select = {.name = "index_select", .arity = 2,
                                  .attr_size = sizeof(index_attr), .shape = select_shape,
                                  .forward = {[NB_F32] = select_kernel, [NB_F64] = select_kernel},
                                  .backward = select_backward, .nondiff = NB_INPUT(1),
                                  .saves = NB_SAVES_X(1), .batch = index_batch,
                                  .examples = select_examples};

nb_tensor *nb_index_select(nb_tensor *x, int axis, nb_tensor *idx)
{
    index_attr a = {axis};
    if (x && nb__axis(axis, x->ndim) >= 0)
        a.axis = nb__axis(axis, x->ndim);
    return nb_apply(&nb_op_index_select, (nb_tensor *[]){x, idx}, 2, &a);
}

/* ---- index_add ---- */

static int add_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    int ax;
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN], d[NB_SHAPE_STR_LEN];
    if (check_idx("nb_index_add", x[0], x[1], ((const index_attr *)attr)->axis, &ax))
        return -1;
    if (x[2]->dtype != x[0]->dtype)
        return nb__dtype_error("nb_index_add: dtypes differ: x is %s, src is %s",
                         nb_dtype_name(x[0]->dtype), nb_dtype_name(x[2]->dtype));
    int64_t want[NB_MAX_DIMS];
    memcpy(want, x[0]->shape, sizeof want);
    want[ax] = x[1]->numel;
    if (x[2]->ndim != x[0]->ndim ||
        memcmp(want, x[2]->shape, sizeof(int64_t) * (size_t)x[0]->ndim) != 0)
        return nb__shape_error("nb_index_add: src %s must have shape %s (x %s with axis %d "
                         "sized like idx)",
                         nb_shape_str(x[2], b), nb_dims_str(x[0]->ndim, want, c),
                         nb_shape_str(x[0], d), ax);
    nb_shape_same(out, x, 1, NULL);
    return 0;
}

static void add_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    int ax = nb__axis(((const index_attr *)attr)->axis, y->ndim);
    const nb_view *idx = &x[1], *src = &x[2];
    if (y->numel == 0)
        return;
    nb__copy(y, &x[0]);
    for (int64_t j = 0; j < idx->numel; j++) {
        nb_view d = at_index(y, ax, index_at(idx, j)), s = at_index(src, ax, j);
        nb__accumulate(&d, &s, false);
    }
}

static void add_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n;
    int ax = nb__axis(((const index_attr *)attr)->axis, x[0]->ndim);
    if (x[0]->requires_grad)
        dx[0] = dy;
    if (x[2]->requires_grad)
        dx[2] = nb_index_select(dy, ax, x[1]);
}

static const nb_op_example add_examples[] = {
    /* idx: integers in [0, 4) */
    {.n = 3, .ndim = {2, 1, 2}, .shape = {{4, 3}, {6}, {6, 3}}, .attr = &ax0,
     .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 4}, {.lo = -1, .hi = 1}}},
    /* idx: integers in [0, 5) */
    {.n = 3, .ndim = {3, 1, 3}, .shape = {{2, 5, 3}, {7}, {2, 7, 3}}, .attr = &ax1,
     .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 5}, {.lo = -1, .hi = 1}}},
    /* idx: integers in [0, 3) */
    {.n = 3, .ndim = {2, 1, 2}, .shape = {{2, 3}, {2}, {2, 2}}, .attr = &axm1,
     .domain = {{.lo = -1, .hi = 1}, {.lo = 0, .hi = 3}, {.lo = -1, .hi = 1}}},
    {.n = 0},
};

const nb_op nb_op_index_add = {.name = "index_add", .arity = 3, .attr_size = sizeof(index_attr),
                               .shape = add_shape,
                               .forward = {[NB_F32] = add_kernel, [NB_F64] = add_kernel},
                               .backward = add_backward, .nondiff = NB_INPUT(1),
                               .saves = NB_SAVES_X(1), .batch = index_batch,
                               .examples = add_examples};

nb_tensor *nb_index_add(nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src)
{
    index_attr a = {axis};
    if (x && nb__axis(axis, x->ndim) >= 0)
        a.axis = nb__axis(axis, x->ndim);
    return nb_apply(&nb_op_index_add, (nb_tensor *[]){x, idx, src}, 3, &a);
}

/* ---- one_hot ---- */

typedef struct {
    int64_t n;
} one_hot_attr;

static int one_hot_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const nb_tensor *l = x[0];
    int64_t classes = ((const one_hot_attr *)attr)->n;
    char b[NB_SHAPE_STR_LEN];
    if (classes < 1)
        return nb__error("nb_one_hot: the number of classes must be >= 1, got %lld",
                         (long long)classes);
    if (l->ndim >= NB_MAX_DIMS)
        return nb__shape_error("nb_one_hot: labels %s already have %d dimensions (the most is %d)",
                         nb_shape_str(l, b), l->ndim, NB_MAX_DIMS - 1);
    for (int64_t j = 0; j < l->numel; j++) {
        double v = nb__get(l, j);
        if (!(v == floor(v)) || v < 0 || v >= (double)classes) {
            /* The position as an index tuple, e.g. labels[1,2]. */
            int64_t st[NB_MAX_DIMS];
            char pos[NB_SHAPE_STR_LEN];
            int k = 0;
            nb__strides(l->ndim, l->shape, st);
            pos[0] = '\0';
            for (int i = 0; i < l->ndim && k < 80; i++)
                k += snprintf(pos + k, sizeof pos - (size_t)k, i ? ",%lld" : "%lld",
                              (long long)(j / st[i] % l->shape[i]));
            if (!(v == floor(v)))
                return nb__error("nb_one_hot: labels[%s] = %g is not a whole number "
                                 "(labels %s)", pos, v, nb_shape_str(l, b));
            return nb__error("nb_one_hot: labels[%s] = %g is outside [0, %lld) (labels %s)",
                             pos, v, (long long)classes, nb_shape_str(l, b));
        }
    }
    nb_shape_same(out, x, 1, NULL);
    out->shape[out->ndim++] = classes;
    return 0;
}

#define ONE_HOT_KERNEL(fn, T)                                                  \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        int64_t classes = ((const one_hot_attr *)attr)->n;                     \
        T *Y = y->data;                                                        \
        memset(Y, 0, (size_t)y->numel * sizeof(T));                            \
        const T *L = x[0].data;                                                \
        int64_t idx[NB_MAX_DIMS] = {0}, off = 0;                               \
        for (int64_t j = 0; j < x[0].numel; j++) {                             \
            Y[j * classes + (int64_t)L[off]] = 1;                              \
            NB_ODOMETER(x[0].ndim, x[0].shape, x[0].strides, idx, off)         \
        }                                                                      \
    }
ONE_HOT_KERNEL(one_hot_f32, float)
ONE_HOT_KERNEL(one_hot_f64, double)

static const one_hot_attr classes4 = {4};
static const nb_op_example one_hot_examples[] = {
    /* labels: integers in [0, 4) */
    {.n = 1, .ndim = {1}, .shape = {{5}}, .attr = &classes4, .domain = {{.lo = 0, .hi = 4}}},
    {.n = 1, .ndim = {2}, .shape = {{2, 3}}, .attr = &classes4, .domain = {{.lo = 0, .hi = 4}}},
    {.n = 0},
};

const nb_op nb_op_one_hot = {.name = "one_hot", .arity = 1, .attr_size = sizeof(one_hot_attr),
                             .shape = one_hot_shape, .forward = NB_KERNELS(one_hot),
                             .no_gradient = true, .nondiff = NB_INPUT(0),
                             .examples = one_hot_examples};

nb_tensor *nb_one_hot(nb_tensor *labels, int64_t n)
{
    return nb_apply(&nb_op_one_hot, &labels, 1, &(one_hot_attr){n});
}
