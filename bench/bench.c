/* The benchmark programs' shared helpers (bench.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "bench.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int usage(const char *prog, unsigned accepts)
{
    fprintf(stderr,
            "usage: %s [--threads N] [--warmup N] [--reps N] [--n N] [--quick] [--info]%s%s%s\n",
            prog, accepts & BENCH_BATCH ? " [--batch N]" : "",
            !(accepts & BENCH_MODEL) ? ""
            : accepts & BENCH_CNN    ? " [--model seed|wide|cnn]"
                                     : " [--model seed|wide]",
            accepts & BENCH_DATA ? " [--data DIR]" : "");
    return 2;
}

/* v as a whole number in [lo, 10^9]; false for anything else. */
static bool whole(const char *v, int lo, int *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno == ERANGE || n < lo || n > 1000000000)
        return false;
    *out = (int)n;
    return true;
}

int bench_parse(int argc, char **argv, bench_args *a, unsigned accepts)
{
    a->warmup = a->reps = a->n = -1;
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "--quick") == 0) {
            a->quick = true;
            continue;
        }
        if (strcmp(k, "--info") == 0) {
            printf("{\"kind\": \"info\", \"blas_core\": \"%s\", \"blas_config\": \"%s\", "
                   "\"blas_threads\": %d}\n",
                   openblas_get_corename(), openblas_get_config(), openblas_get_num_threads());
            return 1;
        }
        if (strcmp(k, "--help") == 0 || strcmp(k, "-h") == 0) {
            usage(argv[0], accepts);
            return 1;
        }
        bool ok = v != NULL;
        if (!ok)
            ;
        else if (strcmp(k, "--threads") == 0)
            ok = whole(v, 1, &a->threads);
        else if (strcmp(k, "--warmup") == 0)
            ok = whole(v, 0, &a->warmup);
        else if (strcmp(k, "--reps") == 0)
            ok = whole(v, 1, &a->reps);
        else if (strcmp(k, "--n") == 0)
            ok = whole(v, 1, &a->n);
        else if (strcmp(k, "--batch") == 0 && (accepts & BENCH_BATCH))
            ok = whole(v, 1, &a->batch);
        else if (strcmp(k, "--model") == 0 && (accepts & BENCH_MODEL))
            ok = strcmp(v, "seed") == 0 || strcmp(v, "wide") == 0 ||
                         (strcmp(v, "cnn") == 0 && (accepts & BENCH_CNN))
                     ? (a->model = v, true)
                     : false;
        else if (strcmp(k, "--data") == 0 && (accepts & BENCH_DATA))
            a->data = v;
        else
            ok = false;
        if (!ok) {
            fprintf(stderr, "%s: bad argument '%s'%s%s\n", argv[0], k, v ? " " : "", v ? v : "");
            return usage(argv[0], accepts);
        }
        i++;
    }
    return 0;
}

void bench_counts(bench_args *a, int warmup, int reps, int n)
{
    if (a->quick) {
        reps = 2;
        n = n / 10 > 1 ? n / 10 : 1;
        warmup = warmup / 10 > 1 ? warmup / 10 : (warmup ? 1 : 0);
    }
    if (a->warmup < 0)
        a->warmup = warmup;
    if (a->reps < 0)
        a->reps = reps;
    if (a->n < 0)
        a->n = n;
}

void bench_set_threads(int n)
{
    nb_set_num_threads(n); /* OpenBLAS, OpenMP and oneDNN alike */
    /* A pool of more than one thread (OpenBLAS's starts with the process or
     * here) spins for about 0.1 s after it starts before it sleeps; on
     * these 2 vCPUs that slows a single-threaded workload measured at once
     * by up to 30%. Let it go to sleep first: it is not part of a step. */
    if (n > 1)
        nanosleep(&(struct timespec){0, 300000000}, NULL);
}

const char *bench_blas_core(void)
{
    return openblas_get_corename();
}

static double seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bench_clock bench_now(void)
{
    return (bench_clock){seconds(CLOCK_MONOTONIC), seconds(CLOCK_PROCESS_CPUTIME_ID)};
}

double bench_wall(void)
{
    return seconds(CLOCK_MONOTONIC);
}

bench_clock bench_since(bench_clock a)
{
    bench_clock b = bench_now();
    return (bench_clock){b.wall - a.wall, b.cpu - a.cpu};
}

int bench_load_data(const char *dir, bench_data *d)
{
    memset(d, 0, sizeof *d);
    /* nb_load_mnist gives the images as bytes (N, 784) u8 and the labels
     * one-hot f32; the data sets scale the bytes (BENCH_SCALE) per batch. */
    return nb_load_mnist(dir, &d->x_train, &d->y_train, &d->x_test, &d->y_test);
}

void bench_free_data(bench_data *d)
{
    nb_free(d->x_train);
    nb_free(d->y_train);
    nb_free(d->x_test);
    nb_free(d->y_test);
    memset(d, 0, sizeof *d);
}

nb_tensor *bench_rows(nb_tensor *x, int64_t rows)
{
    if (nb_check_tensor("bench_rows", "x", x) || nb_ndim(x) != 2 || !nb_is_contiguous(x) ||
        rows > nb_dim(x, 0)) {
        nb_set_error("bench_rows: need a contiguous 2-d tensor of at least %lld rows",
                     (long long)rows);
        return NULL;
    }
    nb_tensor *r = nb_from_array(nb_dtype_of(x), 2, (int64_t[]){rows, nb_dim(x, 1)}, nb_data(x));
    if (r && nb_dtype_of(x) == NB_U8) { /* images: the f32 a step trains on */
        nb_tensor *f = nb_scale_images(r);
        nb_free(r);
        r = f;
    }
    return r;
}

nb_model *bench_model(const char *name)
{
    if (strcmp(name, "cnn") == 0) {
        nb_model *m = nb_sequential(
            nb_input(784), nb_reshape_layer(28, 28, 1), nb_conv2d(32, {3, 3}, .activation = NB_RELU),
            nb_max_pooling2d({2, 2}), nb_conv2d(64, {3, 3}, .activation = NB_RELU),
            nb_max_pooling2d({2, 2}), nb_flatten(), nb_dropout(0.5),
            nb_dense(10, .activation = NB_SOFTMAX));
        if (!m || nb_build(m, 0, 0) ||
            nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY)) {
            nb_model_free(m);
            return NULL;
        }
        return m;
    }
    int64_t h1 = 64, h2 = 32;
    if (strcmp(name, "wide") == 0)
        h1 = h2 = 1024;
    nb_model *m = nb_sequential(nb_dense(h1, .activation = NB_RELU, .input = 784),
                                nb_dense(h2, .activation = NB_RELU),
                                nb_dense(10, .activation = NB_SOFTMAX));
    if (nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY)) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}

void bench_emit(const char *impl, const char *workload, int threads, int rep, int64_t n,
                bench_clock t, const char *unit, double scale, const char *extra)
{
    printf("{\"impl\": \"%s\", \"workload\": \"%s\", \"threads\": %d, \"rep\": %d, \"n\": %lld, "
           "\"wall\": %.6g, \"cpu\": %.6g, \"unit\": \"%s\", \"per_unit\": %.6g%s%s}\n",
           impl, workload, threads, rep, (long long)n, t.wall, t.cpu, unit,
           t.wall / (double)n * scale, extra ? ", " : "", extra ? extra : "");
    fflush(stdout);
}

int bench_fail(const char *prog)
{
    fprintf(stderr, "%s: %s\n", prog, nb_last_error());
    return 1;
}
