/* y = concat(x_1, ..., x_n, axis): the inputs joined along axis.
 *   dx_i = slice(dy, axis, o_i, o_i + x_i.shape[axis], 1),  o_i = sum_{j<i} x_j.shape[axis]
 * Shapes: all inputs share dtype, ndim (>= 1) and every dimension except
 * axis; y.shape[axis] is the sum. The op takes 1 to NB_MAX_INPUTS inputs;
 * nb_concat takes any number, in groups. Copies. */
#include "internal.h"

typedef struct {
    int axis; /* normalised by nb_concat; nb__axis is applied again anyway */
} concat_attr;

static int concat_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    int raw = ((const concat_attr *)attr)->axis;
    int ax = nb__axis(raw, x[0]->ndim);
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    if (ax < 0)
        return nb__error("nb_concat: axis %d is out of range for shape %s (input 1)", raw,
                         nb_shape_str(x[0], b));
    nb_shape_same(out, x, 1, NULL);
    for (int i = 1; i < n; i++) {
        if (x[i]->dtype != x[0]->dtype)
            return nb__dtype_error("nb_concat: dtypes differ: input 1 is %s, input %d is %s",
                             nb_dtype_name(x[0]->dtype), i + 1, nb_dtype_name(x[i]->dtype));
        bool ok = x[i]->ndim == x[0]->ndim;
        for (int d = 0; ok && d < x[0]->ndim; d++)
            ok = d == ax || x[i]->shape[d] == x[0]->shape[d];
        if (!ok)
            return nb__shape_error("nb_concat: input %d has shape %s but input 1 has %s; only "
                             "axis %d may differ",
                             i + 1, nb_shape_str(x[i], b), nb_shape_str(x[0], c), ax);
        out->shape[ax] += x[i]->shape[ax];
    }
    return 0;
}

/* Each input goes to its slab of y along the axis. */
static void concat_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    int ax = nb__axis(((const concat_attr *)attr)->axis, y->ndim);
    size_t es = nb__dtype_size(y->dtype);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        nb_view part = *y;
        part.data = (char *)y->data + (size_t)(off * y->strides[ax]) * es;
        part.shape[ax] = x[i].shape[ax];
        part.numel = x[i].numel;
        nb__copy(&part, &x[i]);
        off += x[i].shape[ax];
    }
}

static void concat_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y;
    int ax = nb__axis(((const concat_attr *)attr)->axis, dy->ndim);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = x[i]->shape[ax];
        if (x[i]->requires_grad)
            dx[i] = nb_slice(dy, ax, off, off + len, 1);
        off += len;
    }
}

/* Joined along another axis than 0, row b of y is row b of each input. */
static unsigned concat_batch(nb_tensor *const x[], int n, const void *attr)
{
    return nb__axis(((const concat_attr *)attr)->axis, x[0]->ndim) > 0 ? (1u << n) - 1u : 0;
}

static const concat_attr ax0 = {0}, ax1 = {1}, axm1 = {-1};
static const nb_op_example examples[] = {
    {.n = 3, .ndim = {3, 3, 3}, .shape = {{2, 3, 4}, {2, 1, 4}, {2, 2, 4}}, .attr = &ax1},
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 2}, {3, 4}}, .attr = &axm1},
    {.n = 2, .ndim = {2, 2}, .shape = {{1, 3}, {2, 3}}, .attr = &ax0},
    {.n = 1, .ndim = {1}, .shape = {{4}}, .attr = &ax0},
    {.n = 0},
};

const nb_op nb_op_concat = {.name = "concat", .arity = -1, .attr_size = sizeof(concat_attr),
                            .shape = concat_shape,
                            .forward = {[NB_F32] = concat_kernel, [NB_F64] = concat_kernel},
                            .backward = concat_backward, .saves = NB_SAVES_NONE,
                            .batch = concat_batch,
                            .examples = examples};

nb_tensor *nb_concat(int n, nb_tensor *const xs[], int axis)
{
    if (n < 1 || !xs) {
        nb__error("nb_concat: needs at least one tensor, got %d%s", n, xs ? "" : " (NULL array)");
        return NULL;
    }
    concat_attr a = {axis};
    if (xs[0] && nb__axis(axis, xs[0]->ndim) >= 0)
        a.axis = nb__axis(axis, xs[0]->ndim);
    if (n <= NB_MAX_INPUTS)
        return nb_apply(&nb_op_concat, xs, n, &a);
    /* More inputs than an op takes: concatenate groups, then the groups. */
    nb_tensor *parts[NB_MAX_INPUTS];
    int per = (n + NB_MAX_INPUTS - 1) / NB_MAX_INPUTS, k = 0;
    for (int i = 0; i < n; i += per, k++)
        if (!(parts[k] = nb_concat(n - i < per ? n - i : per, xs + i, axis)))
            return NULL;
    return nb_apply(&nb_op_concat, parts, k, &a);
}
