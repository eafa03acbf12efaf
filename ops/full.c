/* full_like: a constant with the dtype (and shape) of another tensor.
 * It reads only x's metadata, so it has no gradient by design: y = c. */
#include "internal.h"

typedef struct {
    double value;
    bool scalar; /* 0-d instead of x's shape */
} full_attr;

static int full_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    nb_shape_same(out, x, n, attr);
    if (((const full_attr *)attr)->scalar)
        out->ndim = 0;
    return 0;
}

#define FULL_KERNEL(fn, T)                                                     \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)x, (void)n;                                                      \
        const T v = (T)((const full_attr *)attr)->value;                       \
        T *p = y->data;                                                        \
        for (int64_t i = 0; i < y->numel; i++)                                 \
            p[i] = v;                                                          \
    }
FULL_KERNEL(full_f32, float)
FULL_KERNEL(full_f64, double)

const nb_op nb_op_full_like = {.name = "full_like", .arity = 1, .attr_size = sizeof(full_attr),
                               .shape = full_shape, .forward = NB_KERNELS(full),
                               .no_gradient = true};

nb_tensor *nb_full_like(nb_tensor *t, double value)
{
    return nb_apply(&nb_op_full_like, &t, 1, &(full_attr){value, false});
}

/* Its own public name in errors, though it applies full_like. */
nb_tensor *nb_scalar_like(nb_tensor *t, double value)
{
    if (nb_check_tensor("nb_scalar_like", "t", t))
        return NULL;
    NB__NAMED("nb_scalar_like", nb_tensor *,
              nb_apply(&nb_op_full_like, &t, 1, &(full_attr){value, true}));
}

/* Compositions: a NULL t and anything failing inside name these. */
static nb_tensor *filled_like(const char *fn, nb_tensor *t, double value)
{
    if (nb_check_tensor(fn, "t", t))
        return NULL;
    NB__NAMED(fn, nb_tensor *, nb_full_like(t, value));
}
nb_tensor *nb_zeros_like(nb_tensor *t) { return filled_like("nb_zeros_like", t, 0.0); }
nb_tensor *nb_ones_like(nb_tensor *t) { return filled_like("nb_ones_like", t, 1.0); }
