/* The elementwise contract (nb_op.elementwise), part of nb_check_contract.
 *
 * A fused function (src/fused.c) runs an op declaring .elementwise by
 * calling its own kernel on blocks of the flat index range, as 1-d packed
 * views, and on one-element operands as 0-d views; whatever the op does
 * beyond elementwise is then wrong without a word. So on each example (in
 * f64, and in f32 when the op has an f32 kernel) the op applied by nb_apply
 * to the example's inputs gives the reference y, and:
 *   - y's shape is the NumPy broadcast of the inputs' shapes, and y is
 *     computed by a kernel (not a view of an input) that leaves its inputs
 *     as they were;
 *   - the inputs broadcast to y's shape and packed, the kernel run directly
 *     (as fused functions run it) on them as one 1-d block; with the
 *     one-element inputs as 0-d views; on each element alone, every operand
 *     0-d; on blocks of 2 and of 5 elements; and on the elements in reversed
 *     and in shuffled order, gives y's elements, bit for bit (two NaNs match
 *     whatever their payloads), each where it belongs;
 *   - the kernel fails in none of these runs (nb_op_error) and leaves its
 *     inputs as they were.
 * The first run that differs is reported: the example (and f32), the run,
 * the output element and both values. */
#include "check_internal.h"

#include <math.h>

#define NA NB_CONTRACT_NOT_APPLICABLE
#define HELD NB_CONTRACT_HELD
#define BROKEN NB_CONTRACT_BROKEN
#define CANNOT (-1)
#define DETAIL 160 /* sizeof nb_contract_report.detail[0] */

/* One example in one dtype: the op's output and the packed inputs. */
typedef struct {
    const void *attr;
    int n;
    char who[64];                 /* "example 2", "example 2 (f32)", "made-up inputs" */
    nb_kernel kernel;
    nb_tensor *y;                 /* the op's own output */
    int64_t numel;                /* y's elements */
    size_t ey, ex[NB_MAX_INPUTS]; /* bytes per element */
    nb_dtype ty, tx[NB_MAX_INPUTS];
    unsigned one;                 /* NB_INPUT(i): inputs of one element */
    char *in[NB_MAX_INPUTS];      /* the inputs broadcast to y's shape, packed */
    char *keep[NB_MAX_INPUTS];    /* a copy of in[], to see writes */
    char *moved[NB_MAX_INPUTS];   /* in[] in another order */
    int64_t *order;               /* that order: moved[j] = in[order[j]] */
    char *out;                    /* a run's output */
    char *d;                      /* the detail */
} ew;


static double value(const char *p, nb_dtype t, int64_t j)
{
    if (t == NB_F64)
        return ((const double *)(const void *)p)[j];
    if (t == NB_F32)
        return ((const float *)(const void *)p)[j];
    return ((const unsigned char *)p)[j];
}

/* Unused dimensions of size 1 (and stride 0): a kernel reading past ndim
 * computes something wrong rather than dividing by 0. */
static void set_view(nb_view *v, nb_dtype t, char *data, int64_t len, bool zero_d)
{
    memset(v, 0, sizeof *v);
    for (int d = 0; d < NB_MAX_DIMS; d++)
        v->shape[d] = 1;
    v->data = data;
    v->dtype = t;
    v->numel = zero_d ? 1 : len;
    v->ndim = zero_d ? 0 : 1;
    v->shape[0] = zero_d ? 1 : len;
    v->strides[0] = zero_d ? 0 : 1;
}

/* The kernel on elements [lo, lo + len) of src into out: 1-d views, or 0-d
 * ones (len 1) when zero_d; the inputs in scalars as 0-d views of their one
 * element. False with the detail filled when the kernel failed. */
static bool piece(ew *w, char *const src[], int64_t lo, int64_t len, bool zero_d,
                  unsigned scalars, const char *what)
{
    nb_view y, x[NB_MAX_INPUTS];
    set_view(&y, w->ty, w->out + (size_t)lo * w->ey, len, zero_d);
    for (int i = 0; i < w->n; i++) {
        bool s = scalars & NB_INPUT(i);
        set_view(&x[i], w->tx[i], src[i] + (s ? 0 : (size_t)lo * w->ex[i]), len, zero_d || s);
    }
    nb_thread *th = nb__thread();
    uint64_t errors = th->errors;
    w->kernel(&y, x, w->n, w->attr);
    if (th->errors == errors)
        return true;
    say(BROKEN, w->d, "%s, %s: the kernel fails: %.80s", w->who, what,
        nb_last_error() ? nb_last_error() : "no message");
    nb_clear_error();
    return false;
}

/* After a run: the inputs as they were, and output element j equal to y's
 * element order[j] (j when order is NULL). HELD or BROKEN. */
static int compare(ew *w, const int64_t *order, const char *what)
{
    for (int i = 0; i < w->n; i++)
        for (int64_t j = 0; j < w->numel; j++)
            if (memcmp(w->in[i] + (size_t)j * w->ex[i], w->keep[i] + (size_t)j * w->ex[i],
                       w->ex[i]))
                return say(BROKEN, w->d, "%s, %s: the kernel writes to input %d (element %lld)",
                           w->who, what, i + 1, (long long)j);
    const char *y = nb__ptr(w->y);
    for (int64_t j = 0; j < w->numel; j++) {
        int64_t k = order ? order[j] : j;
        double got = value(w->out, w->ty, j), want = value(y, w->ty, k);
        if (memcmp(w->out + (size_t)j * w->ey, y + (size_t)k * w->ey, w->ey) &&
            !(isnan(got) && isnan(want)))
            return say(BROKEN, w->d, "%s, %s: output element %lld is %.17g, not %.17g as on the "
                       "whole", w->who, what, (long long)k, got, want);
    }
    return HELD;
}

static int run(ew *w, char *const src[], int64_t block, bool zero_d, unsigned scalars,
               const int64_t *order, const char *what)
{
    memset(w->out, 0xa5, (size_t)w->numel * w->ey); /* what no kernel wrote stands out */
    for (int64_t lo = 0; lo < w->numel; lo += block)
        if (!piece(w, src, lo, w->numel - lo < block ? w->numel - lo : block, zero_d, scalars,
                   what))
            return BROKEN;
    return compare(w, order, what);
}

/* Broadcasts c (of its own shape) to y's shape, packed, into dst. */
static void spread(const nb_tensor *c, const nb_tensor *y, char *dst)
{
    size_t es = nb__dtype_size(c->dtype);
    int64_t idx[NB_MAX_DIMS] = {0};
    const char *src = nb__ptr(c);
    for (int64_t j = 0; j < y->numel; j++) {
        int64_t off = 0;
        for (int d = 0; d < c->ndim; d++) {
            int yd = y->ndim - c->ndim + d;
            off = off * c->shape[d] + (c->shape[d] == 1 ? 0 : idx[yd]);
        }
        memcpy(dst + (size_t)j * es, src + (size_t)off * es, es);
        for (int d = y->ndim - 1; d >= 0 && ++idx[d] == y->shape[d]; d--)
            idx[d] = 0;
    }
}

/* The runs of the header comment, on w->y and the packed inputs. */
static int runs(ew *w, uint64_t seed)
{
    int64_t N = w->numel;
    int st = run(w, w->in, N, false, 0, NULL, "the whole as one 1-d block");
    if (st == HELD && w->one && N > 1)
        st = run(w, w->in, N, false, w->one, NULL, "one-element inputs as 0-d views");
    if (st == HELD)
        st = run(w, w->in, 1, true, 0, NULL, "each element alone (0-d)");
    if (st == HELD && N > 2)
        st = run(w, w->in, 2, false, 0, NULL, "blocks of 2");
    if (st == HELD && N > 5)
        st = run(w, w->in, 5, false, 0, NULL, "blocks of 5");
    nb_rng rng = nb_rng_new(seed ^ 0xe1e7u);
    for (int shuffled = 0; st == HELD && shuffled < 2 && N > 1; shuffled++) {
        for (int64_t j = 0; j < N; j++)
            w->order[j] = shuffled ? j : N - 1 - j;
        for (int64_t j = N - 1; shuffled && j > 0; j--) {
            int64_t k = (int64_t)nb_rng_below(&rng, (uint64_t)j + 1), t = w->order[j];
            w->order[j] = w->order[k];
            w->order[k] = t;
        }
        for (int i = 0; i < w->n; i++)
            for (int64_t j = 0; j < N; j++)
                memcpy(w->moved[i] + (size_t)j * w->ex[i],
                       w->in[i] + (size_t)w->order[j] * w->ex[i], w->ex[i]);
        st = run(w, w->moved, N, false, 0, w->order,
                 shuffled ? "the elements shuffled" : "the elements reversed");
    }
    return st;
}

/* The op's own output: of the inputs' broadcast shape, made by a kernel
 * that left its inputs (c, copies of x) as they were. */
static int whole(ew *w, nb_tensor *const x[], nb_tensor *const c[])
{
    char a[NB_SHAPE_STR_LEN], b[NB_SHAPE_STR_LEN];
    int64_t shape[NB_MAX_DIMS] = {0}, prev[NB_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < w->n; i++) {
        memcpy(prev, shape, sizeof shape); /* the output may not alias an operand */
        if ((nd = nb__broadcast_shape(nd, prev, c[i]->ndim, c[i]->shape, shape)) < 0)
            return say(BROKEN, w->d, "%s: the inputs do not broadcast (input %d is %s), yet the "
                       "op gives %s", w->who, i + 1, nb_shape_str(c[i], a),
                       nb_shape_str(w->y, b));
    }
    bool same = nd == w->y->ndim;
    for (int d = 0; same && d < nd; d++)
        same = shape[d] == w->y->shape[d];
    if (!same)
        return say(BROKEN, w->d, "%s: the output is %s, not the inputs' broadcast shape %s",
                   w->who, nb_shape_str(w->y, a), nb_dims_str(nd, shape, b));
    for (int i = 0; i < w->n; i++)
        if (w->y->storage == c[i]->storage)
            return say(BROKEN, w->d, "%s: the output is a view of input %d (no kernel runs, "
                       "and fused functions run kernels)", w->who, i + 1);
    for (int i = 0; i < w->n; i++)
        for (int64_t j = 0; j < c[i]->numel; j++) {
            double v = nb__get(x[i], j);
            if (nb__get(c[i], j) != (c[i]->dtype == NB_F32 ? (double)(float)v : v))
                return say(BROKEN, w->d, "%s, the op itself: the kernel writes to input %d "
                           "(element %lld)", w->who, i + 1, (long long)j);
        }
    return HELD;
}

/* Example x (f64 heap tensors) in dtype t: HELD, BROKEN, NA (the op has no
 * kernel or refuses the inputs in f32), or CANNOT (message filled). */
static int in_dtype(const nb_op *op, const void *attr, nb_tensor *const x[], int n,
                    nb_dtype t, const char *who, uint64_t seed, char *d, char *message)
{
    nb_tensor *c[NB_MAX_INPUTS] = {0};
    nb_check_report cr;
    ew w = {.attr = attr, .n = n, .d = d};
    snprintf(w.who, sizeof w.who, "%s%s", who, t == NB_F32 ? " (f32)" : "");
    nb_graph *g = nb_graph_new();
    int st = HELD;
    bool ok = g && nb__check_copies(x, n, t, c, &cr);
    nb_clear_error();
    if (ok && !(w.y = nb_apply(op, c, n, attr)) && t == NB_F64)
        snprintf(message, 256, "%s %s: %.200s", op->name, who,
                 nb_last_error() ? nb_last_error() : "the op failed");
    if (!ok || !w.y) {
        st = !ok ? CANNOT : t == NB_F64 ? CANNOT : NA;
        if (!ok)
            snprintf(message, 256, "%s %s: out of memory", op->name, who);
        nb_clear_error();
        goto out;
    }
    if ((st = whole(&w, x, c)) != HELD)
        goto out;
    w.numel = w.y->numel;
    w.ty = w.y->dtype;
    w.ey = nb__dtype_size(w.ty);
    w.kernel = op->forward[w.ty];
    if (!w.numel)
        goto out;
    size_t bytes = (size_t)w.numel * (w.ey + sizeof *w.order);
    for (int i = 0; i < n; i++) {
        w.tx[i] = c[i]->dtype;
        w.ex[i] = nb__dtype_size(w.tx[i]);
        w.one |= c[i]->numel == 1 ? NB_INPUT(i) : 0u;
        bytes += 3 * (size_t)w.numel * w.ex[i];
    }
    char *p = nb__alloc(bytes), *q = p;
    if (!p) {
        snprintf(message, 256, "%s %s: out of memory", op->name, who);
        st = CANNOT;
        goto out;
    }
    w.order = (int64_t *)(void *)q;
    q += (size_t)w.numel * sizeof *w.order;
    w.out = q;
    q += (size_t)w.numel * w.ey;
    for (int i = 0; i < n; i++) {
        size_t m = (size_t)w.numel * w.ex[i];
        w.in[i] = q, w.keep[i] = q + m, w.moved[i] = q + 2 * m;
        q += 3 * m;
        spread(c[i], w.y, w.in[i]);
        memcpy(w.keep[i], w.in[i], m);
    }
    st = runs(&w, seed);
    nb__free(p);
out:
    nb__check_free_copies(x, c, n);
    nb_graph_free(g);
    return st;
}

int nb__check_elementwise(const nb_op *op, const void *attr, nb_tensor *const x[], int n,
                          const char *who, uint64_t seed, char *detail, char *message)
{
    int st = in_dtype(op, attr, x, n, NB_F64, who, seed, detail, message);
    if (st == HELD && op->forward[NB_F32]) {
        char d[DETAIL] = "";
        int s = in_dtype(op, attr, x, n, NB_F32, who, seed, d, message);
        if (s == BROKEN || s == CANNOT)
            memcpy(detail, d, DETAIL);
        st = s == NA ? HELD : s;
    }
    return st;
}

int nb__check_elementwise_made_up(const nb_op *op, uint64_t seed, char *detail)
{
    int n = op->arity > 0 ? op->arity : 2;
    if (op->attr_size)
        return say(NA, detail, "no examples, and made-up inputs lack the attributes "
                   "(nb_op.attr_size)");
    nb_op_example ex = {.n = n};
    for (int i = 0; i < n; i++) {
        ex.ndim[i] = 2;
        ex.shape[i][0] = 3;
        ex.shape[i][1] = 5;
    }
    nb_tensor *x[NB_MAX_INPUTS] = {0};
    nb_check_report cr;
    char message[256] = "";
    int st = nb__check_inputs(op, &ex, seed, x, &cr)
                 ? nb__check_elementwise(op, NULL, x, n, "made-up inputs (3,5)", seed, detail,
                                         message)
                 : CANNOT;
    if (st == CANNOT)
        st = say(NA, detail, "no examples, and made-up inputs (3,5) fail: %.100s",
                 message[0] ? message : cr.message);
    for (int i = 0; i < n; i++)
        nb_free(x[i]);
    nb_clear_error();
    return st;
}
