/* A whole Fashion-MNIST training epoch of the seed model (or the convnet,
 * --model cnn, bench_model), data handling
 * included: nb_fit(.epochs = 1, .batch_size = 32), once per epoch (the model
 * keeps its weights and Adam state between calls; each call shuffles with
 * its own seed). A benchmark, not a test (docs/performance.md).
 *
 *   bench_epoch [--warmup EPOCHS=1] [--reps EPOCHS=2] [--batch 32] [--model seed|cnn]
 *               [--threads N] [--quick] [--data DIR]
 *   bench_epoch --epochs N ...     (bench_mlp's form: --warmup 0 --reps N)
 *
 * One line per epoch (workload "epoch_b<B>", or "epoch_cnn_b<B>", unit s/epoch, n 1): "wall" and
 * "cpu" span the whole nb_fit call: packing, shuffling, batch gathers,
 * forward, backward, Adam, the running loss and accuracy (nb_fit keeps them,
 * as Keras does). "fit_seconds" is nb_fit's own history->seconds (its
 * training loop only). Warm-up epochs are printed too, with "warmup": true.
 * The test-set accuracy (nb_evaluate, batch 32, not timed) rides on the last
 * line. Loading the data is not timed; bench/run.sh also runs this with
 * --warmup 0 --reps 10 under /usr/bin/time -v for the peak RSS of a
 * 10-epoch run. (bench/ab.sh reads these lines, and bench_mlp's older ones.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const char *prog = "bench_epoch";

int main(int argc, char **argv)
{
    /* --epochs N, the option of bench_mlp before it (bench/ab.sh runs old
     * builds too): N timed epochs and no warm-up. */
    int epochs = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--epochs") == 0) {
            epochs = atoi(argv[i + 1]);
            if (epochs < 1) {
                fprintf(stderr, "%s: --epochs needs a whole number >= 1\n", prog);
                return 2;
            }
            memmove(argv + i, argv + i + 2, (size_t)(argc - i - 1) * sizeof *argv);
            argc -= 2;
            break;
        }
    bench_args a = {.threads = 1, .batch = 32, .model = "seed",
                    .data = "/usr/share/datasets/fashion-mnist"};
    int rc = bench_parse(argc, argv, &a, BENCH_BATCH | BENCH_DATA | BENCH_MODEL | BENCH_CNN);
    if (rc)
        return rc == 1 ? 0 : rc;
    bench_counts(&a, epochs ? 0 : 1, epochs ? epochs : 2, 1);
    if (a.quick) /* a whole epoch is the unit: a quick run does one of each */
        a.reps = 1;
    bench_set_threads(a.threads);

    bench_data d;
    if (bench_load_data(a.data, &d))
        return bench_fail(prog);
    if (strcmp(a.model, "wide") == 0) {
        fprintf(stderr, "%s: --model seed or cnn\n", prog);
        return 2;
    }
    bool cnn = strcmp(a.model, "cnn") == 0;
    nb_model *m = bench_model(a.model);
    if (!m)
        return bench_fail(prog);
    char workload[32], extra[320];
    snprintf(workload, sizeof workload, cnn ? "epoch_cnn_b%d" : "epoch_b%d", a.batch);
    int total = a.warmup + a.reps;
    for (int e = 1; rc == 0 && e <= total; e++) {
        bench_clock t0 = bench_now();
        const nb_history *h = nb_fit(m, (nb_dataset){d.x_train, d.y_train, BENCH_SCALE}, .epochs = 1,
                                     .batch_size = a.batch, .seed = (uint64_t)e);
        bench_clock t = bench_since(t0);
        if (!h) {
            rc = bench_fail(prog);
            break;
        }
        int len = snprintf(extra, sizeof extra,
                           "\"epoch\": %d, \"batch\": %d, \"fit_seconds\": %.6g, \"loss\": %.5f, "
                           "\"train_acc\": %.5f, \"blas_core\": \"%s\"%s",
                           e, a.batch, h->seconds[0], h->loss[0], h->metric[0], bench_blas_core(),
                           e <= a.warmup ? ", \"warmup\": true" : "");
        double acc = 0, test_loss = 0;
        if (e == total) {
            if (nb_evaluate(m, (nb_dataset){d.x_test, d.y_test, BENCH_SCALE}, .batch_size = 32,
                            .loss = &test_loss, .metrics = &acc, .nmetrics = 1)) {
                rc = bench_fail(prog);
                break;
            }
            snprintf(extra + len, sizeof extra - (size_t)len, ", \"test_acc\": %.5f", acc);
        }
        bench_emit("nabla", workload, a.threads, e - a.warmup, 1, t, "s/epoch", 1, extra);
    }
    nb_model_free(m);
    bench_free_data(&d);
    return rc;
}
