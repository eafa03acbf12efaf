/* slice and slice_scatter along one axis, with Python's start:stop:step
 * rules (negative indices count from the end, out-of-range bounds clip, a
 * negative step walks backwards; step 0 is an error).
 *   y = x[start:stop:step]               dx = slice_scatter(zeros_like(x), dy)
 *   y = x with x[start:stop:step] = src  dx = slice_scatter(dy, zeros_like(src))
 *                                        dsrc = slice(dy)
 * Shapes: slice keeps x's shape except axis, which becomes the number of
 * indices the slice visits (0 if none); slice_scatter gives x's shape and
 * needs src of the slice's shape. slice is a view (offset start, stride
 * times step); slice_scatter copies. Attributes hold the bounds as given and
 * every use resolves them against x's shape the same way. */
#include "internal.h"

typedef struct {
    int axis;
    int64_t start, stop, step;
} slice_attr;

/* A slice resolved against a dimension: the first index and the count. */
typedef struct {
    int axis;
    int64_t first, len, step;
} span;

/* Python's slice.indices for a dimension of size n, then the count. */
static span resolve(const slice_attr *a, int ax, int64_t n)
{
    span r = {ax, 0, 0, a->step};
    int64_t lo = a->step > 0 ? 0 : -1, hi = a->step > 0 ? n : n - 1;
    int64_t start = a->start, stop = a->stop;
    if (start < 0)
        start = start + n < lo ? lo : start + n;
    else if (start > hi)
        start = hi;
    if (stop < 0)
        stop = stop + n < lo ? lo : stop + n;
    else if (stop > hi)
        stop = hi;
    r.first = start;
    if (a->step > 0)
        r.len = stop > start ? (stop - start - 1) / a->step + 1 : 0;
    else
        r.len = start > stop ? (start - stop - 1) / -a->step + 1 : 0;
    return r;
}

/* Validates a raw attribute against x (fn names the public function). */
static int check(const char *fn, const nb_tensor *x, const slice_attr *a, span *s)
{
    char b[NB_SHAPE_STR_LEN];
    int ax = nb__axis(a->axis, x->ndim);
    if (ax < 0)
        return nb__error("%s: axis %d is out of range for shape %s", fn, a->axis,
                         nb_shape_str(x, b));
    if (a->step == 0 || a->step == INT64_MIN)
        return nb__error("%s: step must be non-zero (and above INT64_MIN), got %lld", fn,
                         (long long)a->step);
    *s = resolve(a, ax, x->shape[ax]);
    return 0;
}

/* The slice s of a view v: shape, stride and start along the axis. */
static void slice_view(nb_view *v, const span *s)
{
    size_t es = nb__dtype_size(v->dtype);
    if (s->len > 0)
        v->data = (char *)v->data + (size_t)(s->first * v->strides[s->axis]) * es;
    if (s->len > 1)
        v->strides[s->axis] *= s->step;
    v->shape[s->axis] = s->len;
    v->numel = nb__numel(v->ndim, v->shape);
}

/* ---- slice ---- */

static int slice_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    span s = {0};
    char b[NB_SHAPE_STR_LEN];
    if (check("nb_slice", x[0], attr, &s))
        return -1;
    nb_shape_same(out, x, 1, NULL);
    memcpy(out->strides, x[0]->strides, sizeof out->strides);
    out->view = true;
    out->offset = x[0]->offset;
    out->shape[s.axis] = s.len;
    int64_t st = x[0]->strides[s.axis];
    if (s.len > 0)
        out->offset += s.first * st;
    if (s.len > 1 && __builtin_mul_overflow(st, s.step, &out->strides[s.axis]))
        return nb__shape_error("nb_slice: step %lld overflows the stride of axis %d of %s",
                         (long long)s.step, s.axis, nb_shape_str(x[0], b));
    return 0;
}

static void slice_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)n;
    const slice_attr *a = attr;
    dx[0] = nb_slice_scatter(nb_zeros_like(x[0]), dy, a->axis, a->start, a->stop, a->step);
}

/* Slices along another axis than 0 keep rows apart: x (and src) are batches. */
static unsigned slice_batch(nb_tensor *const x[], int n, const void *attr)
{
    int ax = nb__axis(((const slice_attr *)attr)->axis, x[0]->ndim);
    return ax > 0 ? (n == 2 ? NB_INPUT(0) | NB_INPUT(1) : NB_INPUT(0)) : 0;
}

static const slice_attr s1_1_4_2 = {1, 1, 4, 2}, s0_m3_m1 = {0, -3, -1, 1},
                        sm2_m5_big_2 = {-2, -5, 100, 2}, s2_all_3 = {2, 0, 5, 3},
                        s0_m1_end = {0, -1, 4, 1}, s1_rev = {1, INT64_MAX, INT64_MIN, -1},
                        s0_3_0_m2 = {0, 3, 0, -2}, s1_empty = {1, 3, 1, 1};
static const nb_op_example slice_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{4, 5}}, .attr = &s1_1_4_2},
    {.n = 1, .ndim = {2}, .shape = {{4, 5}}, .attr = &s0_m3_m1},        /* x[-3:-1] */
    {.n = 1, .ndim = {3}, .shape = {{2, 6, 3}}, .attr = &sm2_m5_big_2}, /* clips */
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 5}}, .attr = &s2_all_3},
    {.n = 1, .ndim = {1}, .shape = {{4}}, .attr = &s0_m1_end},
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &s1_rev},    /* x[:, ::-1] */
    {.n = 1, .ndim = {2}, .shape = {{5, 2}}, .attr = &s0_3_0_m2}, /* x[3:0:-2] */
    {.n = 1, .ndim = {2}, .shape = {{2, 4}}, .attr = &s1_empty},  /* empty */
    {.n = 0},
};

const nb_op nb_op_slice = {.name = "slice", .arity = 1, .attr_size = sizeof(slice_attr),
                           .shape = slice_shape, .backward = slice_backward,
                           .saves = NB_SAVES_NONE, .batch = slice_batch,
                           .examples = slice_examples};

nb_tensor *nb_slice(nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    slice_attr a = {axis, start, stop, step};
    span s = {0};
    if (x && check("nb_slice", x, &a, &s))
        return NULL;
    return nb_apply(&nb_op_slice, &x, 1, &a);
}

/* ---- slice_scatter ---- */

static int scatter_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const slice_attr *a = attr;
    span s = {0};
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN], d[NB_SHAPE_STR_LEN];
    if (check("nb_slice_scatter", x[0], a, &s))
        return -1;
    if (x[1]->dtype != x[0]->dtype)
        return nb__dtype_error("nb_slice_scatter: dtypes differ: x is %s, src is %s",
                         nb_dtype_name(x[0]->dtype), nb_dtype_name(x[1]->dtype));
    int64_t want[NB_MAX_DIMS];
    memcpy(want, x[0]->shape, sizeof want);
    want[s.axis] = s.len;
    if (x[1]->ndim != x[0]->ndim ||
        memcmp(want, x[1]->shape, sizeof(int64_t) * (size_t)x[0]->ndim) != 0)
        return nb__shape_error("nb_slice_scatter: src %s does not match the slice %s of x %s "
                         "([%lld:%lld:%lld] along axis %d)",
                         nb_shape_str(x[1], b), nb_dims_str(x[0]->ndim, want, c),
                         nb_shape_str(x[0], d), (long long)a->start, (long long)a->stop,
                         (long long)a->step, s.axis);
    nb_shape_same(out, x, 1, NULL);
    return 0;
}

static void scatter_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    int ax = nb__axis(((const slice_attr *)attr)->axis, y->ndim);
    span s = resolve(attr, ax, y->shape[ax]);
    nb__copy(y, &x[0]);
    nb_view part = *y;
    slice_view(&part, &s);
    nb__copy(&part, &x[1]);
}

static void scatter_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n;
    const slice_attr *a = attr;
    if (x[0]->requires_grad)
        dx[0] = nb_slice_scatter(dy, nb_zeros_like(x[1]), a->axis, a->start, a->stop, a->step);
    if (x[1]->requires_grad)
        dx[1] = nb_slice(dy, a->axis, a->start, a->stop, a->step);
}

static const nb_op_example scatter_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{4, 5}, {4, 2}}, .attr = &s1_1_4_2},
    {.n = 2, .ndim = {2, 2}, .shape = {{4, 5}, {2, 5}}, .attr = &s0_m3_m1},
    {.n = 2, .ndim = {3, 3}, .shape = {{2, 6, 3}, {2, 3, 3}}, .attr = &sm2_m5_big_2},
    {.n = 2, .ndim = {3, 3}, .shape = {{2, 3, 5}, {2, 3, 2}}, .attr = &s2_all_3},
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}}, .attr = &s1_rev},
    {.n = 2, .ndim = {2, 2}, .shape = {{5, 2}, {2, 2}}, .attr = &s0_3_0_m2},
    {.n = 0},
};

const nb_op nb_op_slice_scatter = {
    .name = "slice_scatter", .arity = 2, .attr_size = sizeof(slice_attr),
    .shape = scatter_shape,
    .forward = {[NB_F32] = scatter_kernel, [NB_F64] = scatter_kernel},
    .backward = scatter_backward, .saves = NB_SAVES_NONE, .batch = slice_batch,
    .examples = scatter_examples};

nb_tensor *nb_slice_scatter(nb_tensor *x, nb_tensor *src, int axis, int64_t start, int64_t stop,
                            int64_t step)
{
    slice_attr a = {axis, start, stop, step};
    span s = {0};
    if (x && src && check("nb_slice_scatter", x, &a, &s))
        return NULL;
    return nb_apply(&nb_op_slice_scatter, (nb_tensor *[]){x, src}, 2, &a);
}
