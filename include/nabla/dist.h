/* nabla: data-parallel training over MPI (docs/distributed.md).
 *
 * Every rank (process) holds the whole model and takes its shard of each
 * global batch; the gradients are summed over the ranks by non-blocking
 * MPI allreduces over buckets of contiguous gradient memory, each started
 * as soon as the backward pass has finished its gradients. nb_fit,
 * nb_evaluate and nb_predict of a model given to nb_model_distribute (nn.h)
 * do all of it; the calls below are for hand-written loops.
 *
 * Call these from one thread (MPI is started with MPI_THREAD_FUNNELED).
 * Every call marked "collective" must be made by every rank, in the same
 * order. None waits for ever: a rank that does not take part within the
 * timeout (nb_dist_set_timeout) makes it fail on the others with an error
 * (NB_ERR_DIST) naming that rank, and every later collective fails at
 * once. Without MPI (a build without it, or before nb_dist_init) there is
 * one rank, 0 of 1, and the collectives act on it alone. */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether this nabla was built with MPI (meson's mpi feature). */
bool nb_dist_built(void);
/* Starts MPI unless the program already has (MPI_Init_thread; argc and argv
 * may be NULL) and joins every process of MPI_COMM_WORLD (collective).
 * nabla works on duplicates of the communicator, with errors returned
 * rather than fatal. A second call does nothing. 0 or -1 (NB_ERR_DIST, also
 * in a build without MPI). */
int nb_dist_init(int *argc, char ***argv);
/* The same on a communicator the program already has: comm points to an
 * MPI_Comm, and MPI is initialised (collective over it). */
int nb_dist_attach(const void *comm);
/* Frees nabla's communicators, and finalises MPI if nb_dist_init started
 * it. After a lost rank MPI is not finalised (MPI_Finalize would wait for
 * it): -1 then, and the process should exit with a failure status. */
int nb_dist_finalize(void);
/* This process's rank and the number of ranks: 0 and 1 without MPI. */
int nb_dist_rank(void);
int nb_dist_size(void);
/* How long a collective waits for the other ranks: seconds > 0; 60 by
 * default, or the environment's NB_DIST_TIMEOUT when nb_dist_init runs. */
int nb_dist_set_timeout(double seconds);
double nb_dist_timeout(void);
/* The gradient bucket size in bytes (default 1 MiB; a larger tensor is a
 * bucket of its own). */
int nb_dist_set_bucket_bytes(size_t bytes);

/* This rank's rows [*start, *start + *count) of n: n split as evenly as
 * possible, the lower ranks taking one row more. */
void nb_dist_shard(int64_t n, int64_t *start, int64_t *count);

/* Collective: v[0..n) summed over the ranks, in place on every rank. */
int nb_dist_allreduce(double *v, int n);
/* Collective: every rank's values of tensors[0..n) become rank 0's. The
 * tensors are contiguous heap tensors, f32 or f64, of the same shapes and
 * dtypes on every rank (a difference is an error on every rank). */
int nb_dist_broadcast(int n, nb_tensor *const tensors[]);
/* Collective: the tensors (as above) become their mean over the ranks. */
int nb_dist_average(int n, nb_tensor *const tensors[]);
/* Collective: t (contiguous, the same shape on every rank) holds this
 * rank's nb_dist_shard of its rows; afterwards every rank holds them all. */
int nb_dist_gather_rows(nb_tensor *t);
/* Collective: checks that every rank passes the same values v[0..n),
 * named names[i] ("batch_size"); otherwise fails on every rank with
 * "fn: rank 1 has batch_size 64, rank 0 has 32". */
int nb_dist_check(const char *fn, int n, const int64_t v[], const char *const names[]);

typedef struct nb_dist_backward_args {
    nb_tensor *loss;   /* this rank's loss; NULL when it has no rows this step */
    double weight;     /* its weight in the global loss: for a mean over a global batch of
                          B rows of which this rank has k, k / B */
    int n;             /* the parameters whose gradients are summed */
    nb_tensor *const *params;
    double *sums;      /* optional: nsums values summed over the ranks in place, */
    int nsums;         /* carried by the last allreduce (losses, metrics) */
} nb_dist_backward_args;

/* Collective: nb_backward(loss, .seed = weight) on every rank, with the
 * gradients of params summed over the ranks as the backward goes, so that
 * every rank's .grad is that of the sum of weight * loss over the ranks
 * (the global batch's mean gradient, with the weights above). Gradients
 * accumulate into .grad as nb_backward's do. A failure on any rank is an
 * error on every rank, with the gradients unusable.
 *   nb_dist_backward(loss, .weight = (double)k / B, .n = n, .params = ps) */
#define nb_dist_backward(...) nb_dist_backward_((nb_dist_backward_args){.loss = __VA_ARGS__})
int nb_dist_backward_(nb_dist_backward_args a);

/* Where the time of nb_dist_backward went on this rank, summed over the
 * calls since the last reset. */
typedef struct nb_dist_stats {
    int64_t calls, buckets, bytes; /* bytes of gradients allreduced */
    double backward_s;  /* in nb_dist_backward, in all */
    double comm_s;      /* each bucket's allreduce, from its start to its end, summed */
    double exposed_s;   /* waiting for the allreduces after the backward had finished */
} nb_dist_stats;
/* Copies the statistics into *s; with reset, zeroes them. */
void nb_dist_stats_get(nb_dist_stats *s, bool reset);

#ifdef __cplusplus
}
#endif
#endif
