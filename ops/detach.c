/* y = detach(x): the same values, sharing x's storage (a view), with no
 * history. No backward: nb_apply records nothing for an op without one, so
 * y does not require grad and gradients stop here (dx = none). Writing to y
 * in place is a write to x (shared version counter too). */
#include "internal.h"

static void detach_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    nb__share(y, x[0]);
}

/* No backward: gradcheck checks that the output carries no gradient. */
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}},
    {.n = 0},
};

const nb_op nb_op_detach = {.name = "detach", .arity = 1, .shape = nb_shape_same,
                            .forward = detach_forward, .saves = NB_SAVES_NONE,
                            .view = true, .examples = examples};

nb_tensor *nb_detach(nb_tensor *x) { return nb_apply(&nb_op_detach, &x, 1, NULL); }
