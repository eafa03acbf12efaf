/* XOR with a two-layer MLP written by hand from nabla ops, trained with
 * plain gradient descent. Writes a picture of one training step's graph.
 *
 *   xor [hidden=8] [steps=2000] [lr=0.5] [out=xor]   -> out.dot, out.svg */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "nabla/nabla.h"

/* argv[i] as a whole number in [1, max], def when absent; exits on anything
 * else (no silent truncation: 4294967297 is not 1). */
static int count_arg(int argc, char **argv, int i, int def, long long max)
{
    if (argc <= i)
        return def;
    char *end;
    errno = 0;
    long long v = strtoll(argv[i], &end, 10);
    if (!*argv[i] || *end || errno == ERANGE || v < 1 || v > max) {
        fprintf(stderr, "%s: '%s' is not a whole number in [1, %lld]\n", argv[0], argv[i], max);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int hidden = count_arg(argc, argv, 1, 8, 1 << 20);
    int steps = count_arg(argc, argv, 2, 2000, 1 << 30);
    double lr = argc > 3 ? atof(argv[3]) : 0.5;
    const char *out = argc > 4 ? argv[4] : "xor";
    if (hidden < 1 || steps < 1 || !(lr > 0)) {
        fprintf(stderr, "usage: xor [hidden>0] [steps>0] [lr>0] [out-prefix]\n");
        return 2;
    }

    nb_tensor *x = nb_set_name(nb_from_array(NB_F32, NB_SHAPE(4, 2), (float[]){0, 0, 0, 1, 1, 0, 1, 1}), "x");
    nb_tensor *y = nb_set_name(nb_from_array(NB_F32, NB_SHAPE(4, 1), (float[]){0, 1, 1, 0}), "y");
    nb_rng rng = nb_rng_new(42);
    nb_tensor *p[4] = {
        nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(2, hidden), &rng)), "W1"),
        nb_set_name(nb_param(nb_zeros(NB_F32, NB_SHAPE(hidden))), "b1"),
        nb_set_name(nb_param(nb_randn(NB_F32, NB_SHAPE(hidden, 1), &rng)), "W2"),
        nb_set_name(nb_param(nb_zeros(NB_F32, NB_SHAPE(1))), "b2"),
    };

    nb_graph *g = nb_graph_new();
    nb_tensor *prob = NULL;
    for (int s = 1; s <= steps; s++) {
        nb_scope_push("hidden");
        nb_tensor *h = nb_tanh(nb_add(nb_matmul(x, p[0]), p[1]));
        nb_scope_pop();
        nb_scope_push("output");
        prob = nb_sigmoid(nb_add(nb_matmul(h, p[2]), p[3]));
        nb_scope_pop();
        nb_tensor *loss = nb_mean(nb_square(nb_sub(prob, y)));
        if (!loss || nb_backward(loss) != 0) {
            fprintf(stderr, "xor: %s\n", nb_last_error());
            return 1;
        }
        if (s == steps) {
            char path[512];
            snprintf(path, sizeof path, "%s.dot", out);
            if (nb_dot_write(loss, path, &(nb_dot_opts){.title = "XOR: one training step"}))
                fprintf(stderr, "xor: %s\n", nb_last_error());
            snprintf(path, sizeof path, "%s.svg", out);
            if (nb_dot_can_render() &&
                nb_dot_render(loss, path, &(nb_dot_opts){.title = "XOR: one training step"}))
                fprintf(stderr, "xor: %s\n", nb_last_error());
            printf("step %d  loss %.6f  (graph: %s.dot, %s.svg)\n", s, nb_item(loss), out, out);
            break; /* keep this step's graph: prob is read below */
        }
        if (s % 500 == 0 || s == 1)
            printf("step %d  loss %.6f\n", s, nb_item(loss));
        bool prev = nb_set_grad_enabled(false);
        for (int i = 0; i < 4; i++) {
            nb_assign(p[i], nb_sub(p[i], nb_mul(nb_grad_of(p[i]), nb_scalar_like(p[i], lr))));
            nb_zero_grad(p[i]);
        }
        nb_set_grad_enabled(prev);
        nb_graph_reset(g);
    }

    int correct = 0;
    for (int i = 0; i < 4; i++) {
        double pr = nb_get(prob, NB_AT(i, 0)), want = nb_get(y, NB_AT(i, 0));
        printf("%g xor %g -> %.3f\n", nb_get(x, NB_AT(i, 0)), nb_get(x, NB_AT(i, 1)), pr);
        correct += (pr > 0.5) == (want > 0.5);
    }
    printf("accuracy %d/4\n", correct);
    nb_graph_free(g);
    for (int i = 0; i < 4; i++)
        nb_free(p[i]);
    nb_free(x);
    nb_free(y);
    return correct == 4 ? 0 : 1;
}
