/* nabla internals shared by src/ and ops/. Not installed. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#include "nabla/nabla.h"

#include <assert.h>
#include <stdarg.h>
#include <string.h>

typedef struct nb_node nb_node;

enum { NB_HEAP = 1, NB_ARENA = 2 };

struct nb_tensor {
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    int64_t numel;
    void *data;
    /* Views share their base's counter, so writes through any of them count. */
    uint32_t *version;
    uint32_t own_version;
    uint8_t storage; /* NB_HEAP or NB_ARENA */
    bool requires_grad;
    bool param;
    nb_tensor *grad; /* leaves only: accumulated by nb_backward */
    nb_node *node;   /* the op that made it; NULL for leaves */
    char *name;
    int64_t id; /* creation order within its graph, for pictures */
    /* Scratch for one backward pass: valid while pass == the graph's pass. */
    uint32_t pass;
    nb_tensor *acc;
};

struct nb_node {
    const nb_op *op;
    int n;
    nb_tensor **x;
    void *attr;
    uint32_t *versions; /* x[0..n) then y, at recording time */
    const char *scope;  /* "model/dense_1" or NULL */
    bool released;      /* backpropagated through without retain_graph */
};

/* ---- errors ---- */
/* Sets the thread's error message (printf-style). Always returns -1. */
int nb__error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* True when an error is pending (used to keep the first error). */
bool nb__has_error(void);
/* Formats a shape as "(2,3)" into buf (at least 96 bytes); returns buf. */
const char *nb__shape_str(const nb_tensor *t, char *buf);
const char *nb__dims_str(int ndim, const int64_t *shape, char *buf);
/* "nb_" for built-in ops, "" for user ops, so messages name the C function. */
const char *nb__op_prefix(const nb_op *op);

/* ---- memory ---- */
void *nb__alloc(size_t size); /* 64-byte aligned, through the hook; NULL sets error */
void nb__free(void *p);
/* Allocation in the current graph's arena (64-byte aligned). */
void *nb__arena_alloc(nb_graph *g, size_t size);
nb_graph *nb__graph(void); /* current graph or NULL */

/* A graph tensor with the given metadata; data allocated unless view. */
nb_tensor *nb__new_graph_tensor(nb_graph *g, nb_dtype dtype, int ndim,
                                const int64_t *shape, bool alloc_data);
nb_tensor *nb__new_heap_tensor(nb_dtype dtype, int ndim, const int64_t *shape);
/* The innermost scope path of g, or NULL. */
const char *nb__scope(nb_graph *g);
void nb__count_node(nb_graph *g);
/* Copies a string into the graph's arena. */
char *nb__arena_strdup(nb_graph *g, const char *s);

static inline size_t nb__dtype_size(nb_dtype d) { return d == NB_F64 ? 8 : 4; }
static inline bool nb__dtype_ok(nb_dtype d) { return d == NB_F32 || d == NB_F64; }

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

static inline bool nb__same_shape(const nb_tensor *a, const nb_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

/* Element i as double / store double at i, whatever the dtype. */
static inline double nb__get(const nb_tensor *t, int64_t i)
{
    return t->dtype == NB_F64 ? ((const double *)t->data)[i]
                              : (double)((const float *)t->data)[i];
}
static inline void nb__put(nb_tensor *t, int64_t i, double v)
{
    if (t->dtype == NB_F64)
        ((double *)t->data)[i] = v;
    else
        ((float *)t->data)[i] = (float)v;
}

/* Normalises axis against ndim (negative counts from the end); -1 if out of range. */
static inline int nb__axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return (axis < 0 || axis >= ndim) ? -1 : axis;
}

/* Marks an in-place write. */
static inline void nb__bump(nb_tensor *t) { (*t->version)++; }

/* Make a view: y shares x's storage and version counter (view ops' forward). */
static inline void nb__share(nb_tensor *y, const nb_tensor *x)
{
    y->data = x->data;
    y->version = x->version;
}

/* ---- broadcasting ---- */
/* NumPy broadcast of two shapes into out (ndim returned), -1 if they clash. */
int nb__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b,
                        int64_t *out);
/* Strides of t (elements) aligned to an output of ndim dims, 0 where t is
 * broadcast. */
void nb__bstrides(const nb_tensor *t, int ndim, const int64_t *oshape, int64_t *st);

/* ---- the op registry (src/registry.c) ---- */
bool nb__is_builtin(const nb_op *op);

/* ---- elementwise loops ----
 * An iterator over a broadcast output: dims are collapsed where every
 * operand stays contiguous, leaving an outer loop over `outer` rows and an
 * inner run of `inner` elements in which each operand's stride is 0 or 1. */
typedef struct nb_iter {
    int nin;              /* operands (inputs) */
    int ndim;             /* collapsed outer dims (the inner one excluded) */
    int64_t shape[NB_MAX_DIMS];
    int64_t st[3][NB_MAX_DIMS];
    int64_t idx[NB_MAX_DIMS];
    int64_t inner, outer;
    int64_t is[3];  /* inner strides: 0 or 1 */
    int64_t off[3]; /* current row offsets */
} nb_iter;

void nb__iter_init(nb_iter *it, const nb_tensor *y, int nin, nb_tensor *const in[]);
void nb__iter_next(nb_iter *it);

/* y = EXPR(u, v) over broadcast a, b; T is float or double. y must not
 * alias a or b (every op writes a fresh output). Scalars are hoisted into
 * locals so that the compiler vectorises each case. */
#define NB_LOOP2(T, y, a, b, EXPR)                                             \
    do {                                                                       \
        nb_iter it_;                                                           \
        nb_tensor *const in_[2] = {(a), (b)};                                  \
        nb__iter_init(&it_, (y), 2, in_);                                      \
        T *Y_ = (T *)(y)->data;                                                \
        const T *A_ = (const T *)in_[0]->data, *B_ = (const T *)in_[1]->data;  \
        for (int64_t o_ = 0; o_ < it_.outer; o_++, Y_ += it_.inner) {           \
            T *restrict py_ = Y_;                                              \
            const T *restrict pa_ = A_ + it_.off[0];                           \
            const T *restrict pb_ = B_ + it_.off[1];                           \
            int64_t n_ = it_.inner;                                            \
            if (it_.is[0] && it_.is[1]) {                                      \
                for (int64_t i_ = 0; i_ < n_; i_++) {                          \
                    T u = pa_[i_], v = pb_[i_];                                \
                    py_[i_] = (EXPR);                                          \
                }                                                              \
            } else if (it_.is[0]) {                                            \
                const T v = pb_[0];                                            \
                for (int64_t i_ = 0; i_ < n_; i_++) {                          \
                    T u = pa_[i_];                                             \
                    py_[i_] = (EXPR);                                          \
                }                                                              \
            } else if (it_.is[1]) {                                            \
                const T u = pa_[0];                                            \
                for (int64_t i_ = 0; i_ < n_; i_++) {                          \
                    T v = pb_[i_];                                             \
                    py_[i_] = (EXPR);                                          \
                }                                                              \
            } else {                                                           \
                const T u = pa_[0], v = pb_[0];                                \
                for (int64_t i_ = 0; i_ < n_; i_++)                            \
                    py_[i_] = (EXPR);                                          \
            }                                                                  \
            nb__iter_next(&it_);                                               \
        }                                                                      \
    } while (0)

/* y = EXPR(c, u, v) over broadcast inputs p, a, b (used by where). */
#define NB_LOOP3(T, y, p, a, b, EXPR)                                          \
    do {                                                                       \
        nb_iter it_;                                                           \
        nb_tensor *const in_[3] = {(p), (a), (b)};                             \
        nb__iter_init(&it_, (y), 3, in_);                                      \
        T *Y_ = (T *)(y)->data;                                                \
        const T *P_ = (const T *)in_[0]->data, *A_ = (const T *)in_[1]->data,  \
                *B_ = (const T *)in_[2]->data;                                 \
        for (int64_t o_ = 0; o_ < it_.outer; o_++, Y_ += it_.inner) {           \
            const T *pp_ = P_ + it_.off[0], *pa_ = A_ + it_.off[1],            \
                    *pb_ = B_ + it_.off[2];                                    \
            for (int64_t i_ = 0; i_ < it_.inner; i_++) {                       \
                T c = pp_[i_ * it_.is[0]], u = pa_[i_ * it_.is[1]],            \
                  v = pb_[i_ * it_.is[2]];                                     \
                Y_[i_] = (EXPR);                                               \
            }                                                                  \
            nb__iter_next(&it_);                                               \
        }                                                                      \
    } while (0)

/* y = EXPR(u) over x, same shape. */
#define NB_LOOP1(T, y, x, EXPR)                                                \
    do {                                                                       \
        T *restrict Y_ = (T *)(y)->data;                                       \
        const T *restrict X_ = (const T *)(x)->data;                           \
        int64_t n_ = (y)->numel;                                               \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                  \
            T u = X_[i_];                                                      \
            Y_[i_] = (EXPR);                                                   \
        }                                                                      \
    } while (0)

/* Dispatch on dtype: NB_BY_DTYPE(t, MACRO, args...) calls MACRO(float, ...)
 * or MACRO(double, ...). */
#define NB_BY_DTYPE(t, M, ...)                                                 \
    do {                                                                       \
        if ((t)->dtype == NB_F64)                                              \
            M(double, __VA_ARGS__);                                            \
        else                                                                   \
            M(float, __VA_ARGS__);                                             \
    } while (0)

/* ---- reductions ----
 * Axis set as a bitmask; sum/max over it into y (shape with 1s or removed). */
typedef struct nb_reduce_attr {
    unsigned mask; /* bit i: reduce axis i of the input */
    bool keepdims;
} nb_reduce_attr;

/* Parses (naxes, axes) against x's ndim into attr; -1 with error naming fn. */
int nb__reduce_attr(const char *fn, const nb_tensor *x, int naxes, const int *axes,
                    bool keepdims, nb_reduce_attr *attr);
/* Output shape of a reduction. */
int nb__reduce_shape(nb_meta *out, const nb_tensor *x, const nb_reduce_attr *a);
/* The reduced shape with kept 1s, for broadcasting gradients back. */
void nb__keep_shape(const nb_tensor *x, unsigned mask, int64_t *shape);
/* y (numel = product of x's kept dims) = sum / max of x over the mask axes. */
void nb__reduce_sum(nb_tensor *y, const nb_tensor *x, unsigned mask);
void nb__reduce_max(nb_tensor *y, const nb_tensor *x, unsigned mask);

#endif
