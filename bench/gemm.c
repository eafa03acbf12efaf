/* Raw sgemm on the matmul shapes of an MLP training step: what the BLAS
 * alone does with the products bench_step counts. A benchmark, not a test
 * (docs/performance.md).
 *
 *   bench_gemm [--impl openblas|onednn|all] [--model wide|seed] [--batch B=256]
 *              [--threads N] [--warmup SETS=2] [--reps R=10] [--n SETS] [--quick]
 *
 * The products of one step (row-major, as cblas_sgemm(CblasRowMajor) and
 * dnnl_sgemm take them), per Dense layer din -> dout at batch B:
 *   forward        NN  M=B    N=dout K=din   (x @ W)
 *   kernel grad    TN  M=din  N=dout K=B     (x^T @ dy)
 *   input grad     NT  M=B    N=din  K=dout  (dy @ W^T; not for the first layer)
 * alpha 1, beta 0, operands filled with uniform values in [-1, 1). One set
 * = each product once, in that order, layer by layer; its FLOPs are
 * 2*M*N*K summed (the step's "flops_per_step"). Each repetition times n
 * sets (workload "gemm_<model>_b<B>", unit ms/set, with "gflops"), then each
 * product n times alone (workload "gemm_shape", with "shape" and "gflops").
 * Implementations: "openblas" (cblas_sgemm; threads by
 * openblas_set_num_threads) and, when built with oneDNN, "onednn"
 * (dnnl_sgemm; threads by omp_set_num_threads / OMP_NUM_THREADS);
 * --impl onednn exits with status 3 when it was built without. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifdef BENCH_HAVE_DNNL
#include <dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#endif

static const char *prog = "bench_gemm";

typedef struct product {
    char ta, tb;
    int64_t m, n, k;
    float *a, *b, *c;
} product;

static float *filled(int64_t count, unsigned *state)
{
    float *p = malloc((size_t)count * sizeof *p);
    for (int64_t i = 0; p && i < count; i++) {
        *state = *state * 1664525u + 1013904223u;
        p[i] = (float)(*state >> 8) / 8388608.0f - 1.0f;
    }
    return p;
}

/* The products of one step of dims[0] -> ... -> dims[layers] at batch b. */
static int products(product *p, const int64_t *dims, int layers, int64_t b)
{
    int k = 0;
    for (int l = 0; l < layers; l++) {
        int64_t din = dims[l], dout = dims[l + 1];
        p[k++] = (product){'N', 'N', b, dout, din, NULL, NULL, NULL};
        p[k++] = (product){'T', 'N', din, dout, b, NULL, NULL, NULL};
        if (l > 0)
            p[k++] = (product){'N', 'T', b, din, dout, NULL, NULL, NULL};
    }
    unsigned state = 12345;
    for (int i = 0; i < k; i++) {
        p[i].a = filled(p[i].m * p[i].k, &state);
        p[i].b = filled(p[i].k * p[i].n, &state);
        p[i].c = calloc((size_t)(p[i].m * p[i].n), sizeof(float));
        if (!p[i].a || !p[i].b || !p[i].c)
            return -1;
    }
    return k;
}

static void run(const product *p, bool dnnl)
{
    int64_t lda = p->ta == 'N' ? p->k : p->m, ldb = p->tb == 'N' ? p->n : p->k;
#ifdef BENCH_HAVE_DNNL
    if (dnnl) {
        dnnl_sgemm(p->ta, p->tb, p->m, p->n, p->k, 1.0f, p->a, lda, p->b, ldb, 0.0f, p->c, p->n);
        return;
    }
#else
    (void)dnnl;
#endif
    cblas_sgemm(CblasRowMajor, p->ta == 'N' ? CblasNoTrans : CblasTrans,
                p->tb == 'N' ? CblasNoTrans : CblasTrans, (int)p->m, (int)p->n, (int)p->k, 1.0f,
                p->a, (int)lda, p->b, (int)ldb, 0.0f, p->c, (int)p->n);
}

static double flops(const product *p)
{
    return 2.0 * (double)p->m * (double)p->n * (double)p->k;
}

int main(int argc, char **argv)
{
    /* --impl openblas|onednn|all (all: those built), this program's own
     * option; bench/run.sh runs each in its own process, since the two
     * libraries' thread pools spin and slow each other down at 2 threads. */
    const char *which = "all";
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--impl") == 0) {
            which = argv[i + 1];
            memmove(argv + i, argv + i + 2, (size_t)(argc - i - 1) * sizeof *argv);
            argc -= 2;
            break;
        }
    bool want[2] = {strcmp(which, "all") == 0 || strcmp(which, "openblas") == 0,
                    strcmp(which, "all") == 0 || strcmp(which, "onednn") == 0};
    if (!want[0] && !want[1]) {
        fprintf(stderr, "%s: --impl takes openblas, onednn or all\n", prog);
        return 2;
    }
#ifndef BENCH_HAVE_DNNL
    if (strcmp(which, "onednn") == 0) {
        fprintf(stderr, "%s: built without oneDNN (libdnnl was not found)\n", prog);
        return 3;
    }
    want[1] = false;
#endif
    bench_args a = {.threads = 1, .model = "wide", .batch = 256};
    int rc = bench_parse(argc, argv, &a, BENCH_BATCH | BENCH_MODEL);
    if (rc)
        return rc == 1 ? 0 : rc;
    bool wide = strcmp(a.model, "wide") == 0;
    bench_counts(&a, 2, 10, wide ? 5 : 200);
    openblas_set_num_threads(a.threads); /* the BLAS itself, whatever nabla does */
#if defined(BENCH_HAVE_DNNL) && defined(_OPENMP)
    omp_set_num_threads(a.threads);
#endif

    int64_t dims[4] = {784, wide ? 1024 : 64, wide ? 1024 : 32, 10};
    product p[9];
    int np = products(p, dims, 3, a.batch);
    if (np < 0) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    double set_flops = 0;
    for (int i = 0; i < np; i++)
        set_flops += flops(&p[i]);

    const char *impls[2] = {"openblas", "onednn"};
    char extra[512], version[64] = "";
#ifdef BENCH_HAVE_DNNL
    const dnnl_version_t *dv = dnnl_version();
    snprintf(version, sizeof version, ", \"onednn_version\": \"%d.%d.%d\"", dv->major, dv->minor,
             dv->patch);
#endif
    char workload[48];
    snprintf(workload, sizeof workload, "gemm_%s_b%d", a.model, a.batch);
    for (int r = 0; r <= a.reps; r++) { /* r = 0: the warm-up */
        int sets = r ? a.n : a.warmup;
        for (int q = 0; q < 2; q++) {
            if (!want[q])
                continue;
            bool dnnl = q == 1;
            bench_clock t0 = bench_now();
            for (int s = 0; s < sets; s++)
                for (int i = 0; i < np; i++)
                    run(&p[i], dnnl);
            bench_clock t = bench_since(t0);
            if (r == 0)
                continue;
            snprintf(extra, sizeof extra,
                     "\"model\": \"%s\", \"batch\": %d, \"products\": %d, \"flops_per_set\": %.0f, "
                     "\"gflops\": %.4g, \"blas_core\": \"%s\"%s",
                     a.model, a.batch, np, set_flops, set_flops * sets / t.wall * 1e-9,
                     bench_blas_core(), version);
            bench_emit(impls[q], workload, a.threads, r, sets, t, "ms/set", 1e3, extra);
            for (int i = 0; r && i < np; i++) {
                t0 = bench_now();
                for (int s = 0; s < sets; s++)
                    run(&p[i], dnnl);
                t = bench_since(t0);
                snprintf(extra, sizeof extra,
                         "\"shape\": \"%c%c %lldx%lldx%lld\", \"of\": \"%s\", \"gflops\": %.4g",
                         p[i].ta, p[i].tb, (long long)p[i].m, (long long)p[i].n,
                         (long long)p[i].k, workload, flops(&p[i]) * sets / t.wall * 1e-9);
                bench_emit(impls[q], "gemm_shape", a.threads, r, sets, t, "ms/call", 1e3, extra);
            }
        }
    }
    for (int i = 0; i < np; i++) {
        free(p[i].a);
        free(p[i].b);
        free(p[i].c);
    }
    return 0;
}
