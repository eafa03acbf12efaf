/* Layers: the object every layer is (a type, its data, its weights and
 * shapes), and the built-in types Input, Dense, Flatten, Reshape and
 * Activation. A
 * layer's forward is a composition of ops, recorded under the layer's
 * scope by the model (src/nn/model.c). */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* ---- the layer object ---- */

bool nn_valid_name(const char *fn, const char *name)
{
    if (!name || (*name && strlen(name) < sizeof(((nb_layer *)0)->name)))
        return true;
    nb_set_error("%s: a layer name needs 1 to %zu characters", fn,
                 sizeof(((nb_layer *)0)->name) - 1);
    return false;
}

static nb_layer *layer_new(const char *fn, const nb_layer_type *type, void *ctx,
                           const char *name)
{
    const char *why = !type ? "type is NULL"
                      : !type->type || !*type->type ? "type->type (its name) is missing"
                      : !type->prefix || !*type->prefix ? "type->prefix is missing"
                      : !type->build ? "type->build is NULL"
                      : !type->forward ? "type->forward is NULL"
                                       : NULL;
    nb_layer *l = NULL;
    if (why)
        nb_set_error("%s: %s", fn, why);
    else if (nn_valid_name(fn, name) && !(l = nb_mem_alloc(sizeof *l)))
        nn_blame(fn);
    if (!l) {
        if (type && type->free_ctx && ctx)
            type->free_ctx(ctx);
        return NULL;
    }
    memset(l, 0, sizeof *l);
    l->type = type;
    l->ctx = ctx;
    if (name)
        strcpy(l->name, name);
    return l;
}

nb_layer *nb_layer_new(const nb_layer_type *type, void *ctx, const char *name)
{
    return layer_new("nb_layer_new", type, ctx, name);
}

void *nb_layer_ctx(const nb_layer *l) { return l ? l->ctx : NULL; }
const char *nb_layer_name(const nb_layer *l) { return l ? l->name : NULL; }

/* The weights made by build, freed (the layer can be built again). */
void nn_layer_unbuild(nb_layer *l)
{
    for (int k = 0; k < l->nw; k++)
        nb_free(l->w[k]);
    l->nw = 0;
    l->built = false;
}

void nb_layer_free(nb_layer *l)
{
    if (!l)
        return;
    if (l->owner) {
        nb_set_error_code(NB_ERR_STATE, "nb_layer_free: layer '%s' belongs to a model, which "
                          "frees it (nb_model_free)", l->name);
        return;
    }
    nn_layer_unbuild(l);
    if (l->type->free_ctx && l->ctx)
        l->type->free_ctx(l->ctx);
    nb_mem_free(l);
}

int nb_layer_weight(nb_layer *l, const char *name, nb_tensor *init, bool trainable)
{
    char full[96];
    if (!l || !name || !*name || !init) {
        nb_free(init);
        return nn_has_error() ? -1
                              : nb_set_error("nb_layer_weight: %s is %s", !l ? "the layer"
                                                                      : !init ? "init" : "name",
                                             !name || !l || !init ? "NULL" : "empty");
    }
    if (l->built || l->nw == NN_MAX_WEIGHTS) {
        nb_free(init);
        return nb_set_error_code(NB_ERR_STATE, l->built ? "nb_layer_weight: layer '%s' is "
                                 "built; weights are made in its build" : "nb_layer_weight: "
                                 "layer '%s' has %d weights already, the most a layer holds",
                                 l->name, NN_MAX_WEIGHTS);
    }
    nb_dtype dt = nb_dtype_of(init);
    if (dt != NB_F32 && dt != NB_F64) {
        nb_free(init);
        return nb_set_error_code(NB_ERR_DTYPE, "nb_layer_weight: '%s' of layer '%s' is %s; "
                                 "weights are f32 or f64", name, l->name, nb_dtype_name(dt));
    }
    snprintf(full, sizeof full, "%s.%s", l->name, name);
    nb_tensor *w = trainable ? nb_param(init) : init;
    if (!nb_set_name(w, full)) {
        nb_free(init);
        return -1;
    }
    l->w[l->nw] = w;
    l->trainable[l->nw] = trainable;
    return l->nw++;
}

nb_tensor *nb_layer_get(const nb_layer *l, int k)
{
    if (!l || k < 0 || k >= l->nw) {
        if (l)
            nb_set_error("nb_layer_get: layer '%s' has %d weights, not %d", l->name, l->nw, k + 1);
        else
            nb_set_error("nb_layer_get: the layer is NULL");
        return NULL;
    }
    return l->w[k];
}

nb_rng *nb_layer_rng(nb_layer *l)
{
    return l && l->owner ? &((nb_model *)l->owner)->rng : NULL;
}

/* ---- Input ---- */

void nn_free_ctx(void *ctx) { nb_mem_free(ctx); }

static nn_shape_ctx *shape_of(const char *fn, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > NB_MAX_DIMS - 1 || !shape) {
        nb_set_error("%s: a shape of 1 to %d dimensions (without the batch), got %d", fn,
                     NB_MAX_DIMS - 1, ndim);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 1) {
            nb_set_error("%s: dimension %d is %lld; each must be at least 1", fn, i + 1,
                         (long long)shape[i]);
            return NULL;
        }
    nn_shape_ctx *c = nb_mem_alloc(sizeof *c);
    if (!c) {
        nn_blame(fn);
        return NULL;
    }
    c->ndim = ndim;
    memcpy(c->shape, shape, (size_t)ndim * sizeof *shape);
    return c;
}

/* The output has the input's shape (Input, which is never run: the model
 * takes its shape in nb_build; Dropout). */
int nn_same_shape_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                        nb_rng *rng)
{
    (void)l, (void)rng;
    *out_ndim = ndim;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    return 0;
}

static nb_tensor *identity_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)l, (void)training;
    return x;
}

const nb_layer_type nn_input_type = {"InputLayer", "input", nn_same_shape_build, identity_forward,
                                     nn_free_ctx};

nb_layer *nb_input_(int ndim, const int64_t *shape)
{
    nn_shape_ctx *c = shape_of("nb_input", ndim, shape);
    return c ? layer_new("nb_input", &nn_input_type, c, NULL) : NULL;
}

/* ---- Dense ---- */

static int dense_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                       nb_rng *rng)
{
    const nb_dense_opts *o = l->ctx;
    int64_t fan_in = in[ndim - 1];
    if (o->input && o->input != fan_in)
        return nb_set_error_code(NB_ERR_SHAPE, "layer '%s' declares %lld inputs, the previous "
                                 "layer gives %lld", l->name, (long long)o->input,
                                 (long long)fan_in);
    nb_tensor *k = nn_zeros("nb_build", NB_F32, NB_SHAPE(fan_in, o->units));
    if (!k)
        return -1;
    if ((o->kernel_initializer ? o->kernel_initializer : nb_init_glorot_uniform)(k, rng) < 0) {
        nb_free(k);
        return -1;
    }
    if (nb_layer_weight(l, "kernel", k, true) < 0)
        return -1;
    if (!o->no_bias &&
        nb_layer_weight(l, "bias", nn_zeros("nb_build", NB_F32, NB_SHAPE(o->units)), true) < 0)
        return -1;
    *out_ndim = ndim;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    out[ndim - 1] = o->units;
    return 0;
}

nb_tensor *nn_dense_forward(nb_layer *l, nb_tensor *x, nb_tensor **logits)
{
    const nb_dense_opts *o = l->ctx;
    nb_tensor *z = nb_matmul(x, l->w[0]);
    if (!o->no_bias)
        z = nb_add(z, l->w[1]);
    if (logits)
        *logits = z;
    return nb_activate(z, o->activation);
}

static nb_tensor *dense_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    return nn_dense_forward(l, x, NULL);
}

const nb_layer_type nn_dense_type = {"Dense", "dense", dense_build, dense_forward, nn_free_ctx};

nb_activation nn_layer_activation(const nb_layer *l)
{
    return l->type == &nn_dense_type ? ((const nb_dense_opts *)l->ctx)->activation : NB_LINEAR;
}

static nb_layer *dense(nb_dense_opts o)
{
    if (o.units < 1) {
        nb_set_error("nb_dense: units must be at least 1, got %lld", (long long)o.units);
        return NULL;
    }
    if (o.input < 0) {
        nb_set_error("nb_dense: input must be positive, got %lld", (long long)o.input);
        return NULL;
    }
    if ((int)o.activation < NB_LINEAR || o.activation > NB_LOG_SOFTMAX) {
        nb_set_error("nb_dense: unknown activation %d", (int)o.activation);
        return NULL;
    }
    if (!nn_valid_name("nb_dense", o.name))
        return NULL;
    nb_dense_opts *c = nb_mem_alloc(sizeof *c);
    if (!c) {
        nn_blame("nb_dense");
        return NULL;
    }
    *c = o;
    c->name = NULL;
    return layer_new("nb_dense", &nn_dense_type, c, o.name);
}

nb_layer *nb_dense_(nb_dense_opts o) { NN_NAMED("nb_dense", nb_layer *, dense(o)); }

/* ---- Flatten, Reshape ---- */

static int flatten_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                         nb_rng *rng)
{
    (void)l, (void)rng;
    out[0] = 1;
    for (int i = 0; i < ndim; i++)
        out[0] *= in[i];
    *out_ndim = 1;
    return 0;
}

/* Both keep the batch axis and take their output shape from the build. */
static nb_tensor *reshape_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    int64_t shape[NB_MAX_DIMS];
    shape[0] = nb_dim(x, 0);
    memcpy(shape + 1, l->out, (size_t)l->out_ndim * sizeof *shape);
    return nb_reshape(nb_is_contiguous(x) ? x : nb_contiguous(x), l->out_ndim + 1, shape);
}

static const nb_layer_type flatten_type = {"Flatten", "flatten", flatten_build, reshape_forward,
                                           NULL};

nb_layer *nb_flatten(void) { return layer_new("nb_flatten", &flatten_type, NULL, NULL); }

static int reshape_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                         nb_rng *rng)
{
    (void)rng;
    const nn_shape_ctx *c = l->ctx;
    int64_t a = 1, b = 1;
    for (int i = 0; i < ndim; i++)
        a *= in[i];
    for (int i = 0; i < c->ndim; i++)
        b *= c->shape[i];
    if (a != b)
        return nb_set_error_code(NB_ERR_SHAPE, "layer '%s' reshapes %lld elements per sample "
                                 "into %lld", l->name, (long long)a, (long long)b);
    *out_ndim = c->ndim;
    memcpy(out, c->shape, (size_t)c->ndim * sizeof *out);
    return 0;
}

static const nb_layer_type reshape_type = {"Reshape", "reshape", reshape_build, reshape_forward,
                                           nn_free_ctx};

nb_layer *nb_reshape_layer_(int ndim, const int64_t *shape)
{
    nn_shape_ctx *c = shape_of("nb_reshape_layer", ndim, shape);
    return c ? layer_new("nb_reshape_layer", &reshape_type, c, NULL) : NULL;
}

/* ---- Activation ---- */

static nb_tensor *activation_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    return nb_activate(x, *(const nb_activation *)l->ctx);
}

static const nb_layer_type activation_type = {"Activation", "activation", nn_same_shape_build,
                                              activation_forward, nn_free_ctx};

nb_layer *nb_activation_layer(nb_activation a)
{
    const char *fn = "nb_activation_layer";
    if (!nb_activation_name(a)) {
        nb_set_error("%s: activation %d is not an nb_activation", fn, (int)a);
        return NULL;
    }
    nb_activation *c = nb_mem_alloc(sizeof *c);
    if (!c) {
        nn_blame(fn);
        return NULL;
    }
    *c = a;
    return layer_new(fn, &activation_type, c, NULL);
}
