/* Data-parallel training over MPI, run as `mpirun -np 2 test_dist`
 * (tests/meson.build). Every rank also trains the same model alone on the
 * whole data, as one process would, and compares: the distributed weights
 * must be those to 1e-6 (f32) and 1e-12 (f64) after 100 steps. Rank 0
 * writes the TAP report; the others' output is dropped, and a failure on
 * them fails the run through its exit status. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "nabla/nabla.h"

enum { FEATURES = 12, CLASSES = 5 };

typedef struct {
    nb_tensor *x, *y;
} data;

/* Rows of a learnable problem: the class is the largest of the first five
 * features, plus noise. */
static data make_data(nb_dtype dt, int64_t n, uint64_t seed)
{
    nb_rng rng = nb_rng_new(seed);
    data d = {nb_zeros(dt, 2, (int64_t[]){n, FEATURES}), nb_zeros(dt, 2, (int64_t[]){n, CLASSES})};
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        double bv = -1e9;
        for (int j = 0; j < FEATURES; j++) {
            double v = nb_rng_normal(&rng);
            nb_set(d.x, 2, (int64_t[]){i, j}, v);
            if (j < CLASSES && v > bv)
                bv = v, best = j;
        }
        nb_set(d.y, 2, (int64_t[]){i, best}, 1);
    }
    return d;
}

static void free_data(data d)
{
    nb_free(d.x);
    nb_free(d.y);
}

/* With bn, a BatchNormalization layer in the middle, into *bn. */
static nb_model *model_bn(nb_dtype dt, int64_t units, nb_layer **bn)
{
    nb_model *m = bn ? nb_sequential(nb_dense(units, .activation = NB_RELU, .input = FEATURES),
                                     *bn = nb_batch_normalization(),
                                     nb_dense(CLASSES, .activation = NB_SOFTMAX))
                     : nb_sequential(nb_dense(units, .activation = NB_RELU, .input = FEATURES),
                                     nb_dense(CLASSES, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_adam(.lr = 0.01), NB_CATEGORICAL_CROSSENTROPY,
                                NB_ACCURACY), 0);
    assert_int_equal(nb_model_set_dtype(m, dt), 0);
    return m;
}

static nb_model *model(nb_dtype dt, int64_t units) { return model_bn(dt, units, NULL); }

/* The largest difference between the weights of a and b, relative to 1 or
 * to the value. */
static double max_diff(const nb_model *a, const nb_model *b)
{
    nb_tensor *const *pa, *const *pb;
    int n = nb_model_params(a, &pa);
    assert_int_equal(nb_model_params(b, &pb), n);
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < nb_numel(pa[i]); j++) {
            double u = nb_get_flat(pa[i], j), v = nb_get_flat(pb[i], j);
            double d = fabs(u - v) / fmax(1, fabs(v));
            worst = d > worst ? d : worst;
        }
    return worst;
}

/* A hash of the bytes of tensors, the same on every rank only if they are
 * bit for bit the same: checked collectively. */
static void assert_same_on_every_rank(nb_tensor *const *t, int n)
{
    uint64_t h = 1469598103934665603u;
    for (int i = 0; i < n; i++) {
        const unsigned char *p = nb_data(t[i]);
        for (size_t k = 0; k < (size_t)nb_numel(t[i]) * nb_dtype_size(nb_dtype_of(t[i])); k++)
            h = (h ^ p[k]) * 1099511628211u;
    }
    int64_t v = (int64_t)h;
    const char *name = "the weights' hash";
    if (nb_dist_check("test", 1, &v, &name))
        fail_msg("%s", nb_last_error());
}

static void assert_params_same_on_every_rank(const nb_model *m)
{
    nb_tensor *const *p;
    int np = nb_model_params(m, &p);
    assert_same_on_every_rank(p, np);
}

/* Global batch bs over rows n for the given epochs: the distributed model
 * against the same one trained alone. */
static void equivalence(nb_dtype dt, int64_t n, int bs, int epochs, double tol)
{
    data d = make_data(dt, n, 11);
    nb_model *alone = model(dt, 32), *dist = model(dt, 32);
    assert_int_equal(nb_model_distribute(dist), 0);
    nb_dataset train = {.x = d.x, .y = d.y};
    const nb_history *h1 = nb_fit(alone, train, .epochs = epochs, .batch_size = bs, .seed = 5);
    assert_non_null(h1);
    double loss1 = h1->loss[epochs - 1], acc1 = h1->metric[epochs - 1];
    const nb_history *h2 = nb_fit(dist, train, .epochs = epochs, .batch_size = bs, .seed = 5);
    if (!h2)
        fail_msg("%s", nb_last_error());
    assert_int_equal(nb_optimizer_steps(nb_model_optimizer(dist)),
                     nb_optimizer_steps(nb_model_optimizer(alone)));
    double diff = max_diff(dist, alone);
    print_message("# %s, %lld rows, batch %d: %lld steps, largest difference %.3g\n",
                  nb_dtype_name(dt), (long long)n, bs,
                  (long long)nb_optimizer_steps(nb_model_optimizer(dist)), diff);
    assert_true(diff <= tol);
    /* Every rank reports the global figures. */
    assert_true(fabs(h2->loss[epochs - 1] - loss1) <= 1e3 * tol * fmax(1, loss1));
    assert_true(fabs(h2->metric[epochs - 1] - acc1) <= 1e-9);
    assert_params_same_on_every_rank(dist);
    nb_model_free(alone);
    nb_model_free(dist);
    free_data(d);
}

/* 1575 rows in batches of 32: 50 steps an epoch, the last of 7 rows
 * (shards of 4 and 3); two epochs. */
static void test_equivalence_f32(void **state)
{
    (void)state;
    equivalence(NB_F32, 1575, 32, 2, 1e-6);
}

/* An odd batch (shards of 17 and 16) in f64. */
static void test_equivalence_f64(void **state)
{
    (void)state;
    equivalence(NB_F64, 49 * 33 + 10, 33, 2, 1e-12);
}

/* Batches of one row: every step, one rank has none. */
static void test_batches_of_one(void **state)
{
    (void)state;
    equivalence(NB_F64, 13, 1, 2, 1e-12);
}

/* A hand-written loop: each rank backpropagates its shard with
 * nb_dist_backward and gets the global batch's gradient. */
static void test_hand_written_loop(void **state)
{
    (void)state;
    data d = make_data(NB_F64, 37, 3);
    nb_model *m = model(NB_F64, 8);
    assert_int_equal(nb_model_distribute(m), 0);
    nb_tensor *const *p;
    int np = nb_model_params(m, &p);
    nb_graph *g = nb_graph_new();
    /* The gradient of the whole batch, as one process. */
    nb_tensor *loss = nb_model_loss(m, nb_model_forward(m, d.x), d.y);
    assert_int_equal(nb_backward(loss), 0);
    double whole = nb_item(loss);
    nb_tensor *want[8];
    for (int i = 0; i < np; i++) {
        want[i] = nb_clone(nb_grad_of(p[i]));
        nb_zero_grad(p[i]);
    }
    nb_graph_reset(g);
    int64_t start, count;
    nb_dist_shard(37, &start, &count);
    nb_tensor *xs = nb_slice(d.x, 0, start, start + count, 1),
              *ys = nb_slice(d.y, 0, start, start + count, 1);
    nb_tensor *l = nb_model_loss(m, nb_model_forward(m, xs), ys);
    double sums[2] = {nb_item(l) * (double)count, (double)count};
    assert_int_equal(nb_dist_backward(l, .weight = (double)count / 37, .n = np, .params = p,
                                      .sums = sums, .nsums = 2), 0);
    assert_true(sums[1] == 37);
    assert_true(fabs(sums[0] / 37 - whole) < 1e-12);
    for (int i = 0; i < np; i++) {
        nb_tensor *gr = nb_grad_of(p[i]);
        for (int64_t j = 0; j < nb_numel(gr); j++)
            assert_true(fabs(nb_get_flat(gr, j) - nb_get_flat(want[i], j)) < 1e-12);
    }
    /* Without zeroing, .grad accumulates: the old gradient plus the new
     * sum (the old one is not summed over the ranks again). */
    l = nb_model_loss(m, nb_model_forward(m, xs), ys);
    assert_int_equal(nb_dist_backward(l, .weight = (double)count / 37, .n = np, .params = p), 0);
    for (int i = 0; i < np; i++) {
        nb_tensor *gr = nb_grad_of(p[i]);
        for (int64_t j = 0; j < nb_numel(gr); j++)
            assert_true(fabs(nb_get_flat(gr, j) - 2 * nb_get_flat(want[i], j)) < 1e-12);
        nb_zero_grad(p[i]);
    }
    /* A backward that fails on the last rank (its graph was released by
     * the one above) fails on every rank, the others saying so. */
    bool last = nb_dist_rank() == nb_dist_size() - 1;
    if (!last)
        l = nb_model_loss(m, nb_model_forward(m, xs), ys);
    assert_int_equal(nb_dist_backward(l, .weight = (double)count / 37, .n = np, .params = p),
                     -1);
    if (last)
        assert_non_null(strstr(nb_last_error(), "already backpropagated"));
    else
        assert_non_null(strstr(nb_last_error(), "nb_dist_backward: 1 rank failed in the "
                                                "backward"));
    /* Small buckets: last first, a bucket takes tensors until it holds 64
     * bytes: {bias 2 (40 bytes), kernel 2}, {bias 1 (64)}, {kernel 1}. */
    assert_int_equal(nb_dist_set_bucket_bytes(64), 0);
    for (int i = 0; i < np; i++)
        nb_zero_grad(p[i]);
    nb_dist_stats st;
    nb_dist_stats_get(&st, true);
    l = nb_model_loss(m, nb_model_forward(m, xs), ys);
    assert_int_equal(nb_dist_backward(l, .weight = (double)count / 37, .n = np, .params = p), 0);
    nb_dist_stats_get(&st, true);
    assert_int_equal(st.calls, 1);
    if (nb_dist_size() > 1)
        assert_int_equal(st.buckets, 3);
    for (int i = 0; i < np; i++) { /* the same gradient, whatever the buckets */
        nb_tensor *gr = nb_grad_of(p[i]);
        for (int64_t j = 0; j < nb_numel(gr); j++)
            assert_true(fabs(nb_get_flat(gr, j) - nb_get_flat(want[i], j)) < 1e-12);
    }
    assert_int_equal(nb_dist_set_bucket_bytes(1 << 20), 0);
    for (int i = 0; i < np; i++)
        nb_free(want[i]);
    nb_graph_free(g);
    nb_model_free(m);
    free_data(d);
}

/* evaluate and predict shard the rows and gather: as one process. */
static void test_evaluate_predict(void **state)
{
    (void)state;
    data d = make_data(NB_F64, 101, 4);
    nb_layer *bnl, *unused;
    nb_model *alone = model_bn(NB_F64, 16, &unused), *dist = model_bn(NB_F64, 16, &bnl);
    assert_int_equal(nb_model_distribute(dist), 0);
    double l1, l2, a1, a2;
    nb_dataset all = {.x = d.x, .y = d.y};
    assert_int_equal(
        nb_evaluate(alone, all, .batch_size = 10, .loss = &l1, .metrics = &a1, .nmetrics = 1), 0);
    assert_int_equal(
        nb_evaluate(dist, all, .batch_size = 10, .loss = &l2, .metrics = &a2, .nmetrics = 1), 0);
    assert_true(fabs(l1 - l2) < 1e-12 && a1 == a2);
    nb_tensor *p1 = nb_predict(alone, all, .batch_size = 7),
              *p2 = nb_predict(dist, all, .batch_size = 7);
    assert_non_null(p1);
    assert_non_null(p2);
    for (int64_t j = 0; j < nb_numel(p1); j++)
        assert_true(fabs(nb_get_flat(p1, j) - nb_get_flat(p2, j)) < 1e-12);
    nb_free(p1);
    nb_free(p2);
    /* With .verbose, rank 0 prints one line for all the rows (101 in
     * batches of 10: 11 steps), the others nothing; a bar (auto on a
     * terminal) becomes the line. */
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(nb_evaluate(dist, all, .batch_size = 10, .verbose = 1, .out = f), 0);
    assert_non_null(p2 = nb_predict(dist, all, .batch_size = 10, .verbose = 2, .out = f));
    nb_free(p2);
    char text[512] = "";
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    if (nb_dist_rank() == 0) {
        assert_true(strncmp(text, "11/11 - ", 8) == 0 && strstr(text, " - accuracy: "));
        assert_non_null(strstr(text, "\n11/11 - "));
        assert_int_equal(lines, 2);
    } else {
        assert_int_equal(n, 0);
    }
    /* Training keeps the moving statistics the same on every rank. */
    assert_non_null(nb_fit(dist, all, .epochs = 2, .batch_size = 16));
    nb_tensor *bn[2] = {nb_layer_get(bnl, 2), nb_layer_get(bnl, 3)};
    assert_non_null(bn[0]);
    assert_non_null(bn[1]);
    assert_same_on_every_rank(bn, 2);
    assert_params_same_on_every_rank(dist);
    nb_model_free(alone);
    nb_model_free(dist);
    free_data(d);
}

/* Rank 0 writes; the others do not, and fit's checkpoints are whole. */
static void test_checkpoints(void **state)
{
    (void)state;
    data d = make_data(NB_F32, 64, 5);
    nb_model *m = model(NB_F32, 8);
    assert_int_equal(nb_model_distribute(m), 0);
    char own[64], shared[64];
    snprintf(own, sizeof own, "test_dist_rank%d.safetensors", nb_dist_rank());
    snprintf(shared, sizeof shared, "test_dist_shared.safetensors");
    remove(own);
    assert_int_equal(nb_save_weights(m, own), 0);
    assert_int_equal(access(own, F_OK) == 0, nb_dist_rank() == 0);
    remove(own);
    nb_model_checkpoint ck = {.path = shared, .full = true};
    nb_callback cb = nb_model_checkpoint_callback(&ck);
    assert_non_null(nb_fit(m, (nb_dataset){.x = d.x, .y = d.y}, .epochs = 2,
                           .callbacks = &cb, .ncallbacks = 1));
    double ok = access(shared, F_OK) == 0;
    assert_int_equal(nb_dist_allreduce(&ok, 1), 0);
    assert_true(ok >= 1); /* rank 0's file, seen by all (one host) */
    nb_model *back = model(NB_F32, 8);
    assert_int_equal(nb_load_checkpoint(back, shared), 0);
    assert_true(max_diff(back, m) == 0);
    double done = 1;
    assert_int_equal(nb_dist_allreduce(&done, 1), 0); /* every rank has read it */
    if (nb_dist_rank() == 0)
        remove(shared);
    nb_model_free(back);
    nb_model_free(m);
    free_data(d);
}

/* A rank with another configuration: an error on every rank naming it. */
static void test_mismatches(void **state)
{
    (void)state;
    bool other = nb_dist_rank() == nb_dist_size() - 1 && nb_dist_size() > 1;
    nb_model *m = model(NB_F32, other ? 9 : 8);
    assert_int_equal(nb_model_distribute(m), nb_dist_size() > 1 ? -1 : 0);
    if (nb_dist_size() > 1) {
        assert_int_equal(nb_last_error_code(), NB_ERR_DIST);
        assert_non_null(strstr(nb_last_error(), "nb_model_distribute: rank 1 has"));
    }
    nb_model_free(m);
    m = model(other ? NB_F64 : NB_F32, 8);
    assert_int_equal(nb_model_distribute(m), nb_dist_size() > 1 ? -1 : 0);
    if (nb_dist_size() > 1)
        assert_non_null(strstr(nb_last_error(), "the dtype"));
    nb_model_free(m);
    data d = make_data(NB_F32, 64, 6);
    m = model(NB_F32, 8);
    assert_int_equal(nb_model_distribute(m), 0);
    const nb_history *h = nb_fit(m, (nb_dataset){.x = d.x, .y = d.y}, .batch_size = other ? 16 : 32);
    if (nb_dist_size() > 1) {
        assert_null(h);
        assert_non_null(strstr(nb_last_error(), "nb_fit: rank 1 has batch_size 16, rank 0 "
                                                "has 32"));
    }
    /* The ranks go on together after a refused configuration. */
    assert_non_null(nb_fit(m, (nb_dataset){.x = d.x, .y = d.y}));
    nb_model_free(m);
    free_data(d);
}

int main(int argc, char **argv)
{
    if (nb_dist_init(&argc, &argv)) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    if (nb_dist_rank() != 0 && !freopen("/dev/null", "w", stdout))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equivalence_f32), cmocka_unit_test(test_equivalence_f64),
        cmocka_unit_test(test_batches_of_one),  cmocka_unit_test(test_hand_written_loop),
        cmocka_unit_test(test_evaluate_predict), cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_mismatches),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (nb_dist_finalize()) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    return failed ? 1 : 0;
}
