/* Weight initialisers: each law's bounds and variance over a large tensor
 * (tolerances a wrong fan or constant fails), orthogonality, the QR sign
 * convention, and exact constants. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

typedef struct {
    double mean, var, maxabs;
} stats;

static stats stats_of(const nb_tensor *w)
{
    stats s = {0};
    int64_t n = nb_numel(w);
    for (int64_t i = 0; i < n; i++)
        s.mean += nb_get_flat(w, i);
    s.mean /= (double)n;
    for (int64_t i = 0; i < n; i++) {
        double d = nb_get_flat(w, i);
        s.var += (d - s.mean) * (d - s.mean);
        s.maxabs = fmax(s.maxabs, fabs(d));
    }
    s.var /= (double)(n - 1);
    return s;
}

/* Mean 0 and variance var (within 3%, some 5 standard errors for these
 * sizes, while a fan off by a factor 1.5 is off by 33%). */
static void expect_moments(stats s, double var, int64_t n)
{
    if (fabs(s.mean) > 5 * sqrt(var / (double)n))
        fail_msg("mean %g, variance %g", s.mean, var);
    if (fabs(s.var / var - 1) > 0.03)
        fail_msg("variance %g, want %g", s.var, var);
}

static void test_uniform(void **state)
{
    (void)state;
    int (*f[3])(nb_tensor *, nb_rng *) = {nb_init_glorot_uniform, nb_init_he_uniform,
                                           nb_init_lecun_uniform};
    /* (in, out) and a conv kernel (kh, kw, in, out): fans 200/300, 3*3*64 / 3*3*128 */
    int64_t shapes[2][4] = {{200, 300}, {3, 3, 64, 128}};
    int nd[2] = {2, 4};
    double in[2] = {200, 576}, out[2] = {300, 1152};
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++) {
            nb_dtype dt = j == 1 ? NB_F32 : NB_F64;
            nb_tensor *w = nb_zeros(dt, nd[k], shapes[k]);
            nb_rng r = nb_rng_new(10 + (uint64_t)j);
            assert_int_equal(f[j](w, &r), 0);
            double var = j == 0 ? 2 / (in[k] + out[k]) : j == 1 ? 2 / in[k] : 1 / in[k];
            double bound = sqrt(3 * var);
            stats s = stats_of(w);
            expect_moments(s, var, nb_numel(w));
            assert_true(s.maxabs <= bound * (1 + 1e-7));
            assert_true(s.maxabs > 0.99 * bound);
            nb_free(w);
        }
}

/* Keras's truncated normals: variance scale / fan after the cut at 2 s,
 * nothing beyond it; PyTorch's plain normal goes past it. */
static void test_normal(void **state)
{
    (void)state;
    int (*f[3])(nb_tensor *, nb_rng *) = {nb_init_glorot_normal, nb_init_he_normal,
                                           nb_init_lecun_normal};
    for (int j = 0; j < 3; j++) {
        nb_tensor *w = nb_zeros(NB_F64, NB_SHAPE(3, 3, 80, 100));
        nb_rng r = nb_rng_new(20 + (uint64_t)j);
        assert_int_equal(f[j](w, &r), 0);
        double in = 720, out = 900;
        double var = j == 0 ? 2 / (in + out) : j == 1 ? 2 / in : 1 / in;
        double cut = 2 * sqrt(var) / .87962566103423978;
        stats s = stats_of(w);
        expect_moments(s, var, nb_numel(w));
        assert_true(s.maxabs <= cut);
        assert_true(s.maxabs > 0.99 * cut);
        nb_free(w);
    }
    /* kaiming_normal_(mode='fan_out'): {2, NB_FAN_OUT, NB_NORMAL} */
    nb_tensor *w = nb_zeros(NB_F32, NB_SHAPE(300, 200));
    nb_rng r = nb_rng_new(3);
    assert_int_equal(nb_init_variance_scaling(w, &r, (nb_variance_scaling){2, NB_FAN_OUT, NB_NORMAL}),
                     0);
    stats s = stats_of(w);
    expect_moments(s, 2.0 / 200, nb_numel(w));
    assert_true(s.maxabs > 3.5 * sqrt(2.0 / 200)); /* 60000 draws: untruncated */
    nb_free(w);
}

/* The draws are the seed's: the same seed, the same values; Glorot uniform
 * is the (2u - 1) sqrt(6 / (in + out)) nabla's Dense has always drawn. */
static void test_reproducible(void **state)
{
    (void)state;
    nb_tensor *a = nb_zeros(NB_F32, NB_SHAPE(7, 5)), *b = nb_zeros(NB_F32, NB_SHAPE(7, 5));
    nb_rng ra = nb_rng_new(4), rb = nb_rng_new(4);
    assert_int_equal(nb_init_glorot_uniform(a, &ra), 0);
    double lim = sqrt(6.0 / 12);
    for (int64_t i = 0; i < 35; i++)
        ((float *)nb_data(b))[i] = (float)((2.0 * nb_rng_uniform(&rb) - 1.0) * lim);
    assert_true(nb_allclose(a, b, 0, 0));
    nb_free(a);
    nb_free(b);
}

/* W^T W = gain^2 I (rows >= cols) or W W^T (rows < cols), in f32 to 1e-5. */
static void expect_orthogonal(const nb_tensor *w, double gain)
{
    int64_t cols = nb_dim(w, -1), rows = nb_numel(w) / cols;
    bool tall = rows >= cols;
    int64_t m = tall ? cols : rows, len = tall ? rows : cols;
    for (int64_t a = 0; a < m; a++)
        for (int64_t b = 0; b < m; b++) {
            double dot = 0;
            for (int64_t i = 0; i < len; i++)
                dot += tall ? nb_get_flat(w, i * cols + a) * nb_get_flat(w, i * cols + b)
                            : nb_get_flat(w, a * cols + i) * nb_get_flat(w, b * cols + i);
            if (fabs(dot - (a == b ? gain * gain : 0)) > 1e-5 * gain * gain)
                fail_msg("(%lld, %lld): %g", (long long)a, (long long)b, dot);
        }
}

static void test_orthogonal(void **state)
{
    (void)state;
    int64_t shapes[4][4] = {{50, 20}, {20, 50}, {3, 3, 4, 8}, {16, 16}};
    int nd[4] = {2, 2, 4, 2};
    double gains[4] = {0, 1, 2, 0.5};
    for (int k = 0; k < 4; k++) {
        nb_tensor *w = nb_zeros(NB_F32, nd[k], shapes[k]);
        nb_rng r = nb_rng_new(30 + (uint64_t)k);
        assert_int_equal(nb_init_orthogonal(w, gains[k], &r), 0);
        expect_orthogonal(w, gains[k] == 0 ? 1 : gains[k]);
        nb_free(w);
    }
    /* Keras's and PyTorch's Q: the draw A = Q R with R upper triangular and
     * its diagonal positive (the sign correction). */
    nb_tensor *q = nb_zeros(NB_F64, NB_SHAPE(30, 12));
    nb_rng r = nb_rng_new(5), again = nb_rng_new(5);
    assert_int_equal(nb_init_orthogonal(q, 1, &r), 0);
    double a[30 * 12];
    for (int i = 0; i < 30 * 12; i++)
        a[i] = nb_rng_normal(&again);
    for (int j = 0; j < 12; j++)
        for (int k = 0; k < 12; k++) {
            double rkj = 0; /* R = Q^T A */
            for (int i = 0; i < 30; i++)
                rkj += nb_get(q, NB_AT(i, k)) * a[i * 12 + j];
            if (k > j)
                assert_true(fabs(rkj) < 1e-10);
            if (k == j)
                assert_true(rkj > 0.1);
        }
    nb_free(q);
}

static void test_constants(void **state)
{
    (void)state;
    nb_tensor *t[3] = {nb_full(NB_F32, NB_SHAPE(3, 4), 9), nb_full(NB_F64, NB_SHAPE(5), 9),
                       nb_scalar(NB_F64, 9)};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(nb_init_constant(t[k], 0.25), 0);
        for (int64_t i = 0; i < nb_numel(t[k]); i++)
            assert_true(nb_get_flat(t[k], i) == 0.25);
        assert_int_equal(nb_init_ones(t[k]), 0);
        for (int64_t i = 0; i < nb_numel(t[k]); i++)
            assert_true(nb_get_flat(t[k], i) == 1);
        assert_int_equal(nb_init_zeros(t[k]), 0);
        for (int64_t i = 0; i < nb_numel(t[k]); i++)
            assert_true(nb_get_flat(t[k], i) == 0);
        nb_free(t[k]);
    }
}

/* A layer's .kernel_initializer draws its kernel from the model's
 * generator (nb_build's seed); one that fails fails the build. */
static int refuse(nb_tensor *w, nb_rng *rng)
{
    (void)w;
    (void)rng;
    return nb_set_error("my_init: no");
}

static void test_layer_option(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_dense(5, .input = 4, .kernel_initializer = nb_init_he_normal));
    nb_model *c = nb_sequential(nb_input(6, 6, 2),
                                nb_conv2d(3, {2}, .kernel_initializer = nb_init_lecun_uniform));
    assert_int_equal(nb_build(m, 0, 3), 0);
    assert_int_equal(nb_build(c, 0, 4), 0);
    nb_tensor *const *p;
    nb_model_params(m, &p);
    nb_tensor *want = nb_zeros(NB_F32, NB_SHAPE(4, 5));
    nb_rng r = nb_rng_new(3);
    assert_int_equal(nb_init_he_normal(want, &r), 0);
    assert_true(nb_allclose(p[0], want, 0, 0));
    nb_free(want);
    nb_model_params(c, &p);
    want = nb_zeros(NB_F32, NB_SHAPE(2, 2, 2, 3));
    r = nb_rng_new(4);
    assert_int_equal(nb_init_lecun_uniform(want, &r), 0);
    assert_true(nb_allclose(p[0], want, 0, 0));
    nb_free(want);
    nb_model *bad = nb_sequential(nb_dense(5, .input = 4, .kernel_initializer = refuse));
    FAILS_RC(nb_build(bad, 0, 1), "nb_build: my_init: no");
    nb_model_free(m);
    nb_model_free(c);
    nb_model_free(bad);
}

static void test_no_leaks(void **state)
{
    (void)state;
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform),      cmocka_unit_test(test_normal),
        cmocka_unit_test(test_reproducible), cmocka_unit_test(test_orthogonal),
        cmocka_unit_test(test_constants),    cmocka_unit_test(test_layer_option),
        cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
