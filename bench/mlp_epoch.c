/* nabla side of the nabla-vs-PyTorch speed benchmark (a benchmark, not a
 * test; see bench/README.md and bench/run.sh).
 *
 *   bench_mlp [--epochs N=3] [--threads T=1] [--data DIR] [--seed S=0]
 *
 * Trains the seed model of examples/fashion_mnist.c on Fashion-MNIST through
 * the public API only: Dense(64, relu) -> Dense(32, relu) -> Dense(10,
 * softmax), Adam defaults (lr 1e-3, betas 0.9/0.999, eps 1e-7), categorical
 * cross-entropy (computed from the logits through log-softmax), batch 32,
 * reshuffled every epoch, with nb_fit's default of flushing subnormals to
 * zero while it trains (PyTorch's default is IEEE arithmetic;
 * torch.set_flush_denormal(True) is the equivalent). Prints one JSON line
 * per epoch:
 *
 *   {"impl":"nabla","epoch":k,"seconds":...,"loss":...,"test_acc":...}
 *
 * "seconds" is history->seconds: the wall time of the epoch's training loop
 * (shuffle, batch gather, forward, backward, Adam step, running loss and
 * accuracy); "cpu_seconds" is the process CPU time of the same nb_fit call
 * (robust when other jobs share the cores). The test-set evaluation after
 * each epoch (nb_evaluate, batch 32) is not included in either. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nabla/nabla.h"

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--epochs N] [--threads T] [--data DIR] [--seed S]\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *dir = "/usr/share/datasets/fashion-mnist";
    int epochs = 3, threads = 1;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage(argv[0]);
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        bool whole = *v && !*end && errno != ERANGE && n >= 1 && n <= 1000000;
        if (strcmp(a, "--epochs") == 0 && whole)
            epochs = (int)n;
        else if (strcmp(a, "--threads") == 0 && whole)
            threads = (int)n;
        else if (strcmp(a, "--data") == 0)
            dir = v;
        else if (strcmp(a, "--seed") == 0 && *v && *v != '-') {
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (*end || errno == ERANGE)
                return usage(argv[0]);
        }
        else
            return usage(argv[0]);
    }
    if (epochs < 1 || threads < 1)
        return usage(argv[0]);
    openblas_set_num_threads(threads);

    nb_tensor *x_train, *y_train, *x_test, *y_test;
    if (nb_load_mnist(dir, &x_train, &y_train, &x_test, &y_test)) {
        fprintf(stderr, "bench_mlp: %s\n", nb_last_error());
        return 1;
    }
    nb_model *model = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784),
                                    nb_dense(32, .activation = NB_RELU),
                                    nb_dense(10, .activation = NB_SOFTMAX));
    nb_compile(model, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY);
    /* One nb_fit call per epoch (the model keeps its weights and Adam state
     * between calls; each call gets its own shuffling seed), so that the
     * process CPU time of the training alone can be measured too. */
    int rc = 0;
    for (int e = 1; rc == 0 && e <= epochs; e++) {
        double c0 = cpu_seconds();
        const nb_history *h = nb_fit(model, (nb_dataset){x_train, y_train}, .epochs = 1,
                                     .batch_size = 32, .seed = seed + (unsigned long long)e,
                                     .verbose = -1);
        double cpu = cpu_seconds() - c0, acc = 0, test_loss = 0;
        if (!h || nb_evaluate(model, (nb_dataset){x_test, y_test}, 32, &test_loss, &acc)) {
            fprintf(stderr, "bench_mlp: %s\n", nb_last_error());
            rc = 1;
            break;
        }
        printf("{\"impl\": \"nabla\", \"epoch\": %d, \"seconds\": %.4f, \"cpu_seconds\": %.4f, "
               "\"loss\": %.5f, \"train_acc\": %.5f, \"test_acc\": %.5f, \"blas_core\": \"%s\"}\n",
               e, h->seconds[0], cpu, h->loss[0], h->metric[0], acc, openblas_get_corename());
        fflush(stdout);
    }
    nb_model_free(model);
    nb_free(x_train);
    nb_free(y_train);
    nb_free(x_test);
    nb_free(y_test);
    return rc;
}
