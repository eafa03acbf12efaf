/* y = contiguous(x): x's values packed row-major;  dx = dy
 * nb_contiguous returns x itself when it already is contiguous, so the op
 * only ever runs on views (and on any input through nb_apply). */
#include "internal.h"

static void contiguous_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n, (void)attr;
    nb__copy(y, &x[0]);
}

static void contiguous_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)x, (void)n, (void)attr;
    dx[0] = dy;
}

static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}},
    {.n = 1, .ndim = {0}},
    {.n = 0},
};

const nb_op nb_op_contiguous = {
    .name = "contiguous", .arity = 1, .shape = nb_shape_same,
    .forward = {[NB_F32] = contiguous_kernel, [NB_F64] = contiguous_kernel},
    .backward = contiguous_backward, .saves = NB_SAVES_NONE, .batch = nb_batch_rows,
    .examples = examples};

nb_tensor *nb_contiguous(nb_tensor *x)
{
    if (x && x->contiguous && nb__live(x))
        return x; /* itself (a stale or freed one goes to nb_apply, which says so) */
    return nb_apply(&nb_op_contiguous, &x, 1, NULL);
}
