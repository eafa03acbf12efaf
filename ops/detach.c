/* y = detach(x): the same values, a view of x's storage, with no history.
 * No gradient by design: y does not require grad, and gradients stop here.
 * Writing to y in place is a write to x (their version counter is shared). */
#include "internal.h"

static int detach_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    nb_shape_same(out, x, n, attr);
    out->view = true;
    memcpy(out->strides, x[0]->strides, sizeof out->strides);
    out->offset = x[0]->offset;
    return 0;
}

static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}},
    {.n = 0},
};

const nb_op nb_op_detach = {.name = "detach", .arity = 1, .shape = detach_shape,
                            .no_gradient = true, .saves = NB_SAVES_NONE,
                            .examples = examples};

nb_tensor *nb_detach(nb_tensor *x) { return nb_apply(&nb_op_detach, &x, 1, NULL); }
