/* The f32 kernels of the convolution ops (ops/conv.c) on oneDNN's
 * convolution primitives, in builds with oneDNN.
 *
 * Layouts. Images stay NHWC and are never copied: given NHWC images and
 * the kernel's layout left to it ("any"), oneDNN 2.6 picks its AVX-512
 * kernels (brgconv, jit, jit_dw, jit_1x1), which read and write NHWC, and
 * only the kernel, small, is reordered into its blocked layout (and the
 * kernel's gradient back to HWIO). With the kernel's layout fixed too it
 * picks its gemm-based convolution, no faster than nabla's products; with
 * every layout left to it, the images' reorders (0.5-1.9 ms each at the
 * convnet's batch 128) cost more than its kernels gain. Measured in
 * docs/convolution.md. oneDNN caches primitives by their descriptors, so
 * making them per call costs some 10 us.
 *
 * Threads: the calling thread's OpenMP count is set for the call by the
 * rule of src/gemm.c (a convolution of m*n*k multiply-adds counts as that
 * product) and put back. Whatever oneDNN refuses returns false, and the
 * caller computes the convolution itself (writing every element), as
 * it does in builds without oneDNN, where this only returns false. */
#include "internal.h"

#ifndef NB_HAVE_ONEDNN
bool nb__onednn_conv(nb__conv_kind kind, const nb_view *out, const nb_view *a, const nb_view *b,
                     const nb_view *bias, const nb__conv_attr *attr)
{
    (void)kind, (void)out, (void)a, (void)b, (void)bias, (void)attr;
    return false;
}
#else
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine; /* NULL if it could not be made; lives as long as the process */

static void make_engine(void)
{
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
        engine = NULL;
}

/* One argument: the caller's memory and, when the primitive wants another
 * layout, the primitive's own in scratch (else the same handle). */
typedef struct {
    dnnl_memory_t user, prim;
} arg;

static bool bind(arg *m, const dnnl_memory_desc_t *user, const void *data,
                 const dnnl_memory_desc_t *want)
{
    if (dnnl_memory_create(&m->user, user, engine, (void *)data) != dnnl_success) {
        m->user = NULL;
        return false;
    }
    if (dnnl_memory_desc_equal(user, want)) {
        m->prim = m->user;
        return true;
    }
    void *buf = nb_kernel_scratch(dnnl_memory_desc_get_size(want));
    return buf && dnnl_memory_create(&m->prim, want, engine, buf) == dnnl_success;
}

static void release(arg *m)
{
    if (m->prim && m->prim != m->user)
        dnnl_memory_destroy(m->prim);
    if (m->user)
        dnnl_memory_destroy(m->user);
}

/* to = from, converting layouts (a no-op when they are one memory). */
static bool reorder(dnnl_stream_t s, dnnl_memory_t from, dnnl_memory_t to)
{
    if (from == to)
        return true;
    const dnnl_memory_desc_t *a, *b;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    if (dnnl_memory_get_memory_desc(from, &a) != dnnl_success ||
        dnnl_memory_get_memory_desc(to, &b) != dnnl_success ||
        dnnl_reorder_primitive_desc_create(&pd, a, engine, b, engine, NULL) != dnnl_success)
        return false;
    bool ok = dnnl_primitive_create(&p, pd) == dnnl_success;
    dnnl_primitive_desc_destroy(pd);
    if (!ok)
        return false;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    ok = dnnl_primitive_execute(p, s, 2, args) == dnnl_success;
    dnnl_primitive_destroy(p);
    return ok;
}

/* The primitive descriptor of kind for the (format "any") descriptors:
 * the forward one is the backward ones' hint. NULL if refused. */
static dnnl_primitive_desc_t make_pd(nb__conv_kind kind, const dnnl_memory_desc_t *src,
                                     const dnnl_memory_desc_t *wei, const dnnl_memory_desc_t *bia,
                                     const dnnl_memory_desc_t *dst, const nb__conv_attr *a)
{
    const nb_window2d *w = &a->win;
    dnnl_dims_t strides = {w->stride[0], w->stride[1]};
    dnnl_dims_t dilates = {w->dilation[0] - 1, w->dilation[1] - 1}; /* oneDNN's 0 is none */
    dnnl_dims_t pl = {w->pad[0], w->pad[2]}, pr = {w->pad[1], w->pad[3]};
    dnnl_convolution_desc_t fd, bd;
    dnnl_primitive_desc_t fpd, pd = NULL;
    if (dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                                   dnnl_convolution_direct, src, wei, bia, dst,
                                                   strides, dilates, pl, pr) != dnnl_success ||
        dnnl_primitive_desc_create(&fpd, &fd, NULL, engine, NULL) != dnnl_success)
        return NULL;
    if (kind == NB__CONV_FORWARD)
        return fpd;
    dnnl_status_t s =
        kind == NB__CONV_INPUT_GRAD
            ? dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, src,
                                                               wei, dst, strides, dilates, pl, pr)
            : dnnl_dilated_convolution_backward_weights_desc_init(
                  &bd, dnnl_convolution_direct, src, wei, NULL, dst, strides, dilates, pl, pr);
    if (s != dnnl_success ||
        dnnl_primitive_desc_create(&pd, &bd, NULL, engine, fpd) != dnnl_success)
        pd = NULL;
    dnnl_primitive_desc_destroy(fpd);
    return pd;
}

/* Runs pd's primitive on the image, kernel and output memories (in the
 * callers' layouts), reordering into and out of the primitive's, and on
 * the bias (user[3], data[3]) when data[3] is not NULL. */
static bool run(nb__conv_kind kind, dnnl_primitive_desc_t pd, const dnnl_memory_desc_t user[4],
                const void *data[4])
{
    static const dnnl_query_t fwd[3] = {dnnl_query_src_md, dnnl_query_weights_md,
                                        dnnl_query_dst_md},
                              bwd_data[3] = {dnnl_query_diff_src_md, dnnl_query_weights_md,
                                             dnnl_query_diff_dst_md},
                              bwd_w[3] = {dnnl_query_src_md, dnnl_query_diff_weights_md,
                                          dnnl_query_diff_dst_md};
    static const int fwd_id[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST},
                     bwd_data_id[3] = {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_DST},
                     bwd_w_id[3] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST};
    const dnnl_query_t *q = kind == NB__CONV_FORWARD      ? fwd
                            : kind == NB__CONV_INPUT_GRAD ? bwd_data
                                                          : bwd_w;
    const int *id = kind == NB__CONV_FORWARD      ? fwd_id
                    : kind == NB__CONV_INPUT_GRAD ? bwd_data_id
                                                  : bwd_w_id;
    /* which of image (0), kernel (1), output (2) the op writes */
    const int out = kind == NB__CONV_FORWARD ? 2 : kind == NB__CONV_INPUT_GRAD ? 0 : 1;
    arg m[4] = {{0}};
    int nargs = data[3] ? 4 : 3;
    dnnl_stream_t s = NULL;
    dnnl_primitive_t p = NULL;
    bool ok = dnnl_stream_create(&s, engine, dnnl_stream_default_flags) == dnnl_success &&
              dnnl_primitive_create(&p, pd) == dnnl_success;
    for (int i = 0; i < 3 && ok; i++)
        ok = bind(&m[i], &user[i], data[i], dnnl_primitive_desc_query_md(pd, q[i], 0)) &&
             (i == out || reorder(s, m[i].user, m[i].prim));
    if (ok && nargs == 4) /* the bias is plain (F,), as asked */
        ok = bind(&m[3], &user[3], data[3], &user[3]);
    if (ok) {
        dnnl_exec_arg_t args[4];
        for (int i = 0; i < nargs; i++)
            args[i] = (dnnl_exec_arg_t){i == 3 ? DNNL_ARG_BIAS : id[i], m[i].prim};
        ok = dnnl_primitive_execute(p, s, nargs, args) == dnnl_success &&
             reorder(s, m[out].prim, m[out].user) && dnnl_stream_wait(s) == dnnl_success;
    }
    for (int i = 0; i < 4; i++)
        release(&m[i]);
    if (p)
        dnnl_primitive_destroy(p);
    if (s)
        dnnl_stream_destroy(s);
    return ok;
}

bool nb__onednn_conv(nb__conv_kind kind, const nb_view *out, const nb_view *a, const nb_view *b,
                     const nb_view *bias, const nb__conv_attr *attr)
{
    pthread_once(&engine_once, make_engine);
    if (!engine)
        return false;
    /* image (N,H,W,C), kernel (KH,KW,C/g,F), output (N,OH,OW,F) */
    const nb_view *img = kind == NB__CONV_INPUT_GRAD ? out : a;
    const nb_view *ker = kind == NB__CONV_KERNEL_GRAD ? out : b;
    const nb_view *res = kind == NB__CONV_FORWARD ? out : kind == NB__CONV_INPUT_GRAD ? a : b;
    const int64_t N = img->shape[0], H = img->shape[1], W = img->shape[2], C = img->shape[3];
    const int64_t OH = res->shape[1], OW = res->shape[2], F = res->shape[3];
    const int64_t KH = attr->win.kernel[0], KW = attr->win.kernel[1], g = attr->groups;
    if (img->numel == 0 || ker->numel == 0 || res->numel == 0)
        return false; /* oneDNN takes no empty tensors: the portable kernel fills zeros */
    dnnl_memory_desc_t user[4], asked[3]; /* the callers' layouts; those asked for */
    bool grouped = g > 1;
    dnnl_dims_t sd = {N, C, H, W}, dd = {N, F, OH, OW};
    dnnl_dims_t wd = {F, C, KH, KW}, gwd = {g, F / g, C / g, KH, KW};
    if (dnnl_memory_desc_init_by_tag(&user[0], 4, sd, dnnl_f32, dnnl_nhwc) ||
        dnnl_memory_desc_init_by_tag(&user[1], grouped ? 5 : 4, grouped ? gwd : wd, dnnl_f32,
                                     grouped ? dnnl_hwigo : dnnl_hwio) ||
        dnnl_memory_desc_init_by_tag(&user[2], 4, dd, dnnl_f32, dnnl_nhwc) ||
        dnnl_memory_desc_init_by_tag(&asked[0], 4, sd, dnnl_f32, dnnl_nhwc) ||
        dnnl_memory_desc_init_by_tag(&asked[1], grouped ? 5 : 4, grouped ? gwd : wd, dnnl_f32,
                                     dnnl_format_tag_any) ||
        dnnl_memory_desc_init_by_tag(&asked[2], 4, dd, dnnl_f32, dnnl_nhwc) ||
        dnnl_memory_desc_init_by_tag(&user[3], 1, (dnnl_dims_t){F}, dnnl_f32, dnnl_a))
        return false;
    const void *data[4] = {img->data, ker->data, res->data, bias ? bias->data : NULL};
    double work = (double)N * OH * OW * F * KH * KW * (C / g);
    int t = nb__threads_for(work, NB__GEMM_ONEDNN_S_MT_WORK), prev = omp_get_max_threads();
    if (prev != t)
        omp_set_num_threads(t);
    dnnl_primitive_desc_t pd =
        make_pd(kind, &asked[0], &asked[1], bias ? &user[3] : NULL, &asked[2], attr);
    bool ok = pd && run(kind, pd, user, data);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (prev != t)
        omp_set_num_threads(prev);
    return ok;
}
#endif
