/* nabla: ops. Each computes its result at once into the current graph and
 * records a node when gradients are on. Elementwise ops broadcast like NumPy;
 * inputs must share a dtype. Any NULL input gives NULL and keeps the first
 * error, so a whole expression can be checked once at the end.
 * Primitive ops live in ops/<name>.c with their backward rule; the rest are
 * compositions (marked "composition") with no derivative code of their own. */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* NB_AXES(0, -1) expands to `2, (const int[]){0, -1}`; NB_ALL means every
 * axis. Negative axes count from the end. */
#define NB_AXES(...)                                                           \
    (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)),                   \
        (const int[]){__VA_ARGS__}
#define NB_ALL 0, (const int *)0

/* ---- constants in the graph ------------------------------------------------ */

/* A tensor of t's dtype and shape (or 0-d for scalar_like) filled with value. */
nb_tensor *nb_full_like(nb_tensor *t, double value);
nb_tensor *nb_zeros_like(nb_tensor *t);    /* composition */
nb_tensor *nb_ones_like(nb_tensor *t);     /* composition */
nb_tensor *nb_scalar_like(nb_tensor *t, double value);

/* ---- elementwise, broadcasting ---------------------------------------------- */

nb_tensor *nb_add(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_sub(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_mul(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_div(nb_tensor *a, nb_tensor *b);
/* a^b; the gradient for b uses log(a), so it needs a > 0. */
nb_tensor *nb_pow(nb_tensor *a, nb_tensor *b);
/* Elementwise max/min; a tie sends half the gradient to each side. */
nb_tensor *nb_maximum(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_minimum(nb_tensor *a, nb_tensor *b);

/* Comparisons give 1 or 0 in the inputs' dtype and carry no gradient. */
nb_tensor *nb_eq(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_ne(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_lt(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_le(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_gt(nb_tensor *a, nb_tensor *b);
nb_tensor *nb_ge(nb_tensor *a, nb_tensor *b);
/* cond != 0 ? a : b, broadcasting all three; cond gets no gradient. */
nb_tensor *nb_where(nb_tensor *cond, nb_tensor *a, nb_tensor *b);

nb_tensor *nb_neg(nb_tensor *x);
nb_tensor *nb_exp(nb_tensor *x);
nb_tensor *nb_log(nb_tensor *x);
nb_tensor *nb_sqrt(nb_tensor *x);
nb_tensor *nb_abs(nb_tensor *x);    /* gradient sign(x), 0 at 0 */
nb_tensor *nb_sign(nb_tensor *x);   /* -1, 0, 1; no gradient */
nb_tensor *nb_tanh(nb_tensor *x);
nb_tensor *nb_sigmoid(nb_tensor *x);
nb_tensor *nb_erf(nb_tensor *x);     /* the error function; gradient 2/sqrt(pi) exp(-x^2) */
nb_tensor *nb_relu(nb_tensor *x);   /* gradient 0 at 0 */
nb_tensor *nb_clamp(nb_tensor *x, double lo, double hi);
nb_tensor *nb_square(nb_tensor *x); /* composition: x * x */
/* Same values, no history: gradients stop here. Shares storage. */
nb_tensor *nb_detach(nb_tensor *x);
/* Converts to dtype (differentiable). */
nb_tensor *nb_cast(nb_tensor *x, nb_dtype dtype);

/* ---- reductions (axes: NB_AXES(...) or NB_ALL) ---------------------------------- */

nb_tensor *nb_sum(nb_tensor *x, int naxes, const int *axes, bool keepdims);
/* Max over axes; the gradient goes to the arg-max (split evenly on ties). */
nb_tensor *nb_max(nb_tensor *x, int naxes, const int *axes, bool keepdims);
nb_tensor *nb_min(nb_tensor *x, int naxes, const int *axes, bool keepdims);  /* composition */
nb_tensor *nb_mean(nb_tensor *x, int naxes, const int *axes, bool keepdims); /* composition */
/* Population variance (divides by N, as NumPy and Keras do). Composition. */
nb_tensor *nb_var(nb_tensor *x, int naxes, const int *axes, bool keepdims);
/* Index of the first maximum along axis, as a number in x's dtype. No gradient. */
nb_tensor *nb_argmax(nb_tensor *x, int axis, bool keepdims);

/* ---- stable compositions ----------------------------------------------------- */

/* log(sum(exp(x))) over axes, shifted by the (detached) max: never overflows. */
nb_tensor *nb_logsumexp(nb_tensor *x, int naxes, const int *axes, bool keepdims);
nb_tensor *nb_softmax(nb_tensor *x, int axis);
nb_tensor *nb_log_softmax(nb_tensor *x, int axis);

/* ---- linear algebra ------------------------------------------------------------ */

/* (..., m, k) @ (..., k, n) -> (..., m, n); batch dimensions broadcast.
 * Both operands need at least 2 dimensions. OpenBLAS gemm. */
nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b);
/* matmul of a or b transposed in their last two dimensions, without a copy. */
nb_tensor *nb_matmul_t(nb_tensor *a, nb_tensor *b, bool transpose_a, bool transpose_b);

/* ---- shape ------------------------------------------------------------------------ */

/* Same data, new shape (no copy); one dimension may be -1 (inferred). */
nb_tensor *nb_reshape(nb_tensor *x, int ndim, const int64_t *shape);
/* Reorders dimensions: y.shape[i] = x.shape[perm[i]] (copies). */
nb_tensor *nb_permute(nb_tensor *x, int ndim, const int *perm);
/* Swaps two dimensions (composition of permute). */
nb_tensor *nb_transpose(nb_tensor *x, int dim0, int dim1);
/* Repeats x along broadcast dimensions to shape (copies). */
nb_tensor *nb_broadcast_to(nb_tensor *x, int ndim, const int64_t *shape);
/* Sums x down to shape, the reverse of broadcasting (the backward of every
 * broadcasting op). shape must broadcast to x's shape. */
nb_tensor *nb_sum_to(nb_tensor *x, int ndim, const int64_t *shape);
/* x[start:stop:step] along axis, Python rules (negative indices count from
 * the end, bounds clip); step >= 1. Copies. */
nb_tensor *nb_slice(nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
/* x with x[start:stop:step] along axis replaced by src (the backward of slice). */
nb_tensor *nb_slice_scatter(nb_tensor *x, nb_tensor *src, int axis, int64_t start,
                            int64_t stop, int64_t step);
/* Joins n tensors along axis; other dimensions must match. */
nb_tensor *nb_concat(int n, nb_tensor *const xs[], int axis);
/* Picks entries idx[0..k) along axis (idx: 1-D, whole numbers in x's dtype). */
nb_tensor *nb_index_select(nb_tensor *x, int axis, nb_tensor *idx);
/* x plus src added at positions idx along axis (repeats accumulate); the
 * backward of index_select. */
nb_tensor *nb_index_add(nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src);
/* labels (whole numbers in [0, n)) -> labels.shape + (n,) of 0/1. No gradient. */
nb_tensor *nb_one_hot(nb_tensor *labels, int64_t n);

/* ---- in-place, for no-grad code -------------------------------------------------- */

/* Writes src (broadcast) into dst's storage and bumps dst's version, so a
 * recorded node that still needs the old values fails loudly in backward.
 * Refused on a tensor that requires grad while recording is on. 0 or -1. */
int nb_assign(nb_tensor *dst, nb_tensor *src);

#ifdef __cplusplus
}
#endif
#endif
