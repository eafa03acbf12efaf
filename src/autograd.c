/* The engine: nb_apply runs an op and records a node; nb_backward and
 * nb_grad walk the recorded nodes in reverse topological order and call each
 * op's backward rule, which is itself written with ops (so create_graph just
 * leaves recording on). */
#include "internal.h"

#include <stdatomic.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

static _Thread_local bool grad_disabled; /* recording is on by default */
static _Atomic uint32_t pass_counter;

bool nb_set_grad_enabled(bool on)
{
    bool prev = !grad_disabled;
    grad_disabled = !on;
    return prev;
}

bool nb_is_grad_enabled(void) { return !grad_disabled; }

const nb_op *nb_op_of(const nb_tensor *t) { return t && t->node ? t->node->op : NULL; }

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

void nb__bstrides(const nb_tensor *t, int ndim, const int64_t *oshape, int64_t *st)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        int k = i - (ndim - t->ndim);
        if (k < 0 || t->shape[k] == 1) {
            st[i] = 0;
        } else {
            st[i] = s;
        }
        if (k >= 0)
            s *= t->shape[k];
        (void)oshape;
    }
}

int nb_shape_same(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    (void)attr;
    out->dtype = x[0]->dtype;
    out->ndim = x[0]->ndim;
    memcpy(out->shape, x[0]->shape, sizeof out->shape);
    return 0;
}

/* Called through nb_apply, which fills in the op for the message. */
static _Thread_local const nb_op *applying;

int nb_shape_broadcast(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)attr;
    char b[96], c[96];
    out->dtype = x[0]->dtype;
    out->ndim = x[0]->ndim;
    memcpy(out->shape, x[0]->shape, sizeof out->shape);
    for (int i = 1; i < n; i++) {
        if (x[i]->dtype != out->dtype)
            return nb_op_error(applying, "dtypes differ: %s %s and %s %s",
                               nb_dtype_name(x[0]->dtype), nb__shape_str(x[0], b),
                               nb_dtype_name(x[i]->dtype), nb__shape_str(x[i], c));
        int64_t shape[NB_MAX_DIMS];
        int nd = nb__broadcast_shape(out->ndim, out->shape, x[i]->ndim, x[i]->shape, shape);
        if (nd < 0) {
            char d[96];
            return nb_op_error(applying, "shapes do not broadcast: %s and %s",
                               nb__dims_str(out->ndim, out->shape, d), nb__shape_str(x[i], c));
        }
        out->ndim = nd;
        memcpy(out->shape, shape, sizeof shape);
    }
    return 0;
}

/* ---- apply ---- */

/* Kernels run with subnormal floats flushed to zero (as TensorFlow does):
 * Adam's moments of idle units decay into the subnormal range, where x86
 * arithmetic is ~100x slower. The caller's mode is restored afterwards. */
static void run_forward(const nb_op *op, nb_tensor *y, nb_tensor *const x[], int n,
                        const void *attr)
{
#if defined(__SSE2__)
    unsigned mode = _mm_getcsr();
    _mm_setcsr(mode | 0x8040u); /* FTZ (bit 15) and DAZ (bit 6) */
    op->forward(y, x, n, attr);
    _mm_setcsr(mode);
#else
    op->forward(y, x, n, attr);
#endif
}

nb_tensor *nb_apply(const nb_op *op, nb_tensor *const x[], int n, const void *attr)
{
    if (!op || !op->name || !op->shape || !op->forward) {
        nb__error("nb_apply: op is NULL or lacks a name, shape rule or forward");
        return NULL;
    }
    if (n < 0 || n > 64 || (op->arity >= 0 && n != op->arity) || (op->arity < 0 && n < 1)) {
        nb_op_error(op, "takes %d inputs, got %d", op->arity, n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!x || !x[i]) {
            if (!nb__has_error())
                nb_op_error(op, "input %d is NULL", i + 1);
            return NULL;
        }
    if (op->attr_size && !attr) {
        nb_op_error(op, "attributes are NULL");
        return NULL;
    }
    nb_graph *g = nb__graph();
    if (!g) {
        nb_op_error(op, "no current graph (create one with nb_graph_new)");
        return NULL;
    }
    nb_meta m;
    memset(&m, 0, sizeof m);
    const nb_op *outer = applying;
    applying = op;
    int rc = op->shape(&m, x, n, attr);
    applying = outer;
    if (rc != 0) {
        if (!nb__has_error())
            nb_op_error(op, "invalid inputs");
        return NULL;
    }
    if (!nb__dtype_ok(m.dtype) || m.ndim < 0 || m.ndim > NB_MAX_DIMS) {
        nb_op_error(op, "shape rule gave dtype %d with %d dimensions",
                  (int)m.dtype, m.ndim);
        return NULL;
    }
    nb_tensor *y = nb__new_graph_tensor(g, m.dtype, m.ndim, m.shape, !op->view);
    if (!y)
        return NULL;
    run_forward(op, y, x, n, attr);

    bool record = false;
    if (op->backward && !grad_disabled)
        for (int i = 0; i < n; i++)
            record |= x[i]->requires_grad;
    if (!record)
        return y;

    nb_node *node = nb__arena_alloc(g, sizeof *node);
    nb_tensor **xs = nb__arena_alloc(g, (size_t)n * sizeof *xs);
    uint32_t *vs = nb__arena_alloc(g, (size_t)(n + 1) * sizeof *vs);
    void *a = op->attr_size ? nb__arena_alloc(g, op->attr_size) : NULL;
    if (!node || !xs || !vs || (op->attr_size && !a))
        return NULL;
    for (int i = 0; i < n; i++) {
        xs[i] = x[i];
        vs[i] = *x[i]->version;
    }
    vs[n] = *y->version;
    if (a)
        memcpy(a, attr, op->attr_size);
    *node = (nb_node){.op = op, .n = n, .x = xs, .attr = a, .versions = vs,
                      .scope = nb__scope(g)};
    y->node = node;
    y->requires_grad = true;
    nb__count_node(g);
    return y;
}

/* ---- backward ---- */

/* Nodes reachable from root in topological order (inputs before outputs). */
typedef struct {
    nb_tensor **v;
    int64_t n, cap;
} tlist;

static int tlist_push(nb_graph *g, tlist *l, nb_tensor *t)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 256;
        nb_tensor **v = nb__arena_alloc(g, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        if (l->n)
            memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = t;
    return 0;
}

/* Iterative DFS; t->pass marks visited, t->acc doubles as the child cursor
 * until accumulation starts (reset afterwards). */
static int topo_sort(nb_graph *g, nb_tensor *root, uint32_t pass, tlist *order)
{
    tlist stack = {0};
    tlist cursor = {0}; /* parallel stack of child indices, stored as pointers */
    root->pass = pass;
    if (tlist_push(g, &stack, root) || tlist_push(g, &cursor, NULL))
        return -1;
    while (stack.n) {
        nb_tensor *t = stack.v[stack.n - 1];
        intptr_t i = (intptr_t)cursor.v[cursor.n - 1];
        if (t->node && i < t->node->n) {
            cursor.v[cursor.n - 1] = (nb_tensor *)(i + 1);
            nb_tensor *c = t->node->x[i];
            if (c->requires_grad && c->pass != pass) {
                c->pass = pass;
                c->acc = NULL;
                if (tlist_push(g, &stack, c) || tlist_push(g, &cursor, NULL))
                    return -1;
            }
            continue;
        }
        stack.n--;
        cursor.n--;
        if (tlist_push(g, order, t))
            return -1;
    }
    return 0;
}

static int check_versions(const nb_tensor *y, const char *fn)
{
    const nb_node *nd = y->node;
    unsigned saves = nd->op->saves;
    char b[96];
    if (saves & NB_SAVES_NONE)
        return 0;
    for (int i = 0; i <= nd->n; i++) {
        bool is_y = i == nd->n;
        if (saves && !(saves & (is_y ? NB_SAVES_Y : NB_SAVES_X(i))))
            continue;
        const nb_tensor *t = is_y ? y : nd->x[i];
        if (*t->version != nd->versions[i])
            return nb__error("%s: %s%s%s %s was modified in place after %s%s recorded it "
                             "(version %u, expected %u)",
                             fn, is_y ? "the output of " : "input '",
                             is_y ? nd->op->name : (t->name ? t->name : "?"), is_y ? "" : "'",
                             nb__shape_str(t, b), nb__op_prefix(nd->op), nd->op->name,
                             *t->version, nd->versions[i]);
    }
    return 0;
}

/* Adds g into the running gradient of t (recorded when create_graph). */
static int accumulate(nb_tensor *t, nb_tensor *grad)
{
    if (!t->acc) {
        t->acc = grad;
        return 0;
    }
    nb_tensor *s = nb_add(t->acc, grad);
    if (!s)
        return -1;
    t->acc = s;
    return 0;
}

/* Runs the backward pass from root. With leaves_grad, accumulates into the
 * .grad of leaves; otherwise leaves the gradients in ->acc for nb_grad. */
static int run_backward(const char *fn, nb_tensor *root, nb_tensor *seed, bool create_graph,
                        bool retain, bool leaves_grad, uint32_t *pass_out)
{
    char b[96], c[96];
    nb_graph *g = nb__graph();
    if (!g)
        return nb__error("%s: no current graph (create one with nb_graph_new)", fn);
    if (!root->requires_grad)
        return nb__error("%s: the tensor %s does not require grad (no input of its "
                         "history requires grad, or it was made with gradients off)",
                         fn, nb__shape_str(root, b));
    bool prev = nb_set_grad_enabled(create_graph);
    if (!seed) {
        if (root->numel != 1) {
            nb_set_grad_enabled(prev);
            return nb__error("%s: a seed gradient is needed for a non-scalar output %s",
                             fn, nb__shape_str(root, b));
        }
        seed = nb_full_like(root, 1.0);
    } else if (!nb__same_shape(seed, root) || seed->dtype != root->dtype) {
        nb_set_grad_enabled(prev);
        return nb__error("%s: seed %s %s does not match output %s %s", fn,
                         nb_dtype_name(seed->dtype), nb__shape_str(seed, b),
                         nb_dtype_name(root->dtype), nb__shape_str(root, c));
    }
    uint32_t pass = ++pass_counter;
    if (pass == 0)
        pass = ++pass_counter;
    *pass_out = pass;
    tlist order = {0};
    int rc = seed ? topo_sort(g, root, pass, &order) : -1;
    for (int64_t k = 0; rc == 0 && k < order.n; k++)
        order.v[k]->acc = NULL;
    if (rc == 0)
        root->acc = seed;

    for (int64_t k = order.n - 1; rc == 0 && k >= 0; k--) {
        nb_tensor *y = order.v[k];
        nb_node *nd = y->node;
        if (!nd || !y->acc)
            continue;
        if (nd->released) {
            rc = nb__error("%s: the graph through %s%s was already backpropagated and "
                           "freed; pass .retain_graph = true to the first backward to "
                           "go through it twice",
                           fn, nb__op_prefix(nd->op), nd->op->name);
            break;
        }
        if ((rc = check_versions(y, fn)) != 0)
            break;
        nb_tensor *dx[64] = {0};
        nd->op->backward(dx, y->acc, y, nd->x, nd->n, nd->attr);
        for (int i = 0; i < nd->n && rc == 0; i++) {
            nb_tensor *x = nd->x[i];
            if (!x->requires_grad)
                continue;
            if (!dx[i]) {
                if (nb__has_error())
                    rc = nb__error("%s: backward of %s%s failed: %s", fn,
                                   nb__op_prefix(nd->op), nd->op->name, nb_last_error());
                else
                    rc = nb__error("%s: backward of %s%s gave no gradient for input %d",
                                   fn, nb__op_prefix(nd->op), nd->op->name, i + 1);
            } else if (!nb__same_shape(dx[i], x) || dx[i]->dtype != x->dtype) {
                rc = nb__error("%s: backward of %s%s gave a %s %s gradient for input %d "
                               "of %s %s",
                               fn, nb__op_prefix(nd->op), nd->op->name,
                               nb_dtype_name(dx[i]->dtype), nb__shape_str(dx[i], b), i + 1,
                               nb_dtype_name(x->dtype), nb__shape_str(x, c));
            } else {
                rc = accumulate(x, dx[i]);
            }
        }
        if (rc == 0 && !retain && !create_graph)
            nd->released = true;
    }

    if (rc == 0 && leaves_grad) {
        for (int64_t k = 0; k < order.n && rc == 0; k++) {
            nb_tensor *t = order.v[k];
            if (t->node || !t->acc)
                continue;
            if (!t->grad) {
                t->grad = t->storage == NB_HEAP
                              ? nb__new_heap_tensor(t->dtype, t->ndim, t->shape)
                              : nb__new_graph_tensor(g, t->dtype, t->ndim, t->shape, true);
                if (!t->grad) {
                    rc = -1;
                    break;
                }
                memset(t->grad->data, 0, (size_t)t->numel * nb__dtype_size(t->dtype));
            }
            nb_tensor *gr = t->grad, *a = t->acc;
            if (t->dtype == NB_F64)
                for (int64_t i = 0; i < t->numel; i++)
                    ((double *)gr->data)[i] += ((const double *)a->data)[i];
            else
                for (int64_t i = 0; i < t->numel; i++)
                    ((float *)gr->data)[i] += ((const float *)a->data)[i];
            nb__bump(gr);
        }
    }
    nb_set_grad_enabled(prev);
    return rc;
}

int nb_backward_(nb_backward_args a)
{
    if (!a.root) {
        if (!nb__has_error())
            nb__error("nb_backward: tensor is NULL");
        return -1;
    }
    uint32_t pass;
    return run_backward("nb_backward", a.root, a.seed, false, a.retain_graph, true, &pass);
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
        if (!a.inputs[i])
            return nb__error("nb_grad: input %d is NULL", i + 1);
        if (!a.inputs[i]->requires_grad)
            return nb__error("nb_grad: input %d does not require grad", i + 1);
        a.grads[i] = NULL;
    }
    uint32_t pass;
    int rc = run_backward("nb_grad", a.output, a.seed, a.create_graph, a.retain_graph, false,
                          &pass);
    if (rc)
        return rc;
    for (int i = 0; i < a.n; i++) {
        nb_tensor *x = a.inputs[i];
        if (x->pass == pass && x->acc) {
            a.grads[i] = x->acc;
        } else if (!a.allow_unused) {
            char b[96];
            return nb__error("nb_grad: input %d %s is not used by the output "
                             "(set .allow_unused to get NULL instead)",
                             i + 1, nb__shape_str(x, b));
        }
    }
    return 0;
}
