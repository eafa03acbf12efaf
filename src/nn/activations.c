/* Activations: compositions of primitive ops, no derivative code.
 *
 *   leaky_relu(x, a) = where(x > 0, x, a x)
 *   elu(x, a)        = where(x > 0, x, a (exp(clamp(x, -inf, 0)) - 1))
 *   gelu(x)          = x (1 + erf(x / sqrt 2)) / 2           (exact)
 *   softplus(x)      = m + log(exp(-m) + exp(x - m)),  m = max(x, 0) held constant
 *
 * leaky_relu and elu take the x <= 0 branch at 0, so their derivative there
 * is alpha, as in PyTorch and Keras (maximum(x, a x) would split the tie
 * and give (1 + a) / 2).
 * elu: the exponential only ever sees x <= 0, so the branch where() throws
 * away never overflows (no inf * 0 = NaN in the gradient at x = 1000). The
 * clamp, unlike minimum(x, 0), passes the full gradient at x = 0 (a tie in
 * minimum would pass half), so elu'(0) = alpha, as in PyTorch.
 *
 * softplus is log(exp(0) + exp(x)), a log-sum-exp shifted by its max m as
 * nb_logsumexp does: exp never sees a positive argument, and since the value
 * does not depend on m, m is a constant (made without recording). The
 * gradient is then sigmoid(x) exactly, everywhere, and so is the second
 * derivative. The textbook form relu(x) + log(1 + exp(-|x|)) is just as
 * stable but its pieces have kinks at 0 whose one-sided derivatives do not
 * add up: it gives softplus'(0) = 0 instead of 1/2. */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

/* x is NULL (keep the first error, or say which function got it) or there
 * is no graph to record into: -1 with the error set. */
static int bad_input(const char *fn, const nb_tensor *x)
{
    if (nb_check_tensor(fn, "x", x))
        return -1;
    if (!nb_graph_current())
        return nb_set_error_code(NB_ERR_STATE, "%s: no current graph (create one with "
                                 "nb_graph_new)", fn);
    return 0;
}

static nb_tensor *leaky_relu_impl(nb_tensor *x, double alpha)
{
    if (bad_input("nb_leaky_relu", x))
        return NULL;
    if (!isfinite(alpha)) {
        nb_set_error("nb_leaky_relu: alpha must be a finite number, got %g", alpha);
        return NULL;
    }
    return nb_where(nb_gt(x, nb_scalar_like(x, 0.0)), x, nb_mul(x, nb_scalar_like(x, alpha)));
}

static nb_tensor *elu_impl(nb_tensor *x, double alpha)
{
    if (bad_input("nb_elu", x))
        return NULL;
    if (!isfinite(alpha)) {
        nb_set_error("nb_elu: alpha must be a finite number, got %g", alpha);
        return NULL;
    }
    nb_tensor *neg = nb_sub(nb_exp(nb_clamp(x, -INFINITY, 0.0)), nb_scalar_like(x, 1.0));
    return nb_where(nb_gt(x, nb_scalar_like(x, 0.0)), x, nb_mul(nb_scalar_like(x, alpha), neg));
}

static nb_tensor *gelu_impl(nb_tensor *x)
{
    if (bad_input("nb_gelu", x))
        return NULL;
    const double sqrt_half = 0.70710678118654752440; /* 1 / sqrt(2) */
    nb_tensor *phi2 = nb_add(nb_scalar_like(x, 1.0), nb_erf(nb_mul(x, nb_scalar_like(x, sqrt_half))));
    return nb_mul(nb_mul(x, nb_scalar_like(x, 0.5)), phi2);
}

static nb_tensor *softplus_impl(nb_tensor *x)
{
    if (bad_input("nb_softplus", x))
        return NULL;
    /* m = max(x, 0), a constant; where x is +inf or NaN, m = 0 keeps x - m
     * from being inf - inf (softplus(inf) = inf, NaN stays NaN). */
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *r = nb_relu(x);
    nb_tensor *m = nb_where(nb_lt(r, nb_scalar_like(x, INFINITY)), r, nb_scalar_like(x, 0.0));
    nb_set_grad_enabled(prev);
    if (!m)
        return NULL;
    nb_tensor *s = nb_add(nb_exp(nb_neg(m)), nb_exp(nb_sub(x, m)));
    return nb_add(m, nb_log(s));
}

/* ---- by name ---- */

static const char *const names[] = {
    [NB_LINEAR] = "linear",   [NB_RELU] = "relu",         [NB_LEAKY_RELU] = "leaky_relu",
    [NB_ELU] = "elu",         [NB_GELU] = "gelu",         [NB_SIGMOID] = "sigmoid",
    [NB_TANH] = "tanh",       [NB_SOFTPLUS] = "softplus", [NB_SOFTMAX] = "softmax",
    [NB_LOG_SOFTMAX] = "log_softmax",
};
#define NNAMES (int)(sizeof names / sizeof names[0])

static nb_tensor *activate_impl(nb_tensor *x, nb_activation a)
{
    if (bad_input("nb_activate", x))
        return NULL;
    switch (a) {
    case NB_LINEAR:
        return x;
    case NB_RELU:
        return nb_relu(x);
    case NB_LEAKY_RELU:
        return nb_leaky_relu(x, 0.2);
    case NB_ELU:
        return nb_elu(x, 1.0);
    case NB_GELU:
        return nb_gelu(x);
    case NB_SIGMOID:
        return nb_sigmoid(x);
    case NB_TANH:
        return nb_tanh(x);
    case NB_SOFTPLUS:
        return nb_softplus(x);
    case NB_SOFTMAX:
    case NB_LOG_SOFTMAX:
        if (nb_ndim(x) < 1) {
            char b[NB_SHAPE_STR_LEN];
            nb_set_error_code(NB_ERR_SHAPE, "nb_activate: %s works over the last axis; x %s has "
                              "none", names[a],
                         nb_shape_str(x, b));
            return NULL;
        }
        return a == NB_SOFTMAX ? nb_softmax(x, -1) : nb_log_softmax(x, -1);
    }
    nb_set_error("nb_activate: unknown activation %d", (int)a);
    return NULL;
}

int nb_activation_from_name(const char *name)
{
    if (!name) {
        nb_set_error("nb_activation_from_name: name is NULL");
        return -1;
    }
    for (int i = 0; i < NNAMES; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return i;
    nb_set_error("nb_activation_from_name: unknown activation \"%s\" (known: linear, relu, "
                 "leaky_relu, elu, gelu, sigmoid, tanh, softplus, softmax, log_softmax)",
                 name);
    return -1;
}

const char *nb_activation_name(nb_activation a)
{
    if ((int)a < 0 || (int)a >= NNAMES || !names[a]) {
        nb_set_error("nb_activation_name: unknown activation %d", (int)a);
        return NULL;
    }
    return names[a];
}

/* The public functions: anything failing inside names the one called. */

nb_tensor *nb_leaky_relu(nb_tensor *x, double alpha)
{
    NN_NAMED("nb_leaky_relu", nb_tensor *, leaky_relu_impl(x, alpha));
}

nb_tensor *nb_elu(nb_tensor *x, double alpha)
{
    NN_NAMED("nb_elu", nb_tensor *, elu_impl(x, alpha));
}

nb_tensor *nb_gelu(nb_tensor *x)
{
    NN_NAMED("nb_gelu", nb_tensor *, gelu_impl(x));
}

nb_tensor *nb_softplus(nb_tensor *x)
{
    NN_NAMED("nb_softplus", nb_tensor *, softplus_impl(x));
}

nb_tensor *nb_activate(nb_tensor *x, nb_activation a)
{
    NN_NAMED("nb_activate", nb_tensor *, activate_impl(x, a));
}
