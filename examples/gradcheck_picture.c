/* A user op with a wrong backward, caught by gradcheck and drawn twice:
 *
 *   gradcheck_picture [outdir] [rows] [cols]
 *
 * The op is a fused softmax over the last axis,
 *   y = exp(x - max x) / sum(exp(x - max x))     dx = y * (dy - sum(dy * y))
 * and the wrong one forgets the "- sum(dy * y)" term. The Jacobian
 * dy_i/dx_j = y_i (delta_ij - y_j) is block diagonal, one block per row of
 * x, and the wrong backward is off by y_i y_j in every entry of each block.
 *
 * The program checks both ops with nb_gradcheck on a (rows, cols) input
 * (.full, .keep_jacobians: the whole Jacobian, kept on failure), writes the
 * heat map of the wrong one's error to outdir/gradcheck-heatmap.svg and
 * .png, then runs nb_check_graph on f(x) = sum(softmax(tanh(x))^2) and
 * writes outdir/gradcheck-graph.svg (.dot without Graphviz), where only the
 * softmax node is red. Defaults: docs/img, 4 6. Exit status 0 when the right
 * op passes and the wrong one is caught, in both pictures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "nabla/nabla.h"

/* Row by row over the last axis; x is contiguous (the op asks for it). */
#define SOFTMAX_KERNEL(fn, T)                                                  \
    static void fn(const nb_view *y, const nb_view *x, int n, const void *attr) \
    {                                                                          \
        (void)n, (void)attr;                                                   \
        int64_t k = x->ndim ? x->shape[x->ndim - 1] : 1;                       \
        const T *in = x->data;                                                 \
        T *out = y->data;                                                      \
        for (int64_t r = 0; k > 0 && r < x->numel / k; r++, in += k, out += k) { \
            double m = in[0], s = 0;                                           \
            for (int64_t j = 1; j < k; j++)                                    \
                m = fmax(m, in[j]);                                            \
            for (int64_t j = 0; j < k; j++)                                    \
                s += exp(in[j] - m);                                           \
            for (int64_t j = 0; j < k; j++)                                    \
                out[j] = (T)(exp(in[j] - m) / s);                              \
        }                                                                      \
    }
SOFTMAX_KERNEL(softmax_f32, float)
SOFTMAX_KERNEL(softmax_f64, double)

static void softmax_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    nb_tensor *dot = nb_sum(nb_mul(dy, y), .axes = NB_AXES(-1), .keepdims = true);
    dx[0] = nb_mul(y, nb_sub(dy, dot));
}

/* The slip: the Jacobian's diagonal part alone. */
static void softmax_wrong_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                                   nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n, (void)attr;
    dx[0] = nb_mul(y, dy);
}

static const nb_op softmax_op = {.name = "softmax_fused", .arity = 1, .shape = nb_shape_same,
                                 .forward = NB_KERNELS(softmax), .backward = softmax_backward,
                                 .contiguous = NB_INPUT(0), .saves = NB_SAVES_Y};
static const nb_op softmax_wrong = {.name = "softmax_wrong", .arity = 1,
                                    .shape = nb_shape_same, .forward = NB_KERNELS(softmax),
                                    .backward = softmax_wrong_backward,
                                    .contiguous = NB_INPUT(0), .saves = NB_SAVES_Y};

/* The op of ctx on x[0]: what nb_gradcheck checks. */
static nb_tensor *apply(nb_tensor *const x[], int n, void *ctx)
{
    return nb_apply(ctx, x, n, NULL);
}

/* sum(op(tanh(x))^2): the function whose graph is drawn. */
static nb_tensor *f(nb_tensor *const x[], int n, void *ctx)
{
    (void)n;
    nb_tensor *t = nb_tanh(x[0]);
    return nb_sum(nb_square(nb_apply(ctx, &t, 1, NULL)));
}

static int64_t arg(int argc, char **argv, int i, int64_t def)
{
    if (argc <= i)
        return def;
    char *end;
    long long v = strtoll(argv[i], &end, 10);
    if (*end || v < 1 || v > 64) {
        fprintf(stderr, "gradcheck_picture: '%s' is not a size in 1..64\n", argv[i]);
        exit(2);
    }
    return (int64_t)v;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "docs/img";
    int64_t rows = arg(argc, argv, 2, 4), cols = arg(argc, argv, 3, 6);
    nb_rng rng = nb_rng_new(7);
    nb_tensor *x = nb_set_requires_grad(nb_randn(NB_F64, NB_SHAPE(rows, cols), &rng), true);
    if (!x) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    nb_check_opts opts = {.full = true, .keep_jacobians = true};
    nb_check_report r;
    bool right = nb_gradcheck(apply, (void *)&softmax_op, 1, &x, &opts, &r);
    nb_check_report_print(&r, stdout);
    nb_check_report_free(&r);
    bool wrong = nb_gradcheck(apply, (void *)&softmax_wrong, 1, &x, &opts, &r);
    nb_check_report_print(&r, stdout);

    int rc = right && !wrong ? 0 : 1;
    char path[1024];
    static const char *const ext[] = {"svg", "png"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/gradcheck-heatmap.%s", dir, ext[i]);
        if (nb_check_heatmap(&r, 0, path) != 0) {
            fprintf(stderr, "%s\n", nb_last_error());
            rc = 1;
        } else
            printf("wrote %s\n", path);
    }
    nb_check_report_free(&r);

    snprintf(path, sizeof path, "%s/gradcheck-graph.%s", dir, nb_dot_can_render() ? "svg" : "dot");
    int failing = nb_check_graph(f, (void *)&softmax_wrong, 1, &x, NULL, path);
    if (failing < 0) {
        fprintf(stderr, "%s\n", nb_last_error());
        rc = 1;
    } else {
        printf("wrote %s: %d failing node%s\n", path, failing, failing == 1 ? "" : "s");
        if (failing != 1)
            rc = 1;
    }
    nb_free(x);
    return rc;
}
