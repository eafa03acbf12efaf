/* Matrix products against a naive triple loop, whatever backend and thread
 * count src/gemm.c picks: f32 and f64, forward and both backward products,
 * transposed operands, batched and folded batches, odd sizes and sizes on
 * both sides of the thresholds where the backend or the thread count
 * changes, at 1 and 2 threads. And the thread setting itself. Nothing here
 * depends on speed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <float.h>
#include <math.h>
#include <pthread.h>

#include "internal.h" /* the thresholds, to test on both sides of them */

/* ---- the reference ---- */

/* t's elements, row-major, as doubles (malloc'd; the caller frees). */
static double *values(const nb_tensor *t)
{
    double *v = malloc(sizeof(double) * (size_t)(nb_numel(t) ? nb_numel(t) : 1));
    if (!v || nb_to_doubles(t, v) != 0) {
        free(v);
        return NULL;
    }
    return v;
}

/* The worst |got - sum| over bound, where each sum has `terms` products and
 * bound is the rigorous rounding bound (terms + 1) * eps * sum |product|
 * (plus a tiny floor); <= 1 passes. Accumulated one element at a time by
 * the caller: acc(&w, got, sum, abs_sum, terms, eps). */
static void acc(double *w, double got, double sum, double abs_sum, int64_t terms, double eps)
{
    double e = fabs(got - sum) / ((double)(terms + 1) * eps * abs_sum + 1e-300);
    if (!(e <= *w))
        *w = isnan(e) ? INFINITY : e;
}

/* Uniform in [-1, 1) (cheaper than normal numbers under valgrind). */
static nb_tensor *uniform(nb_dtype dt, int ndim, const int64_t *shape, nb_rng *rng)
{
    nb_tensor *t = nb_rand(dt, ndim, shape, rng);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < nb_numel(t); i++)
        if (dt == NB_F32)
            ((float *)nb_data(t))[i] = 2 * ((float *)nb_data(t))[i] - 1;
        else
            ((double *)nb_data(t))[i] = 2 * ((double *)nb_data(t))[i] - 1;
    return t;
}

/* A random (rows, cols) matrix (batch 0) or (batch, rows, cols) batch of
 * them; transposed: the transpose view of a (cols, rows) tensor, so gemm
 * gets it as a transpose flag. The heap tensor goes to *base. */
static nb_tensor *operand(nb_dtype dt, int64_t batch, int64_t rows, int64_t cols, bool transposed,
                          nb_rng *rng, nb_tensor **base)
{
    int64_t r = transposed ? cols : rows, c = transposed ? rows : cols;
    *base = batch ? uniform(dt, NB_SHAPE(batch, r, c), rng) : uniform(dt, NB_SHAPE(r, c), rng);
    nb_set_requires_grad(*base, true);
    return transposed ? nb_transpose(*base, -2, -1) : *base;
}

typedef struct {
    int64_t M, K, N;
} mkn;

/* The row after i when checking every step-th row of n and the last. */
static int64_t next_row(int64_t i, int64_t n, int64_t step)
{
    return i + step < n || i == n - 1 ? i + step : n - 1;
}

/* y = a @ b and, by nb_grad of sum(y * w), da = w @ b^T and db = a^T @ w
 * (summed over the batch when b is one matrix), each against the loop.
 * batch 0: 2-D operands; else a is batched, and b too when bb. NULL when
 * all agree, else what failed (in msg). Callable from any thread. */
static const char *product_error(nb_dtype dt, mkn s, bool ta, bool tb, int64_t batch, bool bb,
                                 uint64_t seed, char *msg, size_t cap)
{
    nb_rng rng = nb_rng_new(seed);
    nb_graph *g = nb_graph_new();
    nb_tensor *abase, *bbase;
    nb_tensor *a = operand(dt, batch, s.M, s.K, ta, &rng, &abase);
    nb_tensor *b = operand(dt, bb ? batch : 0, s.K, s.N, tb, &rng, &bbase);
    nb_tensor *w = batch ? uniform(dt, NB_SHAPE(batch, s.M, s.N), &rng)
                         : uniform(dt, NB_SHAPE(s.M, s.N), &rng);
    nb_tensor *y = nb_matmul(a, b);
    nb_tensor *loss = nb_sum(nb_mul(y, w));
    nb_tensor *in[2] = {abase, bbase}, *gr[2] = {NULL, NULL};
    int rc = loss ? nb_grad(loss, .n = 2, .inputs = in, .grads = gr) : -1;
    /* the gradients of the operands as the product sees them */
    nb_tensor *da = rc ? NULL : ta ? nb_transpose(gr[0], -2, -1) : gr[0];
    nb_tensor *db = rc ? NULL : tb ? nb_transpose(gr[1], -2, -1) : gr[1];
    double *A = values(a), *B = values(b), *W = values(w), *Y = y ? values(y) : NULL;
    double *DA = da ? values(da) : NULL, *DB = db ? values(db) : NULL;
    const char *what = NULL;
    double worst[3] = {0, 0, 0};
    if (rc || !A || !B || !W || !Y || !DA || !DB) {
        snprintf(msg, cap, "%s", nb_last_error() ? nb_last_error() : "out of memory");
        what = msg;
        goto done;
    }
    double eps = dt == NB_F32 ? FLT_EPSILON : DBL_EPSILON;
    int64_t M = s.M, K = s.K, N = s.N, nbat = batch ? batch : 1;
    /* Large products: every 5th row of each result and its last (all its
     * columns), which any wrong layout, offset or transposition shows in;
     * the loop would otherwise dominate the valgrind run. */
    int64_t step = M * N * K > 100000 ? 5 : 1;
#define ROWS(i, n) for (int64_t i = 0; i < (n); i = next_row(i, (n), step))
    for (int64_t r = 0; r < nbat; r++) {
        const double *Ar = A + r * M * K, *Br = B + (bb ? r * K * N : 0), *Wr = W + r * M * N;
        ROWS(i, M)
            for (int64_t j = 0; j < N; j++) {
                double sum = 0, abs_sum = 0;
                for (int64_t k = 0; k < K; k++) {
                    sum += Ar[i * K + k] * Br[k * N + j];
                    abs_sum += fabs(Ar[i * K + k] * Br[k * N + j]);
                }
                acc(&worst[0], Y[r * M * N + i * N + j], sum, abs_sum, K, eps);
            }
        ROWS(i, M)
            for (int64_t k = 0; k < K; k++) {
                double sum = 0, abs_sum = 0;
                for (int64_t j = 0; j < N; j++) {
                    sum += Wr[i * N + j] * Br[k * N + j];
                    abs_sum += fabs(Wr[i * N + j] * Br[k * N + j]);
                }
                acc(&worst[1], DA[r * M * K + i * K + k], sum, abs_sum, N, eps);
            }
    }
    for (int64_t rb = 0; rb < (bb ? nbat : 1); rb++)
        ROWS(k, K)
            for (int64_t j = 0; j < N; j++) {
                double sum = 0, abs_sum = 0;
                int64_t terms = 0;
                for (int64_t r = bb ? rb : 0; r < (bb ? rb + 1 : nbat); r++)
                    for (int64_t i = 0; i < M; i++, terms++) {
                        double p = A[r * M * K + i * K + k] * W[r * M * N + i * N + j];
                        sum += p;
                        abs_sum += fabs(p);
                    }
                acc(&worst[2], DB[rb * K * N + k * N + j], sum, abs_sum, terms, eps);
            }
    for (int i = 0; i < 3 && !what; i++)
        if (!(worst[i] <= 1)) {
            snprintf(msg, cap,
                     "%s (%lld,%lld)@(%lld,%lld)%s%s batch %lld%s at %d threads: %s is off by "
                     "%.3g x the rounding bound",
                     nb_dtype_name(dt), (long long)M, (long long)K, (long long)K, (long long)N,
                     ta ? " a^T" : "", tb ? " b^T" : "", (long long)batch, bb ? " (both)" : "",
                     nb_num_threads(), (const char *[]){"y", "da", "db"}[i], worst[i]);
            what = msg;
        }
#undef ROWS
done:
    free(A), free(B), free(W), free(Y), free(DA), free(DB);
    nb_graph_free(g);
    nb_free(abase);
    nb_free(bbase);
    nb_free(w);
    return what;
}

static void check_product(nb_dtype dt, mkn s, bool ta, bool tb, int64_t batch, bool bb,
                          uint64_t seed)
{
    char msg[512];
    const char *e = product_error(dt, s, ta, tb, batch, bb, seed, msg, sizeof msg);
    if (e)
        fail_msg("%s", e);
}

/* ---- sizes ---- */

static const mkn odd_sizes[] = {{1, 1, 1}, {1, 7, 1}, {5, 1, 3}, {3, 5, 7}, {17, 33, 9},
                                {2, 129, 3}, {65, 3, 31}, {31, 64, 2}};
#define N_ODD (int)(sizeof odd_sizes / sizeof odd_sizes[0])

/* For each distinct threshold of src/gemm.c that applies to dt, a product
 * just below it and one at or above it (m*n*k crosses it); into out, 2 per
 * threshold. mt: also the thresholds of the thread count (which only
 * change anything when more than one thread is set). */
static int threshold_sizes(nb_dtype dt, bool mt, mkn *out)
{
    const double f32[] = {NB__GEMM_ONEDNN_MIN_WORK, NB__GEMM_ONEDNN_MIN_WORK_GENERIC,
                          NB__GEMM_OPENBLAS_S_MT_WORK, NB__GEMM_ONEDNN_S_MT_WORK};
    const double f64[] = {NB__GEMM_OPENBLAS_D_MT_WORK};
    const double *t = dt == NB_F32 ? f32 : f64;
    int nt = !mt ? (dt == NB_F32 ? 2 : 0) : dt == NB_F32 ? 4 : 1, n = 0;
    for (int i = 0; i < nt; i++) {
        bool seen = false;
        for (int j = 0; j < i; j++)
            seen |= t[j] == t[i];
        if (seen)
            continue;
        int64_t c = (int64_t)cbrt(t[i]);
        while ((double)c * c * c < t[i])
            c++;
        out[n++] = (mkn){c - 1, c - 1, c - 1}; /* below: (c - 1)^3 < t */
        out[n++] = (mkn){c, c + 1, c};         /* at or above: >= c^3 >= t */
    }
    return n;
}

/* At the current thread setting: every odd size with each transposition,
 * batched (a batch of 3 with a batch, and with one matrix: one tall
 * product when a is not transposed); and on both sides of each threshold
 * that matters at this setting, plain and both transposed (with the two
 * backward products, that is every pair of transpose flags), and for f32
 * the size below it batched by 2 (a folded product over the threshold).
 * The large products are few: under valgrind each costs about a second. */
static void products_at(int threads)
{
    assert_true(nb_set_num_threads(threads) >= 1);
    assert_int_equal(nb_num_threads(), threads);
    uint64_t seed = 1;
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        for (int i = 0; i < N_ODD; i++)
            for (int t = 0; t < 4; t++) {
                check_product(dt, odd_sizes[i], t & 1, t & 2, 0, false, seed++);
                check_product(dt, odd_sizes[i], t & 1, t & 2, 3, true, seed++);
                check_product(dt, odd_sizes[i], t & 1, t & 2, 3, false, seed++);
            }
        mkn s[8];
        int n = threshold_sizes(dt, threads > 1, s);
        for (int i = 0; i < n; i++) {
            check_product(dt, s[i], false, false, 0, false, seed++);
            check_product(dt, s[i], true, true, 0, false, seed++);
        }
        for (int i = 0; dt == NB_F32 && i < n; i += 2) {
            check_product(dt, s[i], false, false, 2, false, seed++);
            check_product(dt, s[i], false, true, 2, true, seed++);
        }
    }
}

static void test_products_one_thread(void **state)
{
    (void)state;
    products_at(1);
}

static void test_products_two_threads(void **state)
{
    (void)state;
    products_at(2);
    nb_set_num_threads(1);
}

/* The same products from two threads at once, one of them switching the
 * setting meanwhile: each thread's results agree with the loop. */
typedef struct {
    int id;
    char msg[512];
    const char *error;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    for (int d = 0; d < 2 && !j->error; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        /* the sizes at or above each threshold, and three small ones */
        mkn t[8], s[8];
        int nt = threshold_sizes(dt, true, t), n = 0;
        for (int i = 1; i < nt; i += 2)
            s[n++] = t[i];
        for (int i = 0; i < 3; i++)
            s[n++] = odd_sizes[3 + i];
        for (int i = 0; i < n && !j->error; i++)
            j->error = product_error(dt, s[i], i & 1, i & 2, 0, false,
                                     1000u * (unsigned)j->id + 100u * (unsigned)d + (unsigned)i,
                                     j->msg, sizeof j->msg);
    }
    return NULL;
}

static void *switcher(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        nb_set_num_threads(1 + i % 2);
    return NULL;
}

static void test_products_concurrent(void **state)
{
    (void)state;
    nb_set_num_threads(2);
    pthread_t t[3];
    job jobs[2] = {{.id = 1}, {.id = 2}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
    assert_int_equal(pthread_create(&t[2], NULL, switcher, NULL), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    nb_set_num_threads(1);
    for (int i = 0; i < 2; i++)
        if (jobs[i].error)
            fail_msg("thread %d: %s", jobs[i].id, jobs[i].error);
}

/* ---- the setting ---- */

static void test_setting(void **state)
{
    (void)state;
    int n0 = nb_num_threads();
    assert_true(n0 >= 1 && n0 <= NB_MAX_THREADS);
    assert_int_equal(nb_set_num_threads(2), n0); /* the previous value */
    assert_int_equal(nb_num_threads(), 2);
    assert_int_equal(nb_set_num_threads(1), 2);
    assert_int_equal(nb_num_threads(), 1);
    /* (Not NB_MAX_THREADS itself: OpenBLAS would start 63 threads.) */
    assert_int_equal(nb_set_num_threads(4), 1);
    assert_int_equal(nb_num_threads(), 4);
    /* A refused value changes nothing. */
    const int bad[] = {0, -1, NB_MAX_THREADS + 1, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FAILS_RC(nb_set_num_threads(bad[i]), "nb_set_num_threads", "out of range");
        assert_int_equal(nb_last_error_code(), NB_ERR_INVALID);
        assert_int_equal(nb_num_threads(), 4);
    }
    nb_set_num_threads(3);
    nb_clear_error();
    char want[32];
    snprintf(want, sizeof want, "%d", INT32_MIN);
    FAILS_RC(nb_set_num_threads(INT32_MIN), want); /* names the value */
    assert_int_equal(nb_num_threads(), 3);
    /* Another thread sees the setting: it is process-wide. */
    nb_set_num_threads(1);
    assert_int_equal(nb_num_threads(), 1);
    nb_clear_error();
}

static void *read_setting(void *arg)
{
    *(int *)arg = nb_num_threads();
    return NULL;
}

static void test_setting_process_wide(void **state)
{
    (void)state;
    nb_set_num_threads(2);
    int seen = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_setting, &seen), 0);
    pthread_join(t, NULL);
    assert_int_equal(seen, 2);
    nb_set_num_threads(1);
}

static void test_backend(void **state)
{
    (void)state;
#ifdef NB_EXPECT_ONEDNN
    assert_string_equal(nb_gemm_backend(), "onednn");
#else
    assert_string_equal(nb_gemm_backend(), "openblas");
#endif
    print_message("# gemm backend: %s\n", nb_gemm_backend());
}

/* Products below NB__GEMM_ONEDNN_MIN_WORK stay with OpenBLAS only where it
 * runs its AVX-512 kernels; with any other kernel (its generic fallback on
 * a CPU it does not know, or one not measured against oneDNN) only those
 * below NB__GEMM_ONEDNN_MIN_WORK_GENERIC do. */
static void test_small_product_rule(void **state)
{
    (void)state;
    assert_true(nb__openblas_small_wins("Cooperlake"));
    assert_true(nb__openblas_small_wins("SkylakeX"));
    assert_true(nb__openblas_small_wins("SapphireRapids"));
    assert_false(nb__openblas_small_wins("Prescott"));
    assert_false(nb__openblas_small_wins("Haswell"));
    assert_false(nb__openblas_small_wins("Cooperlake2"));
    assert_false(nb__openblas_small_wins(""));
    assert_false(nb__openblas_small_wins(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setting),
        cmocka_unit_test(test_setting_process_wide),
        cmocka_unit_test(test_backend),
        cmocka_unit_test(test_small_product_rule),
        cmocka_unit_test(test_products_one_thread),
        cmocka_unit_test(test_products_two_threads),
        cmocka_unit_test(test_products_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
