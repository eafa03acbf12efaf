/* Tracing a fused function (fuse.h): f runs once on placeholders in the
 * current graph with every op recorded (nb_thread.tracing), full inputs as
 * (3,) tensors and one-element inputs as 0-d ones. The recorded graph,
 * walked back from the outputs, is the program: a list of instructions (an
 * elementwise op, its attributes, its operand slots) over slots that are
 * inputs, constants (leaves of one element, and full_like's fills) or
 * instruction results. A result is a scalar when all its operands are:
 * those run once per call, first. Scratch buffers are assigned to results
 * by liveness. */
#include "fused_internal.h"

extern const nb_op nb_op_full_like;

void nb__program_free(program *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->ninstr; i++)
        nb__free(p->ins[i].attr);
    nb__free(p->ins);
    nb__free(p->kind);
    nb__free(p->value);
    nb__free(p->buf);
    nb__free(p->outs);
    nb__free(p->attrs);
    nb__free(p);
}

/* ---- tracing ---- */

typedef struct {
    program *p;
    int cap_slots, cap_instr;
    nb_tensor **tensor; /* per slot: the traced tensor */
    const char *fn;     /* the fused function's name, for messages */
} tracer;

static int out_of_memory(const tracer *t)
{
    return nb__memory_error("nb_fused_apply: out of memory tracing '%s'", t->fn);
}

/* *v, of *n elements of `size` bytes, with room for `cap` (nabla's
 * allocator has no realloc). */
static int resize(void **v, int n, int cap, size_t size)
{
    void *m = nb__alloc((size_t)cap * size);
    if (!m)
        return -1;
    if (n)
        memcpy(m, *v, (size_t)n * size);
    nb__free(*v);
    *v = m;
    return 0;
}

static int new_slot(tracer *t, nb_tensor *x, int kind, double value)
{
    program *p = t->p;
    int s = p->nslots;
    if (s == t->cap_slots) {
        int c = s ? 2 * s : 32;
        if (resize((void **)&t->tensor, s, c, sizeof *t->tensor) ||
            resize((void **)&p->kind, s, c, sizeof *p->kind) ||
            resize((void **)&p->value, s, c, sizeof *p->value))
            return out_of_memory(t);
        t->cap_slots = c;
    }
    t->tensor[s] = x;
    p->kind[s] = (uint8_t)kind;
    p->value[s] = value;
    p->nslots++;
    return s;
}

static int find_slot(const tracer *t, const nb_tensor *x)
{
    for (int s = t->p->nslots - 1; s >= 0; s--)
        if (t->tensor[s] == x)
            return s;
    return -1;
}

static double first_value(const nb_tensor *x)
{
    const void *d = nb__ptr(x);
    return x->dtype == NB_F64 ? *(const double *)d : (double)*(const float *)d;
}

/* The slot of traced tensor x, adding it and what it depends on. */
static int visit(tracer *t, nb_tensor *x, int depth)
{
    char b[NB_SHAPE_STR_LEN];
    program *p = t->p;
    int s = find_slot(t, x);
    if (s >= 0)
        return s;
    if (x->dtype != p->dtype)
        return nb__dtype_error("nb_fused_apply: '%s' makes a %s tensor from %s inputs (a fused "
                               "function keeps one dtype)", t->fn, nb_dtype_name(x->dtype),
                               nb_dtype_name(p->dtype));
    const nb_node *nd = x->node;
    if (!nd || nd->op == &nb_op_full_like) {
        if (x->numel != 1 && !nd)
            return nb__error("nb_fused_apply: '%s' uses a %s tensor that is not one of its "
                             "inputs (a fused function reads its inputs and scalar constants "
                             "only)", t->fn, nb_shape_str(x, b));
        return new_slot(t, x, CONST, first_value(x));
    }
    const nb_op *op = nd->op;
    if (!op->elementwise)
        return nb__error("nb_fused_apply: '%s' uses %s%s, which is not elementwise (a fused "
                         "function takes ops declaring .elementwise)", t->fn,
                         nb__op_prefix(op), op->name);
    if (depth > MAX_INSTR || p->ninstr >= MAX_INSTR)
        return nb__error("nb_fused_apply: '%s' has more than %d ops", t->fn, MAX_INSTR);
    instr in = {.op = op, .n = nd->n};
    int kind = SCALAR;
    for (int i = 0; i < nd->n; i++) {
        if ((in.in[i] = visit(t, nd->x[i], depth + 1)) < 0)
            return -1;
        if (p->kind[in.in[i]] == FULL)
            kind = FULL;
    }
    bool full_shape = x->ndim == 1 && x->shape[0] == 3;
    if (kind == FULL ? !full_shape : x->ndim != 0)
        return nb__shape_error("nb_fused_apply: '%s': %s%s gave a %s result where an "
                               "elementwise op gives its inputs' shape", t->fn,
                               nb__op_prefix(op), op->name, nb_shape_str(x, b));
    if (p->ninstr == t->cap_instr) {
        int c = p->ninstr ? 2 * p->ninstr : 32;
        if (resize((void **)&p->ins, p->ninstr, c, sizeof *p->ins))
            return out_of_memory(t);
        t->cap_instr = c;
    }
    if (op->attr_size) {
        if (!(in.attr = nb__alloc(op->attr_size)))
            return out_of_memory(t);
        memcpy(in.attr, nd->attr, op->attr_size);
    }
    if ((in.out = new_slot(t, x, kind, 0)) < 0) {
        nb__free(in.attr);
        return -1;
    }
    p->ins[p->ninstr++] = in;
    return in.out;
}

/* Scratch buffers for full results, reused once their last reader has
 * run; an output's lives to the end of the block (it is copied out then,
 * so outputs may be written over inputs). */
static int plan(program *p, int n_out)
{
    int ns = p->nslots;
    int *last = nb__alloc((size_t)ns * sizeof *last);
    int *freelist = nb__alloc((size_t)ns * sizeof *freelist);
    p->buf = nb__alloc((size_t)ns * sizeof *p->buf);
    if (!last || !freelist || !p->buf) {
        nb__free(last);
        nb__free(freelist);
        return nb__memory_error("nb_fused_apply: out of memory tracing a fused function");
    }
    for (int s = 0; s < ns; s++)
        last[s] = p->buf[s] = -1;
    for (int i = 0; i < p->ninstr; i++)
        for (int j = 0; j < p->ins[i].n; j++)
            last[p->ins[i].in[j]] = i;
    for (int k = 0; k < n_out; k++)
        last[p->outs[k]] = p->ninstr;
    int nfree = 0;
    p->nbuf = 0;
    for (int i = 0; i < p->ninstr; i++) {
        const instr *in = &p->ins[i];
        int s = in->out;
        if (p->kind[s] == FULL)
            p->buf[s] = nfree ? freelist[--nfree] : p->nbuf++;
        /* Buffers whose last reader is this instruction are free after it
         * (not before: a kernel's output must not alias its input). */
        for (int j = 0; j < in->n; j++) {
            int u = in->in[j];
            bool seen = false;
            for (int q = 0; q < j; q++)
                seen |= in->in[q] == u;
            if (!seen && last[u] == i && p->buf[u] >= 0)
                freelist[nfree++] = p->buf[u];
        }
        if (last[s] < 0 && p->buf[s] >= 0) /* never read */
            freelist[nfree++] = p->buf[s];
    }
    nb__free(last);
    nb__free(freelist);
    return 0;
}

static program *trace(nb_fused *fn, nb_dtype dtype, unsigned scalars)
{
    nb_thread *th = nb__thread();
    program *p = nb__alloc(sizeof *p);
    if (!p) {
        nb__memory_error("nb_fused_apply: out of memory tracing '%s'", fn->name);
        return NULL;
    }
    memset(p, 0, sizeof *p);
    p->dtype = dtype;
    p->scalars = scalars;
    p->n_in = fn->n_in;
    p->n_out = fn->n_out;
    tracer t = {.p = p, .fn = fn->name};
    /* The trace's tensors are the current graph's until its next reset. */
    nb_graph *g = th->graph;
    nb_tensor *in[NB_FUSED_MAX], *out[NB_FUSED_MAX] = {0};
    int rc = 0;
    for (int i = 0; i < fn->n_in && rc == 0; i++) {
        bool one = scalars >> i & 1u;
        in[i] = nb__new_graph_tensor(g, dtype, one ? 0 : 1, (const int64_t[]){3}, true);
        if (!in[i] || new_slot(&t, in[i], one ? SCALAR : FULL, 0) < 0) {
            rc = -1;
            break;
        }
        for (int64_t j = 0; j < in[i]->numel; j++) {
            if (dtype == NB_F64)
                ((double *)nb__ptr(in[i]))[j] = 0.5;
            else
                ((float *)nb__ptr(in[i]))[j] = 0.5f;
        }
    }
    if (rc == 0) {
        bool grad = nb_set_grad_enabled(true), anomaly = th->anomaly;
        th->anomaly = false;
        th->tracing = true;
        rc = fn->f(out, in, fn->ctx);
        th->tracing = false;
        th->anomaly = anomaly;
        nb_set_grad_enabled(grad);
        for (int k = 0; rc == 0 && k < fn->n_out; k++)
            if (!out[k])
                rc = -1;
        if (rc != 0) {
            char why[400] = "it returned -1 without an error";
            bool had = nb__has_error();
            if (had)
                snprintf(why, sizeof why, "%s", nb_last_error());
            nb__error_code(had ? nb_last_error_code() : NB_ERR_INVALID,
                           "nb_fused_apply: tracing '%s' failed: %s (it is traced on stand-ins "
                           "of shape (3) for its inputs, () for one-element ones, and may use "
                           "them and scalar constants only)", fn->name, why);
        }
    }
    if (rc == 0 && !(p->outs = nb__alloc((size_t)fn->n_out * sizeof *p->outs)))
        rc = out_of_memory(&t);
    for (int k = 0; rc == 0 && k < fn->n_out; k++)
        if ((p->outs[k] = visit(&t, out[k], 0)) < 0)
            rc = -1;
    if (rc == 0)
        rc = plan(p, fn->n_out);
    nb__free(t.tensor);
    if (rc == 0)
        return p;
    nb__program_free(p);
    return NULL;
}

void (*nb__traced_hook)(const program *p, const char *name);
bool nb__fused_interpret;

const program *nb__program_for(nb_fused *fn, nb_dtype dtype, unsigned scalars)
{
    pthread_mutex_lock(&fn->lock);
    program *p = fn->programs;
    while (p && (p->dtype != dtype || p->scalars != scalars))
        p = p->next;
    if (!p && (p = trace(fn, dtype, scalars))) {
        if (!nb__fused_interpret && nb__program_compile(p) < 0) {
            nb__program_free(p);
            p = NULL;
        } else {
            p->next = fn->programs;
            fn->programs = p;
            if (nb__traced_hook)
                nb__traced_hook(p, fn->name);
        }
    }
    pthread_mutex_unlock(&fn->lock);
    return p;
}
