/* Keras's BatchNormalization, LayerNormalization and Embedding, as
 * compositions. BatchNormalization normalises over every axis but the
 * last (the channels, or features) with the batch's statistics in
 * training, and keeps moving ones as non-trainable state for inference. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* ---- BatchNormalization, LayerNormalization ---- */

typedef struct {
    nb_norm_opts o;
    bool batch; /* BatchNormalization (else LayerNormalization) */
} norm_ctx;

static int norm_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                      nb_rng *rng)
{
    (void)rng;
    const norm_ctx *c = l->ctx;
    int64_t f = in[ndim - 1];
    /* Keras's order and names: gamma, beta, then the moving statistics. */
    if (nb_layer_weight(l, "gamma", nb_full(NB_F32, 1, &f, 1.0), true) < 0 ||
        nb_layer_weight(l, "beta", nb_zeros(NB_F32, 1, &f), true) < 0)
        return -1;
    if (c->batch && (nb_layer_weight(l, "moving_mean", nb_zeros(NB_F32, 1, &f), false) < 0 ||
                     nb_layer_weight(l, "moving_variance", nb_full(NB_F32, 1, &f, 1.0), false) < 0))
        return -1;
    return nn_same_shape_build(l, ndim, in, out_ndim, out, NULL);
}

/* gamma * (x - mean) / sqrt(var + eps) + beta, the statistics broadcast
 * over the last axis. */
static nb_tensor *normalise(nb_layer *l, nb_tensor *x, nb_tensor *mean, nb_tensor *var)
{
    const norm_ctx *c = l->ctx;
    nb_tensor *inv = nb_div(nb_layer_get(l, 0), nb_sqrt(nb_add(var, nb_scalar_like(var, c->o.epsilon))));
    return nb_add(nb_mul(nb_sub(x, mean), inv), nb_layer_get(l, 1));
}

static nb_tensor *norm_forward(nb_layer *l, nb_tensor *x, bool training)
{
    const norm_ctx *c = l->ctx;
    int nd = nb_ndim(x);
    if (!c->batch) { /* per sample, over the last axis */
        nb_tensor *mean = nb_mean(x, .axes = NB_AXES(-1), .keepdims = true);
        nb_tensor *var = nb_var(x, .axes = NB_AXES(-1), .keepdims = true);
        return normalise(l, x, mean, var);
    }
    if (!training)
        return normalise(l, x, nb_layer_get(l, 2), nb_layer_get(l, 3));
    nb_axes ax = {.n = nd - 1};
    for (int i = 0; i < nd - 1; i++)
        ax.axis[i] = i;
    nb_tensor *mean = nb_mean(x, .axes = ax), *var = nb_var(x, .axes = ax);
    /* moving = moving * momentum + batch * (1 - momentum), outside the graph. */
    bool grad = nb_set_grad_enabled(false);
    double m = c->o.momentum;
    for (int k = 0; k < 2 && mean && var; k++) {
        nb_tensor *s = nb_layer_get(l, 2 + k), *b = nb_detach(k ? var : mean);
        if (nb_assign(s, nb_add(nb_mul(s, nb_scalar_like(s, m)), nb_mul(b, nb_scalar_like(s, 1 - m)))))
            mean = NULL;
    }
    nb_set_grad_enabled(grad);
    return mean ? normalise(l, x, mean, var) : NULL;
}

static const nb_layer_type bn_type = {"BatchNormalization", "batch_normalization", norm_build,
                                      norm_forward, nn_free_ctx};
static const nb_layer_type ln_type = {"LayerNormalization", "layer_normalization", norm_build,
                                      norm_forward, nn_free_ctx};

static nb_layer *norm(const char *fn, nb_norm_opts o, bool batch)
{
    norm_ctx c = {.o = o, .batch = batch};
    c.o.momentum = o.momentum == 0 && !signbit(o.momentum) ? 0.99 : o.momentum + 0.0;
    c.o.epsilon = o.epsilon ? o.epsilon : 1e-3;
    if (!(c.o.momentum >= 0 && c.o.momentum < 1) || !(c.o.epsilon > 0) || !isfinite(c.o.epsilon)) {
        nb_set_error("%s: momentum must be in [0, 1) and epsilon > 0, got %g and %g", fn,
                     c.o.momentum, c.o.epsilon);
        return NULL;
    }
    if (!batch && o.momentum) {
        nb_set_error("%s: momentum is BatchNormalization's (layer normalisation keeps no "
                     "moving statistics)", fn);
        return NULL;
    }
    if (!nn_valid_name(fn, o.name))
        return NULL;
    norm_ctx *k = nb_mem_alloc(sizeof *k);
    if (!k) {
        nn_blame(fn);
        return NULL;
    }
    *k = c;
    k->o.name = NULL;
    return nb_layer_new(batch ? &bn_type : &ln_type, k, o.name);
}

nb_layer *nb_batch_normalization_(nb_norm_opts o) { return norm("nb_batch_normalization", o, true); }
nb_layer *nb_layer_normalization_(nb_norm_opts o) { return norm("nb_layer_normalization", o, false); }

/* ---- Embedding ---- */

static int embedding_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim,
                           int64_t *out, nb_rng *rng)
{
    const int64_t *c = l->ctx; /* input_dim, output_dim */
    if (ndim + 1 > NB_MAX_DIMS - 1)
        return nb_set_error_code(NB_ERR_SHAPE, "layer '%s' (Embedding): its input has %d axes; "
                                 "at most %d", l->name, ndim, NB_MAX_DIMS - 2);
    /* Keras's default initializer: uniform in [-0.05, 0.05]. */
    nb_tensor *w = nn_zeros("nb_build", NB_F32, NB_SHAPE(c[0], c[1]));
    if (!w)
        return -1;
    float *p = nb_data(w);
    for (int64_t i = 0; i < nb_numel(w); i++)
        p[i] = (float)(0.1 * nb_rng_uniform(rng) - 0.05);
    nb_bump_version(w);
    if (nb_layer_weight(l, "embeddings", w, true) < 0)
        return -1;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    out[ndim] = c[1];
    *out_ndim = ndim + 1;
    return 0;
}

/* The rows of the table at the indices: one gather of the flattened
 * indices (whole numbers in [0, input_dim), which index_select checks). */
static nb_tensor *embedding_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const int64_t *c = l->ctx;
    int nd = nb_ndim(x);
    int64_t shape[NB_MAX_DIMS], n = nb_numel(x);
    memcpy(shape, nb_shape(x), (size_t)nd * sizeof *shape);
    shape[nd] = c[1];
    nb_tensor *flat = nb_reshape(nb_is_contiguous(x) ? x : nb_contiguous(x), 1, &n);
    return nb_reshape(nb_index_select(nb_layer_get(l, 0), 0, flat), nd + 1, shape);
}

static const nb_layer_type embedding_type = {"Embedding", "embedding", embedding_build,
                                             embedding_forward, nn_free_ctx};

nb_layer *nb_embedding(int64_t input_dim, int64_t output_dim)
{
    if (input_dim < 1 || output_dim < 1) {
        nb_set_error("nb_embedding: input_dim and output_dim must be at least 1, got %lld and "
                     "%lld", (long long)input_dim, (long long)output_dim);
        return NULL;
    }
    int64_t *c = nb_mem_alloc(2 * sizeof *c);
    if (!c) {
        nn_blame("nb_embedding");
        return NULL;
    }
    c[0] = input_dim;
    c[1] = output_dim;
    return nb_layer_new(&embedding_type, c, NULL);
}
