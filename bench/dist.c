/* One data-parallel training step on ranks (mpirun -np N bench_dist): a
 * fixed global batch of B rows, each rank taking its shard (nb_dist_shard),
 * forward, loss, nb_dist_backward (the gradients summed over the ranks in
 * buckets as the backward goes), Adam step. With one process it is
 * bench_step's step through nb_dist_backward. A benchmark, not a test
 * (docs/performance.md, "Data-parallel").
 *
 *   mpirun -np N bench_dist [--model seed|wide] [--batch B] [--threads N]
 *                           [--warmup STEPS] [--reps R] [--n STEPS] [--quick]
 *
 * Rank 0 prints the lines, workload "dist_<model>_b<B>_r<N>", unit
 * us/step, with per step: "comm_us", the allreduces' time from each
 * bucket's start to its end, summed over the buckets; "exposed_us", the
 * wait for them after the backward was done; "overlap", 1 - exposed /
 * comm, the share of the communication hidden behind the backward. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const char *prog = "bench_dist";

int main(int argc, char **argv)
{
    if (nb_dist_init(&argc, &argv))
        return bench_fail(prog);
    bench_args a = {.threads = 1, .model = "seed", .batch = 32,
                    .data = "/usr/share/datasets/fashion-mnist"};
    int rc = bench_parse(argc, argv, &a, BENCH_BATCH | BENCH_MODEL | BENCH_DATA);
    if (rc)
        return nb_dist_finalize(), rc == 1 ? 0 : rc;
    bool wide = strcmp(a.model, "wide") == 0;
    int per = (wide ? 1280 : 6400) / a.batch;
    bench_counts(&a, wide ? 5 : 50, 10, per > 3 ? per : 3);
    bench_set_threads(a.threads);
    bench_data d;
    if (bench_load_data(a.data, &d))
        return bench_fail(prog);
    nb_tensor *x = bench_rows(d.x_train, a.batch), *y = bench_rows(d.y_train, a.batch);
    bench_free_data(&d);
    nb_model *m = bench_model(a.model);
    nb_tensor *const *params = NULL;
    int np = m ? nb_model_params(m, &params) : -1;
    nb_graph *g = nb_graph_new();
    if (!x || !y || np < 0 || !g || nb_model_distribute(m))
        return bench_fail(prog);
    nb_model_set_training(m, true);
    bool ftz = nb_set_flush_subnormals(true);
    int64_t start, count;
    nb_dist_shard(a.batch, &start, &count);
    double weight = (double)count / a.batch, loss = 0;
    char workload[64], extra[320];
    snprintf(workload, sizeof workload, "dist_%s_b%d_r%d", a.model, a.batch, nb_dist_size());
    for (int r = 0; r <= a.reps && loss == loss; r++) {
        nb_dist_stats_get(NULL, true);
        bench_clock t0 = bench_now();
        for (int i = 0; i < (r ? a.n : a.warmup) && loss == loss; i++) {
            nb_tensor *xs = nb_slice(x, 0, start, start + count, 1),
                      *ys = nb_slice(y, 0, start, start + count, 1);
            nb_tensor *l = nb_model_loss(m, nb_model_forward(m, xs), ys);
            for (int k = 0; k < np; k++)
                nb_zero_grad(params[k]);
            double s = l ? nb_item(l) * weight : NAN;
            if (!l || nb_dist_backward(l, .weight = weight, .n = np, .params = params,
                                       .sums = &s, .nsums = 1) ||
                nb_optimizer_step(nb_model_optimizer(m), np, params))
                loss = NAN;
            else
                loss = s;
            nb_graph_reset(g);
        }
        bench_clock t = bench_since(t0);
        nb_dist_stats st;
        nb_dist_stats_get(&st, true);
        if (r == 0 || nb_dist_rank() != 0)
            continue; /* the warm-up; the other ranks' lines */
        double comm = 1e6 * st.comm_s / a.n, exposed = 1e6 * st.exposed_s / a.n;
        snprintf(extra, sizeof extra,
                 "\"model\": \"%s\", \"batch\": %d, \"ranks\": %d, \"comm_us\": %.1f, "
                 "\"exposed_us\": %.1f, \"overlap\": %.3f, \"buckets_per_step\": %.1f, "
                 "\"bytes_per_step\": %.0f, \"loss\": %.5g",
                 a.model, a.batch, nb_dist_size(), comm, exposed,
                 comm > 0 ? 1 - exposed / comm : 0, (double)st.buckets / a.n,
                 (double)st.bytes / a.n, loss);
        bench_emit("nabla", workload, a.threads, r, a.n, t, "us/step", 1e6, extra);
    }
    nb_set_flush_subnormals(ftz);
    rc = loss == loss ? 0 : bench_fail(prog);
    nb_graph_free(g);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    if (nb_dist_finalize() && rc == 0)
        rc = bench_fail(prog);
    return rc;
}
