/* Batches of a data set: the row gathering and shuffling nb_fit uses, and
 * nb_batches, which gives the same batches to a loop of one's own. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* A row of bytes to floats (the rounding: nn_internal.h). */
NB_KERNEL_TARGETS static void row_u8_f32(float *o, const uint8_t *b, int64_t n, double scale)
{
    for (int64_t j = 0; j < n; j++)
        o[j] = (float)((double)b[j] * scale);
}

NB_KERNEL_TARGETS static void row_u8_f64(double *o, const uint8_t *b, int64_t n, double scale)
{
    for (int64_t j = 0; j < n; j++)
        o[j] = (double)b[j] * scale;
}

void nn_gather_rows(nb_tensor *dst, const nb_tensor *src, const int64_t *idx, int64_t first,
                    int64_t n, double scale)
{
    int64_t rows = nb_dim(src, 0), cols = nb_numel(src) / (rows ? rows : 1);
    char *d = nb_data(dst);
    const char *s = nb_data(src);
    bool f32 = nb_dtype_of(dst) == NB_F32;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = idx ? idx[i] : first + i;
        if (nb_dtype_of(src) != NB_U8) {
            size_t row = (size_t)cols * nb_dtype_size(nb_dtype_of(src));
            memcpy(d + (size_t)i * row, s + (size_t)r * row, row);
        } else if (f32) {
            row_u8_f32((float *)(void *)d + i * cols, (const uint8_t *)s + r * cols, cols, scale);
        } else {
            row_u8_f64((double *)(void *)d + i * cols, (const uint8_t *)s + r * cols, cols, scale);
        }
    }
    nb_bump_version(dst);
}

void nn_prefetch_rows(const nb_tensor *src, const int64_t *idx, int64_t n)
{
#if defined(__GNUC__)
    int64_t rows = nb_dim(src, 0);
    size_t row = (size_t)(nb_numel(src) / (rows ? rows : 1)) * nb_dtype_size(nb_dtype_of(src));
    const char *s = nb_data(src);
    for (int64_t i = 0; i < n && row; i++) {
        const char *r = s + (size_t)idx[i] * row;
        for (size_t o = 0; o < row; o += 64)
            __builtin_prefetch(r + o);
        __builtin_prefetch(r + row - 1);
    }
#else
    (void)src, (void)idx, (void)n;
#endif
}

void nn_shuffle(int64_t *idx, int64_t n, nb_rng *rng)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nb_rng_below(rng, (uint64_t)(i + 1)), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* ---- nb_batches ---- */

struct nb_batches {
    nb_dataset d;          /* contiguous: the caller's tensors or own[] */
    nb_tensor *own[2];     /* packed copies of strided views */
    nb_batches_opts o;
    int64_t n, next;       /* rows; the first row of the next batch */
    int64_t bs;            /* rows of x[0]: batch_size, or n when that is fewer */
    bool ended;            /* the last call ended an epoch */
    int64_t *idx;
    nb_rng rng;
    nb_tensor *x[2], *y[2]; /* batch_size rows, and the last batch's (fewer) */
};

static const char *const fn_new = "nb_batches_new";

/* A heap tensor of dtype shaped like src with `rows` rows. */
static nb_tensor *rows_of(const nb_tensor *src, int64_t rows, nb_dtype dtype)
{
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, nb_shape(src), (size_t)nb_ndim(src) * sizeof(int64_t));
    shape[0] = rows;
    return nn_zeros(fn_new, dtype, nb_ndim(src), shape);
}

static int check(nb_dataset d, nb_batches_opts o)
{
    if (nb_check_tensor(fn_new, "x", d.x) < 0 || (d.y && nb_check_tensor(fn_new, "y", d.y) < 0))
        return -1;
    if (nb_ndim(d.x) < 1)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: x is 0-d; it needs a batch axis", fn_new);
    if (d.y && nb_ndim(d.y) < 1)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: y is 0-d; it needs a batch axis", fn_new);
    if (d.y && nb_dim(d.y, 0) != nb_dim(d.x, 0))
        return nb_set_error_code(NB_ERR_SHAPE, "%s: x has %lld rows, y %lld", fn_new,
                                 (long long)nb_dim(d.x, 0), (long long)nb_dim(d.y, 0));
    if (nb_dim(d.x, 0) < 1)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: the data set has no rows", fn_new);
    if (o.batch_size < 0)
        return nb_set_error("%s: batch_size must be positive (0: 32), got %d", fn_new,
                            o.batch_size);
    if (o.dtype != 0 && o.dtype != NB_F32 && o.dtype != NB_F64)
        return nb_set_error_code(NB_ERR_DTYPE, "%s: dtype must be f32 or f64 (0: f32), got %d",
                                 fn_new, (int)o.dtype);
    bool u8 = nb_dtype_of(d.x) == NB_U8;
    if (!isfinite(d.scale))
        return nb_set_error("%s: scale is %g; it must be finite (0: 1)", fn_new, d.scale);
    if (!u8 && d.scale != 0 && d.scale != 1)
        return nb_set_error("%s: scale is %g, but x is %s: scale converts u8 x only", fn_new,
                            d.scale, nb_dtype_name(nb_dtype_of(d.x)));
    if (!u8 && o.dtype != 0 && o.dtype != nb_dtype_of(d.x))
        return nb_set_error_code(NB_ERR_DTYPE, "%s: dtype %s converts u8 x only; x is %s",
                                 fn_new, nb_dtype_name(o.dtype), nb_dtype_name(nb_dtype_of(d.x)));
    if (o.drop_last && nb_dim(d.x, 0) < (o.batch_size ? o.batch_size : 32))
        return nb_set_error_code(NB_ERR_SHAPE, "%s: drop_last with %lld rows and batch_size %d "
                                 "leaves no batch", fn_new, (long long)nb_dim(d.x, 0),
                                 o.batch_size ? o.batch_size : 32);
    return 0;
}

nb_batches *nb_batches_new_(nb_batches_opts o)
{
    nb_dataset d = o.data;
    if (check(d, o) < 0)
        return NULL;
    nb_batches *b = nb_mem_alloc(sizeof *b);
    if (!b) {
        nn_blame(fn_new);
        return NULL;
    }
    memset(b, 0, sizeof *b);
    b->o = o;
    if (!b->o.batch_size)
        b->o.batch_size = 32;
    b->d = d;
    b->n = nb_dim(d.x, 0);
    nb_tensor **parts[2] = {&b->d.x, &b->d.y};
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        if (*parts[i] && !nb_is_contiguous(*parts[i]) && !(b->own[i] = *parts[i] = nb_clone(*parts[i])))
            rc = nn_blame(fn_new);
    int64_t bs = b->bs = b->o.batch_size < b->n ? b->o.batch_size : b->n, tail = b->n % bs;
    nb_dtype xd = nb_dtype_of(d.x) == NB_U8 ? (o.dtype ? o.dtype : NB_F32) : nb_dtype_of(d.x);
    nb_dtype yd = d.y && nb_dtype_of(d.y) == NB_U8 ? NB_F32 : d.y ? nb_dtype_of(d.y) : NB_F32;
    if (rc == 0 && !(b->idx = nb_mem_alloc((size_t)b->n * sizeof *b->idx)))
        rc = nn_blame(fn_new);
    for (int k = 0; k < 2 && rc == 0; k++) {
        int64_t rows = k ? tail : bs;
        if (!rows)
            continue;
        if (!(b->x[k] = rows_of(b->d.x, rows, xd)) || (d.y && !(b->y[k] = rows_of(b->d.y, rows, yd))))
            rc = -1;
    }
    if (rc < 0) {
        nb_batches_free(b);
        return NULL;
    }
    for (int64_t i = 0; i < b->n; i++)
        b->idx[i] = i;
    b->rng = nb_rng_new(o.seed);
    if (!o.no_shuffle)
        nn_shuffle(b->idx, b->n, &b->rng);
    return b;
}

int64_t nb_batches_count(const nb_batches *b)
{
    if (!b)
        return nn_has_error() ? -1 : nb_set_error("nb_batches_count: the iterator is NULL");
    int64_t bs = b->o.batch_size;
    return b->o.drop_last ? b->n / bs : (b->n + bs - 1) / bs;
}

int nb_batches_next(nb_batches *b, nb_tensor **x, nb_tensor **y)
{
    if (x)
        *x = NULL;
    if (y)
        *y = NULL;
    if (!b || !x)
        return nn_has_error() ? -1 : nb_set_error("nb_batches_next: %s is NULL",
                                                  !b ? "the iterator" : "x");
    if (b->d.y && !y)
        return nb_set_error("nb_batches_next: y is NULL, but the data set has y");
    if (b->ended) { /* the next epoch: the order the last one left, shuffled again */
        b->ended = false;
        b->next = 0;
        if (!b->o.no_shuffle)
            nn_shuffle(b->idx, b->n, &b->rng);
    }
    int64_t k = b->n - b->next < b->o.batch_size ? b->n - b->next : b->o.batch_size;
    if (k == 0 || (b->o.drop_last && k < b->o.batch_size)) {
        b->ended = true;
        return 0;
    }
    int w = k < b->bs;
    nn_gather_rows(b->x[w], b->d.x, b->idx + b->next, 0, k, b->d.scale != 0 ? b->d.scale : 1.0);
    *x = b->x[w];
    if (b->d.y) {
        nn_gather_rows(b->y[w], b->d.y, b->idx + b->next, 0, k, 1.0);
        *y = b->y[w];
    }
    b->next += k;
    int64_t ahead = b->n - b->next < b->o.batch_size ? b->n - b->next : b->o.batch_size;
    nn_prefetch_rows(b->d.x, b->idx + b->next, ahead);
    if (b->d.y)
        nn_prefetch_rows(b->d.y, b->idx + b->next, ahead);
    return 1;
}

void nb_batches_free(nb_batches *b)
{
    if (!b)
        return;
    for (int k = 0; k < 2; k++) {
        nb_free(b->x[k]);
        nb_free(b->y[k]);
        nb_free(b->own[k]);
    }
    nb_mem_free(b->idx);
    nb_mem_free(b);
}
