/* nb_batches: the batches of a data set for hand-written loops, in nb_fit's
 * order (Fisher-Yates from the seed's generator, each epoch permuting the
 * last one's), u8 rows converted as nb_fit converts them, the last batch
 * kept or dropped, and no allocation per batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

/* x (n, 2): row i is (i, -i); y (n,): i. */
static void rows_data(int64_t n, nb_tensor **x, nb_tensor **y)
{
    *x = nb_zeros(NB_F32, NB_SHAPE(n, 2));
    *y = nb_zeros(NB_F64, NB_SHAPE(n));
    for (int64_t i = 0; i < n; i++) {
        ((float *)nb_data(*x))[2 * i] = (float)i;
        ((float *)nb_data(*x))[2 * i + 1] = (float)-i;
        ((double *)nb_data(*y))[i] = (double)i;
    }
}

static void fisher_yates(int64_t *idx, int64_t n, nb_rng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nb_rng_below(r, (uint64_t)(i + 1)), t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/* Two epochs of 23 rows in batches of 5: rows in the order of an independent
 * Fisher-Yates, 5 batches (the last of 3), then 0, then the next epoch. */
static void test_order_and_epochs(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    rows_data(23, &x, &y);
    nb_batches *it = nb_batches_new((nb_dataset){.x = x, .y = y}, .batch_size = 5, .seed = 7);
    assert_non_null(it);
    assert_int_equal(nb_batches_count(it), 5);
    int64_t idx[23];
    for (int i = 0; i < 23; i++)
        idx[i] = i;
    nb_rng r = nb_rng_new(7);
    for (int epoch = 0; epoch < 2; epoch++) {
        fisher_yates(idx, 23, &r);
        int64_t seen = 0, batches = 0;
        nb_tensor *bx, *by;
        int rc;
        while ((rc = nb_batches_next(it, &bx, &by)) > 0) {
            int64_t k = nb_dim(bx, 0);
            assert_int_equal(k, batches < 4 ? 5 : 3);
            assert_int_equal(nb_dim(by, 0), k);
            assert_int_equal(nb_dtype_of(by), NB_F64);
            for (int64_t i = 0; i < k; i++) {
                assert_true(nb_get(bx, NB_AT(i, 0)) == (double)idx[seen + i]);
                assert_true(nb_get(bx, NB_AT(i, 1)) == -(double)idx[seen + i]);
                assert_true(nb_get(by, NB_AT(i)) == (double)idx[seen + i]);
            }
            seen += k;
            batches++;
        }
        assert_int_equal(rc, 0);
        assert_null(bx);
        assert_int_equal(seen, 23);
        assert_int_equal(batches, 5);
    }
    nb_batches_free(it);
    nb_free(x);
    nb_free(y);
}

/* no_shuffle: rows in order; drop_last: 4 batches of 5, none of 3. */
static void test_no_shuffle_drop_last(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    rows_data(23, &x, &y);
    nb_batches *it = nb_batches_new((nb_dataset){.x = x}, .batch_size = 5, .no_shuffle = true,
                                    .drop_last = true);
    assert_int_equal(nb_batches_count(it), 4);
    nb_tensor *bx;
    int64_t seen = 0;
    while (nb_batches_next(it, &bx, NULL) > 0) {
        assert_int_equal(nb_dim(bx, 0), 5);
        for (int64_t i = 0; i < 5; i++)
            assert_true(nb_get(bx, NB_AT(i, 0)) == (double)(seen + i));
        seen += 5;
    }
    assert_int_equal(seen, 20);
    nb_batches_free(it);
    /* One batch larger than the data: the whole data, once. */
    it = nb_batches_new((nb_dataset){.x = x}, .batch_size = 100);
    assert_int_equal(nb_batches_count(it), 1);
    assert_int_equal(nb_batches_next(it, &bx, NULL), 1);
    assert_int_equal(nb_dim(bx, 0), 23);
    assert_int_equal(nb_batches_next(it, &bx, NULL), 0);
    nb_batches_free(it);
    nb_free(x);
    nb_free(y);
}

/* u8 x: each batch is the rows nb_scale_images gives, f32 (or f64 with
 * .dtype); a strided view of the data gives the same batches as a copy. */
static void test_u8_and_views(void **state)
{
    (void)state;
    nb_tensor *img = nb_zeros(NB_U8, NB_SHAPE(10, 784));
    for (int64_t i = 0; i < nb_numel(img); i++)
        ((uint8_t *)nb_data(img))[i] = (uint8_t)((i * 37) % 256);
    nb_tensor *f = nb_scale_images(img);
    nb_batches *it = nb_batches_new((nb_dataset){.x = img, .scale = 1 / 255.0}, .batch_size = 4,
                                    .no_shuffle = true);
    nb_batches *it64 = nb_batches_new((nb_dataset){.x = img, .scale = 1 / 255.0},
                                      .batch_size = 4, .no_shuffle = true, .dtype = NB_F64);
    nb_tensor *bx, *bx64;
    int64_t row = 0;
    while (nb_batches_next(it, &bx, NULL) > 0) {
        assert_int_equal(nb_batches_next(it64, &bx64, NULL), 1);
        assert_int_equal(nb_dtype_of(bx), NB_F32);
        assert_int_equal(nb_dtype_of(bx64), NB_F64);
        assert_int_equal(memcmp(nb_data(bx), (float *)nb_data(f) + row * 784,
                                (size_t)nb_numel(bx) * sizeof(float)), 0);
        for (int64_t j = 0; j < nb_numel(bx64); j++)
            assert_true(((double *)nb_data(bx64))[j] ==
                        (double)((uint8_t *)nb_data(img))[row * 784 + j] * (1 / 255.0));
        row += nb_dim(bx, 0);
    }
    assert_int_equal(row, 10);
    nb_batches_free(it);
    nb_batches_free(it64);

    /* the transpose of a (2, 5) tensor: a strided (5, 2) view */
    nb_graph *g = nb_graph_new();
    nb_tensor *t = nb_arange(NB_F32, 0, 10, 1);
    nb_tensor *v = nb_transpose(nb_reshape(t, NB_SHAPE(2, 5)), 0, 1);
    nb_tensor *c = nb_clone(v);
    nb_batches *a = nb_batches_new((nb_dataset){.x = v}, .batch_size = 3, .seed = 2);
    nb_batches *b = nb_batches_new((nb_dataset){.x = c}, .batch_size = 3, .seed = 2);
    nb_tensor *xa, *xb;
    int n = 0;
    while (nb_batches_next(a, &xa, NULL) > 0) {
        assert_int_equal(nb_batches_next(b, &xb, NULL), 1);
        assert_true(nb_allclose(xa, xb, 0, 0));
        n++;
    }
    assert_int_equal(n, 2);
    nb_batches_free(a);
    nb_batches_free(b);
    nb_free(c);
    nb_free(t);
    nb_graph_free(g);
    nb_free(f);
    nb_free(img);
}

/* A hand-written loop over nb_batches trains a model to the weights nb_fit
 * gives with the same seed (and not with another seed). */
static nb_model *net(void)
{
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_TANH, .input = 3), nb_dense(2));
    assert_int_equal(nb_build(m, 0, 11), 0);
    assert_int_equal(nb_compile(m, nb_sgd(.lr = 0.1), NB_MEAN_SQUARED_ERROR), 0);
    return m;
}

static nb_model *by_hand(nb_tensor *x, nb_tensor *y, uint64_t seed)
{
    nb_model *m = net();
    nb_tensor *const *p;
    int np = nb_model_params(m, &p);
    nb_batches *it = nb_batches_new((nb_dataset){.x = x, .y = y}, .batch_size = 7, .seed = seed);
    nb_graph *g = nb_graph_new();
    nb_model_set_training(m, true);
    nb_tensor *bx, *by;
    while (nb_batches_next(it, &bx, &by) > 0) {
        for (int i = 0; i < np; i++)
            nb_zero_grad(p[i]);
        nb_tensor *loss = nb_model_loss(m, nb_model_forward(m, bx), by);
        assert_int_equal(nb_backward(loss), 0);
        assert_int_equal(nb_optimizer_step(nb_model_optimizer(m), np, p), 0);
        nb_graph_reset(g);
    }
    nb_graph_free(g);
    nb_batches_free(it);
    return m;
}

static void test_same_as_fit(void **state)
{
    (void)state;
    nb_rng r = nb_rng_new(5);
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(40, 3), &r), *y = nb_randn(NB_F32, NB_SHAPE(40, 2), &r);
    nb_model *f = net();
    assert_non_null(nb_fit(f, (nb_dataset){.x = x, .y = y}, .batch_size = 7, .seed = 9));
    nb_model *same = by_hand(x, y, 9), *other = by_hand(x, y, 10);
    nb_tensor *const *pf, *const *ps, *const *po;
    int n = nb_model_params(f, &pf);
    nb_model_params(same, &ps);
    nb_model_params(other, &po);
    bool differs = false;
    for (int i = 0; i < n; i++) {
        assert_true(nb_allclose(pf[i], ps[i], 1e-6, 1e-7));
        differs |= !nb_allclose(pf[i], po[i], 1e-4, 1e-5);
    }
    assert_true(differs);
    nb_model_free(f);
    nb_model_free(same);
    nb_model_free(other);
    nb_free(x);
    nb_free(y);
}

/* After the iterator is made, a batch allocates nothing. */
static void test_no_allocation(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    rows_data(50, &x, &y);
    nb_batches *it = nb_batches_new((nb_dataset){.x = x, .y = y}, .batch_size = 8);
    nb_tensor *bx, *by;
    allocs = 0;
    assert_int_equal(nb_set_allocator(&counting_allocator), 0);
    int batches = 0;
    for (int e = 0; e < 3; e++)
        while (nb_batches_next(it, &bx, &by) > 0)
            batches++;
    assert_int_equal(nb_set_allocator(NULL), 0);
    assert_int_equal(batches, 21);
    assert_int_equal(allocs, 0);
    nb_batches_free(it);
    nb_free(x);
    nb_free(y);
}

static void test_no_leaks(void **state)
{
    (void)state;
    assert_int_equal(nb_live_tensors(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_epochs), cmocka_unit_test(test_no_shuffle_drop_last),
        cmocka_unit_test(test_u8_and_views),     cmocka_unit_test(test_same_as_fit),
        cmocka_unit_test(test_no_allocation),    cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
