/* y = permute(x, perm): y.shape[i] = x.shape[perm[i]], copied into a new
 * contiguous tensor;  dx = permute(dy, inverse(perm)) with inverse[perm[i]] = i.
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
    char b[96], p[96];
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
                         p, x[0]->ndim, nb__shape_str(x[0], b));
    }
    out->dtype = x[0]->dtype;
    out->ndim = a->ndim;
    for (int i = 0; i < a->ndim; i++)
        out->shape[i] = x[0]->shape[a->perm[i]];
    return 0;
}

/* Walks y in order; the source offset follows x's strides permuted. The
 * innermost dimension is a strided copy loop. */
#define PERMUTE(T, y, x, a)                                                    \
    do {                                                                       \
        int nd = (y)->ndim;                                                    \
        T *Y = (T *)(y)->data;                                                 \
        const T *X = (const T *)(x)->data;                                     \
        if ((y)->numel == 0)                                                   \
            break;                                                             \
        if (nd == 0) {                                                         \
            Y[0] = X[0];                                                       \
            break;                                                             \
        }                                                                      \
        int64_t xst[NB_MAX_DIMS], st[NB_MAX_DIMS], idx[NB_MAX_DIMS] = {0};     \
        nb__strides((x)->ndim, (x)->shape, xst);                               \
        for (int i = 0; i < nd; i++)                                           \
            st[i] = xst[(a)->perm[i]];                                         \
        int64_t len = (y)->shape[nd - 1], s = st[nd - 1], off = 0;             \
        for (int64_t r = 0; r < (y)->numel / len; r++, Y += len) {             \
            const T *px = X + off;                                             \
            for (int64_t j = 0; j < len; j++)                                  \
                Y[j] = px[j * s];                                              \
            for (int i = nd - 2; i >= 0; i--) {                                \
                off += st[i];                                                  \
                if (++idx[i] < (y)->shape[i])                                  \
                    break;                                                     \
                off -= st[i] * (y)->shape[i];                                  \
                idx[i] = 0;                                                    \
            }                                                                  \
        }                                                                      \
    } while (0)

static void permute_forward(nb_tensor *y, nb_tensor *const x[], int n, const void *attr)
{
    (void)n;
    const permute_attr *a = attr;
    NB_BY_DTYPE(y, PERMUTE, y, x[0], a);
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
                             .shape = permute_shape, .forward = permute_forward,
                             .backward = permute_backward, .saves = NB_SAVES_NONE,
                             .examples = examples};

nb_tensor *nb_permute(nb_tensor *x, int ndim, const int *perm)
{
    permute_attr a = {.ndim = ndim};
    if (x && (ndim < 0 || ndim > NB_MAX_DIMS || (ndim > 0 && !perm))) {
        char b[96];
        nb__error("nb_permute: needs a permutation of the %d dimensions of %s, got %d entries%s",
                  x->ndim, nb__shape_str(x, b), ndim, ndim > 0 && !perm ? " and NULL" : "");
        return NULL;
    }
    for (int i = 0; x && i < ndim; i++)
        a.perm[i] = perm[i] < 0 && perm[i] >= -ndim ? perm[i] + ndim : perm[i];
    return nb_apply(&nb_op_permute, &x, 1, &a);
}
