/* The Keras MNIST convnet, line for line, trained on Fashion-MNIST.
 *
 *   fashion_cnn [data-dir=/usr/share/datasets/fashion-mnist] [epochs=15] [seed=0] [bn]
 *
 * Keras (keras.io/examples/vision/mnist_convnet):
 *   x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
 *   model = keras.Sequential([
 *       keras.Input(shape=(28, 28, 1)),
 *       layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
 *       layers.MaxPooling2D(pool_size=(2, 2)),
 *       layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
 *       layers.MaxPooling2D(pool_size=(2, 2)),
 *       layers.Flatten(),
 *       layers.Dropout(0.5),
 *       layers.Dense(num_classes, activation="softmax")])
 *   model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
 *   model.fit(x_train, y_train, batch_size=128, epochs=15, validation_split=0.1)
 *
 * The images stay the bytes the files hold, (N, 784) u8 rows scaled a batch
 * at a time: the model takes them flat and its first layer is the
 * expand_dims, a Reshape to (28, 28, 1). Validation here is the test set.
 *
 * With "bn" each convolution loses its bias and is followed by
 * BatchNormalization and then its relu, as Keras users write it:
 *       layers.Conv2D(32, kernel_size=(3, 3), use_bias=False),
 *       layers.BatchNormalization(),
 *       layers.Activation("relu"), */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

static long long count_arg(int argc, char **argv, int i, long long def, long long min,
                           long long max)
{
    if (argc <= i)
        return def;
    char *end;
    errno = 0;
    long long v = strtoll(argv[i], &end, 10);
    if (!*argv[i] || *end || errno == ERANGE || v < min || v > max) {
        fprintf(stderr, "%s: '%s' is not a whole number in [%lld, %lld]\n", argv[0], argv[i],
                min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    int epochs = (int)count_arg(argc, argv, 2, 15, 1, 1000000);
    uint64_t seed = (uint64_t)count_arg(argc, argv, 3, 0, 0, INT64_MAX);

    nb_tensor *x_train, *y_train, *x_test, *y_test;
    if (nb_load_mnist(dir, &x_train, &y_train, &x_test, &y_test)) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    nb_dataset train = {x_train, y_train, .scale = 1 / 255.0};
    nb_dataset test = {x_test, y_test, .scale = 1 / 255.0};

    bool bn = argc > 4 && strcmp(argv[4], "bn") == 0;
    if (argc > 4 && !bn) {
        fprintf(stderr, "%s: the fourth argument is 'bn' or nothing, got '%s'\n", argv[0],
                argv[4]);
        return 2;
    }
    nb_model *model = bn ? nb_sequential(
        nb_input(784),
        nb_reshape_layer(28, 28, 1),
        nb_conv2d(32, {3, 3}, .no_bias = true),
        nb_batch_normalization(),
        nb_activation_layer(NB_RELU),
        nb_max_pooling2d({2, 2}),
        nb_conv2d(64, {3, 3}, .no_bias = true),
        nb_batch_normalization(),
        nb_activation_layer(NB_RELU),
        nb_max_pooling2d({2, 2}),
        nb_flatten(),
        nb_dropout(0.5),
        nb_dense(10, .activation = NB_SOFTMAX)) : nb_sequential(
        nb_input(784),
        nb_reshape_layer(28, 28, 1),
        nb_conv2d(32, {3, 3}, .activation = NB_RELU),
        nb_max_pooling2d({2, 2}),
        nb_conv2d(64, {3, 3}, .activation = NB_RELU),
        nb_max_pooling2d({2, 2}),
        nb_flatten(),
        nb_dropout(0.5),
        nb_dense(10, .activation = NB_SOFTMAX));
    if (model && nb_build(model, 0, seed) == 0)
        nb_compile(model, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY);
    nb_summary(model, stdout);
    const nb_history *history = nb_fit(model, train, .epochs = epochs, .batch_size = 128,
                                       .validation = test, .seed = seed, .verbose = NB_VERBOSE_AUTO);
    if (!history) { /* one check covers every call above: the first error is kept */
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    printf("test accuracy: %.4f\n", history->val_metric[history->epochs - 1]);

    nb_model_free(model);
    nb_free(x_train);
    nb_free(y_train);
    nb_free(x_test);
    nb_free(y_test);
    return 0;
}
