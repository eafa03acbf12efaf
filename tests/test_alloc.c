/* Memory: a steady-state training step performs no heap allocation, and
 * nothing outlives its owner. Allocations are counted through the hook. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#include <stdlib.h>

#include "nabla/nabla.h"

/* One SGD step of a 2-layer MLP written from ops. */
static double step(nb_graph *g, nb_tensor *x, nb_tensor *y, nb_tensor *const p[4])
{
    nb_tensor *h = nb_relu(nb_add(nb_matmul(x, p[0]), p[1]));
    nb_tensor *out = nb_add(nb_matmul(h, p[2]), p[3]);
    nb_tensor *loss = nb_mean(nb_square(nb_sub(out, y)));
    assert_non_null(loss);
    for (int i = 0; i < 4; i++)
        nb_zero_grad(p[i]);
    assert_int_equal(nb_backward(loss), 0);
    bool prev = nb_set_grad_enabled(false);
    for (int i = 0; i < 4; i++) {
        nb_tensor *upd = nb_sub(p[i], nb_mul(nb_grad_of(p[i]), nb_scalar_like(p[i], 0.05)));
        assert_int_equal(nb_assign(p[i], upd), 0);
    }
    nb_set_grad_enabled(prev);
    double l = nb_item(loss);
    nb_graph_reset(g);
    return l;
}

static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    nb_set_allocator(&counting_allocator);
    int64_t live0 = nb_live_tensors();
    nb_rng rng = nb_rng_new(1);
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(32, 8), &rng);
    nb_tensor *y = nb_randn(NB_F32, NB_SHAPE(32, 2), &rng);
    nb_tensor *p[4] = {
        nb_param(nb_randn(NB_F32, NB_SHAPE(8, 16), &rng)),
        nb_param(nb_zeros(NB_F32, NB_SHAPE(16))),
        nb_param(nb_randn(NB_F32, NB_SHAPE(16, 2), &rng)),
        nb_param(nb_zeros(NB_F32, NB_SHAPE(2))),
    };
    nb_graph *g = nb_graph_new();
    double first = step(g, x, y, p); /* warm-up: arena chunks and .grad */
    long before = allocs;
    double last = 0;
    for (int i = 0; i < 50; i++)
        last = step(g, x, y, p);
    assert_int_equal(allocs - before, 0);
    assert_true(last < first); /* and it does learn */
    nb_graph_free(g);
    nb_free(x);
    nb_free(y);
    for (int i = 0; i < 4; i++)
        nb_free(p[i]);
    assert_int_equal(nb_live_tensors(), live0);
    assert_int_equal(allocs, frees); /* everything made was returned */
    nb_set_allocator(NULL);
}

static void test_allocation_failure_is_an_error(void **state)
{
    (void)state;
    nb_clear_error();
    nb_tensor *t = nb_zeros(NB_F64, NB_SHAPE((int64_t)1 << 40, (int64_t)1 << 20));
    assert_null(t);
    assert_non_null(nb_last_error());
}

/* ---- the memory cap of a graph ---- */

/* Forward and backward of a small MLP on (rows, 32) inputs; -1 where it
 * failed (forward: 1, backward: 2 in *where). */
static int capped_step(nb_tensor *const p[4], int64_t rows, int *where)
{
    nb_rng rng = nb_rng_new(7);
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(rows, 32), &rng);
    assert_non_null(x);
    nb_tensor *h = nb_tanh(nb_add(nb_matmul(x, p[0]), p[1]));
    nb_tensor *loss = nb_mean(nb_square(nb_add(nb_matmul(h, p[2]), p[3])));
    int rc = 0;
    *where = 0;
    if (!loss) {
        *where = 1;
        rc = -1;
    } else if (nb_backward(loss)) {
        *where = 2;
        rc = -1;
    }
    nb_free(x);
    return rc;
}

static void make_mlp(nb_tensor *p[4])
{
    nb_rng rng = nb_rng_new(8);
    p[0] = nb_param(nb_randn(NB_F32, NB_SHAPE(32, 64), &rng));
    p[1] = nb_param(nb_zeros(NB_F32, NB_SHAPE(64)));
    p[2] = nb_param(nb_randn(NB_F32, NB_SHAPE(64, 1), &rng));
    p[3] = nb_param(nb_zeros(NB_F32, NB_SHAPE(1)));
}

static void free_mlp(nb_tensor *p[4])
{
    for (int i = 0; i < 4; i++)
        nb_free(p[i]);
}

/* The cap counts what nb_graph_bytes counts: a step that needs B bytes runs
 * under a cap of B and fails under B - 1, and a reset makes room again. */
static void test_cap_is_nb_graph_bytes(void **state)
{
    (void)state;
    nb_tensor *p[4];
    make_mlp(p);
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_graph_limit(g), 0);
    int where;
    assert_int_equal(capped_step(p, 16, &where), 0);
    size_t need = nb_graph_bytes(g);
    assert_true(need > 0);
    nb_graph_reset(g);
    assert_int_equal(nb_graph_set_limit(g, need), 0);
    assert_int_equal(nb_graph_limit(g), need);
    assert_int_equal(capped_step(p, 16, &where), 0);
    assert_int_equal(nb_graph_bytes(g), need);
    nb_graph_reset(g); /* the cap stays, the room comes back */
    assert_int_equal(capped_step(p, 16, &where), 0);
    nb_graph_reset(g);
    assert_int_equal(nb_graph_set_limit(g, need - 1), 0);
    nb_clear_error();
    assert_int_equal(capped_step(p, 16, &where), -1);
    assert_true(nb_graph_bytes(g) <= need - 1);
    char want[64];
    snprintf(want, sizeof want, "memory limit of %zu bytes", need - 1);
    ERR_HAS(want);
    ERR_HAS("nb_graph_set_limit");
    ERR_HAS("more requested");
    nb_graph_reset(g);
    assert_int_equal(nb_graph_set_limit(g, 0), 0); /* no cap again */
    assert_int_equal(capped_step(p, 16, &where), 0);
    nb_graph_free(g);
    free_mlp(p);
    FAILS_RC(nb_graph_set_limit(NULL, 1), "nb_graph_set_limit: graph is NULL");
    assert_int_equal(nb_graph_limit(NULL), 0);
    assert_int_equal(nb_live_tensors(), 0);
}

/* A forward op that would go past the cap fails with an error naming
 * itself, the limit, what is in use and what it asked for; the graph
 * never holds more than the cap, and works again after a reset. */
static void test_cap_in_forward(void **state)
{
    (void)state;
    nb_tensor *p[4];
    make_mlp(p);
    nb_graph *g = nb_graph_new();
    const size_t cap = 64 * 1024;
    assert_int_equal(nb_graph_set_limit(g, cap), 0);
    nb_rng rng = nb_rng_new(9);
    /* x @ W1 of 1000 rows is 256 KB: the matmul is the op that hits the cap */
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(1000, 32), &rng);
    nb_clear_error();
    assert_null(nb_matmul(x, p[0]));
    ERR_HAS("nb_matmul: the graph's memory limit of 65536 bytes (nb_graph_set_limit) is "
            "reached: ");
    ERR_HAS("256000 more requested");
    assert_true(nb_graph_bytes(g) <= cap);
    /* the expression goes on returning NULL and keeps the first error */
    assert_null(nb_tanh(nb_add(nb_matmul(x, p[0]), p[1])));
    ERR_HAS("nb_matmul: the graph's memory limit");
    nb_graph_reset(g);
    int where;
    assert_int_equal(capped_step(p, 16, &where), 0); /* a small step fits */
    nb_graph_reset(g);
    nb_clear_error();
    assert_int_equal(capped_step(p, 1000, &where), -1);
    assert_int_equal(where, 1);
    ERR_HAS("memory limit of 65536 bytes");
    nb_graph_free(g);
    nb_free(x);
    free_mlp(p);
    assert_int_equal(nb_live_tensors(), 0);
}

/* A forward that fits and a backward that does not: nb_backward fails,
 * naming itself and the op whose backward needed the memory. */
static void test_cap_in_backward(void **state)
{
    (void)state;
    nb_tensor *p[4];
    make_mlp(p);
    nb_graph *g = nb_graph_new();
    int where;
    /* the forward's bytes, measured */
    nb_rng rng = nb_rng_new(7);
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(200, 32), &rng);
    nb_tensor *h = nb_tanh(nb_add(nb_matmul(x, p[0]), p[1]));
    nb_tensor *loss = nb_mean(nb_square(nb_add(nb_matmul(h, p[2]), p[3])));
    assert_non_null(loss);
    size_t forward = nb_graph_bytes(g);
    nb_free(x);
    nb_graph_reset(g);
    assert_int_equal(nb_graph_set_limit(g, forward + 4096), 0);
    nb_clear_error();
    assert_int_equal(capped_step(p, 200, &where), -1);
    assert_int_equal(where, 2);
    ERR_HAS("nb_backward: ");
    ERR_HAS("memory limit of");
    assert_true(nb_graph_bytes(g) <= forward + 4096);
    for (int i = 0; i < 4; i++) /* the leaves' .grad are heap tensors, made or not */
        nb_zero_grad(p[i]);
    nb_graph_reset(g);
    assert_int_equal(nb_graph_set_limit(g, 4 * forward), 0);
    assert_int_equal(capped_step(p, 200, &where), 0);
    nb_graph_free(g);
    free_mlp(p);
    assert_int_equal(nb_live_tensors(), 0);
}

/* Under a cap below 1 MB the graph's memory grows in pieces no larger than
 * the cap: a 64 KB cap never allocates a 1 MB chunk. */
static size_t largest;
static void *size_alloc(size_t n, void *ctx)
{
    (void)ctx;
    if (n > largest)
        largest = n;
    return malloc(n);
}
static const nb_allocator sizing = {size_alloc, plain_free, NULL};

static void test_cap_keeps_chunks_small(void **state)
{
    (void)state;
    nb_tensor *p[4];
    make_mlp(p);
    nb_set_allocator(&sizing);
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_graph_set_limit(g, 64 * 1024), 0);
    largest = 0;
    int where;
    assert_int_equal(capped_step(p, 16, &where), 0);
    assert_true(largest <= 64 * 1024 + 256); /* the cap, plus a chunk's header */
    nb_graph_free(g);
    nb_set_allocator(NULL);
    free_mlp(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_state_allocates_nothing),
        cmocka_unit_test(test_allocation_failure_is_an_error),
        cmocka_unit_test_teardown(test_cap_is_nb_graph_bytes, cleanup),
        cmocka_unit_test_teardown(test_cap_in_forward, cleanup),
        cmocka_unit_test_teardown(test_cap_in_backward, cleanup),
        cmocka_unit_test_teardown(test_cap_keeps_chunks_small, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
