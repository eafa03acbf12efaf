/* Inference: nb_predict of the seed model on the 10,000 Fashion-MNIST test
 * images. A benchmark, not a test (docs/performance.md).
 *
 *   bench_predict [--batch B=32] [--threads N] [--warmup PASSES=2]
 *                 [--reps R=10] [--n PASSES=1] [--quick] [--data DIR]
 *
 * One pass = nb_predict(model, test images, .batch_size = B): every image
 * through the model in batches of B, the (10000, 10) softmax output as a new
 * heap tensor (freed inside the clock, as a caller would once done with it).
 * The weights are the untrained Glorot ones: the time does not depend on
 * them. Workload "predict_b<B>", unit ms/pass. */
#include <stdio.h>

#include "bench.h"

static const char *prog = "bench_predict";

int main(int argc, char **argv)
{
    bench_args a = {.threads = 1, .batch = 32, .data = "/usr/share/datasets/fashion-mnist"};
    int rc = bench_parse(argc, argv, &a, BENCH_BATCH | BENCH_DATA);
    if (rc)
        return rc == 1 ? 0 : rc;
    bench_counts(&a, 2, 10, 1);
    bench_set_threads(a.threads);

    bench_data d;
    if (bench_load_data(a.data, &d))
        return bench_fail(prog);
    nb_model *m = bench_model("seed");
    if (!m)
        return bench_fail(prog);
    char workload[32], extra[160];
    snprintf(workload, sizeof workload, "predict_b%d", a.batch);
    int64_t images = nb_dim(d.x_test, 0);
    for (int i = 0; i < a.warmup; i++) {
        nb_tensor *p =
            nb_predict(m, (nb_dataset){.x = d.x_test, .scale = BENCH_SCALE}, .batch_size = a.batch);
        if (!p)
            return bench_fail(prog);
        nb_free(p);
    }
    for (int r = 1; r <= a.reps; r++) {
        double first = 0;
        bench_clock t0 = bench_now();
        for (int i = 0; i < a.n; i++) {
            nb_tensor *y = nb_predict(m, (nb_dataset){.x = d.x_test, .scale = BENCH_SCALE},
                                      .batch_size = a.batch);
            if (!y)
                return bench_fail(prog);
            first = ((const float *)nb_data(y))[0];
            nb_free(y);
        }
        bench_clock t = bench_since(t0);
        snprintf(extra, sizeof extra,
                 "\"batch\": %d, \"images\": %lld, \"out00\": %.6g, \"warmup_units\": %d, "
                 "\"blas_core\": \"%s\"",
                 a.batch, (long long)images, first, a.warmup, bench_blas_core());
        bench_emit("nabla", workload, a.threads, r, a.n, t, "ms/pass", 1e3, extra);
    }
    nb_model_free(m);
    bench_free_data(&d);
    return 0;
}
