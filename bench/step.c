/* One training step on a fixed batch, as Keras's train_on_batch and a
 * PyTorch step do it: forward, loss, zeroed gradients, backward, Adam step,
 * and the loss read back (nb_item). A benchmark, not a test
 * (docs/performance.md).
 *
 *   bench_step [--model seed|wide|cnn] [--batch B] [--threads N]
 *              [--warmup STEPS] [--reps R] [--n STEPS] [--quick] [--data DIR]
 *
 * The batch is the first B training images of Fashion-MNIST and their
 * one-hot labels. Models (bench_model): seed 784-64-32-10, wide
 * 784-1024-1024-10; relu, relu, softmax; cnn the Keras MNIST convnet; Adam
 * defaults; categorical cross-entropy from the logits. The model is in
 * training mode (the convnet's Dropout drops), as train_on_batch and
 * PyTorch's train() are. Subnormals are flushed while it runs, as nb_fit
 * does. Workload "step_<model>_b<B>", unit us/step.
 *
 * "gflops" counts 2*m*n*k for every matmul of the step: per Dense layer of
 * din -> dout at batch B the forward product (B x din @ din x dout), the
 * kernel gradient (din x B @ B x dout) and the input gradient
 * (B x dout @ dout x din), except that the first layer has no input
 * gradient. The convnet's convolutions count likewise as the products of
 * im2col rows with the kernel, (B*OH*OW) x (KH*KW*C) @ (KH*KW*C) x F.
 * Nothing else (bias, relu, pooling, softmax, Adam) is counted. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const char *prog = "bench_step";

/* FLOPs of the matmuls of one step (see the top of the file). */
static double step_flops(const int64_t *dims, int layers, int64_t batch)
{
    double f = 0;
    for (int l = 0; l < layers; l++)
        f += 2.0 * (double)batch * (double)dims[l] * (double)dims[l + 1] * (l == 0 ? 2 : 3);
    return f;
}

/* The convnet's: conv 28x28x1 -> 26x26x32 and 13x13x32 -> 11x11x64 (3x3),
 * Dense 1600 -> 10; the first layer has no input gradient. */
static double cnn_flops(int64_t batch)
{
    double b = (double)batch;
    return 2.0 * b * (26 * 26 * 32 * 9.0 * 2 + 11 * 11 * 64 * 288.0 * 3 + 1600 * 10.0 * 3);
}

/* One step; the loss, or a NaN with the error set. */
static double step(nb_model *m, nb_graph *g, nb_tensor *x, nb_tensor *y, int np,
                   nb_tensor *const *params)
{
    nb_tensor *loss = nb_model_loss(m, nb_model_forward(m, x), y);
    for (int i = 0; i < np; i++)
        nb_zero_grad(params[i]);
    double l = -1;
    if (loss && nb_backward(loss) == 0 &&
        nb_optimizer_step(nb_model_optimizer(m), np, params, .loss = loss) == 0)
        l = nb_item(loss);
    nb_graph_reset(g);
    return l >= 0 ? l : (double)NAN;
}

int main(int argc, char **argv)
{
    bench_args a = {.threads = 1, .model = "seed", .batch = 32,
                    .data = "/usr/share/datasets/fashion-mnist"};
    int rc = bench_parse(argc, argv, &a, BENCH_BATCH | BENCH_MODEL | BENCH_DATA | BENCH_CNN);
    if (rc)
        return rc == 1 ? 0 : rc;
    /* Defaults by size: some 20-100 ms of work per repetition. */
    bool wide = strcmp(a.model, "wide") == 0, cnn = strcmp(a.model, "cnn") == 0;
    int per = (wide ? 1280 : cnn ? 384 : 6400) / a.batch;
    bench_counts(&a, wide || cnn ? 5 : 50, 10, per > 3 ? per : 3);
    bench_set_threads(a.threads);

    int64_t dims[4] = {784, wide ? 1024 : 64, wide ? 1024 : 32, 10};
    double flops = cnn ? cnn_flops(a.batch) : step_flops(dims, 3, a.batch);
    bench_data d;
    if (bench_load_data(a.data, &d))
        return bench_fail(prog);
    nb_tensor *x = bench_rows(d.x_train, a.batch), *y = bench_rows(d.y_train, a.batch);
    bench_free_data(&d);
    nb_model *m = bench_model(a.model);
    nb_model_set_training(m, true);
    nb_tensor *const *params = NULL;
    int np = m ? nb_model_params(m, &params) : -1;
    nb_graph *g = nb_graph_new();
    if (!x || !y || np < 0 || !g)
        return bench_fail(prog);
    bool ftz = nb_set_flush_subnormals(true);

    char workload[64], extra[256];
    snprintf(workload, sizeof workload, "step_%s_b%d", a.model, a.batch);
    double loss = 0;
    for (int i = 0; i < a.warmup; i++)
        loss = step(m, g, x, y, np, params);
    for (int r = 1; r <= a.reps && loss == loss; r++) {
        bench_clock t0 = bench_now();
        for (int i = 0; i < a.n; i++)
            loss = step(m, g, x, y, np, params);
        bench_clock t = bench_since(t0);
        snprintf(extra, sizeof extra,
                 "\"model\": \"%s\", \"batch\": %d, \"flops_per_step\": %.0f, \"gflops\": %.4g, "
                 "\"loss\": %.5g, \"warmup_units\": %d, \"blas_core\": \"%s\"",
                 a.model, a.batch, flops, flops * a.n / t.wall * 1e-9, loss, a.warmup,
                 bench_blas_core());
        bench_emit("nabla", workload, a.threads, r, a.n, t, "us/step", 1e6, extra);
    }
    nb_set_flush_subnormals(ftz);
    rc = loss == loss ? 0 : bench_fail(prog);
    nb_graph_free(g);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    return rc;
}
