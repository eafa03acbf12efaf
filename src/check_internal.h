/* Gradient-check internals shared by src/check*.c: check.c (options,
 * reports, the public entry points), check_core.c (the comparison),
 * check_diagnose.c (patterns, kinks, vacuous checks), check_ops.c (layouts,
 * op examples), check_mutate.c, check_contract.c, check_elementwise.c,
 * check_picture.c. Not installed. */
#ifndef NABLA_CHECK_INTERNAL_H
#define NABLA_CHECK_INTERNAL_H

#include "internal.h"

/* Tensors a check handles at once: the inputs, and at order 2 the projection. */
#define NB_CHECK_MAX (NB_MAX_INPUTS + 1)
/* The largest Jacobian (entries) a failing input keeps whole. */
#define NB_CHECK_JACOBIAN_MAX (1 << 22)

/* nb_check_opts with every zero replaced by its default (check.h). */
typedef struct {
    double eps, atol, rtol;
    nb_dtype dtype;
    uint64_t seed;
    nb_check_layout layout;
    bool full, at_kinks, keep;
} nb_check_conf;

/* The options in effect for opts (NULL: all defaults) when checking op
 * (NULL: a function), whose nb_op.tolerance fills what opts leaves 0. */
nb_check_conf nb__check_resolve(const nb_check_opts *opts, const nb_op *op);
/* False with the report filled, naming fn, when opts.dtype or opts.layout is invalid. */
bool nb__check_opts_valid(const char *fn, const nb_check_opts *opts, nb_check_report *r);
/* Empties r for n entries at this order: all ok, none checked yet. */
void nb__check_report_init(nb_check_report *r, int n, int order, const nb_check_opts *opts);
/* Fails the report with a message (printf-style): verdict NB_CHECK_ERROR.
 * Always returns false. */
bool nb__check_fail(nb_check_report *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Fails the report with the pending error, or says that `what` failed silently. */
bool nb__check_fail_fn(nb_check_report *r, const char *what);
/* Appends to the report's message (printf-style), separated by a space. */
void nb__check_say(nb_check_report *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A contract's detail (sizeof nb_contract_report.detail[0] bytes at d),
 * formatted; returns status (src/check_contract.c). */
int nb__contract_say(int status, char *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
#define say(...) nb__contract_say(__VA_ARGS__)
/* Contiguous heap copies of x in dtype with x's requires-grad flags, or false. */
bool nb__check_copies(nb_tensor *const x[], int n, nb_dtype dtype, nb_tensor **c,
                      nb_check_report *r);
/* Frees what nb__check_copies or make_bases made: each tensor once, none of orig. */
void nb__check_free_copies(nb_tensor *const orig[], nb_tensor **c, int n);
/* gradcheck (order 1) or gradgradcheck (2) of f at x as given; arguments checked. */
bool nb__check_run(int order, nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                   const nb_check_conf *o, nb_check_report *r);
/* The same in o->layout (not contiguous), with respect to the bases (check_ops.c). */
bool nb__check_layout(int order, nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                      const nb_check_conf *o, nb_check_report *r);
/* The index tuple of a flat index into a shape; entries past ndim are -1. */
void nb__check_unravel(int ndim, const int64_t *shape, int64_t flat, int64_t *index);

/* ---- one check in progress (check_core.c, check_diagnose.c) ---- */

typedef struct nb_check_ctx {
    nb_check_fn f;
    void *ctx;
    int n;
    nb_tensor *const *x; /* f64; perturbed in place */
    const nb_check_conf *o;
    nb_graph *g;         /* every evaluation runs here, reset first */
    int64_t ny;          /* output elements */
    const double *u;     /* the output projection (ny) */
    unsigned used;       /* NB_INPUT(i): the inputs the output has a path to */
    nb_check_report *r;
} nb_check_ctx;

/* L = <f(x), u> in f64, and the output itself into y (ny doubles) unless
 * NULL; false with the report filled when f fails or changes size. */
bool nb__check_eval(const nb_check_ctx *c, double *L, double *y);

/* After the comparison: names the pattern of input i's error from its
 * Jacobians (and the other failing inputs'), and writes what it usually
 * means into the message (check_diagnose.c). */
void nb__check_pattern(const nb_check_ctx *c, int i);
/* Whether element j of input i sits at a non-differentiable point: its
 * one-sided differences of L disagree at growing steps, as they do not
 * near a smooth point. left and right get the smallest step's values. */
bool nb__check_is_kink(const nb_check_ctx *c, int i, int64_t j, double *left, double *right);
/* Whether an element of an input of a node of y's graph sits within dist
 * of a kink its op declares; if so says which in the report and returns
 * true (the check is vacuous there). */
bool nb__check_on_kink(nb_check_ctx *c, nb_tensor *y, double dist);

/* The views of layout (not contiguous) for x, as check.h describes them: heap bases
 * with x's requires-grad flags (an input the layout does not apply to is its own
 * base) and views of them in the current graph with x's shapes and values. False
 * with the report filled; free the bases with nb__check_free_copies(x, base, n)
 * either way. */
bool nb__check_views(nb_check_layout layout, int n, nb_tensor *const x[], nb_tensor **base,
                     nb_tensor **view, nb_check_report *r);

/* The inputs of an example of op, drawn with seed: heap f64 tensors, whole
 * numbers for the inputs the op declares .nondiff (never requiring grad),
 * reals in the example's domain elsewhere (requiring grad), kept at least
 * 1e-3 of the domain's width away from the op's declared kinks. False with
 * the report filled; the caller frees x[0..ex->n) (NULLs included) either
 * way. */
bool nb__check_inputs(const nb_op *op, const nb_op_example *ex, uint64_t seed, nb_tensor **x,
                      nb_check_report *r);
/* An op with its attributes, and the nb_check_fn that applies it. */
typedef struct {
    const nb_op *op;
    const void *attr;
} nb_check_op;
nb_tensor *nb__check_apply(nb_tensor *const x[], int n, void *ctx);

/* The elementwise contract of op (nb_op.elementwise) on inputs x[0..n) (f64
 * heap tensors) with attr, in f64 and, when the op has an f32 kernel, f32
 * (src/check_elementwise.c): NB_CONTRACT_HELD or _BROKEN with detail (160
 * bytes) saying where, as `who` ("example 2") names the inputs; or -1 when
 * the op fails on them in f64, with message (256 bytes) saying why. */
int nb__check_elementwise(const nb_op *op, const void *attr, nb_tensor *const x[], int n,
                          const char *who, uint64_t seed, char *detail, char *message);
/* The same for an op without examples, on made-up inputs (each (3,5), drawn
 * with seed): not applicable (with why) when it needs attributes or fails on them. */
int nb__check_elementwise_made_up(const nb_op *op, uint64_t seed, char *detail);

#endif
