/* What the nabla benchmark programs share (the programs in bench/; a benchmark, not a
 * test: see docs/performance.md). Arguments, clocks, the thread setting,
 * the data and the JSON lines they print:
 *
 *   {"impl": "nabla", "workload": "step_seed_b32", "threads": 1, "rep": 3,
 *    "n": 200, "wall": 0.0213, "cpu": 0.0212, "unit": "us/step",
 *    "per_unit": 106.5, ...}
 *
 * One line per timed repetition, after the warm-up: "wall" and "cpu" are
 * the wall-clock and process CPU seconds of the whole repetition, "n" the
 * units it ran (steps, chains, passes, ...), "per_unit" = wall / n in
 * "unit". Warm-up repetitions (the epoch program prints them) carry
 * "warmup": true and are left out of every statistic. */
#ifndef NABLA_BENCH_H
#define NABLA_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/nabla.h"

/* The options every program takes; each sets its defaults before
 * bench_parse. A field a program does not use is refused on its command
 * line (its `accepts` mask). */
typedef struct bench_args {
    int threads;       /* --threads N: BLAS (and later nabla) threads */
    int warmup;        /* --warmup N: untimed units (or repetitions) first */
    int reps;          /* --reps N: timed repetitions */
    int n;             /* --n N: units per repetition */
    bool quick;        /* --quick: a short run that only shows it works */
    int batch;         /* --batch N */
    const char *model; /* --model seed|wide (|cnn with BENCH_CNN) */
    const char *data;  /* --data DIR (Fashion-MNIST, IDX files) */
} bench_args;

enum {
    BENCH_BATCH = 1u << 0,
    BENCH_MODEL = 1u << 1,
    BENCH_DATA = 1u << 2,
    BENCH_CNN = 1u << 3, /* --model also takes cnn */
};

/* Parses argv into a (which holds the defaults; warmup, reps and n are
 * left -1 unless given, for bench_counts). Prints the usage and returns 2
 * on a bad argument; returns 1 after --help (the usage) or --info (a JSON
 * line with the OpenBLAS kernel, configuration and threads); 0 when fine. */
int bench_parse(int argc, char **argv, bench_args *a, unsigned accepts);
/* Fills warmup, reps and n where the command line left them; with --quick
 * those defaults shrink to reps 2 and a tenth of n and warmup (at least 1
 * each, warm-up 0 stays 0). */
void bench_counts(bench_args *a, int warmup, int reps, int n);

/* The one place the benchmarks set the thread count: OpenBLAS's for now,
 * nb_set_num_threads(n) once the library has it. */
void bench_set_threads(int n);
/* openblas_get_corename(): the GEMM kernel OpenBLAS picked for this CPU. */
const char *bench_blas_core(void);

typedef struct bench_clock {
    double wall, cpu; /* seconds: CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID */
} bench_clock;
bench_clock bench_now(void);
/* The wall clock alone (cheaper than bench_now: no system call). */
double bench_wall(void);
/* b - a, field by field. */
bench_clock bench_since(bench_clock a);

/* Fashion-MNIST as the benchmarks use it: x (N, 784) f32 in [0, 1],
 * y (N, 10) one-hot f32. The only place that loads it, so a change in
 * nb_load_mnist's types (u8 images and a scale) is made here. */
/* The bytes of the images to [0, 1], as Keras's x / 255. */
#define BENCH_SCALE (1 / 255.0)
typedef struct bench_data {
    nb_tensor *x_train, *y_train, *x_test, *y_test;
} bench_data;
int bench_load_data(const char *dir, bench_data *d);
void bench_free_data(bench_data *d);
/* The first `rows` rows of x as a new contiguous heap tensor: the fixed
 * batch of the step benchmarks. NULL on error. */
nb_tensor *bench_rows(nb_tensor *x, int64_t rows);

/* The benchmark models, compiled with nb_adam() (Keras defaults) and
 * categorical cross-entropy (from the logits): "seed" 784-64-32-10 and
 * "wide" 784-1024-1024-10, relu, relu, softmax; "cnn" the Keras MNIST
 * convnet of examples/fashion_cnn.c (flat 784 inputs reshaped to 28x28x1,
 * Conv2D 32 3x3 relu, MaxPooling 2, Conv2D 64 3x3 relu, MaxPooling 2,
 * Flatten, Dropout 0.5, Dense 10 softmax). NULL on error. */
nb_model *bench_model(const char *name);

/* Prints one JSON line (see the top of this file): impl, workload, threads,
 * rep, n, wall, cpu, unit and per_unit = t.wall / n * scale (scale turns
 * seconds into the unit: 1e6 for us), then `extra` (a JSON fragment such
 * as "\"gflops\": 12.5", or NULL), and flushes. */
void bench_emit(const char *impl, const char *workload, int threads, int rep, int64_t n,
                bench_clock t, const char *unit, double scale, const char *extra);

/* Prints nb_last_error() after prog's name and returns 1. */
int bench_fail(const char *prog);

#endif
