/* The kernel contract's machinery: views of tensors, the broadcast/strided
 * iterator, reduction plans, the strided copy, and the subnormal setting. */
#include "internal.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- the iterator ---- */

void nb_iter_init(nb_iter *it, int nop, const nb_view *const views[])
{
    const nb_view *y = views[0];
    int nd = y->ndim;
    int64_t st[NB_ITER_MAX][NB_MAX_DIMS];
    for (int k = 0; k < nop; k++) {
        const nb_view *v = views[k];
        for (int i = 0; i < nd; i++) {
            int j = i - (nd - v->ndim);
            st[k][i] = j < 0 || (v->shape[j] == 1 && y->shape[i] != 1) ? 0 : v->strides[j];
        }
    }
    /* Merge dimension i into the previous one when every operand steps
     * through both as one; size-1 dimensions drop out. */
    int m = 0;
    int64_t cs[NB_MAX_DIMS], cst[NB_ITER_MAX][NB_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        if (y->shape[i] == 1)
            continue;
        bool merge = m > 0;
        for (int k = 0; merge && k < nop; k++)
            merge = cst[k][m - 1] == st[k][i] * y->shape[i];
        if (merge) {
            cs[m - 1] *= y->shape[i];
            for (int k = 0; k < nop; k++)
                cst[k][m - 1] = st[k][i];
            continue;
        }
        cs[m] = y->shape[i];
        for (int k = 0; k < nop; k++)
            cst[k][m] = st[k][i];
        m++;
    }
    it->nop = nop;
    if (m == 0) {
        it->ndim = 0;
        it->len = y->numel ? 1 : 0;
        for (int k = 0; k < nop; k++)
            it->step[k] = 0;
    } else {
        it->ndim = m - 1;
        it->len = cs[m - 1];
        for (int k = 0; k < nop; k++)
            it->step[k] = cst[k][m - 1];
        for (int i = 0; i < m - 1; i++) {
            it->shape[i] = cs[i];
            for (int k = 0; k < nop; k++)
                it->stride[k][i] = cst[k][i];
        }
    }
    it->rows = it->len ? y->numel / it->len : 0;
    for (int i = 0; i < NB_MAX_DIMS; i++)
        it->idx[i] = 0;
    for (int k = 0; k < NB_ITER_MAX; k++)
        it->off[k] = 0;
}

void nb_iter_next(nb_iter *it)
{
    for (int i = it->ndim - 1; i >= 0; i--) {
        for (int k = 0; k < it->nop; k++)
            it->off[k] += it->stride[k][i];
        if (++it->idx[i] < it->shape[i])
            return;
        for (int k = 0; k < it->nop; k++)
            it->off[k] -= it->stride[k][i] * it->shape[i];
        it->idx[i] = 0;
    }
}

/* ---- reductions ---- */

void nb_reduce_init(nb_reduce_plan *p, const nb_view *x, unsigned mask)
{
    memset(p, 0, sizeof *p);
    p->nin = x->numel;
    p->nout = 1;
    for (int i = 0; i < x->ndim; i++)
        if (!(mask >> i & 1u))
            p->nout *= x->shape[i];
    /* x's dimensions without the size-1 ones, each reduced or kept, with
     * y's (contiguous) strides for the kept ones; then adjacent dimensions
     * of one kind merged where x steps through them evenly. */
    int64_t sz[NB_MAX_DIMS], xs[NB_MAX_DIMS], ys[NB_MAX_DIMS];
    bool red[NB_MAX_DIMS];
    int m = 0;
    int64_t yst = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        if (x->shape[i] == 1)
            continue;
        bool r = mask >> i & 1u;
        if (m > 0 && red[m - 1] == r && xs[m - 1] * sz[m - 1] == x->strides[i]) {
            sz[m - 1] *= x->shape[i];
        } else {
            sz[m] = x->shape[i];
            xs[m] = x->strides[i];
            ys[m] = r ? 0 : yst;
            red[m++] = r;
        }
        if (!r)
            yst *= x->shape[i];
    }
    /* Collected innermost first: entry 0 is the inner loop. */
    p->kcount = p->rcount = 1;
    if (m == 0) {
        p->inner_reduced = true;
        p->inner = 1;
        return;
    }
    p->inner_reduced = red[0];
    p->inner = sz[0];
    p->inner_xs = xs[0];
    p->inner_ys = ys[0];
    for (int j = m - 1; j >= 1; j--) {
        if (red[j]) {
            p->rshape[p->nr] = sz[j];
            p->rxs[p->nr++] = xs[j];
            p->rcount *= sz[j];
        } else {
            p->kshape[p->nk] = sz[j];
            p->kxs[p->nk] = xs[j];
            p->kys[p->nk++] = ys[j];
            p->kcount *= sz[j];
        }
    }
}

/* ---- copies ---- */

#define COPY(TD, TS, dst, src)                                                 \
    do {                                                                       \
        const nb_view *v_[2] = {(dst), (src)};                                 \
        nb_iter it;                                                            \
        nb_iter_init(&it, 2, v_);                                              \
        for (int64_t r = 0; r < it.rows; r++, nb_iter_advance_(&it, 2)) {     \
            TD *restrict d = (TD *)(dst)->data + it.off[0];                    \
            const TS *restrict s = (const TS *)(src)->data + it.off[1];        \
            int64_t sd = it.step[0], ss = it.step[1];                          \
            if (sd == 1 && ss == 1)                                            \
                for (int64_t i = 0; i < it.len; i++)                           \
                    d[i] = (TD)s[i];                                           \
            else                                                               \
                for (int64_t i = 0; i < it.len; i++)                           \
                    d[i * sd] = (TD)s[i * ss];                                 \
        }                                                                      \
    } while (0)

void nb__copy(const nb_view *dst, const nb_view *src)
{
    bool same = dst->dtype == src->dtype && dst->ndim == src->ndim &&
                memcmp(dst->shape, src->shape, sizeof(int64_t) * (size_t)dst->ndim) == 0;
    if (same && nb__layout_contiguous(dst->ndim, dst->shape, dst->strides) &&
        nb__layout_contiguous(src->ndim, src->shape, src->strides)) {
        if (dst->numel)
            memcpy(dst->data, src->data, (size_t)dst->numel * nb__dtype_size(dst->dtype));
        return;
    }
    if (src->dtype == NB_U8) { /* nb_cast from u8; u8 to u8 (nb_clone, nb_assign) */
        if (dst->dtype == NB_F64)
            COPY(double, uint8_t, dst, src);
        else if (dst->dtype == NB_F32)
            COPY(float, uint8_t, dst, src);
        else
            COPY(uint8_t, uint8_t, dst, src);
        return;
    }
    assert(dst->dtype != NB_U8); /* nothing converts to u8 */
    if (dst->dtype == NB_F64 && src->dtype == NB_F64)
        COPY(double, double, dst, src);
    else if (dst->dtype == NB_F64)
        COPY(double, float, dst, src);
    else if (src->dtype == NB_F64)
        COPY(float, double, dst, src);
    else
        COPY(float, float, dst, src);
}

#define ACCUMULATE(T, dst, src)                                                \
    do {                                                                       \
        const nb_view *v_[2] = {(dst), (src)};                                 \
        nb_iter it;                                                            \
        nb_iter_init(&it, 2, v_);                                              \
        for (int64_t r = 0; r < it.rows; r++, nb_iter_advance_(&it, 2)) {     \
            T *d = (T *)(dst)->data + it.off[0];                               \
            const T *s = (const T *)(src)->data + it.off[1];                   \
            int64_t sd = it.step[0], ss = it.step[1];                          \
            if (sd == 1 && ss == 1)                                            \
                for (int64_t i = 0; i < it.len; i++)                           \
                    d[i] += s[i];                                              \
            else                                                               \
                for (int64_t i = 0; i < it.len; i++)                           \
                    d[i * sd] += s[i * ss];                                    \
        }                                                                      \
    } while (0)

/* d += s, or d = s + 0 (the bits of 0 + s: -0 becomes +0, subnormals are
 * flushed as the thread flushes them) where d holds zeros. */
NB_KERNEL_TARGETS static void add_into_f32(float *restrict d, const float *restrict s, int64_t n,
                                           bool zero)
{
    if (zero)
        for (int64_t i = 0; i < n; i++)
            d[i] = s[i] + 0.0f;
    else
        for (int64_t i = 0; i < n; i++)
            d[i] += s[i];
}

NB_KERNEL_TARGETS static void add_into_f64(double *restrict d, const double *restrict s,
                                           int64_t n, bool zero)
{
    if (zero)
        for (int64_t i = 0; i < n; i++)
            d[i] = s[i] + 0.0;
    else
        for (int64_t i = 0; i < n; i++)
            d[i] += s[i];
}

typedef struct {
    const nb_view *dst, *src;
    bool zero;
} add_into_job;

/* Lines [r0, r1) of 64 bytes of a contiguous accumulation. */
static void add_into_lines(void *job, int t, int64_t r0, int64_t r1)
{
    (void)t;
    const add_into_job *j = job;
    int64_t line = 64 / (int64_t)nb__dtype_size(j->dst->dtype), n = j->dst->numel;
    int64_t i0 = r0 * line, i1 = r1 * line < n ? r1 * line : n;
    if (j->dst->dtype == NB_F64)
        add_into_f64((double *)j->dst->data + i0, (const double *)j->src->data + i0, i1 - i0,
                     j->zero);
    else
        add_into_f32((float *)j->dst->data + i0, (const float *)j->src->data + i0, i1 - i0,
                     j->zero);
}

/* Leaves' gradients are summed here every step (a wide model's are
 * megabytes): contiguous ones in vector loops, and on threads when large. */
void nb__accumulate(const nb_view *dst, const nb_view *src, bool zero)
{
    if (nb_view_contiguous(dst) && nb_view_contiguous(src) && dst->numel == src->numel) {
        add_into_job job = {dst, src, zero};
        int64_t line = 64 / (int64_t)nb__dtype_size(dst->dtype);
        int64_t lines = (dst->numel + line - 1) / line;
        nb__parallel_rows(nb__kernel_threads(dst->numel, lines), lines, add_into_lines, &job);
        return;
    }
    if (dst->dtype == NB_F64)
        ACCUMULATE(double, dst, src);
    else
        ACCUMULATE(float, dst, src);
}

void *nb_kernel_scratch(size_t bytes)
{
    nb_graph *g = nb__graph();
    if (!g) {
        nb__state_error("nb_kernel_scratch: no current graph (kernels run inside nb_apply)");
        return NULL;
    }
    NB__NAMED("nb_kernel_scratch", void *, nb__arena_alloc(g, bytes));
}

/* ---- the subnormal setting ---- */

/* The setting is applied to the thread's own MXCSR (FTZ bit 15, DAZ bit 6),
 * as torch.set_flush_denormal does, so no kernel pays to switch it; the
 * thread state remembers it (valgrind, for one, does not keep those bits). */
#define FTZ_DAZ 0x8040u

bool nb_set_flush_subnormals(bool on)
{
    nb_thread *th = nb__thread();
    bool prev = th->flush;
    th->flush = on;
#if defined(__SSE2__)
    unsigned mode = _mm_getcsr();
    _mm_setcsr(on ? mode | FTZ_DAZ : mode & ~FTZ_DAZ);
#endif
    return prev;
}

bool nb_flush_subnormals(void) { return nb__thread()->flush; }

/* ---- elementwise kernels on several threads ---- */

bool nb__elementwise_parallel(nb_kernel k, const nb_view *y, const nb_view *x, int n,
                              const void *attr)
{
#ifdef _OPENMP
    const int64_t N = y->numel;
    int t = nb_num_threads();
    if (N < NB__ELEMENTWISE_PARALLEL || t < 2 || omp_in_parallel() || !nb_view_contiguous(y))
        return false;
    for (int i = 0; i < n; i++)
        if (x[i].numel != 1 && (x[i].numel != N || !nb_view_contiguous(&x[i])))
            return false;
    int64_t most = N / (NB__ELEMENTWISE_PARALLEL / 2);
    t = t < most ? t : (int)most;
    size_t ey = nb__dtype_size(y->dtype);
#if defined(__SSE2__)
    unsigned csr = _mm_getcsr(); /* subnormal flushing follows the caller */
#endif
    NB__TSAN_RELEASE((void *)y);
#pragma omp parallel num_threads(t)
    {
        NB__TSAN_ACQUIRE((void *)y);
#if defined(__SSE2__)
        _mm_setcsr(csr);
#endif
        int me = omp_get_thread_num(), all = omp_get_num_threads();
        /* whole cache lines per thread: 16 floats or 8 doubles */
        int64_t line = 64 / (int64_t)ey, blocks = (N + line - 1) / line;
        int64_t i0 = blocks * me / all * line, i1 = blocks * (me + 1) / all * line;
        i1 = i1 < N ? i1 : N;
        if (i0 < i1) {
            nb_view yb = {.data = (char *)y->data + (size_t)i0 * ey, .dtype = y->dtype, .ndim = 1,
                          .numel = i1 - i0, .shape = {i1 - i0}, .strides = {1}};
            nb_view xb[NB_MAX_INPUTS];
            for (int i = 0; i < n; i++) {
                size_t ex = nb__dtype_size(x[i].dtype);
                xb[i] = x[i].numel == 1 && N != 1
                            ? (nb_view){.data = x[i].data, .dtype = x[i].dtype, .numel = 1}
                            : (nb_view){.data = (char *)x[i].data + (size_t)i0 * ex,
                                        .dtype = x[i].dtype, .ndim = 1, .numel = i1 - i0,
                                        .shape = {i1 - i0}, .strides = {1}};
            }
            k(&yb, xb, n, attr);
        }
        NB__TSAN_RELEASE((char *)y + 1);
    }
    NB__TSAN_ACQUIRE((char *)y + 1);
    return true;
#else
    (void)k, (void)y, (void)x, (void)n, (void)attr;
    return false;
#endif
}

int nb__kernel_threads(int64_t elems, int64_t rows)
{
#ifdef _OPENMP
    int t = nb_num_threads();
    if (elems < NB__ELEMENTWISE_PARALLEL || t < 2 || omp_in_parallel())
        return 1;
    int64_t most = elems / (NB__ELEMENTWISE_PARALLEL / 2);
    most = most < rows ? most : rows;
    return t < most ? t : (int)(most > 1 ? most : 1);
#else
    (void)elems, (void)rows;
    return 1;
#endif
}

void nb__parallel_rows(int nt, int64_t rows, void (*fn)(void *job, int t, int64_t r0, int64_t r1),
                       void *job)
{
    if (nt <= 1) {
        fn(job, 0, 0, rows);
        return;
    }
#ifdef _OPENMP
#if defined(__SSE2__)
    unsigned csr = _mm_getcsr();
#endif
    NB__TSAN_RELEASE(job);
#pragma omp parallel num_threads(nt)
    {
        NB__TSAN_ACQUIRE(job);
#if defined(__SSE2__)
        _mm_setcsr(csr);
#endif
        int me = omp_get_thread_num(), all = omp_get_num_threads();
        int64_t r0 = rows * me / all, r1 = rows * (me + 1) / all;
        if (r0 < r1)
            fn(job, me, r0, r1);
        NB__TSAN_RELEASE((char *)job + 1);
    }
    NB__TSAN_ACQUIRE((char *)job + 1);
#endif
}
