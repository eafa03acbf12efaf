/* Compositions of primitive ops. No derivative code here: gradients come
 * from the primitives, so everything below is gradient-checkable as is.
 * Each checks its own arguments first, so that an error names the function
 * the user called rather than an op inside it. */
#include "internal.h"

#include <math.h>

/* x present (or the first error kept) and a graph to record into. */
static int need(const char *fn, const nb_tensor *x)
{
    if (nb__usable(fn, "x", x))
        return -1;
    if (!nb__graph())
        return nb__state_error("%s: no current graph (create one with nb_graph_new)", fn);
    return 0;
}

static int axis_of(const char *fn, const nb_tensor *x, int axis)
{
    char b[NB_SHAPE_STR_LEN];
    int a = nb__axis(axis, x->ndim);
    if (a < 0)
        nb__error("%s: axis %d is out of range for shape %s", fn, axis, nb_shape_str(x, b));
    return a;
}

static nb_tensor *square_impl(nb_tensor *x) { return need("nb_square", x) ? NULL : nb_mul(x, x); }

static nb_tensor *transpose_impl(nb_tensor *x, int dim0, int dim1)
{
    if (need("nb_transpose", x))
        return NULL;
    int a = axis_of("nb_transpose", x, dim0), b = a < 0 ? -1 : axis_of("nb_transpose", x, dim1);
    if (b < 0)
        return NULL;
    int perm[NB_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return nb_permute(x, x->ndim, perm);
}

static nb_tensor *squeeze_impl(nb_tensor *x, int axis)
{
    char b[NB_SHAPE_STR_LEN];
    if (need("nb_squeeze", x))
        return NULL;
    int a = axis_of("nb_squeeze", x, axis);
    if (a < 0)
        return NULL;
    if (x->shape[a] != 1) {
        nb__shape_error("nb_squeeze: axis %d of shape %s has size %lld, not 1", axis,
                  nb_shape_str(x, b), (long long)x->shape[a]);
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    for (int i = 0, k = 0; i < x->ndim; i++)
        if (i != a)
            shape[k++] = x->shape[i];
    return nb_reshape(x, x->ndim - 1, shape);
}

static nb_tensor *unsqueeze_impl(nb_tensor *x, int axis)
{
    char b[NB_SHAPE_STR_LEN];
    if (need("nb_unsqueeze", x))
        return NULL;
    /* Positions run over the result's ndim + 1 places: -1 is the end. */
    int a = axis < 0 ? axis + x->ndim + 1 : axis;
    if (a < 0 || a > x->ndim || x->ndim == NB_MAX_DIMS) {
        nb__error("nb_unsqueeze: cannot insert an axis at %d into shape %s%s", axis,
                  nb_shape_str(x, b), x->ndim == NB_MAX_DIMS ? " (already NB_MAX_DIMS)" : "");
        return NULL;
    }
    int64_t shape[NB_MAX_DIMS];
    for (int i = 0, k = 0; i <= x->ndim; i++)
        shape[i] = i == a ? 1 : x->shape[k++];
    return nb_reshape(x, x->ndim + 1, shape);
}

/* Checks the axes of a reduction named fn; the count of elements each
 * output combines into *count. */
static int reduce_args(const char *fn, const nb_reduce_args *a, nb_reduce_attr *r, double *count)
{
    if (need(fn, a->x) || nb__reduce_attr(fn, a->x, &a->axes, a->keepdims, r))
        return -1;
    *count = 1;
    for (int i = 0; i < a->x->ndim; i++)
        if (r->mask & (1u << i))
            *count *= (double)a->x->shape[i];
    return 0;
}

static nb_tensor *min_impl(nb_reduce_args a)
{
    nb_reduce_attr r;
    double count;
    if (reduce_args("nb_min", &a, &r, &count))
        return NULL;
    char b[NB_SHAPE_STR_LEN];
    nb_meta out;
    nb__reduce_shape(&out, a.x, &r);
    if (count == 0 && nb__numel(out.ndim, out.shape) > 0) {
        nb__shape_error("nb_min: cannot take the min over an axis of size 0 (shape %s)",
                  nb_shape_str(a.x, b));
        return NULL;
    }
    a.x = nb_neg(a.x);
    return nb_neg(nb_max_(a));
}

static nb_tensor *mean_impl(nb_reduce_args a)
{
    nb_reduce_attr r;
    double count;
    if (reduce_args("nb_mean", &a, &r, &count))
        return NULL;
    return nb_div(nb_sum_(a), nb_scalar_like(a.x, count));
}

static nb_tensor *var_impl(nb_reduce_args a)
{
    nb_reduce_attr r;
    double count;
    if (reduce_args("nb_var", &a, &r, &count))
        return NULL;
    nb_reduce_args k = a;
    k.keepdims = true;
    nb_tensor *x = a.x;
    a.x = nb_square(nb_sub(x, nb_mean_(k)));
    return nb_mean_(a);
}

/* The max a shift subtracts is computed without recording, so a picture
 * would show it as a bare constant: named, it says what it is (in the
 * graph's tensors only; the name is never written through). */
static char detached_max[] = "max (detached)";

static nb_tensor *named_shift(nb_tensor *m)
{
    if (m && m->lifetime == NB_ARENA && !m->name)
        m->name = detached_max;
    return m;
}

static nb_tensor *logsumexp_impl(nb_reduce_args a)
{
    nb_reduce_attr r;
    double count;
    if (reduce_args("nb_logsumexp", &a, &r, &count))
        return NULL;
    nb_tensor *x = a.x;
    /* Over nothing, the sum is 0: log gives -inf, as in PyTorch. */
    if (count == 0) {
        a.x = nb_exp(x);
        return nb_log(nb_sum_(a));
    }
    /* The shift is detached: lse(x) = m + log(sum(exp(x - m))) for any m, so
     * its gradient through m is zero and need not be recorded. An all -inf
     * row keeps m finite so that it gives -inf, not NaN. */
    nb_reduce_args k = a;
    k.keepdims = true;
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *m = named_shift(nb_max_(k));
    nb_set_grad_enabled(prev);
    if (m) {
        for (int64_t i = 0; i < m->numel; i++)
            if (!isfinite(nb__get(m, i)))
                nb__put(m, i, 0.0);
    }
    k.x = nb_exp(nb_sub(x, m));
    nb_tensor *s = nb_add(nb_log(nb_sum_(k)), m);
    if (!s || a.keepdims)
        return s;
    nb_meta out;
    nb__reduce_shape(&out, x, &r);
    return nb_reshape(s, out.ndim, out.shape);
}

static nb_tensor *log_softmax_impl(nb_tensor *x, int axis)
{
    if (need("nb_log_softmax", x) || axis_of("nb_log_softmax", x, axis) < 0)
        return NULL;
    return nb_sub(x, nb_logsumexp(x, .axes = NB_AXES(axis), .keepdims = true));
}

static nb_tensor *softmax_impl(nb_tensor *x, int axis)
{
    int a;
    if (need("nb_softmax", x) || (a = axis_of("nb_softmax", x, axis)) < 0)
        return NULL;
    /* Shifting by the max changes nothing mathematically, so the shift is
     * a constant (computed without recording); an empty axis needs none. */
    nb_tensor *z = x;
    if (x->shape[a] > 0) {
        bool prev = nb_set_grad_enabled(false);
        nb_tensor *m = named_shift(nb_max(x, .axes = NB_AXES(a), .keepdims = true));
        nb_set_grad_enabled(prev);
        z = nb_sub(x, m);
    }
    nb_tensor *e = nb_exp(z);
    return nb_div(e, nb_sum(e, .axes = NB_AXES(a), .keepdims = true));
}

/* The public functions: errors inside any of them name it first. */
nb_tensor *nb_square(nb_tensor *x) { NB__NAMED("nb_square", nb_tensor *, square_impl(x)); }
nb_tensor *nb_transpose(nb_tensor *x, int dim0, int dim1)
{
    NB__NAMED("nb_transpose", nb_tensor *, transpose_impl(x, dim0, dim1));
}
nb_tensor *nb_squeeze(nb_tensor *x, int axis)
{
    NB__NAMED("nb_squeeze", nb_tensor *, squeeze_impl(x, axis));
}
nb_tensor *nb_unsqueeze(nb_tensor *x, int axis)
{
    NB__NAMED("nb_unsqueeze", nb_tensor *, unsqueeze_impl(x, axis));
}
nb_tensor *nb_min_(nb_reduce_args a) { NB__NAMED("nb_min", nb_tensor *, min_impl(a)); }
nb_tensor *nb_mean_(nb_reduce_args a) { NB__NAMED("nb_mean", nb_tensor *, mean_impl(a)); }
nb_tensor *nb_var_(nb_reduce_args a) { NB__NAMED("nb_var", nb_tensor *, var_impl(a)); }
nb_tensor *nb_logsumexp_(nb_reduce_args a)
{
    NB__NAMED("nb_logsumexp", nb_tensor *, logsumexp_impl(a));
}
nb_tensor *nb_log_softmax(nb_tensor *x, int axis)
{
    NB__NAMED("nb_log_softmax", nb_tensor *, log_softmax_impl(x, axis));
}
nb_tensor *nb_softmax(nb_tensor *x, int axis)
{
    NB__NAMED("nb_softmax", nb_tensor *, softmax_impl(x, axis));
}
