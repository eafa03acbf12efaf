/* y = a^b, broadcasting.
 *   da = sum_to(dy * b * a^(b - 1), a)
 *   db = sum_to(dy * y * log(a), b)      (needs a > 0; computed only when b
 *                                         requires grad, so x^2 with a constant
 *                                         exponent works for any x)
 * Both rules are written with ops (pow, log, mul, ...), so they differentiate
 * again: d2y/da2 = b (b - 1) a^(b-2) comes out of the pow in da. */
#include "internal.h"

#include <math.h>

static void pow_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n, (void)attr;
    if (y->dtype == NB_F64)
        NB_LOOP2(double, y, x[0], x[1], pow(u, v));
    else
        NB_LOOP2(float, y, x[0], x[1], powf(u, v));
}

/* Sums a broadcast gradient back down to the shape of the input it is for. */
static nb_tensor *to(nb_tensor *g, const nb_tensor *x)
{
    return (!g || nb__same_shape(g, x)) ? g : nb_sum_to(g, x->ndim, x->shape);
}

static void pow_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                         int n, const void *attr)
{
    (void)n, (void)attr;
    nb_tensor *a = x[0], *b = x[1];
    if (a->requires_grad) {
        nb_tensor *bm1 = nb_sub(b, nb_scalar_like(b, 1.0));
        dx[0] = to(nb_mul(dy, nb_mul(b, nb_pow(a, bm1))), a);
    }
    if (b->requires_grad)
        dx[1] = to(nb_mul(dy, nb_mul(y, nb_log(a))), b);
}

/* a stays in [0.5, 2]: positive (log(a) in db) and away from 0 (a^(b-1)). */
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

const nb_op nb_op_pow = {.name = "pow", .arity = 2, .shape = nb_shape_broadcast,
                         .forward = pow_forward, .backward = pow_backward,
                         .saves = NB_SAVES_X(0) | NB_SAVES_X(1) | NB_SAVES_Y,
                         .examples = examples};

nb_tensor *nb_pow(nb_tensor *a, nb_tensor *b)
{
    return nb_apply(&nb_op_pow, (nb_tensor *[]){a, b}, 2, NULL);
}
