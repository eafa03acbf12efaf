/* nabla internals shared by src/, ops/ and src/io (src/nn and src/optim
 * use the public headers only: they are compositions). Not installed. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#include "targets.h"
#include "nabla/nabla.h"

#include <assert.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

typedef struct nb_node nb_node;

enum { NB_HEAP = 1, NB_ARENA = 2 };

/* A buffer and its version counter, shared by every view of it, with the
 * stamps that tell whether it may still be read (src/memory.c, "Lifetimes"). */
typedef struct nb_storage {
    void *data;
    size_t bytes;
    uint32_t version; /* bumped by every in-place write through any view */
    uint32_t slot;    /* graph storages: the slot of their graph in the registry */
    uint64_t gen;     /* graph storages: the generation they were made in; 0: heap */
    /* Heap storages, atomically: 2 x the graph generations that use them
     * (views, recorded nodes), + 1 once nb_free was called. The tensor
     * goes away when this drops to 0 / 1. */
    uint32_t refs;
    uint64_t pinned; /* heap storages: the last generation that counted itself in refs */
} nb_storage;

struct nb_tensor {
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t strides[NB_MAX_DIMS]; /* elements */
    int64_t offset;               /* elements from storage->data to element 0 */
    int64_t numel;
    nb_storage *storage; /* &own, or a base tensor's for a view */
    nb_storage own;
    uint8_t lifetime; /* NB_HEAP (the caller frees it) or NB_ARENA */
    bool contiguous;  /* cached nb_is_contiguous */
    bool requires_grad;
    bool param;
    bool grad_zero;    /* .grad holds nb_zero_grad's zeros while its version is */
    bool grad_partial; /* .grad holds a rule's gradient of the pass under way
                          (nb__grad_into), to be written over at its end */
    nb_tensor *grad;   /* leaves only: accumulated by nb_backward */
    uint32_t grad_zero_version;
    nb_node *node;   /* the op that made it; NULL for leaves */
    char *name;
    int64_t id; /* creation order within its graph, for pictures */
};

struct nb_node {
    const nb_op *op;
    int n;
    nb_tensor **x;
    void *attr;
    uint32_t *versions; /* x[0..n) then y, at recording time */
    const char *scope;  /* "model/dense" or NULL */
    bool released;      /* backpropagated through without retain_graph */
};

_Static_assert(NB_MAX_INPUTS + 2 <= 32, "NB_SAVES_* bits must fit in an unsigned");

/* ---- a thread's state ---- */
/* Everything nabla keeps per thread, in one place: an op reaches it with one
 * thread-local lookup. */
/* A deliberate break of an op's backward (gradcheck's mutation testing,
 * src/check_mutate.c): while set on a thread, its backward passes apply it
 * to the gradients every node of op gives. kind is an nb_mutation; input
 * the input it breaks, other the second one of a swap. */
typedef struct nb_mutant {
    const nb_op *op;
    int kind, input, other;
} nb_mutant;

typedef struct nb_thread {
    nb_graph *graph;       /* the current graph */
    const nb_mutant *mutant; /* NULL but in mutation testing */
    /* The first op whose backward, under create_graph with a gradient
     * requiring grad, gave one that does not (computed outside the graph);
     * gradgradcheck reads and clears it. */
    const nb_op *cut;
    const nb_op *applying; /* the op whose shape rule is running (messages) */
    uint64_t errors;       /* errors set so far: a kernel that fails sets one */
    /* The public function running, which error messages name first: set by
     * compositions and nb_error_scope_begin (the outermost wins). nb_apply
     * names its errors after the fact instead (nb__name_error). */
    const char *entry_fn;
    bool grad_disabled;    /* nb_set_grad_enabled(false) */
    bool flush;            /* nb_set_flush_subnormals */
    bool anomaly;          /* nb_set_detect_anomaly (cleared while backward rules run) */
    bool tracing;          /* nb_fused_new's trace: every op is recorded (src/fused.c) */
    /* nb_dist_backward's hook (src/dist.c): while set, a backward pass
     * hands it each leaf with this pass's gradient of it as soon as the
     * pass has finished that gradient (the hook returns true when it takes
     * it, and the leaf's .grad is then its business; false, and the pass
     * adds it into .grad), and calls it with NULLs after every node, so
     * that the allreduces in flight make progress. */
    bool (*grad_ready)(nb_tensor *leaf, nb_tensor *grad, void *ctx);
    void *grad_ready_ctx;
    nb_tensor *grad_into[NB_MAX_INPUTS]; /* while a rule runs: nb__grad_into */
    bool err_set;
    nb_error_code err_code;
    char err_msg[512];
} nb_thread;
nb_thread *nb__thread(void);

/* For backward rules: the .grad that input i's gradient may be written
 * straight into with nb__apply_into, or NULL. nb_backward offers a leaf's
 * .grad when nb_zero_grad's zeros are in it and this is the leaf's first
 * gradient of the pass: a weight's gradient then skips a copy as large as
 * the weight. */
static inline nb_tensor *nb__grad_into(int i) { return nb__thread()->grad_into[i]; }
/* nb_apply(op, x, n, attr), with the output written into y (recording
 * nothing) when y is not NULL, gradients are off, and y is contiguous, of
 * the dtype and shape op gives, and in no input's storage; else as
 * nb_apply. */
nb_tensor *nb__apply_into(nb_tensor *y, const nb_op *op, nb_tensor *const x[], int n,
                          const void *attr);

/* Applies m to the gradients gi[0..nd->n) of a node of m->op, already
 * summed to its inputs' shapes (NULL for inputs that get none). 0, or -1
 * with an error. */
int nb__mutate(const nb_mutant *m, const nb_node *nd, nb_tensor *gi[]);
/* The broadcast mutation of gradient g of a node's input x: the first
 * position along each broadcast dimension instead of the sum. */
nb_tensor *nb__mutate_broadcast(nb_tensor *g, const nb_tensor *x);

/* ---- distributed training (src/dist_common.c) ---- */
struct nb_dist_backward_args;
/* nb_dist_set_timeout's seconds and nb_dist_set_bucket_bytes's bytes. */
typedef struct {
    double timeout;
    size_t bucket_bytes;
} nb_dist_settings;
extern nb_dist_settings nb__dist;
/* Contiguous f32 or f64 heap tensors; 0 or -1 naming fn. */
int nb__dist_check_tensors(const char *fn, int n, nb_tensor *const t[]);
int nb__dist_check_backward(const char *fn, const struct nb_dist_backward_args *a);
/* nb_backward(a->loss, .seed = a->weight) with hook as nb_thread.grad_ready
 * (nothing for a NULL loss). */
int nb__dist_local_backward(const struct nb_dist_backward_args *a,
                            bool (*hook)(nb_tensor *, nb_tensor *, void *), void *ctx);
/* Gives p a zero .grad when it has none. */
int nb__dist_grad_or_zeros(const char *fn, nb_tensor *p);
/* nb_dist_backward on one rank. */
int nb__dist_backward_alone(const char *fn, const struct nb_dist_backward_args *a);

/* ---- anomaly mode (src/anomaly.c) ---- */
/* The row-major index of the first NaN or infinity of t, or -1. */
int64_t nb__nonfinite(const nb_tensor *t);
/* With anomaly mode on: checks y, the output of op applied to x[0..n) in
 * g, by the rule of src/anomaly.c. 0 when it passes; -1 with the error
 * ("nb_log: produced NaN in the forward at element (3,1) ...") and the
 * thread's report kept for pictures. */
int nb__anomaly_forward(const nb_op *op, nb_graph *g, nb_tensor *y, nb_tensor *const x[], int n);
/* The same for gi, the gradient the rule of y's node gave for input i from
 * the incoming gradient dy; errors begin with fn ("nb_backward"). */
int nb__anomaly_backward(const char *fn, nb_graph *g, nb_tensor *y, int i, nb_tensor *gi,
                         nb_tensor *dy);
/* The same for sum = a + b, two gradients reaching x added up. */
int nb__anomaly_sum(const char *fn, nb_graph *g, nb_tensor *x, nb_tensor *sum, nb_tensor *a,
                    nb_tensor *b);
/* The note of the thread's last report when t is its tensor, else NULL. */
const char *nb__anomaly_note(const nb_tensor *t);

/* ---- errors ---- */
/* Sets the thread's error message (printf-style) with code NB_ERR_INVALID;
 * nb__error_code with another code. Always return -1. */
#define nb__error nb_set_error
#define nb__error_code nb_set_error_code
#define nb__shape_error(...) nb_set_error_code(NB_ERR_SHAPE, __VA_ARGS__)
#define nb__dtype_error(...) nb_set_error_code(NB_ERR_DTYPE, __VA_ARGS__)
#define nb__state_error(...) nb_set_error_code(NB_ERR_STATE, __VA_ARGS__)
#define nb__memory_error(...) nb_set_error_code(NB_ERR_MEMORY, __VA_ARGS__)
/* nb_op_error with a code: "nb_<op>: <message>". Returns -1. */
int nb__op_error_code(nb_error_code code, const nb_op *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Runs `call` (of type T) inside nb_error_scope_begin(fn) and returns its
 * value: errors set inside name fn first. For compositions. */
#define NB__NAMED(fn, T, call)                                                 \
    do {                                                                       \
        const char *outer_ = nb_error_scope_begin(fn);                         \
        T r_ = (call);                                                         \
        nb_error_scope_end(outer_);                                            \
        return r_;                                                             \
    } while (0)
/* True when an error is pending (used to keep the first error). */
bool nb__has_error(void);
/* The public function running (nb_error_scope_begin), into buf (64 bytes);
 * NULL when none is. */
const char *nb__entry(char *buf);
/* Makes the pending message start with "fn: " (unless it does): an unnamed
 * "nabla: ..." is renamed, anything else prefixed. The code is kept. */
void nb__name_error(const char *fn);
/* "nb_" for built-in ops, "" for user ops, so messages name the C function. */
const char *nb__op_prefix(const nb_op *op);

/* ---- memory ---- */
void *nb__alloc(size_t size); /* nb_mem_alloc */
void nb__free(void *p);       /* nb_mem_free */
/* Allocation in g's arena (64-byte aligned); NULL with an error. Inline
 * (the end of this file): every op allocates from it twice. */
static inline void *nb__arena_alloc(nb_graph *g, size_t size);
nb_graph *nb__graph(void); /* current graph or NULL */

/* ---- lifetimes (src/memory.c) ----
 * A graph holds a slot in a process-wide registry, whose entry is the
 * graph's current generation (0 once freed); a graph tensor's storage keeps
 * the slot and the generation it was made in. So a tensor is usable while
 * nb__slot_gen[slot] == gen: one load, no lock, and nothing read from the
 * graph itself. Heap storages count the graph generations that use them. */
enum { NB__MAX_GRAPHS = 1 << 16 };
extern _Atomic uint64_t nb__slot_gen[NB__MAX_GRAPHS];

static inline bool nb__storage_live(const nb_storage *s)
{
    if (s->gen) /* the mask keeps a garbage header's slot inside the table */
        return atomic_load_explicit(&nb__slot_gen[s->slot & (NB__MAX_GRAPHS - 1)],
                                    memory_order_relaxed) == s->gen;
    return !(__atomic_load_n(&s->refs, __ATOMIC_RELAXED) & 1u);
}
/* t, and the storage it views, are still valid: not of a reset or freed
 * graph, not freed with nb_free. */
static inline bool nb__live(const nb_tensor *t)
{
    return nb__storage_live(&t->own) && (t->storage == &t->own || nb__storage_live(t->storage));
}
/* The STATE error for a tensor that is not live: "fn: what is a tensor of
 * graph generation 3, which was reset (now 4)", "... was freed (nb_free)
 * ...". Returns -1. */
int nb__stale_error(const char *fn, const char *what, const nb_tensor *t);
/* NULL (INVALID, a pending error kept) or not live (STATE): -1 with the
 * error; 0 when t can be used. */
static inline int nb__usable(const char *fn, const char *what, const nb_tensor *t)
{
    if (t && nb__live(t))
        return 0;
    return nb_check_tensor(fn, what, t);
}
/* Counts a heap storage as used by g's current generation (a view of it or
 * a node that records its tensor); released when g is reset or freed. A
 * no-op for graph storages. 0, or -1 (out of memory) with an error. */
int nb__pin_heap(nb_graph *g, nb_storage *s);
static inline int nb__pin(nb_graph *g, nb_storage *s) { return s->gen ? 0 : nb__pin_heap(g, s); }

/* Checks a shape (0..NB_MAX_DIMS dims, none negative, the element count
 * within NB_MAX_NUMEL) and gives its element count; -1 with an error
 * "fn: ..." otherwise (fn NULL: -1 and no message). The one validation
 * behind every tensor. */
int nb__check_shape(const char *fn, int ndim, const int64_t *shape, int64_t *numel);

/* A new contiguous graph tensor; its data is allocated unless alloc_data is
 * false (a view's caller points storage elsewhere). The shape must have
 * passed nb__check_shape. */
nb_tensor *nb__new_graph_tensor(nb_graph *g, nb_dtype dtype, int ndim,
                                const int64_t *shape, bool alloc_data);
nb_tensor *nb__new_heap_tensor(const char *fn, nb_dtype dtype, int ndim,
                               const int64_t *shape);
/* Records a node of op on y for the inputs x (pinning heap inputs); y then
 * requires grad. 0, or -1 (out of memory) with an error. */
int nb__record(nb_graph *g, const nb_op *op, nb_tensor *y, nb_tensor *const x[], int n,
               const void *attr);
/* Copies a string into the graph's arena. */
char *nb__arena_strdup(nb_graph *g, const char *s);

static inline size_t nb__dtype_size(nb_dtype d) { return d == NB_F64 ? 8 : d == NB_U8 ? 1 : 4; }
/* A dtype tensors may have (storage: f32, f64, u8) ... */
static inline bool nb__dtype_ok(nb_dtype d) { return d == NB_F32 || d == NB_F64 || d == NB_U8; }
/* ... and one ops compute in (f32, f64): the only ones that may index
 * nb_op.forward and nb_op.tolerance ([NB_F64 + 1]) or any per-dtype table. */
static inline bool nb__dtype_float(nb_dtype d) { return d == NB_F32 || d == NB_F64; }
/* The refusal of a u8 tensor where an op or a function computes: "fn: what
 * is u8, which ops do not compute in; convert with nb_cast(x, NB_F32)",
 * NB_ERR_DTYPE. Returns -1. */
int nb__u8_error(const char *fn, const char *what);

/* ---- layout ---- */
/* Row-major strides in elements. */
static inline void nb__strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i];
    }
}

static inline int64_t nb__numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

/* Packed row-major, ignoring the strides of size-1 dimensions. */
bool nb__layout_contiguous(int ndim, const int64_t *shape, const int64_t *strides);
/* True when two elements of the layout may share memory (a 0 stride). */
bool nb__layout_overlaps(int ndim, const int64_t *shape, const int64_t *strides);

static inline bool nb__same_shape(const nb_tensor *a, const nb_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static inline void *nb__ptr(const nb_tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)nb__dtype_size(t->dtype);
}

/* The kernel's view of t (inline: every op makes one per operand). */
static inline void nb__view(const nb_tensor *t, nb_view *v)
{
    v->data = nb__ptr(t);
    v->dtype = t->dtype;
    v->ndim = t->ndim;
    v->numel = t->numel;
    for (int i = 0; i < t->ndim; i++) {
        v->shape[i] = t->shape[i];
        v->strides[i] = t->strides[i];
    }
}

/* Offset (in elements, from element 0) of row-major element i of t. */
static inline int64_t nb__elem(const nb_tensor *t, int64_t i)
{
    if (t->contiguous)
        return i;
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->strides[d];
        i /= t->shape[d];
    }
    return off;
}

/* True when v is a value of a u8 tensor: a whole number in [0, 255]. */
static inline bool nb__u8_value(double v) { return v >= 0 && v <= 255 && v == (double)(int)v; }

/* Row-major element i as double / store a double there, whatever the dtype
 * and layout (slow paths: printing, checks, small tensors). */
static inline double nb__get(const nb_tensor *t, int64_t i)
{
    int64_t k = nb__elem(t, i);
    const void *p = nb__ptr(t);
    if (t->dtype == NB_U8)
        return ((const uint8_t *)p)[k];
    return t->dtype == NB_F64 ? ((const double *)p)[k] : (double)((const float *)p)[k];
}
static inline void nb__put(nb_tensor *t, int64_t i, double v)
{
    int64_t k = nb__elem(t, i);
    void *p = nb__ptr(t);
    if (t->dtype == NB_F64)
        ((double *)p)[k] = v;
    else if (t->dtype == NB_U8) /* the caller checked v (nb__u8_value) */
        ((uint8_t *)p)[k] = (uint8_t)v;
    else
        ((float *)p)[k] = (float)v;
}

/* Normalises axis against ndim (negative counts from the end); -1 if out of range. */
static inline int nb__axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return (axis < 0 || axis >= ndim) ? -1 : axis;
}

/* Marks an in-place write. */
static inline void nb__bump(nb_tensor *t) { t->storage->version++; }

/* ---- kernels ---- */
/* dst = src elementwise (src broadcast to dst, dtypes may differ, but a u8
 * dst only takes a u8 src). dst must not overlap src. */
void nb__copy(const nb_view *dst, const nb_view *src);
/* dst += src elementwise (src broadcast to dst, one dtype); zero: dst holds
 * zeros, which are then not read. */
void nb__accumulate(const nb_view *dst, const nb_view *src, bool zero);

/* NumPy broadcast of two shapes into out (ndim returned), -1 if they clash. */
int nb__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b,
                        int64_t *out);

/* ---- GEMM (src/gemm.c) ----
 * C = op(A) @ op(B) for row-major matrices (op transposes when ta / tb is
 * set): C is M x N with leading dimension ldc, op(A) M x K, op(B) K x N.
 * Picks the backend and the thread count for the size (docs/design.md);
 * dimensions and leading dimensions must fit an int (nb_matmul checks). */
/* Multiply-adds (m*n*k) from which a product runs on nb_num_threads()
 * rather than one thread, per backend and dtype: the smallest at which the
 * training steps measured never lost to one thread, also while the cores
 * exchanged cache lines slowly; and from which an f32 product goes to
 * oneDNN in builds with it (docs/design.md, "GEMM backend and threads"). */
#define NB__GEMM_OPENBLAS_S_MT_WORK 1.5e7
#define NB__GEMM_OPENBLAS_D_MT_WORK 1.5e7
#define NB__GEMM_ONEDNN_S_MT_WORK 1.5e7
#define NB__GEMM_ONEDNN_MIN_WORK 1.1e6
/* The same where OpenBLAS runs generic kernels (below): only products of
 * fewer multiply-adds, whose call costs more on oneDNN, stay with it. */
#define NB__GEMM_ONEDNN_MIN_WORK_GENERIC 4096.0
/* Whether OpenBLAS's kernel `core` (openblas_get_corename()) is one whose
 * small f32 products beat oneDNN's, so that products below
 * NB__GEMM_ONEDNN_MIN_WORK stay with OpenBLAS: its AVX-512 kernels;
 * otherwise the bound is NB__GEMM_ONEDNN_MIN_WORK_GENERIC. */
bool nb__openblas_small_wins(const char *core);
void nb__gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float *C, int64_t ldc);
void nb__gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double *A,
                  int64_t lda, const double *B, int64_t ldb, double *C, int64_t ldc);

/* The thread count for a product (or convolution) of `work` multiply-adds
 * on a backend whose two-thread threshold is mt_work: 1 inside an OpenMP
 * parallel region. */
int nb__threads_for(double work, double mt_work);

/* ---- elementwise kernels on several threads (src/kernel.c) ----
 * Runs op's kernel k on y split into one block per thread (whole cache
 * lines), when y has at least NB__ELEMENTWISE_PARALLEL elements,
 * nb_num_threads() > 1, no OpenMP region runs, and every input is packed
 * with y's elements or one element: the elementwise contract
 * (nb_op.elementwise, checked by nb_check_contract) says the blocks give
 * the whole's bits. False when it does not apply: the caller runs k.
 * From 2^18 elements two threads were never slower for relu and its
 * gradient, even with the other core busy (2^16 to 2^17 gained only on an
 * idle machine; below, the wake-up costs more than the half it takes). */
#define NB__ELEMENTWISE_PARALLEL (1 << 18)
/* libgomp's barriers are invisible to ThreadSanitizer (it is not built
 * with it), so an OpenMP region tells it the edges they make, on two
 * tokens so that the workers stay unordered among themselves: the fork
 * (the caller releases p before the region, each worker acquires it at
 * its start) and the join (each worker releases p + 1 at its end, the
 * caller acquires it after the region). */
#if defined(__SANITIZE_THREAD__)
#define NB__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NB__TSAN 1
#endif
#endif
#ifdef NB__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define NB__TSAN_ACQUIRE(p) __tsan_acquire(p)
#define NB__TSAN_RELEASE(p) __tsan_release(p)
#else
#define NB__TSAN_ACQUIRE(p) ((void)(p))
#define NB__TSAN_RELEASE(p) ((void)(p))
#endif
bool nb__elementwise_parallel(nb_kernel k, const nb_view *y, const nb_view *x, int n,
                              const void *attr);

/* Kernels that are not elementwise but independent along rows (images):
 * the threads for one reading `elems` elements over `rows` rows (the
 * elementwise rule above, at most one per row), and the rows split among
 * them, fn(job, thread, r0, r1) on each thread's share (the caller's
 * subnormal setting on each). */
int nb__kernel_threads(int64_t elems, int64_t rows);
void nb__parallel_rows(int nt, int64_t rows, void (*fn)(void *job, int t, int64_t r0, int64_t r1),
                       void *job);

/* ---- random masks (src/rng.c) ----
 * p[i] = keep where the i-th nb_rng_uniform(r) is >= rate, else 0: the
 * same draws, the generator advanced by n. */
void nb__rng_mask_f32(nb_rng *r, float *p, int64_t n, double rate, float keep);
void nb__rng_mask_f64(nb_rng *r, double *p, int64_t n, double rate, double keep);

/* ---- convolution (ops/conv.c, src/conv_onednn.c) ---- */
/* The attributes of the three convolution ops: the window (every entry
 * explicit, stride and dilation >= 1, kernel = w's KH, KW), the groups, and
 * for conv2d_input_grad the image's H and W. */
typedef struct nb__conv_attr {
    nb_window2d win;
    int64_t groups;
    int64_t h, w;
} nb__conv_attr;
typedef enum { NB__CONV_FORWARD, NB__CONV_INPUT_GRAD, NB__CONV_KERNEL_GRAD } nb__conv_kind;
/* y = conv2d(x, w) + b (b may be NULL), dx = conv2d_input_grad(dy, w),
 * dw = conv2d_kernel_grad(x, dy): the ops behind nb_convolution, each the
 * others' backward. */
nb_tensor *nb__conv2d(nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb__conv_attr *a);
nb_tensor *nb__conv2d_input_grad(nb_tensor *dy, nb_tensor *w, const nb__conv_attr *a);
nb_tensor *nb__conv2d_kernel_grad(nb_tensor *x, nb_tensor *dy, const nb__conv_attr *a);
/* The f32 convolution of `kind` by oneDNN's primitives into out from the
 * contiguous a and b (the op's inputs) and, for the forward, the bias (or
 * NULL); false where this build has no oneDNN or oneDNN refused, and the
 * caller computes it itself. */
bool nb__onednn_conv(nb__conv_kind kind, const nb_view *out, const nb_view *a, const nb_view *b,
                     const nb_view *bias, const nb__conv_attr *attr);
/* im2col and col2im's kernels (ops/im2col.c) on views of either float dtype:
 * cols (N,OH,OW,kh*kw*C) from x (N,H,W,C); img (N,H,W,C) contiguous from cols.
 * The window's output size and shapes are the caller's to check. */
void nb__im2col(const nb_view *cols, const nb_view *x, const nb_window2d *win);
void nb__col2im(const nb_view *img, const nb_view *cols, const nb_window2d *win);
/* Checks a window (kernel, stride, dilation >= 1, padding >= 0) and gives the
 * output size of an h x w image under it; -1 with an error naming fn. */
int nb__window_out(const char *fn, const nb_window2d *win, int64_t h, int64_t w, int64_t *oh,
                   int64_t *ow);

/* ---- the op registry (src/registry.c) ---- */
bool nb__is_builtin(const nb_op *op);

/* ---- reductions ----
 * Axis set as a bitmask; sum/max over it into y (shape with 1s or removed). */
typedef struct nb_reduce_attr {
    unsigned mask; /* bit i: reduce axis i of the input */
    bool keepdims;
} nb_reduce_attr;

/* Parses axes against x's ndim into attr; -1 with an error naming fn. */
int nb__reduce_attr(const char *fn, const nb_tensor *x, const nb_axes *axes, bool keepdims,
                    nb_reduce_attr *attr);
/* Output shape of a reduction. */
int nb__reduce_shape(nb_meta *out, const nb_tensor *x, const nb_reduce_attr *a);
/* The reduced shape with kept 1s, for broadcasting gradients back. */
void nb__keep_shape(const nb_tensor *x, unsigned mask, int64_t *shape);
/* The batch rule (nb_op.batch) of ops with an nb_reduce_attr: the input is a
 * batch when axis 0 is kept. */
unsigned nb__reduce_batch(nb_tensor *const x[], int n, const void *attr);

/* ---- shared plumbing (src/util.c) ---- */

/* A growable array of elem-sized items, in g's arena when g is set (old
 * copies are left to the arena's reset), on the heap otherwise. */
typedef struct nb_vec {
    void *v;
    int64_t n, cap;
    size_t elem;
    nb_graph *g;
} nb_vec;
/* Room for n + extra items; 0 or -1 (error set). Inline when there is
 * room (the walk reserves once per tensor). */
int nb__vec_grow(nb_vec *a, int64_t extra);
static inline int nb__vec_reserve(nb_vec *a, int64_t extra)
{
    return a->n + extra <= a->cap ? 0 : nb__vec_grow(a, extra);
}
void nb__vec_free(nb_vec *a); /* heap vectors only; arena ones go with the graph */

/* A pointer -> int64 map (open addressing), in an arena or on the heap. */
typedef struct nb_pmap {
    struct nb_pmap_slot *s;
    size_t cap, n;
    nb_graph *g;
} nb_pmap;
int64_t nb__pmap_get(const nb_pmap *m, const void *key); /* -1 when absent */
int nb__pmap_put(nb_pmap *m, const void *key, int64_t val);
void nb__pmap_free(nb_pmap *m);

/* A growing NUL-terminated string on the heap; after a failed allocation
 * it stays failed (error set) and further writes do nothing. */
typedef struct nb_sbuf {
    char *p;
    size_t n, cap;
    bool failed;
} nb_sbuf;
void nb__sb_putn(nb_sbuf *b, const char *s, size_t n);
void nb__sb_puts(nb_sbuf *b, const char *s);
void nb__sb_printf(nb_sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* "svg" or "png" from path's extension (any case), NULL otherwise: the
 * pictures' formats (nb_dot_render, nb_plot_history). */
const char *nb__picture_format(const char *path);
/* Writes n bytes to path; 0, or -1 with an error naming fn and the path. */
int nb__write_file(const char *fn, const char *path, const void *data, size_t n);

/* Length of the well-formed UTF-8 sequence at s (at most n bytes; no
 * overlongs, surrogates or values above U+10FFFF), 0 if there is none. */
size_t nb__utf8_len(const unsigned char *s, size_t n);

/* The tensors of root's history in topological order (inputs first), with
 * each tensor's position (nb__walk_pos); with grad_only, only tensors that
 * require grad are followed (the backward pass). Arena-backed when g is
 * set. Iterative: no recursion, any depth. 0 or -1; call nb__walk_free
 * afterwards either way (for an arena walk it gives g's table back).
 * Positions are looked up with nb__walk_pos: tensors of g's current
 * generation by their id in a table of g's (no hashing: the backward pass
 * looks up every input of every node), others in the map. */
typedef struct nb_walk_slot {
    uint32_t stamp; /* the walk that filled it; others are stale */
    int32_t pos;
} nb_walk_slot;
typedef struct nb_walk {
    nb_vec order; /* nb_tensor * */
    nb_pmap index;
    nb_walk_slot *ids; /* NULL: every tensor is in index */
    int64_t nids;
    uint32_t stamp;
    uint64_t gen;
    nb_graph *owner;
} nb_walk;
int nb__walk(nb_walk *w, nb_tensor *root, bool grad_only, nb_graph *g);
void nb__walk_free(nb_walk *w);
/* Lends g's id table to w for one walk (nothing when another walk has it);
 * 0, or -1 out of memory (src/memory.c). */
int nb__walk_table(nb_graph *g, nb_walk *w);
void nb__walk_table_release(nb_walk *w);
/* The position of t in w's order; -2 while it is on the stack, -1 when
 * absent. */
static inline int64_t nb__walk_pos(const nb_walk *w, const nb_tensor *t)
{
    if (w->ids && t->own.gen == w->gen) {
        if ((uint64_t)t->id < (uint64_t)w->nids && w->ids[t->id].stamp == w->stamp)
            return w->ids[t->id].pos;
        return -1;
    }
    return nb__pmap_get(&w->index, t);
}

/* ---- graphs (src/memory.c) ----
 * Here rather than in memory.c so that the few fields every op touches
 * (the arena's bump pointer, the node count, the scope) are reached
 * inline; only memory.c changes them otherwise. */

/* AddressSanitizer builds: the released arena is poisoned (src/memory.c,
 * "lifetimes"), so every allocation goes through memory.c. */
#if defined(__SANITIZE_ADDRESS__)
#define NB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NB_ASAN 1
#endif
#endif

/* The data arena: a list of chunks, rewound on reset. */
typedef struct nb__chunk {
    struct nb__chunk *next;
    size_t size, used;
    char *mem;
} nb__chunk;

/* The header ring: chunks of fixed-size tensor headers. */
/* Two chunks of 128 headers (~66 KB) per allocation: below malloc's mmap
 * threshold, so a freed ring stays mapped (a stale read is not a crash). */
typedef struct nb__hchunk {
    struct nb__hchunk *next;
    uint32_t used;
    bool owns_block; /* the first of the chunks one allocation made */
    uint64_t newest; /* the newest generation with a header here */
    char *mem;
} nb__hchunk;

struct nb_graph {
    nb__chunk *first, *cur;
    size_t used;  /* bytes handed out since the last reset (nb_graph_bytes) */
    size_t limit; /* nb_graph_set_limit; 0: none */
    nb__hchunk *hfirst, *hcur;
    nb_graph *prev;
    int64_t nodes, next_id;
    uint64_t generation, previous; /* the current one and the one before */
    uint32_t slot;
    size_t header_bytes;           /* headers made since the last reset */
    nb_vec pins;                   /* nb_storage *: heap storages this generation uses */
    /* scope stack: each entry is the full path "a/b" in the arena */
    const char *scopes[32];
    int nscopes;
    /* The walk table of this generation (nb__walk_table), in the arena. */
    nb_walk_slot *walk;
    int64_t walk_cap;
    uint32_t walk_stamp;
    bool walk_busy;
};

/* Every case but a small request that fits the current chunk of a graph
 * without a limit: sizes, limits, new chunks, errors, ASan. */
void *nb__arena_alloc_slow(nb_graph *g, size_t size);
static inline void *nb__arena_alloc(nb_graph *g, size_t size)
{
#ifndef NB_ASAN
    nb__chunk *c = g->cur;
    size_t r = (size + 63) & ~(size_t)63;
    if (!g->limit && c && size <= ((size_t)1 << 30) && c->size - c->used >= r) {
        void *p = c->mem + c->used;
        c->used += r;
        g->used += r;
        return p;
    }
#endif
    return nb__arena_alloc_slow(g, size);
}

/* The innermost scope path of g, or NULL. */
static inline const char *nb__scope(nb_graph *g)
{
    return g->nscopes ? g->scopes[g->nscopes - 1] : NULL;
}
static inline void nb__count_node(nb_graph *g) { g->nodes++; }

#endif
