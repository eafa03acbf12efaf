/* Gradient-check internals shared by src/check.c (options, reports, the
 * checks themselves) and src/check_ops.c (layouts, op examples). Not
 * installed. */
#ifndef NABLA_CHECK_INTERNAL_H
#define NABLA_CHECK_INTERNAL_H

#include "internal.h"

/* nb_check_opts with every zero replaced by its default (check.h). */
typedef struct {
    double eps, atol, rtol;
    nb_dtype dtype;
    uint64_t seed;
    nb_check_layout layout;
} nb_check_conf;

/* The options in effect for opts (NULL: all defaults). */
nb_check_conf nb__check_resolve(const nb_check_opts *opts);
/* False with the report filled, naming fn, when opts.dtype or opts.layout is invalid. */
bool nb__check_opts_valid(const char *fn, const nb_check_opts *opts, nb_check_report *r);
/* Empties r for n entries at this order: all ok, none checked yet. */
void nb__check_report_init(nb_check_report *r, int n, int order, const nb_check_opts *opts);
/* Fails the report with a message (printf-style). Always returns false. */
bool nb__check_fail(nb_check_report *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Fails the report with the pending error, or says that `what` failed silently. */
bool nb__check_fail_fn(nb_check_report *r, const char *what);
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
/* The views of layout (not contiguous) for x, as check.h describes them: heap bases
 * with x's requires-grad flags (an input the layout does not apply to is its own
 * base) and views of them in the current graph with x's shapes and values. False
 * with the report filled; free the bases with nb__check_free_copies(x, base, n)
 * either way. */
bool nb__check_views(nb_check_layout layout, int n, nb_tensor *const x[], nb_tensor **base,
                     nb_tensor **view, nb_check_report *r);

/* The inputs of an example of op, drawn with seed: heap f64 tensors, whole
 * numbers for the inputs the op declares .nondiff (never requiring grad),
 * reals in the example's domain elsewhere (requiring grad). False with the
 * report filled; the caller frees x[0..ex->n) (NULLs included) either way. */
bool nb__check_inputs(const nb_op *op, const nb_op_example *ex, uint64_t seed, nb_tensor **x,
                      nb_check_report *r);
/* An op with its attributes, and the nb_check_fn that applies it. */
typedef struct {
    const nb_op *op;
    const void *attr;
} nb_check_op;
nb_tensor *nb__check_apply(nb_tensor *const x[], int n, void *ctx);

#endif
