/* A rank killed mid-training (tests/dist_fault.sh runs it on 2 ranks): at
 * batch 20 of the first epoch the last rank kills itself; every other rank
 * must come out of nb_fit with an error naming it, print it with the
 * seconds it took, and exit with status 3. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include "nabla/nabla.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double killed_at;

static int kill_last(nb_model *m, const nb_logs *lg, void *ctx)
{
    (void)m, (void)ctx;
    if (lg->batch == 19)
        killed_at = now();
    if (lg->batch == 19 && nb_dist_rank() == nb_dist_size() - 1)
        raise(SIGKILL);
    return 0;
}

int main(int argc, char **argv)
{
    if (nb_dist_init(&argc, &argv)) {
        fprintf(stderr, "dist_fault: %s\n", nb_last_error());
        return 1;
    }
    nb_rng rng = nb_rng_new(1);
    nb_tensor *x = nb_randn(NB_F32, 2, (int64_t[]){4096, 16}, &rng),
              *y = nb_zeros(NB_F32, 2, (int64_t[]){4096, 4});
    for (int64_t i = 0; i < 4096; i++)
        nb_set(y, 2, (int64_t[]){i, i % 4}, 1);
    nb_model *m = nb_sequential(nb_dense(32, .activation = NB_RELU, .input = 16),
                                nb_dense(4, .activation = NB_SOFTMAX));
    if (!m || nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY) ||
        nb_model_distribute(m)) {
        fprintf(stderr, "dist_fault: %s\n", nb_last_error());
        return 1;
    }
    nb_callback cb = {.on_batch = kill_last};
    const nb_history *h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 1000, .callbacks = &cb, .ncallbacks = 1);
    int rc = 0;
    if (!h) {
        printf("dist_fault: rank %d after %.1f s: %s (%s)\n", nb_dist_rank(), now() - killed_at,
               nb_last_error(), nb_error_code_name(nb_last_error_code()));
        rc = 3;
    }
    fflush(stdout);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    if (nb_dist_finalize() && rc == 0)
        rc = 1;
    return rc;
}
