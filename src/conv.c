/* Convolution and pooling, channels-last: the convolution is the conv2d
 * op (ops/conv.c), its bias included, average pooling a composition of im2col
 * (ops/im2col.c), reshape and sum. No derivative code here: the gradients,
 * to any order, come from the primitives. Arguments are checked first, so
 * that every misuse names the function called and the values it was given
 * rather than an op inside it. */
#include "internal.h"

/* ---- one axis of a window ---- */

/* Fills r for one axis, or sets an error naming fn (and the axis). The
 * stride and dilation given as 0 are 1. */
static int window_size(const char *fn, const char *axis, nb_window_args a, nb_window_size *r)
{
    *r = (nb_window_size){.out = -1};
    if (a.stride < 0 || a.dilation < 0 || a.kernel < 1)
        return nb__error("%s: kernel %lld, stride %lld and dilation %lld %smust be at least 1",
                         fn, (long long)a.kernel, (long long)a.stride, (long long)a.dilation,
                         axis);
    if (a.in < 0)
        return nb__shape_error("%s: input size %lld %sis negative", fn, (long long)a.in, axis);
    int64_t s = a.stride ? a.stride : 1, d = a.dilation ? a.dilation : 1;
    int64_t lo = a.pad[0], hi = a.pad[1], ext;
    if (a.padding != NB_PAD_VALID && a.padding != NB_PAD_SAME && a.padding != NB_PAD_EXPLICIT)
        return nb__error("%s: padding %d is not NB_PAD_VALID, NB_PAD_SAME or NB_PAD_EXPLICIT",
                         fn, (int)a.padding);
    if (a.padding != NB_PAD_EXPLICIT && (lo || hi))
        return nb__error("%s: padding (%lld,%lld) %sgiven without .padding = NB_PAD_EXPLICIT",
                         fn, (long long)lo, (long long)hi, axis);
    if (lo < 0 || hi < 0)
        return nb__error("%s: padding (%lld,%lld) %smust not be negative", fn, (long long)lo,
                         (long long)hi, axis);
    /* Sizes are at most NB_MAX_NUMEL (2^48) where they are tensor sizes,
     * but these may be anything: every step is checked. */
    bool over = __builtin_mul_overflow(a.kernel - 1, d, &ext) ||
                __builtin_add_overflow(ext, 1, &ext);
    if (!over && a.padding == NB_PAD_SAME) {
        int64_t out = a.in / s + (a.in % s != 0), total;
        over = __builtin_mul_overflow(out > 0 ? out - 1 : 0, s, &total) ||
               __builtin_add_overflow(total, ext - a.in, &total);
        total = total > 0 ? total : 0;
        lo = total / 2; /* TensorFlow's rule: the odd one at the bottom/right */
        hi = total - lo;
    }
    int64_t span;
    over = over || __builtin_add_overflow(a.in, lo, &span) ||
           __builtin_add_overflow(span, hi, &span);
    if (over || span < ext)
        return nb__shape_error("%s: the kernel %lld (dilation %lld: %lld wide) %sis larger than "
                               "the padded input %lld + %lld + %lld",
                               fn, (long long)a.kernel, (long long)d,
                               over ? -1LL : (long long)ext, axis, (long long)a.in,
                               (long long)lo, (long long)hi);
    *r = (nb_window_size){.out = (span - ext) / s + 1, .pad_before = lo, .pad_after = hi};
    return 0;
}

nb_window_size nb_conv_output_size_(nb_window_args a)
{
    nb_window_size r;
    window_size("nb_conv_output_size", "", a, &r);
    return r;
}

/* ---- shared checks ---- */

static int need(const char *fn, const char *what, const nb_tensor *t)
{
    if (nb__usable(fn, what, t))
        return -1;
    if (!nb__dtype_float(t->dtype))
        return nb__u8_error(fn, what);
    return 0;
}

static int same_dtype(const char *fn, const char *what, const nb_tensor *x, const nb_tensor *t)
{
    char p[NB_SHAPE_STR_LEN], q[NB_SHAPE_STR_LEN];
    if (t->dtype != x->dtype)
        return nb__dtype_error("%s: dtypes differ: x is %s %s, %s is %s %s", fn,
                               nb_dtype_name(x->dtype), nb_shape_str(x, p), what,
                               nb_dtype_name(t->dtype), nb_shape_str(t, q));
    return 0;
}

/* Fills the (N,H,W,C) window of both axes; axis h is skipped (a trivial
 * 1-wide axis) for 1-D. */
static int make_window(const char *fn, bool one_d, const int64_t in[2], const int64_t k[2],
                       const int64_t stride[2], const int64_t dil[2], nb_padding padding,
                       const int64_t pad[4], nb_window2d *win, int64_t out[2])
{
    *win = (nb_window2d){{1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}};
    out[0] = 1;
    for (int ax = one_d ? 1 : 0; ax < 2; ax++) {
        int o = one_d ? 0 : ax; /* 1-D options sit in the first entries */
        nb_window_args a = {in[ax], k[ax], stride[o], dil[o], padding,
                            {pad[2 * o], pad[2 * o + 1]}};
        nb_window_size r;
        if (window_size(fn, one_d ? "" : ax ? "along W " : "along H ", a, &r))
            return -1;
        out[ax] = r.out;
        win->kernel[ax] = k[ax];
        win->stride[ax] = a.stride ? a.stride : 1;
        win->dilation[ax] = a.dilation ? a.dilation : 1;
        win->pad[2 * ax] = r.pad_before;
        win->pad[2 * ax + 1] = r.pad_after;
    }
    return 0;
}

/* ---- convolution ---- */

static nb_tensor *convolution_impl(nb_conv_args a)
{
    const char *fn = "nb_convolution";
    char p[NB_SHAPE_STR_LEN], q[NB_SHAPE_STR_LEN];
    if (need(fn, "x", a.x) || need(fn, "w", a.w) || (a.b && need(fn, "b", a.b)))
        return NULL;
    if (!nb__graph()) {
        nb__state_error("%s: no current graph (create one with nb_graph_new)", fn);
        return NULL;
    }
    nb_tensor *x = a.x, *w = a.w, *b = a.b;
    if (x->ndim != 3 && x->ndim != 4) {
        nb__shape_error("%s: x must be (N,H,W,C) or, 1-D, (N,W,C); got %s", fn,
                        nb_shape_str(x, p));
        return NULL;
    }
    bool one_d = x->ndim == 3;
    if (w->ndim != x->ndim) {
        nb__shape_error("%s: w %s does not fit x %s: w is %s", fn, nb_shape_str(w, p),
                        nb_shape_str(x, q), one_d ? "(K,C/groups,F)" : "(KH,KW,C/groups,F)");
        return NULL;
    }
    if (same_dtype(fn, "w", x, w) || (b && same_dtype(fn, "b", x, b)))
        return NULL;
    if (one_d && (a.stride[1] || a.dilation[1] || a.pad[2] || a.pad[3])) {
        nb__error("%s: a 1-D convolution takes stride[0], dilation[0] and pad[0..1] (left, "
                  "right); got stride (%lld,%lld), dilation (%lld,%lld), pad (%lld,%lld,%lld,%lld)",
                  fn, (long long)a.stride[0], (long long)a.stride[1], (long long)a.dilation[0],
                  (long long)a.dilation[1], (long long)a.pad[0], (long long)a.pad[1],
                  (long long)a.pad[2], (long long)a.pad[3]);
        return NULL;
    }
    const int64_t N = x->shape[0], C = x->shape[x->ndim - 1], F = w->shape[w->ndim - 1];
    const int64_t Cg_w = w->shape[w->ndim - 2];
    int64_t g = a.groups ? a.groups : 1;
    if (g < 1 || C % g != 0 || F % g != 0) {
        nb__error("%s: groups %lld must be at least 1 and divide the %lld input channels of x "
                  "%s and the %lld filters of w %s", fn, (long long)a.groups, (long long)C,
                  nb_shape_str(x, p), (long long)F, nb_shape_str(w, q));
        return NULL;
    }
    if (Cg_w != C / g) {
        nb__shape_error("%s: w %s has %lld input channels per group, but x %s with groups %lld "
                        "needs %lld", fn, nb_shape_str(w, p), (long long)Cg_w,
                        nb_shape_str(x, q), (long long)g, (long long)(C / g));
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != F)) {
        nb__shape_error("%s: b %s must be (%lld,), one per filter of w %s", fn,
                        nb_shape_str(b, p), (long long)F, nb_shape_str(w, q));
        return NULL;
    }
    const int64_t in[2] = {one_d ? 1 : x->shape[1], x->shape[x->ndim - 2]};
    const int64_t k[2] = {one_d ? 1 : w->shape[0], w->shape[w->ndim - 3]};
    nb_window2d win;
    int64_t out[2];
    if (make_window(fn, one_d, in, k, a.stride, a.dilation, a.padding, a.pad, &win, out))
        return NULL;

    nb_tensor *x4 = one_d ? nb_reshape(x, NB_SHAPE(N, 1, in[1], C)) : x;
    nb_tensor *w4 = one_d ? nb_reshape(w, NB_SHAPE(1, k[1], Cg_w, F)) : w;
    nb__conv_attr ca = {.win = win, .groups = g, .h = in[0], .w = in[1]};
    nb_tensor *y = nb__conv2d(x4, w4, b, &ca);
    return one_d ? nb_reshape(y, NB_SHAPE(N, out[1], F)) : y;
}

nb_tensor *nb_convolution_(nb_conv_args a)
{
    NB__NAMED("nb_convolution", nb_tensor *, convolution_impl(a));
}

/* ---- pooling ---- */

/* The number of taps of each window along one axis that fall inside the
 * image (all of them when the window stays inside). */
static void taps_inside(int64_t len, int64_t out, int64_t k, int64_t s, int64_t before,
                        double *count)
{
    for (int64_t o = 0; o < out; o++) {
        int64_t lo = o * s - before, hi = lo + k;
        lo = lo > 0 ? lo : 0;
        hi = hi < len ? hi : len;
        count[o] = (double)(hi - lo);
    }
}

static nb_tensor *avg_pool2d_impl(nb_pool_args a)
{
    const char *fn = "nb_avg_pool2d";
    char p[NB_SHAPE_STR_LEN];
    if (need(fn, "x", a.x))
        return NULL;
    nb_graph *graph = nb__graph();
    if (!graph) {
        nb__state_error("%s: no current graph (create one with nb_graph_new)", fn);
        return NULL;
    }
    nb_tensor *x = a.x;
    if (x->ndim != 4) {
        nb__shape_error("%s: x must be (N,H,W,C), got %s", fn, nb_shape_str(x, p));
        return NULL;
    }
    /* kernel {k}: (k, k), {0, 0}: (2, 2); stride {s}: (s, s), {0, 0}: the kernel. */
    if (a.kernel[0] < 0 || a.kernel[1] < 0 || a.stride[0] < 0 || a.stride[1] < 0 ||
        (a.kernel[0] == 0 && a.kernel[1] != 0) || (a.stride[0] == 0 && a.stride[1] != 0)) {
        nb__error("%s: pool size (%lld,%lld) and stride (%lld,%lld) must be at least 1 (kernel "
                  "{k}: (k,k), {0,0}: (2,2); stride {0,0}: the kernel; {s}: (s,s))", fn,
                  (long long)a.kernel[0], (long long)a.kernel[1], (long long)a.stride[0],
                  (long long)a.stride[1]);
        return NULL;
    }
    int64_t k[2], s[2];
    k[0] = a.kernel[0] ? a.kernel[0] : 2;
    k[1] = a.kernel[1] ? a.kernel[1] : k[0];
    s[0] = a.stride[0] ? a.stride[0] : k[0];
    s[1] = a.stride[1] ? a.stride[1] : a.stride[0] ? s[0] : k[1];
    const int64_t in[2] = {x->shape[1], x->shape[2]}, one[2] = {1, 1};
    nb_window2d win;
    int64_t out[2];
    if (make_window(fn, false, in, k, s, one, a.padding, a.pad, &win, out))
        return NULL;
    /* A window entirely in the padding would have no pixel to average. */
    for (int i = 0; i < 4; i++)
        if (win.pad[i] >= k[i / 2]) {
            nb__error("%s: padding (%lld,%lld,%lld,%lld) must be smaller than the pool size "
                      "(%lld,%lld)", fn, (long long)win.pad[0], (long long)win.pad[1],
                      (long long)win.pad[2], (long long)win.pad[3], (long long)k[0],
                      (long long)k[1]);
            return NULL;
        }
    const int64_t N = x->shape[0], C = x->shape[3];
    nb_tensor *cols = nb_im2col(x, win);
    nb_tensor *sum = nb_sum(nb_reshape(cols, NB_SHAPE(N, out[0], out[1], k[0] * k[1], C)),
                            .axes = NB_AXES(3));
    bool padded = win.pad[0] || win.pad[1] || win.pad[2] || win.pad[3];
    if (!sum || a.count_include_pad || !padded)
        return nb_div(sum, nb_scalar_like(x, (double)(k[0] * k[1])));
    /* The divisor is a constant of the shape: the product of the taps
     * inside the image along each axis, one per window, broadcast over
     * the batch and the channels. */
    nb_tensor *count = nb__new_graph_tensor(graph, x->dtype, 4,
                                            (const int64_t[]){1, out[0], out[1], 1}, true);
    double *ch = nb__arena_alloc(graph, (size_t)(out[0] + out[1]) * sizeof(double));
    if (!count || !ch)
        return NULL;
    double *cw = ch + out[0];
    taps_inside(in[0], out[0], k[0], s[0], win.pad[0], ch);
    taps_inside(in[1], out[1], k[1], s[1], win.pad[2], cw);
    for (int64_t i = 0; i < out[0]; i++)
        for (int64_t j = 0; j < out[1]; j++)
            nb__put(count, i * out[1] + j, ch[i] * cw[j]);
    return nb_div(sum, count);
}

nb_tensor *nb_avg_pool2d_(nb_pool_args a)
{
    NB__NAMED("nb_avg_pool2d", nb_tensor *, avg_pool2d_impl(a));
}

/* A mean over both spatial axes: the window would be the whole image, and
 * its patches x itself, so im2col would only copy. */
static nb_tensor *global_avg_pool2d_impl(nb_tensor *x)
{
    char p[NB_SHAPE_STR_LEN];
    if (need("nb_global_avg_pool2d", "x", x))
        return NULL;
    if (x->ndim != 4) {
        nb__shape_error("nb_global_avg_pool2d: x must be (N,H,W,C), got %s", nb_shape_str(x, p));
        return NULL;
    }
    return nb_mean(x, .axes = NB_AXES(1, 2));
}

nb_tensor *nb_global_avg_pool2d(nb_tensor *x)
{
    NB__NAMED("nb_global_avg_pool2d", nb_tensor *, global_avg_pool2d_impl(x));
}
