/* Layers beyond Dense (nn.h): the layer interface a user layer fills in,
 * next to the built-ins in a Sequential model (summary, parameters, state,
 * training mode, checkpoints); the shape layers Input, Flatten and Reshape;
 * the image layers and Dropout; BatchNormalization, LayerNormalization and
 * Embedding; misuse is an error naming the call. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>

/* ---- a user layer: y = x * scale + shift, per feature, with a counter of
 * training forwards as non-trainable state ---- */

typedef struct {
    int builds;
} scale_ctx;

static int ctx_frees;
static void scale_free(void *ctx)
{
    ctx_frees++;
    free(ctx);
}

static int scale_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                       nb_rng *rng)
{
    scale_ctx *c = nb_layer_ctx(l);
    c->builds++;
    int64_t f = in[ndim - 1];
    nb_tensor *s = nb_full(NB_F32, 1, &f, 1.0);
    float *d = nb_data(s);
    for (int64_t i = 0; i < f; i++)
        d[i] = (float)(0.5 + nb_rng_uniform(rng));
    nb_bump_version(s);
    if (nb_layer_weight(l, "scale", s, true) != 0 ||
        nb_layer_weight(l, "shift", nb_zeros(NB_F32, 1, &f), true) != 1 ||
        nb_layer_weight(l, "count", nb_zeros(NB_F32, 0, NULL), false) != 2)
        return -1;
    *out_ndim = ndim;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    return 0;
}

static nb_tensor *scale_forward(nb_layer *l, nb_tensor *x, bool training)
{
    if (training) { /* state the layer updates itself */
        nb_tensor *count = nb_layer_get(l, 2);
        ((float *)nb_data(count))[0] += 1;
        nb_bump_version(count);
    }
    return nb_add(nb_mul(x, nb_layer_get(l, 0)), nb_layer_get(l, 1));
}

static const nb_layer_type scale_type = {"Scale", "scale", scale_build, scale_forward,
                                         scale_free};

static nb_layer *scale_layer(void)
{
    scale_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    return nb_layer_new(&scale_type, c, NULL);
}

static void test_user_layer(void **state)
{
    (void)state;
    ctx_frees = 0;
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_RELU, .input = 4), scale_layer(),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.05), NB_CATEGORICAL_CROSSENTROPY,
                                NB_ACCURACY), 0);
    /* 4*8+8 + (8+8 trainable, 1 state) + 8*3+3 */
    assert_int_equal(nb_count_params(m), 40 + 17 + 27);
    nb_tensor *const *params = NULL;
    assert_int_equal(nb_model_params(m, &params), 6);
    assert_string_equal(nb_name(params[2]), "scale.scale");
    assert_string_equal(nb_name(params[3]), "scale.shift");
    char *s = summary_of(m);
    if (!strstr(s, "scale (Scale)") || !strstr(s, "(None, 8)") ||
        !strstr(s, "Non-trainable params: 1 (4.00 B)") || !strstr(s, "Trainable params: 83 "))
        fail_msg("summary:\n%s", s);
    free(s);

    /* It trains: the loss falls, the scale moves, the count counts the
     * training forwards only. */
    int64_t n = 64;
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(n, 4)), *y = nb_zeros(NB_F32, NB_SHAPE(n, 3));
    nb_rng r = nb_rng_new(5);
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 3);
        for (int j = 0; j < 4; j++)
            ((float *)nb_data(x))[i * 4 + j] = (float)(nb_rng_uniform(&r) + (j == c ? 2 : 0));
        ((float *)nb_data(y))[i * 3 + c] = 1;
    }
    nb_bump_version(x);
    nb_bump_version(y);
    double before = NAN, after = NAN;
    assert_int_equal(nb_evaluate(m, (nb_dataset){x, y, 0}, .batch_size = 16, .loss = &before), 0);
    float s0 = ((float *)nb_data(params[2]))[0];
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 5, .batch_size = 16);
    assert_non_null(h);
    assert_int_equal(nb_evaluate(m, (nb_dataset){x, y, 0}, .batch_size = 16, .loss = &after), 0);
    assert_true(after < before);
    assert_true(((float *)nb_data(params[2]))[0] != s0);
    nb_tensor *out = nb_predict(m, (nb_dataset){.x = x}, .batch_size = 16);
    assert_non_null(out);
    nb_free(out);
    /* 5 epochs of 4 batches trained; evaluate and predict do not count. */
    char path[] = "/tmp/nabla_test_layers_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(nb_save_weights(m, path), 0);
    nb_tensor *w[1];
    w[0] = nb_zeros(NB_F32, 0, NULL);
    assert_int_equal(nb_set_name(w[0], "scale.count") != NULL, 1);
    assert_int_equal(nb_load_safetensors(path, 1, w, .partial = true), 0);
    assert_true(nb_item(w[0]) == 20);
    nb_free(w[0]);
    remove(path);
    nb_free(x);
    nb_free(y);
    nb_model_free(m);
    assert_int_equal(ctx_frees, 1);
}

/* ---- shapes: Input, Flatten, Reshape ---- */

static void test_shape_layers(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_input(6, 4, 2), nb_flatten(), nb_dense(5),
                                nb_reshape_layer(5, 1), nb_flatten(), nb_dense(2));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), 0);
    char *s = summary_of(m);
    if (!strstr(s, "flatten (Flatten)") || !strstr(s, "(None, 48)") ||
        !strstr(s, "reshape (Reshape)") || !strstr(s, "(None, 5, 1)") ||
        !strstr(s, "flatten_1 (Flatten)") || strstr(s, "InputLayer"))
        fail_msg("summary:\n%s", s);
    free(s);
    assert_int_equal(nb_count_params(m), 48 * 5 + 5 + 5 * 2 + 2);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(NB_F32, 4, (const int64_t[]){3, 6, 4, 2});
    nb_tensor *out = nb_model_forward(m, x);
    assert_non_null(out);
    assert_int_equal(nb_ndim(out), 2);
    assert_int_equal(nb_dim(out, 0), 3);
    assert_int_equal(nb_dim(out, 1), 2);
    /* A flat x is not the declared shape. */
    nb_tensor *flat = nb_zeros(NB_F32, NB_SHAPE(3, 48));
    assert_null(nb_model_forward(m, flat));
    ERR_HAS("nb_model_forward: x is f32 (3,48); the model takes f32 (N,6,4,2)");
    nb_free(flat);
    nb_free(x);
    nb_graph_free(g);
    nb_model_free(m);
}

/* Training mode: off by default; nb_fit's batches see it on, whatever the
 * model's setting, and leave the setting alone. */
static bool seen_training;
static nb_tensor *probe_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)l;
    seen_training |= training;
    return x;
}
static int probe_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                       nb_rng *rng)
{
    (void)l, (void)rng;
    *out_ndim = ndim;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    return 0;
}
static const nb_layer_type probe_type = {"Probe", "probe", probe_build, probe_forward, NULL};

static void test_training_mode(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_dense(2, .input = 3), nb_layer_new(&probe_type, NULL, NULL));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), 0);
    assert_false(nb_model_training(m));
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(4, 3)), *y = nb_zeros(NB_F32, NB_SHAPE(4, 2));
    nb_graph *g = nb_graph_new();
    seen_training = false;
    assert_non_null(nb_model_forward(m, x));
    assert_false(seen_training);
    nb_model_set_training(m, true);
    assert_true(nb_model_training(m));
    assert_non_null(nb_model_forward(m, x));
    assert_true(seen_training);
    nb_model_set_training(m, false);
    seen_training = false;
    nb_tensor *pr = nb_predict(m, (nb_dataset){.x = x}, .batch_size = 2);
    assert_non_null(pr);
    nb_free(pr);
    assert_false(seen_training);
    assert_non_null(nb_fit(m, (nb_dataset){x, y, 0}));
    assert_true(seen_training);
    assert_false(nb_model_training(m));
    nb_graph_free(g);
    nb_free(x);
    nb_free(y);
    nb_model_free(m);
}

/* ---- misuse ---- */

static int failing_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                         nb_rng *rng)
{
    (void)l, (void)ndim, (void)in, (void)out_ndim, (void)out, (void)rng;
    return nb_set_error("my layer wants 3 axes");
}
static const nb_layer_type failing_type = {"Failing", "failing", failing_build, probe_forward,
                                           NULL};

static void test_misuse(void **state)
{
    (void)state;
    assert_null(nb_layer_new(NULL, NULL, NULL));
    ERR_HAS("nb_layer_new: type is NULL");
    static const nb_layer_type no_forward = {"X", "x", probe_build, NULL, NULL};
    assert_null(nb_layer_new(&no_forward, NULL, NULL));
    ERR_HAS("nb_layer_new: type->forward is NULL");
    /* ctx is freed when the layer cannot be made */
    ctx_frees = 0;
    static const nb_layer_type bad_name = {"", "x", probe_build, probe_forward, scale_free};
    assert_null(nb_layer_new(&bad_name, calloc(1, 8), NULL));
    ERR_HAS("nb_layer_new: type->type");
    assert_int_equal(ctx_frees, 1);

    assert_null(nb_input(3, 0));
    ERR_HAS("nb_input: dimension 2 is 0");
    assert_null(nb_activation_layer((nb_activation)99));
    ERR_HAS("nb_activation_layer: activation 99 is not an nb_activation");
    assert_null(nb_reshape_layer(-1));
    ERR_HAS("nb_reshape_layer: dimension 1 is -1");

    nb_model *m = nb_sequential(nb_dense(2, .input = 3), nb_input(3));
    assert_null(m);
    ERR_HAS("nb_input comes first");

    m = nb_sequential(nb_input(4), nb_dense(6), nb_reshape_layer(4, 2));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), -1);
    ERR_HAS("reshapes 6 elements per sample into 8");
    nb_model_free(m);

    m = nb_sequential(nb_input(4), nb_layer_new(&failing_type, NULL, NULL));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 1), -1);
    ERR_HAS("nb_build: my layer wants 3 axes");
    nb_model_free(m);

    m = nb_sequential(nb_input(4), nb_dense(3));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 5, 1), -1);
    ERR_HAS("nb_build: features is 5");
    assert_int_equal(nb_build(m, 0, 1), 0);
    nb_clear_error();
    nb_layer *l = scale_layer();
    assert_int_equal(nb_layer_weight(NULL, "w", nb_zeros(NB_F32, 0, NULL), true), -1);
    ERR_HAS("nb_layer_weight: the layer is NULL");
    nb_clear_error();
    assert_int_equal(nb_layer_weight(l, "w", nb_zeros(NB_F32, 0, NULL), true), 0);
    assert_int_equal(nb_layer_weight(l, NULL, nb_zeros(NB_F32, 0, NULL), true), -1);
    ERR_HAS("nb_layer_weight: name is NULL");
    nb_clear_error();
    assert_null(nb_layer_get(l, 3));
    ERR_HAS("nb_layer_get: layer '' has 1 weights, not 4");
    assert_null(nb_layer_rng(l));
    nb_layer_free(l);
    nb_model_free(m);
}

/* ---- image layers and Dropout ---- */

/* The Keras MNIST convnet: its summary's shapes and counts are Keras's. */
static nb_model *convnet(double rate)
{
    return nb_sequential(nb_input(28, 28, 1), nb_conv2d(32, {3, 3}, .activation = NB_RELU),
                         nb_max_pooling2d({2, 2}), nb_conv2d(64, {3}, .activation = NB_RELU),
                         nb_max_pooling2d(), nb_flatten(), nb_dropout(rate),
                         nb_dense(10, .activation = NB_SOFTMAX));
}

static void test_convnet_shapes(void **state)
{
    (void)state;
    nb_model *m = convnet(0.5);
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 7), 0);
    assert_int_equal(nb_count_params(m), 34826);
    char *s = summary_of(m);
    const char *want[] = {"conv2d (Conv2D)", "(None, 26, 26, 32)", "320",
                          "│ max_pooling2d (MaxPooling2D)    │ (None, 13, 13, 32)     │",
                          "(None, 11, 11, 64)", "18,496", "(None, 5, 5, 64)",
                          "flatten (Flatten)", "(None, 1600)", "dropout (Dropout)",
                          "16,010", "Total params: 34,826 (136.04 KB)"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        if (!strstr(s, want[i]))
            fail_msg("summary lacks \"%s\":\n%s", want[i], s);
    free(s);
    nb_tensor *const *p;
    assert_int_equal(nb_model_params(m, &p), 6);
    assert_string_equal(nb_name(p[0]), "conv2d.kernel");
    assert_int_equal(nb_ndim(p[0]), 4);
    assert_int_equal(nb_dim(p[0], 2), 1);
    assert_int_equal(nb_dim(p[2], 2), 32); /* HWIO */
    /* Keras's Glorot bound for a conv kernel: fans are the field times the channels. */
    double lim = sqrt(6.0 / (9 * 32 + 9 * 64)), top = 0;
    for (int64_t i = 0; i < nb_numel(p[2]); i++)
        top = fmax(top, fabs(((float *)nb_data(p[2]))[i]));
    assert_true(top <= lim && top > 0.95 * lim);
    nb_model_free(m);

    /* SAME padding and strides, average and global pooling. */
    m = nb_sequential(nb_input(9, 7, 3), nb_conv2d(4, {3, 2}, .strides = {2}, .padding = NB_PAD_SAME),
                      nb_average_pooling2d({2}, .padding = NB_PAD_SAME),
                      nb_conv2d(6, {1}, .groups = 2), nb_global_average_pooling2d());
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 1), 0);
    s = summary_of(m);
    if (!strstr(s, "(None, 5, 4, 4)") || !strstr(s, "(None, 3, 2, 4)") ||
        !strstr(s, "(None, 3, 2, 6)") || !strstr(s, "(None, 6)") ||
        !strstr(s, "│ global_average_pooling2d        │ (None, 6)") || /* wrapped, as Keras */
        !strstr(s, "│ (GlobalAveragePooling2D)        │                        │"))
        fail_msg("summary:\n%s", s);
    free(s);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(NB_F32, 4, (const int64_t[]){2, 9, 7, 3});
    nb_tensor *out = nb_model_forward(m, x);
    assert_non_null(out);
    assert_int_equal(nb_ndim(out), 2);
    assert_int_equal(nb_dim(out, 1), 6);
    nb_free(x);
    nb_graph_free(g);
    nb_model_free(m);
}

/* A small convnet in f64, gradient-checked through the whole model: the
 * loss against its weights, and against its input. */

static nb_tensor *loss_of_x(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    model_ctx *c = ctx;
    return nb_model_loss(c->m, nb_model_forward(c->m, x[0]), c->y);
}

static void test_convnet_gradcheck(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_input(6, 6, 2), nb_conv2d(3, {3}, .activation = NB_TANH),
                                nb_max_pooling2d({2}), nb_conv2d(2, {2}, .padding = NB_PAD_SAME),
                                nb_average_pooling2d({2}), nb_flatten(),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 3), 0);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
    nb_rng r = nb_rng_new(11);
    model_ctx c = {m, nb_randn(NB_F64, 4, (const int64_t[]){2, 6, 6, 2}, &r),
                nb_zeros(NB_F64, NB_SHAPE(2, 3))};
    nb_set(c.y, NB_AT(0, 1), 1.0);
    nb_set(c.y, NB_AT(1, 2), 1.0);
    if (!model_gradcheck(&c, 6))
        fail_msg("the convnet's weights fail gradcheck");
    nb_check_report rep;
    nb_set_requires_grad(c.x, true);
    if (!nb_gradcheck(loss_of_x, &c, 1, &c.x, NULL, &rep)) {
        nb_check_report_print(&rep, stderr);
        fail_msg("the convnet's input fails gradcheck");
    }
    nb_free(c.x);
    nb_free(c.y);
    nb_model_free(m);
}

/* Dropout: identity in inference; in training about rate of the elements
 * zeroed and the rest scaled, the masks repeating from the build's seed. */
static void test_dropout(void **state)
{
    (void)state;
    nb_model *m[2];
    for (int k = 0; k < 2; k++) {
        m[k] = nb_sequential(nb_input(4000), nb_dropout(0.25));
        assert_non_null(m[k]);
        assert_int_equal(nb_build(m[k], 0, 42), 0);
    }
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_full(NB_F32, NB_SHAPE(2, 4000), 3.0);
    nb_tensor *y = nb_model_forward(m[0], x);
    assert_true(y == x); /* inference: x itself */
    nb_model_set_training(m[0], true);
    nb_model_set_training(m[1], true);
    nb_tensor *a = nb_contiguous(nb_model_forward(m[0], x));
    nb_tensor *b = nb_contiguous(nb_model_forward(m[1], x));
    nb_tensor *c = nb_contiguous(nb_model_forward(m[0], x));
    assert_non_null(a);
    assert_non_null(c);
    assert_true(same_bits(a, b));  /* the same seed, the same mask */
    assert_false(same_bits(a, c)); /* the next mask differs */
    int64_t zeros = 0;
    for (int64_t i = 0; i < nb_numel(a); i++) {
        float v = ((float *)nb_data(a))[i];
        zeros += v == 0;
        assert_true(v == 0 || v == (float)(3.0 * (1 / 0.75)));
    }
    assert_true(zeros > 1700 && zeros < 2300); /* 2000 expected; sd about 27 */
    assert_null(nb_dropout(1.0));
    ERR_HAS("nb_dropout: rate must be in [0, 1), got 1");
    nb_free(x);
    nb_graph_free(g);
    nb_model_free(m[0]);
    nb_model_free(m[1]);
}

static void test_image_misuse(void **state)
{
    (void)state;
    assert_null(nb_conv2d(0, {3}));
    ERR_HAS("nb_conv2d: filters must be at least 1, got 0");
    assert_null(nb_conv2d(8));
    ERR_HAS("kernel_size is required");
    assert_null(nb_conv2d(8, {3}, .strides = {2}, .dilation_rate = {2}));
    ERR_HAS("nb_conv2d: strides > 1 with dilation_rate > 1");
    assert_null(nb_max_pooling2d({-1}));
    ERR_HAS("nb_max_pooling2d: pool_size (-1,0)");
    assert_null(nb_average_pooling2d({2}, .padding = NB_PAD_EXPLICIT));
    ERR_HAS("nb_average_pooling2d: padding is NB_PAD_VALID or NB_PAD_SAME");
    nb_model *m = nb_sequential(nb_dense(4, .input = 3), nb_conv2d(2, {3}));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 0), -1);
    ERR_HAS("nb_build: layer 'conv2d' (Conv2D) takes images (height, width, channels), got (4)");
    nb_model_free(m);
    m = nb_sequential(nb_input(4, 4, 3), nb_conv2d(2, {5}));
    assert_int_equal(nb_build(m, 0, 0), -1);
    ERR_HAS("layer 'conv2d' (Conv2D): a window of 5 (dilation 1) does not fit an input of 4");
    nb_model_free(m);
    m = nb_sequential(nb_input(4, 4, 3), nb_conv2d(4, {1}, .groups = 2));
    assert_int_equal(nb_build(m, 0, 0), -1);
    ERR_HAS("groups (2) must divide the input's channels (3) and the filters (4)");
    nb_model_free(m);
}

/* ---- normalisation and embedding ---- */

static void test_batch_normalization(void **state)
{
    (void)state;
    /* Keras's Conv2D + BatchNormalization summary: 54,506 parameters, 64 of them state. */
    nb_model *m = nb_sequential(nb_input(28, 28, 1), nb_conv2d(32, {3}, .no_bias = true),
                                nb_batch_normalization(), nb_activation_layer(NB_RELU),
                                nb_max_pooling2d(), nb_flatten(),
                                nb_dense(10, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 1), 0);
    char *s = summary_of(m);
    if (!strstr(s, "│ batch_normalization             │ (None, 26, 26, 32)     │           128 │\n"
                   "│ (BatchNormalization)            │                        │               │\n") ||
        !strstr(s, "activation (Activation)") ||
        !strstr(s, "Total params: 54,506 (212.91 KB)") ||
        !strstr(s, "Trainable params: 54,442 (212.66 KB)") ||
        !strstr(s, "Non-trainable params: 64 (256.00 B)"))
        fail_msg("summary:\n%s", s);
    free(s);
    nb_model_free(m);

    /* The statistics: in training the batch's, per channel; the moving ones
     * move by 1 - momentum; inference uses them. */
    m = nb_sequential(nb_input(2, 3), nb_batch_normalization(.momentum = 0.9));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 1), 0);
    assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
    nb_graph *g = nb_graph_new();
    double v[] = {1, 10, 100, 3, 20, 300, 5, 30, 500, 7, 40, 700};
    nb_tensor *x = nb_zeros(NB_F64, 3, (const int64_t[]){2, 2, 3});
    for (int i = 0; i < 12; i++)
        ((double *)nb_data(x))[i] = v[i];
    nb_bump_version(x);
    nb_model_set_training(m, true);
    nb_tensor *y = nb_contiguous(nb_model_forward(m, x));
    assert_non_null(y);
    for (int c = 0; c < 3; c++) {
        double mean = 0, sq = 0;
        for (int i = 0; i < 4; i++) {
            double t = ((double *)nb_data(y))[i * 3 + c];
            mean += t / 4;
            sq += t * t / 4;
        }
        assert_true(fabs(mean) < 1e-12);
        assert_true(fabs(sq - 1) < 1e-3); /* var / (var + 1e-3) */
    }
    nb_tensor *mm, *mv;
    char path[] = "/tmp/nabla_test_bn_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(nb_save_weights(m, path), 0);
    mm = nb_zeros(NB_F64, NB_SHAPE(3));
    mv = nb_zeros(NB_F64, NB_SHAPE(3));
    assert_non_null(nb_set_name(mm, "batch_normalization.moving_mean"));
    assert_non_null(nb_set_name(mv, "batch_normalization.moving_variance"));
    nb_tensor *st[2] = {mm, mv};
    assert_int_equal(nb_load_safetensors(path, 2, st, .partial = true), 0);
    remove(path);
    /* channel 0: mean 4, population variance 5: moving 0.1 * 4 and 0.9 + 0.1 * 5 */
    assert_true(fabs(nb_get_flat(mm, 0) - 0.4) < 1e-6);
    assert_true(fabs(nb_get_flat(mv, 0) - 1.4) < 1e-6);
    nb_model_set_training(m, false);
    nb_tensor *z = nb_contiguous(nb_model_forward(m, x));
    double want = (1 - 0.4) / sqrt(1.4 + 1e-3);
    assert_true(fabs(((double *)nb_data(z))[0] - want) < 1e-6);
    nb_free(mm);
    nb_free(mv);
    nb_free(x);
    nb_graph_free(g);
    nb_model_free(m);

    /* Gradient-checked in training, through the batch statistics. */
    m = nb_sequential(nb_input(4), nb_dense(3, .activation = NB_TANH), nb_batch_normalization(),
                      nb_layer_normalization(), nb_dense(2, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 5), 0);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
    nb_model_set_training(m, true);
    nb_rng r = nb_rng_new(2);
    model_ctx c = {m, nb_randn(NB_F64, NB_SHAPE(5, 4), &r), nb_zeros(NB_F64, NB_SHAPE(5, 2))};
    for (int i = 0; i < 5; i++)
        nb_set(c.y, NB_AT(i, i % 2), 1.0);
    if (!model_gradcheck(&c, 8))
        fail_msg("batch and layer normalisation fail gradcheck");
    nb_free(c.x);
    nb_free(c.y);
    nb_model_free(m);
    assert_null(nb_batch_normalization(.momentum = 1));
    ERR_HAS("nb_batch_normalization: momentum must be in [0, 1)");
    assert_null(nb_layer_normalization(.momentum = 0.5));
    ERR_HAS("nb_layer_normalization: momentum is BatchNormalization's");
}

static void test_embedding(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_input(20), nb_embedding(1000, 16), nb_flatten(), nb_dense(1));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 1), 0);
    char *s = summary_of(m);
    if (!strstr(s, "embedding (Embedding)") || !strstr(s, "(None, 20, 16)") ||
        !strstr(s, "16,000"))
        fail_msg("summary:\n%s", s);
    free(s);
    nb_model_free(m);
    /* Rows of the table; repeated indices add their gradients. */
    m = nb_sequential(nb_input(3), nb_embedding(5, 2));
    assert_int_equal(nb_build(m, 0, 1), 0);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(2, 3));
    float idx[] = {4, 0, 4, 1, 1, 2};
    for (int i = 0; i < 6; i++)
        ((float *)nb_data(x))[i] = idx[i];
    nb_bump_version(x);
    nb_tensor *const *p;
    nb_model_params(m, &p);
    nb_tensor *y = nb_model_forward(m, x);
    assert_non_null(y);
    assert_int_equal(nb_ndim(y), 3);
    assert_true(nb_get(y, 3, (const int64_t[]){1, 2, 1}) == nb_get(p[0], 2, (const int64_t[]){2, 1}));
    assert_int_equal(nb_backward(nb_sum(y)), 0);
    assert_true(nb_get(nb_grad_of(p[0]), 2, (const int64_t[]){4, 0}) == 2);
    assert_true(nb_get(nb_grad_of(p[0]), 2, (const int64_t[]){3, 0}) == 0);
    ((float *)nb_data(x))[0] = 5; /* out of range */
    nb_bump_version(x);
    assert_null(nb_model_forward(m, x));
    ERR_HAS("nb_index_select");
    nb_clear_error();
    assert_null(nb_embedding(0, 4));
    ERR_HAS("nb_embedding: input_dim and output_dim must be at least 1, got 0 and 4");
    nb_free(x);
    nb_graph_free(g);
    nb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_layer),
        cmocka_unit_test(test_shape_layers),
        cmocka_unit_test(test_training_mode),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_convnet_shapes),
        cmocka_unit_test(test_convnet_gradcheck),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_image_misuse),
        cmocka_unit_test(test_batch_normalization),
        cmocka_unit_test(test_embedding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
