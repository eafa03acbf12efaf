/* The one place nabla multiplies matrices (nb_matmul's forward and backward
 * all come here), the library's thread setting, and the rule that picks a
 * backend and a thread count for each call. The measurements behind the
 * numbers below are in docs/design.md ("GEMM backend and threads").
 *
 * Backends. OpenBLAS is the portable default and the reference. A build
 * with oneDNN (meson -Donednn=auto|enabled, which needs OpenMP: oneDNN's
 * threads are OpenMP's) sends f32 products of at least NB__GEMM_ONEDNN_MIN_WORK
 * multiply-adds to dnnl_sgemm; smaller ones stay with OpenBLAS, whose calls
 * cost less, where OpenBLAS runs its AVX-512 kernels. On a CPU it does not
 * know (a newer one) it falls back to generic SSE3 kernels ("Prescott")
 * that are 2-6 times slower than oneDNN from about 4096 multiply-adds (16^3)
 * on, and then only products smaller than that stay with OpenBLAS (a call
 * of oneDNN costs some 0.3 us more: 8x8x8 took 0.23 us there, 0.50 on
 * oneDNN). oneDNN 2.6 has no f64 GEMM, so f64 is OpenBLAS's everywhere.
 *
 * Threads. A product of fewer than NB__GEMM_*_MT_WORK multiply-adds (m*n*k)
 * runs on one thread, a larger one on nb_num_threads(). Alone, products
 * from about 2e6 on gain from a second thread; inside a training step a
 * split product also leaves its operands in the other core's cache, and
 * the single-thread ops after it (the optimizer writing the weights,
 * zeroing the gradients) pay to fetch them back: some 200 us a step of the
 * seed model while the two cores exchange a cache line in ~200 ns rather
 * than ~40 (the virtual cores here switch between the two every few
 * hundred ms). 1.5e7 is where the steps measured stopped losing then.
 * How each backend is told, per call:
 *   - oneDNN reads the calling thread's OpenMP count, which is per thread
 *     (an ICV of the thread's task): set for the call and put back, so no
 *     other thread ever sees it.
 *   - OpenBLAS (the pthread build) has one process-wide count, and its
 *     results differ in the last bits between 1 and 2 threads for some
 *     shapes. A call sets the count it needs, never "back to what it was"
 *     (two user threads saving and restoring one global at once would leave
 *     it wrong), and only while no call at another count runs: calls from
 *     several user threads at one count run side by side, a call needing
 *     the other count waits for them (openblas_enter). So every call runs
 *     with the count its size and nb_num_threads() give, and its result
 *     does not depend on what other threads do.
 * Inside an OpenMP parallel region a call runs on one thread (the pthread
 * OpenBLAS would print a warning and may hang if asked for more there). */
#include "internal.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#ifdef NB_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- the setting ---- */

static _Atomic int num_threads; /* 0 until first read from the runtimes */

/* What the runtimes start with (their environment variables, else the core
 * count): the smaller of OpenBLAS's and OpenMP's, so that either variable
 * set to 1 keeps nabla on one thread. */
static int runtime_threads(void)
{
    int n = openblas_get_num_threads();
#ifdef _OPENMP
    int m = omp_get_max_threads();
    if (m < n)
        n = m;
#endif
    return n < 1 ? 1 : n > NB_MAX_THREADS ? NB_MAX_THREADS : n;
}

int nb_num_threads(void)
{
    int n = atomic_load_explicit(&num_threads, memory_order_relaxed);
    if (n)
        return n;
    int d = runtime_threads();
    /* First reader wins; n gets the winner's value when this one lost. */
    return atomic_compare_exchange_strong(&num_threads, &n, d) ? d : n;
}

/* ---- OpenBLAS's process-wide count ----
 * Calls run in phases: any number of calls at one count at once; a call
 * that needs another count waits until the running ones finish, then sets
 * it. So each call runs with the count it chose, and the count is only
 * changed between calls. */

/* pthread, not C11 threads: ThreadSanitizer sees these (glibc's mtx_lock
 * goes around its interceptors). */
static pthread_mutex_t ob_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ob_done = PTHREAD_COND_INITIALIZER;
static int ob_count;    /* what nabla set OpenBLAS to; 0: not yet */
static int ob_inflight; /* calls running at ob_count */

/* Before an OpenBLAS call on t threads; true when openblas_leave must
 * follow. (Were the lock unusable, the call runs with whatever count
 * OpenBLAS has: slower or faster, the same product up to rounding.) */
static bool openblas_enter(int t)
{
    if (pthread_mutex_lock(&ob_lock) != 0)
        return false;
    while (ob_inflight > 0 && ob_count != t)
        pthread_cond_wait(&ob_done, &ob_lock);
    if (ob_count != t) {
        openblas_set_num_threads(t);
        ob_count = t;
    }
    ob_inflight++;
    pthread_mutex_unlock(&ob_lock);
    return true;
}

static void openblas_leave(bool entered)
{
    if (!entered)
        return;
    pthread_mutex_lock(&ob_lock);
    if (--ob_inflight == 0)
        pthread_cond_broadcast(&ob_done);
    pthread_mutex_unlock(&ob_lock);
}

int nb_set_num_threads(int n)
{
    if (n < 1 || n > NB_MAX_THREADS)
        return nb_set_error_code(NB_ERR_INVALID,
                                 "nb_set_num_threads: %d threads is out of range [1, %d]", n,
                                 NB_MAX_THREADS);
    int prev = nb_num_threads();
    atomic_store_explicit(&num_threads, n, memory_order_relaxed);
    /* Also for the caller's own OpenBLAS and OpenMP code. */
    openblas_leave(openblas_enter(n));
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return prev;
}

const char *nb_gemm_backend(void)
{
#ifdef NB_HAVE_ONEDNN
    return "onednn";
#else
    return "openblas";
#endif
}

/* ---- the rule ---- */

/* Threads for a product of `work` multiply-adds (internal.h). */
int nb__threads_for(double work, double mt_work)
{
    int n = nb_num_threads(); /* first: reads the runtimes' defaults before any switch */
#ifdef _OPENMP
    if (omp_in_parallel())
        return 1;
#endif
    return n > 1 && work >= mt_work ? n : 1;
}

static double work_of(int64_t M, int64_t N, int64_t K) { return (double)M * (double)N * (double)K; }

#ifdef NB_HAVE_ONEDNN
/* dnnl_sgemm on t threads: the calling thread's OpenMP count for the call.
 * False when oneDNN refused (the caller falls back to OpenBLAS). */
static bool onednn_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A,
                         int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int t)
{
    int prev = omp_get_max_threads();
    if (prev != t)
        omp_set_num_threads(t);
    dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb,
                                 0.0f, C, ldc);
    if (prev != t)
        omp_set_num_threads(prev);
    return s == dnnl_success;
}
#endif

bool nb__openblas_small_wins(const char *core)
{
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; core && i < sizeof avx512 / sizeof *avx512; i++)
        if (!strcmp(core, avx512[i]))
            return true;
    return false;
}

#ifdef NB_HAVE_ONEDNN
/* The fewest multiply-adds an f32 product needs to go to oneDNN.
 * OpenBLAS's kernel is fixed for the process (picked when it loads), so
 * it is asked once: 0 not yet, 1 its AVX-512 kernels, 2 generic ones. */
static double onednn_min_work(void)
{
    static _Atomic int rule;
    int r = atomic_load_explicit(&rule, memory_order_relaxed);
    if (!r) {
        r = nb__openblas_small_wins(openblas_get_corename()) ? 1 : 2;
        atomic_store_explicit(&rule, r, memory_order_relaxed);
    }
    return r == 1 ? NB__GEMM_ONEDNN_MIN_WORK : NB__GEMM_ONEDNN_MIN_WORK_GENERIC;
}
#endif

void nb__gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float *C, int64_t ldc)
{
    double work = work_of(M, N, K);
#ifdef NB_HAVE_ONEDNN
    if (work >= onednn_min_work() &&
        onednn_sgemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc,
                     nb__threads_for(work, NB__GEMM_ONEDNN_S_MT_WORK)))
        return;
#endif
    bool entered = openblas_enter(nb__threads_for(work, NB__GEMM_OPENBLAS_S_MT_WORK));
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb, 0.0f, C,
                (blasint)ldc);
    openblas_leave(entered);
}

void nb__gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double *A,
                  int64_t lda, const double *B, int64_t ldb, double *C, int64_t ldc)
{
    bool entered = openblas_enter(nb__threads_for(work_of(M, N, K), NB__GEMM_OPENBLAS_D_MT_WORK));
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, 1.0, A, (blasint)lda, B, (blasint)ldb, 0.0, C,
                (blasint)ldc);
    openblas_leave(entered);
}
