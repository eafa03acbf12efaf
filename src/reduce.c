/* Reduction attributes shared by the reducing ops and their compositions:
 * the axes as a bitmask, and the shapes with and without the reduced axes. */
#include "internal.h"

int nb__reduce_attr(const char *fn, const nb_tensor *x, const nb_axes *axes, bool keepdims,
                    nb_reduce_attr *attr)
{
    char b[NB_SHAPE_STR_LEN];
    attr->keepdims = keepdims;
    attr->mask = 0;
    if (axes->n == 0) {
        attr->mask = (1u << x->ndim) - 1u;
        return 0;
    }
    if (axes->n < 0 || axes->n > NB_MAX_DIMS)
        return nb__error("%s: %d axes given (0 to %d)", fn, axes->n, NB_MAX_DIMS);
    for (int i = 0; i < axes->n; i++) {
        int a = nb__axis(axes->axis[i], x->ndim);
        if (a < 0)
            return nb__error("%s: axis %d is out of range for shape %s", fn, axes->axis[i],
                             nb_shape_str(x, b));
        if (attr->mask & (1u << a))
            return nb__error("%s: axis %d is repeated", fn, axes->axis[i]);
        attr->mask |= 1u << a;
    }
    return 0;
}

int nb__reduce_shape(nb_meta *out, const nb_tensor *x, const nb_reduce_attr *a)
{
    out->dtype = x->dtype;
    out->ndim = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (a->mask & (1u << i)) {
            if (a->keepdims)
                out->shape[out->ndim++] = 1;
        } else {
            out->shape[out->ndim++] = x->shape[i];
        }
    }
    return 0;
}

void nb__keep_shape(const nb_tensor *x, unsigned mask, int64_t *shape)
{
    for (int i = 0; i < x->ndim; i++)
        shape[i] = (mask & (1u << i)) ? 1 : x->shape[i];
}

unsigned nb__reduce_batch(nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    return x[0]->ndim > 0 && !(((const nb_reduce_attr *)attr)->mask & 1u) ? NB_INPUT(0) : 0;
}
