/* Keras's image layers on channels-last (N,H,W,C) batches, and Dropout:
 * Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D. Each is
 * a composition of ops (nb_convolution, nb_max_pool2d, nb_avg_pool2d,
 * nb_inverted_dropout); build works out the output shape with
 * nb_conv_output_size, as the ops will. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

static void *copy_of(const char *fn, const void *o, size_t size)
{
    void *c = nb_mem_alloc(size);
    if (!c)
        nn_blame(fn);
    else
        memcpy(c, o, size);
    return c;
}

/* {k}: (k, k); {0, 0}: dflt. -1 when an entry is negative or only the
 * second is given. */
static int pair(const int64_t v[2], int64_t dflt, int64_t out[2])
{
    if (v[0] < 0 || v[1] < 0 || (v[0] == 0 && v[1] != 0))
        return -1;
    out[0] = v[0] ? v[0] : dflt;
    out[1] = v[1] ? v[1] : out[0];
    return 0;
}

/* The input must be (H, W, C) (batch left out). */
static int need_image(const nb_layer *l, int ndim, const int64_t *in)
{
    char s[96] = "(";
    if (ndim == 3)
        return 0;
    for (int i = 0; i < ndim; i++)
        snprintf(s + strlen(s), sizeof s - strlen(s), i ? ", %lld" : "%lld", (long long)in[i]);
    return nb_set_error_code(NB_ERR_SHAPE, "layer '%s' (%s) takes images (height, width, "
                             "channels), got %s)", l->name, l->type->type, s);
}

/* One spatial axis of a window: its output length, or -1 with an error
 * naming the layer. */
static int64_t out_len(const nb_layer *l, int64_t in, int64_t k, int64_t s, int64_t d,
                       nb_padding p)
{
    nb_window_size w = nb_conv_output_size(in, k, .stride = s, .dilation = d, .padding = p);
    if (w.out < 1) {
        nb_clear_error();
        nb_set_error_code(NB_ERR_SHAPE, "layer '%s' (%s): a window of %lld (dilation %lld) "
                          "does not fit an input of %lld", l->name, l->type->type,
                          (long long)k, (long long)d, (long long)in);
        return -1;
    }
    return w.out;
}

/* ---- Conv2D ---- */

typedef struct {
    nb_conv2d_opts o;
    int64_t k[2], s[2], d[2];
} conv_ctx;

static int conv_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                      nb_rng *rng)
{
    const conv_ctx *c = l->ctx;
    int64_t g = c->o.groups ? c->o.groups : 1, ch = in[2], f = c->o.filters;
    if (need_image(l, ndim, in))
        return -1;
    if (ch % g || f % g)
        return nb_set_error_code(NB_ERR_SHAPE, "layer '%s' (Conv2D): groups (%lld) must divide "
                                 "the input's channels (%lld) and the filters (%lld)", l->name,
                                 (long long)g, (long long)ch, (long long)f);
    for (int a = 0; a < 2; a++)
        if ((out[a] = out_len(l, in[a], c->k[a], c->s[a], c->d[a], c->o.padding)) < 0)
            return -1;
    out[2] = f;
    *out_ndim = 3;
    /* The kernel (KH, KW, C/groups, F); Keras's fans: the receptive field
     * times the input and output channels. */
    int64_t shape[4] = {c->k[0], c->k[1], ch / g, f};
    nb_tensor *w = nn_zeros("nb_build", NB_F32, 4, shape);
    if (!w)
        return -1;
    if ((c->o.kernel_initializer ? c->o.kernel_initializer : nb_init_glorot_uniform)(w, rng) < 0) {
        nb_free(w);
        return -1;
    }
    if (nb_layer_weight(l, "kernel", w, true) < 0)
        return -1;
    if (!c->o.no_bias &&
        nb_layer_weight(l, "bias", nn_zeros("nb_build", NB_F32, NB_SHAPE(f)), true) < 0)
        return -1;
    return 0;
}

static nb_tensor *conv_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const conv_ctx *c = l->ctx;
    nb_tensor *b = c->o.no_bias ? NULL : nb_layer_get(l, 1);
    nb_tensor *y = nb_convolution(x, nb_layer_get(l, 0), b, .stride = {c->s[0], c->s[1]},
                                  .dilation = {c->d[0], c->d[1]}, .padding = c->o.padding,
                                  .groups = c->o.groups);
    return nb_activate(y, c->o.activation);
}

static const nb_layer_type conv_type = {"Conv2D", "conv2d", conv_build, conv_forward, nn_free_ctx};

nb_activation nn_conv_activation(const nb_layer *l)
{
    return l->type == &conv_type ? ((const conv_ctx *)l->ctx)->o.activation : NB_LINEAR;
}

nb_layer *nb_conv2d_(nb_conv2d_opts o)
{
    const char *fn = "nb_conv2d";
    conv_ctx c = {.o = o};
    if (o.filters < 1) {
        nb_set_error("%s: filters must be at least 1, got %lld", fn, (long long)o.filters);
        return NULL;
    }
    if (pair(o.kernel_size, 0, c.k) || c.k[0] < 1 || pair(o.strides, 1, c.s) ||
        pair(o.dilation_rate, 1, c.d)) {
        nb_set_error("%s: kernel_size (%lld,%lld), strides (%lld,%lld) and dilation_rate "
                     "(%lld,%lld) must be positive ({k}: (k, k); strides and dilation "
                     "default to 1; kernel_size is required)", fn,
                     (long long)o.kernel_size[0], (long long)o.kernel_size[1],
                     (long long)o.strides[0], (long long)o.strides[1],
                     (long long)o.dilation_rate[0], (long long)o.dilation_rate[1]);
        return NULL;
    }
    if ((c.s[0] > 1 || c.s[1] > 1) && (c.d[0] > 1 || c.d[1] > 1)) {
        nb_set_error("%s: strides > 1 with dilation_rate > 1 (Keras refuses them together)",
                     fn);
        return NULL;
    }
    if (o.padding != NB_PAD_VALID && o.padding != NB_PAD_SAME) {
        nb_set_error("%s: padding is NB_PAD_VALID or NB_PAD_SAME, got %d", fn, (int)o.padding);
        return NULL;
    }
    if (o.groups < 0 || (int)o.activation < NB_LINEAR || o.activation > NB_LOG_SOFTMAX) {
        nb_set_error(o.groups < 0 ? "%s: groups must be positive, got %lld"
                                  : "%s: unknown activation %lld", fn,
                     (long long)(o.groups < 0 ? o.groups : (int64_t)o.activation));
        return NULL;
    }
    if (!nn_valid_name(fn, o.name))
        return NULL;
    conv_ctx *k = copy_of(fn, &c, sizeof c);
    if (k)
        k->o.name = NULL;
    return k ? nb_layer_new(&conv_type, k, o.name) : NULL;
}

/* ---- pooling ---- */

typedef struct {
    nb_pooling_opts o;
    int64_t k[2], s[2];
    bool average, global;
} pool_ctx;

static int pool_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                      nb_rng *rng)
{
    (void)rng;
    const pool_ctx *c = l->ctx;
    if (need_image(l, ndim, in))
        return -1;
    if (c->global) {
        out[0] = in[2];
        *out_ndim = 1;
        return 0;
    }
    for (int a = 0; a < 2; a++)
        if ((out[a] = out_len(l, in[a], c->k[a], c->s[a], 1, c->o.padding)) < 0)
            return -1;
    out[2] = in[2];
    *out_ndim = 3;
    return 0;
}

static nb_tensor *pool_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const pool_ctx *c = l->ctx;
    if (c->global)
        return c->average ? nb_global_avg_pool2d(x) : nb_global_max_pool2d(x);
    nb_pool_args a = {.x = x, .kernel = {c->k[0], c->k[1]}, .stride = {c->s[0], c->s[1]},
                      .padding = c->o.padding};
    return c->average ? nb_avg_pool2d_(a) : nb_max_pool2d_(a);
}

static const nb_layer_type max_type = {"MaxPooling2D", "max_pooling2d", pool_build,
                                       pool_forward, nn_free_ctx};
static const nb_layer_type avg_type = {"AveragePooling2D", "average_pooling2d", pool_build,
                                       pool_forward, nn_free_ctx};
static const nb_layer_type gavg_type = {"GlobalAveragePooling2D", "global_average_pooling2d",
                                        pool_build, pool_forward, nn_free_ctx};

static nb_layer *pooling(const char *fn, const nb_layer_type *t, nb_pooling_opts o,
                         bool average, bool global)
{
    pool_ctx c = {.o = o, .average = average, .global = global};
    if (pair(o.pool_size, 2, c.k) || pair(o.strides, 0, c.s)) {
        nb_set_error("%s: pool_size (%lld,%lld) and strides (%lld,%lld) must be positive "
                     "({k}: (k, k); pool_size defaults to 2, strides to pool_size)", fn,
                     (long long)o.pool_size[0], (long long)o.pool_size[1],
                     (long long)o.strides[0], (long long)o.strides[1]);
        return NULL;
    }
    if (!c.s[0])
        c.s[0] = c.k[0], c.s[1] = c.k[1];
    if (o.padding != NB_PAD_VALID && o.padding != NB_PAD_SAME) {
        nb_set_error("%s: padding is NB_PAD_VALID or NB_PAD_SAME, got %d", fn, (int)o.padding);
        return NULL;
    }
    if (!nn_valid_name(fn, o.name))
        return NULL;
    pool_ctx *k = copy_of(fn, &c, sizeof c);
    if (k)
        k->o.name = NULL;
    return k ? nb_layer_new(t, k, o.name) : NULL;
}

nb_layer *nb_max_pooling2d_(nb_pooling_opts o)
{
    return pooling("nb_max_pooling2d", &max_type, o, false, false);
}

nb_layer *nb_average_pooling2d_(nb_pooling_opts o)
{
    return pooling("nb_average_pooling2d", &avg_type, o, true, false);
}

nb_layer *nb_global_average_pooling2d(void)
{
    return pooling("nb_global_average_pooling2d", &gavg_type, (nb_pooling_opts){0}, true, true);
}

/* ---- Dropout ---- */

/* Only in training, with the model's generator: a run repeats from its seed. */
static nb_tensor *dropout_forward(nb_layer *l, nb_tensor *x, bool training)
{
    double rate = *(const double *)l->ctx;
    return training && rate > 0 ? nb_inverted_dropout(x, rate, nb_layer_rng(l)) : x;
}

static const nb_layer_type dropout_type = {"Dropout", "dropout", nn_same_shape_build, dropout_forward,
                                           nn_free_ctx};

nb_layer *nb_dropout(double rate)
{
    if (!(rate >= 0 && rate < 1)) {
        nb_set_error("nb_dropout: rate must be in [0, 1), got %g", rate);
        return NULL;
    }
    double *c = copy_of("nb_dropout", &rate, sizeof rate);
    return c ? nb_layer_new(&dropout_type, c, NULL) : NULL;
}
