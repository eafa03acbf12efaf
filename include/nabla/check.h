/* nabla: gradient checking. Compares the analytic gradient (backward) with
 * central differences computed in f64, and says where and by how much it is
 * wrong. Works on any function built from nabla ops, user ops included, and
 * can hand the function its inputs as strided views (layouts) so that
 * kernels are checked on the views the engine gives them. */
#ifndef NABLA_CHECK_H
#define NABLA_CHECK_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The function under test: builds one output from n inputs (in the current
 * graph). ctx is passed through. */
typedef nb_tensor *(*nb_check_fn)(nb_tensor *const x[], int n, void *ctx);

/* How the inputs reach the function. For every layout but the first, each
 * input x (of shape S) is replaced by a leaf `base` of another shape, and
 * the function receives a view of base with shape S and x's values:
 *   NB_LAYOUT_PERMUTED   base has S's dimensions reversed and the view is
 *                        nb_permute(base, reversed): a transposed layout;
 *   NB_LAYOUT_SLICED     base is twice S along every dimension and the view
 *                        takes every second element, backwards along the
 *                        first dimension of size > 1 (nb_slice with step -2)
 *                        and forwards from index 1 along the others (step 2):
 *                        an offset, non-unit and negative strides;
 *   NB_LAYOUT_BROADCAST  base has size 1 along the first dimension of size
 *                        > 1 and the view is nb_broadcast_to(base, S): stride
 *                        0 there (the values of x at index 0 along that
 *                        dimension are repeated).
 * The elements of base outside a sliced view hold other values of x. An
 * input with at most one element (0-d, all dimensions 1, empty), or a
 * permuted input with fewer than two dimensions of size > 1, is passed as it
 * is. Gradients are checked with respect to the bases (so the view ops'
 * backward is checked too), and a report's indices are the bases'. */
typedef enum nb_check_layout {
    NB_LAYOUT_CONTIGUOUS = 0, /* the inputs themselves */
    NB_LAYOUT_PERMUTED,
    NB_LAYOUT_SLICED,
    NB_LAYOUT_BROADCAST,
} nb_check_layout;
#define NB_CHECK_LAYOUTS 4 /* number of layouts, for loops over them */

/* "contiguous", "permuted", "sliced", "broadcast"; "?" for anything else. */
const char *nb_check_layout_name(nb_check_layout layout);

typedef struct nb_check_opts {
    double eps;      /* central-difference step; 0: 1e-6 */
    double atol;     /* 0: 1e-5 (f64), 1e-3 (f32 analytic) */
    double rtol;     /* 0: 1e-3 (f64), 1e-2 (f32 analytic) */
    nb_dtype dtype;  /* 0 or NB_F64: check in f64. NB_F32: run the function
                        and its backward in f32 and compare with the f64
                        numeric gradient at f32 tolerances */
    uint64_t seed;   /* for the random projection of the output */
    nb_check_layout layout; /* how the inputs are handed over; 0: as they are */
} nb_check_opts;

/* One input's result. Element `worst` has the largest error beyond tolerance
 * (or the largest error, when all pass); -1 when the input was skipped
 * because it does not require grad. worst_index entries past the input's
 * ndim are -1. In a non-contiguous layout both index the input's base. */
typedef struct nb_check_input {
    bool ok;
    double max_abs_err;  /* max |analytic - numeric| */
    double max_rel_err;  /* max |analytic - numeric| / max(|numeric|, 1e-8)*/
    int64_t worst;       /* flat index of the worst element */
    int64_t worst_index[NB_MAX_DIMS]; /* the same as an index tuple */
    double analytic, numeric;         /* the two values there */
} nb_check_input;

typedef struct nb_check_report {
    bool ok;
    int n;                  /* entries of input[] in use */
    int order;              /* 1: gradcheck, 2: gradgradcheck */
    nb_check_layout layout; /* the layout checked */
    /* the inputs; at order 2, then the projection v */
    nb_check_input input[NB_MAX_INPUTS + 1];
    char message[256];      /* why the check could not run, or "" */
} nb_check_report;

/* Checks d f(x) / d x[i] for every input that requires grad. The output is
 * contracted with a fixed random vector, so one backward checks the whole
 * Jacobian-vector product. x (1 to NB_MAX_INPUTS tensors) must be f64; in
 * the contiguous layout they are perturbed in place and restored bit for
 * bit, so none may be a view whose elements share memory (a broadcast).
 * opts NULL: defaults. Clears the pending error first; a failure to run
 * leaves its reason in report->message. Returns report->ok. */
bool nb_gradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                  const nb_check_opts *opts, nb_check_report *report);

/* Checks the second derivative: gradcheck of x -> grad(<f(x), v>, x) with
 * create_graph, with respect to x and the projection v (reported as entry
 * n, after the inputs). */
bool nb_gradgradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                      const nb_check_opts *opts, nb_check_report *report);

/* Checks op (built-in or user-defined) on random inputs in [-1, 1] of the
 * given shapes, first order, in f64, in every layout (contiguous first); it
 * stops at the first layout that fails and reports that one, else the
 * contiguous report:
 *   nb_gradcheck_op(&my_op, NULL, NB_SHAPES({4, 3}, {3}), &report)
 * A shape is its sizes in order; the first 0 ends it (so no 0-size dims).
 * Inputs the op declares .nondiff are 0/1 masks. */
#define NB_SHAPES(...)                                                         \
    (int)(sizeof((const int64_t[][NB_MAX_DIMS]){__VA_ARGS__}) /                \
          sizeof(int64_t[NB_MAX_DIMS])),                                       \
        (const int64_t[][NB_MAX_DIMS]){__VA_ARGS__}
bool nb_gradcheck_op(const nb_op *op, const void *attr, int n,
                     const int64_t shapes[][NB_MAX_DIMS], nb_check_report *report);

/* Runs one example of an op in opts->layout: order 1 is gradcheck, order 2
 * gradgradcheck. The inputs are drawn from ex->domain with a fixed seed;
 * inputs the op declares .nondiff (indices, masks) are whole numbers in
 * [ceil(lo), ceil(hi)) (all-zero domain: 0 or 1), never require grad and
 * are never perturbed. For an op declaring .no_gradient it checks that the
 * output does not require grad although its inputs do. Returns report->ok. */
bool nb_check_example(const nb_op *op, const nb_op_example *ex, int order,
                      const nb_check_opts *opts, nb_check_report *report);

/* Prints a report: per input, ok or FAIL, errors, the worst element. */
void nb_check_report_print(const nb_check_report *report, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
