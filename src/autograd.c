/* The engine: nb_apply runs an op and records a node; nb_backward and
 * nb_grad walk the recorded nodes in reverse topological order and call each
 * op's backward rule, which is itself written with ops (so create_graph just
 * leaves recording on).
 *
 * nb_apply checks what an op promises instead of trusting it: the shape
 * rule's dims, element count and (for views) bounds; a kernel for the
 * dtype; a backward, or a declaration that there is none, whenever an input
 * requires grad. The backward pass keeps its scratch state (the order, the
 * running gradients) in tables of its own in the current graph's arena, and
 * writes nothing into the tensors it walks except the .grad of leaves in
 * nb_backward: threads with graphs of their own may run nb_grad through
 * shared parameters at once. */
#include "internal.h"

bool nb_set_grad_enabled(bool on)
{
    nb_thread *th = nb__thread();
    bool prev = !th->grad_disabled;
    th->grad_disabled = !on;
    return prev;
}

bool nb_is_grad_enabled(void) { return !nb__thread()->grad_disabled; }

const nb_op *nb_op_of(const nb_tensor *t)
{
    return nb__usable("nb_op_of", "tensor", t) || !t->node ? NULL : t->node->op;
}

/* ---- shape rules ---- */

int nb__broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da != db && da != 1 && db != 1)
            return -1;
        out[i] = da == 1 ? db : da;
    }
    return n;
}

/* Called through nb_apply, which sets the op being applied for the messages. */

/* A shape rule's error: named after the op being applied, or after the rule
 * itself when it is called directly ("nb_shape_same: ..."). */
#define RULE_ERROR(code, rule, ...)                                            \
    (nb__thread()->applying ? nb__op_error_code(code, nb__thread()->applying, __VA_ARGS__)  \
                            : nb__error_code(code, rule ": " __VA_ARGS__))

int nb_shape_same(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)attr;
    if (!out || !x || n < 1 || !x[0])
        return RULE_ERROR(NB_ERR_INVALID, "nb_shape_same",
                          "needs an output and at least one input (out %s, "
                          "x %s, n = %d)", out ? "given" : "NULL", x ? "given" : "NULL", n);
    out->dtype = x[0]->dtype;
    out->ndim = x[0]->ndim;
    memcpy(out->shape, x[0]->shape, sizeof out->shape);
    return 0;
}

int nb_shape_broadcast(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)attr;
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    if (!out || !x || n < 1 || !x[0])
        return RULE_ERROR(NB_ERR_INVALID, "nb_shape_broadcast",
                          "needs an output and at least one input (out %s, "
                          "x %s, n = %d)", out ? "given" : "NULL", x ? "given" : "NULL", n);
    if (n > NB_MAX_INPUTS)
        return RULE_ERROR(NB_ERR_INVALID, "nb_shape_broadcast",
                          "takes 1 to %d inputs, got %d", NB_MAX_INPUTS, n);
    nb_shape_same(out, x, n, attr);
    /* The common case first: two inputs of one dtype and shape. */
    if (n == 2 && x[1] && x[1]->dtype == out->dtype && nb__same_shape(x[0], x[1]))
        return 0;
    for (int i = 1; i < n; i++) {
        if (!x[i])
            return RULE_ERROR(NB_ERR_INVALID, "nb_shape_broadcast", "input %d is NULL", i + 1);
        if (x[i]->dtype != out->dtype)
            return RULE_ERROR(NB_ERR_DTYPE, "nb_shape_broadcast", "dtypes differ: %s %s and %s %s",
                              nb_dtype_name(x[0]->dtype), nb_shape_str(x[0], b),
                              nb_dtype_name(x[i]->dtype), nb_shape_str(x[i], c));
        int64_t shape[NB_MAX_DIMS];
        int nd = nb__broadcast_shape(out->ndim, out->shape, x[i]->ndim, x[i]->shape, shape);
        if (nd < 0) {
            char d[NB_SHAPE_STR_LEN];
            return RULE_ERROR(NB_ERR_SHAPE, "nb_shape_broadcast",
                              "shapes do not broadcast: %s and %s",
                              nb_dims_str(out->ndim, out->shape, d), nb_shape_str(x[i], c));
        }
        out->ndim = nd;
        memcpy(out->shape, shape, sizeof shape);
    }
    return 0;
}

unsigned nb_batch_rows(nb_tensor *const x[], int n, const void *attr)
{
    (void)attr;
    if (!x || n < 1 || n > NB_MAX_INPUTS)
        return 0;
    int ndim = 0;
    int64_t shape[NB_MAX_DIMS] = {0};
    for (int i = 0; i < n; i++) {
        if (!x[i])
            return 0;
        int64_t out[NB_MAX_DIMS];
        int nd = nb__broadcast_shape(ndim, shape, x[i]->ndim, x[i]->shape, out);
        if (nd < 0)
            return 0;
        ndim = nd;
        memcpy(shape, out, sizeof out);
    }
    unsigned mask = 0;
    for (int i = 0; i < n && ndim > 0; i++)
        if (x[i]->ndim == ndim && x[i]->shape[0] == shape[0])
            mask |= NB_INPUT(i);
    return mask;
}

/* ---- apply ---- */

/* The name the user called, "nb_tanh" or "myop", into buf (64 bytes). */
static const char *fn_name(const nb_op *op, char *buf)
{
    snprintf(buf, 64, "%s%s", nb__op_prefix(op), op->name);
    return buf;
}

/* A view must stay inside the storage it looks into. */
static int check_view(const nb_op *op, const nb_meta *m, const nb_tensor *base, int64_t numel)
{
    char f[64], b[NB_SHAPE_STR_LEN];
    if (m->dtype != base->dtype)
        return nb__op_error_code(NB_ERR_DTYPE, op, "a view must keep the dtype of input 1 (%s), the shape rule "
                           "gave %s", nb_dtype_name(base->dtype), nb_dtype_name(m->dtype));
    if (numel == 0)
        return 0;
    int64_t lo = m->offset, hi = m->offset;
    for (int i = 0; i < m->ndim; i++) {
        int64_t ext = m->shape[i] - 1, reach;
        if (ext == 0)
            continue;
        if (__builtin_mul_overflow(m->strides[i], ext, &reach) ||
            __builtin_add_overflow(reach < 0 ? lo : hi, reach, reach < 0 ? &lo : &hi))
            goto out;
    }
    if (lo >= 0 && (uint64_t)hi < base->storage->bytes / nb__dtype_size(base->dtype))
        return 0;
out:
    return nb__shape_error("%s: the view %s (offset %lld) reaches outside the storage of its input "
                     "(%zu bytes)", fn_name(op, f), nb_dims_str(m->ndim, m->shape, b),
                     (long long)m->offset, base->storage->bytes);
}

/* The op struct itself: what nb_apply needs before it can call anything. */
static int check_op(const nb_op *op, int n)
{
    if (!op || !op->name || !op->shape)
        return nb__error("nb_apply: op is NULL or lacks a name or shape rule");
    if (op->arity == 0 || op->arity < -1 || op->arity > NB_MAX_INPUTS)
        return nb_op_error(op, "arity %d is not -1 or 1 to %d (NB_MAX_INPUTS)", op->arity,
                           NB_MAX_INPUTS);
    if (n < 1 || n > NB_MAX_INPUTS || (op->arity > 0 && n != op->arity)) {
        if (op->arity > 0)
            return nb_op_error(op, "takes %d inputs, got %d", op->arity, n);
        return nb_op_error(op, "takes 1 to %d inputs, got %d", NB_MAX_INPUTS, n);
    }
    /* An op of variable arity may name inputs it is not always given. */
    int most = op->arity > 0 ? n : NB_MAX_INPUTS;
    unsigned inputs = (1u << most) - 1u, all = NB_SAVES_Y | NB_SAVES_NONE | inputs;
    if ((op->nondiff | op->contiguous) & ~inputs)
        return nb_op_error(op, "its nondiff/contiguous masks name inputs beyond its %d", n);
    if (op->saves & ~all)
        return nb_op_error(op, "its saves mask names inputs beyond its %d", n);
    if (op->no_gradient && op->backward)
        return nb_op_error(op, "declares no_gradient but has a backward rule");
    return 0;
}

/* Records a node on y for the inputs x. */
int nb__record(nb_graph *g, const nb_op *op, nb_tensor *y, nb_tensor *const x[], int n,
                  const void *attr)
{
    /* One block: the node, its inputs, the attributes (16-byte aligned),
     * the versions. */
    size_t at_x = (sizeof(nb_node) + 15) & ~(size_t)15;
    size_t at_a = (at_x + (size_t)n * sizeof(nb_tensor *) + 15) & ~(size_t)15;
    size_t at_v = (at_a + op->attr_size + 3) & ~(size_t)3;
    char *block = nb__arena_alloc(g, at_v + (size_t)(n + 1) * sizeof(uint32_t));
    if (!block)
        return -1;
    nb_node *node = (nb_node *)(void *)block;
    nb_tensor **xs = (nb_tensor **)(void *)(block + at_x);
    void *a = op->attr_size ? block + at_a : NULL;
    uint32_t *vs = (uint32_t *)(void *)(block + at_v);
    for (int i = 0; i < n; i++) {
        xs[i] = x[i];
        vs[i] = x[i]->storage->version;
        /* The node holds the input itself: a heap one stays until reset. */
        if (nb__pin(g, &x[i]->own))
            return -1;
    }
    vs[n] = y->storage->version;
    if (a)
        memcpy(a, attr, op->attr_size);
    *node = (nb_node){.op = op, .n = n, .x = xs, .attr = a, .versions = vs,
                      .scope = nb__scope(g)};
    y->node = node;
    y->requires_grad = true;
    nb__count_node(g);
    return 0;
}

extern const nb_op nb_op_cast; /* ops/cast.c: the one op that takes u8 */

/* Whether op's rule is one of the two elementwise ones and gives x[0]'s
 * dtype and shape, so that nb_apply need not call it nor check the shape
 * again: most ops of a step are elementwise on equal shapes. */
static inline bool same_shapes(const nb_op *op, nb_tensor *const x[], int n)
{
    if (op->shape == nb_shape_same)
        return true;
    if (op->shape != nb_shape_broadcast)
        return false;
    for (int i = 1; i < n; i++)
        if (x[i]->dtype != x[0]->dtype || !nb__same_shape(x[i], x[0]))
            return false;
    return true;
}

/* Why an input is refused: the first NULL one (keeping a pending error),
 * else the first stale or u8 one. */
static void input_error(const nb_op *op, nb_tensor *const x_in[], int n)
{
    char f[64];
    for (int i = 0; i < n; i++)
        if (!x_in || !x_in[i]) {
            if (!nb__has_error())
                nb_op_error(op, "input %d is NULL", i + 1);
            return;
        }
    for (int i = 0; i < n; i++)
        if (!nb__live(x_in[i]) || (x_in[i]->dtype == NB_U8 && op != &nb_op_cast)) {
            /* u8 is storage only: no kernel table has a u8 entry. */
            char what[32];
            snprintf(what, sizeof what, "input %d", i + 1);
            if (nb__live(x_in[i]))
                nb__u8_error(fn_name(op, f), what);
            else
                nb__stale_error(fn_name(op, f), what, x_in[i]);
            return;
        }
}

/* op's shape rule into a zeroed m, with op named as the one applying (its
 * messages). */
static inline int shape_rule(nb_thread *th, const nb_op *op, nb_meta *m, nb_tensor *const x[],
                             int n, const void *attr)
{
    memset(m, 0, sizeof *m);
    const nb_op *outer = th->applying;
    th->applying = op;
    int rc = op->shape(m, x, n, attr);
    th->applying = outer;
    return rc;
}

/* op's kernel k from x into y; -1 when the kernel could not finish (it
 * set the error). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int run_kernel(nb_thread *th, const nb_op *op, nb_kernel k, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    nb_view yv, xv[NB_MAX_INPUTS];
    nb__view(y, &yv);
    for (int i = 0; i < n; i++)
        nb__view(x[i], &xv[i]);
    uint64_t errors = th->errors;
    if (!op->elementwise || yv.numel < NB__ELEMENTWISE_PARALLEL ||
        !nb__elementwise_parallel(k, &yv, xv, n, attr))
        k(&yv, xv, n, attr);
    return th->errors != errors ? -1 : 0;
}

/* Inlined into nb_apply, its only caller: no second call per op. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline nb_tensor *apply(nb_thread *th, const nb_op *op, nb_tensor *const x_in[], int n,
                               const void *attr)
{
    char f[64];
    if (check_op(op, n))
        return NULL;
    /* One pass for inputs that are fine; input_error finds the refusal. */
    bool usable = x_in != NULL;
    for (int i = 0; i < n && usable; i++)
        usable = x_in[i] && nb__live(x_in[i]) && (x_in[i]->dtype != NB_U8 || op == &nb_op_cast);
    if (!usable) {
        input_error(op, x_in, n);
        return NULL;
    }
    if (op->attr_size && !attr) {
        nb_op_error(op, "attributes are NULL");
        return NULL;
    }
    nb_graph *g = th->graph;
    if (!g) {
        nb__op_error_code(NB_ERR_STATE, op, "no current graph (create one with nb_graph_new)");
        return NULL;
    }
    nb_tensor *x[NB_MAX_INPUTS];
    for (int i = 0; i < n; i++) {
        x[i] = x_in[i];
        if ((op->contiguous & NB_INPUT(i)) && !x[i]->contiguous && !(x[i] = nb_contiguous(x[i])))
            return NULL;
    }

    nb_meta m;
    int64_t numel;
    if (same_shapes(op, x, n)) {
        /* What the rule would give, from a tensor whose shape was checked
         * when it was made. */
        m.dtype = x[0]->dtype;
        m.ndim = x[0]->ndim;
        for (int d = 0; d < m.ndim; d++)
            m.shape[d] = x[0]->shape[d];
        m.view = false;
        numel = x[0]->numel;
        if (!nb__dtype_float(m.dtype))
            goto bad_meta; /* u8: refused as from the rule */
        goto shaped;
    }
    if (shape_rule(th, op, &m, x, n, attr) != 0) {
        if (!nb__has_error())
            nb_op_error(op, "invalid inputs");
        return NULL;
    }
    if (!nb__dtype_float(m.dtype) || m.ndim < 0 || m.ndim > NB_MAX_DIMS) {
    bad_meta:
        if (m.dtype == NB_U8)
            nb__op_error_code(NB_ERR_DTYPE, op, "shape rule gave dtype u8, which ops do not "
                              "compute in (outputs are f32 or f64)");
        else
            nb__op_error_code(nb__dtype_float(m.dtype) ? NB_ERR_SHAPE : NB_ERR_DTYPE, op,
                              "shape rule gave dtype %d with %d dimensions", (int)m.dtype,
                              m.ndim);
        return NULL;
    }
    if (nb__check_shape(NULL, m.ndim, m.shape, &numel)) {
        nb__check_shape(fn_name(op, f), m.ndim, m.shape, &numel);
        return NULL;
    }
    if (m.view && check_view(op, &m, x[0], numel))
        return NULL;
shaped:;

    bool need = false;
    int wants = -1;
    for (int i = 0; i < n && !th->grad_disabled; i++)
        if (x[i]->requires_grad && !(op->nondiff & NB_INPUT(i))) {
            need = true;
            wants = i;
            break;
        }
    if (need && !op->backward && !op->no_gradient && !th->tracing) {
        nb_op_error(op, "backward not implemented (input %d requires grad; an op without "
                    "a gradient by design declares .no_gradient)", wants + 1);
        return NULL;
    }

    nb_tensor *y;
    if (m.view) {
        if (!(y = nb__new_graph_tensor(g, m.dtype, m.ndim, m.shape, false)))
            return NULL;
        y->storage = x[0]->storage;
        if (nb__pin(g, y->storage)) /* a view of a heap tensor keeps it until reset */
            return NULL;
        y->offset = m.offset;
        memcpy(y->strides, m.strides, sizeof y->strides);
        y->contiguous = nb__layout_contiguous(y->ndim, y->shape, y->strides);
    } else {
        nb_kernel k = op->forward[m.dtype];
        if (!k) {
            nb__op_error_code(NB_ERR_DTYPE, op, "has no %s kernel (nb_op.forward[NB_%s] is NULL)",
                        nb_dtype_name(m.dtype), m.dtype == NB_F32 ? "F32" : "F64");
            return NULL;
        }
        if (!(y = nb__new_graph_tensor(g, m.dtype, m.ndim, m.shape, true)))
            return NULL;
        if (run_kernel(th, op, k, y, x, n, attr))
            return NULL; /* the kernel could not finish and said why */
    }
    if (((need && op->backward) || th->tracing) && nb__record(g, op, y, x, n, attr))
        return NULL;
    if (th->anomaly && nb__anomaly_forward(op, g, y, x, n)) {
        /* The output is not returned, but nb_anomaly_tensor gives it: with
         * its node, a picture shows the op and its inputs. */
        if (!y->node && op->backward)
            nb__record(g, op, y, x, n, attr);
        return NULL;
    }
    return y;
}

nb_tensor *nb_apply(const nb_op *op, nb_tensor *const x[], int n, const void *attr)
{
    nb_thread *th = nb__thread();
    uint64_t errors = th->errors;
    nb_tensor *y = apply(th, op, x, n, attr);
    /* Called by the user (no scope names the call): an error from inside (a
     * user's shape rule or kernel, an inner op, the allocator) is named
     * after this op, after the fact, so that success costs nothing. */
    if (!y && th->errors != errors && !th->entry_fn && op && op->name && op->shape) {
        char f[64];
        nb__name_error(fn_name(op, f));
    }
    return y;
}

nb_tensor *nb__apply_into(nb_tensor *y, const nb_op *op, nb_tensor *const x[], int n,
                          const void *attr)
{
    nb_thread *th = nb__thread();
    if (!y || !th->grad_disabled || th->tracing || !y->contiguous || !op->forward[y->dtype])
        return nb_apply(op, x, n, attr);
    for (int i = 0; i < n; i++)
        if (!x[i] || x[i]->storage == y->storage ||
            ((op->contiguous & NB_INPUT(i)) && !x[i]->contiguous))
            return nb_apply(op, x, n, attr);
    nb_meta m;
    if (shape_rule(th, op, &m, x, n, attr) || m.view || m.dtype != y->dtype || m.ndim != y->ndim ||
        memcmp(m.shape, y->shape, sizeof(int64_t) * (size_t)m.ndim) != 0)
        return nb_apply(op, x, n, attr); /* which says what is wrong, if anything */
    if (run_kernel(th, op, op->forward[y->dtype], y, x, n, attr))
        return NULL;
    nb__bump(y);
    return y;
}

/* ---- backward ---- */

static int check_versions(const nb_tensor *y, const char *fn)
{
    const nb_node *nd = y->node;
    unsigned saves = nd->op->saves;
    char b[NB_SHAPE_STR_LEN];
    if (saves & NB_SAVES_NONE)
        return 0;
    for (int i = 0; i <= nd->n; i++) {
        bool is_y = i == nd->n;
        if (saves && !(saves & (is_y ? NB_SAVES_Y : NB_SAVES_X(i))))
            continue;
        const nb_tensor *t = is_y ? y : nd->x[i];
        if (t->storage->version != nd->versions[i])
            return nb__state_error("%s: %s%s%s %s was modified in place after %s%s recorded it "
                             "(version %u, expected %u)",
                             fn, is_y ? "the output of " : "input '",
                             is_y ? nd->op->name : (t->name ? t->name : "?"), is_y ? "" : "'",
                             nb_shape_str(t, b), nb__op_prefix(nd->op), nd->op->name,
                             t->storage->version, nd->versions[i]);
    }
    return 0;
}

/* The gradient a rule gave for input i of y's node, checked and summed back
 * to the input's shape for broadcasting ops; NULL with an error. */
static nb_tensor *input_grad(const char *fn, const nb_node *nd, int i, nb_tensor *g,
                             const nb_mutant *mutant)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    nb_tensor *x = nd->x[i];
    if (g && nd->op->broadcast && !nb__same_shape(g, x) && g->dtype == x->dtype) {
        bool drop = mutant && mutant->op == nd->op && mutant->kind == NB_MUTATE_BROADCAST &&
                    mutant->input == i;
        nb_tensor *s = drop ? nb__mutate_broadcast(g, x) : nb_sum_to(g, x->ndim, x->shape);
        if (!s) {
            nb__shape_error("%s: backward of %s%s gave a %s gradient for input %d of shape %s, "
                      "which does not sum to it", fn, nb__op_prefix(nd->op), nd->op->name,
                      nb_shape_str(g, b), i + 1, nb_shape_str(x, c));
            return NULL;
        }
        g = s;
    }
    if (g && nb__same_shape(g, x) && g->dtype == x->dtype)
        return g;
    /* The op's name is looked up only here, on the way out. */
    const char *pre = nb__op_prefix(nd->op), *name = nd->op->name;
    if (!g && nb__has_error()) {
        char why[400]; /* the message is rewritten from a copy of itself */
        snprintf(why, sizeof why, "%s", nb_last_error());
        nb__error_code(nb_last_error_code(), "%s: backward of %s%s failed: %s", fn, pre, name,
                       why);
    } else if (!g)
        nb__error("%s: backward of %s%s gave no gradient for input %d", fn, pre, name, i + 1);
    else
        nb__error_code(g->dtype != x->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE,
                       "%s: backward of %s%s gave a %s %s gradient for input %d of %s %s", fn, pre,
                  name, nb_dtype_name(g->dtype), nb_shape_str(g, b), i + 1,
                  nb_dtype_name(x->dtype), nb_shape_str(x, c));
    return NULL;
}

/* Adds a leaf's gradient of this pass into its .grad (made on first use). */
static int add_to_grad(nb_graph *g, nb_tensor *t, nb_tensor *a)
{
    /* Zeros that nothing wrote over since nb_zero_grad need not be read,
     * nor a part of this very gradient that a rule wrote there. */
    bool zero = t->grad && t->grad_zero && t->grad->storage->version == t->grad_zero_version;
    if (t->grad_partial) {
        t->grad_partial = false;
        zero = true;
        if (a == t->grad) { /* all of it */
            t->grad_zero = false;
            return 0;
        }
    }
    if (!t->grad) {
        t->grad = t->lifetime == NB_HEAP
                      ? nb__new_heap_tensor("nb_backward", t->dtype, t->ndim, t->shape)
                      : nb__new_graph_tensor(g, t->dtype, t->ndim, t->shape, true);
        if (!t->grad)
            return -1;
        memset(t->grad->own.data, 0, t->grad->own.bytes);
    }
    nb_view gv, av;
    nb__view(t->grad, &gv);
    nb__view(a, &av);
    nb__accumulate(&gv, &av, zero);
    nb__bump(t->grad);
    t->grad_zero = false;
    return 0;
}

typedef struct {
    const char *fn;
    nb_tensor *root, *seed;
    bool create_graph, retain, leaves_grad;
    bool detect; /* anomaly mode: check every gradient a rule gives */
    /* nb_grad: where the gradients of these inputs go */
    int n;
    nb_tensor *const *inputs;
    nb_tensor **grads;
    bool allow_unused;
} pass_args;

/* The .grad a rule may write x's gradient straight into (nb__grad_into):
 * a leaf's, holding nb_zero_grad's zeros, with no gradient of x yet in this
 * pass (acc), and not offered for an earlier input of the same node. */
static nb_tensor *grad_into(const nb_node *nd, int i, nb_tensor *const *acc, const nb_walk *w)
{
    const nb_tensor *x = nd->x[i];
    if (x->node || !x->requires_grad || (nd->op->nondiff & NB_INPUT(i)) || !x->grad ||
        x->grad_partial || !x->grad_zero || x->grad->storage->version != x->grad_zero_version)
        return NULL;
    for (int k = 0; k < i; k++)
        if (nd->x[k] == x)
            return NULL;
    int64_t j = nb__walk_pos(w, x);
    return j >= 0 && !acc[j] ? x->grad : NULL;
}

/* One backward pass from root: the tensors that require grad in reverse
 * topological order, each node's rule called with the sum of the gradients
 * reaching its output. */
static int run_pass(nb_graph *g, const pass_args *p, const nb_walk *w)
{
    nb_thread *th = nb__thread();
    int64_t count = w->order.n;
    nb_tensor **order = w->order.v;
    nb_tensor **acc = nb__arena_alloc(g, (size_t)count * sizeof *acc);
    if (!acc)
        return -1;
    memset(acc, 0, (size_t)count * sizeof *acc);
    acc[count - 1] = p->seed; /* the root comes last */

    /* A leaf's consumers all come after it in the order, so its gradient
     * is complete when the pass reaches it. */
    bool early = th->grad_ready && p->leaves_grad;
    /* Gradients written into .grad: nb_backward's leaves, but not those
     * nb_dist_backward's hook takes, nor broken ones of mutation testing. */
    bool into = p->leaves_grad && !early && !p->create_graph && !th->mutant;
    for (int64_t k = count - 1; k >= 0; k--) {
        nb_tensor *y = order[k];
        nb_node *nd = y->node;
        if (early && !nd && acc[k] && !th->grad_ready(y, acc[k], th->grad_ready_ctx) &&
            add_to_grad(g, y, acc[k]))
            return -1;
        if (!nd || !acc[k])
            continue;
        if (nd->released)
            return nb__state_error("%s: the graph through %s%s was already backpropagated without "
                             ".retain_graph; pass .retain_graph = true to the first backward "
                             "to go through it twice",
                             p->fn, nb__op_prefix(nd->op), nd->op->name);
        if (check_versions(y, p->fn))
            return -1;
        nb_tensor *dx[NB_MAX_INPUTS] = {0}, *gi[NB_MAX_INPUTS] = {0};
        bool offered = false;
        for (int i = 0; into && i < nd->n; i++) {
            nb_tensor *d = nd->x[i]->node ? NULL : grad_into(nd, i, acc, w);
            if (d) { /* th->grad_into is all NULL but while a rule runs */
                th->grad_into[i] = d;
                offered = true;
            }
        }
        nd->op->backward(dx, acc[k], y, nd->x, nd->n, nd->attr);
        if (offered) {
            for (int i = 0; i < nd->n; i++)
                if (th->grad_into[i] && dx[i] == th->grad_into[i])
                    nd->x[i]->grad_partial = true;
            memset(th->grad_into, 0, sizeof th->grad_into);
        }
        for (int i = 0; i < nd->n; i++) {
            nb_tensor *x = nd->x[i];
            if (!x->requires_grad || (nd->op->nondiff & NB_INPUT(i)))
                continue;
            if (!(gi[i] = input_grad(p->fn, nd, i, dx[i], th->mutant)))
                return -1;
            if (p->create_graph && acc[k]->requires_grad && !gi[i]->requires_grad && !th->cut)
                th->cut = nd->op;
        }
        if (th->mutant && th->mutant->op == nd->op) {
            if (nb__mutate(th->mutant, nd, gi))
                return -1;
        }
        for (int i = 0; p->detect && i < nd->n; i++)
            if (gi[i] && nb__anomaly_backward(p->fn, g, y, i, gi[i], acc[k]))
                return -1;
        for (int i = 0; i < nd->n; i++) {
            nb_tensor *x = nd->x[i];
            if (!gi[i])
                continue;
            int64_t j = nb__walk_pos(w, x);
            if (j < 0)
                return -1;
            nb_tensor *before = acc[j];
            acc[j] = before ? nb_add(before, gi[i]) : gi[i];
            if (!acc[j])
                return -1;
            if (p->detect && before && nb__anomaly_sum(p->fn, g, x, acc[j], before, gi[i]))
                return -1;
        }
        if (!p->retain && !p->create_graph)
            nd->released = true;
        if (early)
            th->grad_ready(NULL, NULL, th->grad_ready_ctx);
    }

    for (int64_t k = 0; p->leaves_grad && !early && k < count; k++)
        if (!order[k]->node && acc[k] && add_to_grad(g, order[k], acc[k]))
            return -1;
    for (int i = 0; i < p->n; i++) {
        int64_t j = nb__walk_pos(w, p->inputs[i]);
        p->grads[i] = j >= 0 ? acc[j] : NULL;
    }
    return 0;
}

static int backward_pass(nb_graph *g, const pass_args *p)
{
    nb_walk w;
    int rc = nb__walk(&w, p->root, true, g) ? -1 : run_pass(g, p, &w);
    /* A pass that failed leaves .grad as it found it: zeros where a rule
     * had written part of its gradient. */
    for (int64_t k = 0; rc && k < w.order.n; k++) {
        nb_tensor *t = ((nb_tensor **)w.order.v)[k];
        if (t->grad_partial) {
            t->grad_partial = false;
            nb_zero_grad(t);
        }
    }
    nb__walk_free(&w); /* gives g's walk table back, for the next pass */
    return rc;
}

static int run_backward(const pass_args *a)
{
    pass_args p = *a;
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    nb_graph *g = nb__graph();
    if (nb__usable(p.fn, p.n ? "output" : "root", p.root) ||
        (p.seed && nb__usable(p.fn, "seed", p.seed)))
        return -1;
    if (!g)
        return nb__state_error("%s: no current graph (create one with nb_graph_new)", p.fn);
    if (!p.root->requires_grad)
        return nb__error("%s: the tensor %s does not require grad (no input of its "
                         "history requires grad, or it was made with gradients off)",
                         p.fn, nb_shape_str(p.root, b));
    if (!p.seed && p.root->numel != 1)
        return nb__shape_error("%s: a seed gradient is needed for a non-scalar output %s", p.fn,
                         nb_shape_str(p.root, b));
    if (p.seed && (!nb__same_shape(p.seed, p.root) || p.seed->dtype != p.root->dtype))
        return nb__error_code(p.seed->dtype != p.root->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE,
                              "%s: seed %s %s does not match output %s %s", p.fn,
                         nb_dtype_name(p.seed->dtype), nb_shape_str(p.seed, b),
                         nb_dtype_name(p.root->dtype), nb_shape_str(p.root, c));
    /* In anomaly mode the rules' own ops are not checked one by one: what
     * a rule gives is (a rule may compute an infinity and select it away). */
    nb_thread *th = nb__thread();
    p.detect = th->anomaly;
    th->anomaly = false;
    bool prev = nb_set_grad_enabled(p.create_graph);
    if (!p.seed)
        p.seed = nb_full_like(p.root, 1.0);
    int rc = p.seed ? backward_pass(g, &p) : -1;
    nb_set_grad_enabled(prev);
    th->anomaly = p.detect;
    for (int i = 0; rc == 0 && i < p.n; i++)
        if (!p.grads[i] && !p.allow_unused)
            rc = nb__error("nb_grad: input %d %s is not used by the output "
                           "(set .allow_unused to get NULL instead)",
                           i + 1, nb_shape_str(p.inputs[i], b));
    return rc;
}

int nb_backward_(nb_backward_args a)
{
    if (!a.root) {
        if (!nb__has_error())
            nb__error("nb_backward: tensor is NULL");
        return -1;
    }
    NB__NAMED("nb_backward", int,
              run_backward(&(pass_args){.fn = "nb_backward", .root = a.root, .seed = a.seed,
                                        .retain = a.retain_graph, .leaves_grad = true}));
}

int nb_grad_(nb_grad_args a)
{
    if (!a.output) {
        if (!nb__has_error())
            nb__error("nb_grad: output is NULL");
        return -1;
    }
    if (a.n < 1 || !a.inputs || !a.grads)
        return nb__error("nb_grad: needs n >= 1 inputs and a grads array (n = %d)", a.n);
    for (int i = 0; i < a.n; i++) {
        char what[32];
        snprintf(what, sizeof what, "input %d", i + 1);
        if (!a.inputs[i])
            return nb__error("nb_grad: input %d is NULL", i + 1);
        if (nb__usable("nb_grad", what, a.inputs[i]))
            return -1;
        if (!a.inputs[i]->requires_grad)
            return nb__error("nb_grad: input %d does not require grad", i + 1);
        a.grads[i] = NULL;
    }
    NB__NAMED("nb_grad", int,
              run_backward(&(pass_args){.fn = "nb_grad", .root = a.output, .seed = a.seed,
                                        .create_graph = a.create_graph,
                                        .retain = a.retain_graph, .n = a.n, .inputs = a.inputs,
                                        .grads = a.grads, .allow_unused = a.allow_unused}));
}
