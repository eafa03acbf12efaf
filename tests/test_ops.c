/* Known values: forward results pinned against hand-computed numbers, in
 * f32 and f64; the stable compositions at extreme inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

static nb_graph *g;
static int setup(void **state)
{
    (void)state;
    g = nb_graph_new();
    return 0;
}
static int teardown(void **state)
{
    (void)state;
    nb_graph_free(g);
    return 0;
}

/* Heap tensors made in a test are kept here and freed at its end. */
static nb_tensor *keep[64];
static int nkeep;
static nb_tensor *T(nb_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    nb_tensor *t = nb_zeros(dt, ndim, shape);
    for (int64_t i = 0; i < nb_numel(t); i++) {
        if (dt == NB_F64)
            ((double *)nb_data(t))[i] = v[i];
        else
            ((float *)nb_data(t))[i] = (float)v[i];
    }
    keep[nkeep++] = t;
    return t;
}
static void release(void)
{
    while (nkeep)
        nb_free(keep[--nkeep]);
    nb_graph_reset(g);
}

/* Asserts t has the given shape and values (to tol). */
static void expect(nb_tensor *t, int ndim, const int64_t *shape, const double *want, double tol)
{
    if (!t)
        fail_msg("op failed: %s", nb_last_error());
    assert_int_equal(nb_ndim(t), ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(nb_dim(t, i), shape[i]);
    double v[256];
    assert_int_equal(nb_to_doubles(t, v), 0);
    for (int64_t i = 0; i < nb_numel(t); i++)
        if (!(fabs(v[i] - want[i]) <= tol) && !(v[i] == want[i]))
            fail_msg("element %lld: got %.17g, want %.17g", (long long)i, v[i], want[i]);
}
#define V(...) (const double[]){__VA_ARGS__}

static const nb_dtype dtypes[] = {NB_F32, NB_F64};
static double tol_of(nb_dtype d) { return d == NB_F32 ? 1e-6 : 1e-14; }

static void test_broadcast_arith(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        nb_tensor *a = T(d, NB_SHAPE(2, 3), V(1, 2, 3, 4, 5, 6));
        nb_tensor *r = T(d, NB_SHAPE(3), V(10, 20, 30));
        nb_tensor *c = T(d, NB_SHAPE(2, 1), V(2, 4));
        expect(nb_add(a, r), NB_SHAPE(2, 3), V(11, 22, 33, 14, 25, 36), 0);
        expect(nb_sub(r, a), NB_SHAPE(2, 3), V(9, 18, 27, 6, 15, 24), 0);
        expect(nb_mul(a, c), NB_SHAPE(2, 3), V(2, 4, 6, 16, 20, 24), 0);
        expect(nb_div(a, c), NB_SHAPE(2, 3), V(0.5, 1, 1.5, 1, 1.25, 1.5), 0);
        expect(nb_add(c, r), NB_SHAPE(2, 3), V(12, 22, 32, 14, 24, 34), 0);
        expect(nb_pow(c, T(d, NB_SHAPE(1), V(3))), NB_SHAPE(2, 1), V(8, 64), tol_of(d));
        expect(nb_maximum(a, T(d, 0, NULL, V(3.5))), NB_SHAPE(2, 3), V(3.5, 3.5, 3.5, 4, 5, 6), 0);
        expect(nb_minimum(a, c), NB_SHAPE(2, 3), V(1, 2, 2, 4, 4, 4), 0);
        expect(nb_gt(a, c), NB_SHAPE(2, 3), V(0, 0, 1, 0, 1, 1), 0);
        expect(nb_eq(a, c), NB_SHAPE(2, 3), V(0, 1, 0, 1, 0, 0), 0);
        expect(nb_le(a, c), NB_SHAPE(2, 3), V(1, 1, 0, 1, 0, 0), 0);
        expect(nb_where(nb_lt(a, c), a, r), NB_SHAPE(2, 3), V(1, 20, 30, 10, 20, 30), 0);
        /* Rows of one outer dimension step inline, strided ones too; two
         * outer dimensions go through nb_iter_next. */
        nb_tensor *at = nb_transpose(T(d, NB_SHAPE(3, 2), V(1, 2, 3, 4, 5, 6)), 0, 1);
        expect(nb_sub(at, c), NB_SHAPE(2, 3), V(-1, 1, 3, -2, 0, 2), 0);
        nb_tensor *a3 = T(d, NB_SHAPE(2, 2, 3), V(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
        expect(nb_sub(a3, c), NB_SHAPE(2, 2, 3), V(-1, 0, 1, 0, 1, 2, 5, 6, 7, 6, 7, 8), 0);
        release();
    }
}

static void test_unary(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-15;
        nb_tensor *x = T(d, NB_SHAPE(4), V(-2, -0.5, 0, 1.5));
        expect(nb_neg(x), NB_SHAPE(4), V(2, 0.5, 0, -1.5), 0);
        expect(nb_abs(x), NB_SHAPE(4), V(2, 0.5, 0, 1.5), 0);
        expect(nb_sign(x), NB_SHAPE(4), V(-1, -1, 0, 1), 0);
        expect(nb_relu(x), NB_SHAPE(4), V(0, 0, 0, 1.5), 0);
        expect(nb_clamp(x, -1, 1), NB_SHAPE(4), V(-1, -0.5, 0, 1), 0);
        expect(nb_exp(x), NB_SHAPE(4), V(exp(-2), exp(-0.5), 1, exp(1.5)), tol * 5);
        expect(nb_tanh(x), NB_SHAPE(4), V(tanh(-2), tanh(-0.5), 0, tanh(1.5)), tol);
        expect(nb_sigmoid(x), NB_SHAPE(4),
               V(1 / (1 + exp(2)), 1 / (1 + exp(0.5)), 0.5, 1 / (1 + exp(-1.5))), tol);
        expect(nb_square(x), NB_SHAPE(4), V(4, 0.25, 0, 2.25), 0);
        nb_tensor *p = T(d, NB_SHAPE(3), V(0.25, 1, 4));
        expect(nb_sqrt(p), NB_SHAPE(3), V(0.5, 1, 2), 0);
        expect(nb_log(p), NB_SHAPE(3), V(log(0.25), 0, log(4)), tol);
        /* Extreme inputs stay finite where the math is finite. */
        nb_tensor *big = T(d, NB_SHAPE(2), V(-1000, 1000));
        expect(nb_sigmoid(big), NB_SHAPE(2), V(0, 1), 0);
        expect(nb_tanh(big), NB_SHAPE(2), V(-1, 1), 0);
        expect(nb_cast(x, d == NB_F32 ? NB_F64 : NB_F32), NB_SHAPE(4), V(-2, -0.5, 0, 1.5), 0);
        release();
    }
}

static void test_reductions(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        nb_tensor *a = T(d, NB_SHAPE(2, 3), V(1, 5, 3, 4, 2, 6));
        expect(nb_sum(a), 0, NULL, V(21), 0);
        expect(nb_sum(a, .axes = NB_AXES(0)), NB_SHAPE(3), V(5, 7, 9), 0);
        expect(nb_sum(a, .axes = NB_AXES(-1), .keepdims = true), NB_SHAPE(2, 1), V(9, 12), 0);
        expect(nb_max(a, .axes = NB_AXES(1)), NB_SHAPE(2), V(5, 6), 0);
        expect(nb_max(a, .axes = NB_AXES(0), .keepdims = true), NB_SHAPE(1, 3), V(4, 5, 6), 0);
        expect(nb_min(a), 0, NULL, V(1), 0);
        expect(nb_mean(a, .axes = NB_AXES(1)), NB_SHAPE(2), V(3, 4), tol_of(d));
        expect(nb_var(a, .axes = NB_AXES(1)), NB_SHAPE(2), V(8.0 / 3, 8.0 / 3), tol_of(d) * 4);
        expect(nb_argmax(a, 1), NB_SHAPE(2), V(1, 2), 0);
        expect(nb_argmax(a, .axis = 0, .keepdims = true), NB_SHAPE(1, 3), V(1, 0, 1), 0);
        nb_tensor *b = T(d, NB_SHAPE(2, 3, 2), V(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
        expect(nb_sum(b, .axes = NB_AXES(0, 2)), NB_SHAPE(3), V(18, 26, 34), 0);
        expect(nb_sum_to(b, NB_SHAPE(3, 1)), NB_SHAPE(3, 1), V(18, 26, 34), 0);
        expect(nb_max(b, .axes = NB_AXES(1)), NB_SHAPE(2, 2), V(5, 6, 11, 12), 0);
        /* argmax picks the first of equal maxima. */
        expect(nb_argmax(T(d, NB_SHAPE(4), V(1, 3, 3, 0)), 0), 0, NULL, V(1), 0);
        release();
    }
}

static void test_softmax_family(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        double tol = d == NB_F32 ? 1e-6 : 1e-15;
        double e1 = exp(1), e2 = exp(2), e3 = exp(3), z = e1 + e2 + e3;
        nb_tensor *x = T(d, NB_SHAPE(3), V(1, 2, 3));
        expect(nb_softmax(x, 0), NB_SHAPE(3), V(e1 / z, e2 / z, e3 / z), tol);
        expect(nb_log_softmax(x, -1), NB_SHAPE(3), V(1 - log(z), 2 - log(z), 3 - log(z)), tol * 4);
        expect(nb_logsumexp(x), 0, NULL, V(log(z)), tol * 4);
        /* Large values: exact and finite. */
        expect(nb_softmax(T(d, NB_SHAPE(2), V(1000, 1000)), 0), NB_SHAPE(2), V(0.5, 0.5), 0);
        expect(nb_log_softmax(T(d, NB_SHAPE(2), V(-1000, 0)), 0), NB_SHAPE(2), V(-1000, 0), 0);
        expect(nb_logsumexp(T(d, NB_SHAPE(2), V(1000, 1000))), 0, NULL,
               V(1000 + log(2)), d == NB_F32 ? 1e-4 : 1e-12);
        expect(nb_logsumexp(T(d, NB_SHAPE(2), V(-INFINITY, -INFINITY))), 0, NULL,
               V(-INFINITY), 0);
        /* Row-wise over a batch, with keepdims. */
        nb_tensor *b = T(d, NB_SHAPE(2, 2), V(0, 0, 0, log(3)));
        expect(nb_softmax(b, 1), NB_SHAPE(2, 2), V(0.5, 0.5, 0.25, 0.75), tol);
        expect(nb_logsumexp(b, .axes = NB_AXES(1), .keepdims = true), NB_SHAPE(2, 1), V(log(2), log(4)), tol * 4);
        release();
    }
}

static void test_matmul(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        nb_tensor *a = T(d, NB_SHAPE(2, 3), V(1, 2, 3, 4, 5, 6));
        nb_tensor *b = T(d, NB_SHAPE(3, 2), V(7, 8, 9, 10, 11, 12));
        expect(nb_matmul(a, b), NB_SHAPE(2, 2), V(58, 64, 139, 154), 0);
        expect(nb_matmul(a, nb_transpose(a, -2, -1)), NB_SHAPE(2, 2), V(14, 32, 32, 77), 0);
        expect(nb_matmul(nb_transpose(a, -2, -1), a), NB_SHAPE(3, 3),
               V(17, 22, 27, 22, 29, 36, 27, 36, 45), 0);
        expect(nb_matmul(nb_transpose(b, -2, -1), nb_transpose(a, -2, -1)), NB_SHAPE(2, 2), V(58, 139, 64, 154), 0);
        /* Batched, with the 2-D operand broadcast over the batch. */
        nb_tensor *batch = T(d, NB_SHAPE(2, 1, 3), V(1, 0, 0, 0, 0, 1));
        expect(nb_matmul(batch, b), NB_SHAPE(2, 1, 2), V(7, 8, 11, 12), 0);
        release();
    }
}

static void test_shape_ops(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        nb_dtype d = dtypes[k];
        nb_tensor *a = T(d, NB_SHAPE(2, 3), V(1, 2, 3, 4, 5, 6));
        expect(nb_transpose(a, 0, 1), NB_SHAPE(3, 2), V(1, 4, 2, 5, 3, 6), 0);
        nb_tensor *c = T(d, NB_SHAPE(2, 1, 3), V(1, 2, 3, 4, 5, 6));
        expect(nb_permute(c, 3, (const int[]){2, 0, 1}), NB_SHAPE(3, 2, 1), V(1, 4, 2, 5, 3, 6), 0);
        expect(nb_broadcast_to(T(d, NB_SHAPE(2, 1), V(1, 2)), NB_SHAPE(2, 3)), NB_SHAPE(2, 3),
               V(1, 1, 1, 2, 2, 2), 0);
        expect(nb_slice(a, 1, 1, 3, 1), NB_SHAPE(2, 2), V(2, 3, 5, 6), 0);
        expect(nb_slice(a, 1, -1, 100, 1), NB_SHAPE(2, 1), V(3, 6), 0);
        expect(nb_slice(a, 1, 0, 3, 2), NB_SHAPE(2, 2), V(1, 3, 4, 6), 0);
        expect(nb_slice_scatter(a, T(d, NB_SHAPE(2, 1), V(0, 0)), 1, 1, 2, 1), NB_SHAPE(2, 3),
               V(1, 0, 3, 4, 0, 6), 0);
        expect(nb_concat(2, (nb_tensor *[]){a, T(d, NB_SHAPE(2, 1), V(7, 8))}, 1), NB_SHAPE(2, 4),
               V(1, 2, 3, 7, 4, 5, 6, 8), 0);
        expect(nb_concat(2, (nb_tensor *[]){a, a}, 0), NB_SHAPE(4, 3),
               V(1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6), 0);
        nb_tensor *idx = T(d, NB_SHAPE(3), V(2, 0, 2));
        expect(nb_index_select(a, 1, idx), NB_SHAPE(2, 3), V(3, 1, 3, 6, 4, 6), 0);
        expect(nb_index_add(T(d, NB_SHAPE(3), V(0, 0, 0)), 0, idx, T(d, NB_SHAPE(3), V(1, 2, 3))),
               NB_SHAPE(3), V(2, 0, 4), 0);
        expect(nb_one_hot(T(d, NB_SHAPE(2), V(2, 0)), 3), NB_SHAPE(2, 3), V(0, 0, 1, 1, 0, 0), 0);
        nb_tensor *r = nb_reshape(a, NB_SHAPE(3, 2));
        expect(r, NB_SHAPE(3, 2), V(1, 2, 3, 4, 5, 6), 0);
        expect(nb_full_like(a, 7), NB_SHAPE(2, 3), V(7, 7, 7, 7, 7, 7), 0);
        expect(nb_scalar_like(a, -1), 0, NULL, V(-1), 0);
        release();
    }
}

static void test_f32_matches_f64(void **state)
{
    (void)state;
    /* A composed expression computed in both dtypes agrees to f32 precision. */
    nb_rng rng = nb_rng_new(3);
    nb_tensor *x64 = nb_randn(NB_F64, NB_SHAPE(5, 7), &rng);
    nb_tensor *w64 = nb_randn(NB_F64, NB_SHAPE(7, 4), &rng);
    keep[nkeep++] = x64;
    keep[nkeep++] = w64;
    nb_tensor *y64 = nb_log_softmax(nb_tanh(nb_matmul(x64, w64)), 1);
    nb_tensor *y32 = nb_log_softmax(nb_tanh(nb_matmul(nb_cast(x64, NB_F32), nb_cast(w64, NB_F32))), 1);
    assert_true(nb_allclose(nb_cast(y32, NB_F64), y64, 1e-5, 1e-5));
    release();
}

/* exp in f32 gives the C library's expf bit for bit (ops/exp.c computes
 * glibc's algorithm as a vector loop): a million bit patterns spread over
 * all of them (every sign and exponent; NaNs, infinities, subnormals), the
 * edges where expf overflows and underflows, and the only two floats whose
 * exp comes out differently when the reduction x*32/ln2 - k is not one fused
 * multiply-add (found by trying all 2^32); packed and as a strided view
 * (which calls expf itself). */
static void test_exp_f32_is_expf(void **state)
{
    (void)state;
    enum { N = 1 << 20, EDGES = 12 };
    float *x = malloc((N + EDGES) * sizeof *x);
    assert_non_null(x);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t u = i * 4099u + (i & 7);
        memcpy(&x[i], &u, sizeof u);
    }
    const float edges[EDGES] = {0x1.62e42ep6f, 0x1.62e430p6f, -0x1.9fe368p6f, -0x1.9fe36ap6f,
                                -0x1.9d1d9ep6f, 88.0f, -88.0f, 0x1.5ffffep6f, -INFINITY, -0.0f,
                                0x1.04845ep+5f, -0x1.f8cbb2p+5f};
    memcpy(x + N, edges, sizeof edges);
    nb_tensor *t = nb_from_array(NB_F32, 1, (const int64_t[]){N + EDGES}, x);
    keep[nkeep++] = t;
    nb_tensor *packed = nb_exp(t);
    nb_tensor *strided = nb_exp(nb_slice(t, 0, 1, N + EDGES, 3));
    assert_non_null(packed);
    assert_non_null(strided);
    const float *y = nb_data(packed), *z = nb_data(strided);
    int64_t bad = 0;
    for (int64_t i = 0; i < N + EDGES; i++) {
        float want = expf(x[i]);
        bool same = isnan(want) ? isnan(y[i]) : memcmp(&want, &y[i], sizeof want) == 0;
        bool same_strided = (i - 1) % 3 != 0 || (isnan(want) ? isnan(z[(i - 1) / 3])
                                                 : memcmp(&want, &z[(i - 1) / 3], sizeof want) == 0);
        if ((!same || !same_strided) && bad++ < 5)
            print_error("exp(%a): %a (strided %a), expf gives %a\n", (double)x[i], (double)y[i],
                        (i - 1) % 3 ? 0.0 : (double)z[(i - 1) / 3], (double)want);
    }
    assert_int_equal(bad, 0);
    free(x);
    release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_arith), cmocka_unit_test(test_unary),
        cmocka_unit_test(test_reductions),      cmocka_unit_test(test_softmax_family),
        cmocka_unit_test(test_matmul),          cmocka_unit_test(test_shape_ops),
        cmocka_unit_test(test_f32_matches_f64), cmocka_unit_test(test_exp_f32_is_expf),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
