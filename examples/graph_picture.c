/* Pictures of one training step of a 2-layer MLP, as in docs/graphs.md:
 *
 *   graph_picture [outdir] [batch] [inputs] [hidden] [classes]
 *
 * writes outdir/mlp_forward.dot and outdir/mlp_backward.dot (the same step
 * with the backward pass drawn), and when this nabla has Graphviz, renders
 * each to .svg and .png next to it. Defaults: docs/img, 32 784 64 10. */
#include "nabla/nabla.h"

#include <stdio.h>
#include <stdlib.h>

static int64_t arg(int argc, char **argv, int i, int64_t def)
{
    if (argc <= i)
        return def;
    char *end;
    long long v = strtoll(argv[i], &end, 10);
    if (*end || v < 1 || v > 100000) {
        fprintf(stderr, "graph_picture: '%s' is not a size in 1..100000\n", argv[i]);
        exit(2);
    }
    return (int64_t)v;
}

/* Writes name.dot, and name.svg / name.png when Graphviz is built in. */
static int picture(nb_tensor *root, const char *dir, const char *name, const nb_dot_opts *o)
{
    static const char *const ext[] = {"dot", "svg", "png"};
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext[i]);
        if (i > 0 && !nb_dot_can_render()) {
            printf("(no Graphviz in this build: run `dot -T%s %s/%s.dot -o %s`)\n", ext[i], dir,
                   name, path);
            continue;
        }
        int rc = i == 0 ? nb_dot_write(root, path, o) : nb_dot_render(root, path, o);
        if (rc) {
            fprintf(stderr, "%s\n", nb_last_error());
            return -1;
        }
        printf("wrote %s\n", path);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "docs/img";
    int64_t n = arg(argc, argv, 2, 32), d = arg(argc, argv, 3, 784), h = arg(argc, argv, 4, 64),
            k = arg(argc, argv, 5, 10);

    nb_rng rng = nb_rng_new(42);
    nb_tensor *x = nb_set_name(nb_randn(NB_F32, NB_SHAPE(n, d), &rng), "x");
    nb_tensor *labels = nb_zeros(NB_F32, NB_SHAPE(n));
    for (int64_t i = 0; i < n; i++)
        nb_set(labels, NB_AT(i), (double)nb_rng_below(&rng, (uint64_t)k));
    nb_set_name(labels, "labels");
    nb_tensor *W1 = nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(d, h), &rng)), "W1");
    nb_tensor *b1 = nb_set_name(nb_param(nb_zeros(NB_F32, NB_SHAPE(h))), "b1");
    nb_tensor *W2 = nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(h, k), &rng)), "W2");
    nb_tensor *b2 = nb_set_name(nb_param(nb_zeros(NB_F32, NB_SHAPE(k))), "b2");

    nb_graph *g = nb_graph_new();
    nb_scope_push("model");
    nb_scope_push("dense");
    nb_tensor *a1 = nb_relu(nb_add(nb_matmul(x, W1), b1));
    nb_scope_pop();
    nb_scope_push("dense_1");
    nb_tensor *logits = nb_set_name(nb_add(nb_matmul(a1, W2), b2), "logits");
    nb_scope_pop();
    nb_scope_pop();
    nb_scope_push("loss");
    nb_tensor *onehot = nb_one_hot(labels, k);
    nb_tensor *loss = nb_neg(
        nb_mean(nb_sum(nb_mul(onehot, nb_log_softmax(logits, 1)), .axes = NB_AXES(1))));
    nb_scope_pop();
    nb_set_name(loss, "loss");

    int rc = 1;
    if (!loss || nb_backward(loss) != 0) {
        fprintf(stderr, "%s\n", nb_last_error());
        goto done;
    }
    char title[160];
    snprintf(title, sizeof title, "MLP %lld-%lld-%lld, batch %lld: forward", (long long)d,
             (long long)h, (long long)k, (long long)n);
    if (picture(loss, dir, "mlp_forward", &(nb_dot_opts){.title = title}))
        goto done;
    snprintf(title, sizeof title, "MLP %lld-%lld-%lld, batch %lld: forward and backward",
             (long long)d, (long long)h, (long long)k, (long long)n);
    if (picture(loss, dir, "mlp_backward", &(nb_dot_opts){.title = title, .backward = true}))
        goto done;
    rc = 0;
done:
    nb_graph_free(g);
    nb_free(x);
    nb_free(labels);
    nb_free(W1);
    nb_free(b1);
    nb_free(W2);
    nb_free(b2);
    return rc;
}
