/* Metrics: the built-in ones against values worked out by hand (ties, k at
 * and beyond the classes, labels and one-hot targets, NaN, f32 and f64,
 * Keras's documented examples); then compiled into a model with custom
 * losses and metrics: what fit's history, logs and lines and nb_evaluate
 * report, a custom loss training bit for bit as the built-in one it
 * rewrites, and custom functions that misbehave. */
#define _XOPEN_SOURCE 700 /* posix_openpt: a terminal for the progress bar */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"
#include "pty_testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "nabla/nabla.h"

static const nb_dtype dtypes[] = {NB_F32, NB_F64};


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
        nb_tensor *p = tensor_of(dtypes[d], NB_SHAPE(4, 4), scores);
        nb_tensor *l = tensor_of(dtypes[d], NB_SHAPE(4), classes);
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
        nb_tensor *soft = tensor_of(dtypes[d], NB_SHAPE(1, 4), (double[]){0, 0.5, 0.5, 0});
        nb_tensor *row0 = nb_slice(p, 0, 0, 1, 1);
        assert_true(value(nb_top_k_accuracy(row0, soft, 1)) == 1.0); /* class 1 scores 0.6 */
        /* NaN: a NaN score of the class is a miss whatever k; a NaN
         * elsewhere does not outrank it. */
        nb_tensor *pn = tensor_of(dtypes[d], NB_SHAPE(2, 3), (double[]){NAN, 0.2, 0.1, 0.3, NAN, 0.1});
        nb_tensor *ln = tensor_of(dtypes[d], NB_SHAPE(2), (double[]){0, 0});
        assert_true(value(nb_sparse_top_k_accuracy(pn, ln, 10)) == 0.5);
        assert_true(value(nb_sparse_top_k_accuracy(pn, ln, 1)) == 0.5);
        /* The result is in pred's dtype. */
        assert_int_equal(nb_dtype_of(nb_top_k_accuracy(p, t, 2)), dtypes[d]);
        /* Keras's examples (TopKCategoricalAccuracy(k=1), SparseTopK...): 0.5. */
        nb_tensor *kp = tensor_of(dtypes[d], NB_SHAPE(2, 3), (double[]){0.1, 0.9, 0.8, 0.05, 0.95, 0});
        nb_tensor *kt = tensor_of(dtypes[d], NB_SHAPE(2, 3), (double[]){0, 0, 1, 0, 1, 0});
        nb_tensor *kl = tensor_of(dtypes[d], NB_SHAPE(2), (double[]){2, 1});
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
    nb_tensor *p = tensor_of(NB_F64, NB_SHAPE(2, 2, 3),
                        (double[]){1, 2, 3, 3, 2, 1, 0, 0, 1, 5, 4, 6});
    nb_tensor *l = tensor_of(NB_F64, NB_SHAPE(2, 2), (double[]){1, 1, 0, 0});
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
        nb_tensor *t = tensor_of(dtypes[d], NB_SHAPE(4, 1), (double[]){1, 1, 0, 0});
        nb_tensor *p = tensor_of(dtypes[d], NB_SHAPE(4, 1), (double[]){0.98, 1, 0, 0.6});
        assert_true(value(nb_binary_accuracy(p, t)) == 0.75);
        /* Exactly 0.5 is class 0 (pred > 0.5 is 1); a target of 0.5 never
         * matches; NaN is class 0. Over every element of (2, 3). */
        nb_tensor *p2 = tensor_of(dtypes[d], NB_SHAPE(2, 3),
                             (double[]){0.5, 0.5000001, 0.2, 0.7, NAN, 0.9});
        nb_tensor *t2 = tensor_of(dtypes[d], NB_SHAPE(2, 3), (double[]){0, 1, 0.5, 1, 0, 0});
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
    nb_tensor *p = nb_param(tensor_of(NB_F64, NB_SHAPE(4, 4), scores));
    nb_tensor *l = tensor_of(NB_F64, NB_SHAPE(4), classes);
    int64_t before = nb_graph_nodes(g);
    assert_false(nb_requires_grad(nb_sparse_top_k_accuracy(p, l, 2)));
    assert_false(nb_requires_grad(nb_binary_accuracy(p, p)));
    assert_int_equal(nb_graph_nodes(g), before);
    assert_true(nb_is_grad_enabled());
    nb_free(p);
    nb_free(l);
    nb_graph_free(g);
}

/* ---- compiled into a model ---- */

static nb_model *classifier(uint64_t seed)
{
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_RELU, .input = 4),
                                nb_dense(3, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 4, seed), 0);
    return m;
}

/* Custom metrics: categorical accuracy by hand (counting its calls in
 * ctx), and a constant 0. */
static nb_tensor *my_acc(nb_tensor *out, nb_tensor *y, void *ctx)
{
    if (ctx)
        (*(int *)ctx)++;
    assert_false(nb_is_grad_enabled()); /* metrics run with recording off */
    return nb_mean(nb_eq(nb_argmax(out, -1), nb_argmax(y, -1)));
}

static nb_tensor *zero(nb_tensor *out, nb_tensor *y, void *ctx)
{
    (void)y, (void)ctx;
    return nb_scalar_like(out, 0);
}

/* fit's format for a value: Keras's %.4f, or %.4e within 1e-3 of 0. */
static const char *fmt(char *b, double v)
{
    snprintf(b, 32, fabs(v) > 1e-3 ? "%.4f" : "%.4e", v);
    return b;
}

/* What the callbacks saw at the end of each epoch. */
typedef struct {
    int batches, epochs;
    double metrics[4][NB_MAX_METRICS], val[4][NB_MAX_METRICS];
    const char *names[NB_MAX_METRICS];
    int nmetrics;
} seen_logs;

static int on_batch(nb_model *m, const nb_logs *lg, void *ctx)
{
    (void)m;
    seen_logs *s = ctx;
    s->batches++;
    assert_int_equal(lg->nmetrics, 7);
    assert_true(lg->metric == lg->metrics[0]);
    assert_true(isnan(lg->val_metrics[0]) && isnan(lg->val_loss));
    return 0;
}

static int on_epoch(nb_model *m, const nb_logs *lg, void *ctx)
{
    (void)m;
    seen_logs *s = ctx;
    assert_true(lg->epoch < 4);
    s->nmetrics = lg->nmetrics;
    for (int i = 0; i < lg->nmetrics; i++) {
        s->metrics[lg->epoch][i] = lg->metrics[i];
        s->val[lg->epoch][i] = lg->val_metrics[i];
        s->names[i] = lg->metric_names[i];
    }
    assert_true(lg->val_metric == lg->val_metrics[0]);
    s->epochs++;
    return 0;
}


/* Seven metrics, built-in and custom: their names and order in the
 * history, the logs and fit's lines (sorted by name, as Keras 3 prints
 * them), the values (accuracy three ways alike, top 2 of 3 above it), and
 * nb_evaluate's against values computed from nb_predict. */
static void test_fit_reports_every_metric(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(120, 3, NB_F32, 0.8, false, &x, &y);
    nb_model *m = classifier(1);
    int calls = 0;
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.01), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY,
                                .metrics = {NB_TOP_K_ACCURACY, NB_MSE, NB_MAE,
                                            NB_CATEGORICAL_ACCURACY},
                                .top_k = 2,
                                .custom_metrics = {{my_acc, &calls, "my_acc"}, {zero, NULL, "zero"}}),
                     0);
    seen_logs sl = {0};
    nb_callback cb = {on_batch, on_epoch, &sl};
    FILE *out = tmpfile();
    assert_non_null(out);
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 3, .batch_size = 16,
                                 .validation_split = 0.25, .seed = 2, .verbose = 2, .out = out,
                                 .callbacks = &cb, .ncallbacks = 1);
    if (!h)
        fail_msg("fit: %s", nb_last_error());
    const char *names[] = {"accuracy", "top_k_categorical_accuracy", "mean_squared_error",
                           "mean_absolute_error", "categorical_accuracy", "my_acc", "zero"};
    assert_int_equal(h->nmetrics, 7);
    for (int i = 0; i < 7; i++) {
        assert_string_equal(h->metric_names[i], names[i]);
        assert_string_equal(sl.names[i], names[i]);
    }
    assert_ptr_equal(h->metric, h->metrics[0]);
    assert_ptr_equal(h->val_metric, h->val_metrics[0]);
    /* 90 training rows in 6 batches and 30 validation rows in 2, each epoch. */
    assert_int_equal(sl.batches, 18);
    assert_int_equal(calls, 3 * (6 + 2));
    for (int e = 0; e < 3; e++) {
        for (int i = 0; i < 7; i++) {
            assert_true(sl.metrics[e][i] == h->metrics[i][e]);
            assert_true(sl.val[e][i] == h->val_metrics[i][e]);
        }
        const double *const *v = (const double *const *)h->metrics;
        for (int side = 0; side < 2; side++, v = (const double *const *)h->val_metrics) {
            assert_true(v[0][e] == v[4][e] && v[0][e] == v[5][e]);
            assert_true(v[1][e] >= v[0][e] && v[1][e] <= 1);
            assert_true(v[2][e] > 0 && v[3][e] > 0 && v[6][e] == 0);
        }
    }
    assert_true(h->metrics[0][2] > h->metrics[0][0]); /* it learns */

    /* The epoch lines: every metric, sorted by name, then the validation's. */
    char *text = text_of(out);
    fclose(out);
    for (int e = 0; e < 3; e++) {
        char want[1024], b[16][32];
        const double *t = &h->loss[e], *vl = &h->val_loss[e];
        double tv[7], vv[7];
        for (int i = 0; i < 7; i++) {
            tv[i] = h->metrics[i][e];
            vv[i] = h->val_metrics[i][e];
        }
        snprintf(want, sizeof want,
                 "/step - accuracy: %s - categorical_accuracy: %s - loss: %s - "
                 "mean_absolute_error: %s - mean_squared_error: %s - my_acc: %s - "
                 "top_k_categorical_accuracy: %s - zero: %s - val_accuracy: %s - "
                 "val_categorical_accuracy: %s - val_loss: %s - val_mean_absolute_error: %s - "
                 "val_mean_squared_error: %s - val_my_acc: %s - "
                 "val_top_k_categorical_accuracy: %s - val_zero: %s\n",
                 fmt(b[0], tv[0]), fmt(b[1], tv[4]), fmt(b[2], *t), fmt(b[3], tv[3]),
                 fmt(b[4], tv[2]), fmt(b[5], tv[5]), fmt(b[6], tv[1]), fmt(b[7], tv[6]),
                 fmt(b[8], vv[0]), fmt(b[9], vv[4]), fmt(b[10], *vl), fmt(b[11], vv[3]),
                 fmt(b[12], vv[2]), fmt(b[13], vv[5]), fmt(b[14], vv[1]), fmt(b[15], vv[6]));
        assert_string_equal(b[7], "0.0000e+00");
        if (!strstr(text, want))
            fail_msg("epoch %d: no \"%s\" in:\n%s", e + 1, want, text);
    }
    free(text);

    /* nb_evaluate fills the seven in order and NAN in the entries past
     * them; with fit's batch size the validation's values again, bit for
     * bit. */
    nb_graph *g = nb_graph_new();
    nb_tensor *xv = nb_slice(x, 0, 90, 120, 1), *yv = nb_slice(y, 0, 90, 120, 1);
    double loss, ev[NB_MAX_METRICS + 1];
    for (int i = 0; i <= NB_MAX_METRICS; i++)
        ev[i] = 42;
    assert_int_equal(nb_evaluate(m, (nb_dataset){xv, yv, 0}, .batch_size = 16, .loss = &loss,
                                 .metrics = ev, .nmetrics = NB_MAX_METRICS + 1),
                     0);
    assert_true(loss == h->val_loss[2]);
    for (int i = 0; i < 7; i++)
        assert_true(ev[i] == h->val_metrics[i][2]);
    assert_true(isnan(ev[7]) && isnan(ev[8]));
    /* ... and what the predictions give, computed here in double. */
    nb_tensor *p = nb_predict(m, (nb_dataset){.x = xv});
    assert_non_null(p);
    double hits = 0, top2 = 0, se = 0, ae = 0;
    for (int64_t i = 0; i < 30; i++) {
        int best = 0, c = 0;
        for (int j = 0; j < 3; j++) {
            if (nb_get(p, NB_AT(i, j)) > nb_get(p, NB_AT(i, best)))
                best = j;
            if (nb_get(yv, NB_AT(i, j)) == 1)
                c = j;
            double d = nb_get(p, NB_AT(i, j)) - nb_get(yv, NB_AT(i, j));
            se += d * d;
            ae += fabs(d);
        }
        int above = 0;
        for (int j = 0; j < 3; j++)
            above += nb_get(p, NB_AT(i, j)) > nb_get(p, NB_AT(i, c));
        hits += best == c;
        top2 += above < 2;
    }
    assert_true(fabs(ev[0] - hits / 30) < 1e-6); /* f32 batch means */
    assert_true(fabs(ev[1] - top2 / 30) < 1e-6);
    assert_true(fabs(ev[2] - se / 90) < 1e-6);
    assert_true(fabs(ev[3] - ae / 90) < 1e-6);
    nb_free(p);
    nb_graph_free(g);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* Mean squared error, written by hand. */
static nb_tensor *hand_mse(nb_tensor *out, nb_tensor *y, void *ctx)
{
    (void)ctx;
    return nb_mean(nb_square(nb_sub(out, y)));
}

static nb_model *regressor(uint64_t seed)
{
    nb_model *m = nb_sequential(nb_dense(6, .activation = NB_TANH, .input = 3), nb_dense(2));
    assert_non_null(m);
    assert_int_equal(nb_build(m, 3, seed), 0);
    return m;
}

/* A custom loss trains exactly as the built-in loss it rewrites (losses,
 * validation, metrics and weights bit for bit); NB_MSE beside
 * NB_MEAN_SQUARED_ERROR is the loss itself; without metrics the history
 * has none and nb_evaluate gives one NAN. */
static void test_custom_loss_is_the_builtin(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(7);
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(80, 3), &rng), *y = nb_zeros(NB_F32, NB_SHAPE(80, 2));
    for (int64_t i = 0; i < 80; i++) {
        nb_set(y, NB_AT(i, 0), nb_get(x, NB_AT(i, 0)) - 0.5 * nb_get(x, NB_AT(i, 2)));
        nb_set(y, NB_AT(i, 1), sin(nb_get(x, NB_AT(i, 1))));
    }
    nb_model *a = regressor(4), *b = regressor(4);
    assert_int_equal(nb_compile(a, nb_adam(.lr = 0.02), NB_MEAN_SQUARED_ERROR, NB_MSE,
                                .metrics = {NB_MAE}), 0);
    assert_int_equal(nb_compile(b, nb_adam(.lr = 0.02), .custom_loss = {hand_mse, NULL, "hand"},
                                .metric = NB_MSE, .metrics = {NB_MAE}), 0);
    nb_fit_opts o = {.data = {x, y, 0}, .epochs = 4, .batch_size = 16, .validation_split = 0.25,
                     .seed = 5};
    const nb_history *ha = nb_fit_(a, o);
    assert_non_null(ha);
    double la[4], va[4], ma[4], vma[4];
    for (int e = 0; e < 4; e++) {
        la[e] = ha->loss[e];
        va[e] = ha->val_loss[e];
        ma[e] = ha->metrics[1][e];
        vma[e] = ha->val_metrics[1][e];
        /* NB_MSE is the loss, batch by batch, so the same means. */
        assert_true(ha->metrics[0][e] == ha->loss[e]);
        assert_true(ha->val_metrics[0][e] == ha->val_loss[e]);
    }
    assert_true(la[3] < la[0] / 2); /* it trains */
    const nb_history *hb = nb_fit_(b, o);
    assert_non_null(hb);
    for (int e = 0; e < 4; e++) {
        assert_memory_equal(&hb->loss[e], &la[e], sizeof(double));
        assert_memory_equal(&hb->val_loss[e], &va[e], sizeof(double));
        assert_memory_equal(&hb->metrics[1][e], &ma[e], sizeof(double));
        assert_memory_equal(&hb->val_metrics[1][e], &vma[e], sizeof(double));
    }
    assert_true(same_weights(a, b));
    /* nb_model_loss takes the custom loss too. */
    nb_graph *g = nb_graph_new();
    nb_tensor *out = nb_model_forward(b, x);
    assert_true(nb_item(nb_model_loss(b, out, y)) == nb_item(nb_mse(out, y)));
    nb_graph_free(g);
    /* No metrics: none in the history, a NAN from nb_evaluate, which
     * writes no more than the .nmetrics entries it is given. */
    assert_int_equal(nb_compile(b, nb_model_optimizer(b), .custom_loss = {hand_mse}), 0);
    const nb_history *h0 = nb_fit(b, (nb_dataset){x, y, 0});
    assert_non_null(h0);
    assert_int_equal(h0->nmetrics, 0);
    assert_null(h0->metrics[0]);
    assert_true(isnan(h0->metric[0]));
    double l0, m0[2] = {1, 42};
    assert_int_equal(
        nb_evaluate(b, (nb_dataset){x, y, 0}, .loss = &l0, .metrics = m0, .nmetrics = 1), 0);
    assert_true(isnan(m0[0]) && m0[1] == 42);
    nb_model_free(a);
    nb_model_free(b);
    nb_free(x);
    nb_free(y);
}

/* Cross-entropy from labels, written by hand on the softmax's output. */
static nb_tensor *hand_sparse_ce(nb_tensor *out, nb_tensor *labels, void *ctx)
{
    (void)ctx;
    nb_tensor *hot = nb_one_hot(labels, nb_dim(out, -1));
    nb_tensor *logp = nb_log(nb_clamp(out, 1e-7, 1 - 1e-7));
    return nb_neg(nb_mean(nb_sum(nb_mul(hot, logp), .axes = NB_AXES(-1))));
}

/* A custom loss of labels: NB_ACCURACY and NB_TOP_K_ACCURACY see labels
 * (one axis fewer than the output) and take their sparse forms. */
static void test_custom_loss_of_labels(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    three_blobs(96, 8, NB_F32, 0.8, true, &x, &y);
    nb_model *m = classifier(3);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.02), .custom_loss = {hand_sparse_ce},
                                .metric = NB_ACCURACY,
                                .metrics = {NB_SPARSE_CATEGORICAL_ACCURACY, NB_TOP_K_ACCURACY},
                                .top_k = 3), 0);
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 4, .batch_size = 16,
                                 .validation_split = 0.25);
    if (!h)
        fail_msg("fit: %s", nb_last_error());
    assert_string_equal(h->metric_names[2], "top_k_categorical_accuracy");
    for (int e = 0; e < 4; e++) {
        assert_true(h->metrics[0][e] == h->metrics[1][e]);
        assert_true(h->val_metrics[0][e] == h->val_metrics[1][e]);
        assert_true(h->metrics[2][e] == 1.0); /* the top 3 of 3 classes */
    }
    assert_true(h->loss[3] < h->loss[0]);
    assert_true(h->val_metrics[0][3] > h->val_metrics[0][0]);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* One output: NB_ACCURACY is binary accuracy (Keras's choice), what the
 * predictions on the right side of 0.5 give. */
static void test_accuracy_of_one_output(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(11);
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(40, 2), &rng), *y = nb_zeros(NB_F32, NB_SHAPE(40, 1));
    for (int64_t i = 0; i < 40; i++)
        nb_set(y, NB_AT(i, 0), nb_get(x, NB_AT(i, 0)) * nb_get(x, NB_AT(i, 1)) > 0);
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_TANH, .input = 2),
                                nb_dense(1, .activation = NB_SIGMOID));
    assert_int_equal(nb_build(m, 2, 5), 0);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.05), NB_BINARY_CROSSENTROPY, NB_ACCURACY,
                                .metrics = {NB_BINARY_ACCURACY}), 0);
    for (int round = 0; round < 2; round++) {
        double loss, acc[2];
        assert_int_equal(nb_evaluate(m, (nb_dataset){x, y, 0}, .batch_size = 16, .loss = &loss,
                                     .metrics = acc, .nmetrics = 2),
                         0);
        nb_tensor *p = nb_predict(m, (nb_dataset){.x = x});
        assert_non_null(p);
        double hits = 0;
        for (int64_t i = 0; i < 40; i++)
            hits += (nb_get_flat(p, i) > 0.5) == (nb_get_flat(y, i) == 1);
        nb_free(p);
        assert_true(acc[0] == acc[1]);
        assert_true(fabs(acc[0] - hits / 40) < 1e-6); /* f32 batch means */
        if (round == 0)
            assert_true(hits < 40); /* untrained: some wrong, so not the 1.0 of one argmax */
        const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 30, .batch_size = 8);
        assert_non_null(h);
        for (int e = 0; e < h->epochs; e++)
            assert_true(h->metrics[0][e] == h->metrics[1][e]);
    }
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* On a terminal, the progress bar shows the metrics in the same order. */
static void test_progress_bar(void **state)
{
    (void)state;
    int master;
    FILE *tty = pty_open(&master);
    nb_tensor *x, *y;
    three_blobs(40, 2, NB_F32, 0.8, false, &x, &y);
    nb_model *m = classifier(2);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY,
                                .custom_metrics = {{my_acc, NULL, "my_acc"}}), 0);
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .batch_size = 8,
                                 .verbose = NB_VERBOSE_AUTO, .out = tty);
    assert_non_null(h);
    fclose(tty);
    /* Everything written, until the closed side reads as the end (EIO). */
    char text[8192];
    pty_drain(master, text, sizeof text);
    char want[256], b[3][32];
    /* Keras's bold count and green bar; no "Epoch 1/1" for a single epoch. */
    snprintf(want, sizeof want, "\x1b[1m5/5\x1b[0m \x1b[32m%s\x1b[0m\x1b[37m\x1b[0m \x1b[1m0s\x1b[0m ",
             "━━━━━━━━━━━━━━━━━━━━");
    char end[256];
    snprintf(end, sizeof end, "/step - accuracy: %s - loss: %s - my_acc: %s",
             fmt(b[0], h->metric[0]), fmt(b[1], h->loss[0]), fmt(b[2], h->metrics[1][0]));
    /* the last drawing ends the line, after spaces covering a longer one */
    const char *last = strstr(text, end);
    last = last ? last + strlen(end) + strspn(last + strlen(end), " ") : NULL;
    if (strstr(text, "Epoch 1/1") || !strstr(text, want) || !last || strcmp(last, "\r\n") != 0)
        fail_msg("no \"%s\" in:\n%s", want, text);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* Custom functions that go wrong fail the call, naming it, the batch and
 * the function. */
static nb_tensor *rows_loss(nb_tensor *out, nb_tensor *y, void *ctx)
{
    (void)ctx;
    return nb_sum(nb_square(nb_sub(out, y)), .axes = NB_AXES(-1)); /* no mean: (N,) */
}
static nb_tensor *silent(nb_tensor *out, nb_tensor *y, void *ctx)
{
    (void)out, (void)y, (void)ctx;
    return NULL;
}
static nb_tensor *loud(nb_tensor *out, nb_tensor *y, void *ctx)
{
    (void)out, (void)y, (void)ctx;
    nb_set_error("loud: broken on purpose");
    return NULL;
}

static void test_custom_functions_that_fail(void **state)
{
    (void)state;
    nb_tensor *x, *y, *x2, *labels;
    three_blobs(32, 1, NB_F32, 0.8, false, &x, &y);
    three_blobs(32, 1, NB_F32, 0.8, true, &x2, &labels); /* the same rows, labelled */
    nb_free(x2);
    nb_model *m = classifier(1);
    nb_dataset d = {x, y, 0};
    assert_int_equal(nb_compile(m, nb_sgd(), .custom_loss = {rows_loss, NULL, "rows"}), 0);
    FAILS(nb_fit(m, d), "nb_fit: epoch 1, batch 1: ",
          "the loss \"rows\" gave a (32,) tensor; a loss gives a 0-d tensor");
    assert_int_equal(nb_last_error_code(), NB_ERR_SHAPE);
    FAILS_RC(nb_evaluate(m, d), "nb_evaluate: ", "the loss \"rows\" gave a (32,)");
    nb_graph *g = nb_graph_new();
    FAILS(nb_model_loss(m, nb_model_forward(m, x), y), "nb_model_loss: the loss \"rows\"");
    nb_graph_free(g);
    assert_int_equal(nb_compile(m, nb_model_optimizer(m), NB_CATEGORICAL_CROSSENTROPY,
                                .custom_metrics = {{silent, NULL, "silent"}}), 0);
    FAILS(nb_fit(m, d), "nb_fit: epoch 1, batch 1: ",
          "the metric \"silent\" gave NULL and set no error");
    FAILS_RC(nb_evaluate(m, d), "nb_evaluate: the metric \"silent\" gave NULL");
    assert_int_equal(nb_compile(m, nb_model_optimizer(m), NB_CATEGORICAL_CROSSENTROPY,
                                .custom_metrics = {{loud, NULL, "loud"}}), 0);
    FAILS(nb_fit(m, d), "nb_fit: epoch 1, batch 1: loud: broken on purpose");
    assert_int_equal(nb_compile(m, nb_model_optimizer(m), NB_CATEGORICAL_CROSSENTROPY,
                                .custom_metrics = {{rows_loss, NULL, "rows"}}), 0);
    FAILS(nb_fit(m, d), "the metric \"rows\" gave a (32,) tensor");
    /* A built-in metric of one-hot targets, given labels by a custom loss. */
    assert_int_equal(nb_compile(m, nb_model_optimizer(m), .custom_loss = {hand_sparse_ce},
                                .metric = NB_CATEGORICAL_ACCURACY), 0);
    FAILS(nb_fit(m, (nb_dataset){x, labels, 0}), "nb_fit: epoch 1, batch 1: ",
          "nb_categorical_accuracy: pred (32,3) and target (32,) differ");
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    nb_free(labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_top_k, cleanup),
        cmocka_unit_test_teardown(test_top_k_batched, cleanup),
        cmocka_unit_test_teardown(test_binary_accuracy, cleanup),
        cmocka_unit_test_teardown(test_no_gradient, cleanup),
        cmocka_unit_test_teardown(test_fit_reports_every_metric, cleanup),
        cmocka_unit_test_teardown(test_custom_loss_is_the_builtin, cleanup),
        cmocka_unit_test_teardown(test_custom_loss_of_labels, cleanup),
        cmocka_unit_test_teardown(test_accuracy_of_one_output, cleanup),
        cmocka_unit_test_teardown(test_progress_bar, cleanup),
        cmocka_unit_test_teardown(test_custom_functions_that_fail, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
