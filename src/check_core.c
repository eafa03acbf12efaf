/* The comparison at the heart of a gradient check.
 *
 * The output y = f(x) is contracted with a fixed random vector u, and one
 * backward pass gives every input's vector-Jacobian product g_i = J_i^T u.
 * Each input is then compared along two random directions d:
 *
 *   analytic  g_i . d
 *   numeric   (L(x_i + eps d) - L(x_i - eps d)) / (2 eps),  L = <f(x), u>
 *   ok when   |analytic - numeric| <= atol |d| + rtol |numeric|
 *
 * two evaluations per direction, whatever the size. An input that fails a
 * direction (or every input, with opts.full) is compared element by element
 * on its whole Jacobian: one backward per output element (one-hot seeds)
 * against one central difference per input element, entry (o, j) failing
 * when |A - N| > atol + rtol |N| (NaN fails). When the Jacobian would be too
 * large it is its projected row u^T J instead. Failing elements whose
 * one-sided differences disagree are kinks, not wrong gradients; the
 * pattern of what remains is named by check_diagnose.c.
 *
 * Every evaluation runs in a graph of its own (reset between evaluations,
 * freed at the end), so a check never leaves tensors in the caller's graph.
 * The f64 inputs are perturbed in place through their strides and restored
 * bit for bit; their version counters are not touched. With opts.dtype =
 * NB_F32 the function and its backward run on f32 copies of the inputs; the
 * numeric side stays in f64 on the originals.
 *
 * gradgradcheck is gradcheck of the scalar function
 *   G(x..., v) = sum_i sum(grad(sum(f(x) * v), x_i, create_graph) * w_i)
 * with fixed random w_i, with respect to the x_i that require grad and v. */
#include "check_internal.h"

#include <math.h>

#define DEFAULT_SEED 0x6e61626c61ull /* "nabla" */
#define DIRECTIONS 2

/* ±[0.5, 1.5]: never near zero, so every element counts. */
static double draw(nb_rng *rng, nb_dtype dtype)
{
    double u = 0.5 + nb_rng_uniform(rng);
    u = nb_rng_next(rng) & 1 ? u : -u;
    return dtype == NB_F32 ? (double)(float)u : u;
}

bool nb__check_eval(const nb_check_ctx *c, double *L, double *yv)
{
    nb_check_report *r = c->r;
    nb_graph_reset(c->g);
    nb_tensor *y = c->f(c->x, c->n, c->ctx);
    if (!y)
        return nb__check_fail_fn(r, "the function");
    if (y->numel != c->ny)
        return nb__check_fail(r, "the function's output changed size from %lld to %lld elements",
                              (long long)c->ny, (long long)y->numel);
    double s = 0;
    for (int64_t i = 0; i < c->ny; i++) {
        double v = nb__get(y, i);
        s += v * c->u[i];
        if (yv)
            yv[i] = v;
    }
    *L = s;
    return true;
}

/* The analytic side: f on the inputs (f32 copies for an f32 check), then for
 * each of `seeds` seeds the gradients J_i^T seed of the inputs in `mask`
 * into a[i] + s * numel_i. A NULL seed array means one-hot rows 0..seeds-1.
 * used gets the inputs the output has a path to. */
static bool analytic(const nb_check_ctx *c, int64_t seeds, const double *seed, unsigned mask,
                     double *a[], unsigned *used)
{
    nb_check_report *r = c->r;
    nb_tensor *copies[NB_CHECK_MAX] = {0};
    nb_tensor *const *xs = c->x;
    bool ok = true;
    *used = 0;
    if (c->o->dtype == NB_F32) {
        ok = nb__check_copies(c->x, c->n, NB_F32, copies, r);
        xs = copies;
    }
    nb_graph_reset(c->g);
    nb_tensor *y = ok ? c->f(xs, c->n, c->ctx) : NULL;
    if (ok && !y)
        ok = nb__check_fail_fn(r, "the function");
    if (ok && y->numel != c->ny)
        ok = nb__check_fail(r, "the function's output has %lld elements in %s but %lld in f64",
                            (long long)y->numel, nb_dtype_name(c->o->dtype), (long long)c->ny);
    nb_tensor *in[NB_CHECK_MAX], *gs[NB_CHECK_MAX];
    int map[NB_CHECK_MAX], k = 0;
    for (int i = 0; ok && i < c->n; i++)
        if ((mask & NB_INPUT(i)) && xs[i]->requires_grad) {
            in[k] = xs[i];
            map[k++] = i;
        }
    for (int m = 0; ok && m < k; m++)
        memset(a[map[m]], 0, (size_t)seeds * (size_t)c->x[map[m]]->numel * sizeof(double));
    /* An output that does not require grad does not depend (differentiably)
     * on any input: every analytic gradient is zero. */
    nb_tensor *sd = ok && k > 0 && y->requires_grad ? nb_zeros_like(y) : NULL;
    if (ok && k > 0 && y->requires_grad && !sd)
        ok = nb__check_fail_fn(r, "nb_zeros_like");
    for (int64_t s = 0; ok && sd && s < seeds; s++) {
        for (int64_t i = 0; i < c->ny; i++)
            nb__put(sd, i, seed ? seed[s * c->ny + i] : (double)(i == s));
        for (int m = 0; m < k; m++)
            gs[m] = NULL;
        if (nb_grad(y, .n = k, .inputs = in, .grads = gs, .seed = sd, .retain_graph = true,
                    .allow_unused = true) != 0) {
            ok = nb__check_fail(r, "the analytic gradient failed: %s",
                                nb_last_error() ? nb_last_error() : "?");
            break;
        }
        for (int m = 0; m < k; m++) {
            int i = map[m];
            if (!gs[m])
                continue;
            *used |= NB_INPUT(i);
            double *row = a[i] + s * c->x[i]->numel;
            for (int64_t j = 0; j < c->x[i]->numel; j++)
                row[j] = nb__get(gs[m], j);
        }
    }
    nb_graph_reset(c->g);
    if (c->o->dtype == NB_F32)
        nb__check_free_copies(c->x, copies, c->n);
    return ok;
}

/* Input i along direction d: sets *an, *num; false when f fails. */
static bool direction(const nb_check_ctx *c, int i, const double *g, const double *d,
                      double *saved, double *an, double *num)
{
    nb_tensor *x = c->x[i];
    double *p = nb__ptr(x), lp = 0, lm = 0, s = 0;
    for (int64_t j = 0; j < x->numel; j++) {
        saved[j] = p[nb__elem(x, j)];
        s += g[j] * d[j];
    }
    for (int64_t j = 0; j < x->numel; j++)
        p[nb__elem(x, j)] = saved[j] + c->o->eps * d[j];
    bool ok = nb__check_eval(c, &lp, NULL);
    for (int64_t j = 0; j < x->numel; j++)
        p[nb__elem(x, j)] = saved[j] - c->o->eps * d[j];
    ok = ok && nb__check_eval(c, &lm, NULL);
    for (int64_t j = 0; j < x->numel; j++)
        p[nb__elem(x, j)] = saved[j];
    *an = s;
    *num = (lp - lm) / (2 * c->o->eps);
    return ok;
}

/* The numeric Jacobian of input i: N[o * cols + j] by central differences
 * of the whole output, or of L when projected (one row). */
static bool numeric(const nb_check_ctx *c, int i, int64_t rows, bool projected, double *N)
{
    nb_tensor *x = c->x[i];
    int64_t cols = x->numel;
    double *yp = NULL, *ym = NULL;
    if (!projected && (!(yp = nb__alloc((size_t)rows * sizeof *yp)) ||
                     !(ym = nb__alloc((size_t)rows * sizeof *ym)))) {
        nb__free(yp);
        return nb__check_fail_fn(c->r, "nb__alloc");
    }
    double *p = nb__ptr(x);
    bool ok = true;
    for (int64_t j = 0; ok && j < cols; j++) {
        int64_t at = nb__elem(x, j);
        double old = p[at], lp = 0, lm = 0;
        p[at] = old + c->o->eps;
        ok = nb__check_eval(c, &lp, yp);
        p[at] = old - c->o->eps;
        ok = ok && nb__check_eval(c, &lm, ym);
        p[at] = old;
        for (int64_t o = 0; ok && o < rows; o++)
            N[o * cols + j] = projected ? (lp - lm) / (2 * c->o->eps)
                                        : (yp[o] - ym[o]) / (2 * c->o->eps);
    }
    nb__free(yp);
    nb__free(ym);
    return ok;
}

/* Compares A with N entry by entry into input i's entry; elements found to
 * be kinks are left out. Returns the number of failing entries. */
static int64_t compare(const nb_check_ctx *c, int i, const double *A, const double *N,
                       int64_t rows, int64_t cols, bool projected, const bool *kink)
{
    nb_check_input *res = &c->r->input[i];
    const nb_check_conf *o = c->o;
    bool any_nan = false;
    double best = -INFINITY;
    int64_t worst = 0, fails = 0;
    res->max_abs_err = 0;
    res->max_rel_err = 0;
    for (int64_t e = 0; e < rows * cols; e++) {
        if (kink && kink[e % cols])
            continue;
        double err = fabs(A[e] - N[e]), tol = o->atol + o->rtol * fabs(N[e]);
        bool bad = !(err <= tol);
        if (isnan(err)) {
            any_nan = true;
        } else {
            res->max_abs_err = fmax(res->max_abs_err, err);
            res->max_rel_err = fmax(res->max_rel_err, err / fmax(fabs(N[e]), 1e-8));
        }
        /* Failing entries rank by their excess over tolerance and always
         * beat passing ones, which rank by their error. */
        double key = bad ? (isnan(err) ? INFINITY : err - tol) : err;
        if (bad && !fails) {
            best = key;
            worst = e;
        } else if (bad == (fails > 0) && key > best) {
            best = key;
            worst = e;
        }
        fails += bad;
    }
    if (any_nan)
        res->max_abs_err = res->max_rel_err = NAN;
    res->ok = fails == 0;
    res->verdict = fails ? NB_CHECK_FAILED : NB_CHECK_PASSED;
    res->worst = worst % cols;
    nb__check_unravel(c->x[i]->ndim, c->x[i]->shape, res->worst, res->worst_index);
    res->worst_out = projected ? -1 : worst / cols;
    nb__check_unravel(projected ? 0 : c->r->out_ndim, c->r->out_shape,
                      projected ? 0 : res->worst_out, res->worst_out_index);
    res->analytic = A[worst];
    res->numeric = N[worst];
    return fails;
}

/* The whole Jacobian of input i (or its projected row when too large or
 * when the output is a scalar), compared, kept in the report on failure,
 * with kinks told apart and the pattern named. */
static bool full(nb_check_ctx *c, int i, const double *g)
{
    nb_check_input *res = &c->r->input[i];
    int64_t cols = c->x[i]->numel, rows = c->ny;
    if (rows * cols > NB_CHECK_JACOBIAN_MAX || rows < 1 || c->r->order == 2)
        rows = 1;
    size_t cells = (size_t)(rows * cols > 0 ? rows * cols : 1);
    double *A = nb__alloc(cells * sizeof *A), *N = nb__alloc(cells * sizeof *N);
    bool *kink = nb__alloc((size_t)(cols ? cols : 1) * sizeof *kink);
    bool ok = A && N && kink;
    if (!ok)
        nb__check_fail_fn(c->r, "nb__alloc");
    /* Projected: one row, u^T J, already in g; else one backward per row. */
    bool projected = rows < c->ny;
    unsigned used = 0;
    if (ok && projected)
        memcpy(A, g, (size_t)cols * sizeof *A);
    else if (ok) {
        double *rows_of[NB_CHECK_MAX] = {0};
        rows_of[i] = A;
        ok = analytic(c, rows, NULL, NB_INPUT(i), rows_of, &used);
    }
    ok = ok && numeric(c, i, rows, projected, N);
    int64_t fails = ok ? compare(c, i, A, N, rows, cols, projected, NULL) : 0;
    /* Failing elements whose one-sided differences disagree are kinks. */
    if (fails) {
        memset(kink, 0, (size_t)cols * sizeof *kink);
        int kinks = 0, tested = 0;
        for (int64_t j = 0; ok && j < cols && tested < 64; j++) {
            bool bad = false;
            for (int64_t o = 0; o < rows && !bad; o++) {
                double e = fabs(A[o * cols + j] - N[o * cols + j]);
                bad = !(e <= c->o->atol + c->o->rtol * fabs(N[o * cols + j]));
            }
            if (!bad)
                continue;
            tested++;
            double left, right;
            if (nb__check_is_kink(c, i, j, &left, &right)) {
                kink[j] = true;
                if (!kinks++) {
                    int64_t idx[NB_MAX_DIMS];
                    nb__check_unravel(c->x[i]->ndim, c->x[i]->shape, j, idx);
                    char at[96];
                    size_t k = (size_t)snprintf(at, sizeof at, "(");
                    for (int d = 0; d < c->x[i]->ndim && k < sizeof at; d++)
                        k += (size_t)snprintf(at + k, sizeof at - k, d ? ",%lld" : "%lld",
                                              (long long)idx[d]);
                    snprintf(at + (k < sizeof at ? k : sizeof at - 1),
                             sizeof at - (k < sizeof at ? k : sizeof at - 1), "%s)",
                             c->x[i]->ndim == 1 ? "," : "");
                    nb__check_say(c->r,
                                  "input %d element %s (value %.9g) is at a non-differentiable "
                                  "point: its one-sided derivatives %.6g (below) and %.6g "
                                  "(above) disagree at every step from %.1e up, so this is a "
                                  "kink, not a wrong gradient; draw other inputs (another "
                                  "seed) or declare the op's kinks (nb_op.kink).",
                                  i + 1, at, nb__get(c->x[i], j), left, right, c->o->eps);
                }
            }
        }
        if (kinks && ok) {
            fails = compare(c, i, A, N, rows, cols, projected, kink);
            if (!fails) {
                res->ok = false;
                res->verdict = NB_CHECK_KINK;
            }
        }
    }
    if (ok && !projected)
        c->used |= used;
    if (ok && fails) {
        res->rows = rows;
        res->cols = cols;
        res->jacobian_analytic = A;
        res->jacobian_numeric = N;
        A = N = NULL;
    }
    nb__free(A);
    nb__free(N);
    nb__free(kink);
    return ok;
}

/* Vacuous inputs: no path from the output, or zero gradients both ways.
 * The notes go to the message at order 1 (at order 2 a linear op has a zero
 * second derivative by nature: only when every input is vacuous). */
static void vacuous(const nb_check_ctx *c, int i, bool has_path, double max_a, double max_n,
                    nb_check_report *notes)
{
    nb_check_input *res = &c->r->input[i];
    if (!res->ok || c->x[i]->numel == 0 || c->ny == 0)
        return; /* an empty gradient has only its shape to check */
    if (!has_path && max_n <= c->o->atol) {
        res->verdict = NB_CHECK_VACUOUS;
        nb__check_say(notes,
                      "the output does not depend on input %d (no path in the graph, and "
                      "the numeric gradient is 0): its check proves nothing.",
                      i + 1);
    } else if (max_a <= c->o->atol && max_n <= c->o->atol) {
        res->verdict = NB_CHECK_VACUOUS;
        nb__check_say(notes,
                      "input %d's gradients are all zero here, analytic and numeric (max "
                      "%.1e and %.1e): any backward giving zero would pass; check at "
                      "inputs where the gradient is not zero.",
                      i + 1, max_a, max_n);
    }
}

static bool run_check(nb_check_ctx *c)
{
    nb_check_report *r = c->r;
    const nb_check_conf *o = c->o;
    double *a[NB_CHECK_MAX] = {0}, *saved = NULL, *d = NULL, *u = NULL;
    int k = 0;
    int64_t most = 1;
    for (int i = 0; i < c->n; i++) {
        const nb_tensor *x = c->x[i];
        k += x->requires_grad;
        most = x->numel > most ? x->numel : most;
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
    if (!(c->g = nb_graph_new()))
        return nb__check_fail_fn(r, "nb_graph_new");

    /* The output's size and shape, whether it sits on a declared kink, then
     * the projection u (f32 checks use values exact in f32 on both sides). */
    nb_tensor *y0 = c->f(c->x, c->n, c->ctx);
    bool ok = y0 != NULL, on_kink = false;
    if (!ok)
        nb__check_fail_fn(r, "the function");
    if (ok) {
        c->ny = y0->numel;
        if (r->order == 1) {
            r->out_ndim = y0->ndim;
            memcpy(r->out_shape, y0->shape, sizeof r->out_shape);
        }
        on_kink = !o->at_kinks && nb__check_on_kink(c, y0, 2 * o->eps);
    }
    if (ok && (!(u = nb__alloc((size_t)(c->ny ? c->ny : 1) * sizeof *u)) ||
               !(saved = nb__alloc((size_t)most * sizeof *saved)) ||
               !(d = nb__alloc((size_t)most * sizeof *d))))
        ok = nb__check_fail_fn(r, "nb__alloc");
    nb_rng rng = nb_rng_new(o->seed ^ DEFAULT_SEED);
    for (int64_t j = 0; ok && j < c->ny; j++)
        u[j] = draw(&rng, o->dtype);
    c->u = u;
    for (int i = 0; ok && i < c->n; i++)
        if (c->x[i]->requires_grad &&
            !(a[i] = nb__alloc((size_t)(c->x[i]->numel ? c->x[i]->numel : 1) * sizeof(double))))
            ok = nb__check_fail_fn(r, "nb__alloc");
    unsigned used = 0;
    nb_check_report *notes = ok ? nb__alloc(sizeof *notes) : NULL;
    if (ok && !notes)
        ok = nb__check_fail_fn(r, "nb__alloc");
    if (notes)
        notes->message[0] = '\0';
    if (ok)
        ok = analytic(c, 1, u, ~0u, a, &used);
    c->used = used;

    r->ok = ok;
    for (int i = 0; ok && i < c->n; i++) {
        nb_tensor *x = c->x[i];
        nb_check_input *res = &r->input[i];
        if (!x->requires_grad)
            continue;
        res->checked = true;
        res->directions = 0;
        res->worst = -1;
        double max_a = 0, max_n = 0;
        for (int64_t j = 0; j < x->numel; j++)
            max_a = fmax(max_a, fabs(a[i][j]));
        bool pass = !o->full;
        for (int t = 0; pass && ok && t < DIRECTIONS; t++) {
            double an, num, norm = 0;
            for (int64_t j = 0; j < x->numel; j++) {
                d[j] = draw(&rng, NB_F64);
                norm += d[j] * d[j];
            }
            ok = direction(c, i, a[i], d, saved, &an, &num);
            double err = fabs(an - num);
            pass = err <= o->atol * sqrt(norm) + o->rtol * fabs(num);
            max_n = fmax(max_n, fabs(num) / sqrt(norm > 0 ? norm : 1));
            res->directions++;
            if (t == 0 || !(err <= res->max_abs_err)) {
                res->max_abs_err = err;
                res->max_rel_err = err / fmax(fabs(num), 1e-8);
                res->analytic = an;
                res->numeric = num;
            }
        }
        if (ok && pass) {
            res->ok = true;
            res->verdict = NB_CHECK_PASSED;
        } else if (ok) {
            ok = full(c, i, a[i]);
            if (ok && res->jacobian_numeric)
                for (int64_t e = 0; e < res->rows * res->cols; e++)
                    max_n = fmax(max_n, fabs(res->jacobian_numeric[e]));
            else if (ok)
                max_n = fmax(max_n, fabs(res->numeric));
        }
        if (ok)
            vacuous(c, i, used & NB_INPUT(i), max_a, max_n, notes);
    }
    /* The verdict: a failure, else a kink, else vacuous when the output sits
     * on a declared kink or every input is; then the pattern of a failure,
     * said first in the message. */
    if (ok) {
        nb_check_verdict v = NB_CHECK_PASSED;
        int checked = 0, empty = 0, unconnected = 0, failed = 0, which = 0;
        for (int i = 0; i < c->n; i++) {
            if (!c->x[i]->requires_grad)
                continue;
            nb_check_verdict vi = r->input[i].verdict;
            checked++;
            empty += vi == NB_CHECK_VACUOUS;
            unconnected += vi == NB_CHECK_VACUOUS && !(c->used & NB_INPUT(i));
            if (vi == NB_CHECK_FAILED) {
                failed++;
                which = i;
            }
            if (vi == NB_CHECK_FAILED || (vi == NB_CHECK_KINK && v != NB_CHECK_FAILED))
                v = vi;
        }
        /* Vacuous as a whole: on a declared kink, every input vacuous, or
         * (order 1) an input the output does not depend on at all. An input
         * whose gradient is 0 here while others are checked stays marked
         * on its own (a mask that is all 0 for it; at order 2, a linear op's
         * second derivative). */
        if (v == NB_CHECK_PASSED &&
            (on_kink || empty == checked || (r->order == 1 && unconnected)))
            v = NB_CHECK_VACUOUS;
        r->verdict = v;
        r->ok = v == NB_CHECK_PASSED;
        char said[sizeof r->message];
        snprintf(said, sizeof said, "%s", r->message);
        r->message[0] = '\0';
        for (int i = 0; i < c->n; i++)
            if (c->x[i]->requires_grad && r->input[i].verdict == NB_CHECK_FAILED)
                nb__check_pattern(c, i);
        if (failed == 1 && checked > 1)
            nb__check_say(r, "Only input %d is wrong; the other inputs pass.", which + 1);
        if (said[0])
            nb__check_say(r, "%s", said);
        if (notes->message[0] && (r->order == 1 || v == NB_CHECK_VACUOUS))
            nb__check_say(r, "%s", notes->message);
    }
    nb__free(notes);
    if (!o->keep)
        nb_check_report_free(r);
    nb_graph_free(c->g);
    c->g = NULL;
    for (int i = 0; i < c->n; i++)
        nb__free(a[i]);
    nb__free(u);
    nb__free(saved);
    nb__free(d);
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
        for (int64_t j = 0; j < x[i]->numel; j++)
            w[i][j] = draw(&rng, o.dtype);
        gc.w[i] = w[i];
    }
    nb_thread *th = nb__thread();
    th->cut = NULL;
    if (ok) {
        nb_tensor *xs[NB_CHECK_MAX];
        for (int i = 0; i < n; i++)
            xs[i] = x[i];
        xs[n] = v;
        o.seed ^= 0x1111111111ull; /* a different projection for the outer check */
        nb_check_ctx c = {.f = gg_fn, .ctx = &gc, .n = n + 1, .x = xs, .o = &o, .r = r};
        ok = run_check(&c);
        r->seed = o.seed ^ 0x1111111111ull;
    }
    if (r->verdict == NB_CHECK_FAILED && th->cut)
        nb__check_say(r,
                      "The backward of %s%s gave a gradient that is not part of the graph "
                      "(it does not require grad under create_graph): it was computed outside "
                      "the graph, in a kernel loop or from a detached tensor, instead of with "
                      "nabla ops, so its own gradient is zero. Write the backward with ops "
                      "(or mark the example .once_differentiable).",
                      nb__op_prefix(th->cut), th->cut->name);
    th->cut = NULL;
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
    nb_check_ctx c = {.f = f, .ctx = ctx, .n = n, .x = x, .o = o, .r = r};
    return run_check(&c);
}
