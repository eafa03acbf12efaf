/* y = clamp(x, lo, hi) = min(max(x, lo), hi);  dx = dy * (x >= lo) * (x <= hi)
 * attr {lo, hi}; lo > hi (or a NaN bound) is an error. The gradient is 1 on
 * the closed interval, including its ends (as in PyTorch). NaN stays NaN. */
#include "internal.h"

#include <math.h>

typedef struct {
    double lo, hi;
} clamp_attr;

static int clamp_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    const clamp_attr *a = attr;
    char b[NB_SHAPE_STR_LEN];
    if (!(a->lo <= a->hi)) /* also catches NaN */
        return nb__error("nb_clamp: lo (%g) must not be greater than hi (%g); x is %s %s",
                         a->lo, a->hi, nb_dtype_name(x[0]->dtype), nb_shape_str(x[0], b));
    return nb_shape_same(out, x, n, attr);
}

#define CLAMP_KERNEL(fn, T)                                                    \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        const clamp_attr *a = attr;                                            \
        const T lo = (T)a->lo, hi = (T)a->hi;                                  \
        NB_MAP1(T, y, &x[0], u < lo ? lo : (u > hi ? hi : u));                 \
    }
CLAMP_KERNEL(clamp_f32, float)
CLAMP_KERNEL(clamp_f64, double)

/* The mask is made of comparisons (constants): the second derivative is 0.
 * The bounds are compared in x's dtype, like the forward. */
static void clamp_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                           int n, const void *attr)
{
    (void)y, (void)n;
    const clamp_attr *a = attr;
    nb_tensor *in = nb_mul(nb_ge(x[0], nb_scalar_like(x[0], a->lo)),
                           nb_le(x[0], nb_scalar_like(x[0], a->hi)));
    dx[0] = nb_mul(dy, in);
}

/* The kinks: the bounds, where the gradient is 1 (that of the inside: the
 * right derivative at lo, the left one at hi). */
static double clamp_kink(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                         nb_kink *k)
{
    (void)n, (void)i;
    const clamp_attr *a = attr;
    double v = nb__get(x[0], j);
    double dlo = isfinite(a->lo) ? fabs(v - a->lo) : INFINITY;
    double dhi = isfinite(a->hi) ? fabs(v - a->hi) : INFINITY;
    *k = dlo <= dhi ? (nb_kink){.at = a->lo, .side = NB_SUBGRADIENT_RIGHT}
                    : (nb_kink){.at = a->hi, .side = NB_SUBGRADIENT_LEFT};
    return fmin(dlo, dhi);
}

/* Bounds inside the domain so that all three pieces occur (the first
 * example's domain keeps most of its values inside). */
static const clamp_attr mid = {-0.5, 0.5}, low = {-INFINITY, 0.25};
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .domain = {{.lo = -0.6, .hi = 0.6}}, .attr = &mid},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .domain = {{.lo = -2, .hi = 2}}, .attr = &mid},
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &low},
    {.n = 0},
};

const nb_op nb_op_clamp = {.name = "clamp", .arity = 1, .elementwise = true, .attr_size = sizeof(clamp_attr),
                           .shape = clamp_shape, .forward = NB_KERNELS(clamp),
                           .backward = clamp_backward, .saves = NB_SAVES_X(0),
                           .batch = nb_batch_rows, .examples = examples, .kink = clamp_kink};

nb_tensor *nb_clamp(nb_tensor *x, double lo, double hi)
{
    return nb_apply(&nb_op_clamp, &x, 1, &(clamp_attr){lo, hi});
}
