/* nabla: gradient checking. Compares the analytic gradient (backward) with
 * central differences computed in f64, and says where and by how much it is
 * wrong. Works on any function built from nabla ops, user ops included. */
#ifndef NABLA_CHECK_H
#define NABLA_CHECK_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NB_CHECK_MAX_INPUTS 8

/* The function under test: builds one output from n inputs (in the current
 * graph). ctx is passed through. */
typedef nb_tensor *(*nb_check_fn)(nb_tensor *const x[], int n, void *ctx);

typedef struct nb_check_opts {
    double eps;      /* central-difference step; 0: 1e-6 */
    double atol;     /* 0: 1e-5 (f64), 1e-3 (f32 analytic) */
    double rtol;     /* 0: 1e-3 (f64), 1e-2 (f32 analytic) */
    nb_dtype dtype;  /* 0 or NB_F64: check in f64. NB_F32: run the function
                        and its backward in f32 and compare with the f64
                        numeric gradient at f32 tolerances */
    uint64_t seed;   /* for the random projection of the output */
} nb_check_opts;

/* One input's result. Element `worst` has the largest error beyond tolerance
 * (or the largest error, when all pass); -1 when the input was skipped
 * because it does not require grad. worst_index entries past the input's
 * ndim are -1. */
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
    int n;                 /* inputs checked */
    int order;             /* 1: gradcheck, 2: gradgradcheck */
    nb_check_input input[NB_CHECK_MAX_INPUTS];
    char message[256];     /* why the check could not run, or "" */
} nb_check_report;

/* Checks d f(x) / d x[i] for every input that requires grad. The output is
 * contracted with a fixed random vector, so one backward checks the whole
 * Jacobian-vector product. x must be f64 (they are perturbed in place and
 * restored). opts NULL: defaults. Clears the pending error first; a failure
 * to run leaves its reason in report->message. Returns report->ok. */
bool nb_gradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                  const nb_check_opts *opts, nb_check_report *report);

/* Checks the second derivative: gradcheck of x -> grad(<f(x), v>, x) with
 * create_graph, with respect to x and the projection v (reported as input
 * n + 1, so n is at most NB_CHECK_MAX_INPUTS - 1). */
bool nb_gradgradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                      const nb_check_opts *opts, nb_check_report *report);

/* Checks op (built-in or user-defined) on random inputs in [-1, 1] of the
 * given shapes, first order, in f64:
 *   nb_gradcheck_op(&my_op, NULL, NB_SHAPES({4, 3}, {3}), &report)
 * A shape is its sizes in order; the first 0 ends it (so no 0-size dims). */
#define NB_SHAPES(...)                                                         \
    (int)(sizeof((const int64_t[][NB_MAX_DIMS]){__VA_ARGS__}) /                \
          sizeof(int64_t[NB_MAX_DIMS])),                                       \
        (const int64_t[][NB_MAX_DIMS]){__VA_ARGS__}
bool nb_gradcheck_op(const nb_op *op, const void *attr, int n,
                     const int64_t shapes[][NB_MAX_DIMS], nb_check_report *report);

/* Runs one example of an op (its inputs drawn from ex->domain with a fixed
 * seed): order 1 is gradcheck, order 2 gradgradcheck. Returns report->ok. */
bool nb_check_example(const nb_op *op, const nb_op_example *ex, int order,
                      const nb_check_opts *opts, nb_check_report *report);

/* Prints a report: per input, ok or FAIL, errors, the worst element. */
void nb_check_report_print(const nb_check_report *report, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
