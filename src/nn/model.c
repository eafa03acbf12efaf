/* Dense layers and the Sequential model: building, forward, loss, summary,
 * weights. Everything here is composition: a Dense layer is
 * activation(matmul(x, kernel) + bias), recorded under the layer's scope. */
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

nb_tensor *nn_zeros(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape)
{
    nb_tensor *t = nb_zeros(dtype, ndim, shape);
    if (!t) {
        /* "nb_zeros: out of memory ..." becomes "<fn>: out of memory ...". */
        char msg[512];
        const char *e = nb_last_error();
        snprintf(msg, sizeof msg, "%s", e ? e : "out of memory");
        const char *rest = strncmp(msg, "nb_zeros: ", 10) == 0 ? msg + 10 : msg;
        nb_set_error_code(nb_last_error_code() ? nb_last_error_code() : NB_ERR_MEMORY, "%s: %s",
                          fn, rest);
    }
    return t;
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
        if (p > e && p[0] == ':' && p[1] == ' ')
            return -1; /* names a function already */
    }
    char msg[512];
    snprintf(msg, sizeof msg, "%s", e);
    return nb_set_error("%s: %s", fn, msg);
}

/* ---- layers ---- */

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
    if (o.name && (!*o.name || strlen(o.name) >= sizeof(((nb_layer *)0)->name))) {
        nb_set_error("nb_dense: a layer name needs 1 to %zu characters",
                     sizeof(((nb_layer *)0)->name) - 1);
        return NULL;
    }
    nb_layer *l = nb_mem_alloc(sizeof *l);
    if (!l) {
        nn_blame("nb_dense");
        return NULL;
    }
    memset(l, 0, sizeof *l);
    l->opts = o;
    if (o.name)
        strcpy(l->name, o.name);
    l->opts.name = NULL;
    return l;
}

nb_layer *nb_dense_(nb_dense_opts o) { NN_NAMED("nb_dense", nb_layer *, dense(o)); }

void nb_layer_free(nb_layer *l)
{
    if (!l)
        return;
    if (l->owner) {
        nb_set_error_code(NB_ERR_STATE, "nb_layer_free: layer '%s' belongs to a model, which "
                          "frees it (nb_model_free)", l->name);
        return;
    }
    nb_free(l->kernel);
    nb_free(l->bias);
    nb_mem_free(l);
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
    if (m->n > 0 && l->opts.input) {
        int64_t prev = m->layers[m->n - 1]->opts.units;
        if (l->opts.input != prev) {
            nb_set_error_code(NB_ERR_SHAPE, "nb_model_add: layer %d declares %lld inputs, the previous layer gives "
                         "%lld",
                         m->n + 1, (long long)l->opts.input, (long long)prev);
            nb_layer_free(l);
            return -1;
        }
    }
    if (model_grow(m)) {
        nb_layer_free(l);
        return nn_blame("nb_model_add");
    }
    if (!l->name[0])
        snprintf(l->name, sizeof l->name, "dense_%d", ++m->dense_count);
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
    nb_optimizer_free(m->opt);
    free_history(m);
    nb_mem_free(m);
}

/* Glorot uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)). */
static nb_tensor *glorot_uniform(int64_t in, int64_t out, nb_rng *rng)
{
    nb_tensor *w = nn_zeros("nb_build", NB_F32, NB_SHAPE(in, out));
    if (!w)
        return NULL;
    double limit = sqrt(6.0 / (double)(in + out));
    float *d = nb_data(w); /* a fresh heap tensor: contiguous */
    for (int64_t i = 0; i < nb_numel(w); i++)
        d[i] = (float)((2.0 * nb_rng_uniform(rng) - 1.0) * limit);
    nb_bump_version(w);
    return w;
}

/* What a failed nb_build made, freed: the model is as before the call, so
 * the build can be tried again. Returns -1. */
static int unbuild(nb_model *m)
{
    for (int i = 0; i < m->n; i++) {
        nb_layer *l = m->layers[i];
        nb_free(l->kernel);
        nb_free(l->bias);
        l->kernel = l->bias = NULL;
    }
    nb_mem_free(m->params);
    m->params = NULL;
    m->nparams = 0;
    return -1;
}

int nb_build(nb_model *m, int64_t features, uint64_t seed)
{
    if (nn_bad_model(m, "nb_build"))
        return -1;
    if (m->n == 0)
        return nb_set_error_code(NB_ERR_STATE, "nb_build: the model has no layers");
    if (m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_build: the model is already built");
    if (features < 1)
        return nb_set_error("nb_build: features must be at least 1, got %lld", (long long)features);
    if (m->layers[0]->opts.input && m->layers[0]->opts.input != features)
        return nb_set_error_code(NB_ERR_SHAPE, "nb_build: the first layer declares %lld inputs, got %lld",
                            (long long)m->layers[0]->opts.input, (long long)features);
    nb_rng rng = nb_rng_new(seed);
    int np = 0;
    for (int i = 0; i < m->n; i++)
        np += m->layers[i]->opts.no_bias ? 1 : 2;
    m->params = nb_mem_alloc((size_t)np * sizeof *m->params);
    if (!m->params)
        return nn_blame("nb_build");
    int64_t in = features;
    m->nparams = 0;
    for (int i = 0; i < m->n; i++) {
        nb_layer *l = m->layers[i];
        char name[64];
        l->in = in;
        l->kernel = glorot_uniform(in, l->opts.units, &rng);
        snprintf(name, sizeof name, "%s.kernel", l->name);
        if (!l->kernel || !nb_set_name(nb_param(l->kernel), name))
            return unbuild(m);
        m->params[m->nparams++] = l->kernel;
        if (!l->opts.no_bias) {
            l->bias = nn_zeros("nb_build", NB_F32, NB_SHAPE(l->opts.units));
            snprintf(name, sizeof name, "%s.bias", l->name);
            if (!l->bias || !nb_set_name(nb_param(l->bias), name))
                return unbuild(m);
            m->params[m->nparams++] = l->bias;
        }
        in = l->opts.units;
    }
    m->in_features = features;
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
    for (int i = 0; i < m->nparams; i++) {
        nb_tensor *p = m->params[i];
        nb_tensor *c = nn_zeros("nb_model_set_dtype", dtype, nb_ndim(p), nb_shape(p));
        if (!c || !nb_set_name(nb_param(c), nb_name(p))) {
            nb_free(c);
            return -1;
        }
        for (int64_t k = 0; k < nb_numel(p); k++)
            nn_put(c, k, nb_get_flat(p, k));
        nb_bump_version(c);
        for (int l = 0; l < m->n; l++) {
            if (m->layers[l]->kernel == p)
                m->layers[l]->kernel = c;
            if (m->layers[l]->bias == p)
                m->layers[l]->bias = c;
        }
        m->params[i] = c;
        nb_free(p);
    }
    m->dtype = dtype;
    return 0;
}

int nb_compile(nb_model *m, nb_optimizer *opt, nb_loss loss, nb_metric metric)
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
    if (loss < NB_MEAN_SQUARED_ERROR || loss > NB_SPARSE_CATEGORICAL_CROSSENTROPY) {
        drop_optimizer(drop);
        return nb_set_error("nb_compile: unknown loss %d", (int)loss);
    }
    if (metric != NB_NO_METRIC && metric != NB_ACCURACY) {
        drop_optimizer(drop);
        return nb_set_error("nb_compile: unknown metric %d", (int)metric);
    }
    if (m->n == 0) {
        drop_optimizer(drop);
        return nb_set_error_code(NB_ERR_STATE, "nb_compile: the model has no layers");
    }
    if (m->opt != opt)
        nb_optimizer_free(m->opt);
    m->opt = opt;
    m->loss = loss;
    m->metric = metric;
    m->compiled = true;
    if (!m->built && m->layers[0]->opts.input)
        return nb_build(m, m->layers[0]->opts.input, 0);
    return 0;
}

int64_t nb_count_params(const nb_model *m)
{
    int64_t n = 0;
    if (!nn_bad_model(m, "nb_count_params"))
        for (int i = 0; i < m->nparams; i++)
            n += nb_numel(m->params[i]);
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

nb_tensor *nb_model_forward(nb_model *m, nb_tensor *x)
{
    char b[NB_SHAPE_STR_LEN];
    if (nn_bad_model(m, "nb_model_forward"))
        return NULL;
    if (nb_check_tensor("nb_model_forward", "x", x))
        return NULL;
    if (!m->built) {
        nb_set_error_code(NB_ERR_STATE, "nb_model_forward: the model is not built (give the first layer .input, "
                     "or call nb_build)");
        return NULL;
    }
    if (nb_ndim(x) != 2 || nb_dim(x, 1) != m->in_features || nb_dtype_of(x) != m->dtype) {
        nb_set_error_code(nb_dtype_of(x) != m->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE,
                          "nb_model_forward: x is %s %s; the model takes %s (N,%lld)%s",
                     nb_dtype_name(nb_dtype_of(x)), nb_shape_str(x, b),
                     nb_dtype_name(m->dtype), (long long)m->in_features,
                     nb_dtype_of(x) == NB_U8 ? " (nb_cast u8 data, or give it to nb_fit, "
                                               "nb_evaluate or nb_predict in an nb_dataset)"
                                             : "");
        return NULL;
    }
    nb_tensor *h = x, *z = NULL;
    for (int i = 0; i < m->n; i++) {
        nb_layer *l = m->layers[i];
        if (nb_scope_push(l->name))
            return NULL;
        z = nb_matmul(h, l->kernel);
        if (l->bias)
            z = nb_add(z, l->bias);
        h = nb_activate(z, l->opts.activation);
        nb_scope_pop();
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
    int64_t out = m->layers[m->n - 1]->opts.units;
    if (nb_check_tensor(fn, "y", y))
        return -1;
    if (nb_dtype_of(y) != m->dtype)
        return nb_set_error_code(NB_ERR_DTYPE, "%s: y is %s; the model is %s", fn, nb_dtype_name(nb_dtype_of(y)),
                            nb_dtype_name(m->dtype));
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

static nb_tensor *compiled_loss(nb_model *m, nb_tensor *output, nb_tensor *y);

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
    /* Softmax / sigmoid outputs take the loss from their logits, so that a
     * confident wrong prediction costs a large finite loss, never NaN. */
    if (nb_scope_push("loss"))
        return NULL;
    nb_tensor *l = compiled_loss(m, output, y);
    nb_scope_pop();
    return l;
}

static nb_tensor *compiled_loss(nb_model *m, nb_tensor *output, nb_tensor *y)
{
    nb_activation last = m->layers[m->n - 1]->opts.activation;
    /* The logits are those of the last forward only if output is that
     * forward's result: the same tensor, in the graph that is current, which
     * has not been reset since (a reset or a new graph may put another
     * tensor at the same address). Otherwise the loss is taken from the
     * output itself, which is right, only less robust for softmax. */
    nb_graph *g = nb_graph_current();
    bool fresh = g && last_forward.m == m && g == last_forward.graph &&
                 nb_graph_generation(g) == last_forward.generation;
    nb_tensor *logits = fresh && output == last_forward.out ? last_forward.logits : NULL;
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

/* The metric of a batch as a fraction, or NAN without a metric. */
double nn_batch_metric(const nb_model *m, nb_tensor *output, nb_tensor *y)
{
    if (m->metric != NB_ACCURACY)
        return NAN;
    nb_tensor *a = m->loss == NB_SPARSE_CATEGORICAL_CROSSENTROPY
                       ? nb_sparse_categorical_accuracy(output, y)
                       : nb_categorical_accuracy(output, y);
    return a ? nb_item(a) : NAN;
}

/* ---- summary ---- */

static const char *with_commas(int64_t v, char *buf)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%lld", (long long)v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0 && raw[i - 1] != '-')
            buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = '\0';
    return buf;
}

static const char *human_bytes(double bytes, char *buf)
{
    static const char *unit[] = {"B", "KB", "MB", "GB"};
    int u = 0;
    while (bytes >= 1024 && u < 3) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, 32, "%.2f %s", bytes, unit[u]);
    return buf;
}

int nb_summary(const nb_model *m, FILE *f)
{
    if (nn_bad_model(m, "nb_summary"))
        return -1;
    if (!f)
        return nb_set_error("nb_summary: FILE is NULL");
    static const char line[] =
        "_________________________________________________________________\n";
    static const char dline[] =
        "=================================================================\n";
    char c1[40], c2[40], c3[40];
    fprintf(f, "Model: \"sequential\"\n%s", line);
    fprintf(f, " %-28s%-26s%s\n%s", "Layer (type)", "Output Shape", "Param #", dline);
    for (int i = 0; i < m->n; i++) {
        const nb_layer *l = m->layers[i];
        char name[64], shape[40];
        snprintf(name, sizeof name, "%s (Dense)", l->name);
        snprintf(shape, sizeof shape, "(None, %lld)", (long long)l->opts.units);
        int64_t params = l->kernel ? nb_numel(l->kernel) + (l->bias ? nb_numel(l->bias) : 0) : -1;
        fprintf(f, " %-28s%-26s%s\n", name, shape,
                params < 0 ? "0 (unbuilt)" : with_commas(params, c1));
        if (i < m->n - 1)
            fputc('\n', f);
    }
    int64_t total = nb_count_params(m);
    double bytes = (double)nb_dtype_size(m->built ? m->dtype : NB_F32) * (double)total;
    fprintf(f, "%sTotal params: %s (%s)\n", dline, with_commas(total, c1), human_bytes(bytes, c2));
    fprintf(f, "Trainable params: %s (%s)\n", with_commas(total, c1), human_bytes(bytes, c3));
    fprintf(f, "Non-trainable params: 0 (0.00 B)\n%s", line);
    return ferror(f) ? nb_set_error_code(NB_ERR_IO, "nb_summary: write failed") : 0;
}

/* ---- weights ---- */

/* The message of a failed call of `from` made on behalf of `to` starts with
 * `to`, the function the user called. Returns -1. */
static int as_caller(const char *from, const char *to)
{
    const char *e = nb_last_error();
    size_t k = strlen(from);
    if (e && strncmp(e, from, k) == 0 && e[k] == ':') {
        char rest[512];
        snprintf(rest, sizeof rest, "%s", e + k);
        nb_set_error_code(nb_last_error_code(), "%s%s", to, rest);
    }
    return -1;
}

int nb_save_weights(const nb_model *m, const char *path)
{
    if (nn_bad_model(m, "nb_save_weights"))
        return -1;
    if (!path)
        return nb_set_error("nb_save_weights: path is NULL");
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_save_weights: %s: the model is not built",
                                 path);
    if (nb_save_safetensors(path, m->nparams, m->params) < 0) {
        as_caller("nb_save_safetensors", "nb_save_weights");
        return nn_blame("nb_save_weights");
    }
    return 0;
}

int nb_load_weights_(nb_load_weights_args a)
{
    nb_model *m = a.model;
    if (nn_bad_model(m, "nb_load_weights"))
        return -1;
    if (!a.path)
        return nb_set_error("nb_load_weights: path is NULL");
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_load_weights: %s: the model is not built "
                                 "(build it with the same layers first)",
                                 a.path);
    if (nb_load_safetensors(a.path, m->nparams, m->params, .partial = a.partial) < 0) {
        as_caller("nb_load_safetensors", "nb_load_weights");
        return nn_blame("nb_load_weights");
    }
    return 0;
}
