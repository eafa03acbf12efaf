/* Metrics: the built-in ones against values worked out by hand (ties, k at
 * and beyond the classes, labels and one-hot targets, NaN, f32 and f64,
 * Keras's documented examples). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/nabla.h"

static const nb_dtype dtypes[] = {NB_F32, NB_F64};

/* A heap tensor of dtype from doubles. */
static nb_tensor *from(nb_dtype dt, int ndim, const int64_t *shape, const double *v)
{
    nb_tensor *t = nb_zeros(dt, ndim, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_numel(t); i++) {
        if (dt == NB_F64)
            ((double *)nb_data(t))[i] = v[i];
        else
            ((float *)nb_data(t))[i] = (float)v[i];
    }
    nb_bump_version(t);
    return t;
}

/* The value of a metric that must succeed, as a double. */
static double value(nb_tensor *r)
{
    if (!r)
        fail_msg("metric failed: %s", nb_last_error());
    assert_int_equal(nb_ndim(r), 0);
    assert_false(nb_requires_grad(r));
    return nb_item(r);
}

/* Four rows of four classes: the class's rank decides top-k.
 *   row 0, class 2: one class (0.6) above it      -> in the top 2
 *   row 1, class 1: tied with class 0 for first    -> in the top 1 (Keras's rule)
 *   row 2, class 3: all four tied                  -> in the top 1
 *   row 3, class 3: three classes above it         -> only in the top 4 */
static const double scores[16] = {0.1, 0.6, 0.3, 0.0,  0.4, 0.4, 0.1, 0.1,
                                  0.25, 0.25, 0.25, 0.25,  0.9, 0.05, 0.03, 0.02};
static const double classes[4] = {2, 1, 3, 3};

static void test_top_k(void **state)
{
    (void)state;
    /* top 1 .. 4, and 10 (beyond the classes: every row). */
    const int ks[] = {1, 2, 3, 4, 10};
    const double want[] = {0.5, 0.75, 0.75, 1.0, 1.0};
    for (int d = 0; d < 2; d++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *p = from(dtypes[d], NB_SHAPE(4, 4), scores);
        nb_tensor *l = from(dtypes[d], NB_SHAPE(4), classes);
        nb_tensor *t = nb_one_hot(l, 4);
        for (int i = 0; i < 5; i++) {
            assert_true(value(nb_sparse_top_k_accuracy(p, l, ks[i])) == want[i]);
            assert_true(value(nb_top_k_accuracy(p, t, ks[i])) == want[i]);
        }
        /* Top 1 is the arg-max except for ties: row 1 (class 1, tied with
         * class 0) and row 2 (class 3 of four tied) count for top-k only. */
        assert_true(value(nb_sparse_categorical_accuracy(p, l)) == 0.0);
        assert_true(value(nb_categorical_accuracy(p, t)) == 0.0);
        /* A soft target's class is its first maximum: 0.5/0.5 over classes
         * 1 and 2 is class 1, row 0's best (class 2 would miss the top 1). */
        nb_tensor *soft = from(dtypes[d], NB_SHAPE(1, 4), (double[]){0, 0.5, 0.5, 0});
        nb_tensor *row0 = nb_slice(p, 0, 0, 1, 1);
        assert_true(value(nb_top_k_accuracy(row0, soft, 1)) == 1.0); /* class 1 scores 0.6 */
        /* NaN: a NaN score of the class is a miss whatever k; a NaN
         * elsewhere does not outrank it. */
        nb_tensor *pn = from(dtypes[d], NB_SHAPE(2, 3), (double[]){NAN, 0.2, 0.1, 0.3, NAN, 0.1});
        nb_tensor *ln = from(dtypes[d], NB_SHAPE(2), (double[]){0, 0});
        assert_true(value(nb_sparse_top_k_accuracy(pn, ln, 10)) == 0.5);
        assert_true(value(nb_sparse_top_k_accuracy(pn, ln, 1)) == 0.5);
        /* The result is in pred's dtype. */
        assert_int_equal(nb_dtype_of(nb_top_k_accuracy(p, t, 2)), dtypes[d]);
        /* Keras's examples (TopKCategoricalAccuracy(k=1), SparseTopK...): 0.5. */
        nb_tensor *kp = from(dtypes[d], NB_SHAPE(2, 3), (double[]){0.1, 0.9, 0.8, 0.05, 0.95, 0});
        nb_tensor *kt = from(dtypes[d], NB_SHAPE(2, 3), (double[]){0, 0, 1, 0, 1, 0});
        nb_tensor *kl = from(dtypes[d], NB_SHAPE(2), (double[]){2, 1});
        assert_true(value(nb_top_k_accuracy(kp, kt, 1)) == 0.5);
        assert_true(value(nb_sparse_top_k_accuracy(kp, kl, 1)) == 0.5);
        assert_true(value(nb_top_k_accuracy(kp, kt, 2)) == 1.0);
        nb_free(p);
        nb_free(l);
        nb_free(soft);
        nb_free(pn);
        nb_free(ln);
        nb_free(kp);
        nb_free(kt);
        nb_free(kl);
        nb_graph_free(g);
    }
}

/* Rows of more than two dimensions: (2, 2, 3) scores, (2, 2) labels. */
static void test_top_k_batched(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *p = from(NB_F64, NB_SHAPE(2, 2, 3),
                        (double[]){1, 2, 3, 3, 2, 1, 0, 0, 1, 5, 4, 6});
    nb_tensor *l = from(NB_F64, NB_SHAPE(2, 2), (double[]){1, 1, 0, 0});
    /* Classes scoring higher: 1, 1, 1 (0 ties 0), 1. */
    assert_true(value(nb_sparse_top_k_accuracy(p, l, 1)) == 0.0);
    assert_true(value(nb_sparse_top_k_accuracy(p, l, 2)) == 1.0);
    nb_free(p);
    nb_free(l);
    nb_graph_free(g);
}

static void test_binary_accuracy(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        nb_graph *g = nb_graph_new();
        /* Keras's example: 0.75. */
        nb_tensor *t = from(dtypes[d], NB_SHAPE(4, 1), (double[]){1, 1, 0, 0});
        nb_tensor *p = from(dtypes[d], NB_SHAPE(4, 1), (double[]){0.98, 1, 0, 0.6});
        assert_true(value(nb_binary_accuracy(p, t)) == 0.75);
        /* Exactly 0.5 is class 0 (pred > 0.5 is 1); a target of 0.5 never
         * matches; NaN is class 0. Over every element of (2, 3). */
        nb_tensor *p2 = from(dtypes[d], NB_SHAPE(2, 3),
                             (double[]){0.5, 0.5000001, 0.2, 0.7, NAN, 0.9});
        nb_tensor *t2 = from(dtypes[d], NB_SHAPE(2, 3), (double[]){0, 1, 0.5, 1, 0, 0});
        double hand = 4.0 / 6.0, got = value(nb_binary_accuracy(p2, t2));
        assert_true(d ? got == hand : got == (double)(float)hand);
        assert_int_equal(nb_dtype_of(nb_binary_accuracy(p2, t2)), dtypes[d]);
        nb_free(t);
        nb_free(p);
        nb_free(p2);
        nb_free(t2);
        nb_graph_free(g);
    }
}

/* The metrics record nothing, also with recording on and a pred that
 * requires grad. */
static void test_no_gradient(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_param(from(NB_F64, NB_SHAPE(4, 4), scores));
    nb_tensor *l = from(NB_F64, NB_SHAPE(4), classes);
    int64_t before = nb_graph_nodes(g);
    assert_false(nb_requires_grad(nb_sparse_top_k_accuracy(p, l, 2)));
    assert_false(nb_requires_grad(nb_binary_accuracy(p, p)));
    assert_int_equal(nb_graph_nodes(g), before);
    assert_true(nb_is_grad_enabled());
    nb_free(p);
    nb_free(l);
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_top_k, cleanup),
        cmocka_unit_test_teardown(test_top_k_batched, cleanup),
        cmocka_unit_test_teardown(test_binary_accuracy, cleanup),
        cmocka_unit_test_teardown(test_no_gradient, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
