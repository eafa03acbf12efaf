/* include/nabla/dist.h in a build without MPI: one rank, 0 of 1; the
 * collectives act on it alone, so a program written for ranks runs as one
 * process. */
#include "internal.h"
#include "nabla/dist.h"

#include <math.h>
#include <string.h>

bool nb_dist_built(void) { return false; }

static int unbuilt(const char *fn)
{
    return nb__error_code(NB_ERR_DIST, "%s: nabla was built without MPI (install "
                          "libopenmpi-dev or libmpich-dev and set up the build again)", fn);
}

int nb_dist_init(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return unbuilt("nb_dist_init");
}

int nb_dist_attach(const void *comm)
{
    (void)comm;
    return unbuilt("nb_dist_attach");
}

int nb_dist_finalize(void) { return 0; }
int nb_dist_rank(void) { return 0; }
int nb_dist_size(void) { return 1; }
int nb_dist_allreduce(double *v, int n)
{
    if (n < 0 || (n > 0 && !v))
        return nb__error("nb_dist_allreduce: %d values at %p", n, (void *)v);
    return 0;
}

int nb_dist_broadcast(int n, nb_tensor *const tensors[])
{
    return nb__dist_check_tensors("nb_dist_broadcast", n, tensors);
}

int nb_dist_average(int n, nb_tensor *const tensors[])
{
    return nb__dist_check_tensors("nb_dist_average", n, tensors);
}

int nb_dist_gather_rows(nb_tensor *t)
{
    if (!t) /* a pending error made the NULL: it stays */
        return nb__has_error() ? -1 : nb__error("nb_dist_gather_rows: tensor is NULL");
    if (nb__dist_check_tensors("nb_dist_gather_rows", 1, &t))
        return -1;
    return t->ndim < 1 ? nb__error("nb_dist_gather_rows: a 0-d tensor has no rows") : 0;
}

int nb_dist_check(const char *fn, int n, const int64_t v[], const char *const names[])
{
    if (n < 1 || !v || !names)
        return nb__error("%s: %d values at %p named at %p", fn ? fn : "nb_dist_check", n,
                         (const void *)v, (const void *)names);
    return 0;
}

void nb_dist_stats_get(nb_dist_stats *s, bool reset)
{
    (void)reset;
    if (s)
        memset(s, 0, sizeof *s);
}

int nb_dist_backward_(nb_dist_backward_args a)
{
    const char *fn = "nb_dist_backward";
    return nb__dist_check_backward(fn, &a) ? -1 : nb__dist_backward_alone(fn, &a);
}
