/* In-place writes for no-grad code (optimizer updates, data loaders). */
#include "internal.h"

int nb_assign(nb_tensor *dst, nb_tensor *src)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    if (nb__usable("nb_assign", "dst", dst) || nb__usable("nb_assign", "src", src))
        return -1;
    if (dst->dtype != src->dtype)
        return nb__dtype_error("nb_assign: dtypes differ: dst %s %s, src %s %s",
                         nb_dtype_name(dst->dtype), nb_shape_str(dst, b),
                         nb_dtype_name(src->dtype), nb_shape_str(src, c));
    int64_t shape[NB_MAX_DIMS];
    int nd = nb__broadcast_shape(dst->ndim, dst->shape, src->ndim, src->shape, shape);
    if (nd != dst->ndim || memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd) != 0)
        return nb__shape_error("nb_assign: src %s does not broadcast to dst %s",
                         nb_shape_str(src, c), nb_shape_str(dst, b));
    if (dst->requires_grad && nb_is_grad_enabled())
        return nb__state_error("nb_assign: in-place write to %s%s%s %s, which requires grad, "
                         "while gradients are recorded (turn them off with "
                         "nb_set_grad_enabled(false))",
                         dst->name ? "'" : "", dst->name ? dst->name : "a tensor",
                         dst->name ? "'" : "", nb_shape_str(dst, b));
    if (nb__layout_overlaps(dst->ndim, dst->shape, dst->strides))
        return nb__error("nb_assign: dst %s is a view whose elements share memory (a "
                         "broadcast); write to the tensor it views instead",
                         nb_shape_str(dst, b));
    bool same = src->storage == dst->storage && src->offset == dst->offset &&
                nb__same_shape(src, dst) &&
                memcmp(src->strides, dst->strides, sizeof(int64_t) * (size_t)nd) == 0;
    if (same)
        return 0;
    /* A source in the same storage may overlap what is being written: read
     * it from a copy. */
    nb_tensor *tmp = NULL;
    if (src->storage == dst->storage && !(src = tmp = nb_clone(src)))
        return nb__memory_error("nb_assign: out of memory for a copy of the source %s",
                                nb_shape_str(dst, b));
    nb_view dv, sv;
    nb__view(dst, &dv);
    nb__view(src, &sv);
    nb__copy(&dv, &sv);
    nb_free(tmp);
    nb__bump(dst);
    return 0;
}
