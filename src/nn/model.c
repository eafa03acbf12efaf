/* The Sequential model: its layers (src/nn/layers.c), building, forward,
 * loss, summary, weights. Each layer's forward is recorded under the
 * layer's scope. */
#include "nn_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>

/* ---- ownership ----
 * A layer belongs to the model it was added to, and an optimizer to the
 * model compiled with it: the model frees them. Adding a layer twice, or to
 * a second model, or handing one model's optimizer to another, is an error
 * (the layer or optimizer stays with its owner), never a double free. The
 * live models are kept in a list, so that a freed model handle and an
 * optimizer owned elsewhere are recognised without reading freed memory. */
static nb_model *live_models;
static atomic_flag models_lock = ATOMIC_FLAG_INIT;

static void lock_models(void)
{
    while (atomic_flag_test_and_set_explicit(&models_lock, memory_order_acquire))
        ;
}
static void unlock_models(void) { atomic_flag_clear_explicit(&models_lock, memory_order_release); }

/* Whether m is a live model. */
static bool model_live(const nb_model *m)
{
    bool found = false;
    lock_models();
    for (const nb_model *k = live_models; k && !found; k = k->next_live)
        found = k == m;
    unlock_models();
    return found;
}

/* The live model other than m that owns opt, or NULL. */
static const nb_model *opt_owner(const nb_optimizer *opt, const nb_model *m)
{
    const nb_model *found = NULL;
    lock_models();
    for (const nb_model *k = live_models; k && !found; k = k->next_live)
        if (k != m && k->opt == opt)
            found = k;
    unlock_models();
    return found;
}

/* A model argument: NULL (keeping a pending error) or not live: -1 with an
 * error naming fn. */
int nn_bad_model(const nb_model *m, const char *fn)
{
    if (!m)
        return nn_null_model(fn);
    if (model_live(m))
        return 0;
    return nb_set_error_code(NB_ERR_STATE, "%s: %p is not a live model (freed already, or "
                             "never made by nb_sequential)", fn, (const void *)m);
}

/* Frees an optimizer handed over to a call that failed, unless a model owns
 * it (then it stays with that model). */
static void drop_optimizer(nb_optimizer *opt)
{
    if (opt && !opt_owner(opt, NULL))
        nb_optimizer_free(opt);
}

/* Frees a layer handed over to a call that failed, unless a model owns it. */
static void drop_layer(nb_layer *l)
{
    if (l && !l->owner)
        nb_layer_free(l);
}

/* ---- shared by nn/ (nn_internal.h) ---- */

/* t, or NULL with "<factory>: out of memory ..." renamed "<fn>: ...". */
static nb_tensor *renamed(const char *fn, const char *factory, nb_tensor *t)
{
    if (!t) {
        char msg[512];
        const char *e = nb_last_error();
        snprintf(msg, sizeof msg, "%s", e ? e : "out of memory");
        size_t n = strlen(factory);
        const char *rest = strncmp(msg, factory, n) == 0 && strncmp(msg + n, ": ", 2) == 0
                               ? msg + n + 2
                               : msg;
        nb_set_error_code(nb_last_error_code() ? nb_last_error_code() : NB_ERR_MEMORY, "%s: %s",
                          fn, rest);
    }
    return t;
}

nb_tensor *nn_zeros(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape)
{
    return renamed(fn, "nb_zeros", nb_zeros(dtype, ndim, shape));
}

nb_tensor *nn_empty(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape)
{
    return renamed(fn, "nb_empty", nb_empty(dtype, ndim, shape));
}

int nn_blame(const char *fn)
{
    const char *e = nb_last_error();
    if (!e)
        return nb_set_error("%s: failed", fn);
    if (strncmp(e, "nb_mem_alloc: ", 14) == 0)
        e += 14;
    else if (strncmp(e, "nabla: ", 7) == 0)
        e += 7;
    else {
        const char *p = e;
        while (isalnum((unsigned char)*p) || *p == '_')
            p++;
        /* A message that names a function already stays, but for the
         * collectives nabla's own functions run (nb_dist_*): the user
         * called fn. */
        if (p > e && p[0] == ':' && p[1] == ' ' && strncmp(e, "nb_dist_", 8) != 0)
            return -1;
        if (p > e && p[0] == ':' && p[1] == ' ')
            e = p + 2;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%s", e);
    nb_error_code code = nb_last_error_code();
    return nb_set_error_code(code ? code : NB_ERR_INVALID, "%s: %s", fn, msg);
}

/* ---- the model ---- */

/* The last forward on this thread: its model, output and pre-activation
 * (graph tensors), so that the loss of a softmax output can be taken from
 * its logits. Used only while the graph they were made in is current and
 * still has the generation it had then (nb_graph_generation): after a reset
 * or a free, a new tensor may sit at the same address. Kept per thread, not
 * in the model, so that threads evaluating one model with graphs of their
 * own neither race on it nor take each other's logits. */
static _Thread_local struct {
    const nb_model *m;
    nb_tensor *out, *logits;
    const nb_graph *graph;
    uint64_t generation;
} last_forward;

static int model_grow(nb_model *m)
{
    if (m->n < m->cap)
        return 0;
    int cap = m->cap ? 2 * m->cap : 8;
    nb_layer **v = nb_mem_alloc((size_t)cap * sizeof *v);
    if (!v)
        return -1;
    if (m->n)
        memcpy(v, m->layers, (size_t)m->n * sizeof *v);
    nb_mem_free(m->layers);
    m->layers = v;
    m->cap = cap;
    return 0;
}

/* The layer's name for messages: given, or its place in m. */
static const char *layer_name(const nb_layer *l) { return l->name[0] ? l->name : "(unnamed)"; }

int nb_model_add(nb_model *m, nb_layer *l)
{
    if (m && !model_live(m)) {
        drop_layer(l);
        return nn_bad_model(m, "nb_model_add");
    }
    if (!m || !l) {
        /* A NULL layer from a failed nb_dense keeps that error. */
        drop_layer(l);
        if (!nn_has_error())
            nb_set_error("nb_model_add: %s is NULL", m ? "layer" : "model");
        return -1;
    }
    if (l->owner == m)
        return nb_set_error_code(NB_ERR_STATE, "nb_model_add: layer '%s' is already in this "
                                 "model (a layer can be added once)", layer_name(l));
    if (l->owner)
        return nb_set_error_code(NB_ERR_STATE, "nb_model_add: layer '%s' belongs to another "
                                 "model (a layer can be in one model only)", layer_name(l));
    if (m->built) {
        nb_layer_free(l);
        return nb_set_error_code(NB_ERR_STATE, "nb_model_add: the model is already built; add layers before "
                            "nb_build/nb_compile");
    }
    if (l->type == &nn_input_type && m->n > 0) {
        nb_layer_free(l);
        return nb_set_error_code(NB_ERR_STATE, "nb_model_add: nb_input comes first, before "
                                 "every layer (it declares the model's input)");
    }
    /* Dense after Dense: the declared input is known now. */
    const nb_layer *prev = m->n ? m->layers[m->n - 1] : NULL;
    if (prev && prev->type == &nn_dense_type && l->type == &nn_dense_type) {
        int64_t want = ((const nb_dense_opts *)l->ctx)->input;
        int64_t have = ((const nb_dense_opts *)prev->ctx)->units;
        if (want && want != have) {
            nb_set_error_code(NB_ERR_SHAPE, "nb_model_add: layer %d declares %lld inputs, the "
                              "previous layer gives %lld", m->n + 1, (long long)want,
                              (long long)have);
            nb_layer_free(l);
            return -1;
        }
    }
    if (model_grow(m)) {
        nb_layer_free(l);
        return nn_blame("nb_model_add");
    }
    if (!l->name[0]) { /* Keras's: "dense", then "dense_1", ... (counted in the model) */
        int k = 0;
        for (int i = 0; i < m->n; i++)
            k += m->layers[i]->type == l->type && m->layers[i]->auto_named;
        if (k)
            snprintf(l->name, sizeof l->name, "%s_%d", l->type->prefix, k);
        else
            snprintf(l->name, sizeof l->name, "%s", l->type->prefix);
        l->auto_named = true;
    }
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->layers[i]->name, l->name) == 0) {
            nb_set_error("nb_model_add: a layer named '%s' is already in the model", l->name);
            nb_layer_free(l);
            return -1;
        }
    m->layers[m->n++] = l;
    l->owner = m;
    return 0;
}

/* Frees layers[from..n) handed to nb_sequential that no model took: each
 * once (one may be listed twice), none that a model owns. */
static void drop_layers(nb_layer *const layers[], int from, int n)
{
    for (int k = from; layers && k < n; k++) {
        bool again = false;
        for (int j = from; j < k && !again; j++)
            again = layers[j] == layers[k];
        if (!again)
            drop_layer(layers[k]);
    }
}

nb_model *nb_sequential_(int n, nb_layer *const layers[])
{
    nb_model *m = nb_mem_alloc(sizeof *m);
    bool bad = !m || n < 0 || (n > 0 && !layers);
    for (int i = 0; !bad && i < n; i++)
        bad = !layers[i];
    if (bad) {
        /* The model owns its layers, also when it cannot be made. */
        drop_layers(layers, 0, n);
        if (m) {
            nb_mem_free(m);
            if (!nn_has_error())
                nb_set_error(n < 0 ? "nb_sequential: n is negative" : "nb_sequential: a layer "
                             "is NULL");
        } else {
            nb_set_error_code(NB_ERR_MEMORY, "nb_sequential: out of memory for a model");
        }
        return NULL;
    }
    memset(m, 0, sizeof *m);
    lock_models();
    m->next_live = live_models;
    live_models = m;
    unlock_models();
    for (int i = 0; i < n; i++)
        if (nb_model_add(m, layers[i])) {
            drop_layers(layers, i + 1, n);
            char msg[512];
            nb_error_code code = nb_last_error_code();
            snprintf(msg, sizeof msg, "%s", nb_last_error() ? nb_last_error() : "");
            nb_model_free(m);
            /* Named as the call the user made, with the layer's place. */
            const char *rest = strncmp(msg, "nb_model_add: ", 14) == 0 ? msg + 14 : msg;
            nb_set_error_code(code, "nb_sequential: layer %d: %s", i + 1, rest);
            return NULL;
        }
    return m;
}

static void free_history(nb_model *m)
{
    nb_mem_free(m->hist.loss);
    memset(&m->hist, 0, sizeof m->hist);
}

void nb_model_free(nb_model *m)
{
    if (!m || nn_bad_model(m, "nb_model_free"))
        return;
    if (last_forward.m == m) /* another model may come at this address */
        memset(&last_forward, 0, sizeof last_forward);
    lock_models();
    for (nb_model **k = &live_models; *k; k = &(*k)->next_live)
        if (*k == m) {
            *k = m->next_live;
            break;
        }
    unlock_models();
    for (int i = 0; i < m->n; i++) {
        m->layers[i]->owner = NULL;
        nb_layer_free(m->layers[i]);
    }
    nb_mem_free(m->layers);
    nb_mem_free(m->params);
    nb_mem_free(m->weights);
    nb_optimizer_free(m->opt);
    free_history(m);
    nb_mem_free(m);
}

/* What a failed nb_build made, freed: the model is as before the call, so
 * the build can be tried again. Returns -1. */
static int unbuild(nb_model *m)
{
    for (int i = 0; i < m->n; i++)
        nn_layer_unbuild(m->layers[i]);
    nb_mem_free(m->params);
    nb_mem_free(m->weights);
    m->params = m->weights = NULL;
    m->nparams = m->nweights = 0;
    return -1;
}

/* The input shape: features (a flat input), or the first layer's (nb_input,
 * or a Dense's .input) when features is 0. */
static int input_shape(nb_model *m, int64_t features, int *ndim, int64_t *shape)
{
    const nb_layer *first = m->layers[0];
    if (first->type == &nn_input_type) {
        const nn_shape_ctx *c = first->ctx;
        *ndim = c->ndim;
        memcpy(shape, c->shape, (size_t)*ndim * sizeof *shape);
        if (features && !(*ndim == 1 && shape[0] == features))
            return nb_set_error_code(NB_ERR_SHAPE, "nb_build: features is %lld; the model's "
                                     "nb_input declares another shape (pass 0)",
                                     (long long)features);
        return 0;
    }
    int64_t declared = first->type == &nn_dense_type ? ((const nb_dense_opts *)first->ctx)->input : 0;
    if (features < 0 || (!features && !declared))
        return nb_set_error("nb_build: features must be at least 1, got %lld",
                            (long long)features);
    if (declared && features && declared != features)
        return nb_set_error_code(NB_ERR_SHAPE, "nb_build: the first layer declares %lld "
                                 "inputs, got %lld", (long long)declared, (long long)features);
    *ndim = 1;
    shape[0] = features ? features : declared;
    return 0;
}

int nb_build(nb_model *m, int64_t features, uint64_t seed)
{
    if (nn_bad_model(m, "nb_build"))
        return -1;
    if (m->n == 0 || (m->n == 1 && m->layers[0]->type == &nn_input_type))
        return nb_set_error_code(NB_ERR_STATE, "nb_build: the model has no layers");
    if (m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_build: the model is already built");
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    if (input_shape(m, features, &ndim, shape))
        return -1;
    m->rng = nb_rng_new(seed);
    int nw = 0;
    for (int i = 0; i < m->n; i++) {
        nb_layer *l = m->layers[i];
        l->in_ndim = ndim;
        memcpy(l->in, shape, (size_t)ndim * sizeof *shape);
        const char *outer = nb_error_scope_begin("nb_build");
        int rc = l->type->build(l, ndim, shape, &l->out_ndim, l->out, &m->rng);
        nb_error_scope_end(outer);
        if (rc == 0 && (l->out_ndim < 1 || l->out_ndim > NB_MAX_DIMS - 1))
            rc = nb_set_error("nb_build: layer '%s' gave an output of %d dimensions (1 to %d "
                              "without the batch)", l->name, l->out_ndim, NB_MAX_DIMS - 1);
        for (int d = 0; rc == 0 && d < l->out_ndim; d++)
            if (l->out[d] < 1)
                rc = nb_set_error_code(NB_ERR_SHAPE, "nb_build: layer '%s' gives an output of "
                                       "size %lld along axis %d (its input is too small)",
                                       l->name, (long long)l->out[d], d + 1);
        if (rc) {
            if (!nn_has_error())
                nb_set_error("nb_build: layer '%s' failed to build", l->name);
            else
                nn_blame("nb_build");
            return unbuild(m);
        }
        l->built = true;
        nw += l->nw;
        ndim = l->out_ndim;
        memcpy(shape, l->out, (size_t)ndim * sizeof *shape);
    }
    m->weights = nb_mem_alloc((size_t)(nw ? nw : 1) * sizeof *m->weights);
    m->params = nb_mem_alloc((size_t)(nw ? nw : 1) * sizeof *m->params);
    if (!m->weights || !m->params) {
        nn_blame("nb_build");
        return unbuild(m);
    }
    for (int i = 0; i < m->n; i++)
        for (int k = 0; k < m->layers[i]->nw; k++) {
            m->weights[m->nweights++] = m->layers[i]->w[k];
            if (m->layers[i]->trainable[k])
                m->params[m->nparams++] = m->layers[i]->w[k];
        }
    if (input_shape(m, features, &m->in_ndim, m->in))
        return unbuild(m);
    m->dtype = NB_F32;
    m->built = true;
    return 0;
}

int nb_model_set_dtype(nb_model *m, nb_dtype dtype)
{
    if (nn_bad_model(m, "nb_model_set_dtype"))
        return -1;
    if (dtype != NB_F32 && dtype != NB_F64)
        return nb_set_error_code(NB_ERR_DTYPE, "nb_model_set_dtype: dtype %s (%d) is not NB_F32 "
                                 "or NB_F64", nb_dtype_name(dtype), (int)dtype);
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_model_set_dtype: the model is not built");
    if (m->opt && nb_optimizer_steps(m->opt) > 0)
        return nb_set_error_code(NB_ERR_STATE, "nb_model_set_dtype: the optimizer has already taken steps");
    for (int i = 0; i < m->nweights; i++) {
        nb_tensor *p = m->weights[i];
        nb_tensor *c = nn_zeros("nb_model_set_dtype", dtype, nb_ndim(p), nb_shape(p));
        bool trainable = nb_requires_grad(p);
        if (!c || !nb_set_name(trainable ? nb_param(c) : c, nb_name(p))) {
            nb_free(c);
            return -1;
        }
        for (int64_t k = 0; k < nb_numel(p); k++)
            nn_put(c, k, nb_get_flat(p, k));
        nb_bump_version(c);
        for (int l = 0; l < m->n; l++)
            for (int k = 0; k < m->layers[l]->nw; k++)
                if (m->layers[l]->w[k] == p)
                    m->layers[l]->w[k] = c;
        for (int k = 0; k < m->nparams; k++)
            if (m->params[k] == p)
                m->params[k] = c;
        m->weights[i] = c;
        nb_free(p);
    }
    m->dtype = dtype;
    return 0;
}

/* Keras's names of the built-in losses, for messages. */
static const char *const loss_names[] = {
    [NB_MEAN_SQUARED_ERROR] = "mean_squared_error",
    [NB_MEAN_ABSOLUTE_ERROR] = "mean_absolute_error",
    [NB_HUBER] = "huber",
    [NB_BINARY_CROSSENTROPY] = "binary_crossentropy",
    [NB_CATEGORICAL_CROSSENTROPY] = "categorical_crossentropy",
    [NB_SPARSE_CATEGORICAL_CROSSENTROPY] = "sparse_categorical_crossentropy",
};

/* The loss of o: a built-in one or a custom one, never both. */
static int check_loss(const nb_compile_opts *o)
{
    const nb_custom_fn *c = &o->custom_loss;
    bool custom = c->fn || c->ctx || c->name;
    int n = (int)(sizeof loss_names / sizeof loss_names[0]);
    if (custom && o->loss)
        return nb_set_error("nb_compile: both .loss (%d, %s) and .custom_loss (\"%s\") are "
                            "given; pass one", (int)o->loss,
                            (int)o->loss > 0 && (int)o->loss < n ? loss_names[o->loss] : "unknown",
                            c->name ? c->name : "unnamed");
    if (custom)
        return c->name && nn_check_name(".custom_loss", c->name) ? -1
               : c->fn ? 0
                       : nb_set_error("nb_compile: .custom_loss%s%s%s has a NULL fn",
                                      c->name ? " \"" : "", c->name ? c->name : "",
                                      c->name ? "\"" : "");
    if ((int)o->loss < NB_MEAN_SQUARED_ERROR || (int)o->loss >= n)
        return nb_set_error("nb_compile: unknown loss %d%s", (int)o->loss,
                            o->loss ? "" : " (give a built-in loss or .custom_loss)");
    return 0;
}

int nb_compile_(nb_model *m, nb_optimizer *opt, nb_compile_opts o)
{
    /* The optimizer handed over is dropped on error, unless it is this
     * model's already (compiled again) or another model's. */
    if (m && !model_live(m)) {
        drop_optimizer(opt);
        return nn_bad_model(m, "nb_compile");
    }
    nb_optimizer *drop = m && opt == m->opt ? NULL : opt;
    if (!m || !opt) {
        /* A NULL optimizer from a failed constructor keeps that error. */
        drop_optimizer(opt);
        if (!nn_has_error())
            nb_set_error("nb_compile: %s is NULL", m ? "optimizer" : "model");
        return -1;
    }
    if (opt_owner(opt, m))
        return nb_set_error_code(NB_ERR_STATE, "nb_compile: the %s optimizer belongs to another "
                                 "model (make one per model)", nb_optimizer_name(opt));
    nn_metrics metrics;
    bool custom = o.custom_loss.fn != NULL;
    nn_targets targets = custom ? NN_TARGETS_ANY
                         : o.loss == NB_SPARSE_CATEGORICAL_CROSSENTROPY ? NN_TARGETS_LABELS
                                                                        : NN_TARGETS_SAME;
    if (check_loss(&o) ||
        nn_metrics_parse(&o, custom ? "(custom)" : loss_names[o.loss], targets, &metrics)) {
        drop_optimizer(drop);
        return -1;
    }
    if (m->n == 0) {
        drop_optimizer(drop);
        return nb_set_error_code(NB_ERR_STATE, "nb_compile: the model has no layers");
    }
    if (m->opt != opt)
        nb_optimizer_free(m->opt);
    lock_models(); /* opt_owner reads every live model's optimizer under the lock */
    m->opt = opt;
    unlock_models();
    m->loss = o.loss;
    m->custom_loss = o.custom_loss;
    snprintf(m->custom_loss_name, sizeof m->custom_loss_name, "%s",
             o.custom_loss.name ? o.custom_loss.name : "custom");
    m->custom_loss.name = m->custom_loss_name;
    m->metrics = metrics;
    m->compiled = true;
    const nb_layer *first = m->layers[0];
    if (!m->built && (first->type == &nn_input_type ||
                      (first->type == &nn_dense_type && ((const nb_dense_opts *)first->ctx)->input)))
        return nb_build(m, 0, 0);
    return 0;
}

int64_t nb_count_params(const nb_model *m)
{
    int64_t n = 0;
    if (!nn_bad_model(m, "nb_count_params"))
        for (int i = 0; i < m->nweights; i++)
            n += nb_numel(m->weights[i]);
    return n;
}

int nb_model_params(const nb_model *m, nb_tensor *const **params)
{
    if (nn_bad_model(m, "nb_model_params"))
        return -1;
    if (!params)
        return nb_set_error("nb_model_params: params is NULL");
    *params = m->params;
    return m->nparams;
}

nb_optimizer *nb_model_optimizer(const nb_model *m)
{
    return nn_bad_model(m, "nb_model_optimizer") ? NULL : m->opt;
}

/* ---- forward and loss ---- */

int nn_check_input(const nb_model *m, const nb_tensor *x, const char *what, const char *fn)
{
    char b[NB_SHAPE_STR_LEN], want[NB_SHAPE_STR_LEN] = "(N";
    bool ok = nb_ndim(x) == m->in_ndim + 1 &&
              memcmp(nb_shape(x) + 1, m->in, (size_t)m->in_ndim * sizeof *m->in) == 0;
    nb_dtype dt = nb_dtype_of(x);
    bool u8_ok = what != NULL, dt_ok = dt == m->dtype || (u8_ok && dt == NB_U8);
    if (ok && dt_ok)
        return 0;
    for (int i = 0; i < m->in_ndim; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), ",%lld", (long long)m->in[i]);
    strcat(want, ")");
    nb_error_code code = !dt_ok ? NB_ERR_DTYPE : NB_ERR_SHAPE;
    if (u8_ok)
        return nb_set_error_code(code, "%s: %s x is %s %s; the model takes %s or u8 %s", fn, what,
                                 nb_dtype_name(dt), nb_shape_str(x, b), nb_dtype_name(m->dtype),
                                 want);
    return nb_set_error_code(code, "%s: x is %s %s; the model takes %s %s%s", fn,
                             nb_dtype_name(dt), nb_shape_str(x, b), nb_dtype_name(m->dtype), want,
                             dt == NB_U8 ? " (nb_cast u8 data, or give it to nb_fit, nb_evaluate "
                                           "or nb_predict in an nb_dataset)" : "");
}

void nb_model_set_training(nb_model *m, bool training)
{
    if (!nn_bad_model(m, "nb_model_set_training"))
        m->training = training;
}

bool nb_model_training(const nb_model *m)
{
    return !nn_bad_model(m, "nb_model_training") && m->training;
}

nb_tensor *nb_model_forward(nb_model *m, nb_tensor *x)
{
    return nn_bad_model(m, "nb_model_forward") ? NULL : nn_forward(m, x, m->training);
}

nb_tensor *nn_forward(nb_model *m, nb_tensor *x, bool training)
{
    if (nb_check_tensor("nb_model_forward", "x", x))
        return NULL;
    if (!m->built) {
        nb_set_error_code(NB_ERR_STATE, "nb_model_forward: the model is not built (give it an "
                          "nb_input or the first layer .input, or call nb_build)");
        return NULL;
    }
    if (nn_check_input(m, x, NULL, "nb_model_forward"))
        return NULL;
    nb_tensor *h = x, *z = NULL;
    for (int i = 0; i < m->n && h; i++) {
        nb_layer *l = m->layers[i];
        if (l->type == &nn_input_type)
            continue;
        if (nb_scope_push(l->name))
            return NULL;
        z = NULL;
        h = l->type == &nn_dense_type ? nn_dense_forward(l, h, &z)
                                      : l->type->forward(l, h, training);
        nb_scope_pop();
        if (!h && !nn_has_error())
            nb_set_error("nb_model_forward: layer '%s' gave no output", l->name);
    }
    /* Remembered with the graph and its generation: see compiled_loss. */
    const nb_graph *g = h ? nb_graph_current() : NULL;
    last_forward.m = m;
    last_forward.out = h;
    last_forward.logits = z;
    last_forward.graph = g;
    last_forward.generation = nb_graph_generation(g);
    return h;
}

/* Checks y against the model's output and loss; -1 with an error naming fn. */
/* Element i of y: straight from the buffer when y is packed (a data set's
 * worth of checks per fit), through its strides otherwise. */
static double target_at(const nb_tensor *y, const void *packed, int64_t i)
{
    if (!packed)
        return nb_get_flat(y, i);
    return nb_dtype_of(y) == NB_F64 ? ((const double *)packed)[i]
                                    : (double)((const float *)packed)[i];
}

int nn_check_targets(const nb_model *m, const nb_tensor *y, int64_t rows, const char *fn)
{
    char b[NB_SHAPE_STR_LEN];
    int64_t out = nn_out_features(m);
    if (nb_check_tensor(fn, "y", y))
        return -1;
    if (nb_dtype_of(y) != m->dtype)
        return nb_set_error_code(NB_ERR_DTYPE, "%s: y is %s; the model is %s", fn, nb_dtype_name(nb_dtype_of(y)),
                            nb_dtype_name(m->dtype));
    if (m->custom_loss.fn) { /* the custom loss and metrics check the rest */
        if (nb_ndim(y) < 1 || nb_dim(y, 0) != rows)
            return nb_set_error_code(NB_ERR_SHAPE, "%s: y is %s; it needs %lld rows", fn,
                                     nb_shape_str(y, b), (long long)rows);
        return 0;
    }
    if (m->loss == NB_SPARSE_CATEGORICAL_CROSSENTROPY) {
        if (nb_ndim(y) != 1 || nb_dim(y, 0) != rows)
            return nb_set_error_code(NB_ERR_SHAPE, "%s: sparse labels must be (%lld,), got %s", fn, (long long)rows,
                                nb_shape_str(y, b));
        const void *packed = nb_is_contiguous(y) ? nb_data(y) : NULL;
        for (int64_t i = 0; i < rows; i++) {
            double v = target_at(y, packed, i);
            if (!(v >= 0 && v < (double)out && v == floor(v)))
                return nb_set_error("%s: label %g at row %lld is not a class in [0, %lld)", fn, v,
                                    (long long)i, (long long)out);
        }
        return 0;
    }
    if (nb_ndim(y) != 2 || nb_dim(y, 0) != rows || nb_dim(y, 1) != out)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: y is %s; the model's output is (%lld,%lld)", fn,
                            nb_shape_str(y, b), (long long)rows, (long long)out);
    if (m->loss == NB_CATEGORICAL_CROSSENTROPY) {
        const void *packed = nb_is_contiguous(y) ? nb_data(y) : NULL;
        for (int64_t i = 0, n = nb_numel(y); i < n; i++) {
            double v = target_at(y, packed, i);
            if (!(v >= 0 && v <= 1))
                return nb_set_error("%s: categorical targets must be in [0, 1]; y has %g at row "
                                    "%lld (one-hot encode labels, or use the sparse loss)",
                                    fn, v, (long long)(i / out));
        }
    }
    return 0;
}

static nb_tensor *compiled_loss(nb_model *m, nb_tensor *output, nb_tensor *y, nb_tensor *logits);

nb_tensor *nb_model_loss(nb_model *m, nb_tensor *output, nb_tensor *y)
{
    if (nn_bad_model(m, "nb_model_loss"))
        return NULL;
    if (nb_check_tensor("nb_model_loss", "output", output) ||
        nb_check_tensor("nb_model_loss", "y", y))
        return NULL;
    if (!m->compiled) {
        nb_set_error_code(NB_ERR_STATE, "nb_model_loss: the model is not compiled (call nb_compile)");
        return NULL;
    }
    nb_tensor *l = nn_model_loss(m, output, y);
    if (!l)
        nn_blame("nb_model_loss"); /* a custom loss's message names no function */
    return l;
}

const char *nn_loss_name(const nb_model *m)
{
    if (m->custom_loss.fn)
        return m->custom_loss_name[0] ? m->custom_loss_name : "custom";
    int n = (int)(sizeof loss_names / sizeof loss_names[0]);
    return (int)m->loss > 0 && (int)m->loss < n ? loss_names[m->loss] : "?";
}

/* The logits of output if it is the last forward's result: the same
 * tensor, in the graph that is current, which has not been reset since (a
 * reset or a new graph may put another tensor at the same address). */
static nb_tensor *logits_of(const nb_model *m, const nb_tensor *output)
{
    nb_graph *g = nb_graph_current();
    bool fresh = g && last_forward.m == m && g == last_forward.graph &&
                 nb_graph_generation(g) == last_forward.generation;
    return fresh && output == last_forward.out ? last_forward.logits : NULL;
}

nb_tensor *nn_model_loss(nb_model *m, nb_tensor *output, nb_tensor *y)
{
    /* Softmax / sigmoid outputs take the loss from their logits, so that a
     * confident wrong prediction costs a large finite loss, never NaN. The
     * scope says so, and the logits get their name, so that a picture of
     * the step shows where the activation went: the loss box reads
     * "loss: softmax + categorical_crossentropy (fused)". */
    nb_tensor *logits = logits_of(m, output);
    const char *fused = logits ? nn_fused_loss(m) : NULL;
    char scope[80] = "loss";
    if (fused) {
        snprintf(scope, sizeof scope, "loss: %s (fused)", fused);
        if (!nb_name(logits) && !nb_set_name(logits, "logits"))
            return NULL;
    }
    if (nb_scope_push(scope))
        return NULL;
    nb_tensor *l = compiled_loss(m, output, y, fused ? logits : NULL);
    nb_scope_pop();
    return l;
}

/* The custom loss of a batch, which must be a 0-d tensor. */
static nb_tensor *custom_loss(const nb_model *m, nb_tensor *output, nb_tensor *y)
{
    char b[NB_SHAPE_STR_LEN];
    nb_tensor *l = m->custom_loss.fn(output, y, m->custom_loss.ctx);
    if (!l && !nn_has_error())
        nb_set_error("the loss \"%s\" gave NULL and set no error", m->custom_loss.name);
    if (l && nb_ndim(l) != 0) {
        nb_set_error_code(NB_ERR_SHAPE, "the loss \"%s\" gave a %s tensor; a loss gives a 0-d "
                          "tensor (the batch's mean)", m->custom_loss.name, nb_shape_str(l, b));
        return NULL;
    }
    return l;
}

static nb_tensor *compiled_loss(nb_model *m, nb_tensor *output, nb_tensor *y, nb_tensor *logits)
{
    if (m->custom_loss.fn)
        return custom_loss(m, output, y);
    nb_activation last = nn_layer_activation(m->layers[m->n - 1]);
    /* Without the logits (another tensor than the last forward's output),
     * the loss is taken from the output itself, which is right, only less
     * robust for softmax. */
    switch (m->loss) {
    case NB_MEAN_SQUARED_ERROR:
        return nb_mse(output, y);
    case NB_MEAN_ABSOLUTE_ERROR:
        return nb_mae(output, y);
    case NB_HUBER:
        return nb_huber(output, y, 1.0);
    case NB_BINARY_CROSSENTROPY:
        return logits && last == NB_SIGMOID ? nb_binary_crossentropy_logits(logits, y)
                                            : nb_binary_crossentropy(output, y);
    case NB_CATEGORICAL_CROSSENTROPY:
        if (logits && last == NB_SOFTMAX)
            return nb_categorical_crossentropy_logits(logits, y);
        if (last == NB_LOG_SOFTMAX)
            return nb_neg(nb_mean(nb_sum(nb_mul(y, output), .axes = NB_AXES(-1))));
        return nb_categorical_crossentropy(output, y);
    case NB_SPARSE_CATEGORICAL_CROSSENTROPY:
        return logits && last == NB_SOFTMAX ? nb_sparse_categorical_crossentropy_logits(logits, y)
                                            : nb_sparse_categorical_crossentropy(output, y);
    }
    nb_set_error("nb_model_loss: unknown loss %d", (int)m->loss);
    return NULL;
}
