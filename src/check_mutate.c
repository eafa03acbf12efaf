/* Mutation testing of gradient checks: a check that cannot fail proves
 * nothing, so each example of an op is checked again with the op's backward
 * broken on purpose (check.h lists the ways) and the check must fail.
 *
 * The engine calls in here (src/autograd.c): while nb__thread()->mutant is
 * set, backward_pass hands nb__mutate the input gradients of every node of
 * mutant->op, already summed back to the inputs' shapes, and input_grad
 * calls nb__mutate_broadcast instead of that sum for the broadcast mutation.
 * The mutations are written with nabla ops, so a mutated gradient stays
 * differentiable, except under the detach mutation, whose point is to cut it.
 *
 * A mutant (mutation, example, input) is run where the mutation can be made
 * (an input that gets a gradient and has elements; a broadcast input; a
 * later input of the same shape for a swap) and counts only if the engine
 * made it (matmul declares .broadcast for its batch dimensions, so an input
 * of a plain matrix product has no broadcast to drop). A mutant the check
 * does not catch is compared with the intact op on what the check looks at:
 * the vector-Jacobian products d<y, u>/dx for a random u; for detach, which
 * changes no first-order value, d<d<y, u>/dx_i, w>/d(x, u) for random u, w.
 * If the two agree to rounding (EQUAL_ATOL, EQUAL_RTOL) the mutant left the
 * gradient as it was and no check could catch it: it is equivalent (swapping
 * the equal gradients of add, scaling a gradient that is zero). Otherwise it
 * is missed, also when the change is below the check's tolerances (a 1%
 * scale of gradients below atol): the example or the tolerances cannot see
 * an error of that size, which is worth knowing, not hiding. Before its
 * mutants, every example must pass its intact check at the orders run (one
 * that fails anyway would "catch" them all), or the report says so. */
#include "check_internal.h"

#include <math.h>

#define FN "nb_gradcheck_mutations"
/* Quantities this close are equal up to rounding: far below what central
 * differences resolve (their error is ~1e-10 at the default step). */
#define EQUAL_ATOL 1e-12
#define EQUAL_RTOL 1e-9

/* How many times the engine made the current mutant on this thread. */
static _Thread_local long made;

const char *nb_mutation_name(nb_mutation m)
{
    static const char *const names[NB_MUTATIONS] = {"zero",    "scale",     "negate", "swap",
                                                    "perturb", "broadcast", "detach"};
    return (int)m >= 0 && (int)m < NB_MUTATIONS ? names[m] : "?";
}

/* ---- the mutations, applied by the engine ---- */

/* g with its middle element moved by 0.1 (1 + max |g|): g plus a constant. */
static nb_tensor *perturb(nb_tensor *g)
{
    double big = 0;
    for (int64_t j = 0; j < g->numel; j++)
        big = fmax(big, fabs(nb__get(g, j)));
    nb_tensor *e = nb_zeros_like(g); /* fresh and packed; full_like has no gradient */
    if (!e)
        return NULL;
    nb__put(e, g->numel / 2, 0.1 * (1 + big));
    return nb_add(g, e);
}

int nb__mutate(const nb_mutant *m, const nb_node *nd, nb_tensor *gi[])
{
    int i = m->input, j = m->other;
    if (i < 0 || i >= nd->n || !gi[i] || gi[i]->numel == 0)
        return 0;
    nb_tensor *g = gi[i], *r = NULL;
    switch ((nb_mutation)m->kind) {
    case NB_MUTATE_ZERO: r = nb_mul(g, nb_scalar_like(g, 0.0)); break;
    case NB_MUTATE_SCALE: r = nb_mul(g, nb_scalar_like(g, 1.01)); break;
    case NB_MUTATE_NEGATE: r = nb_neg(g); break;
    case NB_MUTATE_PERTURB: r = perturb(g); break;
    case NB_MUTATE_DETACH: r = nb_detach(g); break;
    case NB_MUTATE_SWAP:
        if (j < 0 || j >= nd->n || j == i || !gi[j] || !nb__same_shape(g, gi[j]) ||
            g->dtype != gi[j]->dtype)
            return 0;
        gi[i] = gi[j];
        gi[j] = g;
        made++;
        return 0;
    case NB_MUTATE_BROADCAST: /* made in input_grad, by nb__mutate_broadcast */
    default: return 0;
    }
    if (!r) {
        char why[300]; /* the message is rewritten from a copy of itself */
        snprintf(why, sizeof why, "%s", nb_last_error() ? nb_last_error() : "?");
        return nb__error(FN ": the %s mutation of input %d of %s%s failed: %s",
                         nb_mutation_name((nb_mutation)m->kind), i + 1, nb__op_prefix(nd->op),
                         nd->op->name, why);
    }
    gi[i] = r;
    made++;
    return 0;
}

nb_tensor *nb__mutate_broadcast(nb_tensor *g, const nb_tensor *x)
{
    int lead = g->ndim - x->ndim;
    bool ok = lead >= 0 && g->numel > 0;
    nb_tensor *t = g;
    for (int d = 0; ok && t && d < g->ndim; d++) {
        int64_t xs = d < lead ? 1 : x->shape[d - lead];
        if (xs == g->shape[d])
            continue;
        ok = xs == 1;
        t = ok ? nb_slice(t, d, 0, 1, 1) : t;
    }
    if (!ok) /* not a broadcast of x: nb_sum_to says why */
        return nb_sum_to(g, x->ndim, x->shape);
    t = t ? nb_reshape(t, x->ndim, x->shape) : NULL;
    made += t != NULL;
    return t;
}

/* ---- running the mutants of one example ---- */

typedef struct {
    const nb_op *op;
    const nb_op_example *ex;
    int e;                       /* the example, from 0 */
    nb_check_opts opts;          /* f64, contiguous: every check runs so */
    nb_tensor *x[NB_MAX_INPUTS]; /* the example's inputs, as the check draws them */
    int out_ndim;                /* the op's output on them */
    int64_t out_shape[NB_MAX_DIMS];
    int64_t room;                /* doubles quantities() may write */
    nb_mutation_report *r;
} example_run;

static bool fail(nb_mutation_report *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static bool fail(nb_mutation_report *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->ok = false;
    nb__error("%s", r->message);
    return false;
}

static bool differentiable(const example_run *c, int i)
{
    return !(c->op->nondiff & NB_INPUT(i)) && nb__numel(c->ex->ndim[i], c->ex->shape[i]) > 0;
}

static bool same_shape(int na, const int64_t *a, int nb, const int64_t *b)
{
    return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

/* A heap f64 tensor of this shape with entries of either sign, away from 0. */
static nb_tensor *projection(int ndim, const int64_t *shape, nb_rng *rng)
{
    nb_tensor *t = nb_zeros(NB_F64, ndim, shape);
    for (int64_t j = 0; t && j < t->numel; j++) {
        double u = 0.5 + nb_rng_uniform(rng);
        nb__put(t, j, nb_rng_next(rng) & 1 ? u : -u);
    }
    return t;
}

/* What the check compares, with mutant m in effect (NULL: the intact op),
 * into q (*nq doubles): order 1, d<y, u>/dx_i for every input that
 * requires grad, one after the other; order 2, the gradients of
 * <d<y, u>/dx_k, w> with respect to those inputs and u. In a graph of its
 * own; 0, or -1 with an error. */
static int quantities(const example_run *c, const nb_mutant *m, int order, int k, double *q,
                      int64_t *nq)
{
    nb_tensor *in[NB_MAX_INPUTS + 1], *gs[NB_MAX_INPUTS + 1] = {0}, *y = NULL;
    int n = c->ex->n, nin = 0, kk = 0;
    for (int i = 0; i < n; i++)
        if (c->x[i]->requires_grad) {
            kk = i == k ? nin : kk;
            in[nin++] = c->x[i];
        }
    nb_rng rng = nb_rng_new(c->opts.seed ^ 0x6d7574616e74ull); /* "mutant" */
    nb_tensor *u = projection(c->out_ndim, c->out_shape, &rng);
    nb_tensor *w = order == 2 ? projection(c->x[k]->ndim, c->x[k]->shape, &rng) : NULL;
    nb_graph *g = nb_graph_new();
    bool prev = nb_set_grad_enabled(true);
    int rc = -1;
    nb__thread()->mutant = m;
    if (u && g && (order == 1 || w))
        y = nb_apply(c->op, c->x, n, c->ex->attr);
    if (y && !nb__same_shape(y, u))
        nb__error(FN ": %s changed its output's shape", c->op->name);
    else if (y) {
        u->requires_grad = order == 2;
        rc = nb_grad(y, .n = nin, .inputs = in, .grads = gs, .seed = u,
                     .create_graph = order == 2, .allow_unused = true);
        if (rc == 0 && order == 2) {
            nb_tensor *gk = gs[kk];
            memset(gs, 0, sizeof gs);
            in[nin++] = u;
            if (gk && gk->requires_grad) /* else cut: all zero */
                rc = nb_grad(gk, .n = nin, .inputs = in, .grads = gs, .seed = w,
                             .allow_unused = true);
        }
    }
    nb__thread()->mutant = NULL;
    nb_set_grad_enabled(prev);
    *nq = 0;
    for (int i = 0; rc == 0 && i < nin; i++)
        for (int64_t j = 0; j < in[i]->numel && *nq < c->room; j++)
            q[(*nq)++] = gs[i] ? nb__get(gs[i], j) : 0.0;
    nb_graph_free(g);
    nb_free(u);
    nb_free(w);
    return rc;
}

/* 1 when mutant m leaves what a check sees as it was (to rounding), 0 when
 * it changes it (*diff: the largest change), -1 on error. */
static int equivalent(const example_run *c, const nb_mutant *m, int order, double *diff)
{
    size_t bytes = (size_t)c->room * sizeof(double);
    double *a = nb__alloc(bytes), *b = nb__alloc(bytes);
    int64_t na = 0, nb = 0;
    int rc = -1;
    if (a && b && quantities(c, NULL, order, m->input, a, &na) == 0 &&
        quantities(c, m, order, m->input, b, &nb) == 0 && na == nb)
        rc = 1;
    *diff = 0;
    for (int64_t j = 0; rc >= 0 && j < na; j++) {
        double err = fabs(a[j] - b[j]);
        *diff = isnan(err) ? INFINITY : fmax(*diff, err);
        if (!(err <= EQUAL_ATOL + EQUAL_RTOL * fabs(a[j])))
            rc = 0;
    }
    nb__free(a);
    nb__free(b);
    return rc;
}

/* Runs one mutant: counts it, and notes the first one missed. 0, or -1
 * with the report failed (the check or the comparison could not run). */
static int run_mutant(example_run *c, nb_mutation kind, int i, int j)
{
    nb_mutation_count *count = &c->r->mutation[kind];
    nb_mutant m = {c->op, (int)kind, i, j};
    int order = kind == NB_MUTATE_DETACH ? 2 : 1;
    nb_check_report rep;
    made = 0;
    nb__thread()->mutant = &m;
    nb_check_example(c->op, c->ex, order, &c->opts, &rep);
    nb__thread()->mutant = NULL;
    long fired = made;
    bool caught = !rep.ok && rep.verdict != NB_CHECK_ERROR, error = !rep.ok && !caught;
    char what[80];
    if (kind == NB_MUTATE_SWAP)
        snprintf(what, sizeof what, "swap of inputs %d and %d", i + 1, j + 1);
    else
        snprintf(what, sizeof what, "%s of input %d", nb_mutation_name(kind), i + 1);
    if (error)
        fail(c->r, FN ": %s: %s in example %d: the check could not run: %.120s", c->op->name,
             what, c->e + 1, rep.message);
    nb_check_report_free(&rep);
    if (error)
        return -1;
    if (!fired) /* no node gave that gradient: the mutation cannot be made here */
        return 0;
    if (caught) {
        count->applicable++;
        count->caught++;
        return 0;
    }
    double diff;
    int eq = equivalent(c, &m, order, &diff);
    if (eq < 0) {
        fail(c->r, FN ": %s: %s in example %d: %.120s", c->op->name, what, c->e + 1,
             nb_last_error() ? nb_last_error() : "the comparison failed");
        return -1;
    }
    if (eq) {
        count->equivalent++;
        return 0;
    }
    count->applicable++;
    if (!count->missed_example) {
        count->missed_example = c->e + 1;
        count->missed_input = i + 1;
    }
    if (c->r->ok) {
        c->r->ok = false;
        snprintf(c->r->message, sizeof c->r->message,
                 "%s: %s in example %d was not caught (it changes the %s by up to %.3g)",
                 c->op->name, what, c->e + 1, order == 2 ? "second derivative" : "gradient",
                 diff);
    }
    return 0;
}

/* The intact check of an example at one order must pass. */
static bool intact(example_run *c, int order)
{
    nb_check_report rep;
    bool ok = nb_check_example(c->op, c->ex, order, &c->opts, &rep);
    if (!ok)
        fail(c->r, FN ": %s example %d fails its %s check without a mutation: %.120s",
             c->op->name, c->e + 1, order == 2 ? "second-order" : "first-order",
             rep.message[0] ? rep.message : "see nb_check_example");
    nb_check_report_free(&rep);
    return ok;
}

/* Every mutant of one example. 0, or -1 with the report failed. */
static int run_example(example_run *c)
{
    const nb_op_example *ex = c->ex;
    if (!intact(c, 1)) /* this also validates the example */
        return -1;
    bool any = false;
    for (int i = 0; i < ex->n; i++)
        any |= !(c->op->nondiff & NB_INPUT(i));
    if (any && !ex->once_differentiable && !intact(c, 2))
        return -1;
    nb_check_report rep;
    memset(&rep, 0, sizeof rep);
    if (!nb__check_inputs(c->op, ex, c->opts.seed, c->x, &rep)) {
        fail(c->r, FN ": %.200s", rep.message);
        return -1;
    }
    nb_graph *g = nb_graph_new();
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *y = g ? nb_apply(c->op, c->x, ex->n, ex->attr) : NULL;
    nb_set_grad_enabled(prev);
    if (y) {
        c->out_ndim = y->ndim;
        memcpy(c->out_shape, y->shape, sizeof c->out_shape);
    } else {
        fail(c->r, FN ": %s example %d: %.180s", c->op->name, c->e + 1,
             nb_last_error() ? nb_last_error() : "the op failed");
    }
    nb_graph_free(g);
    if (!y)
        return -1;
    c->room = nb__numel(c->out_ndim, c->out_shape);
    for (int i = 0; i < ex->n; i++)
        c->room += c->x[i]->numel;

    for (int k = 0; k < NB_MUTATIONS; k++)
        for (int i = 0; i < ex->n; i++) {
            if (!differentiable(c, i) || (k == NB_MUTATE_DETACH && ex->once_differentiable))
                continue;
            if (k == NB_MUTATE_BROADCAST &&
                (!c->op->broadcast ||
                 same_shape(ex->ndim[i], ex->shape[i], c->out_ndim, c->out_shape)))
                continue;
            if (k != NB_MUTATE_SWAP) {
                if (run_mutant(c, (nb_mutation)k, i, -1))
                    return -1;
                continue;
            }
            for (int j = i + 1; j < ex->n; j++)
                if (differentiable(c, j) &&
                    same_shape(ex->ndim[i], ex->shape[i], ex->ndim[j], ex->shape[j]) &&
                    run_mutant(c, NB_MUTATE_SWAP, i, j))
                    return -1;
        }
    return 0;
}

bool nb_gradcheck_mutations(const nb_op *op, const nb_check_opts *opts, nb_mutation_report *r)
{
    if (!r) {
        nb__error(FN ": report is NULL");
        return false;
    }
    memset(r, 0, sizeof *r);
    nb_clear_error();
    if (!op || !op->name)
        return fail(r, FN ": op is NULL or has no name");
    r->op = op->name;
    nb_check_report rep;
    memset(&rep, 0, sizeof rep);
    if (!nb__check_opts_valid(FN, opts, &rep))
        return fail(r, "%.250s", rep.message);
    if (op->no_gradient || !op->backward) {
        r->ok = true;
        snprintf(r->message, sizeof r->message, "%s has %s: no backward to mutate", op->name,
                 op->no_gradient ? "no gradient by design" : "no backward rule");
        return true;
    }
    if (!op->examples || op->examples[0].n == 0)
        return fail(r, FN ": %s has no examples (nb_op.examples) to check", op->name);

    example_run c = {.op = op, .r = r};
    if (opts)
        c.opts = *opts;
    c.opts.dtype = NB_F64;
    c.opts.layout = NB_LAYOUT_CONTIGUOUS;
    c.opts.at_kinks = false;
    r->ok = true;
    int rc = 0;
    for (int e = 0; rc == 0 && op->examples[e].n != 0; e++) {
        c.e = e;
        c.ex = &op->examples[e];
        memset(c.x, 0, sizeof c.x);
        rc = run_example(&c);
        for (int i = 0; i < NB_MAX_INPUTS; i++)
            nb_free(c.x[i]);
    }
    return r->ok;
}
