/* im2col and col2im: the sliding windows of a channels-last image, and
 * their adjoint. With x (N,H,W,C) and a window of (kh,kw), stride (sh,sw),
 * dilation (dh,dw) and zero padding (top,bottom,left,right):
 *   y = im2col(x): (N,OH,OW,kh*kw*C),
 *       y[n,oh,ow,(i*kw+j)*C+c] = x[n, oh*sh-top+i*dh, ow*sw-left+j*dw, c]
 *       (0 where the index falls in the padding)
 *   dx = col2im(dy, x's H and W)
 *   y = col2im(p, H, W): (N,H,W,C), every patch entry summed back into the
 *       pixel it was read from (entries from the padding are dropped)
 *   dp = im2col(dy)
 * with OH = (H + top + bottom - ((kh-1)*dh + 1)) / sh + 1 (and OW alike).
 * The two are each other's transpose, so each backward is the other op and
 * both differentiate to any order. The patch order (i, j, c) makes
 * im2col(x) @ w.reshape(kh*kw*C, F) the convolution with an HWIO kernel.
 * The window is validated here too (not only by the public functions):
 * the op may be applied through nb_apply with any attribute. */
#include "internal.h"

typedef struct {
    nb_window2d win; /* every entry explicit: stride and dilation >= 1 */
    int64_t h, w;    /* col2im: the image's H and W; im2col ignores them */
} win_attr;

/* Output length along one axis, or -1 when the window does not fit (or
 * the sizes overflow). */
static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t d, int64_t lo, int64_t hi)
{
    int64_t ext, span;
    if (__builtin_mul_overflow(k - 1, d, &ext) || __builtin_add_overflow(ext, 1, &ext) ||
        __builtin_add_overflow(in, lo, &span) || __builtin_add_overflow(span, hi, &span) ||
        span < ext)
        return -1;
    return (span - ext) / s + 1;
}

static int check_window(const char *fn, const nb_window2d *w)
{
    for (int i = 0; i < 2; i++)
        if (w->kernel[i] < 1 || w->stride[i] < 1 || w->dilation[i] < 1)
            return nb__error("%s: kernel (%lld,%lld), stride (%lld,%lld) and dilation "
                             "(%lld,%lld) must be at least 1",
                             fn, (long long)w->kernel[0], (long long)w->kernel[1],
                             (long long)w->stride[0], (long long)w->stride[1],
                             (long long)w->dilation[0], (long long)w->dilation[1]);
    for (int i = 0; i < 4; i++)
        if (w->pad[i] < 0)
            return nb__error("%s: padding (%lld,%lld,%lld,%lld) must not be negative", fn,
                             (long long)w->pad[0], (long long)w->pad[1], (long long)w->pad[2],
                             (long long)w->pad[3]);
    return 0;
}

/* OH and OW of an H x W image, or an error naming fn and the sizes. */
static int out_hw(const char *fn, const nb_window2d *w, int64_t h, int64_t wd, int64_t *oh,
                  int64_t *ow)
{
    *oh = out_len(h, w->kernel[0], w->stride[0], w->dilation[0], w->pad[0], w->pad[1]);
    *ow = out_len(wd, w->kernel[1], w->stride[1], w->dilation[1], w->pad[2], w->pad[3]);
    if (*oh < 0 || *ow < 0)
        return nb__shape_error("%s: the window (%lld,%lld) with dilation (%lld,%lld) is "
                               "larger than the padded image (%lld+%lld+%lld, %lld+%lld+%lld)",
                               fn, (long long)w->kernel[0], (long long)w->kernel[1],
                               (long long)w->dilation[0], (long long)w->dilation[1],
                               (long long)h, (long long)w->pad[0], (long long)w->pad[1],
                               (long long)wd, (long long)w->pad[2], (long long)w->pad[3]);
    return 0;
}

int nb__window_out(const char *fn, const nb_window2d *win, int64_t h, int64_t w, int64_t *oh,
                   int64_t *ow)
{
    return check_window(fn, win) || out_hw(fn, win, h, w, oh, ow) ? -1 : 0;
}

/* The window with 0 meaning 1 for stride and dilation. */
static nb_window2d explicit_window(nb_window2d w)
{
    for (int i = 0; i < 2; i++) {
        w.stride[i] = w.stride[i] ? w.stride[i] : 1;
        w.dilation[i] = w.dilation[i] ? w.dilation[i] : 1;
    }
    return w;
}

/* Zero-fills n elements: the padding of a patch. */
#define ZERO(T, p, n)                                                          \
    do {                                                                       \
        for (int64_t z_ = 0; z_ < (n); z_++)                                   \
            (p)[z_] = 0;                                                       \
    } while (0)

/* ---- im2col ---- */

static int im2col_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const win_attr *a = attr;
    char b[NB_SHAPE_STR_LEN];
    int64_t oh, ow, k;
    if (x[0]->ndim != 4)
        return nb__shape_error("nb_im2col: x must be (N,H,W,C), got %s", nb_shape_str(x[0], b));
    if (check_window("nb_im2col", &a->win) ||
        out_hw("nb_im2col", &a->win, x[0]->shape[1], x[0]->shape[2], &oh, &ow))
        return -1;
    if (__builtin_mul_overflow(a->win.kernel[0], a->win.kernel[1], &k) ||
        __builtin_mul_overflow(k, x[0]->shape[3], &k))
        return nb__shape_error("nb_im2col: a patch of (%lld,%lld) windows of %s overflows",
                               (long long)a->win.kernel[0], (long long)a->win.kernel[1],
                               nb_shape_str(x[0], b));
    out->dtype = x[0]->dtype;
    out->ndim = 4;
    out->shape[0] = x[0]->shape[0];
    out->shape[1] = oh;
    out->shape[2] = ow;
    out->shape[3] = k;
    return 0;
}

/* One output row of patches (n, oh) at a time. A patch row i is kw runs of
 * C channels; when the input's (W, C) is packed and the window undilated
 * along W, the in-image part of the row is a single memcpy of up to kw*C
 * elements (what makes a 1-channel first layer fast), else one copy of C
 * channels per tap. Bounds are decided per run, never per element. */
#define IM2COL_KERNEL(fn, T)                                                   \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        const nb_window2d *w = &((const win_attr *)attr)->win;                \
        const int64_t N = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3]; \
        const int64_t OH = y->shape[1], OW = y->shape[2], KH = w->kernel[0], KW = w->kernel[1]; \
        const int64_t sh = w->stride[0], sw = w->stride[1], dh = w->dilation[0], dw = w->dilation[1]; \
        const int64_t s0 = x->strides[0], s1 = x->strides[1], s2 = x->strides[2], s3 = x->strides[3]; \
        const bool unit_c = C <= 1 || s3 == 1;                                 \
        const bool rows = unit_c && dw == 1 && (W <= 1 || s2 == C);            \
        const T *in = x->data;                                                 \
        T *out = y->data;                                                      \
        if (y->numel == 0)                                                     \
            return;                                                            \
        for (int64_t b = 0; b < N; b++)                                        \
            for (int64_t oh = 0; oh < OH; oh++)                                \
                for (int64_t ow = 0; ow < OW; ow++) {                          \
                    const int64_t iw0 = ow * sw - w->pad[2];                   \
                    /* the taps j in [j0, j1) fall inside the image */         \
                    int64_t j0 = iw0 >= 0 ? 0 : (-iw0 + dw - 1) / dw;          \
                    int64_t j1 = W - iw0 <= 0 ? 0 : (W - iw0 + dw - 1) / dw;   \
                    j0 = j0 < KW ? j0 : KW;                                    \
                    j1 = j1 < KW ? j1 : KW;                                    \
                    j1 = j1 > j0 ? j1 : j0;                                    \
                    for (int64_t i = 0; i < KH; i++, out += KW * C) {          \
                        const int64_t ih = oh * sh - w->pad[0] + i * dh;       \
                        if (ih < 0 || ih >= H) {                               \
                            ZERO(T, out, KW * C);                              \
                            continue;                                          \
                        }                                                      \
                        const T *row = in + b * s0 + ih * s1;                  \
                        ZERO(T, out, j0 * C);                                  \
                        if (rows) {                                            \
                            memcpy(out + j0 * C, row + (iw0 + j0) * s2,        \
                                   (size_t)((j1 - j0) * C) * sizeof(T));       \
                        } else {                                               \
                            for (int64_t j = j0; j < j1; j++) {                \
                                const T *src = row + (iw0 + j * dw) * s2;      \
                                T *dst = out + j * C;                          \
                                if (unit_c)                                    \
                                    memcpy(dst, src, (size_t)C * sizeof(T));   \
                                else                                           \
                                    for (int64_t c = 0; c < C; c++)            \
                                        dst[c] = src[c * s3];                  \
                            }                                                  \
                        }                                                      \
                        ZERO(T, out + j1 * C, (KW - j1) * C);                  \
                    }                                                          \
                }                                                              \
    }
IM2COL_KERNEL(im2col_f32, float)
IM2COL_KERNEL(im2col_f64, double)

void nb__im2col(const nb_view *cols, const nb_view *x, const nb_window2d *win)
{
    win_attr a = {.win = *win};
    (x->dtype == NB_F64 ? im2col_f64 : im2col_f32)(cols, x, 1, &a);
}

static void im2col_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)n;
    dx[0] = nb_col2im(dy, ((const win_attr *)attr)->win, x[0]->shape[1], x[0]->shape[2]);
}

/* Images are independent: row b of the patches is image b's. */
static unsigned win_batch(nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    return NB_INPUT(0);
}

/* The windows of the examples (shared with col2im's, whose patch shapes
 * follow from them): plain; strided and padded all round; dilated with
 * uneven padding; a 1x1 window striding over pixels it never reads; a
 * non-square dilated window with padding wider than the window. */
static const win_attr w23 = {.win = {{2, 3}, {1, 1}, {1, 1}, {0, 0, 0, 0}}, 4, 5},
                      w33s2p1 = {.win = {{3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}}, 5, 5},
                      w22d = {.win = {{2, 2}, {1, 2}, {2, 1}, {0, 1, 2, 0}}, 6, 5},
                      w11s2 = {.win = {{1, 1}, {2, 2}, {1, 1}, {0, 0, 0, 0}}, 3, 4},
                      w32odd = {.win = {{3, 2}, {2, 1}, {1, 2}, {2, 1, 0, 3}}, 4, 4};
static const nb_op_example im2col_examples[] = {
    {.n = 1, .ndim = {4}, .shape = {{2, 4, 5, 3}}, .attr = &w23},
    {.n = 1, .ndim = {4}, .shape = {{1, 5, 5, 2}}, .attr = &w33s2p1},
    {.n = 1, .ndim = {4}, .shape = {{2, 6, 5, 1}}, .attr = &w22d},
    {.n = 1, .ndim = {4}, .shape = {{1, 3, 4, 2}}, .attr = &w11s2},
    {.n = 1, .ndim = {4}, .shape = {{2, 4, 4, 2}}, .attr = &w32odd},
    {.n = 0},
};

const nb_op nb_op_im2col = {.name = "im2col", .arity = 1, .attr_size = sizeof(win_attr),
                            .shape = im2col_shape, .forward = NB_KERNELS(im2col),
                            .backward = im2col_backward, .saves = NB_SAVES_NONE,
                            .batch = win_batch, .examples = im2col_examples};

nb_tensor *nb_im2col(nb_tensor *x, nb_window2d win)
{
    win_attr a = {.win = explicit_window(win)};
    return nb_apply(&nb_op_im2col, &x, 1, &a);
}

/* ---- col2im ---- */

static int col2im_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const win_attr *a = attr;
    const nb_window2d *w = &a->win;
    char b[NB_SHAPE_STR_LEN];
    int64_t oh, ow, taps;
    const nb_tensor *p = x[0];
    if (p->ndim != 4)
        return nb__shape_error("nb_col2im: patches must be (N,OH,OW,KH*KW*C), got %s",
                               nb_shape_str(p, b));
    if (a->h < 0 || a->w < 0)
        return nb__shape_error("nb_col2im: image size (%lld,%lld) must not be negative",
                               (long long)a->h, (long long)a->w);
    if (check_window("nb_col2im", w) || out_hw("nb_col2im", w, a->h, a->w, &oh, &ow))
        return -1;
    if (__builtin_mul_overflow(w->kernel[0], w->kernel[1], &taps) ||
        p->shape[3] % taps != 0 || p->shape[1] != oh || p->shape[2] != ow)
        return nb__shape_error("nb_col2im: patches %s are not those of a (%lld,%lld) window "
                               "over a %lldx%lld image, which are (N,%lld,%lld,%lld*C)",
                               nb_shape_str(p, b), (long long)w->kernel[0],
                               (long long)w->kernel[1], (long long)a->h, (long long)a->w,
                               (long long)oh, (long long)ow, (long long)taps);
    out->dtype = p->dtype;
    out->ndim = 4;
    out->shape[0] = p->shape[0];
    out->shape[1] = a->h;
    out->shape[2] = a->w;
    out->shape[3] = p->shape[3] / taps;
    return 0;
}

/* Scatter-adds each in-image run of C channels into its pixel, in a fixed
 * order (patches in row-major order), so the sums are deterministic. */
#define COL2IM_KERNEL(fn, T)                                                   \
    NB_KERNEL_TARGETS static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n;                                                               \
        const nb_window2d *w = &((const win_attr *)attr)->win;                \
        const int64_t N = y->shape[0], H = y->shape[1], W = y->shape[2], C = y->shape[3]; \
        const int64_t OH = x->shape[1], OW = x->shape[2], KH = w->kernel[0], KW = w->kernel[1]; \
        const int64_t sh = w->stride[0], sw = w->stride[1], dh = w->dilation[0], dw = w->dilation[1]; \
        const int64_t s0 = x->strides[0], s1 = x->strides[1], s2 = x->strides[2], s3 = x->strides[3]; \
        const bool unit_c = C <= 1 || s3 == 1;                                 \
        const T *in = x->data;                                                 \
        T *img = y->data;                                                      \
        if (y->numel == 0)                                                     \
            return;                                                            \
        memset(img, 0, (size_t)y->numel * sizeof(T));                          \
        for (int64_t b = 0; b < N; b++, img += H * W * C)                      \
            for (int64_t oh = 0; oh < OH; oh++)                                \
                for (int64_t ow = 0; ow < OW; ow++) {                          \
                    const T *patch = in + b * s0 + oh * s1 + ow * s2;          \
                    for (int64_t i = 0; i < KH; i++) {                         \
                        const int64_t ih = oh * sh - w->pad[0] + i * dh;       \
                        if (ih < 0 || ih >= H)                                 \
                            continue;                                          \
                        for (int64_t j = 0; j < KW; j++) {                     \
                            const int64_t iw = ow * sw - w->pad[2] + j * dw;   \
                            if (iw < 0 || iw >= W)                             \
                                continue;                                      \
                            T *dst = img + (ih * W + iw) * C;                  \
                            const T *src = patch + (i * KW + j) * C * s3;      \
                            if (unit_c)                                        \
                                for (int64_t c = 0; c < C; c++)                \
                                    dst[c] += src[c];                          \
                            else                                               \
                                for (int64_t c = 0; c < C; c++)                \
                                    dst[c] += src[c * s3];                     \
                        }                                                      \
                    }                                                          \
                }                                                              \
    }
COL2IM_KERNEL(col2im_f32, float)
COL2IM_KERNEL(col2im_f64, double)

void nb__col2im(const nb_view *img, const nb_view *cols, const nb_window2d *win)
{
    win_attr a = {.win = *win};
    (img->dtype == NB_F64 ? col2im_f64 : col2im_f32)(img, cols, 1, &a);
}

static void col2im_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y, (void)x, (void)n;
    dx[0] = nb_im2col(dy, ((const win_attr *)attr)->win);
}

static const nb_op_example col2im_examples[] = {
    {.n = 1, .ndim = {4}, .shape = {{2, 3, 3, 18}}, .attr = &w23},
    {.n = 1, .ndim = {4}, .shape = {{1, 3, 3, 18}}, .attr = &w33s2p1},
    {.n = 1, .ndim = {4}, .shape = {{2, 5, 3, 4}}, .attr = &w22d},
    {.n = 1, .ndim = {4}, .shape = {{1, 2, 2, 2}}, .attr = &w11s2},
    {.n = 1, .ndim = {4}, .shape = {{2, 3, 5, 12}}, .attr = &w32odd},
    {.n = 0},
};

const nb_op nb_op_col2im = {.name = "col2im", .arity = 1, .attr_size = sizeof(win_attr),
                            .shape = col2im_shape, .forward = NB_KERNELS(col2im),
                            .backward = col2im_backward, .saves = NB_SAVES_NONE,
                            .batch = win_batch, .examples = col2im_examples};

nb_tensor *nb_col2im(nb_tensor *cols, nb_window2d win, int64_t h, int64_t w)
{
    win_attr a = {.win = explicit_window(win), .h = h, .w = w};
    return nb_apply(&nb_op_col2im, &cols, 1, &a);
}
