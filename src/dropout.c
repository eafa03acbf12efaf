/* Inverted dropout: y = x * mask / (1 - rate), mask[i] = (u_i >= rate) with
 * u_i the i-th nb_rng_uniform of the caller's generator. The mask is a
 * constant of the current graph (a leaf made here, never a node), so the
 * gradient is mask / (1 - rate) at every order, and a training step that
 * drops out allocates nothing on the heap: the mask lives in the arena.
 * Drawing through nb_rng_uniform (integer arithmetic, one comparison in
 * double) makes a seed give the same mask on every platform. */
#include "internal.h"

/* A mask of x's dtype and shape holding keep (kept) or 0 (dropped), after
 * the checks every public dropout function makes, named fn. */
static nb_tensor *mask_of(const char *fn, nb_tensor *x, double rate, nb_rng *rng, double keep)
{
    if (nb__usable(fn, "x", x))
        return NULL;
    if (!(rate >= 0 && rate < 1)) {
        nb__error("%s: rate must be in [0, 1), got %g", fn, rate);
        return NULL;
    }
    if (!rng) {
        nb__error("%s: rng is NULL", fn);
        return NULL;
    }
    if (!nb__dtype_float(x->dtype)) {
        nb__dtype_error("%s: x must be f32 or f64, got %s", fn, nb_dtype_name(x->dtype));
        return NULL;
    }
    nb_graph *g = nb__graph();
    if (!g) {
        nb__state_error("%s: no current graph (create one with nb_graph_new)", fn);
        return NULL;
    }
    if (keep == 0) /* rate 0: no mask is needed, and none is drawn */
        return x;
    nb_tensor *m = nb__new_graph_tensor(g, x->dtype, x->ndim, x->shape, true);
    if (!m) {
        if (!nb__has_error())
            nb__memory_error("%s: out of memory for a mask of %lld elements", fn,
                             (long long)nb__numel(x->ndim, x->shape));
        return NULL;
    }
    if (x->dtype == NB_F32)
        nb__rng_mask_f32(rng, m->own.data, m->numel, rate, (float)keep);
    else
        nb__rng_mask_f64(rng, m->own.data, m->numel, rate, keep);
    return m;
}

nb_tensor *nb_dropout_mask(nb_tensor *x, double rate, nb_rng *rng)
{
    return mask_of("nb_dropout_mask", x, rate, rng, 1.0);
}

nb_tensor *nb_inverted_dropout(nb_tensor *x, double rate, nb_rng *rng)
{
    /* One factor, mask * (1 / (1 - rate)), as PyTorch scales: one op. */
    nb_tensor *m = mask_of("nb_inverted_dropout", x, rate, rng, rate == 0 ? 0 : 1 / (1 - rate));
    if (!m || m == x)
        return m;
    NB__NAMED("nb_inverted_dropout", nb_tensor *, nb_mul(x, m));
}
