/* Gradient checking: options, reports and the public entry points. The
 * comparison itself is in check_core.c, what a failure means in
 * check_diagnose.c, layouts and op examples in check_ops.c. */
#include "check_internal.h"

#include <math.h>

#define MAX_CHECKED NB_CHECK_MAX

nb_check_conf nb__check_resolve(const nb_check_opts *o, const nb_op *op)
{
    nb_check_conf r = {0};
    bool f32 = o && o->dtype == NB_F32;
    r.dtype = f32 ? NB_F32 : NB_F64;
    nb_tolerance t = op ? op->tolerance[r.dtype] : (nb_tolerance){0};
    r.eps = o && o->eps > 0 ? o->eps : t.eps > 0 ? t.eps : 1e-6;
    r.atol = o && o->atol > 0 ? o->atol : t.atol > 0 ? t.atol : (f32 ? 1e-3 : 1e-5);
    r.rtol = o && o->rtol > 0 ? o->rtol : t.rtol > 0 ? t.rtol : (f32 ? 1e-2 : 1e-3);
    r.seed = o ? o->seed : 0;
    r.layout = o ? o->layout : NB_LAYOUT_CONTIGUOUS;
    r.full = o && o->full;
    r.at_kinks = o && o->at_kinks;
    r.keep = o && o->keep_jacobians;
    return r;
}

const char *nb_check_layout_name(nb_check_layout layout)
{
    switch (layout) {
    case NB_LAYOUT_CONTIGUOUS: return "contiguous";
    case NB_LAYOUT_PERMUTED: return "permuted";
    case NB_LAYOUT_SLICED: return "sliced";
    case NB_LAYOUT_BROADCAST: return "broadcast";
    }
    return "?";
}

static bool layout_ok(nb_check_layout l) { return (int)l >= 0 && (int)l < NB_CHECK_LAYOUTS; }

void nb__check_report_init(nb_check_report *r, int n, int order, const nb_check_opts *o)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    r->order = order;
    r->layout = o && layout_ok(o->layout) ? o->layout : NB_LAYOUT_CONTIGUOUS;
    r->seed = o ? o->seed : 0;
    for (int i = 0; i < MAX_CHECKED; i++) {
        r->input[i].ok = true;
        r->input[i].worst = -1; /* not checked */
        r->input[i].worst_out = -1;
        for (int d = 0; d < NB_MAX_DIMS; d++)
            r->input[i].worst_index[d] = r->input[i].worst_out_index[d] = -1;
    }
}

void nb__check_unravel(int ndim, const int64_t *shape, int64_t flat, int64_t *index)
{
    for (int d = 0; d < NB_MAX_DIMS; d++)
        index[d] = -1;
    for (int d = ndim - 1; d >= 0; d--) {
        index[d] = shape[d] ? flat % shape[d] : 0;
        flat = shape[d] ? flat / shape[d] : 0;
    }
}

void nb__check_say(nb_check_report *r, const char *fmt, ...)
{
    size_t k = strlen(r->message);
    if (k && k + 1 < sizeof r->message)
        r->message[k++] = ' ';
    if (k + 1 >= sizeof r->message)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message + k, sizeof r->message - k, fmt, ap);
    va_end(ap);
}

bool nb__check_fail(nb_check_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->ok = false;
    r->verdict = NB_CHECK_ERROR;
    return false;
}

bool nb__check_fail_fn(nb_check_report *r, const char *what)
{
    const char *e = nb_last_error();
    if (e)
        return nb__check_fail(r, "%s", e);
    return nb__check_fail(r, "%s returned NULL without an error message", what);
}

bool nb__check_opts_valid(const char *fn, const nb_check_opts *opts, nb_check_report *r)
{
    if (opts && opts->dtype && opts->dtype != NB_F32 && opts->dtype != NB_F64)
        return nb__check_fail(r, "%s: opts.dtype is %d, not NB_F32 or NB_F64", fn,
                              (int)opts->dtype);
    if (opts && !layout_ok(opts->layout))
        return nb__check_fail(r, "%s: opts.layout is %d, not one of the %d NB_LAYOUT_* values",
                              fn, (int)opts->layout, NB_CHECK_LAYOUTS);
    return true;
}

/* Validates the arguments shared by nb_gradcheck and nb_gradgradcheck. */
static bool check_args(const char *fn, nb_check_fn f, int n, nb_tensor *const x[],
                       const nb_check_opts *opts, nb_check_report *r)
{
    if (!nb__check_opts_valid(fn, opts, r))
        return false;
    if (!f)
        return nb__check_fail(r, "%s: the function is NULL", fn);
    if (n < 1 || n > NB_MAX_INPUTS)
        return nb__check_fail(r, "%s: needs 1 to %d inputs (NB_MAX_INPUTS), got %d", fn,
                              NB_MAX_INPUTS, n);
    if (!x)
        return nb__check_fail(r, "%s: the input array is NULL", fn);
    for (int i = 0; i < n; i++) {
        if (!x[i])
            return nb__check_fail(r, "%s: input %d is NULL", fn, i + 1);
        if (!nb__live(x[i])) { /* its perturbation would write into another tensor */
            char what[32];
            snprintf(what, sizeof what, "input %d", i + 1);
            nb__stale_error(fn, what, x[i]);
            return nb__check_fail(r, "%s", nb_last_error());
        }
        if (x[i]->dtype == NB_U8) /* bytes: no gradient, no perturbation */
            return nb__check_fail(r, "%s: input %d is u8, which has no gradient; inputs must "
                                  "be f64 (nb_cast(x, NB_F64))", fn, i + 1);
        if (x[i]->dtype != NB_F64)
            return nb__check_fail(r,
                                  "%s: input %d is %s; inputs must be f64 (they are perturbed "
                                  "in f64; set opts.dtype = NB_F32 to run the function in f32)",
                                  fn, i + 1, nb_dtype_name(x[i]->dtype));
    }
    return true;
}

/* An input passed twice gets one copy (used twice), as the original side
 * sees it. */
bool nb__check_copies(nb_tensor *const x[], int n, nb_dtype dtype, nb_tensor **c,
                      nb_check_report *r)
{
    for (int i = 0; i < n; i++) {
        c[i] = NULL;
        for (int j = 0; j < i && !c[i]; j++)
            if (x[j] == x[i])
                c[i] = c[j];
        if (c[i])
            continue;
        c[i] = nb_zeros(dtype, x[i]->ndim, x[i]->shape);
        if (!c[i])
            return nb__check_fail_fn(r, "nb_zeros");
        for (int64_t j = 0; j < x[i]->numel; j++)
            nb__put(c[i], j, nb__get(x[i], j));
        c[i]->requires_grad = x[i]->requires_grad;
    }
    return true;
}

void nb__check_free_copies(nb_tensor *const orig[], nb_tensor **c, int n)
{
    for (int i = 0; i < n; i++) {
        bool first = c[i] != orig[i];
        for (int j = 0; j < i && first; j++)
            first = c[j] != c[i];
        if (first)
            nb_free(c[i]);
    }
    for (int i = 0; i < n; i++)
        c[i] = NULL;
}

/* ---- the public checks ---- */

/* nb_gradcheck (order 1) and nb_gradgradcheck (order 2, whose report has
 * one more entry: the projection). */
static bool check_public(const char *fn, int order, nb_check_fn f, void *ctx, int n,
                         nb_tensor *const x[], const nb_check_opts *opts,
                         nb_check_report *report)
{
    nb_check_report dummy = {0};
    nb_check_report *r = report ? report : &dummy;
    nb__check_report_init(r, n > 0 && n <= NB_MAX_INPUTS ? n + (order == 2) : 0, order, opts);
    if (!report) {
        nb__error("%s: report is NULL", fn);
        return false;
    }
    nb_clear_error();
    if (!check_args(fn, f, n, x, opts, r)) {
        nb__error("%s", r->message);
        return false;
    }
    nb_check_conf o = nb__check_resolve(opts, NULL);
    r->eps = o.eps;
    r->atol = o.atol;
    r->rtol = o.rtol;
    if (o.layout != NB_LAYOUT_CONTIGUOUS)
        return nb__check_layout(order, f, ctx, n, x, &o, r);
    return nb__check_run(order, f, ctx, n, x, &o, r);
}

bool nb_gradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                  const nb_check_opts *opts, nb_check_report *report)
{
    return check_public("nb_gradcheck", 1, f, ctx, n, x, opts, report);
}

bool nb_gradgradcheck(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                      const nb_check_opts *opts, nb_check_report *report)
{
    return check_public("nb_gradgradcheck", 2, f, ctx, n, x, opts, report);
}

/* ---- printing ---- */

const char *nb_check_verdict_name(nb_check_verdict v)
{
    switch (v) {
    case NB_CHECK_PASSED: return "passed";
    case NB_CHECK_FAILED: return "failed";
    case NB_CHECK_VACUOUS: return "vacuous";
    case NB_CHECK_KINK: return "kink";
    case NB_CHECK_ERROR: return "error";
    }
    return "?";
}

const char *nb_check_pattern_name(nb_check_pattern p)
{
    switch (p) {
    case NB_PATTERN_NONE: return "";
    case NB_PATTERN_ZERO: return "zero";
    case NB_PATTERN_SCALED: return "scaled";
    case NB_PATTERN_BROADCAST: return "broadcast";
    case NB_PATTERN_TRANSPOSED: return "transposed";
    case NB_PATTERN_SWAPPED: return "swapped";
    case NB_PATTERN_FEW: return "few";
    case NB_PATTERN_NAN: return "nan";
    }
    return "?";
}

/* The printed word of a verdict: "ok", "FAIL", "VACUOUS", "KINK", "ERROR". */
static const char *verdict_word(nb_check_verdict v)
{
    static char words[5][8] = {"ok", "FAIL", "VACUOUS", "KINK", "ERROR"};
    return (int)v >= 0 && (int)v < 5 ? words[v] : "?";
}

static void print_index(FILE *f, const int64_t *idx)
{
    int nd = 0;
    fprintf(f, "(");
    while (nd < NB_MAX_DIMS && idx[nd] >= 0) {
        fprintf(f, nd ? ",%lld" : "%lld", (long long)idx[nd]);
        nd++;
    }
    fprintf(f, "%s)", nd == 1 ? "," : "");
}

void nb_check_report_print(const nb_check_report *r, FILE *f)
{
    if (!f)
        return;
    if (!r) {
        fprintf(f, "(no report)\n");
        return;
    }
    char layout[32] = "";
    if (r->layout != NB_LAYOUT_CONTIGUOUS)
        snprintf(layout, sizeof layout, " [%s]", nb_check_layout_name(r->layout));
    nb_check_verdict v = r->ok ? NB_CHECK_PASSED : r->verdict ? r->verdict : NB_CHECK_FAILED;
    fprintf(f, "%s%s: %s (seed %llu", r->order == 2 ? "gradgradcheck" : "gradcheck", layout,
            verdict_word(v), (unsigned long long)r->seed);
    if (r->eps > 0)
        fprintf(f, ", eps %.0e atol %.0e rtol %.0e", r->eps, r->atol, r->rtol);
    fprintf(f, ")\n");
    bool ran = false;
    for (int i = 0; i < r->n && i < MAX_CHECKED; i++)
        ran |= r->input[i].checked;
    for (int i = 0; ran && i < r->n && i < MAX_CHECKED; i++) {
        const nb_check_input *in = &r->input[i];
        bool is_v = r->order == 2 && i == r->n - 1;
        if (is_v)
            fprintf(f, "  v (projection):");
        else
            fprintf(f, "  input %d:", i + 1);
        if (!in->checked) {
            fprintf(f, " skipped (does not require grad)\n");
            continue;
        }
        fprintf(f, " %-4s max abs %.1e rel %.1e",
                in->ok && !in->verdict ? "ok" : verdict_word(in->verdict ? in->verdict : NB_CHECK_FAILED),
                in->max_abs_err, in->max_rel_err);
        if (in->worst >= 0 && (!in->ok || in->max_abs_err > 0)) {
            fprintf(f, " at ");
            print_index(f, in->worst_index);
            if (in->worst_out >= 0 && in->worst_out_index[0] >= 0) {
                fprintf(f, " of output ");
                print_index(f, in->worst_out_index);
            }
            fprintf(f, ": analytic %.6g numeric %.6g", in->analytic, in->numeric);
        } else if (in->worst < 0) {
            fprintf(f, " along %d random direction%s", in->directions,
                    in->directions == 1 ? "" : "s");
        }
        if (in->pattern)
            fprintf(f, " [%s]", nb_check_pattern_name(in->pattern));
        fprintf(f, "\n");
    }
    if (r->message[0])
        fprintf(f, "  %s\n", r->message);
}

void nb_check_report_free(nb_check_report *r)
{
    if (!r)
        return;
    for (int i = 0; i < NB_MAX_INPUTS + 1; i++) {
        nb__free(r->input[i].jacobian_analytic);
        nb__free(r->input[i].jacobian_numeric);
        r->input[i].jacobian_analytic = r->input[i].jacobian_numeric = NULL;
        r->input[i].rows = r->input[i].cols = 0;
    }
}
