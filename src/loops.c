/* Broadcast iteration and reduction attribute helpers shared by ops/. */
#include "internal.h"

void nb__iter_init(nb_iter *it, const nb_tensor *y, int nin, nb_tensor *const in[])
{
    int nd = y->ndim;
    int64_t shape[NB_MAX_DIMS], st[3][NB_MAX_DIMS];
    memcpy(shape, y->shape, sizeof shape);
    for (int k = 0; k < nin; k++)
        nb__bstrides(in[k], nd, y->shape, st[k]);
    /* Collapse dim i into i+1 when every operand steps through both as one. */
    int m = 0;
    int64_t cs[NB_MAX_DIMS], cst[3][NB_MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        if (shape[i] == 1)
            continue;
        if (m > 0) {
            bool merge = true;
            for (int k = 0; k < nin; k++)
                if (cst[k][m - 1] != st[k][i] * shape[i])
                    merge = false;
            if (merge) {
                cs[m - 1] *= shape[i];
                for (int k = 0; k < nin; k++)
                    cst[k][m - 1] = st[k][i];
                continue;
            }
        }
        cs[m] = shape[i];
        for (int k = 0; k < nin; k++)
            cst[k][m] = st[k][i];
        m++;
    }
    it->nin = nin;
    if (m == 0) {
        it->inner = y->numel ? 1 : 0;
        it->ndim = 0;
        for (int k = 0; k < nin; k++)
            it->is[k] = 0;
    } else {
        it->inner = cs[m - 1];
        for (int k = 0; k < nin; k++)
            it->is[k] = cst[k][m - 1];
        /* An inner stride other than 0/1 cannot happen after collapsing a
         * contiguous operand, but be safe: fall back to one element rows. */
        bool ok = true;
        for (int k = 0; k < nin; k++)
            ok &= it->is[k] == 0 || it->is[k] == 1;
        if (!ok) {
            cs[m] = 1;
            for (int k = 0; k < nin; k++)
                cst[k][m] = 0;
            m++;
            it->inner = 1;
        }
        it->ndim = m - 1;
        for (int i = 0; i < m - 1; i++) {
            it->shape[i] = cs[i];
            for (int k = 0; k < nin; k++)
                it->st[k][i] = cst[k][i];
        }
    }
    it->outer = it->inner ? y->numel / it->inner : 0;
    for (int i = 0; i < NB_MAX_DIMS; i++)
        it->idx[i] = 0;
    for (int k = 0; k < 3; k++)
        it->off[k] = 0;
}

void nb__iter_next(nb_iter *it)
{
    for (int i = it->ndim - 1; i >= 0; i--) {
        for (int k = 0; k < it->nin; k++)
            it->off[k] += it->st[k][i];
        if (++it->idx[i] < it->shape[i])
            return;
        for (int k = 0; k < it->nin; k++)
            it->off[k] -= it->st[k][i] * it->shape[i];
        it->idx[i] = 0;
    }
}

int nb__reduce_attr(const char *fn, const nb_tensor *x, int naxes, const int *axes,
                    bool keepdims, nb_reduce_attr *attr)
{
    char b[96];
    attr->keepdims = keepdims;
    attr->mask = 0;
    if (naxes == 0) {
        attr->mask = (1u << x->ndim) - 1u;
        return 0;
    }
    if (naxes < 0 || !axes)
        return nb__error("%s: axes list is invalid (%d axes)", fn, naxes);
    for (int i = 0; i < naxes; i++) {
        int a = nb__axis(axes[i], x->ndim);
        if (a < 0)
            return nb__error("%s: axis %d is out of range for shape %s", fn, axes[i],
                             nb__shape_str(x, b));
        if (attr->mask & (1u << a))
            return nb__error("%s: axis %d is repeated", fn, axes[i]);
        attr->mask |= 1u << a;
    }
    return 0;
}

int nb__reduce_shape(nb_meta *out, const nb_tensor *x, const nb_reduce_attr *a)
{
    out->dtype = x->dtype;
    out->ndim = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (a->mask & (1u << i)) {
            if (a->keepdims)
                out->shape[out->ndim++] = 1;
        } else {
            out->shape[out->ndim++] = x->shape[i];
        }
    }
    return 0;
}

void nb__keep_shape(const nb_tensor *x, unsigned mask, int64_t *shape)
{
    for (int i = 0; i < x->ndim; i++)
        shape[i] = (mask & (1u << i)) ? 1 : x->shape[i];
}

/* Reduction driver: x's dims are grouped into runs of reduced / kept axes;
 * the last run is the inner loop. KIND 0 = sum, 1 = max. */
#define REDUCE(T, y, x, mask, KIND)                                            \
    do {                                                                       \
        int64_t cs[NB_MAX_DIMS], xs[NB_MAX_DIMS], ys[NB_MAX_DIMS];             \
        bool red[NB_MAX_DIMS];                                                 \
        int m = 0;                                                             \
        for (int i = 0; i < (x)->ndim; i++) {                                  \
            bool r = ((mask) >> i) & 1u;                                       \
            if ((x)->shape[i] == 1)                                            \
                continue;                                                      \
            if (m > 0 && red[m - 1] == r)                                      \
                cs[m - 1] *= (x)->shape[i];                                    \
            else {                                                             \
                cs[m] = (x)->shape[i];                                         \
                red[m++] = r;                                                  \
            }                                                                  \
        }                                                                      \
        int64_t s = 1, o = 1;                                                  \
        for (int i = m - 1; i >= 0; i--) {                                     \
            xs[i] = s;                                                         \
            s *= cs[i];                                                        \
            ys[i] = red[i] ? 0 : o;                                            \
            if (!red[i])                                                       \
                o *= cs[i];                                                    \
        }                                                                      \
        T *Y = (T *)(y)->data;                                                 \
        const T *X = (const T *)(x)->data;                                     \
        for (int64_t j = 0; j < (y)->numel; j++)                               \
            Y[j] = KIND ? -(T)INFINITY : (T)0;                                 \
        if ((x)->numel == 0)                                                   \
            break;                                                             \
        if (m == 0) {                                                          \
            Y[0] = KIND ? X[0] : X[0];                                         \
            break;                                                             \
        }                                                                      \
        int64_t idx[NB_MAX_DIMS] = {0}, inner = cs[m - 1];                     \
        int64_t outer = (x)->numel / inner, xo = 0, yo = 0;                    \
        for (int64_t r = 0; r < outer; r++) {                                  \
            const T *px = X + xo;                                              \
            T *py = Y + yo;                                                    \
            if (red[m - 1]) {                                                  \
                double acc = KIND ? (double)px[0] : 0.0;                       \
                for (int64_t k = 0; k < inner; k++)                            \
                    acc = KIND ? (px[k] > acc || isnan(px[k]) ? px[k] : acc)   \
                               : acc + px[k];                                  \
                *py = KIND ? ((T)acc > *py || isnan(acc) ? (T)acc : *py)       \
                           : *py + (T)acc;                                     \
            } else {                                                           \
                for (int64_t k = 0; k < inner; k++)                            \
                    py[k] = KIND ? (px[k] > py[k] || isnan(px[k]) ? px[k] : py[k]) \
                                 : py[k] + px[k];                              \
            }                                                                  \
            for (int i = m - 2; i >= 0; i--) {                                 \
                xo += xs[i];                                                   \
                yo += ys[i];                                                   \
                if (++idx[i] < cs[i])                                          \
                    break;                                                     \
                xo -= xs[i] * cs[i];                                           \
                yo -= ys[i] * cs[i];                                           \
                idx[i] = 0;                                                    \
            }                                                                  \
        }                                                                      \
    } while (0)

#include <math.h>

void nb__reduce_sum(nb_tensor *y, const nb_tensor *x, unsigned mask)
{
    NB_BY_DTYPE(x, REDUCE, y, x, mask, 0);
}

void nb__reduce_max(nb_tensor *y, const nb_tensor *x, unsigned mask)
{
    NB_BY_DTYPE(x, REDUCE, y, x, mask, 1);
}
