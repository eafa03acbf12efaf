/* Max pooling of channels-last (N,H,W,C) tensors, as two linear ops that are
 * each other's adjoint, so that max pooling differentiates to any order:
 *   y = pool_select(x, g)    y[n,i,j,c] = g[n, a(n,i,j,c), c]
 *        dg = pool_scatter(x, dy)
 *   z = pool_scatter(x, d)   z = 0 shaped like x;  z[n, a(n,i,j,c), c] += d[n,i,j,c]
 *        dd = pool_select(x, dz)
 *   max_pool2d(x) = pool_select(x, x)
 * where a(n,i,j,c) is the (h,w) of the first maximum of x[n,.,.,c] in window
 * (i,j), in row-major window order (PyTorch's tie rule); a NaN is the
 * maximum (the first NaN wins); padded positions never win. Window i covers
 * rows i*sh - pt .. i*sh - pt + kh - 1, clipped to [0, H), so
 * Ho = (H + pt + pb - kh) / sh + 1, and likewise for columns. x only decides
 * where (a is piecewise constant in x), so it is a non-differentiable input
 * of both ops, and max_pool2d's gradient reaches x through g. Every window
 * holds at least one real element: each pad is below the window's size. */
#include "internal.h"

#include <math.h>

typedef struct {
    int64_t k[2], s[2]; /* window and stride, (h, w) */
    int64_t pad[4];     /* top, bottom, left, right */
} pool_attr;

extern const nb_op nb_op_pool_select, nb_op_pool_scatter; /* below */

/* Checks a against x (4-D) under the public name fn; the output's (Ho, Wo)
 * into out. Limits keep every window position in an int32 and every sum of
 * sizes far from overflow. */
static int pool_check(const char *fn, const nb_tensor *x, const pool_attr *a, int64_t out[2])
{
    char b[NB_SHAPE_STR_LEN];
    if (x->ndim != 4)
        return nb__shape_error("%s: x must be 4-D (N,H,W,C), got %s", fn, nb_shape_str(x, b));
    for (int d = 0; d < 2; d++) {
        if (a->k[d] < 1 || a->k[d] > INT32_MAX || a->s[d] < 1 || a->s[d] > INT32_MAX)
            return nb__error("%s: kernel (%lld,%lld) and stride (%lld,%lld) must be in "
                             "[1, 2^31)", fn, (long long)a->k[0], (long long)a->k[1],
                             (long long)a->s[0], (long long)a->s[1]);
    }
    if (a->k[0] * a->k[1] > INT32_MAX)
        return nb__error("%s: kernel (%lld,%lld) has more than 2^31 - 1 positions", fn,
                         (long long)a->k[0], (long long)a->k[1]);
    for (int p = 0; p < 4; p++)
        if (a->pad[p] < 0 || a->pad[p] >= a->k[p / 2])
            return nb__error("%s: padding (%lld,%lld,%lld,%lld) (top, bottom, left, right) "
                             "must be in [0, kernel - 1] for kernel (%lld,%lld)",
                             fn, (long long)a->pad[0], (long long)a->pad[1],
                             (long long)a->pad[2], (long long)a->pad[3], (long long)a->k[0],
                             (long long)a->k[1]);
    for (int d = 0; d < 2; d++) {
        int64_t span = x->shape[1 + d] + a->pad[2 * d] + a->pad[2 * d + 1];
        if (span < a->k[d])
            return nb__shape_error("%s: a %lldx%lld window does not fit in x %s with padding "
                                   "(%lld,%lld,%lld,%lld)", fn, (long long)a->k[0],
                                   (long long)a->k[1], nb_shape_str(x, b),
                                   (long long)a->pad[0], (long long)a->pad[1],
                                   (long long)a->pad[2], (long long)a->pad[3]);
        out[d] = (span - a->k[d]) / a->s[d] + 1;
    }
    return 0;
}

/* ---- shape rules ---- */

static int select_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    int64_t o[2];
    if (pool_check("nb_pool_select", x[0], attr, o))
        return -1;
    if (x[1]->dtype != x[0]->dtype)
        return nb__dtype_error("nb_pool_select: dtypes differ: x is %s, g is %s",
                               nb_dtype_name(x[0]->dtype), nb_dtype_name(x[1]->dtype));
    if (!nb__same_shape(x[0], x[1]))
        return nb__shape_error("nb_pool_select: g %s must have x's shape %s",
                               nb_shape_str(x[1], b), nb_shape_str(x[0], c));
    nb_shape_same(out, x, 1, NULL);
    out->shape[1] = o[0];
    out->shape[2] = o[1];
    return 0;
}

static int scatter_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN], e[NB_SHAPE_STR_LEN];
    int64_t o[2];
    if (pool_check("nb_pool_scatter", x[0], attr, o))
        return -1;
    if (x[1]->dtype != x[0]->dtype)
        return nb__dtype_error("nb_pool_scatter: dtypes differ: x is %s, d is %s",
                               nb_dtype_name(x[0]->dtype), nb_dtype_name(x[1]->dtype));
    const int64_t *s = x[0]->shape;
    int64_t want[4] = {s[0], o[0], o[1], s[3]};
    if (x[1]->ndim != 4 || memcmp(x[1]->shape, want, sizeof want) != 0)
        return nb__shape_error("nb_pool_scatter: d %s must have the pooled shape %s of x %s",
                               nb_shape_str(x[1], b), nb_dims_str(4, want, c),
                               nb_shape_str(x[0], e));
    nb_shape_same(out, x, 1, NULL);
    return 0;
}

/* Rows b of x, g (or d) and the output go together, whatever the attributes. */
static unsigned pool_batch(nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    return NB_INPUT(0) | NB_INPUT(1);
}

/* ---- kernels ---- */

/* The clipped window (i, j): rows [h0, h1), columns [w0, w1). */
typedef struct {
    int64_t h0, h1, w0, w1;
} window;

static window window_at(const pool_attr *a, int64_t H, int64_t W, int64_t i, int64_t j)
{
    int64_t h = i * a->s[0] - a->pad[0], w = j * a->s[1] - a->pad[2];
    return (window){h < 0 ? 0 : h, h + a->k[0] < H ? h + a->k[0] : H,
                    w < 0 ? 0 : w, w + a->k[1] < W ? w + a->k[1] : W};
}

/* The loops over one window position's channels, packed in NHWC: each is
 * a helper of its own with restrict pointers and no short-circuit (& and |
 * instead of && and ||), so that gcc vectorises it; a branch per channel
 * on where the maximum is mispredicts half the time. A later element wins
 * only when it is greater, or a NaN over a number: the first maximum, NaN
 * first. */
#define ROW_FNS(T)                                                             \
    static inline void max_row_##T(int64_t C, T *restrict best, const T *restrict r) \
    {                                                                          \
        for (int64_t c = 0; c < C; c++) {                                      \
            T v = r[c], b = best[c];                                           \
            best[c] = ((v > b) | ((v != v) & (b == b))) ? v : b;               \
        }                                                                      \
    }                                                                          \
    static inline void arg_row_##T(int64_t C, T *restrict best, int32_t *restrict arg, \
                                   const T *restrict r, int32_t p)             \
    {                                                                          \
        for (int64_t c = 0; c < C; c++) {                                      \
            T v = r[c], b = best[c];                                           \
            int win = (v > b) | ((v != v) & (b == b));                         \
            best[c] = win ? v : b;                                             \
            arg[c] = win ? p : arg[c];                                         \
        }                                                                      \
    }                                                                          \
    static inline void first_row_##T(int64_t C, T *restrict best, int32_t *restrict arg, \
                                     const T *restrict r)                      \
    { /* a loop, not memcpy and memset: rows are short (C = 32) */             \
        for (int64_t c = 0; c < C; c++)                                        \
            best[c] = r[c];                                                    \
        if (arg)                                                               \
            for (int64_t c = 0; c < C; c++)                                    \
                arg[c] = 0;                                                    \
    }                                                                          \
    static inline void put_row_##T(int64_t C, T *restrict z, const int32_t *restrict arg, \
                                   const T *restrict d, int32_t p)             \
    {                                                                          \
        for (int64_t c = 0; c < C; c++) {                                      \
            T v = d[c]; /* read unconditionally: a conditional load stays scalar */ \
            z[c] = arg[c] == p ? v : 0;                                        \
        }                                                                      \
    }                                                                          \
    static inline void add_row_##T(int64_t C, T *restrict z, const int32_t *restrict arg, \
                                   const T *restrict d, int32_t p)             \
    {                                                                          \
        for (int64_t c = 0; c < C; c++) {                                      \
            T v = d[c];                                                        \
            z[c] += arg[c] == p ? v : 0;                                       \
        }                                                                      \
    }
ROW_FNS(float)
ROW_FNS(double)

/* Per channel c of one window (xw: its first element; xh, xs, xc: x's
 * strides), the first maximum into best[c] and, when arg is not NULL, its
 * position (row-major in the clipped window) into arg[c]. Strided channels
 * are gathered into tmp first, so that one set of row loops serves all. */
#define ARGMAX_FN(name, T)                                                     \
    static inline __attribute__((always_inline)) void name(int64_t C, const T *xw, int64_t xh, int64_t xs, int64_t xc, \
                     const window *w, T *restrict best, int32_t *restrict arg, T *tmp) \
    {                                                                          \
        int64_t wl = w->w1 - w->w0;                                            \
        for (int64_t h = 0, p = 0; h < w->h1 - w->h0; h++)                     \
            for (int64_t q = 0; q < wl; q++, p++) {                            \
                const T *r = xw + h * xh + q * xs;                             \
                if (xc != 1) {                                                 \
                    for (int64_t c = 0; c < C; c++)                            \
                        tmp[c] = r[c * xc];                                    \
                    r = tmp;                                                   \
                }                                                              \
                if (p == 0) {                                                  \
                    first_row_##T(C, best, arg, r);                            \
                } else if (arg) {                                              \
                    arg_row_##T(C, best, arg, r, (int32_t)p);                  \
                } else {                                                       \
                    max_row_##T(C, best, r);                                   \
                }                                                              \
            }                                                                  \
    }
ARGMAX_FN(argmax_f32, float)
ARGMAX_FN(argmax_f64, double)

/* What one thread of a pooling kernel needs: the views, the attributes,
 * and per-thread scratch of C elements each (arg, tmp, best, dt). */
typedef struct {
    const nb_view *y, *x;
    const pool_attr *a;
    int32_t *arg;
    void *tmp, *best, *dt;
    bool same;
} pool_job;

/* Scratch for nt threads of C channels: tmp, best and dt of elem bytes and
 * arg (unless no_arg); false when it fails. */
static bool pool_scratch(pool_job *j, int nt, int64_t C, size_t elem, bool no_arg)
{
    size_t n = (size_t)nt * (size_t)(C > 0 ? C : 1);
    j->arg = no_arg ? NULL : nb_kernel_scratch(n * sizeof *j->arg);
    j->tmp = nb_kernel_scratch(n * elem);
    j->best = nb_kernel_scratch(n * elem);
    j->dt = nb_kernel_scratch(n * elem);
    return (no_arg || j->arg) && j->tmp && j->best && j->dt;
}

/* Runs rows (a select or scatter kernel's images [b0, b1)) on the threads
 * the work takes, each with its scratch. A select whose g is x itself
 * keeps no positions (the maxima are the values). */
static void pool_run(const nb_view *y, const nb_view *x, const pool_attr *a, bool select,
                     size_t elem, void (*rows)(void *job, int t, int64_t b0, int64_t b1))
{
    if (y->numel == 0)
        return;
    const int64_t *xs = x[0].strides, *gs = x[1].strides;
    pool_job j = {.y = y, .x = x, .a = a,
                  .same = select && x[0].data == x[1].data &&
                          memcmp(xs, gs, 4 * sizeof *xs) == 0};
    int nt = nb__kernel_threads(select ? x[0].numel : y->numel, y->shape[0]);
    if (pool_scratch(&j, nt, y->shape[3], elem, j.same))
        nb__parallel_rows(nt, y->shape[0], rows, &j);
}

/* y[n,i,j,:] = g at the maxima of x's window, for images [b0, b1). When g
 * is x itself (max pooling's forward), the maxima are the values: no
 * positions are kept. */
#define SELECT_KERNEL(fn, T, argmax)                                           \
    NB_KERNEL_TARGETS static void fn##_rows(void *job, int t, int64_t b0, int64_t b1) \
    {                                                                          \
        const pool_job *jb = job;                                              \
        const nb_view *y = jb->y, *xv = &jb->x[0], *gv = &jb->x[1];            \
        const pool_attr *a = jb->a;                                            \
        int64_t Ho = y->shape[1], Wo = y->shape[2], C = y->shape[3];           \
        int64_t H = xv->shape[1], W = xv->shape[2];                            \
        const int64_t *xs = xv->strides, *gs = gv->strides;                    \
        bool same = jb->same;                                                  \
        int32_t *arg = same ? NULL : jb->arg + t * C;                          \
        T *tmp = (T *)jb->tmp + t * C;                                         \
        const T *X = xv->data, *G = gv->data;                                  \
        T *Y = y->data;                                                        \
        for (int64_t b = b0; b < b1; b++)                                      \
            for (int64_t i = 0; i < Ho; i++)                                   \
                for (int64_t j = 0; j < Wo; j++) {                             \
                    window w = window_at(a, H, W, i, j);                       \
                    T *yo = Y + ((b * Ho + i) * Wo + j) * C;                   \
                    argmax(C, X + b * xs[0] + w.h0 * xs[1] + w.w0 * xs[2], xs[1], xs[2], \
                           xs[3], &w, yo, arg, tmp);                           \
                    if (same)                                                  \
                        continue;                                              \
                    const T *gw = G + b * gs[0] + w.h0 * gs[1] + w.w0 * gs[2]; \
                    int64_t wl = w.w1 - w.w0;                                  \
                    for (int64_t c = 0; c < C; c++)                            \
                        yo[c] = gw[(arg[c] / wl) * gs[1] + (arg[c] % wl) * gs[2] + c * gs[3]]; \
                }                                                              \
    }                                                                          \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        pool_run(y, x, attr, true, sizeof(T), fn##_rows);                      \
    }
SELECT_KERNEL(pool_select_f32, float, argmax_f32)
SELECT_KERNEL(pool_select_f64, double, argmax_f64)

/* z = 0, then d[n,i,j,:] added at the maxima of each window, for images
 * [b0, b1). Windows that do not overlap store instead of adding, and when
 * they also tile x exactly (stride = kernel, no row or column left over)
 * nothing needs zeroing first: the backward of a 2x2 pool writes z once. */
#define SCATTER_KERNEL(fn, T, argmax)                                          \
    NB_KERNEL_TARGETS static void fn##_rows(void *job, int t, int64_t b0, int64_t b1) \
    {                                                                          \
        const pool_job *jb = job;                                              \
        const nb_view *y = jb->y, *xv = &jb->x[0], *dv = &jb->x[1];            \
        const pool_attr *a = jb->a;                                            \
        int64_t H = y->shape[1], W = y->shape[2], C = y->shape[3];             \
        int64_t Ho = dv->shape[1], Wo = dv->shape[2];                          \
        const int64_t *xs = xv->strides, *ds = dv->strides;                    \
        T *Y = y->data;                                                        \
        bool apart = a->s[0] >= a->k[0] && a->s[1] >= a->k[1];                 \
        bool tiles = a->s[0] == a->k[0] && a->s[1] == a->k[1] &&               \
                     Ho * a->k[0] - a->pad[0] >= H && Wo * a->k[1] - a->pad[2] >= W; \
        if (!tiles)                                                            \
            memset(Y + b0 * H * W * C, 0, (size_t)((b1 - b0) * H * W * C) * sizeof(T)); \
        T *best = (T *)jb->best + t * C, *tmp = (T *)jb->tmp + t * C;          \
        T *dt = (T *)jb->dt + t * C;                                           \
        int32_t *arg = jb->arg + t * C;                                        \
        const T *X = xv->data, *D = dv->data;                                  \
        for (int64_t b = b0; b < b1; b++)                                      \
            for (int64_t i = 0; i < Ho; i++)                                   \
                for (int64_t j = 0; j < Wo; j++) {                             \
                    window w = window_at(a, H, W, i, j);                       \
                    argmax(C, X + b * xs[0] + w.h0 * xs[1] + w.w0 * xs[2], xs[1], xs[2], \
                           xs[3], &w, best, arg, tmp);                         \
                    const T *d = D + b * ds[0] + i * ds[1] + j * ds[2];        \
                    if (ds[3] != 1) {                                          \
                        for (int64_t c = 0; c < C; c++)                        \
                            dt[c] = d[c * ds[3]];                              \
                        d = dt;                                                \
                    }                                                          \
                    int32_t p = 0;                                             \
                    for (int64_t h = w.h0; h < w.h1; h++)                      \
                        for (int64_t q = w.w0; q < w.w1; q++, p++) {           \
                            T *z = Y + ((b * H + h) * W + q) * C;              \
                            if (apart)                                         \
                                put_row_##T(C, z, arg, d, p);                  \
                            else                                               \
                                add_row_##T(C, z, arg, d, p);                  \
                        }                                                      \
                }                                                              \
    }                                                                          \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        pool_run(y, x, attr, false, sizeof(T), fn##_rows);                     \
    }
SCATTER_KERNEL(pool_scatter_f32, float, argmax_f32)
SCATTER_KERNEL(pool_scatter_f64, double, argmax_f64)

/* ---- backward: each is the other's adjoint in its second input ---- */

static void select_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n;
    if (x[1]->requires_grad)
        dx[1] = nb_apply(&nb_op_pool_scatter, (nb_tensor *[]){x[0], dy}, 2, attr);
}

static void scatter_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                             int n, const void *attr)
{
    (void)y, (void)n;
    if (x[1]->requires_grad)
        dx[1] = nb_apply(&nb_op_pool_select, (nb_tensor *[]){x[0], dy}, 2, attr);
}

/* ---- examples ---- */

/* x (non-differentiable) is drawn as whole numbers in [0, 40): ties happen
 * and are harmless, as both ops are linear in their second input for a
 * fixed x; the spread makes the maxima land all over the windows. */
#define XD {.lo = 0, .hi = 40}
static const pool_attr k22 = {{2, 2}, {2, 2}, {0}}, k32s1 = {{3, 2}, {1, 1}, {0}},
                       k33s2p = {{3, 3}, {2, 2}, {1, 1, 0, 1}}, k21s3 = {{2, 1}, {3, 2}, {0}};
static const nb_op_example select_examples[] = {
    {.n = 2, .ndim = {4, 4}, .shape = {{2, 4, 4, 3}, {2, 4, 4, 3}}, .attr = &k22,
     .domain = {XD, {0}}},
    {.n = 2, .ndim = {4, 4}, .shape = {{2, 4, 3, 2}, {2, 4, 3, 2}}, .attr = &k32s1,
     .domain = {XD, {0}}},
    {.n = 2, .ndim = {4, 4}, .shape = {{1, 5, 4, 2}, {1, 5, 4, 2}}, .attr = &k33s2p,
     .domain = {XD, {0}}},
    {.n = 2, .ndim = {4, 4}, .shape = {{3, 5, 5, 1}, {3, 5, 5, 1}}, .attr = &k21s3,
     .domain = {XD, {0}}},
    {.n = 0},
};
/* d has the pooled shapes of the examples above. */
static const nb_op_example scatter_examples[] = {
    {.n = 2, .ndim = {4, 4}, .shape = {{2, 4, 4, 3}, {2, 2, 2, 3}}, .attr = &k22,
     .domain = {XD, {0}}},
    {.n = 2, .ndim = {4, 4}, .shape = {{2, 4, 3, 2}, {2, 2, 2, 2}}, .attr = &k32s1,
     .domain = {XD, {0}}},
    {.n = 2, .ndim = {4, 4}, .shape = {{1, 5, 4, 2}, {1, 3, 2, 2}}, .attr = &k33s2p,
     .domain = {XD, {0}}},
    {.n = 2, .ndim = {4, 4}, .shape = {{3, 5, 5, 1}, {3, 2, 3, 1}}, .attr = &k21s3,
     .domain = {XD, {0}}},
    {.n = 0},
};

const nb_op nb_op_pool_select = {
    .name = "pool_select", .arity = 2, .attr_size = sizeof(pool_attr), .shape = select_shape,
    .forward = NB_KERNELS(pool_select), .backward = select_backward, .nondiff = NB_INPUT(0),
    .saves = NB_SAVES_X(0), .batch = pool_batch, .examples = select_examples};
const nb_op nb_op_pool_scatter = {
    .name = "pool_scatter", .arity = 2, .attr_size = sizeof(pool_attr), .shape = scatter_shape,
    .forward = NB_KERNELS(pool_scatter), .backward = scatter_backward, .nondiff = NB_INPUT(0),
    .saves = NB_SAVES_X(0), .batch = pool_batch, .examples = scatter_examples};

/* ---- the public functions ---- */

/* The attributes of a call named fn: defaults filled in, SAME resolved
 * against x's size, then everything checked as the shape rules check it. */
static int pool_resolve(const char *fn, const nb_pool_args *p, pool_attr *a)
{
    if (nb__usable(fn, "x", p->x))
        return -1;
    const nb_tensor *x = p->x;
    char b[NB_SHAPE_STR_LEN];
    if (x->ndim != 4)
        return nb__shape_error("%s: x must be 4-D (N,H,W,C), got %s", fn, nb_shape_str(x, b));
    if (!nb__dtype_float(x->dtype))
        return nb__dtype_error("%s: x must be f32 or f64, got %s", fn, nb_dtype_name(x->dtype));
    if (p->kernel[0] < 0 || p->kernel[1] < 0 || p->stride[0] < 0 || p->stride[1] < 0 ||
        (p->kernel[0] == 0 && p->kernel[1] != 0) || (p->stride[0] == 0 && p->stride[1] != 0))
        return nb__error("%s: kernel (%lld,%lld) and stride (%lld,%lld) must be positive "
                         "(kernel {k}: (k,k), {0,0}: (2,2); stride {0,0}: the kernel; {s}: "
                         "(s,s))", fn, (long long)p->kernel[0], (long long)p->kernel[1],
                         (long long)p->stride[0], (long long)p->stride[1]);
    if (p->count_include_pad)
        return nb__error("%s: count_include_pad is an option of average pooling", fn);
    a->k[0] = p->kernel[0] ? p->kernel[0] : 2;
    a->k[1] = p->kernel[1] ? p->kernel[1] : a->k[0];
    a->s[0] = p->stride[0] ? p->stride[0] : a->k[0];
    a->s[1] = p->stride[0] ? (p->stride[1] ? p->stride[1] : p->stride[0]) : a->k[1];
    bool pads = p->pad[0] || p->pad[1] || p->pad[2] || p->pad[3];
    switch (p->padding) {
    case NB_PAD_VALID:
    case NB_PAD_SAME:
        if (pads)
            return nb__error("%s: pad (%lld,%lld,%lld,%lld) is given but padding is %s "
                             "(explicit pads need .padding = NB_PAD_EXPLICIT)", fn,
                             (long long)p->pad[0], (long long)p->pad[1], (long long)p->pad[2],
                             (long long)p->pad[3],
                             p->padding == NB_PAD_SAME ? "SAME" : "VALID");
        memset(a->pad, 0, sizeof a->pad);
        if (p->padding == NB_PAD_SAME)
            for (int d = 0; d < 2; d++) {
                /* TensorFlow's rule; the odd one of the total goes to the end. */
                int64_t n = x->shape[1 + d], s = a->s[d], k = a->k[d];
                if (s < 1 || k < 1 || s > INT32_MAX || k > INT32_MAX)
                    break; /* pool_check explains */
                int64_t o = n / s + (n % s != 0), t = (o - 1) * s + k - n;
                t = t > 0 ? t : 0;
                a->pad[2 * d] = t / 2;
                a->pad[2 * d + 1] = t - t / 2;
            }
        break;
    case NB_PAD_EXPLICIT:
        memcpy(a->pad, p->pad, sizeof a->pad);
        break;
    default:
        return nb__error("%s: padding %d is not NB_PAD_VALID, _SAME or _EXPLICIT", fn,
                         (int)p->padding);
    }
    int64_t o[2];
    return pool_check(fn, x, a, o);
}

nb_tensor *nb_max_pool2d_(nb_pool_args p)
{
    pool_attr a;
    if (pool_resolve("nb_max_pool2d", &p, &a))
        return NULL;
    NB__NAMED("nb_max_pool2d", nb_tensor *,
              nb_apply(&nb_op_pool_select, (nb_tensor *[]){p.x, p.x}, 2, &a));
}

nb_tensor *nb_pool_select_(nb_tensor *g, nb_pool_args p)
{
    pool_attr a;
    if (pool_resolve("nb_pool_select", &p, &a))
        return NULL;
    return nb_apply(&nb_op_pool_select, (nb_tensor *[]){p.x, g}, 2, &a);
}

nb_tensor *nb_pool_scatter_(nb_tensor *d, nb_pool_args p)
{
    pool_attr a;
    if (pool_resolve("nb_pool_scatter", &p, &a))
        return NULL;
    return nb_apply(&nb_op_pool_scatter, (nb_tensor *[]){p.x, d}, 2, &a);
}

/* A composition: the max over H and W, whose gradient (nb_max's) splits
 * evenly between tied maxima, as TensorFlow's reduce_max does. */
nb_tensor *nb_global_max_pool2d(nb_tensor *x)
{
    char b[NB_SHAPE_STR_LEN];
    if (nb__usable("nb_global_max_pool2d", "x", x))
        return NULL;
    if (x->ndim != 4) {
        nb__shape_error("nb_global_max_pool2d: x must be 4-D (N,H,W,C), got %s",
                        nb_shape_str(x, b));
        return NULL;
    }
    if (x->shape[1] == 0 || x->shape[2] == 0) {
        nb__shape_error("nb_global_max_pool2d: x %s has no positions to take the max over",
                        nb_shape_str(x, b));
        return NULL;
    }
    NB__NAMED("nb_global_max_pool2d", nb_tensor *, nb_max(x, .axes = NB_AXES(1, 2)));
}
