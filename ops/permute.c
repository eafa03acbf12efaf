/* y = permute(x, perm): y.shape[i] = x.shape[perm[i]], a view with the
 * strides permuted the same way;  dx = permute(dy, inverse(perm)) with
 * inverse[perm[i]] = i.
 * perm must name every dimension of x once (negative entries count from the
 * end; the stored attribute holds them normalised). */
#include "internal.h"

#include <stdio.h>

typedef struct {
    int ndim;
    int perm[NB_MAX_DIMS];
} permute_attr;

static int permute_shape(nb_meta *out, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const permute_attr *a = attr;
    char b[NB_SHAPE_STR_LEN], p[NB_SHAPE_STR_LEN];
    unsigned seen = 0;
    bool ok = a->ndim == x[0]->ndim;
    for (int i = 0; ok && i < a->ndim; i++) {
        int d = a->perm[i];
        if (d < 0 || d >= a->ndim || (seen & (1u << d)))
            ok = false;
        else
            seen |= 1u << d;
    }
    if (!ok) {
        /* Show the permutation as given, e.g. (0,0,1). */
        int k = 0, nd = a->ndim < 0 ? 0 : (a->ndim > NB_MAX_DIMS ? NB_MAX_DIMS : a->ndim);
        p[k++] = '(';
        for (int i = 0; i < nd && k < 80; i++)
            k += snprintf(p + k, sizeof p - (size_t)k, i ? ",%d" : "%d", a->perm[i]);
        p[k++] = ')';
        p[k] = '\0';
        return nb__error("nb_permute: %s is not a permutation of the %d dimensions of %s",
                         p, x[0]->ndim, nb_shape_str(x[0], b));
    }
    out->dtype = x[0]->dtype;
    out->ndim = a->ndim;
    out->view = true;
    out->offset = x[0]->offset;
    for (int i = 0; i < a->ndim; i++) {
        out->shape[i] = x[0]->shape[a->perm[i]];
        out->strides[i] = x[0]->strides[a->perm[i]];
    }
    return 0;
}

static void permute_backward(nb_tensor *dx[], nb_tensor *dy, nb_tensor *y,
                             nb_tensor *const x[], int n, const void *attr)
{
    (void)y, (void)x, (void)n;
    const permute_attr *a = attr;
    int inv[NB_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++)
        inv[a->perm[i]] = i;
    dx[0] = nb_permute(dy, a->ndim, inv);
}

/* A batch when dimension 0 stays first. */
static unsigned permute_batch(nb_tensor *const x[], int n, const void *attr)
{
    (void)x, (void)n;
    const permute_attr *a = attr;
    return a->ndim > 0 && a->perm[0] == 0 ? NB_INPUT(0) : 0;
}

static const permute_attr p10 = {2, {1, 0}}, p201 = {3, {2, 0, 1}}, p120 = {3, {1, 2, 0}},
                          p0213 = {4, {0, 2, 1, 3}}, p0 = {1, {0}};
static const nb_op_example examples[] = {
    {.n = 1, .ndim = {2}, .shape = {{3, 4}}, .attr = &p10},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &p201},
    {.n = 1, .ndim = {3}, .shape = {{2, 3, 4}}, .attr = &p120},
    {.n = 1, .ndim = {4}, .shape = {{2, 3, 1, 2}}, .attr = &p0213},
    {.n = 1, .ndim = {1}, .shape = {{5}}, .attr = &p0},
    {.n = 0},
};

const nb_op nb_op_permute = {.name = "permute", .arity = 1, .attr_size = sizeof(permute_attr),
                             .shape = permute_shape,
                             .backward = permute_backward, .saves = NB_SAVES_NONE,
                             .batch = permute_batch,
                             .examples = examples};

nb_tensor *nb_permute(nb_tensor *x, int ndim, const int *perm)
{
    permute_attr a = {.ndim = ndim};
    if (x && (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !perm))) {
        char b[NB_SHAPE_STR_LEN];
        nb__error("nb_permute: needs a permutation of the %d dimensions of %s, got %d entries%s",
                  x->ndim, nb_shape_str(x, b), ndim, ndim > 0 && !perm ? " and NULL" : "");
        return NULL;
    }
    for (int i = 0; x && i < ndim; i++)
        a.perm[i] = perm[i] < 0 && perm[i] >= -ndim ? perm[i] + ndim : perm[i];
    return nb_apply(&nb_op_permute, &x, 1, &a);
}
