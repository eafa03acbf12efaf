/* Gradient checking.
 *
 * The output y = f(x) is contracted with a fixed random vector v, so one
 * backward pass gives the vector-Jacobian product g = J^T v, and one central
 * difference per input element gives the same numbers numerically:
 *
 *   L(x) = sum(f(x) * v)
 *   analytic  g_j = nb_grad(y, .seed = v)[j]        (= dL/dx_j by backward)
 *   numeric   n_j = (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)   in f64
 *   element j fails when |g_j - n_j| > atol + rtol * |n_j|  (NaN fails)
 *
 * Every evaluation runs in a graph of its own (reset between evaluations,
 * freed at the end), so a check never leaves tensors in the caller's graph.
 * The f64 inputs are perturbed in place through their strides and restored
 * bit for bit; their version counters are not touched.
 *
 * With opts.dtype = NB_F32 the function and its backward run on f32 copies
 * of the inputs; the numeric side stays in f64 on the originals.
 *
 * A layout other than contiguous is handed to check_ops.c, which replaces
 * each input by a heap leaf (its base) and runs this same check of
 * f(view(base)) with respect to the bases; the checks of ops on their
 * examples (nb_check_example, nb_gradcheck_op) live there too.
 *
 * gradgradcheck is gradcheck of the scalar function
 *   G(x..., v) = sum_i sum(grad(sum(f(x) * v), x_i, create_graph) * w_i)
 * with fixed random w_i, with respect to the x_i that require grad and v. */
#include "check_internal.h"

#include <math.h>

#define DEFAULT_SEED 0x6e61626c61ull /* "nabla" */
/* Tensors a check handles at once: the inputs, and at order 2 the projection. */
#define MAX_CHECKED (NB_MAX_INPUTS + 1)

nb_check_conf nb__check_resolve(const nb_check_opts *o)
{
    nb_check_conf r = {0};
    bool f32 = o && o->dtype == NB_F32;
    r.dtype = f32 ? NB_F32 : NB_F64;
    r.eps = o && o->eps > 0 ? o->eps : 1e-6;
    r.atol = o && o->atol > 0 ? o->atol : (f32 ? 1e-3 : 1e-5);
    r.rtol = o && o->rtol > 0 ? o->rtol : (f32 ? 1e-2 : 1e-3);
    r.seed = o ? o->seed : 0;
    r.layout = o ? o->layout : NB_LAYOUT_CONTIGUOUS;
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
    for (int i = 0; i < MAX_CHECKED; i++) {
        r->input[i].ok = true;
        r->input[i].worst = -1; /* not checked */
        for (int d = 0; d < NB_MAX_DIMS; d++)
            r->input[i].worst_index[d] = -1;
    }
}

bool nb__check_fail(nb_check_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->ok = false;
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
        if (x[i]->dtype != NB_F64)
            return nb__check_fail(r,
                                  "%s: input %d is %s; inputs must be f64 (they are perturbed "
                                  "in f64; set opts.dtype = NB_F32 to run the function in f32)",
                                  fn, i + 1, nb_dtype_name(x[i]->dtype));
    }
    return true;
}

/* ---- the core: gradcheck of f at x ---- */

typedef struct {
    nb_check_fn f;
    void *ctx;
    int n;
    nb_tensor *const *x;
} fn_t;

/* L = sum(y * v) in f64, or false with the report filled when f fails or
 * changes its output size. */
static bool evaluate(const fn_t *fn, nb_graph *g, const double *v, int64_t ny, double *out,
                     nb_check_report *r)
{
    nb_graph_reset(g);
    nb_tensor *y = fn->f(fn->x, fn->n, fn->ctx);
    if (!y)
        return nb__check_fail_fn(r, "the function");
    if (y->numel != ny)
        return nb__check_fail(r, "the function's output changed size from %lld to %lld elements",
                              (long long)ny, (long long)y->numel);
    double s = 0;
    for (int64_t i = 0; i < ny; i++)
        s += nb__get(y, i) * v[i];
    *out = s;
    return true;
}

/* The index tuple of a flat index; entries past the tensor's ndim are -1, so
 * the tuple's length can be read back (a 0-d tensor gives all -1). */
static void unravel(const nb_tensor *t, int64_t flat, int64_t *index)
{
    for (int d = 0; d < NB_MAX_DIMS; d++)
        index[d] = -1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        index[d] = t->shape[d] ? flat % t->shape[d] : 0;
        flat = t->shape[d] ? flat / t->shape[d] : 0;
    }
}

/* Fills one input's entry from the analytic and numeric gradients. */
static void compare(const nb_tensor *x, const double *a, const double *num,
                    const nb_check_conf *o, nb_check_input *res)
{
    bool any_fail = false, any_nan = false;
    double best = -INFINITY;
    int64_t worst = 0;
    res->max_abs_err = 0;
    res->max_rel_err = 0;
    for (int64_t j = 0; j < x->numel; j++) {
        double err = fabs(a[j] - num[j]);
        double tol = o->atol + o->rtol * fabs(num[j]);
        bool bad = !(err <= tol);
        double rel = err / fmax(fabs(num[j]), 1e-8);
        if (isnan(err)) {
            any_nan = true;
        } else {
            res->max_abs_err = fmax(res->max_abs_err, err);
            res->max_rel_err = fmax(res->max_rel_err, rel);
        }
        /* Failing elements rank by their excess over tolerance and always
         * beat passing ones, which rank by their error. */
        double key = bad ? (isnan(err) ? INFINITY : err - tol) : err;
        if (bad && !any_fail) {
            any_fail = true;
            best = key;
            worst = j;
        } else if (bad == any_fail && key > best) {
            best = key;
            worst = j;
        }
    }
    if (any_nan) {
        res->max_abs_err = NAN;
        res->max_rel_err = NAN;
    }
    res->ok = !any_fail;
    res->worst = worst;
    unravel(x, worst, res->worst_index);
    if (x->numel > 0) {
        res->analytic = a[worst];
        res->numeric = num[worst];
    }
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

/* The analytic gradients d<f(x), v>/dx_i into a[i] (zeros when unused). */
static bool analytic(const fn_t *fn, nb_graph *g, const nb_check_conf *o, const double *v,
                     int64_t ny, double *a[], nb_check_report *r)
{
    nb_tensor *copies[MAX_CHECKED] = {0};
    nb_tensor *const *xs = fn->x;
    bool ok = true;
    if (o->dtype == NB_F32) {
        ok = nb__check_copies(fn->x, fn->n, NB_F32, copies, r);
        xs = copies;
    }
    nb_graph_reset(g);
    nb_tensor *y = ok ? fn->f(xs, fn->n, fn->ctx) : NULL;
    if (ok && !y)
        ok = nb__check_fail_fn(r, "the function");
    if (ok && y->numel != ny)
        ok = nb__check_fail(r, "the function's output has %lld elements in %s but %lld in f64",
                            (long long)y->numel, nb_dtype_name(o->dtype), (long long)ny);
    nb_tensor *in[MAX_CHECKED], *gs[MAX_CHECKED] = {0};
    int map[MAX_CHECKED], k = 0;
    for (int i = 0; ok && i < fn->n; i++)
        if (xs[i]->requires_grad) {
            in[k] = xs[i];
            map[k++] = i;
        }
    /* An output that does not require grad does not depend (differentiably)
     * on any input: every analytic gradient is zero. */
    if (ok && k > 0 && y->requires_grad) {
        nb_tensor *seed = nb_zeros_like(y);
        if (!seed) {
            ok = nb__check_fail_fn(r, "nb_zeros_like");
        } else {
            for (int64_t i = 0; i < ny; i++)
                nb__put(seed, i, v[i]);
            if (nb_grad(y, .n = k, .inputs = in, .grads = gs, .seed = seed,
                        .retain_graph = true, .allow_unused = true) != 0)
                ok = nb__check_fail(r, "the analytic gradient failed: %s",
                                    nb_last_error() ? nb_last_error() : "?");
        }
    }
    for (int m = 0; ok && m < k; m++) {
        const nb_tensor *gr = gs[m];
        int i = map[m];
        for (int64_t j = 0; j < fn->x[i]->numel; j++)
            a[i][j] = gr ? nb__get(gr, j) : 0.0;
    }
    nb_graph_reset(g);
    if (o->dtype == NB_F32)
        nb__check_free_copies(fn->x, copies, fn->n);
    return ok;
}

static bool run_check(const fn_t *fn, const nb_check_conf *o, nb_check_report *r)
{
    double *a[MAX_CHECKED] = {0}, *num[MAX_CHECKED] = {0}, *v = NULL;
    bool ok = true;
    int k = 0;
    for (int i = 0; i < fn->n; i++) {
        const nb_tensor *x = fn->x[i];
        k += x->requires_grad;
        if (x->requires_grad && nb__layout_overlaps(x->ndim, x->shape, x->strides))
            return nb__check_fail(r,
                                  "input %d is a view whose elements share memory (a "
                                  "broadcast): perturbing one element would move several; "
                                  "pass a copy (nb_clone) or use opts.layout = "
                                  "NB_LAYOUT_BROADCAST",
                                  i + 1);
    }
    if (k == 0)
        return nb__check_fail(r, "no input requires grad: nothing to check "
                                 "(mark inputs with nb_set_requires_grad)");

    nb_graph *g = nb_graph_new();
    if (!g)
        return nb__check_fail_fn(r, "nb_graph_new");

    /* The output's size, then the projection v (never near zero, so every
     * output element counts). f32 checks use v rounded to f32 on both sides. */
    nb_tensor *y0 = fn->f(fn->x, fn->n, fn->ctx);
    int64_t ny = y0 ? y0->numel : 0;
    if (!y0)
        ok = nb__check_fail_fn(r, "the function");
    else if (!(v = nb__alloc((size_t)(ny ? ny : 1) * sizeof *v)))
        ok = nb__check_fail_fn(r, "nb__alloc");
    if (ok) {
        nb_rng rng = nb_rng_new(o->seed ^ DEFAULT_SEED);
        for (int64_t i = 0; i < ny; i++) {
            double u = 0.5 + nb_rng_uniform(&rng);
            v[i] = nb_rng_next(&rng) & 1 ? u : -u;
            if (o->dtype == NB_F32)
                v[i] = (double)(float)v[i];
        }
    }
    for (int i = 0; ok && i < fn->n; i++) {
        if (!fn->x[i]->requires_grad)
            continue;
        size_t bytes = (size_t)(fn->x[i]->numel ? fn->x[i]->numel : 1) * sizeof(double);
        a[i] = nb__alloc(bytes);
        num[i] = nb__alloc(bytes);
        if (!a[i] || !num[i])
            ok = nb__check_fail_fn(r, "nb__alloc");
    }

    if (ok)
        ok = analytic(fn, g, o, v, ny, a, r);

    for (int i = 0; ok && i < fn->n; i++) {
        nb_tensor *x = fn->x[i];
        if (!x->requires_grad)
            continue;
        double *d = nb__ptr(x);
        for (int64_t j = 0; ok && j < x->numel; j++) {
            int64_t at = nb__elem(x, j);
            double old = d[at], lp = 0, lm = 0;
            d[at] = old + o->eps;
            ok = evaluate(fn, g, v, ny, &lp, r);
            d[at] = old - o->eps;
            ok = ok && evaluate(fn, g, v, ny, &lm, r);
            d[at] = old;
            num[i][j] = (lp - lm) / (2 * o->eps);
        }
    }

    if (ok) {
        r->ok = true;
        for (int i = 0; i < fn->n; i++)
            if (fn->x[i]->requires_grad) {
                compare(fn->x[i], a[i], num[i], o, &r->input[i]);
                r->ok &= r->input[i].ok;
            }
    }
    nb_graph_free(g);
    for (int i = 0; i < fn->n; i++) {
        nb__free(a[i]);
        nb__free(num[i]);
    }
    nb__free(v);
    return ok && r->ok;
}

/* ---- second order ---- */

typedef struct {
    nb_check_fn f;
    void *ctx;
    int n; /* inputs of f; G has n + 1 (the last is v) */
    const double *w[NB_MAX_INPUTS];
} gg_ctx;

/* G(x..., v) = sum_i sum(grad(sum(f(x) * v), x_i) * w_i), a scalar. */
static nb_tensor *gg_fn(nb_tensor *const x[], int n, void *c)
{
    (void)n;
    const gg_ctx *gc = c;
    nb_tensor *v = x[gc->n];
    nb_tensor *y = gc->f(x, gc->n, gc->ctx);
    if (!y)
        return NULL;
    if (!nb__same_shape(y, v)) {
        char b[NB_SHAPE_STR_LEN], d[NB_SHAPE_STR_LEN];
        nb__error("nb_gradgradcheck: the function's output changed shape from %s to %s",
                  nb_shape_str(v, d), nb_shape_str(y, b));
        return NULL;
    }
    nb_tensor *s = nb_sum(nb_mul(y, v));
    if (!s)
        return NULL;
    nb_tensor *in[NB_MAX_INPUTS], *gs[NB_MAX_INPUTS] = {0};
    int map[NB_MAX_INPUTS], k = 0;
    for (int i = 0; i < gc->n; i++)
        if (x[i]->requires_grad) {
            in[k] = x[i];
            map[k++] = i;
        }
    nb_tensor *total = NULL;
    if (k > 0 && s->requires_grad) {
        if (nb_grad(s, .n = k, .inputs = in, .grads = gs, .create_graph = true,
                    .allow_unused = true) != 0)
            return NULL;
        for (int m = 0; m < k; m++) {
            if (!gs[m])
                continue;
            nb_tensor *w = nb_zeros_like(in[m]);
            if (!w)
                return NULL;
            for (int64_t j = 0; j < w->numel; j++)
                nb__put(w, j, gc->w[map[m]][j]);
            nb_tensor *term = nb_sum(nb_mul(gs[m], w));
            total = total ? nb_add(total, term) : term;
            if (!total)
                return NULL;
        }
    }
    return total ? total : nb_scalar_like(s, 0.0);
}

/* gradgradcheck of f at x (arguments already checked). */
static bool run_gradgrad(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                         nb_check_conf o, nb_check_report *r)
{
    /* The shape of f(x), for v. */
    nb_graph *g = nb_graph_new();
    if (!g)
        return nb__check_fail_fn(r, "nb_graph_new");
    nb_tensor *y = f(x, n, ctx);
    int ndim = y ? y->ndim : 0;
    int64_t shape[NB_MAX_DIMS] = {0};
    if (y)
        memcpy(shape, y->shape, sizeof shape);
    else
        nb__check_fail_fn(r, "the function");
    bool y_f64 = y && y->dtype == NB_F64;
    nb_graph_free(g);
    if (!y)
        return false;
    if (!y_f64)
        return nb__check_fail(r, "nb_gradgradcheck: the function's output is not f64");

    gg_ctx gc = {.f = f, .ctx = ctx, .n = n};
    double *w[NB_MAX_INPUTS] = {0};
    nb_tensor *v = nb_zeros(NB_F64, ndim, shape);
    bool ok = v != NULL;
    if (!ok)
        nb__check_fail_fn(r, "nb_zeros");
    nb_rng rng = nb_rng_new(o.seed ^ DEFAULT_SEED ^ 0x2222222222ull);
    if (ok) {
        for (int64_t j = 0; j < v->numel; j++)
            ((double *)nb__ptr(v))[j] = 2 * nb_rng_uniform(&rng) - 1;
        v->requires_grad = true;
    }
    for (int i = 0; ok && i < n; i++) {
        w[i] = nb__alloc((size_t)(x[i]->numel ? x[i]->numel : 1) * sizeof(double));
        if (!w[i]) {
            ok = nb__check_fail_fn(r, "nb__alloc");
            break;
        }
        for (int64_t j = 0; j < x[i]->numel; j++) {
            double u = 0.5 + nb_rng_uniform(&rng);
            w[i][j] = nb_rng_next(&rng) & 1 ? u : -u;
            if (o.dtype == NB_F32)
                w[i][j] = (double)(float)w[i][j];
        }
        gc.w[i] = w[i];
    }
    if (ok) {
        nb_tensor *xs[MAX_CHECKED];
        for (int i = 0; i < n; i++)
            xs[i] = x[i];
        xs[n] = v;
        fn_t fn = {gg_fn, &gc, n + 1, xs};
        o.seed ^= 0x1111111111ull; /* a different projection for the outer check */
        ok = run_check(&fn, &o, r);
    }
    for (int i = 0; i < n; i++)
        nb__free(w[i]);
    nb_free(v);
    return ok;
}

bool nb__check_run(int order, nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                   const nb_check_conf *o, nb_check_report *r)
{
    if (order == 2)
        return run_gradgrad(f, ctx, n, x, *o, r);
    fn_t fn = {f, ctx, n, x};
    return run_check(&fn, o, r);
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
    nb_check_conf o = nb__check_resolve(opts);
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
    fprintf(f, "%s%s: %s%s%s\n", r->order == 2 ? "gradgradcheck" : "gradcheck", layout,
            r->ok ? "ok" : "FAIL", r->message[0] ? ": " : "", r->message);
    bool ran = false;
    for (int i = 0; i < r->n && i < MAX_CHECKED; i++)
        ran |= r->input[i].worst >= 0;
    if (!ran)
        return;
    for (int i = 0; i < r->n && i < MAX_CHECKED; i++) {
        const nb_check_input *in = &r->input[i];
        bool is_v = r->order == 2 && i == r->n - 1;
        if (is_v)
            fprintf(f, "  v (projection):");
        else
            fprintf(f, "  input %d:", i + 1);
        if (in->worst < 0) {
            fprintf(f, " skipped (does not require grad)\n");
            continue;
        }
        fprintf(f, " %s max abs %.1e rel %.1e", in->ok ? "ok  " : "FAIL", in->max_abs_err,
                in->max_rel_err);
        if (!in->ok || in->max_abs_err > 0) {
            fprintf(f, " at (");
            int nd = 0;
            while (nd < NB_MAX_DIMS && in->worst_index[nd] >= 0) {
                fprintf(f, nd ? ",%lld" : "%lld", (long long)in->worst_index[nd]);
                nd++;
            }
            fprintf(f, "%s): analytic %.6g numeric %.6g", nd == 1 ? "," : "", in->analytic,
                    in->numeric);
        }
        fprintf(f, "\n");
    }
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
