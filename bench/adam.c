/* The Adam step alone: nabla's nb_optimizer_step on a model's parameters
 * with fixed gradients, against a hand-written fused C loop over the same
 * buffers, both in this process. A benchmark, not a test
 * (docs/performance.md).
 *
 *   bench_adam [--model seed|wide] [--threads N] [--warmup STEPS]
 *              [--reps R=10] [--n STEPS] [--quick] [--data DIR]
 *
 * The gradients come from one backward of the model's loss on the first 32
 * training images and are then left alone. Each repetition runs n steps of
 * nabla's nb_optimizer_step(opt, params) (its temporaries in a graph reset
 * after every step), and n steps of the fused loop; the order flips every
 * repetition. The fused loop makes one pass per parameter tensor over
 * p, g and its own m and v (f32; alpha in double, once per step):
 *
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;  p -= alpha*m / (sqrt(v) + eps)
 *   alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)      (src/optim/optimizers.c)
 *
 * with Keras's defaults lr 1e-3, b1 0.9, b2 0.999, eps 1e-7. Both update
 * the parameters in place (the fused loop bumps their versions, as a
 * write through nb_data must), with subnormals flushed (as nb_fit trains).
 * A third side, "fused_c_undo", is the same loop keeping what nabla keeps
 * to undo a step whose new parameter is not finite (src/optim/optimizers.c):
 * it copies p's old value aside, writes the new m and v to second buffers
 * (swapped in after the step) and checks the new p, in the same pass, and
 * for a tensor of 1 MiB or more stores those three with streaming stores
 * where the CPU has AVX-512, as nabla's compiled update does beyond the
 * caches; it is the cost of that guarantee written by hand.
 * Workload "adam_<model>", impls "nabla", "fused_c" and "fused_c_undo",
 * unit us/step; the nabla line carries "ratio_vs_fused" and
 * "ratio_vs_undo" (its time / theirs, in the same repetition). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#include <immintrin.h>
#endif

static const char *prog = "bench_adam";

typedef struct fused {
    int n;
    float **p, **g, **m, **v;
    float **old, **m2, **v2; /* fused_c_undo's */
    int64_t *len;
    int64_t t;
} fused;

/* n zeroed floats, 64-byte aligned (as nabla's buffers): whole lines for
 * the streaming stores. */
static float *zeroed(int64_t n)
{
    size_t bytes = ((size_t)n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes);
    return p;
}

static int fused_init(fused *f, int n, nb_tensor *const *params)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    f->p = calloc((size_t)n, sizeof *f->p);
    f->g = calloc((size_t)n, sizeof *f->g);
    f->m = calloc((size_t)n, sizeof *f->m);
    f->v = calloc((size_t)n, sizeof *f->v);
    f->old = calloc((size_t)n, sizeof *f->old);
    f->m2 = calloc((size_t)n, sizeof *f->m2);
    f->v2 = calloc((size_t)n, sizeof *f->v2);
    f->len = calloc((size_t)n, sizeof *f->len);
    if (!f->p || !f->g || !f->m || !f->v || !f->old || !f->m2 || !f->v2 || !f->len)
        return -1;
    for (int i = 0; i < n; i++) {
        nb_tensor *gr = nb_grad_of(params[i]);
        if (!gr || !nb_is_contiguous(params[i]) || !nb_is_contiguous(gr))
            return nb_set_error("bench_adam: parameter %d has no packed gradient", i);
        f->len[i] = nb_numel(params[i]);
        f->p[i] = nb_data(params[i]);
        f->g[i] = nb_data(gr);
        f->m[i] = zeroed(f->len[i]);
        f->v[i] = zeroed(f->len[i]);
        f->old[i] = zeroed(f->len[i]);
        f->m2[i] = zeroed(f->len[i]);
        f->v2[i] = zeroed(f->len[i]);
        if (!f->m[i] || !f->v[i] || !f->old[i] || !f->m2[i] || !f->v2[i])
            return nb_set_error("bench_adam: out of memory");
    }
    return 0;
}

static void fused_free(fused *f)
{
    for (int i = 0; f->m && f->v && f->old && f->m2 && f->v2 && i < f->n; i++) {
        free(f->m[i]);
        free(f->v[i]);
        free(f->old[i]);
        free(f->m2[i]);
        free(f->v2[i]);
    }
    free(f->old);
    free(f->m2);
    free(f->v2);
    free(f->p);
    free(f->g);
    free(f->m);
    free(f->v);
    free(f->len);
}

/* Built for the same vector widths as nabla's own kernels
 * (NB_KERNEL_TARGETS, src/internal.h), so that the two sides differ in
 * passes over memory, not in instruction set. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void fused_row(float *restrict p, float *restrict m, float *restrict v,
                      const float *restrict g, int64_t len, float alpha)
{
    const float eps = 1e-7f, fb1 = 0.9f, fb2 = 0.999f;
    for (int64_t j = 0; j < len; j++) {
        m[j] = fb1 * m[j] + (1 - fb1) * g[j];
        v[j] = fb2 * v[j] + (1 - fb2) * g[j] * g[j];
        p[j] -= alpha * m[j] / (sqrtf(v[j]) + eps);
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static int undo_row(float *restrict p, float *restrict old, const float *restrict m,
                    const float *restrict v, float *restrict m2, float *restrict v2,
                    const float *restrict g, int64_t len, float alpha)
{
    const float eps = 1e-7f, fb1 = 0.9f, fb2 = 0.999f;
    int bad = 0;
    for (int64_t j = 0; j < len; j++) {
        float a = fb1 * m[j] + (1 - fb1) * g[j];
        float b = fb2 * v[j] + (1 - fb2) * g[j] * g[j];
        float q = p[j] - alpha * a / (sqrtf(b) + eps);
        bad |= !isfinite(q);
        old[j] = p[j];
        m2[j] = a;
        v2[j] = b;
        p[j] = q;
    }
    return bad;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define UNDO_NT 1
/* undo_row as nabla's compiled update runs it beyond the caches: the
 * three buffers written apart from the inputs with AVX-512 streaming
 * stores (they are not read again this step, and such a store does not
 * first read the line it fills), p in place; whole vectors, the tail as
 * undo_row. All pointers 64-byte aligned. */
__attribute__((target("avx512f"))) static int undo_row_nt(float *restrict p, float *restrict old,
                                                          const float *restrict m,
                                                          const float *restrict v,
                                                          float *restrict m2, float *restrict v2,
                                                          const float *restrict g, int64_t len,
                                                          float alpha)
{
    const __m512 b1 = _mm512_set1_ps(0.9f), c1 = _mm512_set1_ps(1 - 0.9f);
    const __m512 b2 = _mm512_set1_ps(0.999f), c2 = _mm512_set1_ps(1 - 0.999f);
    const __m512 a = _mm512_set1_ps(alpha), eps = _mm512_set1_ps(1e-7f);
    const __m512 inf = _mm512_set1_ps(INFINITY);
    __mmask16 bad = 0;
    int64_t j = 0;
    for (; j + 16 <= len; j += 16) {
        __m512 pj = _mm512_load_ps(p + j), gj = _mm512_load_ps(g + j);
        __m512 mj = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_load_ps(m + j)), _mm512_mul_ps(c1, gj));
        __m512 vj = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_load_ps(v + j)),
                                  _mm512_mul_ps(_mm512_mul_ps(c2, gj), gj));
        __m512 q = _mm512_sub_ps(pj, _mm512_div_ps(_mm512_mul_ps(a, mj),
                                                   _mm512_add_ps(_mm512_sqrt_ps(vj), eps)));
        bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(q), inf, _CMP_NLT_UQ);
        _mm512_stream_ps(old + j, pj);
        _mm512_stream_ps(m2 + j, mj);
        _mm512_stream_ps(v2 + j, vj);
        _mm512_store_ps(p + j, q);
    }
    _mm_sfence();
    return (bad != 0) | undo_row(p + j, old + j, m + j, v + j, m2 + j, v2 + j, g + j, len - j,
                                 alpha);
}
#endif

/* Returns 1 when a new parameter is not finite (the bench's are). */
static int undo_step(fused *f, nb_tensor *const *params)
{
    const double lr = 1e-3, b1 = 0.9, b2 = 0.999;
    f->t++;
    const float alpha =
        (float)(lr * sqrt(1 - pow(b2, (double)f->t)) / (1 - pow(b1, (double)f->t)));
    int bad = 0;
    for (int i = 0; i < f->n && !bad; i++) {
#ifdef UNDO_NT
        if (f->len[i] * (int64_t)sizeof(float) >= (1 << 20) && __builtin_cpu_supports("avx512f") &&
            ((uintptr_t)f->p[i] & 63) == 0 && ((uintptr_t)f->g[i] & 63) == 0)
            bad = undo_row_nt(f->p[i], f->old[i], f->m[i], f->v[i], f->m2[i], f->v2[i], f->g[i],
                              f->len[i], alpha);
        else
#endif
            bad = undo_row(f->p[i], f->old[i], f->m[i], f->v[i], f->m2[i], f->v2[i], f->g[i],
                           f->len[i], alpha);
        nb_bump_version(params[i]);
    }
    for (int i = 0; i < f->n && !bad; i++) {
        float *t = f->m[i];
        f->m[i] = f->m2[i];
        f->m2[i] = t;
        t = f->v[i];
        f->v[i] = f->v2[i];
        f->v2[i] = t;
    }
    return bad;
}

static void fused_step(fused *f, nb_tensor *const *params)
{
    const double lr = 1e-3, b1 = 0.9, b2 = 0.999;
    f->t++;
    const float alpha =
        (float)(lr * sqrt(1 - pow(b2, (double)f->t)) / (1 - pow(b1, (double)f->t)));
    for (int i = 0; i < f->n; i++) {
        fused_row(f->p[i], f->m[i], f->v[i], f->g[i], f->len[i], alpha);
        nb_bump_version(params[i]);
    }
}

static int nabla_step(nb_optimizer *opt, nb_graph *g, int np, nb_tensor *const *params)
{
    int rc = nb_optimizer_step(opt, np, params);
    nb_graph_reset(g);
    return rc;
}

int main(int argc, char **argv)
{
    bench_args a = {.threads = 1, .model = "seed", .data = "/usr/share/datasets/fashion-mnist"};
    int rc = bench_parse(argc, argv, &a, BENCH_MODEL | BENCH_DATA);
    if (rc)
        return rc == 1 ? 0 : rc;
    bool wide = strcmp(a.model, "wide") == 0;
    bench_counts(&a, wide ? 3 : 50, 10, wide ? 5 : 400);
    bench_set_threads(a.threads);

    bench_data d;
    if (bench_load_data(a.data, &d))
        return bench_fail(prog);
    nb_tensor *x = bench_rows(d.x_train, 32), *y = bench_rows(d.y_train, 32);
    bench_free_data(&d);
    nb_model *m = bench_model(a.model);
    nb_tensor *const *params = NULL;
    int np = m ? nb_model_params(m, &params) : -1;
    nb_graph *g = nb_graph_new();
    if (!x || !y || np < 0 || !g || nb_backward(nb_model_loss(m, nb_model_forward(m, x), y)))
        return bench_fail(prog);
    nb_graph_reset(g);
    nb_optimizer *opt = nb_model_optimizer(m);
    fused f;
    if (fused_init(&f, np, params))
        return bench_fail(prog);
    int64_t count = 0;
    for (int i = 0; i < np; i++)
        count += nb_numel(params[i]);
    bool ftz = nb_set_flush_subnormals(true);

    for (int i = 0; i < a.warmup; i++) {
        if (nabla_step(opt, g, np, params) || undo_step(&f, params))
            return bench_fail(prog);
        fused_step(&f, params);
    }
    char workload[32], extra[256];
    snprintf(workload, sizeof workload, "adam_%s", a.model);
    static const char *const sides[3] = {"nabla", "fused_c", "fused_c_undo"};
    for (int r = 1; r <= a.reps; r++) {
        bench_clock t[3] = {{0, 0}, {0, 0}, {0, 0}};
        for (int q = 0; q < 3; q++) { /* the order rotates */
            int side = (q + r) % 3;
            bench_clock t0 = bench_now();
            for (int i = 0; i < a.n; i++) {
                if (side == 1)
                    fused_step(&f, params);
                else if (side == 0 ? nabla_step(opt, g, np, params) : undo_step(&f, params))
                    return bench_fail(prog);
            }
            t[side] = bench_since(t0);
        }
        const char *first = sides[(r + 0) % 3];
        for (int side = 0; side < 3; side++) {
            int k = snprintf(extra, sizeof extra,
                             "\"model\": \"%s\", \"params\": %lld, \"tensors\": %d, "
                             "\"first\": \"%s\", \"warmup_units\": %d",
                             a.model, (long long)count, np, first, a.warmup);
            if (side == 0)
                snprintf(extra + k, sizeof extra - (size_t)k,
                         ", \"ratio_vs_fused\": %.4g, \"ratio_vs_undo\": %.4g",
                         t[0].wall / t[1].wall, t[0].wall / t[2].wall);
            bench_emit(sides[side], workload, a.threads, r, a.n, t[side], "us/step", 1e6, extra);
        }
    }
    nb_set_flush_subnormals(ftz);
    fused_free(&f);
    nb_graph_free(g);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    return 0;
}
