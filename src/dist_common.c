/* What nb_dist_* does the same with MPI (src/dist.c) and without it
 * (src/dist_none.c): the settings, sharding, argument checks and the
 * backward pass of one rank. */
#include "internal.h"
#include "nabla/dist.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

nb_dist_settings nb__dist = {.timeout = 60, .bucket_bytes = 1u << 20};

double nb_dist_timeout(void) { return nb__dist.timeout; }

int nb_dist_set_timeout(double seconds)
{
    if (!(seconds > 0) || !isfinite(seconds))
        return nb__error("nb_dist_set_timeout: seconds must be positive and finite, got %g",
                         seconds);
    nb__dist.timeout = seconds;
    return 0;
}

int nb_dist_set_bucket_bytes(size_t bytes)
{
    if (bytes < 64)
        return nb__error("nb_dist_set_bucket_bytes: %zu bytes; at least 64", bytes);
    nb__dist.bucket_bytes = bytes;
    return 0;
}

void nb_dist_shard(int64_t n, int64_t *start, int64_t *count)
{
    int64_t rank = nb_dist_rank(), size = nb_dist_size();
    int64_t q = n > 0 ? n / size : 0, r = n > 0 ? n % size : 0;
    if (start)
        *start = rank * q + (rank < r ? rank : r);
    if (count)
        *count = q + (rank < r);
}

int nb__dist_check_tensors(const char *fn, int n, nb_tensor *const t[])
{
    if (n < 0 || (n > 0 && !t))
        return nb__error("%s: %d tensors at %p", fn, n, (const void *)t);
    for (int i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "tensor %d", i + 1);
        if (nb__usable(fn, what, t[i]))
            return -1;
        if (t[i]->lifetime != NB_HEAP || !t[i]->contiguous ||
            (t[i]->dtype != NB_F32 && t[i]->dtype != NB_F64))
            return nb__error("%s: tensor %d must be a contiguous f32 or f64 heap tensor", fn,
                             i + 1);
    }
    return 0;
}

int nb__dist_check_backward(const char *fn, const nb_dist_backward_args *a)
{
    if (a->loss && nb__usable(fn, "loss", a->loss))
        return -1;
    if (!isfinite(a->weight))
        return nb__error("%s: weight is %g", fn, a->weight);
    if (a->n < 1 || !a->params)
        return nb__error("%s: needs n >= 1 params (n = %d)", fn, a->n);
    if (a->nsums < 0 || (a->nsums > 0 && !a->sums))
        return nb__error("%s: %d sums at %p", fn, a->nsums, (void *)a->sums);
    for (int i = 0; i < a->n; i++) {
        char what[32];
        snprintf(what, sizeof what, "param %d", i + 1);
        if (nb__usable(fn, what, a->params[i]))
            return -1;
        if (!a->params[i]->requires_grad || a->params[i]->lifetime != NB_HEAP ||
            (a->params[i]->dtype != NB_F32 && a->params[i]->dtype != NB_F64))
            return nb__error("%s: param %d must be an f32 or f64 heap tensor that requires "
                             "grad", fn, i + 1);
        for (int j = 0; j < i; j++)
            if (a->params[j] == a->params[i])
                return nb__error("%s: params %d and %d are the same tensor", fn, j + 1, i + 1);
    }
    return 0;
}

int nb__dist_local_backward(const nb_dist_backward_args *a,
                            bool (*hook)(nb_tensor *, nb_tensor *, void *), void *ctx)
{
    if (!a->loss)
        return 0; /* no rows on this rank: it adds nothing */
    nb_tensor *seed = nb_full_like(a->loss, a->weight);
    if (!seed)
        return -1;
    nb_thread *th = nb__thread();
    th->grad_ready = hook;
    th->grad_ready_ctx = ctx;
    int rc = nb_backward(a->loss, .seed = seed);
    th->grad_ready = NULL;
    th->grad_ready_ctx = NULL;
    return rc;
}

int nb__dist_grad_or_zeros(const char *fn, nb_tensor *p)
{
    if (p->grad)
        return 0;
    p->grad = nb__new_heap_tensor(fn, p->dtype, p->ndim, p->shape);
    if (!p->grad)
        return -1;
    memset(nb__ptr(p->grad), 0, p->grad->own.bytes);
    return 0;
}

int nb__dist_backward_alone(const char *fn, const nb_dist_backward_args *a)
{
    if (nb__dist_local_backward(a, NULL, NULL))
        return -1;
    /* As with several ranks, every parameter has a gradient afterwards. */
    for (int i = 0; i < a->n; i++)
        if (nb__dist_grad_or_zeros(fn, a->params[i]))
            return -1;
    return 0;
}
