/* Threads: each with a graph of its own, differentiating through the same
 * shared parameters with nb_grad at once. The engine writes nothing into
 * the tensors it walks (its scratch lives in each pass's own tables), so
 * ThreadSanitizer sees no race and every thread gets the single-threaded
 * gradients bit for bit. The allocator hook may be swapped meanwhile.
 *
 * And whole jobs at once: threads each training a model of their own (two
 * with nb_fit and Adam, two with a hand-written loop and SGD with
 * momentum), and threads evaluating one trained model they share
 * (nb_evaluate and nb_predict), give the same losses, weights and
 * predictions, bit for bit, as the same jobs run one after another on one
 * thread. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <pthread.h>
#include <time.h>

#include "nabla/nabla.h"

enum { THREADS = 4, STEPS = 40 };

static nb_tensor *W1, *b1, *W2;

/* d loss / d params of a small MLP on a batch drawn from seed; writes the
 * four gradient sums into out. */
static int grads(uint64_t seed, double out[3])
{
    nb_rng rng = nb_rng_new(seed);
    nb_tensor *x = nb_randn(NB_F64, NB_SHAPE(16, 8), &rng);
    nb_graph *g = nb_graph_new();
    nb_tensor *h = nb_tanh(nb_add(nb_matmul(x, W1), b1));
    nb_tensor *y = nb_matmul(h, nb_transpose(W2, 0, 1)); /* a view of the shared W2 */
    nb_tensor *loss = nb_mean(nb_square(nb_softmax(y, -1)));
    nb_tensor *in[3] = {W1, b1, W2}, *gs[3];
    int rc = loss ? nb_grad(loss, .n = 3, .inputs = in, .grads = gs) : -1;
    for (int i = 0; rc == 0 && i < 3; i++)
        out[i] = nb_item(nb_sum(nb_mul(gs[i], gs[i])));
    nb_graph_free(g);
    nb_free(x);
    return rc;
}

typedef struct {
    int id;
    double got[STEPS][3];
    int rc;
} job;

static void *run(void *arg)
{
    job *j = arg;
    for (int s = 0; s < STEPS && j->rc == 0; s++)
        j->rc = grads((uint64_t)(s * THREADS + j->id), j->got[s]);
    return NULL;
}

static void *swap_hooks(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++)
        nb_set_allocator(i % 2 ? NULL : &counting_allocator);
    nb_set_allocator(NULL);
    return NULL;
}

static void test_shared_parameters(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(3);
    W1 = nb_param(nb_randn(NB_F64, NB_SHAPE(8, 12), &rng));
    b1 = nb_param(nb_zeros(NB_F64, NB_SHAPE(12)));
    W2 = nb_param(nb_randn(NB_F64, NB_SHAPE(5, 12), &rng));
    static job jobs[THREADS];
    pthread_t t[THREADS + 1];
    for (int i = 0; i < THREADS; i++) {
        jobs[i] = (job){.id = i};
        assert_int_equal(pthread_create(&t[i], NULL, run, &jobs[i]), 0);
    }
    assert_int_equal(pthread_create(&t[THREADS], NULL, swap_hooks, NULL), 0);
    for (int i = 0; i <= THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(jobs[i].rc, 0);
        for (int s = 0; s < STEPS; s++) {
            double want[3];
            assert_int_equal(grads((uint64_t)(s * THREADS + i), want), 0);
            assert_memory_equal(jobs[i].got[s], want, sizeof want);
        }
    }
    assert_null(nb_grad_of(W1)); /* nb_grad leaves .grad alone */
    nb_free(W1);
    nb_free(b1);
    nb_free(W2);
}

/* ---- training and evaluating at once ---- */

enum { TRAINERS = 4, EVALUATORS = 2, JOBS = TRAINERS + EVALUATORS, ROWS = 96, FEATURES = 5,
       CLASSES = 3, EPOCHS = 60, HAND_STEPS = 300, EVALS = 40, MAX_WEIGHTS = 128 };

/* A job's results: everything compared bit for bit. */
typedef struct {
    int id, rc;
    char err[256];
    double loss[EPOCHS > HAND_STEPS ? EPOCHS : HAND_STEPS];
    float weights[MAX_WEIGHTS];
    double eval_loss[EVALS], eval_acc[EVALS];
    float pred[EVALS][ROWS * CLASSES];
} result;

/* A classification data set drawn from seed: x (ROWS, FEATURES), one-hot y. */
static void dataset(uint64_t seed, nb_tensor **x, nb_tensor **y)
{
    nb_rng rng = nb_rng_new(seed);
    *x = nb_randn(NB_F32, NB_SHAPE(ROWS, FEATURES), &rng);
    *y = nb_zeros(NB_F32, NB_SHAPE(ROWS, CLASSES));
    if (!*x || !*y)
        return;
    float *xs = nb_data(*x), *ys = nb_data(*y);
    for (int i = 0; i < ROWS; i++) {
        int c = (xs[i * FEATURES] > 0) + (xs[i * FEATURES + 1] > 0.5f);
        ys[i * CLASSES + c] = 1;
    }
    nb_bump_version(*y);
}

static nb_model *classifier(uint64_t seed, nb_optimizer *opt)
{
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_TANH),
                                nb_dense(CLASSES, .activation = NB_SOFTMAX));
    if (nb_compile(m, opt, NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY) || nb_build(m, FEATURES, seed)) {
        nb_model_free(m);
        return NULL;
    }
    return m;
}

static void keep_weights(const nb_model *m, result *r)
{
    nb_tensor *const *p;
    int n = nb_model_params(m, &p), k = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < nb_numel(p[i]) && k < MAX_WEIGHTS; j++)
            r->weights[k++] = ((const float *)nb_data(p[i]))[j];
}

static int job_failed(result *r, const char *what)
{
    snprintf(r->err, sizeof r->err, "%s: %s", what, nb_last_error() ? nb_last_error() : "?");
    return r->rc = -1;
}

/* Odd ids: nb_fit with Adam; even ids: forward, loss, backward and SGD
 * with momentum by hand, in a graph of the job's own. */
static void train_job(result *r)
{
    nb_tensor *x, *y;
    dataset(100 + (uint64_t)r->id, &x, &y);
    bool fit = r->id % 2;
    nb_model *m = classifier(200 + (uint64_t)r->id,
                             fit ? nb_adam(.lr = 0.02) : nb_sgd(.lr = 0.1, .momentum = 0.9));
    if (!x || !y || !m) {
        job_failed(r, "setup");
    } else if (fit) {
        const nb_history *h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = EPOCHS, .batch_size = 16,
                                     .seed = (uint64_t)r->id);
        if (!h)
            job_failed(r, "nb_fit");
        else
            memcpy(r->loss, h->loss, EPOCHS * sizeof *r->loss);
    } else {
        nb_tensor *const *p;
        int np = nb_model_params(m, &p);
        nb_graph *g = nb_graph_new();
        for (int s = 0; s < HAND_STEPS && r->rc == 0; s++) {
            nb_tensor *l = nb_model_loss(m, nb_model_forward(m, x), y);
            for (int i = 0; i < np; i++)
                nb_zero_grad(p[i]);
            if (!l || nb_backward(l) || nb_optimizer_step(nb_model_optimizer(m), np, p))
                job_failed(r, "step");
            else
                r->loss[s] = nb_item(l);
            nb_graph_reset(g);
        }
        nb_graph_free(g);
    }
    if (r->rc == 0)
        keep_weights(m, r);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
}

/* The model the evaluators share, trained beforehand; they only read it. */
static nb_model *shared;

static void eval_job(result *r)
{
    nb_tensor *x, *y;
    dataset(300 + (uint64_t)r->id, &x, &y);
    for (int e = 0; e < EVALS && r->rc == 0 && x && y; e++) {
        nb_tensor *p = NULL;
        if (nb_evaluate(shared, (nb_dataset){.x = x, .y = y}, .batch_size = 7 + e % 3,
                        .loss = &r->eval_loss[e], .metrics = &r->eval_acc[e], .nmetrics = 1))
            job_failed(r, "nb_evaluate");
        else if (!(p = nb_predict(shared, (nb_dataset){.x = x}, .batch_size = 5 + e % 4)))
            job_failed(r, "nb_predict");
        else
            memcpy(r->pred[e], nb_data(p), sizeof r->pred[e]);
        nb_free(p);
    }
    if (!x || !y)
        job_failed(r, "setup");
    nb_free(x);
    nb_free(y);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The jobs start together and note when they ran. */
static pthread_barrier_t start;
static double began[JOBS], ended[JOBS];

static void *run_job(void *arg)
{
    result *r = arg;
    pthread_barrier_wait(&start);
    began[r->id] = now();
    (r->id < TRAINERS ? train_job : eval_job)(r);
    ended[r->id] = now();
    return NULL;
}

static void test_training_and_evaluating_at_once(void **state)
{
    (void)state;
    nb_tensor *x, *y;
    dataset(7, &x, &y);
    shared = classifier(8, nb_adam(.lr = 0.05));
    assert_non_null(shared);
    assert_non_null(nb_fit(shared, (nb_dataset){.x = x, .y = y}, .epochs = 20, .batch_size = 8));
    nb_free(x);
    nb_free(y);

    static result together[JOBS], alone[JOBS];
    memset(together, 0, sizeof together);
    memset(alone, 0, sizeof alone);
    pthread_t t[JOBS];
    assert_int_equal(pthread_barrier_init(&start, NULL, JOBS), 0);
    for (int i = 0; i < JOBS; i++) {
        together[i].id = alone[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, run_job, &together[i]), 0);
    }
    for (int i = 0; i < JOBS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    /* How much they ran at once: the jobs' summed time over the span from
     * the first start to the last end (1: one at a time). */
    double first = began[0], last = ended[0], busy = 0, t0 = now();
    for (int i = 0; i < JOBS; i++) {
        first = began[i] < first ? began[i] : first;
        last = ended[i] > last ? ended[i] : last;
        busy += ended[i] - began[i];
    }
    /* The same jobs one after another on this thread. */
    for (int i = 0; i < JOBS; i++)
        (i < TRAINERS ? train_job : eval_job)(&alone[i]);
    printf("# %d jobs at once: %.1f ms, %.1f of them running on average; one after another: "
           "%.1f ms\n",
           JOBS, 1e3 * (last - first), busy / (last - first), 1e3 * (now() - t0));
    for (int i = 0; i < JOBS; i++) {
        if (together[i].rc || alone[i].rc)
            fail_msg("job %d failed: %s%s", i, together[i].err, alone[i].err);
        if (memcmp(&together[i], &alone[i], sizeof together[i]) != 0)
            fail_msg("job %d (%s) gave other results on its thread than alone", i,
                     i < TRAINERS ? "training" : "evaluating");
    }
    /* They did train, and differently: the jobs are not all the same job. */
    assert_true(alone[1].loss[EPOCHS - 1] < alone[1].loss[0]);
    assert_true(alone[0].loss[HAND_STEPS - 1] < alone[0].loss[0]);
    assert_memory_not_equal(alone[0].weights, alone[2].weights, sizeof alone[0].weights);
    assert_true(alone[TRAINERS].eval_acc[0] > 0);
    nb_model_free(shared);
    assert_int_equal(nb_live_tensors(), 0);
}

/* Large elementwise kernels and the pooling kernels run on
 * nb_num_threads() threads, a block or a run of images each: the same bits
 * as on one thread, in f32 and f64, on shapes that split unevenly (and
 * under ThreadSanitizer, no race). */
static void test_kernels_on_two_threads(void **state)
{
    (void)state;
    int before = nb_set_num_threads(1);
    nb_rng rng = nb_rng_new(21);
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype type = dt ? NB_F64 : NB_F32;
        /* 7*37*39*33 = 333,333 elements, above the 2^18 the threads start at */
        nb_tensor *x = nb_param(nb_randn(type, NB_SHAPE(7, 37, 39, 33), &rng));
        nb_tensor *d = nb_randn(type, NB_SHAPE(7, 37, 39, 33), &rng);
        nb_tensor *b = nb_randn(type, NB_SHAPE(33), &rng);
        nb_tensor *out[2][6];
        nb_graph *g[2];
        for (int t = 0; t < 2; t++) {
            nb_set_num_threads(t + 1);
            g[t] = nb_graph_new();
            nb_tensor *y = nb_max_pool2d(nb_relu(nb_add(nb_mul(x, d), b)), {3}, {2},
                                         .padding = NB_PAD_SAME);
            nb_tensor *gx;
            assert_int_equal(nb_grad(nb_sum(nb_square(y)), .n = 1, .inputs = &x, .grads = &gx),
                             0);
            out[t][0] = y;
            out[t][1] = gx;
            out[t][2] = nb_relu_grad(d, x);
            out[t][3] = nb_mul(nb_scalar_like(x, 0.5), d);
            out[t][4] = nb_max_pool2d(x); /* windows that tile: no zeroing */
            out[t][5] = nb_pool_scatter(d, x, {3}, {1}, .padding = NB_PAD_SAME); /* overlapping */
            for (int i = 0; i < 6; i++)
                assert_non_null(out[t][i]);
        }
        for (int i = 0; i < 6; i++)
            if (!same_bits(nb_contiguous(out[0][i]), nb_contiguous(out[1][i])))
                fail_msg("%s: result %d differs on two threads", nb_dtype_name(type), i);
        nb_graph_free(g[1]);
        nb_graph_free(g[0]);
        nb_free(x), nb_free(d), nb_free(b);
    }
    nb_set_num_threads(before);
}

/* A large leaf's gradient is summed into .grad and zeroed on
 * nb_num_threads() threads: exactly d, 2d after a second backward, zeros
 * after nb_zero_grad, on one thread and on two (an uneven split). */
static void test_gradients_on_two_threads(void **state)
{
    (void)state;
    int before = nb_set_num_threads(1);
    nb_rng rng = nb_rng_new(22);
    for (int dt = 0; dt < 2; dt++) {
        nb_dtype type = dt ? NB_F64 : NB_F32;
        nb_tensor *d = nb_randn(type, NB_SHAPE(333333), &rng), *twice[2];
        for (int t = 0; t < 2; t++) {
            nb_set_num_threads(t + 1);
            nb_tensor *x = nb_param(nb_zeros(type, NB_SHAPE(333333)));
            twice[t] = nb_zeros(type, NB_SHAPE(333333));
            nb_graph *g = nb_graph_new();
            for (int k = 0; k < 3; k++) {
                if (k == 2) {
                    nb_zero_grad(x);
                    for (int64_t i = 0; i < 333333; i++)
                        if (nb_get_flat(nb_grad_of(x), i) != 0)
                            fail_msg("%s, %d threads: nb_zero_grad left %g at %lld",
                                     nb_dtype_name(type), t + 1, nb_get_flat(nb_grad_of(x), i),
                                     (long long)i);
                }
                assert_int_equal(nb_backward(nb_sum(nb_mul(x, d))), 0);
                nb_graph_reset(g);
                if (k == 1)
                    memcpy(nb_data(twice[t]), nb_data(nb_grad_of(x)),
                           333333 * nb_dtype_size(type));
            }
            assert_true(same_bits(nb_grad_of(x), d));
            nb_graph_free(g);
            nb_free(x);
        }
        nb_graph *g = nb_graph_new();
        nb_tensor *two_d = nb_add(d, d);
        assert_true(same_bits(twice[0], two_d));
        assert_true(same_bits(twice[1], two_d));
        nb_graph_free(g);
        nb_free(twice[0]), nb_free(twice[1]), nb_free(d);
    }
    nb_set_num_threads(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_parameters),
        cmocka_unit_test_teardown(test_training_and_evaluating_at_once, cleanup),
        cmocka_unit_test_teardown(test_kernels_on_two_threads, cleanup),
        cmocka_unit_test_teardown(test_gradients_on_two_threads, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
