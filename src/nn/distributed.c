/* nb_model_distribute: one model, the same on every rank (docs/distributed.md).
 * What fit, evaluate and predict then do differently is in fit.c. */
#include "nn_internal.h"

#include <string.h>

/* FNV-1a over a string, then over a number: a fingerprint of the model. */
static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211u;
    return h;
}

/* The non-trainable weights (moving statistics), in layer order, into
 * out[0..m->nweights); their count. */
NN_PRIVATE int nn_state_weights(const nb_model *m, nb_tensor **out)
{
    int k = 0;
    for (int i = 0; i < m->n; i++)
        for (int j = 0; j < m->layers[i]->nw; j++)
            if (!m->layers[i]->trainable[j])
                out[k++] = m->layers[i]->w[j];
    return k;
}

NN_PRIVATE bool nn_distributed(const nb_model *m) { return m->distributed && nb_dist_size() > 1; }

NN_PRIVATE int nn_average_state(nb_model *m)
{
    if (!nn_distributed(m))
        return 0;
    nb_tensor **st = nb_mem_alloc((size_t)(m->nweights ? m->nweights : 1) * sizeof *st);
    if (!st)
        return -1;
    int rc = nb_dist_average(nn_state_weights(m, st), st);
    nb_mem_free(st);
    return rc;
}

int nb_model_distribute(nb_model *m)
{
    const char *fn = "nb_model_distribute";
    if (nn_bad_model(m, fn))
        return -1;
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "%s: the model is not built (nb_build or "
                                 "nb_compile with an input shape first)", fn);
    /* The same layers, weights, dtype, optimizer and place in training on
     * every rank, checked together. */
    uint64_t layers = 1469598103934665603u, opt = layers;
    int64_t elements = 0;
    for (int i = 0; i < m->n; i++) {
        const nb_layer *l = m->layers[i];
        layers = mix(layers, l->name, strlen(l->name) + 1);
        layers = mix(layers, l->type->prefix, strlen(l->type->prefix) + 1);
        for (int j = 0; j < l->nw; j++) {
            const nb_tensor *w = l->w[j];
            int64_t shape[NB_MAX_DIMS] = {0};
            int nd = nb_ndim(w);
            for (int d = 0; d < nd; d++)
                shape[d] = nb_dim(w, d);
            layers = mix(layers, &nd, sizeof nd);
            layers = mix(layers, shape, (size_t)nd * sizeof *shape);
            layers = mix(layers, &l->trainable[j], sizeof l->trainable[j]);
            elements += nb_numel(w);
        }
    }
    int64_t steps = 0;
    if (m->opt) {
        nb_optim_opts o;
        const char *name = nb_optimizer_name(m->opt);
        opt = mix(opt, name, strlen(name) + 1);
        if (nb_optimizer_opts(m->opt, &o) == 0) { /* field by field: not the padding */
            double f[] = {o.lr, o.momentum, o.nesterov, o.betas[0], o.betas[1], o.rho, o.eps,
                          o.weight_decay, o.initial_accumulator, o.clipnorm, o.clipvalue,
                          o.schedule.kind, (double)o.schedule.steps, o.schedule.rate};
            opt = mix(opt, f, sizeof f);
        }
        steps = nb_optimizer_steps(m->opt);
    }
    int64_t v[] = {m->n, m->nweights, elements, (int64_t)(layers >> 1), m->dtype,
                   m->compiled, (int64_t)(opt >> 1), steps, m->epochs_done};
    static const char *const names[] = {
        "the number of layers", "the number of weights", "the number of weight elements",
        "a hash of the layers (names, types, shapes)", "the dtype (nb_dtype)",
        "compiled (1) or not (0)", "a hash of the optimizer and its options",
        "the optimizer's steps", "the epochs done"};
    if (nb_dist_check(fn, (int)(sizeof v / sizeof v[0]), v, names))
        return -1;
    if (nb_dist_broadcast(m->nweights, m->weights))
        return nn_blame(fn);
    /* Dropout masks: each rank draws its own (rank 0 keeps the model's
     * generator, so that one rank is one process). */
    if (nb_dist_rank() > 0) {
        uint64_t s = nb_rng_next(&m->rng) ^ (0x9e3779b97f4a7c15u * (uint64_t)nb_dist_rank());
        m->rng = nb_rng_new(s);
    }
    m->distributed = true;
    return 0;
}
