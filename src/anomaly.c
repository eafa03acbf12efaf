/* Numeric faults: the scan for NaN and infinity, and anomaly mode.
 *
 * The scan reads bits. A float is NaN or infinite exactly when its exponent
 * bits are all ones, and then (bits & 0x7fffffff) + 0x00800000 carries into
 * the sign bit, which no finite value does; OR-ing that over a packed
 * buffer is three integer instructions per vector, with no compare or
 * branch per element (about 3 us for the 52 650 weights of the seed model).
 * Only when the sign bit shows up is the buffer searched for the first such
 * element. Strided views take the slow path, element by element.
 *
 * Anomaly mode (nb_set_detect_anomaly) is one flag in the thread's state.
 * When it is set, nb_apply calls nb__anomaly_forward after each op, and the
 * backward pass calls nb__anomaly_backward for each gradient a rule gives
 * (with the flag cleared while the rules run: their ops are judged by what
 * the rule gives, not one by one). Which op is reported:
 *
 *   - an output with a NaN is always reported, at the first op that holds
 *     one: it either produced it from inputs without NaN, or got it from an
 *     input that already held NaN (a data set or a parameter with a NaN,
 *     which no op made, or a tensor made while the mode was off); the
 *     message says which, naming that input;
 *   - an output with an infinity (and no NaN) is reported only when none of
 *     the inputs holds a NaN or an infinity: the op produced it (exp
 *     overflow, log(0), 1/0). An infinity passed on from an input (x plus a
 *     mask of -inf) is taken as meant, since nobody writes a NaN on
 *     purpose but people do write infinities;
 *   - nb_full_like and nb_scalar_like are never reported: their value is
 *     the one the caller asked for.
 *
 * In the backward the "inputs" of a rule are its incoming gradient, the
 * node's inputs and its output. The last report of a thread is kept with
 * the tensor it concerns, for pictures (nb_anomaly_tensor, nb_dot_opts). */
#include "internal.h"

#include <math.h>
#include <stdio.h>

#if defined(__GNUC__)
typedef uint32_t __attribute__((may_alias)) bits32;
typedef uint64_t __attribute__((may_alias)) bits64;
#define NB_BITS_SCAN 1
#endif

/* ---- the scan ---- */

#ifdef NB_BITS_SCAN
/* Whether n packed elements at p hold a NaN or an infinity. Sixteen
 * accumulators keep the ORs independent, so the loop runs at load speed. */
static bool any_bad_f32(const void *p, int64_t n)
{
    const bits32 *u = p;
    uint32_t a[16] = {0}, acc = 0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++)
            a[k] |= (u[i + k] & 0x7fffffffu) + 0x00800000u;
    for (; i < n; i++)
        acc |= (u[i] & 0x7fffffffu) + 0x00800000u;
    for (int k = 0; k < 16; k++)
        acc |= a[k];
    return acc >> 31;
}

static bool any_bad_f64(const void *p, int64_t n)
{
    const bits64 *u = p;
    const uint64_t mag = 0x7fffffffffffffffu, one = 0x0010000000000000u;
    uint64_t a[8] = {0}, acc = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            a[k] |= (u[i + k] & mag) + one;
    for (; i < n; i++)
        acc |= (u[i] & mag) + one;
    for (int k = 0; k < 8; k++)
        acc |= a[k];
    return acc >> 63;
}
#endif

/* The row-major index of the first element of t that is NaN (nan_only) or
 * not finite, or -1. */
static int64_t first_bad(const nb_tensor *t, bool nan_only)
{
    int64_t n = t->numel;
    if (t->dtype == NB_U8)
        return -1; /* bytes are always finite */
    if (t->contiguous) {
        const void *p = nb__ptr(t);
#ifdef NB_BITS_SCAN
        if (!(t->dtype == NB_F64 ? any_bad_f64(p, n) : any_bad_f32(p, n)))
            return -1;
#endif
        if (t->dtype == NB_F64) {
            const double *d = p;
            for (int64_t i = 0; i < n; i++)
                if (nan_only ? isnan(d[i]) : !isfinite(d[i]))
                    return i;
        } else {
            const float *f = p;
            for (int64_t i = 0; i < n; i++)
                if (nan_only ? isnan(f[i]) : !isfinite(f[i]))
                    return i;
        }
        return -1;
    }
    for (int64_t i = 0; i < n; i++) {
        double v = nb__get(t, i);
        if (nan_only ? isnan(v) : !isfinite(v))
            return i;
    }
    return -1;
}

int64_t nb__nonfinite(const nb_tensor *t) { return first_bad(t, false); }

int64_t nb_find_nonfinite(const nb_tensor *t)
{
    if (!t) {
        if (!nb__has_error())
            nb__error("nb_find_nonfinite: tensor is NULL");
        return -2;
    }
    return first_bad(t, false);
}

/* ---- anomaly mode ---- */

bool nb_set_detect_anomaly(bool on)
{
    nb_thread *th = nb__thread();
    bool prev = th->anomaly;
    th->anomaly = on;
    return prev;
}

bool nb_is_anomaly_enabled(void) { return nb__thread()->anomaly; }

/* The last report of this thread: the tensor it concerns, valid while the
 * graph it lives in is current and has the same contents (generation). */
static _Thread_local struct {
    nb_tensor *t;
    const nb_graph *g;
    uint64_t generation;
    char note[256];
} last;

nb_tensor *nb_anomaly_tensor(void)
{
    nb_graph *g = nb_graph_current();
    if (!last.t || !g || g != last.g || nb_graph_generation(g) != last.generation)
        return NULL;
    return last.t;
}

const char *nb__anomaly_note(const nb_tensor *t)
{
    return t && t == nb_anomaly_tensor() ? last.note : NULL;
}

static void remember(nb_graph *g, nb_tensor *t, const char *note)
{
    last.t = t;
    last.g = g;
    last.generation = nb_graph_generation(g);
    snprintf(last.note, sizeof last.note, "%s", note);
}

/* ---- messages ---- */

static const char *kind(double v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

/* The multi-index of row-major element i of t: "(3,1)". */
static const char *index_str(const nb_tensor *t, int64_t i, char *buf)
{
    int64_t at[NB_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        at[d] = t->shape[d] ? i % t->shape[d] : 0;
        i = t->shape[d] ? i / t->shape[d] : 0;
    }
    return nb_dims_str(t->ndim, at, buf);
}

/* " 'name'" or "". */
static const char *quoted(const nb_tensor *t, char *buf, size_t n)
{
    if (!t->name)
        return "";
    snprintf(buf, n, " '%.40s'", t->name);
    return buf;
}

/* "(scope dense_1/log, inputs (32,10), (10,))" for an op run in scope. */
static void site(char *buf, size_t n, const nb_op *op, const char *scope,
                 nb_tensor *const x[], int nx)
{
    int k = scope ? snprintf(buf, n, "(scope %s/%s, ", scope, op->name) : snprintf(buf, n, "(");
    k += snprintf(buf + k, n - (size_t)k, nx == 1 ? "input " : "inputs ");
    for (int i = 0; i < nx && (size_t)k < n; i++) {
        char s[NB_SHAPE_STR_LEN];
        k += snprintf(buf + k, n - (size_t)k, "%s%s", i ? ", " : "", nb_shape_str(x[i], s));
    }
    if ((size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ")");
}

/* The first of the tensors from[0..n) that holds a NaN (nan_only) or any
 * non-finite value; *at gets the element. -1 when none does. */
static int first_source(nb_tensor *const from[], int n, bool nan_only, int64_t *at)
{
    for (int i = 0; i < n; i++)
        if (from[i] && (*at = first_bad(from[i], nan_only)) >= 0)
            return i;
    return -1;
}

/* Whether out (made from from[0..n)) is reported, by the rule at the top;
 * *at gets the element, *src the input it came from (-1: produced). */
static bool reported(const nb_tensor *out, nb_tensor *const from[], int n, int64_t *at,
                     int *src, int64_t *src_at)
{
    if ((*at = first_bad(out, false)) < 0)
        return false;
    int64_t nan = first_bad(out, true);
    if (nan >= 0) {
        *at = nan;
        *src = first_source(from, n, true, src_at);
        return true;
    }
    *src = -1;
    return first_source(from, n, false, src_at) < 0;
}

extern const nb_op nb_op_full_like; /* ops/full.c */

int nb__anomaly_forward(const nb_op *op, nb_graph *g, nb_tensor *y, nb_tensor *const x[], int n)
{
    int64_t at, src_at;
    int src;
    if (op == &nb_op_full_like || !reported(y, x, n, &at, &src, &src_at))
        return 0;
    char where[256], e[NB_SHAPE_STR_LEN], note[256];
    const char *v = kind(nb__get(y, at));
    site(where, sizeof where, op, nb__scope(g), x, n);
    index_str(y, at, e);
    if (src < 0) {
        nb_op_error(op, "produced %s in the forward at element %s %s; anomaly mode is on", v, e,
                    where);
    } else {
        char s[NB_SHAPE_STR_LEN], f[NB_SHAPE_STR_LEN], nm[48];
        nb_op_error(op, "got NaN in the forward at element %s from input %d%s %s, which already "
                    "held NaN at element %s %s; anomaly mode is on",
                    e, src + 1, quoted(x[src], nm, sizeof nm), nb_shape_str(x[src], s),
                    index_str(x[src], src_at, f), where);
    }
    snprintf(note, sizeof note, "%s in the forward at %s", v, e);
    remember(g, y, note);
    return -1;
}

int nb__anomaly_backward(const char *fn, nb_graph *g, nb_tensor *y, int i, nb_tensor *gi,
                         nb_tensor *dy)
{
    const nb_node *nd = y->node;
    nb_tensor *from[NB_MAX_INPUTS + 2];
    from[0] = dy;
    for (int k = 0; k < nd->n; k++)
        from[k + 1] = nd->x[k];
    from[nd->n + 1] = y;
    int64_t at, src_at;
    int src;
    if (!reported(gi, from, nd->n + 2, &at, &src, &src_at))
        return 0;
    char where[256], e[NB_SHAPE_STR_LEN], note[256], why[160] = "";
    const char *v = kind(nb__get(gi, at)), *pre = nb__op_prefix(nd->op);
    site(where, sizeof where, nd->op, nd->scope, nd->x, nd->n);
    index_str(gi, at, e);
    if (src >= 0) {
        char s[NB_SHAPE_STR_LEN], f[NB_SHAPE_STR_LEN], nm[48];
        nb_tensor *t = from[src];
        if (src == 0)
            snprintf(why, sizeof why, " from its incoming gradient %s, which already held NaN at "
                     "element %s", nb_shape_str(t, s), index_str(t, src_at, f));
        else if (src == nd->n + 1)
            snprintf(why, sizeof why, " from its forward output %s, which already held NaN at "
                     "element %s", nb_shape_str(t, s), index_str(t, src_at, f));
        else
            snprintf(why, sizeof why, " from its input %d%s %s, which already held NaN at "
                     "element %s", src, quoted(t, nm, sizeof nm), nb_shape_str(t, s),
                     index_str(t, src_at, f));
    }
    nb__error("%s: the backward of %s%s %s %s in the gradient of input %d at element %s%s %s; "
              "anomaly mode is on",
              fn, pre, nd->op->name, src < 0 ? "produced" : "gave", v, i + 1, e, why, where);
    snprintf(note, sizeof note, "%s in the backward, gradient of input %d at %s", v, i + 1, e);
    remember(g, y, note);
    return -1;
}

int nb__anomaly_sum(const char *fn, nb_graph *g, nb_tensor *x, nb_tensor *sum, nb_tensor *a,
                    nb_tensor *b)
{
    int64_t at, src_at;
    int src;
    if (!reported(sum, (nb_tensor *const[]){a, b}, 2, &at, &src, &src_at))
        return 0;
    char e[NB_SHAPE_STR_LEN], s[NB_SHAPE_STR_LEN], nm[48], what[160], note[256];
    const char *v = kind(nb__get(sum, at));
    if (x->node)
        snprintf(what, sizeof what, "the output %s of %s%s%s%s", nb_shape_str(x, s),
                 nb__op_prefix(x->node->op), x->node->op->name,
                 x->node->scope ? " in scope " : "", x->node->scope ? x->node->scope : "");
    else
        snprintf(what, sizeof what, "the leaf%s %s", quoted(x, nm, sizeof nm), nb_shape_str(x, s));
    nb__error("%s: the gradients reaching %s add up to %s at element %s; anomaly mode is on", fn,
              what, v, index_str(sum, at, e));
    snprintf(note, sizeof note, "its gradients add up to %s at %s", v, e);
    remember(g, x, note);
    return -1;
}
