/* Gradient clipping on the .grad tensors themselves (PyTorch's
 * clip_grad_norm_ / clip_grad_value_), for hand-written training loops:
 *
 *   norm = sqrt(sum_i sum(g_i^2));  g_i = g_i * (max_norm / norm) if norm > max_norm
 *   g_i = clamp(g_i, -v, v)
 *
 * The new values are computed with nabla ops (recording off) and written
 * with nb_assign, so versions are bumped. They use the current graph for
 * temporaries, or a short-lived graph of their own when there is none
 * (which allocates; with a current graph they allocate nothing once its
 * arena is warm). Parameters without a gradient are skipped. */
#include "nabla/nabla.h"

#include <math.h>

/* NULL entries, duplicates (which would be counted and scaled twice). */
static int check_list(const char *fn, int n, nb_tensor *const params[])
{
    if (n < 0 || (n > 0 && !params))
        return nb_set_error("%s: %s", fn, n < 0 ? "negative parameter count" : "params is NULL");
    for (int i = 0; i < n; i++) {
        if (!params[i])
            return nb_set_error("%s: params[%d] is NULL", fn, i);
        for (int j = 0; j < i; j++)
            if (params[j] == params[i])
                return nb_set_error("%s: params[%d] and params[%d] are the same tensor", fn, j, i);
    }
    return 0;
}

/* Makes a graph current if there is none; *own gets the one to free. */
static int enter(nb_graph **own)
{
    *own = NULL;
    if (nb_graph_current())
        return 0;
    *own = nb_graph_new();
    return *own ? 0 : -1;
}

double nb_clip_grad_norm(int n, nb_tensor *const params[], double max_norm)
{
    const char *fn = "nb_clip_grad_norm";
    if (check_list(fn, n, params) < 0)
        return -1;
    if (!(max_norm > 0 && isfinite(max_norm))) {
        nb_set_error("%s: max_norm must be a positive number, got %g", fn, max_norm);
        return -1;
    }
    nb_graph *own;
    if (enter(&own) < 0)
        return -1;
    bool prev = nb_set_grad_enabled(false);
    double sumsq = 0, norm = -1;
    for (int i = 0; i < n; i++) {
        nb_tensor *g = nb_grad_of(params[i]);
        if (!g)
            continue;
        nb_tensor *s = nb_sum(nb_square(g));
        if (!s)
            goto done;
        sumsq += nb_item(s);
    }
    /* Non-finite gradients are left as they are (the norm tells the caller). */
    if (sqrt(sumsq) > max_norm && isfinite(sumsq)) {
        double scale = max_norm / sqrt(sumsq);
        for (int i = 0; i < n; i++) {
            nb_tensor *g = nb_grad_of(params[i]);
            if (g && nb_assign(g, nb_mul(g, nb_scalar_like(g, scale))) < 0)
                goto done;
        }
    }
    norm = sqrt(sumsq);
done:
    nb_set_grad_enabled(prev);
    nb_graph_free(own);
    return norm;
}

int nb_clip_grad_value(int n, nb_tensor *const params[], double v)
{
    const char *fn = "nb_clip_grad_value";
    if (check_list(fn, n, params) < 0)
        return -1;
    if (!(v > 0 && isfinite(v)))
        return nb_set_error("%s: the bound must be a positive number, got %g", fn, v);
    nb_graph *own;
    if (enter(&own) < 0)
        return -1;
    bool prev = nb_set_grad_enabled(false);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        nb_tensor *g = nb_grad_of(params[i]);
        if (g)
            rc = nb_assign(g, nb_clamp(g, -v, v));
    }
    nb_set_grad_enabled(prev);
    nb_graph_free(own);
    return rc;
}
