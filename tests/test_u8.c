/* The u8 storage dtype and data sets kept in it: u8 tensors are made, read,
 * printed, drawn, saved and loaded like the others; ops refuse them
 * (NB_ERR_DTYPE) except nb_cast, and so do gradients, gradcheck, optimizers
 * and models; nb_fit, nb_evaluate and nb_predict on u8 data with a scale
 * give exactly what the same data converted to floats beforehand gives
 * (bit for bit), without ever holding a float copy of the data set. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nabla/nabla.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define F 784 /* features: nb_scale_images takes (N,784) */

/* The error code and message of the last error. */
static void expect_code(nb_error_code code, const char *want)
{
    assert_int_equal(nb_last_error_code(), code);
    if (want && !strstr(nb_last_error(), want))
        fail_msg("message \"%s\" lacks \"%s\"", nb_last_error(), want);
}

/* A u8 (n, F) tensor of bytes drawn from seed. */
static nb_tensor *random_bytes(int64_t n, uint64_t seed)
{
    nb_rng rng = nb_rng_new(seed);
    nb_tensor *x = nb_zeros(NB_U8, NB_SHAPE(n, F));
    assert_non_null(x);
    uint8_t *p = nb_data(x);
    for (int64_t i = 0; i < n * F; i++)
        p[i] = (uint8_t)nb_rng_below(&rng, 256);
    return x;
}

/* One-hot (n, 3) targets in dtype, the class of row i drawn from seed. */
static nb_tensor *random_targets(int64_t n, nb_dtype dtype, uint64_t seed)
{
    nb_rng rng = nb_rng_new(seed);
    nb_tensor *y = nb_zeros(dtype, NB_SHAPE(n, 3));
    for (int64_t i = 0; i < n; i++)
        nb_set(y, NB_AT(i, (int64_t)nb_rng_below(&rng, 3)), 1.0);
    return y;
}

/* x as a heap tensor of dtype, each byte b becoming b * scale (in double,
 * then rounded): the conversion done beforehand, by hand. */
static nb_tensor *converted(const nb_tensor *x, nb_dtype dtype, double scale)
{
    nb_tensor *c = nb_zeros(dtype, nb_ndim(x), nb_shape(x));
    const uint8_t *b = nb_data(x);
    for (int64_t i = 0; i < nb_numel(x); i++) {
        if (dtype == NB_F64)
            ((double *)nb_data(c))[i] = (double)b[i] * scale;
        else
            ((float *)nb_data(c))[i] = (float)((double)b[i] * scale);
    }
    return c;
}

static nb_model *model_of(nb_dtype dtype, uint64_t seed)
{
    nb_model *m = nb_sequential(nb_dense(16, .activation = NB_RELU, .input = F),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, F, seed), 0);
    if (dtype == NB_F64)
        assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.01), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY),
                     0);
    return m;
}

/* ---- the 256 byte values ---- */

/* A model whose output is its input: one dense layer, identity kernel, no
 * bias (x @ I is exact: every other product is +0). */
static nb_model *identity_model(nb_dtype dtype)
{
    nb_model *m = nb_sequential(nb_dense(F, .input = F, .no_bias = true));
    assert_int_equal(nb_build(m, F, 1), 0);
    if (dtype == NB_F64)
        assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
    nb_tensor *const *p;
    assert_int_equal(nb_model_params(m, &p), 1);
    bool prev = nb_set_grad_enabled(false); /* writes to a parameter */
    for (int64_t i = 0; i < F; i++)
        for (int64_t j = 0; j < F; j++)
            assert_int_equal(nb_set(p[0], NB_AT(i, j), i == j), 0);
    nb_set_grad_enabled(prev);
    return m;
}

static void test_every_byte_gives_the_same_float(void **state)
{
    (void)state;
    /* The arithmetic: nb_scale_images's (float)(b / 255.0), the old
     * loader's (float)b / 255.0f and nb_fit's (float)(b * (1 / 255.0)) are
     * one float for every byte. */
    for (int b = 0; b < 256; b++) {
        volatile double v = b;
        float scale_images = (float)(v / 255.0), loader = (float)b / 255.0f;
        float fit = (float)(v * (1 / 255.0));
        assert_memory_equal(&scale_images, &loader, sizeof(float));
        assert_memory_equal(&scale_images, &fit, sizeof(float));
    }
    /* Through the library: a row holding every byte value (three times),
     * converted by nb_predict, against nb_scale_images. */
    nb_tensor *x = nb_zeros(NB_U8, NB_SHAPE(2, F));
    for (int64_t j = 0; j < F; j++) {
        nb_set(x, NB_AT(0, j), (double)(j % 256));
        nb_set(x, NB_AT(1, j), (double)(255 - j % 256));
    }
    nb_tensor *want = nb_scale_images(x);
    assert_non_null(want);
    nb_model *m = identity_model(NB_F32);
    nb_tensor *got = nb_predict(m, (nb_dataset){x, NULL, .scale = 1 / 255.0});
    assert_non_null(got);
    assert_true(same_bits(got, want));
    nb_free(got);
    /* Scale 0 means 1: the bytes themselves; any other scale multiplies. */
    got = nb_predict(m, (nb_dataset){.x = x}, .batch_size = 1);
    for (int64_t j = 0; j < F; j++)
        assert_true(nb_get(got, NB_AT(0, j)) == (double)(j % 256));
    nb_free(got);
    got = nb_predict(m, (nb_dataset){x, NULL, .scale = -0.5});
    assert_true(nb_get(got, NB_AT(1, 3)) == -126.0);
    nb_free(got);
    nb_tensor *none = nb_zeros(NB_U8, NB_SHAPE(0, F)); /* no rows: no outputs */
    got = nb_predict(m, (nb_dataset){none, NULL, .scale = 1 / 255.0});
    assert_non_null(got);
    assert_int_equal(nb_dim(got, 0), 0);
    assert_int_equal(nb_dim(got, 1), F);
    nb_free(got);
    nb_free(none);
    nb_model_free(m);
    /* f64: b * scale in double, exactly. */
    m = identity_model(NB_F64);
    got = nb_predict(m, (nb_dataset){x, NULL, .scale = 1 / 255.0});
    nb_tensor *want64 = converted(x, NB_F64, 1 / 255.0);
    assert_true(same_bits(got, want64));
    nb_free(got);
    nb_free(want64);
    nb_model_free(m);
    nb_free(want);
    nb_free(x);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- u8 tensors ---- */

static void test_u8_tensors(void **state)
{
    (void)state;
    assert_string_equal(nb_dtype_name(NB_U8), "u8");
    assert_int_equal(nb_dtype_size(NB_U8), 1);
    nb_tensor *z = nb_zeros(NB_U8, NB_SHAPE(2, 3)), *o = nb_ones(NB_U8, NB_SHAPE(4));
    nb_tensor *f = nb_full(NB_U8, NB_SHAPE(2), 255), *s = nb_scalar(NB_U8, 7);
    nb_tensor *r = nb_arange(NB_U8, 250, 256, 1), *d = nb_arange(NB_U8, 9, 0, -3);
    const uint8_t bytes[6] = {0, 1, 2, 128, 254, 255};
    nb_tensor *a = nb_from_array(NB_U8, NB_SHAPE(2, 3), bytes);
    assert_non_null(z), assert_non_null(o), assert_non_null(f), assert_non_null(s);
    assert_non_null(r), assert_non_null(d), assert_non_null(a);
    assert_int_equal(nb_dtype_of(a), NB_U8);
    assert_int_equal(nb_numel(a), 6);
    assert_true(nb_is_contiguous(a));
    assert_memory_equal(nb_data(a), bytes, 6);
    assert_true(nb_get(a, NB_AT(1, 2)) == 255.0);
    assert_true(nb_get_flat(a, 3) == 128.0);
    assert_true(nb_item(s) == 7.0);
    assert_true(nb_get_flat(o, 3) == 1.0 && nb_get_flat(z, 5) == 0.0 && nb_get_flat(f, 1) == 255);
    assert_int_equal(nb_numel(r), 6);
    assert_true(nb_get_flat(r, 5) == 255.0);
    assert_int_equal(nb_numel(d), 3);
    assert_true(nb_get_flat(d, 2) == 3.0);
    double all[6];
    assert_int_equal(nb_to_doubles(a, all), 0);
    assert_true(all[4] == 254.0);
    assert_int_equal(nb_find_nonfinite(a), -1);
    /* Writes: whole numbers in [0, 255] only. */
    assert_int_equal(nb_set(z, NB_AT(0, 1), 200), 0);
    assert_true(nb_get(z, NB_AT(0, 1)) == 200.0);
    const double bad[] = {256, -1, 1.5, NAN, INFINITY};
    for (int i = 0; i < 5; i++) {
        nb_clear_error();
        assert_int_equal(nb_set(z, NB_AT(0, 0), bad[i]), -1);
        expect_code(NB_ERR_INVALID, "nb_set: u8 tensors hold whole numbers in [0, 255]");
        assert_null(nb_full(NB_U8, NB_SHAPE(2), bad[i]));
        expect_code(NB_ERR_INVALID, "nb_full: u8 tensors hold whole numbers in [0, 255]");
    }
    assert_true(nb_get(z, NB_AT(0, 0)) == 0.0);
    assert_null(nb_scalar(NB_U8, 300));
    expect_code(NB_ERR_INVALID, "nb_scalar: u8 tensors hold whole numbers");
    assert_null(nb_arange(NB_U8, 250, 257, 1));
    expect_code(NB_ERR_INVALID, "nb_arange: u8 tensors hold whole numbers in [0, 255]");
    assert_null(nb_arange(NB_U8, 0, 2, 0.5));
    expect_code(NB_ERR_INVALID, "nb_arange");
    nb_rng rng = nb_rng_new(1);
    assert_null(nb_rand(NB_U8, NB_SHAPE(2), &rng));
    expect_code(NB_ERR_DTYPE, "nb_rand: draws f32 or f64, not u8");
    assert_null(nb_randn(NB_U8, NB_SHAPE(2), &rng));
    expect_code(NB_ERR_DTYPE, "nb_randn");
    /* Copies and in-place assignment between u8 tensors. */
    nb_tensor *c = nb_clone(a);
    assert_true(same_bits(c, a));
    assert_int_equal(nb_assign(c, z), 0);
    assert_true(same_bits(c, z));
    assert_true(nb_allclose(a, a, 0, 0));
    nb_tensor *f32 = nb_zeros(NB_F32, NB_SHAPE(2, 3));
    assert_int_equal(nb_assign(f32, a), -1);
    expect_code(NB_ERR_DTYPE, "nb_assign: dtypes differ: dst f32 (2,3), src u8 (2,3)");
    /* Printing: whole numbers without a point, as PyTorch prints uint8. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    assert_int_equal(nb_print(a, mem), 0);
    fclose(mem);
    assert_string_equal(buf, "tensor([[  0,   1,   2],\n        [128, 254, 255]], shape=(2,3), "
                             "dtype=u8)\n");
    free(buf);
    /* A picture of it: a data node labelled with its dtype. */
    char *dot = nb_dot_string(nb_set_name(a, "pixels"), NULL);
    assert_non_null(dot);
    assert_non_null(strstr(dot, "(2,3) u8"));
    nb_dot_free(dot);
    nb_tensor *ts[] = {z, o, f, s, r, d, a, c, f32};
    for (int i = 0; i < 9; i++)
        nb_free(ts[i]);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- nb_cast, and everything that refuses u8 ---- */

static nb_tensor *f_sum(nb_tensor *const x[], int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_sum(x[0]);
}

static int u8_rule(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    nb_shape_same(out, x, n, attr);
    out->dtype = NB_U8;
    return 0;
}
static void copy_f32(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n, (void)attr;
    memcpy(y->data, x[0].data, (size_t)y->numel * 4);
}
static const nb_op to_u8 = {.name = "to_u8", .arity = 1, .shape = u8_rule,
                            .forward = {[NB_F32] = copy_f32}, .no_gradient = true};

static void test_cast_and_refusals(void **state)
{
    (void)state;
    const uint8_t bytes[6] = {0, 1, 2, 128, 254, 255};
    nb_tensor *u = nb_from_array(NB_U8, NB_SHAPE(2, 3), bytes);
    nb_tensor *w = nb_ones(NB_F32, NB_SHAPE(2, 3));
    nb_graph *g = nb_graph_new();
    /* nb_cast converts, exactly, to f32 and f64; nothing casts to u8. */
    nb_tensor *c32 = nb_cast(u, NB_F32), *c64 = nb_cast(u, NB_F64);
    assert_int_equal(nb_dtype_of(c32), NB_F32);
    assert_int_equal(nb_dtype_of(c64), NB_F64);
    for (int i = 0; i < 6; i++) {
        assert_true(((const float *)nb_data(c32))[i] == (float)bytes[i]);
        assert_true(((const double *)nb_data(c64))[i] == (double)bytes[i]);
    }
    assert_false(nb_requires_grad(c32));
    nb_clear_error();
    assert_null(nb_cast(w, NB_U8));
    expect_code(NB_ERR_DTYPE, "nb_cast: cannot cast to u8 (x f32 (2,3))");
    assert_null(nb_cast(u, NB_U8));
    expect_code(NB_ERR_DTYPE, "nb_cast: cannot cast to u8");
    /* Every other built-in op refuses a u8 input, at any position. */
    int ops = 0;
    for (const nb_op *const *op = nb_builtin_ops(); *op; op++) {
        if (strcmp((*op)->name, "cast") == 0)
            continue;
        int n = (*op)->arity > 0 ? (*op)->arity : 2;
        for (int k = 0; k < n; k++) {
            nb_tensor *x[NB_MAX_INPUTS];
            for (int i = 0; i < n; i++)
                x[i] = i == k ? u : w;
            char want[160];
            snprintf(want, sizeof want, "nb_%s: input %d is u8, which ops do not compute in; "
                     "convert with nb_cast(x, NB_F32)", (*op)->name, k + 1);
            nb_clear_error();
            assert_null(nb_apply(*op, x, n, NULL));
            expect_code(NB_ERR_DTYPE, want);
        }
        ops++;
    }
    assert_true(ops > 30);
    /* The public functions, views and compositions among them. */
    nb_clear_error();
    assert_null(nb_add(u, w));
    expect_code(NB_ERR_DTYPE, "nb_add: input 1 is u8, which ops do not compute in; convert "
                              "with nb_cast(x, NB_F32)");
    assert_null(nb_matmul(w, nb_reshape(u, NB_SHAPE(3, 2))));
    expect_code(NB_ERR_DTYPE, "nb_reshape: input 1 is u8");
    assert_null(nb_slice(u, 0, 0, 1, 1));
    expect_code(NB_ERR_DTYPE, "nb_slice: input 1 is u8");
    nb_tensor *refused[] = {nb_relu(u), nb_square(u), nb_sum(u), nb_softmax(u, -1),
                            nb_scalar_like(u, 1), nb_mse(u, u), nb_categorical_accuracy(u, w),
                            nb_detach(u), nb_transpose(u, 0, 1)};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_null(refused[i]);
    nb_clear_error();
    assert_null(nb_softmax(u, -1));
    expect_code(NB_ERR_DTYPE, "is u8, which ops do not compute in");
    /* A user op whose shape rule gives u8. */
    nb_clear_error();
    assert_null(nb_apply(&to_u8, &w, 1, NULL));
    expect_code(NB_ERR_DTYPE, "to_u8: shape rule gave dtype u8, which ops do not compute in");
    /* Gradients: u8 never requires grad. */
    nb_clear_error();
    assert_null(nb_set_requires_grad(u, true));
    expect_code(NB_ERR_DTYPE, "nb_set_requires_grad: the tensor is u8, which never requires grad");
    assert_non_null(nb_set_requires_grad(u, false));
    assert_null(nb_param(u));
    expect_code(NB_ERR_DTYPE, "nb_param: the tensor is u8; parameters are f32 or f64");
    assert_false(nb_requires_grad(u));
    nb_clear_error();
    assert_int_equal(nb_backward(u), -1);
    expect_code(NB_ERR_INVALID, "nb_backward: the tensor (2,3) does not require grad");
    nb_tensor *p = nb_param(nb_ones(NB_F32, NB_SHAPE(2, 3)));
    nb_tensor *loss = nb_sum(nb_mul(p, c32)), *gr[1];
    nb_clear_error();
    assert_int_equal(nb_grad(loss, .n = 1, .inputs = &u, .grads = gr), -1);
    expect_code(NB_ERR_INVALID, "nb_grad: input 1 does not require grad");
    nb_clear_error();
    assert_int_equal(nb_backward(loss, .seed = u), -1);
    expect_code(NB_ERR_DTYPE, "seed u8 (2,3) does not match output f32 ()");
    nb_check_report rep;
    assert_false(nb_gradcheck(f_sum, NULL, 1, &u, NULL, &rep));
    assert_non_null(strstr(rep.message, "nb_gradcheck: input 1 is u8, which has no gradient"));
    assert_false(nb_gradgradcheck(f_sum, NULL, 1, &u, NULL, &rep));
    assert_non_null(strstr(rep.message, "input 1 is u8"));
    nb_graph *current = nb_graph_current();
    assert_int_equal(nb_check_graph(f_sum, NULL, 1, &u, NULL, "/tmp/nb_test_u8_never.dot"), -1);
    expect_code(NB_ERR_DTYPE, "input 1 is u8");
    assert_ptr_equal(nb_graph_current(), current);
    /* Optimizers take f32 and f64 parameters only. */
    nb_optimizer *opt = nb_sgd();
    nb_tensor *params[2] = {p, u};
    nb_clear_error();
    assert_int_equal(nb_optimizer_step(opt, 2, params), -1);
    expect_code(NB_ERR_DTYPE, "nb_optimizer_step: params[1] (2,3) is u8; parameters are f32 or "
                              "f64");
    nb_optimizer_free(opt);
    /* Models: not in u8, nor forward on it (the message says what to do). */
    nb_model *m = model_of(NB_F32, 1);
    nb_clear_error();
    assert_int_equal(nb_model_set_dtype(m, NB_U8), -1);
    expect_code(NB_ERR_DTYPE, "nb_model_set_dtype: dtype u8 (3) is not NB_F32 or NB_F64");
    nb_tensor *img = nb_zeros(NB_U8, NB_SHAPE(2, F));
    nb_clear_error();
    assert_null(nb_model_forward(m, img));
    expect_code(NB_ERR_DTYPE, "nb_model_forward: x is u8 (2,784); the model takes f32 (N,784) "
                              "(nb_cast u8 data, or give it to nb_fit, nb_evaluate or nb_predict "
                              "in an nb_dataset)");
    /* The one way in, by hand: cast then scale. */
    nb_tensor *out = nb_model_forward(m, nb_mul(nb_cast(img, NB_F32),
                                                nb_scalar_like(c32, 1 / 255.0)));
    assert_non_null(out);
    nb_model_free(m);
    nb_graph_free(g);
    nb_free(img);
    nb_free(p);
    nb_free(u);
    nb_free(w);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- safetensors ---- */

static void test_u8_safetensors(void **state)
{
    (void)state;
    char path[] = "/tmp/nb_test_u8_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    nb_tensor *x = random_bytes(3, 7), *w = nb_full(NB_F32, NB_SHAPE(2), 0.5);
    nb_set_name(x, "images"), nb_set_name(w, "w");
    nb_tensor *both[] = {x, w};
    assert_int_equal(nb_save_safetensors(path, 2, both), 0);
    /* The header names the dtype "U8" and the data are the bytes. */
    FILE *f = fopen(path, "rb");
    unsigned char head[4096];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | head[k];
    assert_true(got >= 8 + hlen + 3 * F);
    head[8 + hlen] = '\0';
    const char *entry = "\"images\":{\"dtype\":\"U8\",\"shape\":[3,784]";
    assert_non_null(strstr((const char *)head + 8, entry));
    nb_tensor *x2 = nb_set_name(nb_zeros(NB_U8, NB_SHAPE(3, F)), "images");
    nb_tensor *w2 = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(2)), "w");
    nb_tensor *back[] = {x2, w2};
    assert_int_equal(nb_load_safetensors(path, 2, back), 0);
    assert_true(same_bits(x2, x));
    assert_true(same_bits(w2, w));
    /* U8 loads into u8 tensors only, and F32 into float ones only. */
    nb_tensor *xf = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(3, F)), "images");
    nb_tensor *wu = nb_set_name(nb_zeros(NB_U8, NB_SHAPE(2)), "w");
    nb_clear_error();
    assert_int_equal(nb_load_safetensors(path, 1, &xf, .partial = true), -1);
    expect_code(NB_ERR_DTYPE, "tensor 'images' is U8 in the file and f32 here");
    nb_clear_error();
    assert_int_equal(nb_load_safetensors(path, 1, &wu, .partial = true), -1);
    expect_code(NB_ERR_DTYPE, "tensor 'w' is F32 in the file and u8 here");
    assert_true(nb_get_flat(wu, 0) == 0.0);
    unlink(path);
    nb_tensor *ts[] = {x, w, x2, w2, xf, wu};
    for (int i = 0; i < 6; i++)
        nb_free(ts[i]);
    assert_int_equal(nb_live_tensors(), 0);
}

/* ---- fit, evaluate and predict on u8 data ---- */

/* Trains a model of dtype on u8 x with scale, and one on the same data
 * converted beforehand: the same history, weights, evaluation and
 * predictions, bit for bit. */
static void same_training(nb_dtype dtype, double scale, int batch)
{
    const int64_t n = 150, nv = 37;
    nb_tensor *x = random_bytes(n, 11), *xv = random_bytes(nv, 12);
    nb_tensor *y = random_targets(n, dtype, 13), *yv = random_targets(nv, dtype, 14);
    double s = scale != 0 ? scale : 1;
    /* In f32 with 1/255, the floats of nb_scale_images. */
    bool images = dtype == NB_F32 && scale == 1 / 255.0;
    nb_tensor *xf = images ? nb_scale_images(x) : converted(x, dtype, s);
    nb_tensor *xvf = images ? nb_scale_images(xv) : converted(xv, dtype, s);
    nb_model *a = model_of(dtype, 5), *b = model_of(dtype, 5);
    nb_dataset bytes = {x, y, scale}, floats = {.x = xf, .y = y};
    const nb_history *ha = nb_fit(a, bytes, .epochs = 2, .batch_size = batch, .seed = 3,
                                  .validation = (nb_dataset){xv, yv, scale});
    const nb_history *hb = nb_fit(b, floats, .epochs = 2, .batch_size = batch, .seed = 3,
                                  .validation = (nb_dataset){.x = xvf, .y = yv});
    assert_non_null(ha);
    assert_non_null(hb);
    for (int e = 0; e < 2; e++) {
        assert_true(ha->loss[e] == hb->loss[e]);
        assert_true(ha->metric[e] == hb->metric[e]);
        assert_true(ha->val_loss[e] == hb->val_loss[e]);
        assert_true(ha->val_metric[e] == hb->val_metric[e]);
    }
    assert_true(same_weights(a, b));
    double la, ma, lb, mb;
    assert_int_equal(nb_evaluate(a, (nb_dataset){xv, yv, scale}, .batch_size = 7, .loss = &la,
                                 .metrics = &ma, .nmetrics = 1),
                     0);
    assert_int_equal(nb_evaluate(a, (nb_dataset){.x = xvf, .y = yv}, .batch_size = 7, .loss = &lb,
                                 .metrics = &mb, .nmetrics = 1),
                     0);
    assert_true(la == lb && ma == mb);
    /* Batches that divide the rows or not, one batch, more than all rows. */
    const int sizes[] = {0, 7, 37, 1000};
    for (int i = 0; i < 4; i++) {
        nb_tensor *pa = nb_predict(a, (nb_dataset){xv, NULL, scale}, .batch_size = sizes[i]);
        nb_tensor *pb = nb_predict(a, (nb_dataset){.x = xvf}, .batch_size = sizes[i]);
        assert_non_null(pa);
        assert_int_equal(nb_dim(pa, 0), nv);
        assert_true(same_bits(pa, pb));
        nb_free(pa);
        nb_free(pb);
    }
    nb_model_free(a);
    nb_model_free(b);
    nb_tensor *ts[] = {x, xv, y, yv, xf, xvf};
    for (int i = 0; i < 6; i++)
        nb_free(ts[i]);
    assert_int_equal(nb_live_tensors(), 0);
}

static void test_fit_on_u8_is_bit_identical(void **state)
{
    (void)state;
    same_training(NB_F32, 1 / 255.0, 32);
    same_training(NB_F32, 1 / 255.0, 16);
    same_training(NB_F64, 1 / 255.0, 32);
    same_training(NB_F32, 0, 32); /* the bytes themselves */
    same_training(NB_F64, 0.25, 13);
}

/* The largest block allocated while training, evaluating and predicting
 * on u8 data. */
static size_t largest;
static void *max_alloc(size_t n, void *ctx)
{
    (void)ctx;
    largest = n > largest ? n : largest;
    return malloc(n);
}
static void max_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}
static const nb_allocator max_allocator = {max_alloc, max_free, NULL};

static void test_no_float_copy_of_the_data(void **state)
{
    (void)state;
    const int64_t n = 2000; /* 1.6 MB of bytes, 6.3 MB as f32 */
    nb_tensor *x = random_bytes(n, 21), *y = random_targets(n, NB_F32, 22);
    nb_model *m = model_of(NB_F32, 2);
    nb_dataset d = {x, y, 1 / 255.0};
    largest = 0;
    nb_set_allocator(&max_allocator);
    assert_non_null(nb_fit(m, d, .validation = d));
    double l, a;
    assert_int_equal(nb_evaluate(m, d, .batch_size = 32, .loss = &l, .metrics = &a, .nmetrics = 1),
                     0);
    nb_tensor *p = nb_predict(m, d, .batch_size = 32);
    assert_non_null(p);
    nb_set_allocator(NULL);
    /* Nothing near even the bytes' size: batches, arenas, the output. */
    if (largest >= (size_t)(n * F))
        fail_msg("a block of %zu bytes; the data are %lld bytes", largest, (long long)(n * F));
    nb_free(p);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* ---- the real data ---- */

static void test_fashion_mnist_as_bytes(void **state)
{
    (void)state;
    const char *dir = getenv("NB_FASHION_MNIST");
    nb_tensor *xt, *yt, *xv, *yv;
    if (nb_load_mnist(dir ? dir : "/usr/share/datasets/fashion-mnist", &xt, &yt, &xv, &yv))
        fail_msg("%s (the setup step installs dataset-fashion-mnist)", nb_last_error());
    assert_int_equal(nb_dtype_of(xt), NB_U8);
    assert_int_equal(nb_numel(xt), 60000 * 784); /* 47 MB */
    assert_int_equal(nb_dtype_of(xv), NB_U8);
    assert_int_equal(nb_numel(xv), 10000 * 784);
    /* The test set through a model, as bytes and as nb_scale_images's
     * floats: the same loss, accuracy and predictions, at a batch of 32
     * and all of it in one batch, as the benchmark predicts (under
     * valgrind, where OpenBLAS crawls, its first 300 images). */
    int64_t rows = RUNNING_ON_VALGRIND ? 300 : 10000;
    if (rows < 10000) {
        nb_tensor *x1 = nb_from_array(NB_U8, NB_SHAPE(rows, 784), nb_data(xv));
        nb_tensor *y1 = nb_from_array(NB_F32, NB_SHAPE(rows, 10), nb_data(yv));
        nb_free(xv);
        nb_free(yv);
        xv = x1, yv = y1;
    }
    nb_tensor *xvf = nb_scale_images(xv);
    assert_non_null(xvf);
    nb_model *m = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784),
                                nb_dense(32, .activation = NB_RELU),
                                nb_dense(10, .activation = NB_SOFTMAX));
    assert_int_equal(nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    nb_dataset test = {xv, yv, .scale = 1 / 255.0};
    double l1, a1, l2, a2;
    assert_int_equal(
        nb_evaluate(m, test, .batch_size = 32, .loss = &l1, .metrics = &a1, .nmetrics = 1), 0);
    assert_int_equal(nb_evaluate(m, (nb_dataset){.x = xvf, .y = yv}, .batch_size = 32, .loss = &l2,
                                 .metrics = &a2, .nmetrics = 1),
                     0);
    assert_true(l1 == l2 && a1 == a2);
    const int sizes[] = {32, (int)rows};
    for (int i = 0; i < 2; i++) {
        nb_tensor *p1 = nb_predict(m, test, .batch_size = sizes[i]);
        nb_tensor *p2 = nb_predict(m, (nb_dataset){.x = xvf}, .batch_size = sizes[i]);
        assert_non_null(p1);
        assert_true(same_bits(p1, p2));
        nb_free(p1);
        nb_free(p2);
    }
    nb_model_free(m);
    nb_free(xvf);
    nb_free(xt);
    nb_free(yt);
    nb_free(xv);
    nb_free(yv);
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_byte_gives_the_same_float, cleanup),
        cmocka_unit_test_teardown(test_u8_tensors, cleanup),
        cmocka_unit_test_teardown(test_cast_and_refusals, cleanup),
        cmocka_unit_test_teardown(test_u8_safetensors, cleanup),
        cmocka_unit_test_teardown(test_fit_on_u8_is_bit_identical, cleanup),
        cmocka_unit_test_teardown(test_no_float_copy_of_the_data, cleanup),
        cmocka_unit_test_teardown(test_fashion_mnist_as_bytes, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
