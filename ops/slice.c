/* slice and slice_scatter along one axis, with Python's start:stop:step rules
 * (negative indices count from the end, out-of-range bounds clip, step >= 1).
 *   y = x[start:stop:step]               dx = slice_scatter(zeros_like(x), dy)
 *   y = x with x[start:stop:step] = src  dx = slice_scatter(dy, zeros_like(src))
 *                                        dsrc = slice(dy)
 * Shapes: slice keeps x's shape except axis, which becomes the slice length
 * L = ceil((stop - start) / step) (0 if empty); slice_scatter gives x's shape
 * and needs src of the slice's shape. Both copy. The public functions store
 * the normalised axis/start/stop in the attribute; the kernels normalise
 * again (a no-op then), so attributes given to nb_apply may be raw. */
#include "internal.h"

typedef struct {
    int axis;
    int64_t start, stop, step;
} slice_attr;

/* Normalises a against a dimension of size n, Python-style. */
static slice_attr norm(const slice_attr *a, int ndim, const int64_t *shape)
{
    slice_attr r = *a;
    r.axis = nb__axis(a->axis, ndim);
    if (r.axis < 0 || r.step < 1)
        return r;
    int64_t n = shape[r.axis];
    if (r.start < 0)
        r.start = r.start + n < 0 ? 0 : r.start + n;
    if (r.start > n)
        r.start = n;
    if (r.stop < 0)
        r.stop = r.stop + n < 0 ? 0 : r.stop + n;
    if (r.stop > n)
        r.stop = n;
    return r;
}

static int64_t slice_len(const slice_attr *a)
{
    return a->stop > a->start ? (a->stop - a->start + a->step - 1) / a->step : 0;
}

/* Validates the raw attribute against x; fills the normalised one. */
static int check(const char *fn, const nb_tensor *x, const slice_attr *raw, slice_attr *a)
{
    char b[96];
    *a = norm(raw, x->ndim, x->shape);
    if (a->axis < 0)
        return nb__error("%s: axis %d is out of range for shape %s", fn, raw->axis,
                         nb__shape_str(x, b));
    if (a->step < 1)
        return nb__error("%s: step must be >= 1, got %lld", fn, (long long)raw->step);
    return 0;
}

/* Copies the slice of x (shape xs, axis a) to or from a compact buffer s:
 * to_s ? s = x[slice] : x[slice] = s. Byte copies of `inner` elements. */
static void copy_slice(char *xd, char *sd, int ndim, const int64_t *xs, const slice_attr *a,
                       size_t el, bool to_s)
{
    int64_t outer = nb__numel(a->axis, xs), n = xs[a->axis], len = slice_len(a);
    size_t row = (size_t)nb__numel(ndim - a->axis - 1, xs + a->axis + 1) * el;
    if (row == 0 || len == 0)
        return;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < len; j++) {
            char *px = xd + (size_t)(o * n + a->start + j * a->step) * row;
            char *ps = sd + (size_t)(o * len + j) * row;
            if (to_s)
                memcpy(ps, px, row);
            else
                memcpy(px, ps, row);
        }
}

/* ---- slice ---- */

static int slice_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    slice_attr a;
    if (check("nb_slice", x[0], attr, &a))
        return -1;
    nb_shape_same(out, x, 1, NULL);
    out->shape[a.axis] = slice_len(&a);
    return 0;
}

static void slice_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    slice_attr a = norm(attr, x[0]->ndim, x[0]->shape);
    copy_slice(x[0]->data, y->data, x[0]->ndim, x[0]->shape, &a, nb__dtype_size(y->dtype),
               true);
}

static void slice_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)n;
    slice_attr a = norm(attr, x[0]->ndim, x[0]->shape);
    dx[0] = nb_slice_scatter(nb_zeros_like(x[0]), dy, a.axis, a.start, a.stop, a.step);
}

static const slice_attr s1_1_4_2 = {1, 1, 4, 2}, s0_m3_m1 = {0, -3, -1, 1},
                        sm2_m5_big_2 = {-2, -5, 100, 2}, s2_all_3 = {2, 0, 5, 3},
                        s0_m1_end = {0, -1, 4, 1};
static const nb_op_example slice_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{4, 5}}, .attr = &s1_1_4_2},
    {.n = 1, .ndim = {2}, .shape = {{4, 5}}, .attr = &s0_m3_m1},     /* x[-3:-1] */
    {.n = 1, .ndim = {3}, .shape = {{2, 6, 3}}, .attr = &sm2_m5_big_2}, /* clips */
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 5}}, .attr = &s2_all_3},
    {.n = 1, .ndim = {1}, .shape = {{4}}, .attr = &s0_m1_end},
    {.n = 0},
};

const nb_op nb_op_slice = {.name = "slice", .arity = 1, .attr_size = sizeof(slice_attr),
                           .shape = slice_shape, .forward = slice_forward,
                           .backward = slice_backward, .saves = NB_SAVES_NONE,
                           .examples = slice_examples};

nb_tensor *nb_slice(nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    slice_attr a = {axis, start, stop, step};
    if (x && check("nb_slice", x, &(slice_attr){axis, start, stop, step}, &a))
        return NULL;
    return nb_apply(&nb_op_slice, &x, 1, &a);
}

/* ---- slice_scatter ---- */

static int scatter_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    slice_attr a;
    char b[96], c[96], d[96];
    if (check("nb_slice_scatter", x[0], attr, &a))
        return -1;
    if (x[1]->dtype != x[0]->dtype)
        return nb__error("nb_slice_scatter: dtypes differ: x is %s, src is %s",
                         nb_dtype_name(x[0]->dtype), nb_dtype_name(x[1]->dtype));
    int64_t want[NB_MAX_DIMS];
    memcpy(want, x[0]->shape, sizeof want);
    want[a.axis] = slice_len(&a);
    if (x[1]->ndim != x[0]->ndim ||
        memcmp(want, x[1]->shape, sizeof(int64_t) * (size_t)x[0]->ndim) != 0)
        return nb__error("nb_slice_scatter: src %s does not match the slice %s of x %s "
                         "([%lld:%lld:%lld] along axis %d)",
                         nb__shape_str(x[1], b), nb__dims_str(x[0]->ndim, want, c),
                         nb__shape_str(x[0], d), (long long)a.start, (long long)a.stop,
                         (long long)a.step, a.axis);
    nb_shape_same(out, x, 1, NULL);
    return 0;
}

static void scatter_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    slice_attr a = norm(attr, x[0]->ndim, x[0]->shape);
    size_t el = nb__dtype_size(y->dtype);
    if (y->numel)
        memcpy(y->data, x[0]->data, (size_t)y->numel * el);
    copy_slice(y->data, x[1]->data, y->ndim, y->shape, &a, el, false);
}

static void scatter_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n;
    slice_attr a = norm(attr, x[0]->ndim, x[0]->shape);
    if (x[0]->requires_grad)
        dx[0] = nb_slice_scatter(dy, nb_zeros_like(x[1]), a.axis, a.start, a.stop, a.step);
    if (x[1]->requires_grad)
        dx[1] = nb_slice(dy, a.axis, a.start, a.stop, a.step);
}

static const nb_op_example scatter_examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{4, 5}, {4, 2}}, .attr = &s1_1_4_2},
    {.n = 2, .ndim = {2, 2}, .shape = {{4, 5}, {2, 5}}, .attr = &s0_m3_m1},
    {.n = 2, .ndim = {3, 3}, .shape = {{2, 6, 3}, {2, 3, 3}}, .attr = &sm2_m5_big_2},
    {.n = 2, .ndim = {3, 3}, .shape = {{2, 3, 5}, {2, 3, 2}}, .attr = &s2_all_3},
    {.n = 0},
};

const nb_op nb_op_slice_scatter = {.name = "slice_scatter", .arity = 2,
                                   .attr_size = sizeof(slice_attr), .shape = scatter_shape,
                                   .forward = scatter_forward, .backward = scatter_backward,
                                   .saves = NB_SAVES_NONE, .examples = scatter_examples};

nb_tensor *nb_slice_scatter(nb_tensor *x, nb_tensor *src, int axis, int64_t start, int64_t stop,
                            int64_t step)
{
    slice_attr a = {axis, start, stop, step};
    if (x && src && check("nb_slice_scatter", x, &(slice_attr){axis, start, stop, step}, &a))
        return NULL;
    return nb_apply(&nb_op_slice_scatter, (nb_tensor *[]){x, src}, 2, &a);
}
