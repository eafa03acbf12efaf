/* Weights in PyTorch's layout (nb_save_weights / nb_load_weights with
 * .layout = NB_LAYOUT_PYTORCH): the keys and shapes of the torch.nn.Sequential
 * equivalent (the classic model's as in PyTorch's own state_dict), each
 * tensor's values in torch's axis order, and the round trip giving the same
 * predictions. The comparison against torch itself is tests/data/torch_interop.py. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"
#define DIR_TEMPLATE "/tmp/nabla_torch_XXXXXX"
#include "file_testing.h"

static nb_model *classic(uint64_t seed)
{
    nb_model *m = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784),
                                nb_dense(32, .activation = NB_RELU),
                                nb_dense(10, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, seed), 0);
    return m;
}

/* A conv net with the layers the layout maps: conv, pooling, flatten (whose
 * Dense gets torch's (c, h, w) order), dropout, layer norm. */
static nb_model *convnet(uint64_t seed)
{
    nb_model *m = nb_sequential(nb_input(6, 5, 3), nb_conv2d(4, {3, 2}, .activation = NB_RELU),
                                nb_max_pooling2d({2, 1}), nb_flatten(), nb_dropout(0.5),
                                nb_dense(7, .activation = NB_TANH), nb_layer_normalization(),
                                nb_dense(3));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, seed), 0);
    return m;
}

static nb_tensor *named(const char *name, int ndim, const int64_t *shape)
{
    return nb_set_name(nb_zeros(NB_F32, ndim, shape), name);
}

static nb_tensor *weight(nb_model *m, const char *name)
{
    nb_tensor *const *p;
    int n = nb_model_params(m, &p);
    for (int i = 0; i < n; i++)
        if (!strcmp(nb_name(p[i]), name))
            return p[i];
    fail_msg("no weight %s", name);
    return NULL;
}

static nb_tensor *inputs(int ndim, const int64_t *shape)
{
    nb_rng r = nb_rng_new(99);
    return nb_rand(NB_F32, ndim, shape, &r);
}

/* The keys and shapes of /work/shared/reference/pytorch_seed_state_dict.txt
 * (PyTorch's own for the classic model): the file holds exactly them, and
 * 0.weight is the first kernel transposed. */
static void test_classic_keys_and_values(void **state)
{
    (void)state;
    nb_model *m = classic(1);
    assert_int_equal(nb_save_weights(m, P("t.safetensors"), .layout = NB_LAYOUT_PYTORCH), 0);
    nb_tensor *t[6] = {
        named("0.weight", NB_SHAPE(64, 784)), named("0.bias", NB_SHAPE(64)),
        named("2.weight", NB_SHAPE(32, 64)),  named("2.bias", NB_SHAPE(32)),
        named("4.weight", NB_SHAPE(10, 32)),  named("4.bias", NB_SHAPE(10)),
    };
    assert_int_equal(nb_load_safetensors(P("t.safetensors"), 6, t), 0);
    nb_tensor *k[3] = {weight(m, "dense.kernel"), weight(m, "dense_1.kernel"),
                       weight(m, "dense_2.kernel")};
    for (int j = 0; j < 3; j++) {
        int64_t in = nb_dim(k[j], 0), out = nb_dim(k[j], 1);
        for (int64_t o = 0; o < out; o += 3)
            for (int64_t i = 0; i < in; i += 5)
                assert_true(nb_get(t[2 * j], NB_AT(o, i)) == nb_get(k[j], NB_AT(i, o)));
    }
    /* One tensor fewer than the file holds is refused: the file has no more. */
    assert_int_equal(nb_load_safetensors(P("t.safetensors"), 5, t), -1);
    /* nabla's own layout is unchanged by the option's existence. */
    assert_int_equal(nb_save_weights(m, P("k.safetensors")), 0);
    nb_tensor *kt = named("dense.kernel", NB_SHAPE(784, 64));
    assert_int_equal(nb_load_safetensors(P("k.safetensors"), 1, &kt, .partial = true), 0);
    assert_true(nb_allclose(kt, k[0], 0, 0));
    for (int i = 0; i < 6; i++)
        nb_free(t[i]);
    nb_free(kt);
    nb_model_free(m);
}

/* Saved from one model, loaded into another of other weights: the same
 * predictions, bit for bit. */
static void round_trip(nb_model *(*make)(uint64_t), int ndim, const int64_t *xshape)
{
    nb_model *a = make(1), *b = make(2);
    nb_tensor *x = inputs(ndim, xshape);
    nb_tensor *pa = nb_predict(a, (nb_dataset){.x = x}, .batch_size = 8);
    nb_tensor *pb = nb_predict(b, (nb_dataset){.x = x}, .batch_size = 8);
    assert_false(nb_allclose(pa, pb, 0, 0));
    assert_int_equal(nb_save_weights(a, P("rt.safetensors"), .layout = NB_LAYOUT_PYTORCH), 0);
    assert_int_equal(nb_load_weights(b, P("rt.safetensors"), .layout = NB_LAYOUT_PYTORCH), 0);
    nb_free(pb);
    pb = nb_predict(b, (nb_dataset){.x = x}, .batch_size = 8);
    assert_true(nb_allclose(pa, pb, 0, 0));
    /* The Keras layout does not read a torch file. */
    FAILS_RC(nb_load_weights(b, P("rt.safetensors")), "nb_load_weights");
    nb_free(pa);
    nb_free(pb);
    nb_free(x);
    nb_model_free(a);
    nb_model_free(b);
}

static void test_classic_round_trip(void **state)
{
    (void)state;
    round_trip(classic, NB_SHAPE(20, 784));
}

static void test_convnet_round_trip(void **state)
{
    (void)state;
    round_trip(convnet, NB_SHAPE(10, 6, 5, 3));
}

/* The conv net's keys (modules: conv 0, relu 1, pool 2, flatten 3, dropout
 * 4, linear 5, tanh 6, layernorm 7, linear 8), its kernel as (out, in, kh,
 * kw), and the Dense after the Flatten with its inputs in (c, h, w) order. */
static void test_convnet_layout(void **state)
{
    (void)state;
    nb_model *m = convnet(3);
    assert_int_equal(nb_save_weights(m, P("c.safetensors"), .layout = NB_LAYOUT_PYTORCH), 0);
    nb_tensor *t[8] = {
        named("0.weight", NB_SHAPE(4, 3, 3, 2)), named("0.bias", NB_SHAPE(4)),
        named("5.weight", NB_SHAPE(7, 32)),      named("5.bias", NB_SHAPE(7)),
        named("7.weight", NB_SHAPE(7)),          named("7.bias", NB_SHAPE(7)),
        named("8.weight", NB_SHAPE(3, 7)),       named("8.bias", NB_SHAPE(3)),
    };
    assert_int_equal(nb_load_safetensors(P("c.safetensors"), 8, t), 0);
    nb_tensor *k = weight(m, "conv2d.kernel"), *d = weight(m, "dense.kernel");
    for (int64_t o = 0; o < 4; o++)
        for (int64_t i = 0; i < 3; i++)
            for (int64_t a = 0; a < 3; a++)
                for (int64_t b = 0; b < 2; b++)
                    assert_true(nb_get(t[0], NB_AT(o, i, a, b)) ==
                                nb_get(k, NB_AT(a, b, i, o)));
    /* the pooled image is (2, 4, 4): nabla's row (h, w, c), torch's column (c, h, w) */
    for (int64_t o = 0; o < 7; o++)
        for (int64_t h = 0; h < 2; h++)
            for (int64_t w = 0; w < 4; w++)
                for (int64_t c = 0; c < 4; c++)
                    assert_true(nb_get(t[2], NB_AT(o, c * 8 + h * 4 + w)) ==
                                nb_get(d, NB_AT(h * 16 + w * 4 + c, o)));
    for (int i = 0; i < 8; i++)
        nb_free(t[i]);
    nb_model_free(m);
}

/* A partial load keeps the tensors the file lacks. */
static void test_partial(void **state)
{
    (void)state;
    nb_model *a = classic(1), *b = classic(2);
    nb_tensor *w = nb_set_name(nb_clone(weight(a, "dense_2.bias")), "4.bias");
    assert_int_equal(nb_save_safetensors(P("p.safetensors"), 1, &w), 0);
    nb_tensor *before = nb_clone(weight(b, "dense_2.kernel"));
    FAILS_RC(nb_load_weights(b, P("p.safetensors"), .layout = NB_LAYOUT_PYTORCH),
             "nb_load_weights", "0.weight");
    assert_int_equal(
        nb_load_weights(b, P("p.safetensors"), .layout = NB_LAYOUT_PYTORCH, .partial = true), 0);
    assert_true(nb_allclose(weight(b, "dense_2.bias"), w, 0, 0));
    assert_true(nb_allclose(weight(b, "dense_2.kernel"), before, 0, 0));
    nb_free(w);
    nb_free(before);
    nb_model_free(a);
    nb_model_free(b);
}

/* A layer of one's own calling itself "Conv2D" without a Conv2D's kernel. */
static int fake_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                      nb_rng *rng)
{
    (void)rng;
    *out_ndim = ndim;
    memcpy(out, in, (size_t)ndim * sizeof *in);
    return nb_layer_weight(l, "w", nb_zeros(NB_F32, NB_SHAPE(3, 3)), true) < 0 ? -1 : 0;
}
static nb_tensor *fake_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)l, (void)training;
    return x;
}
static const nb_layer_type fake_conv = {"Conv2D", "fake", fake_build, fake_forward, NULL};

/* Layers torch's Sequential has no equivalent for are named in the error. */
static void test_unmapped_layers(void **state)
{
    (void)state;
    nb_model *bn = nb_sequential(nb_dense(4, .input = 3), nb_batch_normalization());
    nb_model *rnn = nb_sequential(nb_input(5, 3), nb_lstm(4));
    assert_int_equal(nb_build(bn, 0, 1), 0);
    assert_int_equal(nb_build(rnn, 0, 1), 0);
    FAILS_RC(nb_save_weights(bn, P("bn.safetensors"), .layout = NB_LAYOUT_PYTORCH),
             "nb_save_weights: ", "batch_normalization", "BatchNormalization", "num_batches_tracked");
    FAILS_RC(nb_load_weights(rnn, P("bn.safetensors"), .layout = NB_LAYOUT_PYTORCH),
             "nb_load_weights: ", "lstm", "(LSTM)");
    FAILS_RC(nb_save_weights(bn, P("bn.safetensors"), .layout = (nb_layout)7),
             "nb_save_weights: unknown layout 7");
    FAILS_RC(nb_load_weights(bn, P("bn.safetensors"), .layout = (nb_layout)7),
             "nb_load_weights: unknown layout 7");
    nb_model *img = nb_sequential(nb_input(4, 4, 2), nb_dense(3));
    assert_int_equal(nb_build(img, 0, 1), 0);
    FAILS_RC(nb_save_weights(img, P("bn.safetensors"), .layout = NB_LAYOUT_PYTORCH),
             "nb_save_weights: ", "dense", "channels-last");
    nb_model_free(img);
    nb_model *fake = nb_sequential(nb_dense(3, .input = 3), nb_layer_new(&fake_conv, NULL, "mine"));
    assert_int_equal(nb_build(fake, 0, 1), 0);
    FAILS_RC(nb_save_weights(fake, P("bn.safetensors"), .layout = NB_LAYOUT_PYTORCH),
             "nb_save_weights: ", "'mine' (Conv2D)", "no equivalent");
    nb_model_free(fake);
    assert_int_equal(access(P("bn.safetensors"), F_OK), -1);
    nb_model_free(bn);
    nb_model_free(rnn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_classic_keys_and_values, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_classic_round_trip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_convnet_round_trip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_convnet_layout, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_partial, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_unmapped_layers, setup_dir, teardown_dir),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
