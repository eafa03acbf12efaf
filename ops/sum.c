/* sum, sum_to, broadcast_to: each is the others' backward.
 *   y = sum(x, axes)        dx = broadcast_to(reshape(dy, keep-shape), x)
 *   y = sum_to(x, shape)    dx = broadcast_to(dy, x)
 *   y = broadcast_to(x, s)  dx = sum_to(dy, x)
 * broadcast_to is a view (stride 0 along the repeated dimensions), so the
 * gradient of a sum costs no copy. Sums accumulate in double, f32 too. */
#include "internal.h"

/* ---- sum over axes ---- */

static int sum_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    return nb__reduce_shape(out, x[0], attr);
}

NB_KERNEL_TARGETS static void sum_f32(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    NB_REDUCE(float, double, y, &x[0], ((const nb_reduce_attr *)attr)->mask, 0.0, acc + u);
}

NB_KERNEL_TARGETS static void sum_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    NB_REDUCE(double, double, y, &x[0], ((const nb_reduce_attr *)attr)->mask, 0.0, acc + u);
}

static void sum_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)y, (void)n;
    int64_t keep[NB_MAX_DIMS];
    nb__keep_shape(x[0], ((const nb_reduce_attr *)attr)->mask, keep);
    dx[0] = nb_broadcast_to(nb_reshape(dy, x[0]->ndim, keep), x[0]->ndim, x[0]->shape);
}

static const nb_reduce_attr all = {.mask = ~0u}, ax1 = {.mask = 2}, ax0k = {.mask = 1, .keepdims = true},
                            ax02 = {.mask = 5};
static const nb_op_example sum_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &all},
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &ax1},
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &ax0k},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &ax02},
    {.n = 0},
};

const nb_op nb_op_sum = {.name = "sum", .arity = 1, .attr_size = sizeof(nb_reduce_attr),
                         .shape = sum_shape, .forward = NB_KERNELS(sum), .backward = sum_backward,
                         .saves = NB_SAVES_NONE, .batch = nb__reduce_batch,
                         .examples = sum_examples};

nb_tensor *nb_sum_(nb_reduce_args args)
{
    nb_reduce_attr a = {0};
    if (args.x && nb__reduce_attr("nb_sum", args.x, &args.axes, args.keepdims, &a))
        return NULL;
    return nb_apply(&nb_op_sum, &args.x, 1, &a);
}

/* ---- shape attributes shared by sum_to and broadcast_to ---- */

typedef struct {
    int ndim;
    int64_t shape[NB_MAX_DIMS];
} shape_attr;

static int sum_to_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const shape_attr *s = attr;
    int64_t b[NB_MAX_DIMS];
    char p[NB_SHAPE_STR_LEN], q[NB_SHAPE_STR_LEN];
    if (s->ndim > x[0]->ndim ||
        nb__broadcast_shape(s->ndim, s->shape, x[0]->ndim, x[0]->shape, b) != x[0]->ndim ||
        memcmp(b, x[0]->shape, sizeof(int64_t) * (size_t)x[0]->ndim) != 0)
        return nb__shape_error("nb_sum_to: shape %s does not broadcast to %s",
                         nb_dims_str(s->ndim, s->shape, p), nb_shape_str(x[0], q));
    out->dtype = x[0]->dtype;
    out->ndim = s->ndim;
    memcpy(out->shape, s->shape, sizeof s->shape);
    return 0;
}

/* The axes of x that shape does not have, or has as 1 where x does not. */
static unsigned sum_to_mask(const nb_view *x, const shape_attr *s)
{
    unsigned mask = 0;
    int lead = x->ndim - s->ndim;
    for (int i = 0; i < x->ndim; i++)
        if (i < lead || (s->shape[i - lead] == 1 && x->shape[i] != 1))
            mask |= 1u << i;
    return mask;
}

NB_KERNEL_TARGETS static void sum_to_f32(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    NB_REDUCE(float, double, y, &x[0], sum_to_mask(&x[0], attr), 0.0, acc + u);
}

NB_KERNEL_TARGETS static void sum_to_f64(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    NB_REDUCE(double, double, y, &x[0], sum_to_mask(&x[0], attr), 0.0, acc + u);
}

static void sum_to_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_broadcast_to(dy, x[0]->ndim, x[0]->shape);
}

static const shape_attr to_4 = {1, {4}}, to_31 = {2, {3, 1}}, to_scalar = {0, {0}};
static const nb_op_example sum_to_examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &to_4},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &to_31},
    {.n = 1, .ndim = {2}, .shape = {{2, 3}}, .attr = &to_scalar},
    {.n = 0},
};

const nb_op nb_op_sum_to = {.name = "sum_to", .arity = 1, .attr_size = sizeof(shape_attr),
                            .shape = sum_to_shape, .forward = NB_KERNELS(sum_to),
                            .backward = sum_to_backward, .saves = NB_SAVES_NONE,
                            .examples = sum_to_examples};

static int shape_attr_of(const char *fn, int ndim, const int64_t *shape, shape_attr *a)
{
    if (ndim < 0 || ndim > NB_MAX_DIMS)
        return nb__shape_error("%s: a shape needs 0 to %d dimensions, got %d", fn, NB_MAX_DIMS, ndim);
    if (ndim && !shape)
        return nb__error("%s: shape is NULL (%d dimensions)", fn, ndim);
    memset(a, 0, sizeof *a);
    a->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        a->shape[i] = shape[i];
    return 0;
}

nb_tensor *nb_sum_to(nb_tensor *x, int ndim, const int64_t *shape)
{
    shape_attr a;
    if (shape_attr_of("nb_sum_to", ndim, shape, &a))
        return NULL;
    return nb_apply(&nb_op_sum_to, &x, 1, &a);
}

/* ---- broadcast_to ---- */

static int broadcast_to_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const shape_attr *s = attr;
    int64_t b[NB_MAX_DIMS];
    char p[NB_SHAPE_STR_LEN], q[NB_SHAPE_STR_LEN];
    if (x[0]->ndim > s->ndim ||
        nb__broadcast_shape(x[0]->ndim, x[0]->shape, s->ndim, s->shape, b) != s->ndim ||
        memcmp(b, s->shape, sizeof(int64_t) * (size_t)s->ndim) != 0)
        return nb__shape_error("nb_broadcast_to: shape %s does not broadcast to %s",
                         nb_shape_str(x[0], q), nb_dims_str(s->ndim, s->shape, p));
    out->dtype = x[0]->dtype;
    out->ndim = s->ndim;
    memcpy(out->shape, s->shape, sizeof s->shape);
    /* A view: stride 0 where x is repeated. */
    out->view = true;
    out->offset = x[0]->offset;
    for (int i = 0; i < s->ndim; i++) {
        int j = i - (s->ndim - x[0]->ndim);
        out->strides[i] = j < 0 || (x[0]->shape[j] == 1 && s->shape[i] != 1) ? 0
                                                                             : x[0]->strides[j];
    }
    return 0;
}

static void broadcast_to_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                  nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_sum_to(dy, x[0]->ndim, x[0]->shape);
}

static const shape_attr to_34 = {2, {3, 4}}, to_234 = {3, {2, 3, 4}};
static const nb_op_example broadcast_examples[] = {
    {.n = 1, .ndim = {1}, .shape = {{4}}, .attr = &to_34},
    {.n = 1, .ndim = {2}, .shape = {{3, 1}}, .attr = &to_234},
    {.n = 1, .ndim = {0}, .attr = &to_34},
    {.n = 0},
};

const nb_op nb_op_broadcast_to = {.name = "broadcast_to", .arity = 1,
                                  .attr_size = sizeof(shape_attr), .shape = broadcast_to_shape,
                                  .backward = broadcast_to_backward, .saves = NB_SAVES_NONE,
                                  .examples = broadcast_examples};

nb_tensor *nb_broadcast_to(nb_tensor *x, int ndim, const int64_t *shape)
{
    shape_attr a;
    if (shape_attr_of("nb_broadcast_to", ndim, shape, &a))
        return NULL;
    return nb_apply(&nb_op_broadcast_to, &x, 1, &a);
}
