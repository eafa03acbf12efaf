/* nabla: tensors, their creation, inspection and lifetime.
 *
 * A tensor is a view of a storage: a dtype, a shape, strides (in elements)
 * and an offset into a buffer that several views may share, together with
 * its version counter. Views made by ops (reshape, permute, slice,
 * broadcast_to, detach, ...) copy nothing; nb_contiguous makes a packed
 * row-major copy when one is needed.
 *
 * Two lifetimes. Tensors made by the factories below (nb_zeros ... nb_clone)
 * live on the heap and belong to the caller, who frees them with nb_free;
 * they are contiguous. Tensors made by ops (ops.h) live in the current graph
 * (autograd.h) and go away when that graph is reset or freed. A tensor used
 * after that is an error (NB_ERR_STATE) naming the function, never a read of
 * another tensor's data: see nb_graph_reset for what each build detects. A
 * heap tensor that a graph still uses is kept until that graph lets go of it
 * (nb_free).
 *
 * Errors never abort: functions return NULL (or -1, NAN, false) and leave a
 * message in nb_last_error() and its class in nb_last_error_code(). */
#ifndef NABLA_TENSOR_H
#define NABLA_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NB_MAX_DIMS 8
/* The most elements one tensor may have (2^48): shapes beyond it, or whose
 * element count overflows, are refused with an error. */
#define NB_MAX_NUMEL (INT64_C(1) << 48)

/* f32 and f64 are the dtypes ops compute in. u8 is a storage dtype for
 * data (images, as files hold them: a quarter of the memory of f32): u8
 * tensors are made, read, written, printed, saved and loaded like the
 * others, but no op takes or gives one except nb_cast, which converts u8 to
 * f32 or f64 (others fail with NB_ERR_DTYPE); they never require grad.
 * nb_fit, nb_evaluate and nb_predict convert u8 data batch by batch
 * (nb_dataset.scale in nn.h). */
typedef enum nb_dtype { NB_F32 = 1, NB_F64 = 2, NB_U8 = 3 } nb_dtype;

typedef struct nb_tensor nb_tensor;

/* NB_SHAPE(2, 3) expands to the pair `2, (const int64_t[]){2, 3}`: an
 * (ndim, dims) argument pair. NB_AT does the same for element indices. */
#define NB_SHAPE(...)                                                          \
    (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),           \
        (const int64_t[]){__VA_ARGS__}
#define NB_AT(...) NB_SHAPE(__VA_ARGS__)

/* ---- errors (thread-local) ---------------------------------------------- */

/* The class of the last error, beside its message, for programs that
 * switch on it instead of reading strings. */
typedef enum nb_error_code {
    NB_OK = 0,      /* no error pending */
    NB_ERR_INVALID, /* a bad argument: NULL, a value, axis or index out of range, an unknown option */
    NB_ERR_SHAPE,   /* a shape that cannot be (negative, too many elements) or shapes that do not fit */
    NB_ERR_DTYPE,   /* an unknown dtype, dtypes that differ, or no kernel for the dtype */
    NB_ERR_MEMORY,  /* an allocation failed (or is larger than this machine can address) */
    NB_ERR_IO,      /* the system refused to open, read, write or rename a file */
    NB_ERR_FORMAT,  /* a file's contents are not what its format says (magic, truncated, corrupt) */
    NB_ERR_NUMERIC, /* values that are not finite where finite ones are needed */
    NB_ERR_STATE,   /* not valid now: no current graph, a tensor of a reset or freed graph, a
                       graph already backpropagated, a freed tensor, fit before compile */
    NB_ERR_DIST,    /* distributed training cannot go on: another rank failed or did not answer
                       in time, MPI reported an error, or nabla was built without MPI */
} nb_error_code;

/* The message of the last error on this thread, or NULL if none. Messages
 * start with the public function that was called: "nb_zeros: ...". */
const char *nb_last_error(void);
/* The class of the last error on this thread: NB_OK when there is none.
 * Kept and cleared together with the message. */
nb_error_code nb_last_error_code(void);
/* "ok", "invalid", "shape", "dtype", "memory", "io", "format", "numeric",
 * "state", "dist"; "?" for anything else. */
const char *nb_error_code_name(nb_error_code code);
/* Forget the last error (message and code). */
void nb_clear_error(void);
/* Sets this thread's error message (printf-style), for code built on nabla
 * that reports errors the same way: "my_layer: units is 0". The code is
 * NB_ERR_INVALID; nb_set_error_code sets another. Both return -1. */
int nb_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
int nb_set_error_code(nb_error_code code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* For functions built on nabla that call several nabla functions (layers,
 * losses): until the matching nb_error_scope_end, an error set on this
 * thread whose message does not already start with "fn:" reads
 * "fn: <message>", so that it names the function the user called. An outer
 * scope wins over inner ones. Returns what
 * nb_error_scope_end restores:
 *   const char *outer = nb_error_scope_begin("my_loss");
 *   ...
 *   nb_error_scope_end(outer); */
const char *nb_error_scope_begin(const char *fn);
void nb_error_scope_end(const char *outer);
/* For functions built on nabla: 0 when t can be used; otherwise -1 with the
 * error "fn: what is NULL" (a pending error is kept: the call that made the
 * NULL failed first) or "fn: what is a tensor of graph generation 3, which
 * was reset (now 4)", and the like, with code NB_ERR_STATE. */
int nb_check_tensor(const char *fn, const char *what, const nb_tensor *t);
/* Buffer size for nb_shape_str / nb_dims_str. */
#define NB_SHAPE_STR_LEN 96
/* "(2,3)", "(4,)", "()" into buf (NB_SHAPE_STR_LEN bytes); returns buf
 * ("(null)" for a NULL tensor or dims; a NULL buf gives "(null buf)"). */
const char *nb_shape_str(const nb_tensor *t, char *buf);
const char *nb_dims_str(int ndim, const int64_t *dims, char *buf);

/* ---- random numbers ------------------------------------------------------ */

/* The library's own generator (xoshiro256**): the same seed gives the same
 * numbers on every platform. A plain value: copy it to fork a stream. */
typedef struct nb_rng {
    uint64_t s[4];
} nb_rng;

nb_rng nb_rng_new(uint64_t seed);
/* The next 64 random bits; 0 and an error for a NULL rng. */
uint64_t nb_rng_next(nb_rng *rng);
/* Uniform in [0, 1), 53 random bits; NAN and an error for a NULL rng. */
double nb_rng_uniform(nb_rng *rng);
/* Standard normal (Marsaglia polar method, libm-free so bit-reproducible);
 * NAN and an error for a NULL rng. */
double nb_rng_normal(nb_rng *rng);
/* Uniform integer in [0, n) (0 for n = 0); 0 and an error for a NULL rng. */
uint64_t nb_rng_below(nb_rng *rng, uint64_t n);

/* ---- factories: heap tensors owned by the caller --------------------------- */

nb_tensor *nb_zeros(nb_dtype dtype, int ndim, const int64_t *shape);
nb_tensor *nb_ones(nb_dtype dtype, int ndim, const int64_t *shape);
nb_tensor *nb_full(nb_dtype dtype, int ndim, const int64_t *shape, double value);
/* Unfilled, like torch.empty: the values are unspecified until written. For
 * buffers about to be overwritten whole, saving nb_zeros' pass over them. */
nb_tensor *nb_empty(nb_dtype dtype, int ndim, const int64_t *shape);
/* Values of u8 tensors must be whole numbers in [0, 255] (nb_full,
 * nb_arange, nb_set); nb_rand and nb_randn make f32 and f64 only. */
/* Copies numel elements of `dtype` (float, double or uint8_t) from data. */
nb_tensor *nb_from_array(nb_dtype dtype, int ndim, const int64_t *shape,
                         const void *data);
/* A 0-d tensor holding value. */
nb_tensor *nb_scalar(nb_dtype dtype, double value);
/* 1-D [start, start+step, ...) below stop (above it for negative step). */
nb_tensor *nb_arange(nb_dtype dtype, double start, double stop, double step);
/* Uniform in [0, 1) / standard normal, drawn from rng in row-major order. */
nb_tensor *nb_rand(nb_dtype dtype, int ndim, const int64_t *shape, nb_rng *rng);
nb_tensor *nb_randn(nb_dtype dtype, int ndim, const int64_t *shape, nb_rng *rng);
/* A contiguous heap copy of any tensor or view (values and name only: no
 * history, no grad). */
nb_tensor *nb_clone(const nb_tensor *t);
/* Frees a heap tensor and its .grad. NULL and graph tensors are ignored. A
 * tensor that a live graph still uses (a recorded node or a view holds it)
 * is marked freed at once (nb_live_tensors no longer counts it; the graph
 * refuses it with NB_ERR_STATE) and released at that graph's next reset or
 * free; freeing it again meanwhile is an error. */
void nb_free(nb_tensor *t);

/* ---- gradients on leaves ----------------------------------------------------- */

/* Marks t as a trainable parameter (requires grad, drawn as one). Returns t
 * (NULL for a u8 tensor, NB_ERR_DTYPE). */
nb_tensor *nb_param(nb_tensor *t);
/* Turns gradient tracking of a leaf on or off. Returns t, NULL on error
 * (turning it on for a u8 tensor is NB_ERR_DTYPE). */
nb_tensor *nb_set_requires_grad(nb_tensor *t, bool on);
bool nb_requires_grad(const nb_tensor *t);
bool nb_is_param(const nb_tensor *t);
/* The accumulated gradient of a leaf, or NULL before the first backward. */
nb_tensor *nb_grad_of(const nb_tensor *t);
/* Sets t's gradient to zero (keeps its storage). */
void nb_zero_grad(nb_tensor *t);

/* ---- inspection ------------------------------------------------------------ */

/* The accessors below give their failure value (NULL, -1, 0, false) and an
 * error for a NULL tensor, a tensor of a reset or freed graph, or one freed
 * with nb_free. */

nb_dtype nb_dtype_of(const nb_tensor *t);
const char *nb_dtype_name(nb_dtype dtype); /* "f32", "f64", "u8"; "?" if unknown */
size_t nb_dtype_size(nb_dtype dtype);      /* 4, 8, 1; 0 for an unknown dtype */
int nb_ndim(const nb_tensor *t);
/* Size of dimension i; negative i counts from the end. -1 on error. */
int64_t nb_dim(const nb_tensor *t, int i);
const int64_t *nb_shape(const nb_tensor *t);
/* Element strides per dimension (0 along broadcast dimensions, negative
 * along reversed slices) and the offset of element 0 in the storage. */
const int64_t *nb_strides(const nb_tensor *t);
int64_t nb_offset(const nb_tensor *t);
int64_t nb_numel(const nb_tensor *t);
/* Packed row-major (dimensions of size 1 may have any stride). */
bool nb_is_contiguous(const nb_tensor *t);
/* True for tensors the caller owns (factories), false for graph tensors. */
bool nb_is_heap(const nb_tensor *t);
/* The address of element 0 (float *, double * or uint8_t *, as the dtype
 * says): the whole buffer for a contiguous tensor; otherwise walk it by
 * nb_strides. */
void *nb_data(const nb_tensor *t);
/* Call after writing through nb_data yourself: bumps the version counter
 * that t shares with its views, so a recorded node that saved the old
 * values fails loudly in backward instead of using the new ones. */
void nb_bump_version(nb_tensor *t);
/* The tensor's name, or NULL. */
const char *nb_name(const nb_tensor *t);
/* Names t (copied; shown in errors and pictures). Returns t. */
nb_tensor *nb_set_name(nb_tensor *t, const char *name);

/* Element at an index (NB_AT(i, j)); NAN and an error when out of range. */
double nb_get(const nb_tensor *t, int ndim, const int64_t *index);
/* Element i in row-major order, whatever the strides; NAN and an error
 * when out of range. */
double nb_get_flat(const nb_tensor *t, int64_t i);
/* Writes one element (an in-place write through any view: bumps the
 * version; a u8 tensor takes whole numbers in [0, 255]). 0 or -1. */
int nb_set(nb_tensor *t, int ndim, const int64_t *index, double value);
/* The value of a one-element tensor; NAN and an error otherwise. */
double nb_item(const nb_tensor *t);
/* Copies all elements, row-major, into out as doubles (out holds nb_numel).
 * 0 or -1. */
int nb_to_doubles(const nb_tensor *t, double *out);

/* Prints t like PyTorch's repr: values (middle elided when large), shape,
 * dtype, name and the op that made it. Returns 0, or -1 on error. */
int nb_print(const nb_tensor *t, FILE *f);
/* |a - b| <= atol + rtol * |b| elementwise, same shape; NaNs never close. */
bool nb_allclose(const nb_tensor *a, const nb_tensor *b, double rtol, double atol);

/* ---- numerics ----------------------------------------------------------------- */

/* Flush subnormal floats to zero on this thread: x86 FTZ and DAZ in the
 * thread's MXCSR, so every kernel nabla runs here (and any other float code
 * on the thread) treats them as 0, as torch.set_flush_denormal does. Off by
 * default (IEEE arithmetic); nb_fit turns it on while it trains, since
 * Adam's moments of idle units decay into the subnormal range, where
 * arithmetic is ~100x slower. Returns the previous setting. No effect on
 * other CPUs. */
bool nb_set_flush_subnormals(bool on);
bool nb_flush_subnormals(void);

/* ---- threads and the GEMM backend ------------------------------------------ */

/* The most threads nb_set_num_threads takes. */
#define NB_MAX_THREADS 1024

/* Threads for nabla's parallel work, process-wide: a matrix product large
 * enough to gain from them runs on n threads, a smaller one on one (the
 * rule and its measurements: docs/design.md). Also sets OpenBLAS's count and
 * the calling thread's OpenMP count, for the caller's own BLAS and OpenMP
 * code; set threads through this rather than openblas_set_num_threads.
 * n in [1, NB_MAX_THREADS]: returns the previous setting, else -1 with an
 * error and nothing changed. */
int nb_set_num_threads(int n);
/* The setting: the last nb_set_num_threads, else the smaller of what
 * OpenBLAS and OpenMP start with (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS,
 * else the number of cores). */
int nb_num_threads(void);
/* The library behind this build's f32 matrix products: "onednn" (oneDNN
 * for all but the smallest, OpenBLAS for those) or "openblas". f64 products
 * are OpenBLAS's in every build. */
const char *nb_gemm_backend(void);

/* The row-major index of t's first element that is NaN or infinite; -1
 * when every element is finite; -2 with an error when t is NULL. Packed
 * tensors are scanned at memory speed (about 3 us for 50 000 floats). */
int64_t nb_find_nonfinite(const nb_tensor *t);

/* ---- memory ---------------------------------------------------------------- */

/* Every allocation nabla makes goes through this hook (tests count them). */
typedef struct nb_allocator {
    void *(*alloc)(size_t size, void *ctx);
    void (*free)(void *ptr, void *ctx);
    void *ctx;
} nb_allocator;

/* Installs a process-wide allocator (copied); NULL restores malloc/free.
 * Safe to call while other threads allocate; each block goes back to the
 * hook that made it. At most 15 distinct hooks per process. 0 or -1. */
int nb_set_allocator(const nb_allocator *a);
/* Memory from the installed hook, 64-byte aligned, for code built on nabla
 * (NULL and an error when out of memory); nb_mem_free returns it. */
void *nb_mem_alloc(size_t size);
void nb_mem_free(void *p);
/* Number of live heap tensors (leak checks). */
int64_t nb_live_tensors(void);

#ifdef __cplusplus
}
#endif
#endif
