/* Tensors: factories, inspection, element access, printing, rng. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

static char *print_to_string(const nb_tensor *t)
{
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    assert_int_equal(nb_print(t, f), 0);
    fclose(f);
    return buf;
}

static void test_factories(void **state)
{
    (void)state;
    nb_tensor *z = nb_zeros(NB_F32, NB_SHAPE(2, 3, 4));
    assert_non_null(z);
    assert_int_equal(nb_ndim(z), 3);
    assert_int_equal(nb_numel(z), 24);
    assert_int_equal(nb_dim(z, -1), 4);
    assert_int_equal(nb_dtype_of(z), NB_F32);
    for (int i = 0; i < 24; i++)
        assert_true(((float *)nb_data(z))[i] == 0.0f);

    nb_tensor *f = nb_full(NB_F64, NB_SHAPE(3), 2.5);
    assert_true(nb_get(f, NB_AT(2)) == 2.5);
    nb_tensor *o = nb_ones(NB_F64, NB_SHAPE(1, 1, 1, 1, 1, 1, 1, 2));
    assert_int_equal(nb_ndim(o), 8);
    assert_true(nb_get(o, NB_AT(0, 0, 0, 0, 0, 0, 0, 1)) == 1.0);

    nb_tensor *a = nb_arange(NB_F64, 0, 1, 0.25);
    assert_int_equal(nb_numel(a), 4);
    assert_true(nb_get(a, NB_AT(3)) == 0.75);
    nb_tensor *d = nb_arange(NB_F32, 5, 0, -2);
    assert_int_equal(nb_numel(d), 3);
    assert_true(nb_get(d, NB_AT(2)) == 1.0);

    double v[] = {1, 2, 3, 4, 5, 6};
    nb_tensor *m = nb_from_array(NB_F64, NB_SHAPE(2, 3), v);
    assert_true(nb_get(m, NB_AT(1, 2)) == 6.0);
    assert_true(nb_get(m, NB_AT(-1, -3)) == 4.0);
    assert_int_equal(nb_set(m, NB_AT(0, 1), 9.0), 0);
    assert_true(nb_get(m, NB_AT(0, 1)) == 9.0);
    assert_true(v[1] == 2.0); /* from_array copies */

    nb_tensor *c = nb_clone(m);
    assert_true(nb_allclose(c, m, 0, 0));
    nb_set(c, NB_AT(0, 0), 7.0);
    assert_false(nb_allclose(c, m, 0, 0));

    /* Unfilled: only its shape is known until it is written. */
    nb_tensor *e = nb_empty(NB_U8, NB_SHAPE(5, 7));
    assert_non_null(e);
    assert_int_equal(nb_numel(e), 35);
    assert_int_equal(nb_dtype_of(e), NB_U8);
    assert_false(nb_requires_grad(e));
    memset(nb_data(e), 200, 35);
    assert_true(nb_get(e, NB_AT(4, 6)) == 200.0);

    nb_tensor *all[] = {z, f, o, a, d, m, c, e};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        nb_free(all[i]);
}

static void test_scalar_and_item(void **state)
{
    (void)state;
    nb_tensor *s = nb_scalar(NB_F64, -1.25);
    assert_int_equal(nb_ndim(s), 0);
    assert_int_equal(nb_numel(s), 1);
    assert_true(nb_item(s) == -1.25);
    assert_true(nb_get(s, 0, NULL) == -1.25);
    nb_tensor *m = nb_zeros(NB_F64, NB_SHAPE(2));
    nb_clear_error();
    assert_true(isnan(nb_item(m)));
    assert_non_null(strstr(nb_last_error(), "nb_item"));
    assert_non_null(strstr(nb_last_error(), "(2,)"));
    nb_free(s);
    nb_free(m);
}

static void test_rng_reproducible(void **state)
{
    (void)state;
    nb_rng r1 = nb_rng_new(42), r2 = nb_rng_new(42), r3 = nb_rng_new(43);
    uint64_t a = nb_rng_next(&r1), b = nb_rng_next(&r2), c = nb_rng_next(&r3);
    assert_true(a == b);
    assert_true(a != c);
    /* Pinned values: the same on every platform (xoshiro256** over splitmix64). */
    nb_rng r = nb_rng_new(0);
    assert_true(nb_rng_next(&r) == 0x99ec5f36cb75f2b4ull);
    /* Normals: mean ~0, variance ~1 over many draws, all finite. */
    r = nb_rng_new(7);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double x = nb_rng_normal(&r);
        assert_true(isfinite(x));
        s += x;
        s2 += x * x;
    }
    assert_true(fabs(s / 1e5) < 0.02);
    assert_true(fabs(s2 / 1e5 - 1.0) < 0.02);
    for (int i = 0; i < 1000; i++) {
        double u = nb_rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        assert_true(nb_rng_below(&r, 10) < 10);
    }
    nb_rng q = nb_rng_new(5);
    nb_tensor *t1 = nb_randn(NB_F32, NB_SHAPE(4, 4), &q);
    q = nb_rng_new(5);
    nb_tensor *t2 = nb_randn(NB_F32, NB_SHAPE(4, 4), &q);
    assert_true(nb_allclose(t1, t2, 0, 0));
    nb_free(t1);
    nb_free(t2);
}

static void test_reshape_is_a_view(void **state)
{
    (void)state;
    nb_tensor *x = nb_from_array(NB_F32, NB_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_reshape(x, NB_SHAPE(3, -1));
    assert_non_null(y);
    assert_int_equal(nb_dim(y, 0), 3);
    assert_int_equal(nb_dim(y, 1), 2);
    assert_ptr_equal(nb_data(y), nb_data(x));
    assert_null(nb_reshape(x, NB_SHAPE(4, -1)));
    assert_non_null(strstr(nb_last_error(), "nb_reshape"));
    assert_non_null(strstr(nb_last_error(), "(2,3)"));
    nb_graph_free(g);
    nb_free(x);
}

static void test_names(void **state)
{
    (void)state;
    nb_tensor *w = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(2)), "dense.W");
    assert_string_equal(nb_name(w), "dense.W");
    nb_set_name(w, "renamed");
    assert_string_equal(nb_name(w), "renamed");
    nb_set_name(w, NULL);
    assert_null(nb_name(w));
    nb_free(w);
}

static void test_print(void **state)
{
    (void)state;
    nb_tensor *m = nb_from_array(NB_F64, NB_SHAPE(2, 2), (double[]){1.5, -2, 3, 4});
    nb_set_name(m, "m");
    const char *s = print_to_string(m);
    assert_non_null(strstr(s, "tensor([["));
    assert_non_null(strstr(s, "1.5000"));
    assert_non_null(strstr(s, "-2.0000"));
    assert_non_null(strstr(s, "shape=(2,2)"));
    assert_non_null(strstr(s, "dtype=f64"));
    assert_non_null(strstr(s, "name='m'"));
    nb_free(m);

    /* Big tensors are elided in the middle, like PyTorch. */
    nb_tensor *big = nb_arange(NB_F32, 0, 5000, 1);
    s = print_to_string(big);
    assert_non_null(strstr(s, "..."));
    assert_non_null(strstr(s, "4999"));
    assert_null(strstr(s, "2500"));
    assert_true(strlen(s) < 200);
    nb_free(big);

    nb_tensor *sc = nb_scalar(NB_F32, 0.5);
    s = print_to_string(sc);
    assert_non_null(strstr(s, "tensor(0.5000"));
    nb_free(sc);
}

static void test_allclose(void **state)
{
    (void)state;
    nb_tensor *a = nb_from_array(NB_F64, NB_SHAPE(3), (double[]){1, 2, 3});
    nb_tensor *b = nb_from_array(NB_F64, NB_SHAPE(3), (double[]){1, 2, 3.001});
    nb_tensor *c = nb_from_array(NB_F64, NB_SHAPE(3), (double[]){1, 2, NAN});
    nb_tensor *d = nb_from_array(NB_F64, NB_SHAPE(1, 3), (double[]){1, 2, 3});
    assert_true(nb_allclose(a, b, 1e-3, 0));
    assert_false(nb_allclose(a, b, 1e-5, 0));
    assert_false(nb_allclose(c, c, 1, 1));
    assert_false(nb_allclose(a, d, 1, 1));
    nb_free(a);
    nb_free(b);
    nb_free(c);
    nb_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factories),      cmocka_unit_test(test_scalar_and_item),
        cmocka_unit_test(test_rng_reproducible), cmocka_unit_test(test_reshape_is_a_view),
        cmocka_unit_test(test_names),          cmocka_unit_test(test_print),
        cmocka_unit_test(test_allclose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
