/* Recurrent layers (nn.h): SimpleRNN, LSTM and GRU against loops written
 * from Keras's equations, their summaries, gradients, and two tasks the
 * test generates: a noisy sequence classified by its first step (a
 * long-range dependency) and a bag of tokens through an Embedding. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>

static void test_summaries(void **state)
{
    (void)state;
    /* Keras's Embedding + LSTM model: 16,000 + 6,272 + 33. */
    nb_model *m = nb_sequential(nb_input(20), nb_embedding(1000, 16), nb_lstm(32), nb_dense(1));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 1), 0);
    char *s = summary_of(m);
    if (!strstr(s, "lstm (LSTM)") || !strstr(s, "(None, 32)") || !strstr(s, "6,272") ||
        !strstr(s, "Total params: 22,305 (87.13 KB)"))
        fail_msg("summary:\n%s", s);
    free(s);
    nb_model_free(m);
    m = nb_sequential(nb_input(7, 5), nb_gru(4, .return_sequences = true), nb_simple_rnn(3));
    assert_int_equal(nb_build(m, 0, 1), 0);
    s = summary_of(m);
    /* GRU: 3 * (5*4 + 4*4 + 2*4) = 132; SimpleRNN: 4*3 + 3*3 + 3 = 24 */
    if (!strstr(s, "gru (GRU)") || !strstr(s, "(None, 7, 4)") || !strstr(s, "132") ||
        !strstr(s, "simple_rnn (SimpleRNN)") || !strstr(s, "24"))
        fail_msg("summary:\n%s", s);
    free(s);
    nb_model_free(m);
}

static double sig(double v) { return 1 / (1 + exp(-v)); }

/* Keras's step equations, in double, from the layer's own weights. */
static void reference(int kind, const nb_tensor *W, const nb_tensor *U, const nb_tensor *B,
                      const double *x, int64_t n, int64_t T, int64_t f, int64_t u, double *hs)
{
    int g = kind == 0 ? 1 : kind == 1 ? 4 : 3;
    for (int64_t s = 0; s < n; s++) {
        double h[8] = {0}, c[8] = {0}, zx[32], zh[32];
        for (int64_t t = 0; t < T; t++) {
            for (int j = 0; j < g * u; j++) {
                zx[j] = kind == 2 ? nb_get(B, 2, (const int64_t[]){0, j}) : nb_get_flat(B, j);
                zh[j] = kind == 2 ? nb_get(B, 2, (const int64_t[]){1, j}) : 0;
                for (int64_t k = 0; k < f; k++)
                    zx[j] += x[(s * T + t) * f + k] * nb_get(W, 2, (const int64_t[]){k, j});
                for (int64_t k = 0; k < u; k++)
                    zh[j] += h[k] * nb_get(U, 2, (const int64_t[]){k, j});
            }
            for (int64_t j = 0; j < u; j++) {
                if (kind == 0) {
                    hs[(s * T + t) * u + j] = tanh(zx[j] + zh[j]);
                } else if (kind == 1) {
                    double a[4];
                    for (int q = 0; q < 4; q++)
                        a[q] = zx[q * u + j] + zh[q * u + j];
                    c[j] = sig(a[1]) * c[j] + sig(a[0]) * tanh(a[2]);
                    hs[(s * T + t) * u + j] = sig(a[3]) * tanh(c[j]);
                } else {
                    double z = sig(zx[j] + zh[j]), r = sig(zx[u + j] + zh[u + j]);
                    double hh = tanh(zx[2 * u + j] + r * zh[2 * u + j]);
                    hs[(s * T + t) * u + j] = z * h[j] + (1 - z) * hh;
                }
            }
            for (int64_t j = 0; j < u; j++)
                h[j] = hs[(s * T + t) * u + j];
        }
    }
}

static void test_values(void **state)
{
    (void)state;
    const int64_t n = 2, T = 4, f = 3, u = 3;
    nb_rng r = nb_rng_new(9);
    for (int kind = 0; kind < 3; kind++) {
        nb_layer *l = kind == 0 ? nb_simple_rnn(u, .return_sequences = true)
                      : kind == 1 ? nb_lstm(u, .return_sequences = true)
                                  : nb_gru(u, .return_sequences = true);
        nb_model *m = nb_sequential(nb_input(T, f), l);
        assert_non_null(m);
        assert_int_equal(nb_build(m, 0, (uint64_t)kind + 1), 0);
        assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
        nb_tensor *const *p;
        assert_int_equal(nb_model_params(m, &p), 3);
        /* Non-zero biases, so that their placement shows. */
        for (int64_t i = 0; i < nb_numel(p[2]); i++)
            ((double *)nb_data(p[2]))[i] = 0.3 * nb_rng_uniform(&r) - 0.1;
        nb_bump_version(p[2]);
        nb_graph *g = nb_graph_new();
        nb_tensor *x = nb_randn(NB_F64, 3, (const int64_t[]){n, T, f}, &r);
        nb_tensor *y = nb_contiguous(nb_model_forward(m, x));
        assert_non_null(y);
        assert_int_equal(nb_ndim(y), 3);
        double want[2 * 4 * 3];
        reference(kind, p[0], p[1], p[2], nb_data(x), n, T, f, u, want);
        for (int64_t i = 0; i < n * T * u; i++)
            if (fabs(((double *)nb_data(y))[i] - want[i]) > 1e-12)
                fail_msg("kind %d, element %lld: %.17g, Keras's equations %.17g", kind,
                         (long long)i, ((double *)nb_data(y))[i], want[i]);
        nb_free(x);
        nb_graph_free(g);
        nb_model_free(m);
    }
}


static void test_gradients(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_input(5, 2), nb_gru(3, .return_sequences = true), nb_lstm(2),
                                nb_dense(2, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    assert_int_equal(nb_model_set_dtype(m, NB_F64), 0);
    nb_rng r = nb_rng_new(4);
    model_ctx c = {m, nb_randn(NB_F64, 3, (const int64_t[]){3, 5, 2}, &r),
                nb_zeros(NB_F64, NB_SHAPE(3, 2))};
    for (int i = 0; i < 3; i++)
        nb_set(c.y, NB_AT(i, i % 2), 1.0);
    if (!model_gradcheck(&c, 8))
        fail_msg("GRU + LSTM fail gradcheck");
    nb_free(c.x);
    nb_free(c.y);
    nb_model_free(m);
}

/* Sequences of noise whose class is the sign of the first step, T - 1
 * steps before the end: the model must carry it through. */
static void make_sequences(int64_t n, int64_t T, uint64_t seed, nb_tensor **x, nb_tensor **y)
{
    nb_rng r = nb_rng_new(seed);
    *x = nb_zeros(NB_F32, 3, (const int64_t[]){n, T, 1});
    *y = nb_zeros(NB_F32, NB_SHAPE(n, 2));
    float *px = nb_data(*x), *py = nb_data(*y);
    for (int64_t i = 0; i < n; i++) {
        int c = nb_rng_uniform(&r) < 0.5;
        for (int64_t t = 0; t < T; t++)
            px[i * T + t] = (float)(nb_rng_uniform(&r) - 0.5);
        px[i * T] = c ? 1.0f : -1.0f;
        py[i * 2 + c] = 1;
    }
    nb_bump_version(*x);
    nb_bump_version(*y);
}

/* The LSTM over 20 steps; the GRU, whose update gate starts at one half
 * (no forget bias), over 10. */
static void test_long_range_task(void **state)
{
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        const int64_t T = kind ? 10 : 20;
        nb_tensor *x, *y, *xt, *yt;
        make_sequences(512, T, 1, &x, &y);
        make_sequences(256, T, 2, &xt, &yt);
        nb_model *m = nb_sequential(nb_input(T, 1), kind ? nb_gru(8) : nb_lstm(8),
                                    nb_dense(2, .activation = NB_SOFTMAX));
        assert_non_null(m);
        assert_int_equal(nb_build(m, 0, 3), 0);
        assert_int_equal(nb_compile(m, nb_adam(.lr = 0.01), NB_CATEGORICAL_CROSSENTROPY,
                                    NB_ACCURACY), 0);
        const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 15, .batch_size = 32,
                                     .seed = 5);
        assert_non_null(h);
        double loss, acc;
        assert_int_equal(nb_evaluate(m, (nb_dataset){xt, yt, 0}, .batch_size = 64, .loss = &loss,
                                     .metrics = &acc, .nmetrics = 1),
                         0);
        printf("# %s over %lld steps: held-out accuracy %.4f after 15 epochs\n",
               kind ? "GRU" : "LSTM", (long long)T, acc);
        assert_true(acc >= 0.95);
        nb_model_free(m);
        nb_free(x), nb_free(y), nb_free(xt), nb_free(yt);
    }
}

/* Bags of 12 tokens from 1..49; the class is whether token 7 is among
 * them. Embedding, the mean over the sequence, a dense softmax. */
static void make_bags(int64_t n, uint64_t seed, nb_tensor **x, nb_tensor **y)
{
    nb_rng r = nb_rng_new(seed);
    *x = nb_zeros(NB_F32, NB_SHAPE(n, 12));
    *y = nb_zeros(NB_F32, NB_SHAPE(n, 2));
    float *px = nb_data(*x), *py = nb_data(*y);
    for (int64_t i = 0; i < n; i++) {
        int c = nb_rng_uniform(&r) < 0.5;
        for (int t = 0; t < 12; t++) {
            int tok;
            do
                tok = 1 + (int)nb_rng_below(&r, 49);
            while (tok == 7);
            px[i * 12 + t] = (float)tok;
        }
        if (c)
            px[i * 12 + (int)nb_rng_below(&r, 12)] = 7;
        py[i * 2 + c] = 1;
    }
    nb_bump_version(*x);
    nb_bump_version(*y);
}

static void test_text_task(void **state)
{
    (void)state;
    nb_tensor *x, *y, *xt, *yt;
    make_bags(1024, 1, &x, &y);
    make_bags(512, 2, &xt, &yt);
    nb_model *m = nb_sequential(nb_input(12), nb_embedding(50, 8), nb_global_average_pooling1d(),
                                nb_dense(2, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 3), 0);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.02), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY),
                     0);
    assert_non_null(nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 20, .batch_size = 32, .seed = 1));
    double loss, acc;
    assert_int_equal(nb_evaluate(m, (nb_dataset){xt, yt, 0}, .batch_size = 64, .loss = &loss,
                                 .metrics = &acc, .nmetrics = 1),
                     0);
    printf("# embedding + pooling: held-out accuracy %.4f after 20 epochs\n", acc);
    assert_true(acc >= 0.95);
    nb_model_free(m);
    nb_free(x), nb_free(y), nb_free(xt), nb_free(yt);
}

static void test_misuse(void **state)
{
    (void)state;
    assert_null(nb_lstm(0));
    ERR_HAS("nb_lstm: units must be at least 1, got 0");
    nb_model *m = nb_sequential(nb_input(4), nb_gru(2));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 0, 0), -1);
    ERR_HAS("nb_build: layer 'gru' (GRU) takes sequences (timesteps, features), got 1 axes");
    nb_model_free(m);
    m = nb_sequential(nb_input(4, 3, 2), nb_global_average_pooling1d());
    assert_int_equal(nb_build(m, 0, 0), -1);
    ERR_HAS("(GlobalAveragePooling1D) takes sequences");
    nb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summaries),     cmocka_unit_test(test_values),
        cmocka_unit_test(test_gradients),     cmocka_unit_test(test_long_range_task),
        cmocka_unit_test(test_text_task),     cmocka_unit_test(test_misuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
