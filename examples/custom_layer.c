/* A layer of your own next to the built-in ones: a per-feature affine map
 * y = x * gamma + beta, with both as trainable weights, written with ops.
 * It goes into nb_sequential like any layer, shows in the summary, trains,
 * and is saved with the model's weights ("affine.gamma", ...).
 *
 *   build/custom_layer            trains on two noisy rings, prints the
 *                                 summary and the accuracy */
#include <math.h>
#include <stdio.h>

#include "nabla/nabla.h"

/* build: the output has the input's shape; the weights are made here. */
static int affine_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                        nb_rng *rng)
{
    (void)rng;
    int64_t features = in[ndim - 1];
    if (nb_layer_weight(l, "gamma", nb_full(NB_F32, 1, &features, 1.0), true) < 0 ||
        nb_layer_weight(l, "beta", nb_zeros(NB_F32, 1, &features), true) < 0)
        return -1;
    *out_ndim = ndim;
    for (int i = 0; i < ndim; i++)
        out[i] = in[i];
    return 0;
}

/* forward: ops only, so the engine differentiates it; the weights are
 * fetched each time (nb_model_set_dtype may replace them). */
static nb_tensor *affine_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    return nb_add(nb_mul(x, nb_layer_get(l, 0)), nb_layer_get(l, 1));
}

static const nb_layer_type affine_type = {
    .type = "Affine", .prefix = "affine", .build = affine_build, .forward = affine_forward};

static nb_layer *affine(void) { return nb_layer_new(&affine_type, NULL, NULL); }

int main(void)
{
    /* Two rings of radius 1 and 2 with noise: class = ring. */
    enum { N = 512 };
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(N, 2)), *y = nb_zeros(NB_F32, NB_SHAPE(N, 2));
    nb_rng rng = nb_rng_new(1);
    for (int i = 0; i < N; i++) {
        double a = 6.283185307179586 * nb_rng_uniform(&rng);
        double r = (i % 2 ? 2.0 : 1.0) + 0.3 * (nb_rng_uniform(&rng) - 0.5);
        nb_set(x, 2, (int64_t[]){i, 0}, r * cos(a));
        nb_set(x, 2, (int64_t[]){i, 1}, r * sin(a));
        nb_set(y, 2, (int64_t[]){i, i % 2}, 1.0);
    }
    nb_model *m = nb_sequential(nb_dense(16, .activation = NB_RELU, .input = 2), affine(),
                                nb_dense(2, .activation = NB_SOFTMAX));
    if (!m || nb_compile(m, nb_adam(.lr = 0.02), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY)) {
        fprintf(stderr, "custom_layer: %s\n", nb_last_error());
        return 1;
    }
    nb_summary(m, stdout);
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 40, .batch_size = 32,
                                 .seed = 3);
    double loss = NAN, acc = NAN;
    if (!h || nb_evaluate(m, (nb_dataset){x, y, 0}, .batch_size = 64, .loss = &loss,
                          .metrics = &acc, .nmetrics = 1)) {
        fprintf(stderr, "custom_layer: %s\n", nb_last_error());
        return 1;
    }
    printf("loss %.4f, accuracy %.4f\n", loss, acc);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    return acc > 0.95 ? 0 : 1;
}
