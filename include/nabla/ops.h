/* nabla: ops. Each computes its result at once into the current graph and
 * records a node when gradients are on. Elementwise ops broadcast like NumPy;
 * inputs must share a dtype (f32 or f64: a u8 input is refused with
 * NB_ERR_DTYPE, except by nb_cast) and may be any views. Any NULL input
 * gives NULL and keeps the first error, so a whole expression can be
 * checked once at the end. Primitive ops live in ops/<name>.c with their backward rule; the
 * rest are compositions (marked "composition") with no derivative code of
 * their own. */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

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
/* a^b. Gradients as PyTorch's: 0 for a where b == 0, 0 for b where a == 0
 * and b >= 0 (no 0 * inf); elsewhere the gradient for b uses log(a). */
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
/* Their backward from the output y, as single ops (differentiable):
 * dy * (1 - y*y) and dy * (y * (1 - y)). */
nb_tensor *nb_tanh_grad(nb_tensor *dy, nb_tensor *y);
nb_tensor *nb_sigmoid_grad(nb_tensor *dy, nb_tensor *y);
nb_tensor *nb_erf(nb_tensor *x);     /* the error function; gradient 2/sqrt(pi) exp(-x^2) */
nb_tensor *nb_relu(nb_tensor *x);   /* gradient 0 at 0 */
/* Its backward as one op (differentiable): dy * (x > 0). */
nb_tensor *nb_relu_grad(nb_tensor *dy, nb_tensor *x);
nb_tensor *nb_clamp(nb_tensor *x, double lo, double hi);
nb_tensor *nb_square(nb_tensor *x); /* composition: x * x */
/* Converts to dtype, f32 or f64 (differentiable); the one op that takes a
 * u8 x (exact: 0..255). */
nb_tensor *nb_cast(nb_tensor *x, nb_dtype dtype);

/* ---- reductions ------------------------------------------------------------------ */

/* Axes to reduce: NB_AXES(0, -1); negative axes count from the end. */
typedef struct nb_axes {
    int n; /* 0: every axis */
    int axis[NB_MAX_DIMS];
} nb_axes;
#define NB_AXES(...)                                                           \
    ((nb_axes){(int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)), {__VA_ARGS__}})

/* Arguments of the reductions, in the style of nb_backward:
 *   nb_sum(x)                                    every axis, 0-d result
 *   nb_sum(x, .axes = NB_AXES(1))                axis 1 removed
 *   nb_mean(x, .axes = NB_AXES(0, 2), .keepdims = true)   kept as size 1 */
typedef struct nb_reduce_args {
    nb_tensor *x;
    nb_axes axes;  /* default: every axis */
    bool keepdims; /* keep the reduced axes, with size 1 */
} nb_reduce_args;

/* Sums accumulate in double, also for f32, along every axis. */
#define nb_sum(...) nb_sum_((nb_reduce_args){.x = __VA_ARGS__})
/* Max over axes; the gradient goes to the arg-max (split evenly on ties). */
#define nb_max(...) nb_max_((nb_reduce_args){.x = __VA_ARGS__})
#define nb_min(...) nb_min_((nb_reduce_args){.x = __VA_ARGS__})   /* composition */
#define nb_mean(...) nb_mean_((nb_reduce_args){.x = __VA_ARGS__}) /* composition */
/* Population variance (divides by N, as NumPy and Keras do). Composition. */
#define nb_var(...) nb_var_((nb_reduce_args){.x = __VA_ARGS__})
/* log(sum(exp(x))) shifted by the (detached) max: never overflows; -inf
 * over an empty axis. Composition. */
#define nb_logsumexp(...) nb_logsumexp_((nb_reduce_args){.x = __VA_ARGS__})
nb_tensor *nb_sum_(nb_reduce_args a);
nb_tensor *nb_max_(nb_reduce_args a);
nb_tensor *nb_min_(nb_reduce_args a);
nb_tensor *nb_mean_(nb_reduce_args a);
nb_tensor *nb_var_(nb_reduce_args a);
nb_tensor *nb_logsumexp_(nb_reduce_args a);

/* Index of the first maximum along axis (default 0), as a number in x's
 * dtype; no gradient. nb_argmax(x, -1) or nb_argmax(x, .axis = 1,
 * .keepdims = true). */
typedef struct nb_argmax_args {
    nb_tensor *x;
    int axis;
    bool keepdims;
} nb_argmax_args;
#define nb_argmax(...) nb_argmax_((nb_argmax_args){.x = __VA_ARGS__})
nb_tensor *nb_argmax_(nb_argmax_args a);

/* ---- stable compositions ----------------------------------------------------- */

/* Over one axis, shifted by the (detached) max; an empty axis gives an
 * empty result. */
nb_tensor *nb_softmax(nb_tensor *x, int axis);
nb_tensor *nb_log_softmax(nb_tensor *x, int axis);

/* ---- linear algebra ------------------------------------------------------------ */

/* (..., m, k) @ (..., k, n) -> (..., m, n); batch dimensions broadcast.
 * Both operands need at least 2 dimensions. A gemm of OpenBLAS or oneDNN
 * (nb_gemm_backend), on nb_num_threads() threads when large enough; a
 * transposed view (nb_transpose(w, -2, -1)) goes to gemm as a transpose
 * flag, not a copy. */
nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b);

/* ---- convolution and pooling: channels-last (N,H,W,C), as Keras ------------------- */

/* A sliding window over the H and W axes of an (N,H,W,C) tensor. */
typedef struct nb_window2d {
    int64_t kernel[2];   /* (kh, kw), at least 1 */
    int64_t stride[2];   /* 0: 1 */
    int64_t dilation[2]; /* 0: 1 */
    int64_t pad[4];      /* zeros added at the top, bottom, left, right */
} nb_window2d;
/* x (N,H,W,C) -> its windows (N,OH,OW,kh*kw*C), each patch ordered (kh, kw, c),
 * so that im2col(x) @ w.reshape(kh*kw*C, F) is the convolution. */
nb_tensor *nb_im2col(nb_tensor *x, nb_window2d win);
/* The adjoint of nb_im2col for an h x w image: (N,OH,OW,kh*kw*C) patches
 * summed back into (N,h,w,C), the entries from the padding dropped. */
nb_tensor *nb_col2im(nb_tensor *cols, nb_window2d win, int64_t h, int64_t w);

/* VALID: no padding. SAME: TensorFlow's rule, output ceil(in / stride),
 * padding max((out-1)*stride + (k-1)*dilation + 1 - in, 0) split with the
 * smaller half first (top/left). EXPLICIT: .pad as given. */
typedef enum nb_padding { NB_PAD_VALID, NB_PAD_SAME, NB_PAD_EXPLICIT } nb_padding;

/* The arguments of nb_convolution; zeros are the defaults:
 *   nb_convolution(x, w)                       x (N,H,W,C), w (KH,KW,C,F): VALID
 *   nb_convolution(x, w, b, .stride = {2, 2}, .padding = NB_PAD_SAME)
 *   nb_convolution(x, w, .groups = C)          depthwise: w (KH,KW,1,C*mult)
 * 1-D: x (N,W,C), w (K,C/groups,F); stride[0], dilation[0] and pad[0..1]
 * (left, right) are its options and the others must be 0. */
typedef struct nb_conv_args {
    nb_tensor *x, *w;
    nb_tensor *b;         /* (F,) or NULL */
    int64_t stride[2];    /* along H, W; 0: 1 */
    int64_t dilation[2];  /* 0: 1 */
    nb_padding padding;   /* default VALID */
    int64_t pad[4];       /* top, bottom, left, right: with NB_PAD_EXPLICIT only */
    int64_t groups;       /* 0: 1; must divide C and F */
} nb_conv_args;
/* Cross-correlation (as Keras's Conv2D/Conv1D) of x with an HWIO kernel w
 * (KH,KW,C/groups,F), plus b: (N,OH,OW,F). One op (oneDNN's kernels for f32
 * where built with oneDNN, else im2col and gemm); differentiable to any order. */
#define nb_convolution(...) nb_convolution_((nb_conv_args){.x = __VA_ARGS__})
nb_tensor *nb_convolution_(nb_conv_args a);

/* One axis of a convolution or pooling window, for layers that need output
 * shapes before running: nb_conv_output_size(28, 3, .padding = NB_PAD_SAME). */
typedef struct nb_window_args {
    int64_t in, kernel;
    int64_t stride, dilation; /* 0: 1 */
    nb_padding padding;
    int64_t pad[2];           /* before, after: with NB_PAD_EXPLICIT only */
} nb_window_args;
typedef struct nb_window_size {
    int64_t out;                 /* output length; -1 on error (message set) */
    int64_t pad_before, pad_after; /* the padding applied */
} nb_window_size;
#define nb_conv_output_size(...) nb_conv_output_size_((nb_window_args){.in = __VA_ARGS__})
nb_window_size nb_conv_output_size_(nb_window_args a);

/* The arguments of the pooling functions on channels-last x (N,H,W,C);
 * zeros are the defaults (Keras's: 2x2 windows, stride = the window, VALID). */
typedef struct nb_pool_args {
    nb_tensor *x;
    int64_t kernel[2];      /* (kh, kw); {k}: (k, k); {0, 0}: (2, 2) */
    int64_t stride[2];      /* {0, 0}: the kernel; {s}: (s, s) */
    nb_padding padding;     /* default VALID */
    int64_t pad[4];         /* top, bottom, left, right: with NB_PAD_EXPLICIT only */
    bool count_include_pad; /* average pooling: divide by kh*kw, padding as zeros */
} nb_pool_args;
/* Average pooling per channel: (N,OH,OW,C).
 *   nb_avg_pool2d(x)                   2x2 windows, stride 2, VALID
 *   nb_avg_pool2d(x, {3}, {1}, .padding = NB_PAD_SAME)
 * Padding must be smaller than the window. Without count_include_pad a
 * window's mean is over its pixels inside the image (Keras, TensorFlow).
 * Composition over im2col. */
#define nb_avg_pool2d(...) nb_avg_pool2d_((nb_pool_args){.x = __VA_ARGS__})
nb_tensor *nb_avg_pool2d_(nb_pool_args a);
/* (N,H,W,C) -> (N,C), the mean over H and W. Composition. */
nb_tensor *nb_global_avg_pool2d(nb_tensor *x);

/* ---- views and shape: the views copy nothing ------------------------------------- */

/* Same values, new shape; one dimension may be -1 (inferred). A view when
 * the strides allow, otherwise a copy, as PyTorch's reshape. */
nb_tensor *nb_reshape(nb_tensor *x, int ndim, const int64_t *shape);
/* Removes axis, which must have size 1 / inserts a size-1 axis before
 * position axis (-1: at the end). Views. */
nb_tensor *nb_squeeze(nb_tensor *x, int axis);
nb_tensor *nb_unsqueeze(nb_tensor *x, int axis);
/* Reorders dimensions: y.shape[i] = x.shape[perm[i]]. A view. */
nb_tensor *nb_permute(nb_tensor *x, int ndim, const int *perm);
/* Swaps two dimensions (a permute). */
nb_tensor *nb_transpose(nb_tensor *x, int dim0, int dim1);
/* x repeated along its size-1 (or missing leading) dimensions to shape: a
 * view with stride 0 there (PyTorch's expand). */
nb_tensor *nb_broadcast_to(nb_tensor *x, int ndim, const int64_t *shape);
/* Sums x down to shape, the reverse of broadcasting (the engine applies it
 * to the gradients of broadcasting ops). shape must broadcast to x's. */
nb_tensor *nb_sum_to(nb_tensor *x, int ndim, const int64_t *shape);
/* x[start:stop:step] along axis, Python rules: negative indices count from
 * the end, bounds clip (INT64_MAX / INT64_MIN mean "to the end" either way),
 * a negative step walks backwards, step 0 is an error. A view. */
nb_tensor *nb_slice(nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
/* x with x[start:stop:step] along axis replaced by src (the backward of slice). */
nb_tensor *nb_slice_scatter(nb_tensor *x, nb_tensor *src, int axis, int64_t start,
                            int64_t stop, int64_t step);
/* Same values, no history: gradients stop here. A view. */
nb_tensor *nb_detach(nb_tensor *x);
/* x itself when it is contiguous, else a packed copy (differentiable). */
nb_tensor *nb_contiguous(nb_tensor *x);
/* Joins n tensors along axis; other dimensions must match. */
nb_tensor *nb_concat(int n, nb_tensor *const xs[], int axis);
/* Picks entries idx[0..k) along axis (idx: 1-D, whole numbers in x's dtype). */
nb_tensor *nb_index_select(nb_tensor *x, int axis, nb_tensor *idx);
/* x plus src added at positions idx along axis (repeats accumulate); the
 * backward of index_select. */
nb_tensor *nb_index_add(nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src);
/* labels (whole numbers in [0, n)) -> labels.shape + (n,) of 0/1. No gradient. */
nb_tensor *nb_one_hot(nb_tensor *labels, int64_t n);

/* ---- max pooling and dropout (docs/pooling.md) ------------------------------------ */

/* Max pooling takes nb_pool_args (above; count_include_pad is average
 * pooling's only): padded positions never win a max, and each explicit pad
 * is in [0, kernel - 1].
 *   nb_max_pool2d(x)                                    2x2, stride 2, VALID
 *   nb_max_pool2d(x, .kernel = {3, 2}, .stride = {1}, .padding = NB_PAD_SAME)
 *   nb_max_pool2d(x, .kernel = {3}, .padding = NB_PAD_EXPLICIT, .pad = {1, 0, 1, 1}) */
/* Max over each window, as PyTorch: the gradient goes to the window's first
 * maximum in row-major order; a NaN is the maximum. Differentiable to any
 * order: it is nb_pool_select(x, x). */
#define nb_max_pool2d(...) nb_max_pool2d_((nb_pool_args){.x = __VA_ARGS__})
nb_tensor *nb_max_pool2d_(nb_pool_args a);
/* Linear in g / d, x deciding where (x gets no gradient): g (x's shape) read
 * at x's window maxima gives the pooled shape; d (pooled shape) added into
 * zeros of x's shape at those positions. Each is the other's adjoint. */
#define nb_pool_select(g, ...) nb_pool_select_((g), (nb_pool_args){.x = __VA_ARGS__})
#define nb_pool_scatter(d, ...) nb_pool_scatter_((d), (nb_pool_args){.x = __VA_ARGS__})
nb_tensor *nb_pool_select_(nb_tensor *g, nb_pool_args a);
nb_tensor *nb_pool_scatter_(nb_tensor *d, nb_pool_args a);
/* (N,H,W,C) -> (N,C): nb_max over H and W (ties split the gradient). Composition. */
nb_tensor *nb_global_max_pool2d(nb_tensor *x);
/* A keep-mask of x's dtype and shape in the current graph: element i (row-major)
 * is 1 when the i-th nb_rng_uniform(rng) >= rate, else 0, so the same seed
 * gives the same mask everywhere. A constant (no gradient). rate in [0, 1). */
nb_tensor *nb_dropout_mask(nb_tensor *x, double rate, nb_rng *rng);
/* x * mask / (1 - rate) with a fresh nb_dropout_mask (multiplied as one
 * factor mask * (1 / (1 - rate)), as PyTorch); rate 0 returns x and draws
 * nothing. The gradient is that factor. Composition. */
nb_tensor *nb_inverted_dropout(nb_tensor *x, double rate, nb_rng *rng);

/* ---- in-place, for no-grad code -------------------------------------------------- */

/* Writes src (broadcast) into dst's storage, through dst's strides when dst
 * is a view, and bumps the version dst shares with its views, so a recorded
 * node that still needs the old values fails loudly in backward. Refused on
 * a tensor that requires grad while recording is on, and on a dst whose
 * elements share memory (a broadcast view). 0 or -1. */
int nb_assign(nb_tensor *dst, nb_tensor *src);

#ifdef __cplusplus
}
#endif
#endif
