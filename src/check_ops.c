/* Gradient checks in other layouts, and of ops on their examples.
 *
 * A layout replaces each input x by a heap leaf, its base, and runs the
 * check of check.c on f(view(base)) with respect to the bases. The views are
 * made inside the checked function (layout_fn), so the view ops' backward is
 * checked along with f; check.h says which views each layout makes.
 *
 * An op is checked on one of its examples by drawing its inputs (whole
 * numbers for the inputs it declares .nondiff, which never require grad)
 * and checking nb_apply of it; an op declaring .no_gradient is checked to
 * give an output that does not require grad. */
#include "check_internal.h"

#include <math.h>

/* ---- layouts: bases and the views made from them ---- */

typedef struct {
    nb_check_layout layout;
    nb_check_fn f; /* the function under test, given the views */
    void *ctx;
    int n;
    int dim[NB_MAX_INPUTS]; /* -1: input passed as is; else the layout's dimension */
    int ndim[NB_MAX_INPUTS];
    int64_t shape[NB_MAX_INPUTS][NB_MAX_DIMS]; /* the views' shapes */
} layout_ctx;

/* The dimension a layout works on for a tensor of this shape (sliced: the
 * reversed one; broadcast: the one of size 1 in the base), or -1 when the
 * layout does not apply and the input goes to the function as it is. */
static int layout_dim(nb_check_layout l, int ndim, const int64_t *shape)
{
    int first = -1, big = 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] > 1) {
            big++;
            if (first < 0)
                first = d;
        }
    if (l == NB_LAYOUT_CONTIGUOUS || nb__numel(ndim, shape) <= 1)
        return -1;
    if (l == NB_LAYOUT_PERMUTED)
        return big >= 2 ? 0 : -1;
    return first;
}

/* The shape of input i's base. */
static void base_shape(const layout_ctx *lc, int i, int64_t *bs)
{
    int nd = lc->ndim[i], dim = lc->dim[i];
    const int64_t *s = lc->shape[i];
    for (int d = 0; d < nd; d++)
        bs[d] = lc->layout == NB_LAYOUT_PERMUTED ? s[nd - 1 - d]
                : lc->layout == NB_LAYOUT_SLICED ? 2 * s[d]
                : d == dim                       ? 1
                                                 : s[d];
}

/* The flat position in input i's base of the view's element at index idx
 * (-1 for a broadcast element that is not stored). */
static int64_t base_pos(const layout_ctx *lc, int i, const int64_t *bs, const int64_t *idx)
{
    int nd = lc->ndim[i], dim = lc->dim[i];
    const int64_t *s = lc->shape[i];
    int64_t pos = 0;
    for (int d = 0; d < nd; d++) {
        int64_t b;
        if (lc->layout == NB_LAYOUT_PERMUTED)
            b = idx[nd - 1 - d];
        else if (lc->layout == NB_LAYOUT_SLICED)
            b = d == dim ? 2 * s[d] - 2 - 2 * idx[d] : 2 * idx[d] + 1;
        else if (d == dim && idx[d] != 0)
            return -1;
        else
            b = idx[d];
        pos = pos * bs[d] + b;
    }
    return pos;
}

/* The view of base with the shape of input i (check.h describes them). */
static nb_tensor *make_view(const layout_ctx *lc, int i, nb_tensor *base)
{
    int nd = lc->ndim[i], dim = lc->dim[i];
    const int64_t *s = lc->shape[i];
    if (dim < 0)
        return base;
    switch (lc->layout) {
    case NB_LAYOUT_PERMUTED: {
        int rev[NB_MAX_DIMS];
        for (int d = 0; d < nd; d++)
            rev[d] = nd - 1 - d;
        return nb_permute(base, nd, rev);
    }
    case NB_LAYOUT_SLICED: {
        nb_tensor *v = base;
        for (int d = 0; d < nd && v; d++)
            v = d == dim ? nb_slice(v, d, 2 * s[d] - 2, INT64_MIN, -2)
                         : nb_slice(v, d, 1, INT64_MAX, 2);
        return v;
    }
    case NB_LAYOUT_BROADCAST:
        return nb_broadcast_to(base, nd, s);
    case NB_LAYOUT_CONTIGUOUS:
        break;
    }
    return base;
}

/* The checked function of a layout: f of the views of the bases. */
static nb_tensor *layout_fn(nb_tensor *const base[], int n, void *c)
{
    const layout_ctx *lc = c;
    nb_tensor *v[NB_MAX_INPUTS];
    for (int i = 0; i < n; i++)
        if (!(v[i] = make_view(lc, i, base[i])))
            return NULL;
    return lc->f(v, n, lc->ctx);
}

/* Fills lc for x and makes the bases: heap leaves with x's requires-grad
 * flags whose views hold x's values (an input passed twice gets one base;
 * one the layout does not apply to is its own base). */
static bool make_bases(layout_ctx *lc, nb_check_layout layout, nb_check_fn f, void *ctx,
                       int n, nb_tensor *const x[], nb_tensor **base, nb_check_report *r)
{
    lc->layout = layout;
    lc->f = f;
    lc->ctx = ctx;
    lc->n = n;
    for (int i = 0; i < n; i++) {
        base[i] = NULL;
        lc->ndim[i] = x[i]->ndim;
        memcpy(lc->shape[i], x[i]->shape, sizeof lc->shape[i]);
        lc->dim[i] = layout_dim(layout, x[i]->ndim, x[i]->shape);
    }
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i && !base[i]; j++)
            if (x[j] == x[i])
                base[i] = base[j];
        if (base[i])
            continue;
        if (lc->dim[i] < 0) {
            base[i] = x[i];
            continue;
        }
        int64_t bs[NB_MAX_DIMS], idx[NB_MAX_DIMS] = {0};
        base_shape(lc, i, bs);
        nb_tensor *b = nb_zeros(x[i]->dtype, x[i]->ndim, bs);
        if (!b)
            return nb__check_fail_fn(r, "nb_zeros");
        base[i] = b;
        /* Other values of x first (elements no view reaches), then x's own. */
        for (int64_t j = 0; j < b->numel; j++)
            nb__put(b, j, nb__get(x[i], j % x[i]->numel));
        for (int64_t j = 0; j < x[i]->numel; j++) {
            int64_t p = base_pos(lc, i, bs, idx);
            if (p >= 0)
                nb__put(b, p, nb__get(x[i], j));
            for (int d = x[i]->ndim - 1; d >= 0; d--) {
                if (++idx[d] < x[i]->shape[d])
                    break;
                idx[d] = 0;
            }
        }
        b->requires_grad = x[i]->requires_grad;
    }
    return true;
}

bool nb__check_layout(int order, nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                      const nb_check_conf *o, nb_check_report *r)
{
    layout_ctx lc;
    nb_tensor *base[NB_MAX_INPUTS];
    bool ok = make_bases(&lc, o->layout, f, ctx, n, x, base, r);
    if (ok)
        ok = nb__check_run(order, layout_fn, &lc, n, base, o, r);
    nb__check_free_copies(x, base, n);
    return ok;
}

bool nb__check_views(nb_check_layout layout, int n, nb_tensor *const x[], nb_tensor **base,
                     nb_tensor **view, nb_check_report *r)
{
    layout_ctx lc;
    bool ok = make_bases(&lc, layout, NULL, NULL, n, x, base, r);
    for (int i = 0; i < n; i++)
        view[i] = NULL;
    for (int i = 0; ok && i < n; i++)
        if (!(view[i] = make_view(&lc, i, base[i])))
            ok = nb__check_fail_fn(r, "a layout's view");
    return ok;
}

/* ---- ops and their examples ---- */

nb_tensor *nb__check_apply(nb_tensor *const x[], int n, void *c)
{
    const nb_check_op *oc = c;
    return nb_apply(oc->op, x, n, oc->attr);
}

/* A real drawn from an input's domain (away from 0 when it asks). */
static double draw_real(nb_rng *rng, nb_domain dom, double lo, double hi)
{
    double u = lo + (hi - lo) * nb_rng_uniform(rng);
    for (int t = 0; dom.away_from_zero && fabs(u) < (hi - lo) / 10 && t < 10000; t++)
        u = lo + (hi - lo) * nb_rng_uniform(rng);
    return u;
}

bool nb__check_inputs(const nb_op *op, const nb_op_example *ex, uint64_t seed,
                      nb_tensor **x, nb_check_report *r)
{
    nb_rng rng = nb_rng_new(seed ^ 0x1234567ull);
    double lo[NB_MAX_INPUTS], hi[NB_MAX_INPUTS];
    for (int i = 0; i < ex->n; i++) {
        nb_domain dom = ex->domain[i];
        bool zero = dom.lo == 0 && dom.hi == 0;
        bool integer = op->nondiff & NB_INPUT(i);
        lo[i] = zero ? (integer ? 0 : -1) : dom.lo;
        hi[i] = zero ? (integer ? 2 : 1) : dom.hi;
        if (integer) {
            lo[i] = ceil(lo[i]);
            hi[i] = ceil(hi[i]);
        }
        if (!(hi[i] > lo[i]) || !isfinite(lo[i]) || !isfinite(hi[i]))
            return nb__check_fail(r, "%s example: input %d: the domain [%g, %g) holds no %s",
                                  op->name, i + 1, dom.lo, dom.hi,
                                  integer ? "whole number" : "value");
        x[i] = nb_zeros(NB_F64, ex->ndim[i], ex->shape[i]);
        if (!x[i])
            return nb__check_fail(r, "%s example: input %d: %s", op->name, i + 1,
                                  nb_last_error() ? nb_last_error() : "?");
        double *d = nb__ptr(x[i]);
        if (integer) {
            uint64_t count = (uint64_t)(hi[i] - lo[i]);
            for (int64_t j = 0; j < x[i]->numel; j++)
                d[j] = lo[i] + (double)nb_rng_below(&rng, count);
            continue; /* never requires grad */
        }
        for (int64_t j = 0; j < x[i]->numel; j++)
            d[j] = draw_real(&rng, dom, lo[i], hi[i]);
        x[i]->requires_grad = true;
    }
    /* Away from the declared kinks: redraw what lies within 1e-3 of the
     * domain's width of one, until nothing does (moving one element can
     * bring another near a tie, so in passes). */
    for (int pass = 0; op->kink && pass < 100; pass++) {
        bool moved = false;
        for (int i = 0; i < ex->n; i++) {
            if (!x[i]->requires_grad)
                continue;
            double *d = nb__ptr(x[i]);
            for (int64_t j = 0; j < x[i]->numel; j++) {
                nb_kink k;
                if (op->kink(x, ex->n, i, j, ex->attr, &k) < 1e-3 * (hi[i] - lo[i])) {
                    d[j] = draw_real(&rng, ex->domain[i], lo[i], hi[i]);
                    moved = true;
                }
            }
        }
        if (!moved)
            break;
    }
    return true;
}

/* d<op(x), u>/dx_i[j] by backward, or NAN with the report failed. */
static double derivative(const nb_check_op *oc, nb_tensor *const x[], int n, const double *u,
                         int i, int64_t j, nb_check_report *r)
{
    nb_tensor *y = nb__check_apply(x, n, (void *)oc), *g = NULL;
    nb_tensor *seed = y && y->requires_grad ? nb_zeros_like(y) : NULL;
    if (!seed)
        return nb__check_fail_fn(r, oc->op->name), NAN;
    for (int64_t e = 0; e < y->numel; e++)
        nb__put(seed, e, u[e]);
    if (nb_grad(y, .n = 1, .inputs = &x[i], .grads = &g, .seed = seed, .allow_unused = true))
        return nb__check_fail_fn(r, "nb_grad"), NAN;
    return g ? nb__get(g, j) : 0.0;
}

/* At the declared kinks: each element of each differentiable input in turn
 * (at most 64 per input) is moved onto its nearest kink, the others staying
 * as drawn, and the backward's derivative of L = <y, u> is compared with
 * the declared subgradient: the left, right or mean one-sided difference
 * of L at step eps. */
static bool check_at_kinks(const nb_op *op, const nb_op_example *ex, nb_tensor **x,
                           const nb_check_conf *o, nb_check_report *r)
{
    if (!op->kink) {
        r->verdict = NB_CHECK_VACUOUS;
        return nb__check_say(r, "%s declares no kinks (nb_op.kink): nothing to check at them",
                             op->name), false;
    }
    nb_check_op oc = {op, ex->attr};
    nb_check_ctx c = {.f = nb__check_apply, .ctx = &oc, .n = ex->n, .x = x, .o = o, .r = r};
    double *u = NULL;
    int placed = 0;
    bool ok = (c.g = nb_graph_new()) != NULL;
    nb_tensor *y = ok ? nb__check_apply(x, ex->n, &oc) : NULL;
    if (!y)
        ok = nb__check_fail_fn(r, op->name);
    else if (!(u = nb__alloc((size_t)(y->numel ? y->numel : 1) * sizeof *u)))
        ok = nb__check_fail_fn(r, "nb__alloc");
    nb_rng rng = nb_rng_new(o->seed ^ 0x6b696e6bull);
    for (int64_t e = 0; ok && e < y->numel; e++)
        u[e] = (nb_rng_next(&rng) & 1 ? 1 : -1) * (0.5 + nb_rng_uniform(&rng));
    c.ny = ok ? y->numel : 0;
    c.u = u;
    r->ok = ok;
    r->verdict = ok ? NB_CHECK_PASSED : NB_CHECK_ERROR;
    for (int i = 0; ok && i < ex->n; i++) {
        nb_check_input *res = &r->input[i];
        if (!x[i]->requires_grad)
            continue;
        double *d = nb__ptr(x[i]);
        double best = -1;
        res->checked = true;
        for (int64_t j = 0; ok && j < x[i]->numel && j < 64; j++) {
            nb_kink k = {0};
            double dist = op->kink(x, ex->n, i, j, ex->attr, &k), old = d[j], L0, lp, lm;
            if (!isfinite(dist))
                continue;
            d[j] = k.at;
            ok = nb__check_eval(&c, &L0, NULL);
            d[j] = k.at + o->eps;
            ok = ok && nb__check_eval(&c, &lp, NULL);
            d[j] = k.at - o->eps;
            ok = ok && nb__check_eval(&c, &lm, NULL);
            d[j] = k.at;
            nb_graph_reset(c.g);
            double a = ok ? derivative(&oc, x, ex->n, u, i, j, r) : NAN;
            d[j] = old;
            ok = ok && !isnan(a);
            if (!ok)
                break;
            double left = (L0 - lm) / o->eps, right = (lp - L0) / o->eps;
            double want = k.side == NB_SUBGRADIENT_LEFT    ? left
                          : k.side == NB_SUBGRADIENT_RIGHT ? right
                                                           : (left + right) / 2;
            double err = fabs(a - want), tol = o->atol + o->rtol * fabs(want);
            bool bad = !(err <= tol);
            placed++;
            res->max_abs_err = fmax(res->max_abs_err, err);
            res->max_rel_err = fmax(res->max_rel_err, err / fmax(fabs(want), 1e-8));
            double key = bad ? 1 + err : err / (1 + err);
            if (key > best) {
                best = key;
                res->worst = j;
                nb__check_unravel(x[i]->ndim, x[i]->shape, j, res->worst_index);
                res->analytic = a;
                res->numeric = want;
            }
            if (bad && res->ok) {
                res->ok = false;
                res->verdict = NB_CHECK_FAILED;
                r->ok = false;
                r->verdict = NB_CHECK_FAILED;
                nb__check_say(r, "At the kink of input %d element %lld (%.9g) the backward "
                                 "gives %.6g, but %s declares the %s derivative, %.6g.",
                              i + 1, (long long)j, k.at, a, op->name,
                              k.side == NB_SUBGRADIENT_LEFT    ? "left"
                              : k.side == NB_SUBGRADIENT_RIGHT ? "right"
                                                               : "mean one-sided",
                              want);
            }
        }
    }
    if (ok && placed == 0) {
        r->ok = false;
        r->verdict = NB_CHECK_VACUOUS;
        nb__check_say(r, "no element of this example can reach a kink of %s", op->name);
    } else if (ok && r->ok) {
        nb__check_say(r, "at kinks: %d elements on kinks of %s match its declared subgradient",
                      placed, op->name);
    }
    nb_graph_free(c.g);
    nb__free(u);
    return ok && r->ok;
}

/* An op without a gradient by design: in the layout and dtype asked for,
 * its output must exist and must not require grad although inputs do. */
static bool check_no_gradient(const nb_op *op, const nb_op_example *ex, nb_tensor *const x[],
                              const nb_check_conf *o, nb_check_report *r)
{
    layout_ctx lc;
    nb_check_op oc = {op, ex->attr};
    nb_tensor *base[NB_MAX_INPUTS] = {0}, *cast[NB_MAX_INPUTS] = {0};
    nb_tensor *const *in = base;
    bool ok = make_bases(&lc, o->layout, nb__check_apply, &oc, ex->n, x, base, r);
    if (ok && o->dtype == NB_F32) {
        ok = nb__check_copies(base, ex->n, NB_F32, cast, r);
        in = cast;
    }
    nb_graph *g = ok ? nb_graph_new() : NULL;
    if (ok && !g)
        ok = nb__check_fail_fn(r, "nb_graph_new");
    nb_tensor *y = ok ? layout_fn(in, ex->n, &lc) : NULL;
    if (ok && !y)
        ok = nb__check_fail_fn(r, op->name);
    else if (ok && y->requires_grad)
        ok = nb__check_fail(r, "%s declares no gradient but its output requires grad", op->name);
    if (ok)
        snprintf(r->message, sizeof r->message, "no gradient (by design)");
    r->ok = ok;
    nb_graph_free(g);
    if (o->dtype == NB_F32)
        nb__check_free_copies(base, cast, ex->n);
    nb__check_free_copies(x, base, ex->n);
    return ok;
}

bool nb_check_example(const nb_op *op, const nb_op_example *ex, int order,
                      const nb_check_opts *opts, nb_check_report *report)
{
    nb_check_report dummy = {0};
    nb_check_report *r = report ? report : &dummy;
    int n = ex && ex->n > 0 && ex->n <= NB_MAX_INPUTS ? ex->n : 0;
    nb__check_report_init(r, order == 2 ? n + (n > 0) : n, order, opts);
    if (!report) {
        nb__error("nb_check_example: report is NULL");
        return false;
    }
    nb_clear_error();
    if (!op || !op->name)
        nb__check_fail(r, "nb_check_example: op is NULL or has no name");
    else if (!op->shape)
        nb__check_fail(r, "%s: not implemented (no shape rule)", op->name);
    else if (!ex)
        nb__check_fail(r, "nb_check_example: example of %s is NULL", op->name);
    else if (ex->n < 1 || ex->n > NB_MAX_INPUTS)
        nb__check_fail(r,
                       "nb_check_example: example of %s has %d inputs (1 to %d, NB_MAX_INPUTS)",
                       op->name, ex->n, NB_MAX_INPUTS);
    else if (order != 1 && order != 2)
        nb__check_fail(r, "nb_check_example: order must be 1 or 2, got %d", order);
    else if (nb__check_opts_valid("nb_check_example", opts, r))
        for (int i = 0; i < ex->n; i++)
            if (ex->ndim[i] < 0 || ex->ndim[i] > NB_MAX_DIMS) {
                nb__check_fail(r, "nb_check_example: example of %s: input %d has %d dimensions",
                               op->name, i + 1, ex->ndim[i]);
                break;
            }
    if (r->message[0]) {
        nb__error("%s", r->message);
        return false;
    }
    if (order == 2 && ex->once_differentiable && op->backward) {
        r->ok = true;
        snprintf(r->message, sizeof r->message, "once differentiable");
        return true;
    }

    nb_tensor *x[NB_MAX_INPUTS] = {0};
    nb_check_op oc = {op, ex->attr};
    nb_check_conf o = nb__check_resolve(opts, op);
    /* The op's own tolerances where opts leaves them 0. */
    nb_check_opts resolved = opts ? *opts : (nb_check_opts){0};
    resolved.eps = o.eps;
    resolved.atol = o.atol;
    resolved.rtol = o.rtol;
    r->eps = o.eps;
    r->atol = o.atol;
    r->rtol = o.rtol;
    /* A draw that leaves the check vacuous (every value of a relu's input
     * negative, say) proves nothing about the op: the next seeds are drawn,
     * up to 3 more, and the report names the seed that was used. */
    bool ok = false;
    for (int attempt = 0; attempt < 4; attempt++) {
        resolved.seed = o.seed + (uint64_t)attempt;
        ok = nb__check_inputs(op, ex, resolved.seed, x, r);
        if (ok && op->no_gradient)
            ok = check_no_gradient(op, ex, x, &o, r);
        else if (ok && o.at_kinks)
            ok = check_at_kinks(op, ex, x, &o, r);
        else if (ok)
            ok = order == 1 ? nb_gradcheck(nb__check_apply, &oc, ex->n, x, &resolved, r)
                            : nb_gradgradcheck(nb__check_apply, &oc, ex->n, x, &resolved, r);
        for (int i = 0; i < ex->n; i++) {
            nb_free(x[i]);
            x[i] = NULL;
        }
        if (ok || r->verdict != NB_CHECK_VACUOUS || op->no_gradient || o.at_kinks)
            break;
        nb_check_report_free(r);
    }
    r->seed = resolved.seed;
    return ok;
}

bool nb_gradcheck_op(const nb_op *op, const void *attr, int n,
                     const int64_t shapes[][NB_MAX_DIMS], nb_check_report *report)
{
    nb_op_example ex;
    memset(&ex, 0, sizeof ex);
    /* The op and its arity first, so that the message names this function. */
    if (report && (!op || !op->name || !op->shape || (op->arity > 0 && n != op->arity))) {
        nb__check_report_init(report, 0, 1, NULL);
        if (!op || !op->name || !op->shape)
            nb__check_fail(report, "nb_gradcheck_op: op is NULL or has no name or shape rule");
        else
            nb__check_fail(report, "nb_gradcheck_op: %s%s takes %d inputs, got %d shapes",
                           nb__op_prefix(op), op->name, op->arity, n);
        nb__error("%s", report->message);
        return false;
    }
    if (!report || n < 1 || n > NB_MAX_INPUTS || !shapes) {
        if (report) {
            nb__check_report_init(report, 0, 1, NULL);
            nb__check_fail(report,
                           "nb_gradcheck_op: needs 1 to %d input shapes (NB_MAX_INPUTS), got %d%s",
                           NB_MAX_INPUTS, n, shapes ? "" : " (shapes is NULL)");
            nb__error("%s", report->message);
        } else {
            nb__error("nb_gradcheck_op: report is NULL");
        }
        return false;
    }
    ex.n = n;
    ex.attr = attr;
    for (int i = 0; i < n; i++) {
        int d = 0;
        while (d < NB_MAX_DIMS && shapes[i][d] != 0)
            d++;
        ex.ndim[i] = d;
        memcpy(ex.shape[i], shapes[i], sizeof ex.shape[i]);
    }
    if (!nb_check_example(op, &ex, 1, NULL, report))
        return false;
    for (int l = 1; l < NB_CHECK_LAYOUTS; l++) {
        nb_check_report other;
        if (!nb_check_example(op, &ex, 1, &(nb_check_opts){.layout = (nb_check_layout)l},
                              &other)) {
            *report = other;
            return false;
        }
    }
    return true;
}
