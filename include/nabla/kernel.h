/* nabla: defining ops. An op is a `const nb_op`: a shape rule, a kernel per
 * dtype that fills the output from plain views of the inputs, and a backward
 * rule written with nabla ops. Built-in and user ops are the same thing:
 * nb_apply runs both, the engine checks what each promises, and the loops
 * below are the ones the built-in kernels are written with. */
#ifndef NABLA_KERNEL_H
#define NABLA_KERNEL_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most inputs an op takes (n-ary built-ins such as concat chain). */
#define NB_MAX_INPUTS 8

/* ---- what a kernel sees --------------------------------------------------------- */

/* A tensor as a kernel sees it: the address of element 0 and, per
 * dimension, the size and the stride in elements (0 along broadcast
 * dimensions, negative along reversed slices). */
typedef struct nb_view {
    void *data;
    nb_dtype dtype;
    int ndim;
    int64_t numel;
    int64_t shape[NB_MAX_DIMS];
    int64_t strides[NB_MAX_DIMS];
} nb_view;

/* Fills y (a fresh contiguous tensor with the shape rule's dtype and shape)
 * from the n input views x[0..n), which may have any strides unless the op
 * asks for contiguous ones (nb_op.contiguous). A kernel that cannot finish
 * (out of scratch memory) calls nb_op_error, and nb_apply returns NULL. */
typedef void (*nb_kernel)(const nb_view *y, const nb_view *x, int n, const void *attr);

/* Scratch memory for a kernel, valid until the graph is reset (it comes
 * from the current graph's arena); NULL with an error when out of memory. */
void *nb_kernel_scratch(size_t bytes);

/* ---- the op ------------------------------------------------------------------------ */

/* What a shape rule fills in for the output. A rule may instead make the
 * output a view of x[0]'s storage (reshape, permute, slice ...): it sets
 * `view`, the strides and the offset (in elements of the storage, as
 * nb_offset gives); the engine checks that the view stays inside x[0]'s
 * storage, and no kernel runs. */
typedef struct nb_meta {
    nb_dtype dtype;
    int ndim;
    int64_t shape[NB_MAX_DIMS];
    bool view;
    int64_t strides[NB_MAX_DIMS];
    int64_t offset;
} nb_meta;

typedef struct nb_op nb_op;

/* Input i, as a bit of the masks below. */
#define NB_INPUT(i) (1u << (i))
/* Bits of nb_op.saves: which tensors the backward rule reads, so that writing
 * to them in place after recording is caught. 0 means "all of them". */
#define NB_SAVES_X(i) NB_INPUT(i)
#define NB_SAVES_Y (1u << NB_MAX_INPUTS)
#define NB_SAVES_NONE (1u << (NB_MAX_INPUTS + 1))

/* Where gradcheck draws an input of an example from (e.g. log wants x > 0).
 * Inputs the op marks non-differentiable (nb_op.nondiff) get whole numbers
 * in [ceil(lo), ceil(hi)): indices, or a 0/1 mask by default. */
typedef struct nb_domain {
    double lo, hi;
    bool away_from_zero; /* |x| >= (hi - lo) / 10: keeps off a pole at 0 (kinks:
                            nb_op.kink) */
} nb_domain;

/* A point where an op is not differentiable in one element of an input (a
 * kink: relu at 0, abs at 0, max at a tie, clamp at a bound): the value the
 * element takes there, and which derivative the backward gives at it. */
typedef enum nb_subgradient {
    NB_SUBGRADIENT_LEFT,  /* the derivative from below (relu at 0 gives 0) */
    NB_SUBGRADIENT_RIGHT, /* the derivative from above (clamp at lo gives 1) */
    NB_SUBGRADIENT_MEAN,  /* the mean of the two (abs at 0; a tie splits evenly) */
} nb_subgradient;
typedef struct nb_kink {
    double at;
    nb_subgradient side;
} nb_kink;

/* The central-difference step and tolerances to check an op with, in one
 * dtype; zeros take the checker's defaults (check.h). */
typedef struct nb_tolerance {
    double eps, atol, rtol;
} nb_tolerance;

/* An example application of an op, for gradcheck tables and `nabla gradcheck`. */
typedef struct nb_op_example {
    int n;                                     /* inputs */
    int ndim[NB_MAX_INPUTS];                   /* per input */
    int64_t shape[NB_MAX_INPUTS][NB_MAX_DIMS]; /* per input */
    nb_domain domain[NB_MAX_INPUTS];           /* per input; all zero: [-1, 1] */
    const void *attr;                          /* attributes for this example */
    bool once_differentiable;                  /* skip the second-order check */
} nb_op_example;

struct nb_op {
    const char *name; /* "tanh"; errors read "nb_tanh: ..." for built-ins */
    int arity;        /* number of inputs; -1: 1 to NB_MAX_INPUTS */
    size_t attr_size; /* bytes of attribute struct copied into the node */
    /* Output dtype and shape, or -1 after nb_op_error() explains why. */
    int (*shape)(nb_meta *out, nb_tensor *const x[], int n, const void *attr);
    /* Kernels by output dtype: .forward = NB_KERNELS(tanh) for tanh_f32 and
     * tanh_f64. A dtype without a kernel is an error when applied. */
    nb_kernel forward[NB_F64 + 1];
    /* Sets dx[i] for the inputs that require grad, written with nabla ops so
     * that it can itself be differentiated. For a broadcasting op, dx[i] may
     * have the output's shape: the engine sums it back to x[i]'s. */
    void (*backward)(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                     nb_tensor *const x[], int n, const void *attr);
    /* Not differentiable by design (comparisons, argmax): the output never
     * requires grad. An op with neither this nor a backward is refused on
     * inputs that require grad ("backward not implemented"). */
    bool no_gradient;
    /* The masks below name inputs by position (an op of arity -1 may name
     * inputs a call leaves out). */
    unsigned nondiff;    /* NB_INPUT(i): inputs that get no gradient (indices) */
    bool broadcast;      /* the inputs broadcast to the output (NumPy rules) */
    unsigned contiguous; /* NB_INPUT(i): inputs the kernels need contiguous;
                            the engine copies the others (differentiably) */
    unsigned saves;      /* NB_SAVES_* bits, see above */
    const nb_op_example *examples; /* gradcheck examples, ended by n == 0 */
    /* Where the op is not differentiable: the distance from element j (flat,
     * row-major) of input i to the nearest kink reached by moving that
     * element alone, with the kink in *k; INFINITY when there is none. The
     * checker draws inputs away from kinks and can test at them. NULL: the
     * op is differentiable everywhere in its domain. */
    double (*kink)(nb_tensor *const x[], int n, int i, int64_t j, const void *attr,
                   nb_kink *k);
    nb_tolerance tolerance[NB_F64 + 1]; /* per dtype of a check; zeros: defaults */
    /* The inputs whose first dimension is a batch: row b of the output
     * depends only on row b of each of them (and on all of the others), and
     * the same attributes apply to one row. 0: the op mixes rows. NULL: not
     * batch-independent. nb_batch_rows is the rule of elementwise ops. */
    unsigned (*batch)(nb_tensor *const x[], int n, const void *attr);
    /* Element i of the output depends only on element i of each input (or
     * on its one element, broadcast), the output has the inputs' broadcast
     * shape, and the kernel keeps no state: it may be run on blocks of any
     * length (1-d packed views, 0-d views of one element), from several
     * threads at once. Fused functions (fuse.h) are made of such ops, and
     * trust this: nb_check_contract's elementwise contract (check.h) checks
     * it on the op's examples. */
    bool elementwise;
};

/* The batch rule of elementwise ops: the inputs with the output's number of
 * dimensions and its first size (the others broadcast: shared by all rows);
 * 0 for a 0-d output. */
unsigned nb_batch_rows(nb_tensor *const x[], int n, const void *attr);

/* Applies op to n inputs: checks the inputs (NULL, stale), the shape rule's
 * result (dims, overflow, NB_MAX_NUMEL, views in bounds) and the
 * declarations, allocates y, runs the kernel, records a node. This is how
 * every op runs, built-in or user-defined. NULL on error, with a message
 * named after the op ("nb_add: ...", "myop: ..."; an error the shape rule or
 * kernel sets is prefixed so). */
nb_tensor *nb_apply(const nb_op *op, nb_tensor *const x[], int n, const void *attr);

/* For shape rules: sets the error "nb_<op>: <message>" and returns -1. */
int nb_op_error(const nb_op *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Shape rules for the common cases: same as x[0]; NumPy broadcast of all
 * inputs (which must share a dtype). */
int nb_shape_same(nb_meta *out, nb_tensor *const x[], int n, const void *attr);
int nb_shape_broadcast(nb_meta *out, nb_tensor *const x[], int n, const void *attr);

/* The op that produced t, or NULL for a leaf or a view without history. */
const nb_op *nb_op_of(const nb_tensor *t);
/* The built-in ops, ended by NULL; nb_op_find looks one up by name. */
const nb_op *const *nb_builtin_ops(void);
const nb_op *nb_op_find(const char *name);

/* ---- dtype dispatch ---------------------------------------------------------------- */

/* {[NB_F32] = name_f32, [NB_F64] = name_f64}, for nb_op.forward. */
#define NB_KERNELS(name) {[NB_F32] = name##_f32, [NB_F64] = name##_f64}

/* ---- elementwise loops --------------------------------------------------------------- */

/* Walks the shape of views[0] (the output) row by row; views[1..nop) are
 * broadcast to it. Dimensions are merged where every operand steps through
 * them evenly, so a row is as long as possible; within a row, operand k
 * advances by step[k] elements (0 for a broadcast operand). */
#define NB_ITER_MAX 4
typedef struct nb_iter {
    int nop, ndim;                       /* operands; outer dimensions */
    int64_t len, rows;                   /* row length; number of rows */
    int64_t shape[NB_MAX_DIMS];          /* outer dimensions */
    int64_t stride[NB_ITER_MAX][NB_MAX_DIMS];
    int64_t step[NB_ITER_MAX];           /* stride along a row */
    int64_t off[NB_ITER_MAX];            /* row start, elements from data */
    int64_t idx[NB_MAX_DIMS];
} nb_iter;

void nb_iter_init(nb_iter *it, int nop, const nb_view *const views[]);
void nb_iter_next(nb_iter *it); /* to the next row */
/* nb_iter_next for loops that know nop where they expand (the maps below,
 * the library's copies and sums): one outer dimension (a matrix and its
 * broadcast row or column) steps inline, since rows can be as short as a
 * softmax's ten classes. Past the last row only the off[] of that row plus
 * a stride are left; nothing reads them. */
static inline void nb_iter_advance_(nb_iter *it, int nop)
{
    if (it->ndim != 1) {
        nb_iter_next(it);
        return;
    }
    for (int k = 0; k < nop; k++)
        it->off[k] += it->stride[k][0];
}

/* True when v is packed row-major (data[i] is element i), whatever the
 * strides of its size-1 dimensions. */
static inline bool nb_view_contiguous(const nb_view *v)
{
    int64_t expect = 1;
    for (int i = v->ndim - 1; i >= 0; i--) {
        if (v->shape[i] == 1)
            continue;
        if (v->strides[i] != expect)
            return v->numel == 0;
        expect *= v->shape[i];
    }
    return true;
}

/* Whether operand v of an elementwise kernel writing y can be read as
 * data[i] (packed, and not broadcast: it has y's element count) or as the
 * one element data[0]. */
#define NB_FLAT_(v, y) (nb_view_contiguous(v) && (v)->numel == (y)->numel)
#define NB_ONE_(v) ((v)->numel == 1)

/* y = EXPR elementwise, u (and v, w) being the elements of a (b, c) broadcast
 * to y; T is the element type of all of them (float or double). y must not
 * overlap the inputs (an op's output never does). Packed operands of y's
 * size, and broadcast scalars (hoisted into locals), get one plain loop the
 * compiler vectorises; anything else goes row by row through nb_iter, with
 * plain loops for rows whose operands are contiguous or scalars and a
 * strided loop for the others. */
#define NB_MAP1(T, y, a, EXPR)                                                 \
    do {                                                                       \
        const nb_view *v_[2] = {(y), (a)};                                     \
        T *Y_ = (T *)v_[0]->data;                                              \
        const T *A_ = (const T *)v_[1]->data;                                  \
        if (nb_view_contiguous(v_[0]) && NB_FLAT_(v_[1], v_[0])) {             \
            T *restrict py_ = Y_;                                              \
            const T *restrict pa_ = A_;                                        \
            for (int64_t i_ = 0; i_ < v_[0]->numel; i_++) {                    \
                T u = pa_[i_];                                                 \
                py_[i_] = (EXPR);                                              \
            }                                                                  \
            break;                                                             \
        }                                                                      \
        nb_iter it_;                                                           \
        nb_iter_init(&it_, 2, v_);                                             \
        for (int64_t r_ = 0; r_ < it_.rows; r_++, nb_iter_advance_(&it_, 2)) { \
            T *restrict py_ = Y_ + it_.off[0];                                 \
            const T *restrict pa_ = A_ + it_.off[1];                           \
            int64_t n_ = it_.len, sy_ = it_.step[0], sa_ = it_.step[1];        \
            if (sy_ == 1 && sa_ == 1) {                                        \
                for (int64_t i_ = 0; i_ < n_; i_++) {                          \
                    T u = pa_[i_];                                             \
                    py_[i_] = (EXPR);                                          \
                }                                                              \
            } else {                                                           \
                for (int64_t i_ = 0; i_ < n_; i_++) {                          \
                    T u = pa_[i_ * sa_];                                       \
                    py_[i_ * sy_] = (EXPR);                                    \
                }                                                              \
            }                                                                  \
        }                                                                      \
    } while (0)

/* One row of a binary map: n_ elements with steps sa_, sb_ (y's is 1). */
#define NB_MAP2_ROW_(T, EXPR)                                                  \
    if (sa_ == 1 && sb_ == 1) {                                                \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                  \
            T u = pa_[i_], v = pb_[i_];                                        \
            py_[i_] = (EXPR);                                                  \
        }                                                                      \
    } else if (sa_ == 1 && sb_ == 0) {                                         \
        const T v = pb_[0];                                                    \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                  \
            T u = pa_[i_];                                                     \
            py_[i_] = (EXPR);                                                  \
        }                                                                      \
    } else if (sa_ == 0 && sb_ == 1) {                                         \
        const T u = pa_[0];                                                    \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                  \
            T v = pb_[i_];                                                     \
            py_[i_] = (EXPR);                                                  \
        }                                                                      \
    } else {                                                                   \
        for (int64_t i_ = 0; i_ < n_; i_++) {                                  \
            T u = pa_[i_ * sa_], v = pb_[i_ * sb_];                            \
            py_[i_] = (EXPR);                                                  \
        }                                                                      \
    }

#define NB_MAP2(T, y, a, b, EXPR)                                              \
    do {                                                                       \
        const nb_view *v_[3] = {(y), (a), (b)};                                \
        T *Y_ = (T *)v_[0]->data;                                              \
        const T *A_ = (const T *)v_[1]->data, *B_ = (const T *)v_[2]->data;    \
        if (nb_view_contiguous(v_[0])) {                                       \
            bool fa_ = NB_FLAT_(v_[1], v_[0]), fb_ = NB_FLAT_(v_[2], v_[0]);   \
            if ((fa_ || NB_ONE_(v_[1])) && (fb_ || NB_ONE_(v_[2]))) {          \
                T *restrict py_ = Y_;                                          \
                const T *restrict pa_ = A_, *restrict pb_ = B_;                \
                int64_t n_ = v_[0]->numel, sa_ = fa_, sb_ = fb_;               \
                NB_MAP2_ROW_(T, EXPR)                                          \
                break;                                                         \
            }                                                                  \
        }                                                                      \
        nb_iter it_;                                                           \
        nb_iter_init(&it_, 3, v_);                                             \
        for (int64_t r_ = 0; r_ < it_.rows; r_++, nb_iter_advance_(&it_, 3)) { \
            T *restrict py_ = Y_ + it_.off[0];                                 \
            const T *restrict pa_ = A_ + it_.off[1];                           \
            const T *restrict pb_ = B_ + it_.off[2];                           \
            int64_t n_ = it_.len, sy_ = it_.step[0], sa_ = it_.step[1],        \
                    sb_ = it_.step[2];                                         \
            if (sy_ == 1) {                                                    \
                NB_MAP2_ROW_(T, EXPR)                                          \
            } else {                                                           \
                for (int64_t i_ = 0; i_ < n_; i_++) {                          \
                    T u = pa_[i_ * sa_], v = pb_[i_ * sb_];                    \
                    py_[i_ * sy_] = (EXPR);                                    \
                }                                                              \
            }                                                                  \
        }                                                                      \
    } while (0)

#define NB_MAP3(T, y, a, b, c, EXPR)                                           \
    do {                                                                       \
        const nb_view *v_[4] = {(y), (a), (b), (c)};                           \
        T *Y_ = (T *)v_[0]->data;                                              \
        const T *A_ = (const T *)v_[1]->data, *B_ = (const T *)v_[2]->data,    \
                *C_ = (const T *)v_[3]->data;                                  \
        if (nb_view_contiguous(v_[0]) && NB_FLAT_(v_[1], v_[0]) &&             \
            NB_FLAT_(v_[2], v_[0]) && NB_FLAT_(v_[3], v_[0])) {                \
            for (int64_t i_ = 0; i_ < v_[0]->numel; i_++) {                    \
                T u = A_[i_], v = B_[i_], w = C_[i_];                          \
                Y_[i_] = (EXPR);                                               \
            }                                                                  \
            break;                                                             \
        }                                                                      \
        nb_iter it_;                                                           \
        nb_iter_init(&it_, 4, v_);                                             \
        for (int64_t r_ = 0; r_ < it_.rows; r_++, nb_iter_advance_(&it_, 4)) { \
            T *restrict py_ = Y_ + it_.off[0];                                 \
            const T *pa_ = A_ + it_.off[1], *pb_ = B_ + it_.off[2],            \
                    *pc_ = C_ + it_.off[3];                                    \
            int64_t sy_ = it_.step[0], sa_ = it_.step[1], sb_ = it_.step[2],   \
                    sc_ = it_.step[3];                                         \
            for (int64_t i_ = 0; i_ < it_.len; i_++) {                         \
                T u = pa_[i_ * sa_], v = pb_[i_ * sb_], w = pc_[i_ * sc_];     \
                py_[i_ * sy_] = (EXPR);                                        \
            }                                                                  \
        }                                                                      \
    } while (0)

/* An attribute for kernel functions, empty unless defined before this
 * header is included: nabla's own build compiles its elementwise kernels
 * for AVX-512 and AVX2 beside the baseline, picked when the library loads
 * (the results are the same: IEEE arithmetic, no contraction in ISO C). */
#ifndef NB_KERNEL_TARGETS
#define NB_KERNEL_TARGETS
#endif

/* Kernels name_f32 and name_f64 computing EXPR of u (unary) or u, v
 * (binary) elementwise; T names the element type inside EXPR. */
#define NB_UNARY_KERNELS(name, EXPR)                                           \
    NB_UNARY_KERNEL_(name##_f32, float, EXPR)                                  \
    NB_UNARY_KERNEL_(name##_f64, double, EXPR)
#define NB_BINARY_KERNELS(name, EXPR)                                          \
    NB_BINARY_KERNEL_(name##_f32, float, EXPR)                                 \
    NB_BINARY_KERNEL_(name##_f64, double, EXPR)
#define NB_UNARY_KERNEL_(fn, T, EXPR)                                          \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        NB_MAP1(T, y, &x[0], EXPR);                                            \
    }
#define NB_BINARY_KERNEL_(fn, T, EXPR)                                         \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        NB_MAP2(T, y, &x[0], &x[1], EXPR);                                     \
    }

/* ---- reductions over axes -------------------------------------------------------------- */

/* A plan for reducing x over the axes in mask (bit i: axis i) into y, a
 * contiguous buffer holding x's kept axes in order (keepdims or not). The
 * innermost merged dimension is the inner loop: a reduction along it, or,
 * when it is kept, a block of outputs accumulated side by side. */
#define NB_REDUCE_BLOCK 256
typedef struct nb_reduce_plan {
    int64_t nout, nin;       /* elements of y and of x */
    bool inner_reduced;      /* the inner loop reduces (else it is kept) */
    int64_t inner, inner_xs, inner_ys;
    int nk, nr;              /* outer kept / reduced dimensions */
    int64_t kshape[NB_MAX_DIMS], kxs[NB_MAX_DIMS], kys[NB_MAX_DIMS];
    int64_t rshape[NB_MAX_DIMS], rxs[NB_MAX_DIMS];
    int64_t kcount, rcount;  /* products of kshape, rshape */
} nb_reduce_plan;

void nb_reduce_init(nb_reduce_plan *p, const nb_view *x, unsigned mask);

/* Steps an odometer over dims (shape, strides) with index idx, keeping the
 * element offset off in step. */
#define NB_ODOMETER(nd, shape, st, idx, off)                                   \
    for (int d_ = (nd) - 1; d_ >= 0; d_--) {                                   \
        (off) += (st)[d_];                                                     \
        if (++(idx)[d_] < (shape)[d_])                                         \
            break;                                                             \
        (off) -= (st)[d_] * (shape)[d_];                                       \
        (idx)[d_] = 0;                                                         \
    }

/* y = reduction of x over mask: acc starts at INIT (of type ACC), then
 * acc = COMBINE for each element u of x (in row-major order of the reduced
 * axes); y gets (T)acc. An empty reduction gives INIT. Sums in f32 should
 * accumulate in double: NB_REDUCE(float, double, y, x, mask, 0, acc + u). */
#define NB_REDUCE(T, ACC, y, x, mask, INIT, COMBINE)                           \
    do {                                                                       \
        nb_reduce_plan p_;                                                     \
        nb_reduce_init(&p_, (x), (mask));                                      \
        T *Y_ = (T *)(y)->data;                                                \
        const T *X_ = (const T *)(x)->data;                                    \
        if (p_.nout == 0)                                                      \
            break;                                                             \
        if (p_.nin == 0) {                                                     \
            for (int64_t j_ = 0; j_ < p_.nout; j_++)                           \
                Y_[j_] = (T)(INIT);                                            \
            break;                                                             \
        }                                                                      \
        if (p_.inner_reduced && p_.nk == 1 && p_.nr == 0) {                    \
            /* Rows of x reduced along their length (a softmax's max and   \
             * sum): four rows at a time, whose chains of COMBINE do not   \
             * wait on each other; each row in its own order as below. */  \
            const int64_t s_ = p_.inner_xs, kx_ = p_.kxs[0], ky_ = p_.kys[0]; \
            int64_t k_ = 0;                                                    \
            for (; k_ + 4 <= p_.kcount; k_ += 4) {                             \
                const T *q_ = X_ + k_ * kx_;                                   \
                ACC r0_ = (INIT), r1_ = (INIT), r2_ = (INIT), r3_ = (INIT);    \
                for (int64_t i_ = 0; i_ < p_.inner; i_++) {                    \
                    { ACC acc = r0_; T u = q_[i_ * s_]; r0_ = (COMBINE); }     \
                    { ACC acc = r1_; T u = q_[kx_ + i_ * s_]; r1_ = (COMBINE); } \
                    { ACC acc = r2_; T u = q_[2 * kx_ + i_ * s_]; r2_ = (COMBINE); } \
                    { ACC acc = r3_; T u = q_[3 * kx_ + i_ * s_]; r3_ = (COMBINE); } \
                }                                                              \
                Y_[k_ * ky_] = (T)r0_;                                         \
                Y_[(k_ + 1) * ky_] = (T)r1_;                                   \
                Y_[(k_ + 2) * ky_] = (T)r2_;                                   \
                Y_[(k_ + 3) * ky_] = (T)r3_;                                   \
            }                                                                  \
            for (; k_ < p_.kcount; k_++) {                                     \
                ACC acc = (INIT);                                              \
                for (int64_t i_ = 0; i_ < p_.inner; i_++) {                    \
                    T u = X_[k_ * kx_ + i_ * s_];                              \
                    acc = (COMBINE);                                           \
                }                                                              \
                Y_[k_ * ky_] = (T)acc;                                         \
            }                                                                  \
            break;                                                             \
        }                                                                      \
        int64_t ki_[NB_MAX_DIMS] = {0}, xo_ = 0, yo_ = 0;                      \
        for (int64_t k_ = 0; k_ < p_.kcount; k_++) {                           \
            if (p_.inner_reduced) {                                            \
                ACC acc = (INIT);                                              \
                int64_t ri_[NB_MAX_DIMS] = {0}, ro_ = 0;                       \
                for (int64_t q_ = 0; q_ < p_.rcount; q_++) {                   \
                    const T *px_ = X_ + xo_ + ro_;                             \
                    int64_t s_ = p_.inner_xs;                                  \
                    for (int64_t i_ = 0; i_ < p_.inner; i_++) {                \
                        T u = px_[i_ * s_];                                    \
                        acc = (COMBINE);                                       \
                    }                                                          \
                    NB_ODOMETER(p_.nr, p_.rshape, p_.rxs, ri_, ro_)            \
                }                                                              \
                Y_[yo_] = (T)acc;                                              \
            } else {                                                           \
                for (int64_t b_ = 0; b_ < p_.inner; b_ += NB_REDUCE_BLOCK) {   \
                    int64_t m_ = p_.inner - b_ < NB_REDUCE_BLOCK               \
                                     ? p_.inner - b_                           \
                                     : NB_REDUCE_BLOCK;                        \
                    ACC a_[NB_REDUCE_BLOCK];                                   \
                    for (int64_t j_ = 0; j_ < m_; j_++)                        \
                        a_[j_] = (INIT);                                       \
                    int64_t ri_[NB_MAX_DIMS] = {0}, ro_ = 0;                   \
                    for (int64_t q_ = 0; q_ < p_.rcount; q_++) {               \
                        const T *px_ = X_ + xo_ + ro_ + b_ * p_.inner_xs;      \
                        int64_t s_ = p_.inner_xs;                              \
                        if (s_ == 1) {                                         \
                            for (int64_t j_ = 0; j_ < m_; j_++) {              \
                                ACC acc = a_[j_];                              \
                                T u = px_[j_];                                 \
                                a_[j_] = (COMBINE);                            \
                            }                                                  \
                        } else {                                               \
                            for (int64_t j_ = 0; j_ < m_; j_++) {              \
                                ACC acc = a_[j_];                              \
                                T u = px_[j_ * s_];                            \
                                a_[j_] = (COMBINE);                            \
                            }                                                  \
                        }                                                      \
                        NB_ODOMETER(p_.nr, p_.rshape, p_.rxs, ri_, ro_)        \
                    }                                                          \
                    for (int64_t j_ = 0; j_ < m_; j_++)                        \
                        Y_[yo_ + (b_ + j_) * p_.inner_ys] = (T)a_[j_];         \
                }                                                              \
            }                                                                  \
            for (int d_ = p_.nk - 1; d_ >= 0; d_--) {                          \
                xo_ += p_.kxs[d_];                                             \
                yo_ += p_.kys[d_];                                             \
                if (++ki_[d_] < p_.kshape[d_])                                 \
                    break;                                                     \
                xo_ -= p_.kxs[d_] * p_.kshape[d_];                             \
                yo_ -= p_.kys[d_] * p_.kshape[d_];                             \
                ki_[d_] = 0;                                                   \
            }                                                                  \
        }                                                                      \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
