/* The one place nabla multiplies matrices (nb_matmul's forward and backward
 * all come here), the library's thread setting, and the rule that picks a
 * backend and a thread count for each call. The measurements behind the
 * numbers below are in docs/design.md ("GEMM backend and threads").
 *
 * Backends. OpenBLAS is the portable default and the reference. A build
 * with oneDNN (meson -Donednn=auto|enabled, which needs OpenMP: oneDNN's
 * threads are OpenMP's) sends f32 products of at least NB__GEMM_ONEDNN_MIN_WORK
 * multiply-adds to dnnl_sgemm; smaller ones stay with OpenBLAS, whose calls
 * cost less. oneDNN 2.6 has no f64 GEMM, so f64 is OpenBLAS's everywhere.
 *
 * Threads. A product of fewer than *_MT_WORK multiply-adds (m*n*k) runs on
 * one thread, at or above it on nb_num_threads(): below that size the
 * second thread costs more (waking it, splitting, joining) than it saves.
 * How each backend is told, per call:
 *   - oneDNN reads the calling thread's OpenMP count, which is per thread
 *     (an ICV of the thread's task): set for the call and put back, so no
 *     other thread ever sees it.
 *   - OpenBLAS (the pthread build) has one process-wide count. A call sets
 *     it to what it needs, never "back to what it was": two user threads
 *     saving and restoring one global at once could leave it wrong for
 *     good. The count nabla last gave it is kept in an atomic and changed
 *     under a lock, so it always matches what OpenBLAS has; a call running
 *     while another thread changes the count may run with that thread's
 *     choice (1 or nb_num_threads()): the results are the same either way,
 *     only the speed of that call differs.
 * Inside an OpenMP parallel region a call runs on one thread (the pthread
 * OpenBLAS would print a warning and may hang if asked for more there). */
#include "internal.h"

#include <cblas.h>
#include <stdatomic.h>
#include <threads.h>

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

/* ---- OpenBLAS's process-wide count ---- */

static _Atomic int openblas_now; /* what nabla last set; 0: not yet */
static mtx_t openblas_lock;
static once_flag openblas_once = ONCE_FLAG_INIT;
static bool openblas_lock_ok;

static void openblas_lock_init(void)
{
    openblas_lock_ok = mtx_init(&openblas_lock, mtx_plain) == thrd_success;
}

static void openblas_threads(int t)
{
    if (atomic_load_explicit(&openblas_now, memory_order_acquire) == t)
        return;
    call_once(&openblas_once, openblas_lock_init);
    if (!openblas_lock_ok || mtx_lock(&openblas_lock) != thrd_success)
        return; /* the call runs with whatever count OpenBLAS has */
    if (atomic_load_explicit(&openblas_now, memory_order_relaxed) != t) {
        openblas_set_num_threads(t);
        atomic_store_explicit(&openblas_now, t, memory_order_release);
    }
    mtx_unlock(&openblas_lock);
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
    openblas_threads(n);
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

/* Threads for a product of `work` multiply-adds. */
static int threads_for(double work, double mt_work)
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

void nb__gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float *C, int64_t ldc)
{
    double work = work_of(M, N, K);
#ifdef NB_HAVE_ONEDNN
    if (work >= NB__GEMM_ONEDNN_MIN_WORK &&
        onednn_sgemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, threads_for(work, NB__GEMM_ONEDNN_S_MT_WORK)))
        return;
#endif
    openblas_threads(threads_for(work, NB__GEMM_OPENBLAS_S_MT_WORK));
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb, 0.0f, C,
                (blasint)ldc);
}

void nb__gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double *A,
                  int64_t lda, const double *B, int64_t ldb, double *C, int64_t ldc)
{
    openblas_threads(threads_for(work_of(M, N, K), NB__GEMM_OPENBLAS_D_MT_WORK));
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (blasint)M, (blasint)N, (blasint)K, 1.0, A, (blasint)lda, B, (blasint)ldb, 0.0, C,
                (blasint)ldc);
}
