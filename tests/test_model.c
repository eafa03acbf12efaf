/* The Keras-style model: summary, building, gradcheck of a model in f64,
 * training that learns, bit-for-bit reproducibility, evaluate/predict,
 * weights round trip, checkpoints (strict and partial loads, checksum,
 * format), and misuse. */
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

static nb_model *seed_model(void)
{
    nb_model *m = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784),
                                nb_dense(32, .activation = NB_RELU),
                                nb_dense(10, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    return m;
}

static void test_summary_of_seed_model(void **state)
{
    (void)state;
    nb_model *m = seed_model();
    assert_int_equal(nb_count_params(m), 52650);
    char buf[4096];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_int_equal(nb_summary(m, f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "Layer (type)"));
    assert_non_null(strstr(buf, "Output Shape"));
    assert_non_null(strstr(buf, "Param #"));
    assert_non_null(strstr(buf, "dense (Dense)"));
    assert_non_null(strstr(buf, "(None, 64)"));
    assert_non_null(strstr(buf, "50,240"));
    assert_non_null(strstr(buf, "2,080"));
    assert_non_null(strstr(buf, "330"));
    assert_non_null(strstr(buf, "Total params: 52,650 (205.66 KB)"));
    assert_non_null(strstr(buf, "Trainable params: 52,650"));
    assert_non_null(strstr(buf, "Non-trainable params: 0"));
    /* Parameter names and Keras initialisation: zero bias, Glorot bound. */
    nb_tensor *const *p;
    assert_int_equal(nb_model_params(m, &p), 6);
    assert_string_equal(nb_name(p[0]), "dense.kernel");
    assert_string_equal(nb_name(p[5]), "dense_2.bias");
    double limit = sqrt(6.0 / (784 + 64)), maxabs = 0;
    for (int64_t i = 0; i < nb_numel(p[0]); i++) {
        double v = fabs(((float *)nb_data(p[0]))[i]);
        maxabs = v > maxabs ? v : maxabs;
    }
    assert_true(maxabs <= limit && maxabs > 0.9 * limit);
    for (int64_t i = 0; i < nb_numel(p[1]); i++)
        assert_true(((float *)nb_data(p[1]))[i] == 0.0f);
    nb_model_free(m);

    /* Without biases: kernels only, and a named layer keeps its name. */
    m = nb_sequential(nb_dense(8, .input = 4, .no_bias = true, .name = "encoder"),
                      nb_dense(2, .no_bias = true));
    assert_int_equal(nb_build(m, 4, 0), 0);
    assert_int_equal(nb_count_params(m), 4 * 8 + 8 * 2);
    assert_int_equal(nb_model_params(m, &p), 2);
    assert_string_equal(nb_name(p[0]), "encoder.kernel");
    assert_string_equal(nb_name(p[1]), "dense.kernel");
    nb_model_free(m);
}

/* A model in f64, gradient-checked end to end through nb_model_forward and
 * the compiled loss (softmax + cross-entropy from logits). */
static void test_gradcheck_model(void **state)
{
    (void)state;
    nb_activation acts[] = {NB_TANH, NB_GELU, NB_SIGMOID, NB_ELU, NB_SOFTPLUS};
    for (size_t k = 0; k < sizeof acts / sizeof *acts; k++) {
        nb_model *m = nb_sequential(nb_dense(5, .activation = acts[k], .input = 4),
                                    nb_dense(3, .activation = NB_SOFTMAX));
        assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
        assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
        nb_rng rng = nb_rng_new(k);
        model_ctx c = {m, nb_randn(NB_F64, NB_SHAPE(6, 4), &rng),
                       nb_zeros(NB_F64, NB_SHAPE(6, 3))};
        for (int i = 0; i < 6; i++)
            nb_set(c.y, NB_AT(i, i % 3), 1.0);
        if (!model_gradcheck(&c, -1))
            fail_msg("model with activation %s fails gradcheck", nb_activation_name(acts[k]));
        nb_free(c.x);
        nb_free(c.y);
        nb_model_free(m);
    }
}

/* nb_model_loss takes a softmax output's cross-entropy from the logits of
 * the forward that made it, and from the probabilities otherwise. Which it
 * is shows in the value: logits (1000, -1000) for class 1 cost 2000, while
 * the clipped probabilities cost -log(1e-7) ~ 16.12. The model must not
 * take a tensor for its last output because it sits at the same address:
 * after a reset, the next tensors of a graph land where the old ones were. */
static void test_loss_logits_only_from_the_same_graph(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_dense(2, .activation = NB_SOFTMAX, .input = 1, .no_bias = true));
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
    nb_tensor *const *p;
    assert_int_equal(nb_model_params(m, &p), 1);
    nb_tensor *kernel = p[0];
    bool rec = nb_set_grad_enabled(false);
    assert_int_equal(nb_set(kernel, NB_AT(0, 0), 1000), 0);
    assert_int_equal(nb_set(kernel, NB_AT(0, 1), -1000), 0);
    nb_set_grad_enabled(rec);
    nb_tensor *x = nb_ones(NB_F64, NB_SHAPE(1, 1));
    nb_tensor *y = nb_from_array(NB_F64, NB_SHAPE(1, 2), (double[]){0, 1});
    const double from_probs = -log(1e-7);

    /* Forward and loss in one graph: from the logits. */
    nb_graph *g = nb_graph_new();
    nb_tensor *out = nb_model_forward(m, x);
    assert_non_null(out);
    assert_float_equal(nb_item(nb_model_loss(m, out, y)), 2000, 1e-9);

    /* After a reset, the same ops by hand make a new softmax (and its
     * input). Then the input is overwritten: its values are no longer this
     * output's logits. Tensor headers do not go back where the last
     * generation's were (the header ring), so the old out is not an alias
     * of q but a stale tensor, refused; the model must not match by
     * address all the same (an older generation's address may be reused). */
    nb_graph_reset(g);
    assert_int_equal(nb_scope_push("dense"), 0);
    nb_tensor *z = nb_matmul(x, kernel);
    nb_tensor *q = nb_softmax(z, -1);
    nb_scope_pop();
    assert_ptr_not_equal(q, out);
    nb_clear_error();
    assert_true(isnan(nb_item(out)));
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    assert_non_null(strstr(nb_last_error(), "nb_item: the tensor is of graph generation"));
    nb_clear_error();
    rec = nb_set_grad_enabled(false);
    assert_int_equal(nb_assign(z, nb_zeros_like(z)), 0);
    nb_set_grad_enabled(rec);
    /* Matched by address, the loss would be that of logits (0, 0), log 2. */
    double l = nb_item(nb_model_loss(m, q, y));
    if (fabs(l - from_probs) > 1e-6)
        fail_msg("loss of a softmax the model did not make in this graph: %.9g, want %.9g "
                 "(from its probabilities)", l, from_probs);

    /* A forward in this generation is matched again ... */
    out = nb_model_forward(m, x);
    assert_float_equal(nb_item(nb_model_loss(m, out, y)), 2000, 1e-9);
    /* ... but not from another graph (nested here), nor after nb_predict,
     * whose graph is gone. */
    nb_graph *inner = nb_graph_new();
    assert_float_equal(nb_item(nb_model_loss(m, out, y)), from_probs, 1e-6);
    nb_graph_free(inner);
    nb_tensor *pred = nb_predict(m, (nb_dataset){.x = x});
    assert_non_null(pred);
    assert_float_equal(nb_item(nb_model_loss(m, out, y)), from_probs, 1e-6);
    nb_free(pred);

    nb_graph_free(g);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

static nb_model *small_model(nb_loss loss, uint64_t seed)
{
    nb_model *m = nb_sequential(nb_dense(16, .activation = NB_RELU, .input = 4),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_int_equal(nb_build(m, 4, seed), 0);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.01), loss, NB_ACCURACY), 0);
    return m;
}

static void test_fit_learns(void **state)
{
    (void)state;
    nb_loss losses[] = {NB_CATEGORICAL_CROSSENTROPY, NB_SPARSE_CATEGORICAL_CROSSENTROPY};
    for (int k = 0; k < 2; k++) {
        nb_tensor *x, *y, *vx, *vy;
        three_blobs(600, 1, NB_F32, 0.5, k == 1, &x, &y);
        three_blobs(200, 2, NB_F32, 0.5, k == 1, &vx, &vy);
        nb_model *m = small_model(losses[k], 3);
        FILE *devnull = fopen("/dev/null", "w");
        const nb_history *h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 5, .batch_size = 32,
                                     .validation = (nb_dataset){.x = vx, .y = vy}, .out = devnull);
        fclose(devnull);
        if (!h)
            fail_msg("fit: %s", nb_last_error());
        assert_int_equal(h->epochs, 5);
        assert_true(h->loss[4] < h->loss[0]);
        assert_true(h->metric[4] > 0.9);
        assert_true(h->val_metric[4] > 0.9);
        assert_true(h->seconds[0] >= 0);
        double loss, acc;
        assert_int_equal(nb_evaluate(m, (nb_dataset){.x = vx, .y = vy}, .loss = &loss,
                                     .metrics = &acc, .nmetrics = 1),
                         0);
        assert_true(fabs(loss - h->val_loss[4]) < 1e-6);
        assert_true(fabs(acc - h->val_metric[4]) < 1e-9);
        /* predict: probabilities per row that agree with evaluate's accuracy. */
        nb_tensor *p = nb_predict(m, (nb_dataset){.x = vx}, .batch_size = 7);
        assert_non_null(p);
        assert_int_equal(nb_dim(p, 0), 200);
        assert_int_equal(nb_dim(p, 1), 3);
        int correct = 0;
        for (int i = 0; i < 200; i++) {
            int best = 0;
            double s = 0;
            for (int j = 0; j < 3; j++) {
                s += nb_get(p, NB_AT(i, j));
                if (nb_get(p, NB_AT(i, j)) > nb_get(p, NB_AT(i, best)))
                    best = j;
            }
            assert_true(fabs(s - 1) < 1e-5);
            int want = k == 1 ? (int)nb_get(vy, NB_AT(i)) : 0;
            if (k == 0)
                for (int j = 0; j < 3; j++)
                    if (nb_get(vy, NB_AT(i, j)) == 1.0)
                        want = j;
            correct += best == want;
        }
        assert_true(fabs(correct / 200.0 - acc) < 1e-9);
        nb_free(p);
        nb_model_free(m);
        nb_free(x);
        nb_free(y);
        nb_free(vx);
        nb_free(vy);
    }
}

static void test_reproducible_bit_for_bit(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(300, 5, NB_F32, 0.5, false, &x, &y);
    nb_tensor *w[2];
    for (int run = 0; run < 2; run++) {
        nb_model *m = small_model(NB_CATEGORICAL_CROSSENTROPY, 11);
        assert_non_null(nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 2, .seed = 9));
        nb_tensor *const *p;
        nb_model_params(m, &p);
        w[run] = nb_clone(p[0]);
        nb_model_free(m);
    }
    assert_int_equal(memcmp(nb_data(w[0]), nb_data(w[1]), (size_t)nb_numel(w[0]) * 4), 0);
    /* A different shuffling seed gives different weights. */
    nb_model *m = small_model(NB_CATEGORICAL_CROSSENTROPY, 11);
    assert_non_null(nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 2, .seed = 10));
    nb_tensor *const *p;
    nb_model_params(m, &p);
    assert_int_not_equal(memcmp(nb_data(w[0]), nb_data(p[0]), (size_t)nb_numel(w[0]) * 4), 0);
    nb_model_free(m);
    nb_free(w[0]);
    nb_free(w[1]);
    nb_free(x);
    nb_free(y);
}

static void test_weights_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla_model_XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    nb_model *a = small_model(NB_CATEGORICAL_CROSSENTROPY, 1);
    nb_model *b = small_model(NB_CATEGORICAL_CROSSENTROPY, 2);
    assert_int_equal(nb_save_weights(a, path), 0);
    assert_int_equal(nb_load_weights(b, path), 0);
    nb_tensor *const *pa, *const *pb;
    int n = nb_model_params(a, &pa);
    nb_model_params(b, &pb);
    for (int i = 0; i < n; i++)
        assert_true(nb_allclose(pa[i], pb[i], 0, 0));
    /* A model of another shape refuses the file, naming the tensor. */
    nb_model *c = nb_sequential(nb_dense(8, .input = 4), nb_dense(3));
    assert_int_equal(nb_build(c, 4, 0), 0);
    assert_int_equal(nb_load_weights(c, path), -1);
    ERR_HAS("dense.kernel");
    nb_model_free(a);
    nb_model_free(b);
    nb_model_free(c);
    unlink(path);
    rmdir(dir);
}

/* The file's bytes and a rewrite of them (checkpoint tests). */
static size_t slurp(const char *path, unsigned char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}
static void spill(const char *path, const unsigned char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static bool same_params(const nb_model *a, const nb_model *b, int count)
{
    nb_tensor *const *pa, *const *pb;
    nb_model_params(a, &pa);
    nb_model_params(b, &pb);
    for (int i = 0; i < count; i++)
        if (!nb_allclose(pa[i], pb[i], 0, 0))
            return false;
    return true;
}

/* A checkpoint loads only into the model it came from, unless asked for a
 * partial load; the first difference is the message. Its checksum is
 * verified; a file without nabla's metadata loads unchecked. */
static void test_checkpoints(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla_ckpt_XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    nb_model *a = small_model(NB_CATEGORICAL_CROSSENTROPY, 1);
    assert_int_equal(nb_save_weights(a, path), 0);

    /* An extra layer: strict names it; partial loads the two it shares. */
    nb_model *extra = nb_sequential(nb_dense(16, .activation = NB_RELU, .input = 4),
                                    nb_dense(3), nb_dense(2));
    assert_int_equal(nb_build(extra, 4, 9), 0);
    FAILS_RC(nb_load_weights(extra, path), "nb_load_weights: ", "w.safetensors: tensor "
             "'dense_2.kernel' is not in the file (it has 4: 'dense.bias', 'dense.kernel', "
             "'dense_1.bias', 'dense_1.kernel')");
    assert_false(same_params(a, extra, 1)); /* nothing written */
    assert_int_equal(nb_load_weights(extra, path, .partial = true), 0);
    assert_true(same_params(a, extra, 4));

    /* A missing layer. */
    nb_model *fewer = nb_sequential(nb_dense(16, .activation = NB_RELU, .input = 4));
    assert_int_equal(nb_build(fewer, 4, 9), 0);
    FAILS_RC(nb_load_weights(fewer, path), "nb_load_weights: ", "the file has 4 tensors, 2 "
             "asked for: its tensor 2 'dense_1.kernel' F32 (16,3) is not asked for");
    assert_int_equal(nb_load_weights(fewer, path, .partial = true), 0);
    assert_true(same_params(a, fewer, 2));

    /* Reordered layers of the same names and shapes. */
    char p2[256];
    snprintf(p2, sizeof p2, "%s/named.safetensors", dir);
    nb_model *ed =
        nb_sequential(nb_dense(4, .input = 4, .name = "enc"), nb_dense(4, .name = "dec"));
    nb_model *de =
        nb_sequential(nb_dense(4, .input = 4, .name = "dec"), nb_dense(4, .name = "enc"));
    assert_int_equal(nb_build(ed, 4, 1), 0);
    assert_int_equal(nb_build(de, 4, 2), 0);
    assert_int_equal(nb_save_weights(ed, p2), 0);
    FAILS_RC(nb_load_weights(de, p2), "nb_load_weights: ", "named.safetensors: tensor 0 is "
             "'dec.kernel', but the file's tensor 0 is 'enc.kernel' ('dec.kernel' is its "
             "tensor 2)");
    assert_int_equal(nb_load_weights(de, p2, .partial = true), 0);
    nb_tensor *const *pe, *const *pd;
    nb_model_params(ed, &pe);
    nb_model_params(de, &pd);
    assert_true(nb_allclose(pe[0], pd[2], 0, 0)); /* enc.kernel */

    /* The checksum: one flipped bit in the data is refused, and nothing is
     * written. */
    nb_model *b = small_model(NB_CATEGORICAL_CROSSENTROPY, 2);
    static unsigned char raw[1 << 16];
    size_t n = slurp(path, raw, sizeof raw);
    size_t hl = raw[0] | (size_t)raw[1] << 8;
    raw[8 + hl + 5] ^= 0x10;
    char p3[256];
    snprintf(p3, sizeof p3, "%s/damaged.safetensors", dir);
    spill(p3, raw, n);
    FAILS_RC(nb_load_weights(b, p3), "nb_load_weights: ", "damaged.safetensors: checksum "
             "mismatch: the data's CRC-32 is");
    FAILS_RC(nb_load_weights(b, p3, .partial = true), "checksum mismatch");
    assert_false(same_params(a, b, 1));

    /* Without nabla's metadata (as PyTorch writes files) it loads, and
     * unchecked: blank the metadata out (JSON whitespace, same length). */
    const char *meta = strstr((const char *)raw + 8, "\"__metadata__\"");
    const char *end = strstr(meta, "},") + 2;
    memset(raw + (meta - (const char *)raw), ' ', (size_t)(end - meta));
    spill(p3, raw, n);
    assert_int_equal(nb_load_weights(b, p3), 0);
    assert_false(same_params(a, b, 1)); /* the flipped bit, loaded */
    raw[8 + hl + 5] ^= 0x10;
    spill(p3, raw, n);
    assert_int_equal(nb_load_weights(b, p3), 0);
    assert_true(same_params(a, b, 4));

    /* A file of a later format is refused by name. */
    n = slurp(path, raw, sizeof raw);
    char *fmt = strstr((char *)raw + 8, "\"nabla_format\":\"1\"");
    assert_non_null(fmt);
    fmt[16] = '7';
    spill(p3, raw, n);
    FAILS_RC(nb_load_weights(b, p3), "nb_load_weights: ", "the file is in nabla's format '7'; "
             "this nabla reads format 1");

    /* Saving names the user's function too. */
    FAILS_RC(nb_save_weights(a, dir), "nb_save_weights: ", "is a directory, not a regular file");
    FAILS_RC(nb_load_weights(a, dir), "nb_load_weights: ", "is a directory, not a regular file");

    nb_model_free(a);
    nb_model_free(b);
    nb_model_free(extra);
    nb_model_free(fewer);
    nb_model_free(ed);
    nb_model_free(de);
    unlink(path);
    unlink(p2);
    unlink(p3);
    rmdir(dir);
}

static void test_misuse(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(40, 1, NB_F32, 0.5, false, &x, &y);
    /* fit before compile */
    nb_model *m = nb_sequential(nb_dense(3, .input = 4));
    assert_null(nb_fit(m, (nb_dataset){.x = x, .y = y}));
    ERR_HAS("nb_compile");
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    /* x with the wrong number of features */
    nb_tensor *bad = nb_zeros(NB_F32, NB_SHAPE(40, 5));
    assert_null(nb_fit(m, (nb_dataset){.x = bad, .y = y}));
    ERR_HAS("(40,5)");
    ERR_HAS("(N,4)");
    /* y rows differ from x rows */
    nb_tensor *short_y = nb_zeros(NB_F32, NB_SHAPE(39, 3));
    assert_null(nb_fit(m, (nb_dataset){.x = x, .y = short_y}));
    ERR_HAS("(39,3)");
    /* labels out of range for the sparse loss */
    nb_model *s = small_model(NB_SPARSE_CATEGORICAL_CROSSENTROPY, 0);
    nb_tensor *labels = nb_full(NB_F32, NB_SHAPE(40), 1.0);
    nb_set(labels, NB_AT(7), 3.0);
    assert_null(nb_fit(s, (nb_dataset){.x = x, .y = labels}));
    ERR_HAS("label 3 at row 7");
    /* one-hot targets given to a categorical loss must be in [0, 1] */
    nb_tensor *y2 = nb_full(NB_F32, NB_SHAPE(40, 3), 2.0);
    assert_null(nb_fit(m, (nb_dataset){.x = x, .y = y2}));
    ERR_HAS("one-hot");
    /* f64 data for an f32 model */
    nb_tensor *x64 = nb_zeros(NB_F64, NB_SHAPE(40, 4));
    assert_null(nb_predict(m, (nb_dataset){.x = x64}));
    ERR_HAS("f64");
    /* bad layers and constructors */
    assert_null(nb_dense(0));
    ERR_HAS("nb_dense");
    assert_null(nb_sequential(nb_dense(4, .input = 2), nb_dense(3, .input = 5)));
    ERR_HAS("5 inputs");
    /* The first error survives a chain of calls on a NULL model. */
    nb_clear_error();
    nb_model *none = nb_sequential(nb_dense(-1));
    assert_int_equal(nb_compile(none, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), -1);
    assert_int_equal(nb_summary(none, stdout), -1);
    assert_null(nb_fit(none, (nb_dataset){.x = x, .y = y}));
    ERR_HAS("nb_dense: units");
    nb_model_free(m);
    nb_model_free(s);
    nb_free(bad);
    nb_free(short_y);
    nb_free(labels);
    nb_free(y2);
    nb_free(x64);
    nb_free(x);
    nb_free(y);
}

/* The seed model on a slice of the real Fashion-MNIST (installed by the
 * setup step): 3000 training images, 3 epochs, must beat 70% on 2000 test
 * images (chance is 10%). */
static nb_tensor *head(nb_tensor *t, int64_t n)
{
    int64_t shape[2] = {n, nb_ndim(t) > 1 ? nb_dim(t, 1) : 0};
    nb_tensor *c = nb_from_array(nb_dtype_of(t), nb_ndim(t), shape, nb_data(t));
    nb_free(t);
    return c;
}

static void test_seed_model_learns_fashion_mnist_slice(void **state)
{
    (void)state;
    nb_tensor *xtr, *ytr, *xte, *yte;
    if (nb_load_mnist("/usr/share/datasets/fashion-mnist", &xtr, &ytr, &xte, &yte))
        fail_msg("%s (the setup step installs dataset-fashion-mnist)", nb_last_error());
    xtr = head(xtr, 3000), ytr = head(ytr, 3000), xte = head(xte, 2000), yte = head(yte, 2000);
    nb_model *m = seed_model();
    nb_dataset train = {xtr, ytr, .scale = 1 / 255.0}, test = {xte, yte, .scale = 1 / 255.0};
    const nb_history *h = nb_fit(m, train, .epochs = 3, .validation = test);
    if (!h)
        fail_msg("fit: %s", nb_last_error());
    assert_true(h->loss[2] < h->loss[0]);
    assert_true(h->val_metric[2] > 0.7);
    nb_model_free(m);
    nb_free(xtr);
    nb_free(ytr);
    nb_free(xte);
    nb_free(yte);
}

static void test_fit_allocations_do_not_grow_with_steps(void **state)
{
    (void)state;
    /* Allocations per fit are fixed: 4x the data means 4x the steps, same
     * count. Both runs are long enough for the graph's header ring to reach
     * its size (it holds two steps' tensors, in chunks of 128: with few
     * tensors per step that takes more than 10 steps). */
    nb_set_allocator(&counting_allocator);
    long counts[2];
    for (int k = 0; k < 2; k++) {
        nb_tensor *x, *y;
        three_blobs(k ? 2560 : 640, 1, NB_F32, 0.5, false, &x, &y);
        nb_model *m = small_model(NB_CATEGORICAL_CROSSENTROPY, 0);
        long before = allocs;
        assert_non_null(nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 1));
        counts[k] = allocs - before;
        nb_model_free(m);
        nb_free(x);
        nb_free(y);
    }
    nb_set_allocator(NULL);
    assert_int_equal(counts[0], counts[1]);
}


/* A layer belongs to one model, once; an optimizer to one model. Misuse is
 * an error (code state) naming the call, and never frees what a model still
 * owns (the ASan and valgrind runs of this test would see a double free). */
static void test_ownership(void **state)
{
    (void)state;
    nb_layer *l = nb_dense(3, .input = 4);
    nb_model *m = nb_sequential(l);
    assert_non_null(m);
    FAILS_RC(nb_model_add(m, l), "nb_model_add: layer 'dense' is already in this model");
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    nb_model *other = nb_sequential(nb_dense(2, .input = 4));
    FAILS_RC(nb_model_add(other, l), "nb_model_add: layer 'dense' belongs to another model");
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    nb_clear_error();
    nb_layer_free(l); /* refused: m owns it */
    ERR_HAS("nb_layer_free: layer 'dense' belongs to a model");
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    /* The same layer twice in one nb_sequential. */
    nb_layer *twice = nb_dense(2, .input = 3);
    FAILS(nb_sequential(twice, twice), "nb_sequential: layer 2: layer 'dense' is already");
    /* ... after a layer that fails, a repeated one is freed once. */
    nb_layer *rep = nb_dense(2);
    FAILS(nb_sequential(nb_dense(2, .input = 3), nb_dense(5, .input = 9), rep, rep),
          "nb_sequential: layer 2: layer 2 declares 9 inputs");
    /* Optimizers: one model each; compiling again with the same one is fine. */
    nb_optimizer *opt = nb_sgd();
    assert_int_equal(nb_compile(m, opt, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), 0);
    assert_int_equal(nb_compile(m, opt, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), 0);
    assert_ptr_equal(nb_model_optimizer(m), opt);
    FAILS_RC(nb_compile(other, opt, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC),
             "nb_compile: the sgd optimizer belongs to another model");
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    FAILS_RC(nb_compile(NULL, opt, NB_MEAN_SQUARED_ERROR, NB_NO_METRIC), "nb_compile");
    FAILS_RC(nb_compile(m, opt, (nb_loss)99, NB_NO_METRIC), "nb_compile: unknown loss 99");
    assert_ptr_equal(nb_model_optimizer(m), opt); /* kept, not freed */
    assert_int_equal(nb_optimizer_steps(opt), 0);
    nb_model_free(other);
    nb_model_free(m);
    /* A freed model handle is recognised (the live models are listed). */
    nb_clear_error();
    nb_model_free(m);
    ERR_HAS("nb_model_free:");
    ERR_HAS("is not a live model");
    assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
    FAILS_RC(nb_build(m, 4, 0), "nb_build:", "not a live model");
    nb_clear_error();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_of_seed_model),
        cmocka_unit_test(test_gradcheck_model),
        cmocka_unit_test(test_loss_logits_only_from_the_same_graph),
        cmocka_unit_test(test_fit_learns),
        cmocka_unit_test(test_seed_model_learns_fashion_mnist_slice),
        cmocka_unit_test(test_reproducible_bit_for_bit),
        cmocka_unit_test(test_weights_round_trip),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_ownership),
        cmocka_unit_test(test_fit_allocations_do_not_grow_with_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
