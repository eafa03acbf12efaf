/* In-place writes for no-grad code (optimizer updates). */
#include "internal.h"

int nb_assign(nb_tensor *dst, nb_tensor *src)
{
    char b[96], c[96];
    if (!dst || !src) {
        if (!nb__has_error())
            nb__error("nb_assign: %s is NULL", dst ? "src" : "dst");
        return -1;
    }
    if (dst->dtype != src->dtype)
        return nb__error("nb_assign: dtypes differ: dst %s %s, src %s %s",
                         nb_dtype_name(dst->dtype), nb__shape_str(dst, b),
                         nb_dtype_name(src->dtype), nb__shape_str(src, c));
    int64_t shape[NB_MAX_DIMS];
    int nd = nb__broadcast_shape(dst->ndim, dst->shape, src->ndim, src->shape, shape);
    if (nd != dst->ndim || memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd) != 0)
        return nb__error("nb_assign: src %s does not broadcast to dst %s",
                         nb__shape_str(src, c), nb__shape_str(dst, b));
    if (dst->requires_grad && nb_is_grad_enabled())
        return nb__error("nb_assign: in-place write to %s%s%s %s, which requires grad, "
                         "while gradients are recorded (turn them off with "
                         "nb_set_grad_enabled(false))",
                         dst->name ? "'" : "", dst->name ? dst->name : "a tensor",
                         dst->name ? "'" : "", nb__shape_str(dst, b));
    if (src->data == dst->data)
        return 0;
    if (nb__same_shape(dst, src))
        memcpy(dst->data, src->data, (size_t)dst->numel * nb__dtype_size(dst->dtype));
    else /* repeat src along dst's broadcast dimensions */
        NB_BY_DTYPE(dst, NB_LOOP2, dst, src, src, ((void)v, u));
    nb__bump(dst);
    return 0;
}
