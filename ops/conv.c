/* The convolution behind nb_convolution, as three ops that are each
 * other's backward. Channels-last x (N,H,W,C), an HWIO kernel w
 * (KH,KW,C/g,F) with g groups, a window (stride, dilation, padding):
 *   y  = conv2d(x, w[, b])           (N,OH,OW,F): the cross-correlation, + b
 *   dx = conv2d_input_grad(dy, w)    (N,H,W,C):   its adjoint in x
 *   dw = conv2d_kernel_grad(x, dy)   (KH,KW,C/g,F): its adjoint in w
 * All three are bilinear (conv2d's optional bias aside, added in its
 * kernel: one pass less than an add), and the adjoint of each in either
 * input is one of the others:
 *   conv2d:             dx = input_grad(dy, w)     dw = kernel_grad(x, dy)
 *                       db = sum_to(dy, (F,))
 *   input_grad(d, w):   dd = conv2d(g, w)          dw = kernel_grad(g, d)
 *   kernel_grad(x, d):  dx = input_grad(d, g)      dd = conv2d(x, g)
 * so every derivative, to any order, is made of the three, as PyTorch's
 * convolution_backward is.
 *
 * Kernels. f32 on a build with oneDNN goes to its convolution primitives
 * (src/conv_onednn.c, measured faster than the products in
 * docs/convolution.md). Everything else, and f32 where oneDNN refuses, is
 * im2col into scratch and one gemm per group (group g's channels, filters
 * and kernel columns are the g-th blocks), col2im for the input's
 * gradient; a 1x1 kernel with stride 1 and no padding multiplies x itself.
 * The composition im2col + matmul (tests/test_conv.c) is the reference:
 * the f64 kernels give its bits. */
#include "internal.h"

#include <limits.h>

extern const nb_op nb_op_conv2d, nb_op_conv2d_input_grad, nb_op_conv2d_kernel_grad;

/* ---- shapes ---- */

/* The sizes of one convolution: image (N,H,W,C), output (N,OH,OW,F),
 * T taps, g groups of Cg channels and Fg filters, M = N*OH*OW rows. */
typedef struct {
    int64_t N, H, W, C, OH, OW, F, T, g, Cg, Fg, M;
} dims;

static dims dims_of(const int64_t img[4], const int64_t out[4], const nb__conv_attr *a)
{
    dims d = {.N = img[0], .H = img[1], .W = img[2], .C = img[3], .OH = out[1], .OW = out[2],
              .F = out[3], .T = a->win.kernel[0] * a->win.kernel[1], .g = a->groups};
    d.Cg = d.C / d.g;
    d.Fg = d.F / d.g;
    d.M = d.N * d.OH * d.OW;
    return d;
}

/* Checks what the three ops share: 4-D inputs of one dtype, the window,
 * groups dividing C and F, w's (KH,KW,C/g) and the sizes gemm takes; sets
 * out (OH,OW) for an image of H x W. */
static int check(const nb_op *op, const nb_tensor *p, const nb_tensor *q, const nb__conv_attr *a,
                 int64_t H, int64_t W, int64_t C, int64_t F, const int64_t *kshape,
                 int64_t out[2])
{
    char s[NB_SHAPE_STR_LEN], t[NB_SHAPE_STR_LEN];
    const char *fn = op == &nb_op_conv2d              ? "nb_conv2d"
                     : op == &nb_op_conv2d_input_grad ? "nb_conv2d_input_grad"
                                                      : "nb_conv2d_kernel_grad";
    if (p->ndim != 4 || q->ndim != 4)
        return nb_op_error(op, "inputs must be 4-D, got %s and %s", nb_shape_str(p, s),
                           nb_shape_str(q, t));
    if (p->dtype != q->dtype)
        return nb__op_error_code(NB_ERR_DTYPE, op, "dtypes differ: %s %s and %s %s",
                                 nb_dtype_name(p->dtype), nb_shape_str(p, s),
                                 nb_dtype_name(q->dtype), nb_shape_str(q, t));
    if (a->groups < 1 || C % a->groups || F % a->groups)
        return nb_op_error(op, "groups %lld must be at least 1 and divide the %lld channels "
                           "and %lld filters", (long long)a->groups, (long long)C,
                           (long long)F);
    if (nb__window_out(fn, &a->win, H, W, &out[0], &out[1]))
        return -1;
    if (kshape && (kshape[0] != a->win.kernel[0] || kshape[1] != a->win.kernel[1] ||
                   kshape[2] != C / a->groups || kshape[3] != F))
        return nb__op_error_code(NB_ERR_SHAPE, op, "the kernel (%lld,%lld,%lld,%lld) is not "
                                 "the window's (%lld,%lld) over %lld channels in %lld groups "
                                 "to %lld filters",
                                 (long long)kshape[0], (long long)kshape[1],
                                 (long long)kshape[2], (long long)kshape[3],
                                 (long long)a->win.kernel[0], (long long)a->win.kernel[1],
                                 (long long)C, (long long)a->groups, (long long)F);
    int64_t m, k;
    if (__builtin_mul_overflow(p->shape[0], out[0] * out[1], &m) ||
        __builtin_mul_overflow(a->win.kernel[0] * a->win.kernel[1], C, &k) || m > INT_MAX ||
        k > INT_MAX || F > INT_MAX || C > INT_MAX)
        return nb__op_error_code(NB_ERR_SHAPE, op, "sizes above %d are not supported: %s "
                                 "and %s", INT_MAX, nb_shape_str(p, s), nb_shape_str(q, t));
    return 0;
}

static int conv2d_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    const nb__conv_attr *a = attr;
    const nb_tensor *img = x[0], *w = x[1];
    char s[NB_SHAPE_STR_LEN], t[NB_SHAPE_STR_LEN];
    int64_t o[2];
    if (n != 2 && n != 3)
        return nb_op_error(&nb_op_conv2d, "takes x, w and an optional b, got %d inputs", n);
    if (check(&nb_op_conv2d, img, w, a, img->ndim == 4 ? img->shape[1] : 0,
              img->ndim == 4 ? img->shape[2] : 0, img->ndim == 4 ? img->shape[3] : 0,
              w->ndim == 4 ? w->shape[3] : 0, w->shape, o))
        return -1;
    if (n == 3 && (x[2]->ndim != 1 || x[2]->shape[0] != w->shape[3] ||
                   x[2]->dtype != w->dtype))
        return nb__op_error_code(x[2]->dtype != w->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE,
                                 &nb_op_conv2d, "b %s %s must be %s (%lld,), one per filter "
                                 "of w %s", nb_dtype_name(x[2]->dtype), nb_shape_str(x[2], s),
                                 nb_dtype_name(w->dtype), (long long)w->shape[3],
                                 nb_shape_str(w, t));
    *out = (nb_meta){.dtype = img->dtype, .ndim = 4,
                     .shape = {img->shape[0], o[0], o[1], w->shape[3]}};
    return 0;
}

static int input_grad_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const nb__conv_attr *a = attr;
    const nb_tensor *dy = x[0], *w = x[1];
    char s[NB_SHAPE_STR_LEN];
    int64_t o[2];
    if (a->h < 0 || a->w < 0)
        return nb__op_error_code(NB_ERR_SHAPE, &nb_op_conv2d_input_grad,
                                 "image size (%lld,%lld) must not be negative",
                                 (long long)a->h, (long long)a->w);
    int64_t C = 0;
    if (w->ndim == 4 && a->groups > 0 && __builtin_mul_overflow(w->shape[2], a->groups, &C))
        return nb__op_error_code(NB_ERR_SHAPE, &nb_op_conv2d_input_grad,
                                 "%lld groups of w %s overflow", (long long)a->groups,
                                 nb_shape_str(w, s));
    if (check(&nb_op_conv2d_input_grad, dy, w, a, a->h, a->w, C,
              w->ndim == 4 ? w->shape[3] : 0, w->shape, o))
        return -1;
    if (dy->shape[1] != o[0] || dy->shape[2] != o[1] || dy->shape[3] != w->shape[3])
        return nb__op_error_code(NB_ERR_SHAPE, &nb_op_conv2d_input_grad,
                                 "dy %s is not the output of the window over a %lldx%lld "
                                 "image, (N,%lld,%lld,%lld)", nb_shape_str(dy, s),
                                 (long long)a->h, (long long)a->w, (long long)o[0],
                                 (long long)o[1], (long long)w->shape[3]);
    *out = (nb_meta){.dtype = dy->dtype, .ndim = 4, .shape = {dy->shape[0], a->h, a->w, C}};
    return 0;
}

static int kernel_grad_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const nb__conv_attr *a = attr;
    const nb_tensor *img = x[0], *dy = x[1];
    char s[NB_SHAPE_STR_LEN], t[NB_SHAPE_STR_LEN];
    int64_t o[2];
    if (check(&nb_op_conv2d_kernel_grad, img, dy, a, img->ndim == 4 ? img->shape[1] : 0,
              img->ndim == 4 ? img->shape[2] : 0, img->ndim == 4 ? img->shape[3] : 0,
              dy->ndim == 4 ? dy->shape[3] : 0, NULL, o))
        return -1;
    if (dy->shape[0] != img->shape[0] || dy->shape[1] != o[0] || dy->shape[2] != o[1])
        return nb__op_error_code(NB_ERR_SHAPE, &nb_op_conv2d_kernel_grad,
                                 "dy %s is not the output of the window over x %s, "
                                 "(%lld,%lld,%lld,F)", nb_shape_str(dy, s),
                                 nb_shape_str(img, t), (long long)img->shape[0],
                                 (long long)o[0], (long long)o[1]);
    *out = (nb_meta){.dtype = img->dtype, .ndim = 4,
                     .shape = {a->win.kernel[0], a->win.kernel[1],
                               img->shape[3] / a->groups, dy->shape[3]}};
    return 0;
}

/* ---- the portable kernels ---- */

static void gemm(nb_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
                 int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc)
{
    if (dt == NB_F64)
        nb__gemm_f64(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
    else
        nb__gemm_f32(ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
}

static bool pointwise(const nb_window2d *w)
{
    return w->kernel[0] == 1 && w->kernel[1] == 1 && w->stride[0] == 1 && w->stride[1] == 1 &&
           !w->pad[0] && !w->pad[1] && !w->pad[2] && !w->pad[3];
}

static nb_view packed(void *data, nb_dtype dt, int64_t a, int64_t b, int64_t c, int64_t d)
{
    nb_view v = {.data = data, .dtype = dt, .ndim = 4, .numel = a * b * c * d,
                 .shape = {a, b, c, d}};
    nb__strides(4, v.shape, v.strides);
    return v;
}

/* Group g's patches as an (M, T*Cg) matrix: x itself (ld C) for a
 * pointwise window, else im2col of its channels into *buf (allocated on
 * first use). NULL when the scratch fails. */
static const char *group_cols(const nb_view *x, const dims *d, const nb_window2d *win,
                              int64_t g, void **buf, int64_t *ld)
{
    size_t es = nb__dtype_size(x->dtype);
    const char *xg = (const char *)x->data + (size_t)(g * d->Cg) * es;
    if (pointwise(win)) {
        *ld = d->C;
        return xg;
    }
    if (!*buf && !(*buf = nb_kernel_scratch((size_t)(d->M * d->T * d->Cg) * es)))
        return NULL;
    nb_view xv = *x, cv = packed(*buf, x->dtype, d->N, d->OH, d->OW, d->T * d->Cg);
    xv.data = (void *)xg;
    xv.shape[3] = d->Cg;
    xv.numel = d->N * d->H * d->W * d->Cg;
    nb__im2col(&cv, &xv, win);
    *ld = d->T * d->Cg;
    return *buf;
}

/* For each group g, c_g = cols_g @ b_g (the forward: b the kernel, c the
 * output) or cols_g^T @ b_g (the kernel's gradient: b the output's
 * gradient, c the kernel's); b_g and c_g are the g-th blocks of Fg
 * columns of F. False when the scratch fails. */
static bool cols_times(const nb_view *x, const dims *d, const nb_window2d *win, bool t,
                       const void *b, void *c)
{
    size_t es = nb__dtype_size(x->dtype);
    void *buf = NULL;
    for (int64_t g = 0; g < d->g; g++) {
        int64_t ld, K = d->T * d->Cg;
        const char *A = group_cols(x, d, win, g, &buf, &ld);
        if (!A)
            return false;
        gemm(x->dtype, t, false, t ? K : d->M, d->Fg, t ? d->M : K, A, ld,
             (const char *)b + (size_t)(g * d->Fg) * es, d->F,
             (char *)c + (size_t)(g * d->Fg) * es, d->F);
    }
    return true;
}

/* y's rows += b, as the add this replaces rounds. */
static void add_bias(const nb_view *y, const nb_view *b)
{
    int64_t F = b->numel, rows = F ? y->numel / F : 0;
    if (y->dtype == NB_F64) {
        double *p = y->data;
        const double *q = b->data;
        for (int64_t r = 0; r < rows; r++, p += F)
            for (int64_t f = 0; f < F; f++)
                p[f] += q[f];
    } else {
        float *p = y->data;
        const float *q = b->data;
        for (int64_t r = 0; r < rows; r++, p += F)
            for (int64_t f = 0; f < F; f++)
                p[f] += q[f];
    }
}

static void conv2d_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    const nb__conv_attr *a = attr;
    const nb_view *bias = n == 3 ? &x[2] : NULL;
    size_t es = nb__dtype_size(y->dtype);
    if (y->numel == 0 || (y->dtype == NB_F32 && nb__onednn_conv(NB__CONV_FORWARD, y, &x[0],
                                                                 &x[1], bias, a)))
        return;
    dims d = dims_of(x[0].shape, y->shape, a);
    if (d.Cg == 0) {
        memset(y->data, 0, (size_t)y->numel * es);
        if (bias)
            add_bias(y, bias);
        return;
    }
    if (cols_times(&x[0], &d, &a->win, false, x[1].data, y->data) && bias)
        add_bias(y, bias);
}

/* dx's group g from dy's: the patches' gradient dy_g @ w_g^T, summed back
 * into the pixels by col2im (straight into dx with one group; through an
 * image of Cg channels copied into dx's channels otherwise). */
static void input_grad_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    const nb__conv_attr *a = attr;
    size_t es = nb__dtype_size(y->dtype);
    if (y->numel == 0 || (y->dtype == NB_F32 && nb__onednn_conv(NB__CONV_INPUT_GRAD, y, &x[0],
                                                                 &x[1], NULL, a)))
        return;
    dims d = dims_of(y->shape, x[0].shape, a);
    if (d.Fg == 0 || d.M == 0) {
        memset(y->data, 0, (size_t)y->numel * es);
        return;
    }
    const char *dy = x[0].data, *w = x[1].data;
    if (pointwise(&a->win)) {
        for (int64_t g = 0; g < d.g; g++)
            gemm(y->dtype, false, true, d.M, d.Cg, d.Fg, dy + (size_t)(g * d.Fg) * es, d.F,
                 w + (size_t)(g * d.Fg) * es, d.F, (char *)y->data + (size_t)(g * d.Cg) * es,
                 d.C);
        return;
    }
    void *cols = nb_kernel_scratch((size_t)(d.M * d.T * d.Cg) * es);
    void *img = d.g > 1 ? nb_kernel_scratch((size_t)(d.N * d.H * d.W * d.Cg) * es) : y->data;
    if (!cols || !img)
        return;
    nb_view cv = packed(cols, y->dtype, d.N, d.OH, d.OW, d.T * d.Cg),
            iv = packed(img, y->dtype, d.N, d.H, d.W, d.Cg);
    for (int64_t g = 0; g < d.g; g++) {
        gemm(y->dtype, false, true, d.M, d.T * d.Cg, d.Fg, dy + (size_t)(g * d.Fg) * es, d.F,
             w + (size_t)(g * d.Fg) * es, d.F, cols, d.T * d.Cg);
        nb__col2im(&iv, &cv, &a->win);
        if (d.g > 1) {
            nb_view dst = *y;
            dst.data = (char *)y->data + (size_t)(g * d.Cg) * es;
            dst.shape[3] = d.Cg;
            dst.numel = iv.numel;
            nb__copy(&dst, &iv);
        }
    }
}

static void kernel_grad_kernel(const nb_view *y, const nb_view *x, int n, const void *attr)
{
    (void)n;
    const nb__conv_attr *a = attr;
    size_t es = nb__dtype_size(y->dtype);
    if (y->numel == 0 || (y->dtype == NB_F32 && nb__onednn_conv(NB__CONV_KERNEL_GRAD, y, &x[0],
                                                                 &x[1], NULL, a)))
        return;
    dims d = dims_of(x[0].shape, x[1].shape, a);
    if (d.M == 0) {
        memset(y->data, 0, (size_t)y->numel * es);
        return;
    }
    cols_times(&x[0], &d, &a->win, true, x[1].data, y->data);
}

/* ---- derivatives ---- */

/* a with the image size of t (N,H,W,C), for an input_grad giving t's shape. */
static nb__conv_attr sized(const void *attr, const nb_tensor *t)
{
    nb__conv_attr a = *(const nb__conv_attr *)attr;
    a.h = t->shape[1];
    a.w = t->shape[2];
    return a;
}

static void conv2d_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y, nb_tensor *const x[],
                            int n, const void *attr)
{
    (void)y;
    nb__conv_attr a = sized(attr, x[0]);
    if (x[0]->requires_grad)
        dx[0] = nb__conv2d_input_grad(dy, x[1], &a);
    if (x[1]->requires_grad)
        dx[1] = nb__conv2d_kernel_grad(x[0], dy, &a);
    if (n == 3 && x[2]->requires_grad)
        dx[2] = nb_sum_to(dy, 1, x[2]->shape);
}

static void input_grad_backward(nb_tensor *dx[], nb_tensor *g, nb_tensor *y,
                                nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n;
    if (x[0]->requires_grad)
        dx[0] = nb__conv2d(g, x[1], NULL, attr);
    if (x[1]->requires_grad)
        dx[1] = nb__conv2d_kernel_grad(g, x[0], attr);
}

static void kernel_grad_backward(nb_tensor *dx[], nb_tensor *g, nb_tensor *y,
                                 nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)n;
    nb__conv_attr a = sized(attr, x[0]);
    if (x[0]->requires_grad)
        dx[0] = nb__conv2d_input_grad(x[1], g, &a);
    if (x[1]->requires_grad)
        dx[1] = nb__conv2d(x[0], g, NULL, &a);
}

/* Row b of the output is image b's (the kernel's gradient sums over them). */
static unsigned first_batch(nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    return NB_INPUT(0);
}

/* ---- examples: one per case of the kernels, in all three ops ----
 * A: a plain 2x3 window; B: strided and padded all round; C: dilated with
 * uneven padding and a stride along W; D: two groups, padded; E:
 * depthwise, strided; F: 1x1 (x multiplied as it is); G: 1x1 strided, two
 * groups. */
#define WIN(kh, kw, sh, sw, dh, dw, t, b, l, r) {{kh, kw}, {sh, sw}, {dh, dw}, {t, b, l, r}}
static const nb__conv_attr cA = {WIN(2, 3, 1, 1, 1, 1, 0, 0, 0, 0), 1, 4, 5},
                           cB = {WIN(3, 3, 2, 2, 1, 1, 1, 1, 1, 1), 1, 5, 5},
                           cC = {WIN(2, 2, 1, 2, 2, 1, 0, 1, 2, 0), 1, 6, 5},
                           cD = {WIN(3, 3, 1, 1, 1, 1, 1, 1, 1, 1), 2, 4, 4},
                           cE = {WIN(2, 2, 2, 2, 1, 1, 0, 0, 0, 0), 3, 4, 4},
                           cF = {WIN(1, 1, 1, 1, 1, 1, 0, 0, 0, 0), 1, 3, 3},
                           cG = {WIN(1, 1, 2, 2, 1, 1, 0, 0, 0, 0), 2, 5, 4};
/* image x, kernel w, output dy of each */
#define XA {2, 4, 5, 3}
#define WA {2, 3, 3, 2}
#define YA {2, 3, 3, 2}
#define XB {1, 5, 5, 2}
#define WB {3, 3, 2, 3}
#define YB {1, 3, 3, 3}
#define XC {2, 6, 5, 2}
#define WC {2, 2, 2, 2}
#define YC {2, 5, 3, 2}
#define XD {1, 4, 4, 4}
#define WD {3, 3, 2, 6}
#define YD {1, 4, 4, 6}
#define XE {2, 4, 4, 3}
#define WE {2, 2, 1, 3}
#define YE {2, 2, 2, 3}
#define XF {2, 3, 3, 4}
#define WF {1, 1, 4, 3}
#define YF {2, 3, 3, 3}
#define XG {1, 5, 4, 4}
#define WG {1, 1, 2, 4}
#define YG {1, 3, 2, 4}
#define EX(p, q, a) {.n = 2, .ndim = {4, 4}, .shape = {p, q}, .attr = &a}
/* conv2d with a bias too, on A, D and F */
#define EXB(p, q, f, a) {.n = 3, .ndim = {4, 4, 1}, .shape = {p, q, {f}}, .attr = &a}
static const nb_op_example conv2d_examples[] = {
    EX(XA, WA, cA), EX(XB, WB, cB), EX(XC, WC, cC), EX(XD, WD, cD),
    EX(XE, WE, cE), EX(XF, WF, cF), EX(XG, WG, cG),
    EXB(XA, WA, 2, cA), EXB(XD, WD, 6, cD), EXB(XF, WF, 3, cF), {.n = 0},
};
static const nb_op_example input_grad_examples[] = {
    EX(YA, WA, cA), EX(YB, WB, cB), EX(YC, WC, cC), EX(YD, WD, cD),
    EX(YE, WE, cE), EX(YF, WF, cF), EX(YG, WG, cG), {.n = 0},
};
static const nb_op_example kernel_grad_examples[] = {
    EX(XA, YA, cA), EX(XB, YB, cB), EX(XC, YC, cC), EX(XD, YD, cD),
    EX(XE, YE, cE), EX(XF, YF, cF), EX(XG, YG, cG), {.n = 0},
};

#define CONV_OP(NAME, ARITY, SHAPE, KERNEL, BACKWARD, BATCH, EXAMPLES)         \
    {.name = NAME, .arity = ARITY, .attr_size = sizeof(nb__conv_attr), .shape = SHAPE, \
     .forward = {[NB_F32] = KERNEL, [NB_F64] = KERNEL}, .backward = BACKWARD,  \
     .contiguous = (1u << (ARITY < 0 ? 3 : ARITY)) - 1,                        \
     .saves = NB_SAVES_X(0) | NB_SAVES_X(1), .batch = BATCH, .examples = EXAMPLES}
const nb_op nb_op_conv2d = CONV_OP("conv2d", -1, conv2d_shape, conv2d_kernel, conv2d_backward,
                                   first_batch, conv2d_examples);
const nb_op nb_op_conv2d_input_grad =
    CONV_OP("conv2d_input_grad", 2, input_grad_shape, input_grad_kernel, input_grad_backward,
            first_batch, input_grad_examples);
const nb_op nb_op_conv2d_kernel_grad =
    CONV_OP("conv2d_kernel_grad", 2, kernel_grad_shape, kernel_grad_kernel, kernel_grad_backward,
            NULL, kernel_grad_examples);

nb_tensor *nb__conv2d(nb_tensor *x, nb_tensor *w, nb_tensor *b, const nb__conv_attr *a)
{
    return nb_apply(&nb_op_conv2d, (nb_tensor *[]){x, w, b}, b ? 3 : 2, a);
}

nb_tensor *nb__conv2d_input_grad(nb_tensor *dy, nb_tensor *w, const nb__conv_attr *a)
{
    return nb_apply(&nb_op_conv2d_input_grad, (nb_tensor *[]){dy, w}, 2, a);
}

nb_tensor *nb__conv2d_kernel_grad(nb_tensor *x, nb_tensor *dy, const nb__conv_attr *a)
{
    return nb_apply(&nb_op_conv2d_kernel_grad, (nb_tensor *[]){x, dy}, 2, a);
}
