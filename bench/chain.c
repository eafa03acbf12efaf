/* Framework overhead per op: a chain of elementwise ops on a 1-element
 * tensor, forward and backward. A benchmark, not a test
 * (docs/performance.md).
 *
 *   bench_chain [--ops K=1000] [--threads N] [--warmup CHAINS] [--reps R]
 *               [--n CHAINS] [--quick]
 *
 * x is a (1,) f32 parameter (0.5); a = 1.0001 and b = 0.0001 are (1,)
 * constants. The chain is x = nb_mul(x, a); x = nb_add(x, b);
 * x = nb_tanh(x); repeated, cut off after exactly K op calls (K = 1000:
 * 333 full rounds and a last nb_mul). "An op" is one call of a primitive
 * op (nb_mul, nb_add or nb_tanh): in the forward it computes its value and
 * records a node; in the backward (nb_backward of the last x, seed 1) its
 * rule runs once. One chain = zero x's gradient, K ops forward, the
 * backward, nb_graph_reset. Workload "chain<K>", unit us/op =
 * wall / (chains * K); "fwd_us_per_op" and "bwd_us_per_op" split it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const char *prog = "bench_chain";

int main(int argc, char **argv)
{
    int ops = 1000;
    /* --ops is this program's own option: take it out before bench_parse. */
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--ops") == 0) {
            ops = atoi(argv[i + 1]);
            if (ops < 1) {
                fprintf(stderr, "%s: --ops needs a whole number >= 1\n", prog);
                return 2;
            }
            memmove(argv + i, argv + i + 2, (size_t)(argc - i - 1) * sizeof *argv);
            argc -= 2;
            break;
        }
    bench_args a = {.threads = 1};
    int rc = bench_parse(argc, argv, &a, 0);
    if (rc)
        return rc == 1 ? 0 : rc;
    bench_counts(&a, 50, 10, 50);
    bench_set_threads(a.threads);

    const int64_t one[1] = {1};
    nb_tensor *x0 = nb_param(nb_full(NB_F32, 1, one, 0.5));
    nb_tensor *ca = nb_full(NB_F32, 1, one, 1.0001), *cb = nb_full(NB_F32, 1, one, 0.0001);
    nb_graph *g = nb_graph_new();
    if (!x0 || !ca || !cb || !g)
        return bench_fail(prog);

    char workload[32], extra[256];
    snprintf(workload, sizeof workload, "chain%d", ops);
    double y = 0, grad = 0;
    for (int r = 0; r <= a.reps; r++) { /* r = 0: the warm-up */
        int chains = r ? a.n : a.warmup;
        double fwd = 0, bwd = 0;
        bench_clock t0 = bench_now();
        for (int c = 0; c < chains; c++) {
            double f0 = bench_wall();
            nb_zero_grad(x0);
            nb_tensor *x = x0;
            for (int k = 0; k < ops; k++)
                x = k % 3 == 0 ? nb_mul(x, ca) : k % 3 == 1 ? nb_add(x, cb) : nb_tanh(x);
            double f1 = bench_wall();
            if (!x || nb_backward(x))
                return bench_fail(prog);
            fwd += f1 - f0;
            bwd += bench_wall() - f1;
            y = nb_item(x);
            grad = nb_get_flat(nb_grad_of(x0), 0);
            nb_graph_reset(g);
        }
        bench_clock t = bench_since(t0);
        if (r == 0)
            continue;
        double per = 1e6 / ((double)chains * ops);
        snprintf(extra, sizeof extra,
                 "\"ops\": %d, \"fwd_us_per_op\": %.4g, \"bwd_us_per_op\": %.4g, \"y\": %.6g, "
                 "\"dy_dx\": %.6g, \"warmup_units\": %d",
                 ops, fwd * per, bwd * per, y, grad, a.warmup);
        bench_emit("nabla", workload, a.threads, r, (int64_t)chains * ops, t, "us/op", 1e6, extra);
    }
    nb_graph_free(g);
    nb_free(x0);
    nb_free(ca);
    nb_free(cb);
    return 0;
}
