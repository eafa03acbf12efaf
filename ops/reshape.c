/* y = reshape(x, shape), a view sharing x's storage;  dx = reshape(dy, x.shape) */
#include "internal.h"

typedef struct {
    int ndim;
    int64_t shape[NB_MAX_DIMS];
} reshape_attr;

static int reshape_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const reshape_attr *a = attr;
    char b[96], c[96];
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] == -1 && infer < 0)
            infer = i;
        else if (a->shape[i] < 0)
            return nb__error("nb_reshape: cannot reshape %s to %s: bad dimension %lld",
                             nb__shape_str(x[0], b), nb__dims_str(a->ndim, a->shape, c),
                             (long long)a->shape[i]);
        else
            known *= a->shape[i];
    }
    out->dtype = x[0]->dtype;
    out->ndim = a->ndim;
    memcpy(out->shape, a->shape, sizeof a->shape);
    if (infer >= 0) {
        if (known == 0 || x[0]->numel % known != 0)
            return nb__error("nb_reshape: cannot reshape %s (%lld elements) to %s",
                             nb__shape_str(x[0], b), (long long)x[0]->numel,
                             nb__dims_str(a->ndim, a->shape, c));
        out->shape[infer] = x[0]->numel / known;
    } else if (known != x[0]->numel) {
        return nb__error("nb_reshape: cannot reshape %s (%lld elements) to %s",
                         nb__shape_str(x[0], b), (long long)x[0]->numel,
                         nb__dims_str(a->ndim, a->shape, c));
    }
    return 0;
}

static void reshape_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    nb__share(y, x[0]);
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
                             .shape = reshape_shape, .forward = reshape_forward,
                             .backward = reshape_backward, .saves = NB_SAVES_NONE,
                             .view = true, .examples = examples};

nb_tensor *nb_reshape(nb_tensor *x, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > NB_MAX_DIMS || (ndim && !shape)) {
        nb__error("nb_reshape: a shape needs 0 to %d dimensions, got %d", NB_MAX_DIMS, ndim);
        return NULL;
    }
    reshape_attr a = {.ndim = ndim};
    for (int i = 0; i < ndim; i++)
        a.shape[i] = shape[i];
    return nb_apply(&nb_op_reshape, &x, 1, &a);
}
