/* Weight initialisers (include/nabla/init.h): Keras's VarianceScaling
 * family, orthogonal and constants, on nabla's (Keras's) layouts. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* w a contiguous f32/f64 heap tensor with at least min_dims axes, rng
 * present (need_rng): 0, or -1 with an error naming fn. */
static int check(const char *fn, const nb_tensor *w, const nb_rng *rng, bool need_rng,
                 int min_dims)
{
    if (nb_check_tensor(fn, "w", w) < 0)
        return -1;
    if (need_rng && !rng)
        return nb_set_error("%s: rng is NULL", fn);
    nb_dtype d = nb_dtype_of(w);
    if (d != NB_F32 && d != NB_F64)
        return nb_set_error_code(NB_ERR_DTYPE, "%s: w is %s; initialisers fill f32 or f64", fn,
                                 nb_dtype_name(d));
    if (!nb_is_heap(w))
        return nb_set_error_code(NB_ERR_STATE, "%s: w is a graph tensor; initialise a heap "
                                 "tensor (nb_zeros) before using it", fn);
    if (!nb_is_contiguous(w))
        return nb_set_error_code(NB_ERR_SHAPE, "%s: w is a strided view; give a contiguous "
                                 "tensor", fn);
    if (nb_ndim(w) < min_dims) {
        char b[NB_SHAPE_STR_LEN];
        nb_shape_str(w, b);
        return nb_set_error_code(NB_ERR_SHAPE, "%s: w %s has %d axes; fans need at least 2 "
                                 "((in, out), or a kernel (kh, kw, in, out))", fn, b, nb_ndim(w));
    }
    return 0;
}

/* Keras's compute_fans, for 2 axes or more. */
static void fans(const nb_tensor *w, double *in, double *out)
{
    int n = nb_ndim(w);
    const int64_t *s = nb_shape(w);
    double field = 1;
    for (int i = 0; i < n - 2; i++)
        field *= (double)s[i];
    *in = (double)s[n - 2] * field;
    *out = (double)s[n - 1] * field;
}

static void put(nb_tensor *w, int64_t i, double v)
{
    if (nb_dtype_of(w) == NB_F64)
        ((double *)nb_data(w))[i] = v;
    else
        ((float *)nb_data(w))[i] = (float)v;
}

static int variance_scaling(const char *fn, nb_tensor *w, nb_rng *rng, nb_variance_scaling h)
{
    if (check(fn, w, rng, true, 2) < 0)
        return -1;
    double scale = h.scale == 0 ? 1 : h.scale;
    if (!(scale > 0) || !isfinite(scale))
        return nb_set_error("%s: scale must be positive and finite, got %g", fn, h.scale);
    if ((unsigned)h.mode > NB_FAN_AVG)
        return nb_set_error("%s: unknown fan mode %d", fn, (int)h.mode);
    if ((unsigned)h.distribution > NB_UNIFORM)
        return nb_set_error("%s: unknown distribution %d", fn, (int)h.distribution);
    double in, out;
    fans(w, &in, &out);
    double fan = h.mode == NB_FAN_IN ? in : h.mode == NB_FAN_OUT ? out : (in + out) / 2;
    fan = fan > 1 ? fan : 1;
    double var = scale / fan;
    int64_t n = nb_numel(w);
    if (h.distribution == NB_UNIFORM) {
        /* (2u - 1) * limit, the limit rounded once from 3 scale / fan: the
         * draws nabla's layers always made (sqrt(6 / (in + out))) */
        double lim = sqrt(3 * scale / fan);
        for (int64_t i = 0; i < n; i++)
            put(w, i, (2.0 * nb_rng_uniform(rng) - 1.0) * lim);
    } else if (h.distribution == NB_NORMAL) {
        double sd = sqrt(var);
        for (int64_t i = 0; i < n; i++)
            put(w, i, sd * nb_rng_normal(rng));
    } else {
        /* a standard normal cut at +-2 has variance .87962566103423978^2 */
        double sd = sqrt(var) / .87962566103423978;
        for (int64_t i = 0; i < n; i++) {
            double z;
            do
                z = nb_rng_normal(rng);
            while (fabs(z) > 2);
            put(w, i, sd * z);
        }
    }
    nb_bump_version(w);
    return 0;
}

int nb_init_variance_scaling(nb_tensor *w, nb_rng *rng, nb_variance_scaling how)
{
    return variance_scaling("nb_init_variance_scaling", w, rng, how);
}

int nb_init_glorot_uniform(nb_tensor *w, nb_rng *rng)
{
    return variance_scaling("nb_init_glorot_uniform", w, rng,
                            (nb_variance_scaling){1, NB_FAN_AVG, NB_UNIFORM});
}

int nb_init_glorot_normal(nb_tensor *w, nb_rng *rng)
{
    return variance_scaling("nb_init_glorot_normal", w, rng,
                            (nb_variance_scaling){1, NB_FAN_AVG, NB_TRUNCATED_NORMAL});
}

int nb_init_he_uniform(nb_tensor *w, nb_rng *rng)
{
    return variance_scaling("nb_init_he_uniform", w, rng,
                            (nb_variance_scaling){2, NB_FAN_IN, NB_UNIFORM});
}

int nb_init_he_normal(nb_tensor *w, nb_rng *rng)
{
    return variance_scaling("nb_init_he_normal", w, rng,
                            (nb_variance_scaling){2, NB_FAN_IN, NB_TRUNCATED_NORMAL});
}

int nb_init_lecun_uniform(nb_tensor *w, nb_rng *rng)
{
    return variance_scaling("nb_init_lecun_uniform", w, rng,
                            (nb_variance_scaling){1, NB_FAN_IN, NB_UNIFORM});
}

int nb_init_lecun_normal(nb_tensor *w, nb_rng *rng)
{
    return variance_scaling("nb_init_lecun_normal", w, rng,
                            (nb_variance_scaling){1, NB_FAN_IN, NB_TRUNCATED_NORMAL});
}

int nb_init_orthogonal(nb_tensor *w, double gain, nb_rng *rng)
{
    const char *fn = "nb_init_orthogonal";
    if (check(fn, w, rng, true, 2) < 0)
        return -1;
    if (!isfinite(gain))
        return nb_set_error("%s: gain must be finite, got %g", fn, gain);
    int64_t cols = nb_dim(w, -1), rows = cols ? nb_numel(w) / cols : 0;
    int64_t r = rows > cols ? rows : cols, c = rows > cols ? cols : rows; /* the draw (r, c) */
    if (r == 0)
        return 0;
    double *a = nb_mem_alloc((size_t)(r * c) * sizeof *a);
    if (!a)
        return nn_blame(fn);
    for (int64_t i = 0; i < r * c; i++)
        a[i] = nb_rng_normal(rng);
    /* Modified Gram-Schmidt on a's columns, twice for the rounding: the Q
     * of a QR whose R has a positive diagonal. */
    for (int64_t j = 0; j < c; j++) {
        for (int pass = 0; pass < 2; pass++)
            for (int64_t k = 0; k < j; k++) {
                double dot = 0;
                for (int64_t i = 0; i < r; i++)
                    dot += a[i * c + k] * a[i * c + j];
                for (int64_t i = 0; i < r; i++)
                    a[i * c + j] -= dot * a[i * c + k];
            }
        double norm = 0;
        for (int64_t i = 0; i < r; i++)
            norm += a[i * c + j] * a[i * c + j];
        norm = sqrt(norm);
        if (!(norm > 1e-12)) { /* a draw of dependent columns: not in practice */
            nb_mem_free(a);
            return nb_set_error_code(NB_ERR_NUMERIC, "%s: the normal draw was singular", fn);
        }
        for (int64_t i = 0; i < r; i++)
            a[i * c + j] /= norm;
    }
    double g = gain == 0 ? 1 : gain;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            put(w, i * cols + j, g * (rows >= cols ? a[i * c + j] : a[j * c + i]));
    nb_mem_free(a);
    nb_bump_version(w);
    return 0;
}

static int constant(const char *fn, nb_tensor *w, double value)
{
    if (check(fn, w, NULL, false, 0) < 0)
        return -1;
    for (int64_t i = 0; i < nb_numel(w); i++)
        put(w, i, value);
    nb_bump_version(w);
    return 0;
}

int nb_init_constant(nb_tensor *w, double value) { return constant("nb_init_constant", w, value); }
int nb_init_zeros(nb_tensor *w) { return constant("nb_init_zeros", w, 0); }
int nb_init_ones(nb_tensor *w) { return constant("nb_init_ones", w, 1); }
