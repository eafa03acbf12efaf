/* A training loop written by hand (PyTorch's style) on the classic model:
 * nb_batches gives shuffled batches of Fashion-MNIST, each a forward, the
 * loss, backward and an optimizer step in one graph that is then reset.
 *
 *   custom_loop [data-dir=/usr/share/datasets/fashion-mnist] [epochs=2] [batch-size=32]
 *
 * PyTorch:
 *   loader = DataLoader(train, batch_size=32, shuffle=True)
 *   for epoch in range(epochs):
 *       for x, y in loader:
 *           opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step() */
#include <stdio.h>
#include <stdlib.h>

#include "nabla/nabla.h"

static int arg(int argc, char **argv, int i, int def)
{
    if (argc <= i)
        return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (!*argv[i] || *end || v < 1 || v > 1000000) {
        fprintf(stderr, "%s: '%s' is not a whole number in [1, 1000000]\n", argv[0], argv[i]);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    int epochs = arg(argc, argv, 2, 2), batch_size = arg(argc, argv, 3, 32);
    nb_tensor *x_train, *y_train, *x_test, *y_test;
    if (nb_load_mnist(dir, &x_train, &y_train, &x_test, &y_test)) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    nb_model *model = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784),
                                    nb_dense(32, .activation = NB_RELU),
                                    nb_dense(10, .activation = NB_SOFTMAX));
    nb_optimizer *opt = nb_adam();
    nb_compile(model, opt, NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY); /* the loss nb_model_loss takes */
    nb_tensor *const *params;
    int nparams = nb_model_params(model, &params);

    /* u8 images, converted a batch at a time: x_train.astype("float32") / 255 */
    nb_batches *it = nb_batches_new((nb_dataset){x_train, y_train, .scale = 1 / 255.0},
                                    .batch_size = batch_size, .seed = 1);
    nb_graph *g = nb_graph_new(); /* each step's intermediates live here */
    nb_model_set_training(model, true);
    int rc = it && g && nparams > 0 ? 0 : -1;
    for (int epoch = 0; rc == 0 && epoch < epochs; epoch++) {
        double sum = 0;
        int64_t steps = 0;
        nb_tensor *x, *y;
        while (rc == 0 && (rc = nb_batches_next(it, &x, &y)) > 0) {
            for (int i = 0; i < nparams; i++)
                nb_zero_grad(params[i]);
            nb_tensor *loss = nb_model_loss(model, nb_model_forward(model, x), y);
            rc = loss && nb_backward(loss) == 0 &&
                         nb_optimizer_step(opt, nparams, params, .loss = loss) == 0
                     ? 0
                     : -1;
            if (rc == 0) {
                sum += nb_item(loss);
                steps++;
            }
            nb_graph_reset(g);
        }
        if (rc == 0)
            printf("epoch %d: %lld batches, mean loss %.4f\n", epoch + 1, (long long)steps,
                   sum / (double)steps);
    }
    double loss = 0, acc = 0;
    if (rc == 0)
        rc = nb_evaluate(model, (nb_dataset){x_test, y_test, .scale = 1 / 255.0}, .loss = &loss,
                         .metrics = &acc, .nmetrics = 1);
    if (rc == 0)
        printf("test loss %.4f, accuracy %.4f\n", loss, acc);
    else
        fprintf(stderr, "%s\n", nb_last_error());
    nb_graph_free(g);
    nb_batches_free(it);
    nb_model_free(model);
    nb_free(x_train);
    nb_free(y_train);
    nb_free(x_test);
    nb_free(y_test);
    return rc == 0 ? 0 : 1;
}
