/* y = a^b, broadcasting; the gradients as PyTorch's pow_backward_self and
 * pow_backward_exponent:
 *   da = where(b == 0, 0, dy * b * a^(b - 1))
 *   db = where(a == 0 & b >= 0, 0, dy * y * log(a))
 * summed back over broadcast dimensions. The masks give the finite limits
 * where a factor is 0 and the other infinite (0 * 0^-1 at a = 0, b = 0;
 * 0 * log 0 at a = 0, b >= 0) instead of NaN. Both rules are written with
 * ops (pow itself among them), so they differentiate again and the masks
 * apply at every order: d2y/da2 = b (b - 1) a^(b-2) comes out of the pow in
 * da, masked where b - 1 == 0. db needs a > 0 elsewhere (log), and is
 * computed only when b requires grad, so x^2 with a constant exponent works
 * for any x. */
#include "internal.h"

#include <math.h>

NB_BINARY_KERNEL_(pow_f32, float, powf(u, v))
NB_BINARY_KERNEL_(pow_f64, double, pow(u, v))

static void pow_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)n, (void)attr;
    nb_tensor *a = x[0], *b = x[1];
    nb_tensor *zero = nb_scalar_like(dy, 0.0);
    /* The masks are comparisons: constants, with no gradient of their own. */
    if (a->requires_grad) {
        nb_tensor *bm1 = nb_sub(b, nb_scalar_like(b, 1.0));
        nb_tensor *g = nb_mul(dy, nb_mul(b, nb_pow(a, bm1)));
        dx[0] = nb_where(nb_eq(b, zero), zero, g);
    }
    if (b->requires_grad) {
        nb_tensor *flat = nb_mul(nb_eq(a, zero), nb_ge(b, zero));
        dx[1] = nb_where(flat, zero, nb_mul(dy, nb_mul(y, nb_log(a))));
    }
}

/* a stays in [0.5, 2]: positive (log(a) in db) and away from 0 (a^(b-1));
 * the limits at a = 0 are tested by hand against PyTorch's values. */
static const nb_op_example examples[] = {
    {.n = 2, .ndim = {2, 2}, .shape = {{3, 4}, {3, 4}},
     .domain = {{.lo = 0.5, .hi = 2}, {.lo = -2, .hi = 2}}},
    {.n = 2, .ndim = {2, 1}, .shape = {{3, 4}, {4}},
     .domain = {{.lo = 0.5, .hi = 2}, {.lo = -2, .hi = 2}}},
    {.n = 2, .ndim = {1, 2}, .shape = {{4}, {3, 1}},
     .domain = {{.lo = 0.5, .hi = 2}, {.lo = -1, .hi = 1}}},
    {.n = 2, .ndim = {2, 0}, .shape = {{2, 3}, {0}},
     .domain = {{.lo = 0.5, .hi = 2}, {.lo = 1, .hi = 3}}},
    {.n = 0},
};

const nb_op nb_op_pow = {.name = "pow", .arity = 2, .elementwise = true, .shape = nb_shape_broadcast,
                         .forward = NB_KERNELS(pow), .backward = pow_backward,
                         .broadcast = true, .batch = nb_batch_rows,
                         .saves = NB_SAVES_X(0) | NB_SAVES_X(1) | NB_SAVES_Y,
                         .examples = examples};

nb_tensor *nb_pow(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_pow, (nb_tensor *[]){a, b}, 2, NULL);
}
