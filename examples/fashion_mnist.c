/* The classic Keras example, line for line, trained on Fashion-MNIST.
 *
 *   fashion_mnist [data-dir=/usr/share/datasets/fashion-mnist] [epochs=10]
 *
 * Keras:
 *   (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
 *   x_train = x_train.reshape(-1, 784).astype("float32") / 255
 *   x_test = x_test.reshape(-1, 784).astype("float32") / 255
 *   y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
 *   model = Sequential()
 *   model.add(Dense(64, activation='relu', input_shape=(784,)))
 *   model.add(Dense(32, activation='relu'))
 *   model.add(Dense(10, activation='softmax'))
 *   model.compile(optimizer='adam', loss='categorical_crossentropy', metrics=['accuracy'])
 *   model.summary()
 *   model.fit(x_train, y_train, epochs=10, batch_size=32, validation_data=(x_test, y_test))
 *   loss, acc = model.evaluate(x_test, y_test, verbose=2)
 *
 * nabla keeps the images as the bytes the files hold (u8, a quarter of the
 * memory): the "/ 255" is the data set's scale, applied a batch at a time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "nabla/nabla.h"

/* argv[i] as a whole number in [1, max], def when absent; exits on anything
 * else (no silent truncation: 4294967297 is not 1). */
static int count_arg(int argc, char **argv, int i, int def, long long max)
{
    if (argc <= i)
        return def;
    char *end;
    errno = 0;
    long long v = strtoll(argv[i], &end, 10);
    if (!*argv[i] || *end || errno == ERANGE || v < 1 || v > max) {
        fprintf(stderr, "%s: '%s' is not a whole number in [1, %lld]\n", argv[0], argv[i], max);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    int epochs = count_arg(argc, argv, 2, 10, 1000000);

    nb_tensor *x_train, *y_train, *x_test, *y_test; /* u8 (N,784) images, one-hot labels */
    if (nb_load_mnist(dir, &x_train, &y_train, &x_test, &y_test)) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    nb_dataset train = {x_train, y_train, .scale = 1 / 255.0}; /* x_train.astype("float32") / 255 */
    nb_dataset test = {x_test, y_test, .scale = 1 / 255.0};

    nb_model *model = nb_sequential(
        nb_dense(64, .activation = NB_RELU, .input = 784),
        nb_dense(32, .activation = NB_RELU),
        nb_dense(10, .activation = NB_SOFTMAX));
    nb_compile(model, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY);
    nb_summary(model, stdout);
    const nb_history *history =
        nb_fit(model, train, .epochs = epochs, .batch_size = 32, .validation = test,
               .verbose = NB_VERBOSE_AUTO);
    double loss, acc;
    if (!history || nb_evaluate(model, test, .loss = &loss, .metrics = &acc, .nmetrics = 1,
                                .verbose = 2)) { /* the first error of any call above is kept */
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    printf("test accuracy: %.4f\n", acc);

    nb_model_free(model);
    nb_free(x_train);
    nb_free(y_train);
    nb_free(x_test);
    nb_free(y_test);
    return 0;
}
