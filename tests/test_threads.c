/* Threads: each with a graph of its own, differentiating through the same
 * shared parameters with nb_grad at once. The engine writes nothing into
 * the tensors it walks (its scratch lives in each pass's own tables), so
 * ThreadSanitizer sees no race and every thread gets the single-threaded
 * gradients bit for bit. The allocator hook may be swapped meanwhile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <pthread.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
