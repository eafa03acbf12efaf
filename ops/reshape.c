/* y = reshape(x, shape);  dx = reshape(dy, x.shape)
 * A view of x's storage when its strides allow one (x's dimensions split or
 * merged only within runs of evenly strided dimensions, as PyTorch's view);
 * otherwise y is a packed copy, as PyTorch's reshape. */
#include "internal.h"

typedef struct {
    int ndim;
    int64_t shape[NB_MAX_DIMS];
} reshape_attr;

/* Strides that make shape a view of x's elements in row-major order, if
 * there are any: x's dimensions are taken in runs that step evenly through
 * memory, and each run must be covered exactly by consecutive new ones. */
static bool view_strides(const nb_tensor *x, int nd, const int64_t *shape, int64_t *st)
{
    if (x->numel == 0 || x->ndim == 0) {
        nb__strides(nd, shape, st);
        return true;
    }
    int v = nd - 1;
    int64_t base = x->strides[x->ndim - 1], tn = 1, vn = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        tn *= x->shape[d];
        if (d == 0 || (x->shape[d - 1] != 1 && x->strides[d - 1] != tn * base)) {
            while (v >= 0 && (vn < tn || shape[v] == 1)) {
                st[v] = vn * base;
                vn *= shape[v];
                v--;
            }
            if (vn != tn)
                return false;
            if (d > 0) {
                base = x->strides[d - 1];
                tn = vn = 1;
            }
        }
    }
    return v == -1;
}

static int reshape_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const reshape_attr *a = attr;
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] == -1 && infer < 0)
            infer = i;
        else if (a->shape[i] < 0)
            return nb__shape_error("nb_reshape: cannot reshape %s to %s: bad dimension %lld",
                             nb_shape_str(x[0], b), nb_dims_str(a->ndim, a->shape, c),
                             (long long)a->shape[i]);
        else if (a->shape[i] != 0 && known > NB_MAX_NUMEL / a->shape[i])
            return nb__shape_error("nb_reshape: cannot reshape %s to %s: more than 2^48 elements",
                             nb_shape_str(x[0], b), nb_dims_str(a->ndim, a->shape, c));
        else
            known *= a->shape[i];
    }
    out->dtype = x[0]->dtype;
    out->ndim = a->ndim;
    memcpy(out->shape, a->shape, sizeof a->shape);
    if (infer >= 0) {
        if (known == 0 || x[0]->numel % known != 0)
            return nb__shape_error("nb_reshape: cannot reshape %s (%lld elements) to %s",
                             nb_shape_str(x[0], b), (long long)x[0]->numel,
                             nb_dims_str(a->ndim, a->shape, c));
        out->shape[infer] = x[0]->numel / known;
    } else if (known != x[0]->numel) {
        return nb__shape_error("nb_reshape: cannot reshape %s (%lld elements) to %s",
                         nb_shape_str(x[0], b), (long long)x[0]->numel,
                         nb_dims_str(a->ndim, a->shape, c));
    }
    out->view = view_strides(x[0], out->ndim, out->shape, out->strides);
    out->offset = x[0]->offset;
    return 0;
}

/* Not a view: y's buffer holds x's elements in x's row-major order. */
static void reshape_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n, (void)attr;
    nb_view dst = x[0];
    dst.data = y->data;
    nb__strides(dst.ndim, dst.shape, dst.strides);
    nb__copy(&dst, &x[0]);
}

static void reshape_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n, (void)attr;
    dx[0] = nb_reshape(dy, x[0]->ndim, x[0]->shape);
}

static const reshape_attr to_12 = {1, {12}}, to_2x = {3, {2, -1, 3}}, to_scalar = {0, {0}};
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &to_12},
    {.n = 1, .ndim = {2}, .shape = {{4, 3}}, .attr = &to_2x},
    {.n = 1, .ndim = {1}, .shape = {{1}}, .attr = &to_scalar},
    {.n = 0},
};

const nb_op nb_op_reshape = {.name = "reshape", .arity = 1, .attr_size = sizeof(reshape_attr),
                             .shape = reshape_shape,
                             .forward = {[NB_F32] = reshape_kernel, [NB_F64] = reshape_kernel},
                             .backward = reshape_backward, .saves = NB_SAVES_NONE,
                             .examples = examples};

nb_tensor *nb_reshape(nb_tensor *x, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > NB_MAX_DIMS) {
        nb__shape_error("nb_reshape: a shape needs 0 to %d dimensions, got %d", NB_MAX_DIMS, ndim);
        return NULL;
    }
    if (ndim && !shape) {
        nb__error("nb_reshape: shape is NULL (%d dimensions)", ndim);
        return NULL;
    }
    reshape_attr a = {.ndim = ndim};
    for (int i = 0; i < ndim; i++)
        a.shape[i] = shape[i];
    return nb_apply(&nb_op_reshape, &x, 1, &a);
}
