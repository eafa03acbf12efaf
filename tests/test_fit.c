/* nb_fit, nb_evaluate and nb_predict around the data and the thread's
 * settings: datasets that are strided views train exactly as their packed
 * copies, nb_fit trains with subnormals flushed (unless told not to) and
 * gives the caller's setting back, also when it fails, running out of
 * memory is reported by the function the user called, and validation_split
 * holds out the last rows as Keras does. */
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
#include <unistd.h>

#include "nabla/nabla.h"

static nb_model *small_model(uint64_t seed)
{
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_RELU, .input = 4),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 4, seed), 0);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.01), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY),
                     0);
    return m;
}

/* ---- data that are views ---- */

static void test_fit_on_strided_views(void **state)
{
    (void)state;
    const int64_t n = 90;
    nb_tensor *x, *y;
    three_blobs(n, 4, NB_F32, 0.5, false, &x, &y);
    /* x kept transposed, (4, n), and y interleaved with junk rows, (2n, 3):
     * the training data are views of them, neither contiguous. */
    nb_tensor *xt = nb_zeros(NB_F32, NB_SHAPE(4, n));
    nb_tensor *y2 = nb_full(NB_F32, NB_SHAPE(2 * n, 3), 0.5);
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < 4; j++)
            nb_set(xt, NB_AT(j, i), nb_get(x, NB_AT(i, j)));
        for (int j = 0; j < 3; j++)
            nb_set(y2, NB_AT(2 * i, j), nb_get(y, NB_AT(i, j)));
    }
    nb_graph *g = nb_graph_new(); /* the views live here, outside nb_fit's graph */
    nb_tensor *xv = nb_transpose(xt, 0, 1);
    nb_tensor *yv = nb_slice(y2, 0, 0, INT64_MAX, 2);
    assert_non_null(xv);
    assert_non_null(yv);
    assert_false(nb_is_contiguous(xv));
    assert_false(nb_is_contiguous(yv));
    assert_true(nb_allclose(xv, x, 0, 0) && nb_allclose(yv, y, 0, 0));

    /* The same model, seeds and batches: bit-for-bit the same weights. */
    nb_model *a = small_model(1), *b = small_model(1);
    const nb_history *ha = nb_fit(a, (nb_dataset){.x = xv, .y = yv}, .epochs = 2, .batch_size = 16,
                                  .seed = 3, .validation = (nb_dataset){.x = xv, .y = yv});
    if (!ha)
        fail_msg("fit on views: %s", nb_last_error());
    double la = ha->loss[1], va = ha->val_loss[1];
    const nb_history *hb = nb_fit(b, (nb_dataset){.x = x, .y = y}, .epochs = 2, .batch_size = 16,
                                  .seed = 3, .validation = (nb_dataset){.x = x, .y = y});
    assert_non_null(hb);
    assert_true(la == hb->loss[1] && va == hb->val_loss[1]);
    assert_true(same_weights(a, b));
    assert_ptr_equal(nb_graph_current(), g); /* fit's own graph is gone again */

    /* evaluate and predict read views too. */
    double l1, m1, l2, m2;
    assert_int_equal(nb_evaluate(a, (nb_dataset){.x = xv, .y = yv}, .batch_size = 7, .loss = &l1,
                                 .metrics = &m1, .nmetrics = 1),
                     0);
    assert_int_equal(nb_evaluate(a, (nb_dataset){.x = x, .y = y}, .batch_size = 7, .loss = &l2,
                                 .metrics = &m2, .nmetrics = 1),
                     0);
    assert_true(l1 == l2 && m1 == m2);
    nb_tensor *p1 = nb_predict(a, (nb_dataset){.x = xv}, .batch_size = 7),
              *p2 = nb_predict(a, (nb_dataset){.x = x}, .batch_size = 7);
    assert_non_null(p1);
    assert_non_null(p2);
    assert_true(nb_is_heap(p1) && nb_is_contiguous(p1));
    assert_true(nb_allclose(p1, p2, 0, 0));

    nb_free(p1);
    nb_free(p2);
    nb_model_free(a);
    nb_model_free(b);
    nb_graph_free(g);
    nb_free(xt);
    nb_free(y2);
    nb_free(x);
    nb_free(y);
}

/* ---- the subnormal setting ---- */

/* An allocator that notes this thread's flush setting at each allocation:
 * nb_fit allocates its batches and graph after choosing the setting, so
 * what it notes is what training ran with. */
static long seen[2];
static void *spy_alloc(size_t size, void *ctx)
{
    (void)ctx;
    seen[nb_flush_subnormals() ? 1 : 0]++;
    return malloc(size);
}
static void spy_free(void *p, void *ctx)
{
    (void)ctx;
    free(p);
}
static const nb_allocator spy = {spy_alloc, spy_free, NULL};

static void test_fit_subnormal_setting(void **state)
{
    (void)state;
    nb_tensor *x, *y, *bad;
    three_blobs(40, 2, NB_F32, 0.5, false, &x, &y);
    bad = nb_full(NB_F32, NB_SHAPE(40, 3), 2.0); /* not one-hot: fit fails */
    nb_model *m = small_model(0);
    nb_model *uncompiled = nb_sequential(nb_dense(3, .input = 4));
    for (int caller = 0; caller < 2; caller++) {
        for (int keep = 0; keep < 2; keep++) {
            nb_set_flush_subnormals(caller);
            seen[0] = seen[1] = 0;
            nb_set_allocator(&spy);
            const nb_history *h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 1, .batch_size = 8,
                                         .keep_subnormals = keep);
            nb_set_allocator(NULL);
            if (!h)
                fail_msg("fit: %s", nb_last_error());
            /* training ran flushing unless keep_subnormals ... */
            assert_true(seen[!keep] > 0);
            assert_int_equal(seen[keep], 0);
            /* ... and the caller has its own setting back */
            assert_int_equal(nb_flush_subnormals(), caller);
        }
        /* also when nb_fit fails, early or after choosing the setting */
        nb_set_flush_subnormals(caller);
        assert_null(nb_fit(uncompiled, (nb_dataset){.x = x, .y = y}));
        assert_int_equal(nb_flush_subnormals(), caller);
        assert_null(nb_fit(m, (nb_dataset){.x = x, .y = bad}));
        ERR_HAS("one-hot");
        assert_int_equal(nb_flush_subnormals(), caller);
        assert_null(nb_fit(NULL, (nb_dataset){.x = x, .y = y}));
        assert_int_equal(nb_flush_subnormals(), caller);
    }
    nb_set_flush_subnormals(false);
    nb_model_free(m);
    nb_model_free(uncompiled);
    nb_free(x);
    nb_free(y);
    nb_free(bad);
}

/* ---- errors name the function called ---- */

/* An allocator that refuses blocks of a megabyte or more. */
static void *small_alloc(size_t size, void *ctx)
{
    (void)ctx;
    return size >= (1u << 20) ? NULL : malloc(size);
}
static const nb_allocator small = {small_alloc, spy_free, NULL};

static void test_out_of_memory_names_the_call(void **state)
{
    (void)state;
    nb_model *m = small_model(0);
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(300000, 4)); /* 4.8 MB, made before */
    nb_tensor *y = nb_zeros(NB_F32, NB_SHAPE(300000, 3));
    assert_non_null(x);
    assert_non_null(y);
    for (int64_t i = 0; i < 300000; i++)
        ((float *)nb_data(y))[3 * i] = 1;
    nb_bump_version(y);
    nb_graph *g = nb_graph_new();
    nb_tensor *xv = nb_slice(x, 1, 3, INT64_MIN, -1); /* the columns reversed */
    assert_false(nb_is_contiguous(xv));
    nb_set_allocator(&small);
    nb_clear_error();
    /* the (300000, 3) output is 3.6 MB */
    assert_null(nb_predict(m, (nb_dataset){.x = x}));
    ERR_HAS("nb_predict: out of memory");
    ERR_HAS("(300000,3)");
    /* a strided view must be packed: 4.8 MB */
    nb_clear_error();
    assert_null(nb_fit(m, (nb_dataset){.x = xv, .y = y}));
    ERR_HAS("nb_fit: out of memory packing a strided x");
    nb_clear_error();
    assert_int_equal(nb_evaluate(m, (nb_dataset){.x = xv, .y = y}), -1);
    ERR_HAS("nb_evaluate: out of memory packing a strided x");
    nb_graph_free(g);
    nb_set_allocator(NULL);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* After each test, even a failed one: testing.h's cleanup, and IEEE
 * arithmetic again. */
static int cleanup_fit(void **state)
{
    nb_set_flush_subnormals(false);
    return cleanup(state);
}

/* ---- validation_split ---- */

/* The last quarter held out: the same history, bit for bit, as training on
 * the first three quarters with the last given as validation data. */
static void test_validation_split(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(200, 3, NB_F32, 0.5, false, &x, &y);
    nb_graph *g = nb_graph_new();
    nb_tensor *xa = nb_slice(x, 0, 0, 150, 1), *ya = nb_slice(y, 0, 0, 150, 1);
    nb_tensor *xb = nb_slice(x, 0, 150, 200, 1), *yb = nb_slice(y, 0, 150, 200, 1);
    nb_model *a = small_model(1), *b = small_model(1);
    const nb_history *ha = nb_fit(a, (nb_dataset){x, y, 0}, .epochs = 3, .batch_size = 16,
                                  .validation_split = 0.25, .seed = 2);
    const nb_history *hb = nb_fit(b, (nb_dataset){xa, ya, 0}, .epochs = 3, .batch_size = 16,
                                  .validation = {xb, yb, 0}, .seed = 2);
    assert_non_null(ha);
    assert_non_null(hb);
    for (int e = 0; e < 3; e++) {
        assert_memory_equal(&ha->loss[e], &hb->loss[e], sizeof(double));
        assert_memory_equal(&ha->val_loss[e], &hb->val_loss[e], sizeof(double));
        assert_memory_equal(&ha->val_metric[e], &hb->val_metric[e], sizeof(double));
    }
    assert_true(same_weights(a, b));
    assert_null(nb_fit(a, (nb_dataset){x, y, 0}, .validation_split = 1.5));
    ERR_HAS("nb_fit: validation_split must be in (0, 1) and leave rows on both sides of the "
            "200, got 1.5");
    assert_null(nb_fit(a, (nb_dataset){x, y, 0}, .validation_split = 0.001));
    ERR_HAS("got 0.001");
    assert_null(nb_fit(a, (nb_dataset){x, y, 0}, .validation_split = 0.1,
                       .validation = {xb, yb, 0}));
    ERR_HAS("nb_fit: validation_split (0.1) and validation data are both given; pass one");
    nb_model_free(a);
    nb_model_free(b);
    nb_graph_free(g);
    nb_free(x);
    nb_free(y);
}

/* ---- callbacks, early stopping ---- */

typedef struct {
    int batches, epochs, stop_at_batch;
    double last_loss;
} counter;

static int count_batch(nb_model *m, const nb_logs *lg, void *ctx)
{
    (void)m;
    counter *c = ctx;
    c->batches++;
    c->last_loss = lg->loss;
    assert_int_equal(lg->batch, (c->batches - 1) % 10); /* 150 rows in batches of 16 */
    return c->stop_at_batch && c->batches == c->stop_at_batch ? 1 : 0;
}

static int count_epoch(nb_model *m, const nb_logs *lg, void *ctx)
{
    (void)m;
    counter *c = ctx;
    assert_int_equal(lg->epoch, c->epochs);
    assert_int_equal(lg->batch, -1);
    assert_false(isnan(lg->val_loss));
    c->epochs++;
    return 0;
}

static int failing_epoch(nb_model *m, const nb_logs *lg, void *ctx)
{
    (void)m, (void)ctx;
    return lg->epoch == 1 ? nb_set_error("my callback: enough") : 0;
}

static void test_callbacks(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(200, 4, NB_F32, 0.5, false, &x, &y);
    nb_model *m = small_model(2);
    counter c = {0};
    nb_callback cb = {count_batch, count_epoch, &c};
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 3, .batch_size = 16,
                                 .validation_split = 0.25, .callbacks = &cb,
                                 .ncallbacks = 1);
    assert_non_null(h);
    assert_int_equal(c.batches, 30);
    assert_int_equal(c.epochs, 3);
    assert_true(c.last_loss == h->loss[2]); /* the last batch's running mean is the epoch's */
    /* A stop asked in batch 13 (epoch 2) ends training after that epoch. */
    c = (counter){.stop_at_batch = 13};
    h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 5, .batch_size = 16, .validation_split = 0.25, .callbacks = &cb, .ncallbacks = 1);
    assert_non_null(h);
    assert_int_equal(h->epochs, 2);
    assert_int_equal(c.batches, 13);
    assert_int_equal(c.epochs, 2);
    /* A failing callback fails the fit with its error. */
    nb_callback bad = {NULL, failing_epoch, NULL};
    assert_null(nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 3, .callbacks = &bad,
                       .ncallbacks = 1));
    ERR_HAS("my callback: enough");
    assert_null(nb_fit(m, (nb_dataset){x, y, 0}, .ncallbacks = 2));
    ERR_HAS("nb_fit: 2 callbacks at");
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* EarlyStopping on val_loss: a learning rate so large that the loss only
 * gets worse after the first epochs; training stops patience epochs after
 * the best one, and restore_best_weights puts that epoch's weights back,
 * the same a best-only ModelCheckpoint saved. */
static void test_early_stopping(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(200, 5, NB_F32, 0.5, false, &x, &y);
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_RELU, .input = 4),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_int_equal(nb_build(m, 4, 1), 0);
    assert_int_equal(nb_compile(m, nb_sgd(.lr = 0.5, .momentum = 0.9), NB_CATEGORICAL_CROSSENTROPY,
                                NB_ACCURACY), 0);
    nb_early_stopping es = {.patience = 2, .restore_best_weights = true};
    char path[] = "/tmp/nabla_test_ckpt_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    nb_model_checkpoint ck = {.path = path, .save_best_only = true};
    nb_callback cbs[2] = {nb_early_stopping_callback(&es), nb_model_checkpoint_callback(&ck)};
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 40, .batch_size = 8,
                                 .validation_split = 0.25, .callbacks = cbs,
                                 .ncallbacks = 2);
    assert_non_null(h);
    int best = 0;
    for (int e = 1; e < h->epochs; e++)
        if (h->val_loss[e] < h->val_loss[best])
            best = e;
    printf("# stopped after %d epochs, best %d (val_loss %.4f)\n", h->epochs, es.best_epoch + 1,
           es.best);
    assert_true(es.stopped);
    assert_int_equal(es.best_epoch, best);
    assert_int_equal(h->epochs, best + 1 + 2 + 1);
    double loss;
    nb_graph *g = nb_graph_new();
    nb_tensor *xv = nb_slice(x, 0, 150, 200, 1), *yv = nb_slice(y, 0, 150, 200, 1);
    assert_int_equal(nb_evaluate(m, (nb_dataset){xv, yv, 0}, .batch_size = 32, .loss = &loss), 0);
    assert_true(loss == h->val_loss[best]); /* the best epoch's weights are back */
    /* The best-only checkpoint holds the same weights. */
    assert_int_equal(ck.saved_epoch, best);
    nb_model *c = nb_sequential(nb_dense(8, .activation = NB_RELU, .input = 4),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_int_equal(nb_build(c, 4, 9), 0);
    assert_int_equal(nb_load_weights(c, path), 0);
    assert_true(same_weights(c, m));
    nb_model_free(c);
    remove(path);
    nb_early_stopping_free(&es);
    nb_graph_free(g);
    /* Without validation data, val_loss cannot be watched. */
    nb_early_stopping es2 = {.patience = 1};
    nb_callback cb = nb_early_stopping_callback(&es2);
    assert_null(nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 2, .callbacks = &cb,
                       .ncallbacks = 1));
    ERR_HAS("nb_early_stopping: val_loss is NaN at epoch 1 (give nb_fit validation data");
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fit_on_strided_views, cleanup_fit),
        cmocka_unit_test_teardown(test_fit_subnormal_setting, cleanup_fit),
        cmocka_unit_test_teardown(test_out_of_memory_names_the_call, cleanup_fit),
        cmocka_unit_test(test_validation_split),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_early_stopping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
