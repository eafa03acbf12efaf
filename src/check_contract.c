/* The contract of an op beyond its derivative.
 *
 * Each example of the op is drawn as gradcheck draws it (nb__check_inputs,
 * opts' seed) and run in graphs of the checker's own, on heap leaves of its
 * own; u is a fixed random seed gradient of the output's shape and "the
 * gradient" is that of sum(y * u), the same in every run of an example:
 *   deterministic   nb_grad twice on one recording gives the same bits;
 *   accumulates     nb_backward twice, then nb_zero_grad and once more, on
 *                   one recording: .grad is g, 2g, g exactly (g: nb_grad's);
 *   no-grad-inputs  with one differentiable input not requiring grad, the
 *                   output is the same, that input gets no .grad and the
 *                   others get one; when it was the only one, the output
 *                   does not require grad and nb_backward refuses it;
 *   nondiff         inputs declared .nondiff that require grad get no .grad
 *                   and no nb_grad result, and alone they leave the output
 *                   without grad (nb_apply ignores their flag);
 *   batch           (nb_op.batch) the op applied to row b of each batched
 *                   input, shared inputs whole, with the same attributes,
 *                   gives row b of the output and of the batched inputs'
 *                   gradients; a shared input's gradient is the sum of the
 *                   rows' gradients;
 *   layouts         on the views of each layout of check.h the output is
 *                   that of contiguous copies of the views, and the gradient
 *                   with respect to the bases is the copies' gradient carried
 *                   back through the views' strides (summed where a stride
 *                   is 0); the first layout that breaks is reported;
 *   inplace         bumping the version of a tensor the op saves (nb_op.saves:
 *                   inputs and output) after recording makes backward fail
 *                   with "modified in place"; overwriting one it does not
 *                   save (and bumping it) leaves backward working and the
 *                   gradient as it was: the declaration covers what the
 *                   backward reads;
 *   elementwise     (nb_op.elementwise) the kernel run as fused functions run
 *                   it, on 1-d blocks and 0-d elements of the inputs
 *                   broadcast and packed, gives the output's elements bit for
 *                   bit (src/check_elementwise.c; made-up inputs for an op
 *                   without examples).
 * Results of one recording must agree exactly; those of different runs
 * (rows, layouts, overwritten inputs) to 1e-12 relative to the larger value
 * or to the largest |value| compared, as summation order may differ. A
 * backward that is not deterministic leaves accumulates not applicable on
 * that example: its repeated passes cannot be compared. An op declaring
 * .no_gradient is checked only to give an output that does not require grad
 * (under nondiff: it is non-differentiable in every input). */
#include "check_internal.h"

#include <math.h>

#define TOL 1e-12
#define NA NB_CONTRACT_NOT_APPLICABLE
#define HELD NB_CONTRACT_HELD
#define BROKEN NB_CONTRACT_BROKEN
#define CANNOT (-1) /* could not run: the report's message says why */
#define DETAIL 160  /* sizeof nb_contract_report.detail[0] */
#define FOR_BITS(i, mask, n)                                                   \
    for (int i = 0; i < (n); i++)                                              \
        if ((mask) & NB_INPUT(i))

const char *nb_contract_name(nb_contract c)
{
    static const char *const names[NB_CONTRACTS] = {"deterministic", "accumulates",
                                                    "no-grad-inputs", "nondiff", "batch",
                                                    "layouts", "inplace", "elementwise"};
    return (int)c >= 0 && (int)c < NB_CONTRACTS ? names[c] : "?";
}

/* One example: what the runs of every contract compare against. */
typedef struct {
    const nb_op *op;
    const nb_op_example *ex;
    int n, k;                      /* inputs; the example's number from 1 */
    uint64_t seed;                 /* opts.seed */
    unsigned all, diff;            /* every input; those requiring grad */
    bool recorded;                 /* the output requires grad */
    nb_tensor *x[NB_MAX_INPUTS];   /* the drawn inputs (heap leaves) */
    nb_tensor *alt[NB_MAX_INPUTS]; /* other values from the same domains */
    nb_tensor *y, *u;              /* f64 copy of the output; the seed gradient */
    nb_tensor *g[NB_MAX_INPUTS];   /* f64 copies of the gradients */
    nb_contract_report *r;
} example;

/* One run: a graph, heap copies of the inputs, the op applied to them. */
typedef struct {
    nb_graph *g;
    nb_tensor *c[NB_MAX_INPUTS];
    nb_tensor *y;
} run;

int nb__contract_say(int status, char *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, DETAIL, fmt, ap);
    va_end(ap);
    return status;
}

/* Could not run: the pending error (or what failed) into the message. */
static int cannot(const example *e, const char *what)
{
    const char *m = nb_last_error();
    snprintf(e->r->message, sizeof e->r->message, "%s example %d: %.200s", e->op->name, e->k,
             m ? m : what);
    return CANNOT;
}

static const char *err(void) { return nb_last_error() ? nb_last_error() : "no message"; }

/* An f64 heap copy of t's values, row-major, without history. */
static nb_tensor *values(const nb_tensor *t)
{
    nb_tensor *c = t ? nb_zeros(NB_F64, t->ndim, t->shape) : NULL;
    for (int64_t j = 0; c && j < t->numel; j++)
        nb__put(c, j, nb__get(t, j));
    return c;
}

static void free_all(nb_tensor **t, int n)
{
    for (int i = 0; i < n; i++) {
        nb_free(t[i]);
        t[i] = NULL;
    }
}

/* A run on copies of the inputs, those in rg requiring grad. False when out
 * of memory; r->y is NULL (with an error) when the op failed. */
static bool start(const example *e, unsigned rg, run *r)
{
    memset(r, 0, sizeof *r);
    if (!(r->g = nb_graph_new()))
        return false;
    for (int i = 0; i < e->n; i++) {
        if (!(r->c[i] = nb_clone(e->x[i])))
            return false;
        r->c[i]->requires_grad = (rg & NB_INPUT(i)) != 0;
    }
    nb_clear_error();
    r->y = nb_apply(e->op, r->c, e->n, e->ex->attr);
    return true;
}

static void finish(const example *e, run *r)
{
    free_all(r->c, e->n);
    nb_graph_free(r->g);
}

/* nb_grad of sum(y * u) with respect to in[i], i in mask, into g[i] (NULL
 * elsewhere). 0, or -1 with an error. */
static int grads(nb_tensor *y, nb_tensor *u, nb_tensor *const in[], int n, unsigned mask,
                 bool retain, nb_tensor **g)
{
    nb_tensor *wrt[NB_MAX_INPUTS], *out[NB_MAX_INPUTS];
    int m = 0;
    FOR_BITS(i, mask, n)
        wrt[m++] = in[i];
    int rc = m ? nb_grad(y, .n = m, .inputs = wrt, .grads = out, .seed = u,
                         .retain_graph = retain)
               : 0;
    m = 0;
    for (int i = 0; i < n; i++)
        g[i] = rc == 0 && (mask & NB_INPUT(i)) ? out[m++] : NULL;
    return rc;
}

/* The first element j of a whose value v[0] differs from v[1] = f * b[off + j]:
 * in its bits (tol < 0), or by more than tol times the larger of the two and
 * of the largest finite value compared (NaN matches NaN); -1 when none. */
static int64_t differ(const nb_tensor *a, const nb_tensor *b, int64_t off, double f, double tol,
                      double v[2])
{
    double scale = 0;
    for (int64_t j = 0; j < a->numel; j++)
        if (isfinite(f * nb__get(b, off + j)))
            scale = fmax(scale, fabs(f * nb__get(b, off + j)));
    for (int64_t j = 0; j < a->numel; j++) {
        v[0] = nb__get(a, j);
        v[1] = f * nb__get(b, off + j);
        if (tol < 0 ? memcmp(&v[0], &v[1], sizeof v[0]) != 0
                    : !(v[0] == v[1] || (isnan(v[0]) && isnan(v[1])) ||
                        fabs(v[0] - v[1]) <= tol * fmax(fmax(fabs(v[0]), fabs(v[1])), scale)))
            return j;
    }
    return -1;
}

/* ---- the contracts, on one example each: NA, HELD, BROKEN or CANNOT ---- */

/* Also records what the others compare against: output, seed, gradients. */
static int deterministic(example *e, char *d)
{
    nb_tensor *g1[NB_MAX_INPUTS], *g2[NB_MAX_INPUTS];
    double v[2];
    run r;
    int st = HELD;
    if (!start(e, e->diff, &r) || !r.y || !(e->y = values(r.y)) ||
        !(e->u = nb_zeros(r.y->dtype, r.y->ndim, r.y->shape))) {
        st = cannot(e, "the op failed");
        goto out;
    }
    nb_rng rng = nb_rng_new(e->seed ^ 0x75u);
    for (int64_t j = 0; j < e->u->numel; j++)
        nb__put(e->u, j, 2 * nb_rng_uniform(&rng) - 1);
    if (!(e->recorded = r.y->requires_grad)) {
        st = e->diff ? say(BROKEN, d, "example %d: the output does not require grad", e->k)
                     : say(NA, d, "example %d: no input requires grad", e->k);
        goto out;
    }
    if (grads(r.y, e->u, r.c, e->n, e->diff, true, g1) ||
        grads(r.y, e->u, r.c, e->n, e->diff, false, g2)) {
        st = cannot(e, "nb_grad failed");
        goto out;
    }
    FOR_BITS(i, e->diff, e->n) {
        int64_t j = differ(g2[i], g1[i], 0, 1, -1, v);
        if (!(e->g[i] = values(g1[i])))
            st = cannot(e, "out of memory");
        if (st == CANNOT)
            break;
        if (j >= 0 && st == HELD)
            st = say(BROKEN, d, "example %d, input %d, element %lld: %.17g, then %.17g", e->k,
                     i + 1, (long long)j, v[1], v[0]);
    }
out:
    finish(e, &r);
    return st;
}

static int accumulates(example *e, bool deterministic, char *d)
{
    static const double factor[3] = {1, 2, 1};
    static const char *const after[3] = {"one nb_backward", "two", "nb_zero_grad and one"};
    if (!deterministic)
        return say(NA, d, "example %d: the backward is not deterministic", e->k);
    double v[2];
    run r;
    int st = start(e, e->diff, &r) && r.y ? HELD : cannot(e, "the op failed");
    for (int pass = 0; st == HELD && pass < 3; pass++) {
        FOR_BITS(i, pass == 2 ? e->diff : 0u, e->n)
            nb_zero_grad(r.c[i]);
        if (nb_backward(r.y, .seed = e->u, .retain_graph = pass < 2))
            st = say(BROKEN, d, "example %d: nb_backward %d failed: %s", e->k, pass + 1, err());
        FOR_BITS(i, st == HELD ? e->diff : 0u, e->n) {
            const nb_tensor *g = nb_grad_of(r.c[i]);
            int64_t j = g ? differ(g, e->g[i], 0, factor[pass], 0, v) : -1;
            if (g && j >= 0)
                st = say(BROKEN, d, "example %d, input %d, element %lld: .grad is %.17g after %s, "
                         "not %.17g", e->k, i + 1, (long long)j, v[0], after[pass], v[1]);
            else if (!g)
                st = say(BROKEN, d, "example %d, input %d: no .grad after nb_backward", e->k,
                         i + 1);
            if (st != HELD)
                break;
        }
    }
    finish(e, &r);
    return st;
}

/* Input i not requiring grad (its contract), or (i < 0) only the .nondiff
 * inputs requiring it (nondiff's): the output is the same, requires grad
 * exactly when a differentiable input does, and .grad goes to those only. */
static int without(example *e, int i, unsigned rg, char *d)
{
    unsigned live = rg & e->diff;
    char who[64];
    double v[2];
    int64_t j = -1;
    run r;
    int st = HELD;
    if (i >= 0)
        snprintf(who, sizeof who, "example %d, input %d not requiring grad", e->k, i + 1);
    else
        snprintf(who, sizeof who, "example %d, only .nondiff inputs requiring grad", e->k);
    if (!start(e, rg, &r))
        st = cannot(e, "out of memory");
    else if (!r.y)
        st = say(BROKEN, d, "%s: the op fails: %s", who, err());
    else if (!nb__same_shape(r.y, e->y))
        st = say(BROKEN, d, "%s: the output has another shape", who);
    else if ((j = differ(r.y, e->y, 0, 1, TOL, v)) >= 0)
        st = say(BROKEN, d, "%s: output element %lld is %.17g, not %.17g", who, (long long)j,
                 v[0], v[1]);
    else if (live && !r.y->requires_grad)
        st = say(BROKEN, d, "%s: the output does not require grad", who);
    else if (!live && r.y->requires_grad)
        st = say(BROKEN, d, "%s: the output requires grad", who);
    else if (!live && (nb_backward(r.y, .seed = e->u) != -1 || !nb_last_error()))
        st = say(BROKEN, d, "%s: nb_backward did not refuse the output", who);
    else if (live && nb_backward(r.y, .seed = e->u))
        st = say(BROKEN, d, "%s: nb_backward failed: %s", who, err());
    nb_clear_error();
    for (int k = 0; st == HELD && k < e->n; k++)
        if ((nb_grad_of(r.c[k]) != NULL) != ((live & NB_INPUT(k)) != 0))
            st = say(BROKEN, d, "%s: input %d has %s .grad", who, k + 1,
                     nb_grad_of(r.c[k]) ? "a" : "no");
    finish(e, &r);
    return st;
}

static int no_grad_inputs(example *e, char *d)
{
    if (!e->diff)
        return say(NA, d, "example %d: no differentiable input", e->k);
    FOR_BITS(i, e->diff, e->n) {
        int st = without(e, i, e->diff & ~NB_INPUT(i), d);
        if (st != HELD)
            return st;
    }
    return HELD;
}

static int nondiff(example *e, char *d)
{
    unsigned nd = e->op->nondiff & e->all;
    nb_tensor *out[NB_MAX_INPUTS] = {0};
    run r;
    if (!nd)
        return say(NA, d, "no input declared .nondiff");
    int st = HELD;
    if (!start(e, e->all, &r))
        st = cannot(e, "out of memory");
    else if (!r.y)
        st = say(BROKEN, d, "example %d: with .nondiff inputs requiring grad the op fails: %s",
                 e->k, err());
    else if (e->diff && nb_grad(r.y, .n = e->n, .inputs = r.c, .grads = out, .seed = e->u,
                                .retain_graph = true, .allow_unused = true))
        st = say(BROKEN, d, "example %d: nb_grad failed: %s", e->k, err());
    else if (e->diff && nb_backward(r.y, .seed = e->u))
        st = say(BROKEN, d, "example %d: nb_backward failed: %s", e->k, err());
    FOR_BITS(i, st == HELD ? nd : 0u, e->n)
        if (st == HELD && (out[i] || nb_grad_of(r.c[i])))
            st = say(BROKEN, d, "example %d, input %d (.nondiff) got %s", e->k, i + 1,
                     out[i] ? "a gradient from nb_grad" : "a .grad");
    finish(e, &r);
    return st == HELD ? without(e, -1, nd, d) : st;
}

static int batch(example *e, char *d)
{
    if (!e->op->batch)
        return say(NA, d, "no batch rule (nb_op.batch)");
    unsigned mask = e->op->batch(e->x, e->n, e->ex->attr);
    int64_t B = e->y->ndim ? e->y->shape[0] : 0;
    if (mask & ~e->all)
        return say(BROKEN, d, "example %d: the batch rule gives 0x%x, beyond the %d inputs",
                   e->k, mask, e->n);
    if (!mask)
        return say(NA, d, "example %d: the batch rule names no input", e->k);
    FOR_BITS(i, mask, e->n)
        if (!e->x[i]->ndim || e->x[i]->shape[0] != B)
            return say(BROKEN, d, "example %d: the batch rule names input %d, whose first "
                       "size is not the output's %lld", e->k, i + 1, (long long)B);
    if (B < 2)
        return say(NA, d, "example %d: a batch of %lld", e->k, (long long)B);
    nb_tensor *sum[NB_MAX_INPUTS] = {0};
    int64_t rows = e->y->numel / B, j = -1;
    double v[2];
    int st = HELD;
    FOR_BITS(i, e->diff & ~mask, e->n)
        if (!(sum[i] = nb_zeros(NB_F64, e->x[i]->ndim, e->x[i]->shape)))
            st = cannot(e, "out of memory");
    for (int64_t b = 0; st == HELD && b < B; b++) {
        run r = {.g = nb_graph_new()};
        nb_tensor *gb[NB_MAX_INPUTS], *y = NULL;
        bool ok = r.g != NULL;
        for (int i = 0; ok && i < e->n; i++) {
            r.c[i] = nb_clone(mask & NB_INPUT(i) ? nb_slice(e->x[i], 0, b, b + 1, 1) : e->x[i]);
            if ((ok = r.c[i] != NULL))
                r.c[i]->requires_grad = e->x[i]->requires_grad;
        }
        if (!ok)
            st = cannot(e, "out of memory");
        else if (!(y = nb_apply(e->op, r.c, e->n, e->ex->attr)))
            st = say(BROKEN, d, "example %d, row %lld: the op fails on one row: %s", e->k,
                     (long long)b, err());
        else if (y->ndim != e->y->ndim || y->shape[0] != 1 || y->numel != rows)
            st = say(BROKEN, d, "example %d, row %lld: one row gives %lld elements in %d "
                     "dimensions", e->k, (long long)b, (long long)y->numel, y->ndim);
        else if ((j = differ(y, e->y, b * rows, 1, TOL, v)) >= 0)
            st = say(BROKEN, d, "example %d, row %lld, output element %lld: %.17g alone, "
                     "%.17g in the batch", e->k, (long long)b, (long long)j, v[0], v[1]);
        else if (grads(y, nb_slice(e->u, 0, b, b + 1, 1), r.c, e->n, e->diff, false, gb))
            st = say(BROKEN, d, "example %d, row %lld: backward failed: %s", e->k, (long long)b,
                     err());
        FOR_BITS(i, st == HELD ? e->diff : 0u, e->n) {
            int64_t m = gb[i]->numel;
            for (int64_t q = 0; sum[i] && q < m; q++)
                nb__put(sum[i], q, nb__get(sum[i], q) + nb__get(gb[i], q));
            if (!sum[i] && (j = differ(gb[i], e->g[i], b * m, 1, TOL, v)) >= 0) {
                st = say(BROKEN, d, "example %d, input %d, row %lld, element %lld: %.17g alone, "
                         "%.17g in the batch", e->k, i + 1, (long long)b, (long long)j, v[0],
                         v[1]);
                break;
            }
        }
        finish(e, &r);
    }
    FOR_BITS(i, st == HELD ? e->diff & ~mask : 0u, e->n)
        if (st == HELD && (j = differ(sum[i], e->g[i], 0, 1, TOL, v)) >= 0)
            st = say(BROKEN, d, "example %d, input %d (shared), element %lld: %.17g summed "
                     "over rows, %.17g in the batch", e->k, i + 1, (long long)j, v[0], v[1]);
    free_all(sum, e->n);
    return st;
}

/* Layout l for the inputs in want it applies to (*used), the others as they
 * are: the op on the views against the op on contiguous copies of them. */
static int layout(example *e, nb_check_layout l, unsigned want, unsigned *used, char *d)
{
    nb_tensor *base[NB_MAX_INPUTS] = {0}, *view[NB_MAX_INPUTS], *in[NB_MAX_INPUTS],
              *wrt[NB_MAX_INPUTS], *gv[NB_MAX_INPUTS], *gc[NB_MAX_INPUTS], *yv = NULL;
    run r = {.g = nb_graph_new()};
    nb_check_report cr;
    char who[64];
    double v[2];
    int64_t j = -1;
    int st = HELD;
    *used = 0;
    if (!r.g || !nb__check_views(l, e->n, e->x, base, view, &cr)) {
        st = cannot(e, "out of memory");
        goto out;
    }
    for (int i = 0; i < e->n; i++) {
        bool is = (want & NB_INPUT(i)) && base[i] != e->x[i];
        *used |= is ? NB_INPUT(i) : 0u;
        in[i] = is ? view[i] : e->x[i];
        wrt[i] = is ? base[i] : e->x[i];
        if (!(r.c[i] = nb_clone(in[i]))) {
            st = cannot(e, "out of memory");
            goto out;
        }
        r.c[i]->requires_grad = e->x[i]->requires_grad;
    }
    if (!*used) {
        st = say(NA, d, "example %d: no input has a %s layout", e->k, nb_check_layout_name(l));
        goto out;
    }
    int w = snprintf(who, sizeof who, "example %d, %s", e->k, nb_check_layout_name(l));
    if (!(*used & (*used - 1)))
        snprintf(who + w, sizeof who - (size_t)w, ", input %d", __builtin_ctz(*used) + 1);
    if (!(yv = nb_apply(e->op, in, e->n, e->ex->attr)) ||
        !(r.y = nb_apply(e->op, r.c, e->n, e->ex->attr)))
        st = say(BROKEN, d, "%s: the op fails on the %s: %s", who, yv ? "copies" : "views",
                 err());
    else if (!nb__same_shape(yv, r.y))
        st = say(BROKEN, d, "%s: the output has another shape on views", who);
    else if ((j = differ(yv, r.y, 0, 1, TOL, v)) >= 0)
        st = say(BROKEN, d, "%s: output element %lld: %.17g on views, %.17g on copies", who,
                 (long long)j, v[0], v[1]);
    else if (grads(yv, e->u, wrt, e->n, e->diff, false, gv) ||
             grads(r.y, e->u, r.c, e->n, e->diff, false, gc))
        st = say(BROKEN, d, "%s: backward failed: %s", who, err());
    FOR_BITS(i, st == HELD ? e->diff : 0u, e->n) {
        /* The copies' gradient carried back through the view's strides. */
        nb_tensor *want_g = nb_zeros(NB_F64, wrt[i]->ndim, wrt[i]->shape);
        assert(in[i]->storage == wrt[i]->storage);
        for (int64_t q = 0; want_g && q < in[i]->numel; q++) {
            int64_t p = nb__elem(in[i], q) + in[i]->offset - wrt[i]->offset;
            nb__put(want_g, p, nb__get(want_g, p) + nb__get(gc[i], q));
        }
        if (!want_g)
            st = cannot(e, "out of memory");
        else if ((j = differ(gv[i], want_g, 0, 1, TOL, v)) >= 0)
            st = say(BROKEN, d, "%s: gradient of input %d, base element %lld: %.17g, not "
                     "%.17g", who, i + 1, (long long)j, v[0], v[1]);
        nb_free(want_g);
        if (st != HELD)
            break;
    }
out:
    finish(e, &r);
    nb__check_free_copies(e->x, base, e->n);
    return st;
}

static int layouts(example *e, char *d)
{
    int st = NA;
    for (int l = NB_LAYOUT_PERMUTED; l < NB_CHECK_LAYOUTS; l++) {
        unsigned used, one;
        int s = layout(e, (nb_check_layout)l, e->all, &used, d);
        /* Broken with several views: name the first input that breaks alone. */
        FOR_BITS(i, s == BROKEN && (used & (used - 1)) ? used : 0u, e->n) {
            char alone[DETAIL];
            int t = layout(e, (nb_check_layout)l, NB_INPUT(i), &one, alone);
            if (t == BROKEN || t == CANNOT) {
                s = t;
                memcpy(d, alone, DETAIL);
                break;
            }
        }
        if (s == BROKEN || s == CANNOT)
            return s;
        st = s == HELD ? HELD : st;
    }
    return st;
}

/* Tensor t (an input, or the output for t == n) bumped after recording;
 * first overwritten with other values when the op does not save it (bit t
 * of saved, bit n for the output). */
static int written(example *e, int t, unsigned saved, char *d)
{
    bool is_saved = saved & (1u << t);
    nb_tensor *g[NB_MAX_INPUTS];
    char who[48];
    double v[2];
    int64_t j = -1;
    run r;
    int st = HELD;
    if (t < e->n)
        snprintf(who, sizeof who, "example %d, input %d", e->k, t + 1);
    else
        snprintf(who, sizeof who, "example %d, the output", e->k);
    if (!start(e, e->diff, &r) || !r.y) {
        st = cannot(e, "the op failed");
        goto out;
    }
    nb_tensor *w = t < e->n ? r.c[t] : r.y;
    for (int i = 0; i <= e->n && !is_saved; i++)
        if (i != t && (saved & (1u << i)) && (i < e->n ? r.c[i] : r.y)->storage == w->storage) {
            st = say(NA, d, "%s shares its storage with a saved tensor", who);
            goto out;
        }
    nb_rng rng = nb_rng_new(e->seed ^ 0x77u);
    for (int64_t q = 0; !is_saved && q < w->numel; q++)
        nb__put(w, q, t < e->n ? nb__get(e->alt[t], q) : 0.5 + nb_rng_uniform(&rng));
    nb_bump_version(w);
    nb_clear_error();
    int rc = grads(r.y, e->u, r.c, e->n, e->diff, false, g);
    if (is_saved && rc == 0)
        st = say(BROKEN, d, "%s (saved): written in place after recording, yet backward did "
                 "not fail", who);
    else if (is_saved && !strstr(err(), "modified in place"))
        st = say(BROKEN, d, "%s (saved): backward failed otherwise: %s", who, err());
    else if (!is_saved && rc)
        st = say(BROKEN, d, "%s (not saved): written in place after recording, backward "
                 "failed: %s", who, err());
    FOR_BITS(i, st == HELD && !is_saved ? e->diff : 0u, e->n)
        if (st == HELD && (j = differ(g[i], e->g[i], 0, 1, TOL, v)) >= 0)
            st = say(BROKEN, d, "%s, not in .saves, overwritten after recording: input %d's "
                     "gradient, element %lld: %.17g, not %.17g", who, i + 1, (long long)j, v[0],
                     v[1]);
    nb_clear_error();
out:
    finish(e, &r);
    return st;
}

static int inplace(example *e, char *d)
{
    unsigned s = e->op->saves, saved = 0; /* bit i: input i, bit n: the output */
    for (int t = 0; t <= e->n && !(s & NB_SAVES_NONE); t++)
        if (!s || (s & (t < e->n ? NB_SAVES_X(t) : NB_SAVES_Y)))
            saved |= 1u << t;
    int st = NA;
    for (int t = 0; t <= e->n; t++) {
        int w = written(e, t, saved, d);
        if (w == BROKEN || w == CANNOT)
            return w;
        st = w == HELD ? HELD : st;
    }
    return st;
}

/* ---- the driver ---- */

/* Folds one example's result in: broken anywhere is broken (the first
 * detail kept), else held anywhere is held; not applicable keeps its first
 * reason. */
static void note(nb_contract_report *r, nb_contract c, int st, const char *d)
{
    nb_contract_status *s = &r->status[c];
    if (*s == BROKEN || st == CANNOT)
        return;
    if (st == BROKEN || (st == NA && *s == NA && !r->detail[c][0]))
        memcpy(r->detail[c], d, DETAIL);
    if (st == HELD && *s == NA)
        r->detail[c][0] = '\0';
    if (st != NA)
        *s = (nb_contract_status)st;
}

static bool run_example(const nb_op *op, const nb_op_example *ex, int k, uint64_t seed,
                        nb_contract_report *r)
{
    static int (*const checks[NB_CONTRACTS])(example *, char *) = {
        [NB_CONTRACT_NO_GRAD_INPUTS] = no_grad_inputs, [NB_CONTRACT_NONDIFF] = nondiff,
        [NB_CONTRACT_BATCH] = batch, [NB_CONTRACT_LAYOUTS] = layouts,
        [NB_CONTRACT_INPLACE] = inplace};
    example e = {.op = op, .ex = ex, .n = ex->n, .k = k, .seed = seed,
                 .all = (1u << ex->n) - 1u, .r = r};
    nb_check_report cr;
    char d[DETAIL] = "";
    int st = CANNOT;
    if (!nb__check_inputs(op, ex, seed, e.x, &cr) ||
        !nb__check_inputs(op, ex, seed ^ 0x5eedull, e.alt, &cr)) {
        snprintf(r->message, sizeof r->message, "%.255s", cr.message);
        goto out;
    }
    for (int i = 0; i < e.n; i++)
        e.diff |= e.x[i]->requires_grad ? NB_INPUT(i) : 0u;
    if (op->elementwise) {
        char who[32];
        snprintf(who, sizeof who, "example %d", k);
        if ((st = nb__check_elementwise(op, ex->attr, e.x, e.n, who, seed, d, r->message)) ==
            CANNOT)
            goto out;
        note(r, NB_CONTRACT_ELEMENTWISE, st, d);
    }
    if (op->no_gradient) {
        run ru;
        if (!start(&e, e.all, &ru) || !ru.y)
            st = cannot(&e, "the op failed");
        else
            st = ru.y->requires_grad ? say(BROKEN, d, "example %d: the op declares "
                                           ".no_gradient but its output requires grad", k)
                                     : HELD;
        finish(&e, &ru);
        note(r, NB_CONTRACT_NONDIFF, st, d);
        goto out;
    }
    if ((st = deterministic(&e, d)) == CANNOT)
        goto out;
    note(r, NB_CONTRACT_DETERMINISTIC, st, d);
    bool det = st != BROKEN;
    /* Without a recording only the inputs' flags can be checked. */
    unsigned flags = 1u << NB_CONTRACT_NO_GRAD_INPUTS | 1u << NB_CONTRACT_NONDIFF;
    for (int c = NB_CONTRACT_ACCUMULATES; c < NB_CONTRACT_ELEMENTWISE && st != CANNOT; c++) {
        d[0] = '\0';
        if (!e.recorded && !(flags & 1u << c))
            st = say(NA, d, "example %d: no input requires grad", k);
        else
            st = c == NB_CONTRACT_ACCUMULATES ? accumulates(&e, det, d) : checks[c](&e, d);
        note(r, (nb_contract)c, st, d);
    }
out:
    free_all(e.x, ex->n);
    free_all(e.alt, ex->n);
    free_all(e.g, ex->n);
    nb_free(e.y);
    nb_free(e.u);
    return st != CANNOT;
}

bool nb_check_contract(const nb_op *op, const nb_check_opts *opts, nb_contract_report *r)
{
    nb_check_report cr;
    if (!r) {
        nb__error("nb_check_contract: report is NULL");
        return false;
    }
    memset(r, 0, sizeof *r);
    nb_clear_error();
    r->op = op ? op->name : NULL;
    if (!op || !op->name)
        snprintf(r->message, sizeof r->message, "nb_check_contract: op is NULL or has no name");
    else if (!nb__check_opts_valid("nb_check_contract", opts, &cr))
        snprintf(r->message, sizeof r->message, "%.255s", cr.message);
    for (int k = 0; !r->message[0] && op->examples && op->examples[k].n; k++) {
        const nb_op_example *ex = &op->examples[k];
        bool bad = ex->n < 1 || ex->n > NB_MAX_INPUTS;
        for (int i = 0; !bad && i < ex->n; i++)
            bad = ex->ndim[i] < 0 || ex->ndim[i] > NB_MAX_DIMS;
        if (bad)
            snprintf(r->message, sizeof r->message,
                     "nb_check_contract: example %d of %s has %d inputs (1 to %d) or an input "
                     "with more than %d dimensions", k + 1, op->name, ex->n, NB_MAX_INPUTS,
                     NB_MAX_DIMS);
    }
    if (r->message[0]) {
        nb__error("%s", r->message);
        return false;
    }
    bool prev = nb_set_grad_enabled(true), ran = true;
    uint64_t seed = nb__check_resolve(opts, op).seed;
    for (int k = 0; ran && op->examples && op->examples[k].n; k++)
        ran = run_example(op, &op->examples[k], k + 1, seed, r);
    char ew[DETAIL] = "";
    if (!op->elementwise)
        snprintf(r->detail[NB_CONTRACT_ELEMENTWISE], DETAIL, "not declared (nb_op.elementwise)");
    else if (ran && (!op->examples || !op->examples[0].n))
        note(r, NB_CONTRACT_ELEMENTWISE, nb__check_elementwise_made_up(op, seed, ew), ew);
    nb_set_grad_enabled(prev);
    const char *why = !op->examples || !op->examples[0].n ? "no examples (nb_op.examples)"
                      : op->no_gradient                    ? "no gradient by design (.no_gradient)"
                                                           : "";
    r->ok = ran;
    for (int c = 0; c < NB_CONTRACTS; c++) {
        if (r->status[c] == NA && !r->detail[c][0])
            snprintf(r->detail[c], DETAIL, "%s", why);
        r->ok &= r->status[c] != BROKEN;
    }
    if (ran)
        nb_clear_error();
    else
        nb__error("%s", r->message);
    return r->ok;
}
