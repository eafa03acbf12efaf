/* Compositions of primitive ops. No derivative code here: gradients come
 * from the primitives, so everything below is gradient-checkable as is. */
#include "internal.h"

#include <math.h>

nb_tensor *nb_square(nb_tensor *x) { return nb_mul(x, x); }

nb_tensor *nb_transpose(nb_tensor *x, int dim0, int dim1)
{
    if (!x)
        return nb_permute(x, 0, NULL);
    int a = nb__axis(dim0, x->ndim), b = nb__axis(dim1, x->ndim);
    if (a < 0 || b < 0) {
        char s[96];
        nb__error("nb_transpose: dimensions %d, %d are out of range for shape %s", dim0, dim1,
                  nb__shape_str(x, s));
        return NULL;
    }
    int perm[NB_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++)
        perm[i] = i;
    perm[a] = b;
    perm[b] = a;
    return nb_permute(x, x->ndim, perm);
}

nb_tensor *nb_min(nb_tensor *x, int naxes, const int *axes, bool keepdims)
{
    return nb_neg(nb_max(nb_neg(x), naxes, axes, keepdims));
}

/* Number of elements a reduction over (naxes, axes) combines. */
static double reduced_count(const char *fn, nb_tensor *x, int naxes, const int *axes)
{
    nb_reduce_attr a;
    if (nb__reduce_attr(fn, x, naxes, axes, false, &a))
        return -1;
    double n = 1;
    for (int i = 0; i < x->ndim; i++)
        if (a.mask & (1u << i))
            n *= (double)x->shape[i];
    return n;
}

nb_tensor *nb_mean(nb_tensor *x, int naxes, const int *axes, bool keepdims)
{
    if (!x)
        return nb_sum(x, naxes, axes, keepdims);
    double n = reduced_count("nb_mean", x, naxes, axes);
    if (n < 0)
        return NULL;
    return nb_div(nb_sum(x, naxes, axes, keepdims), nb_scalar_like(x, n));
}

nb_tensor *nb_var(nb_tensor *x, int naxes, const int *axes, bool keepdims)
{
    nb_tensor *mu = nb_mean(x, naxes, axes, true);
    return nb_mean(nb_square(nb_sub(x, mu)), naxes, axes, keepdims);
}

nb_tensor *nb_logsumexp(nb_tensor *x, int naxes, const int *axes, bool keepdims)
{
    /* The shift is detached: lse(x) = m + log(sum(exp(x - m))) for any m, so
     * its gradient through m is zero and need not be recorded. An all -inf
     * row keeps m finite so that it gives -inf, not NaN. */
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *m = nb_max(x, naxes, axes, true);
    nb_set_grad_enabled(prev);
    if (m) {
        for (int64_t i = 0; i < m->numel; i++)
            if (!isfinite(nb__get(m, i)))
                nb__put(m, i, 0.0);
    }
    nb_tensor *s = nb_log(nb_sum(nb_exp(nb_sub(x, m)), naxes, axes, true));
    nb_tensor *r = nb_add(s, m);
    if (!r || keepdims)
        return r;
    nb_meta out;
    nb_reduce_attr a;
    if (nb__reduce_attr("nb_logsumexp", x, naxes, axes, false, &a))
        return NULL;
    nb__reduce_shape(&out, x, &a);
    return nb_reshape(r, out.ndim, out.shape);
}

nb_tensor *nb_log_softmax(nb_tensor *x, int axis)
{
    return nb_sub(x, nb_logsumexp(x, 1, &axis, true));
}

nb_tensor *nb_softmax(nb_tensor *x, int axis)
{
    /* Shifting by the max changes nothing mathematically, so the shift is
     * a constant (computed without recording). */
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *m = nb_max(x, 1, &axis, true);
    nb_set_grad_enabled(prev);
    nb_tensor *e = nb_exp(nb_sub(x, m));
    return nb_div(e, nb_sum(e, 1, &axis, true));
}
