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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_state_allocates_nothing),
        cmocka_unit_test(test_allocation_failure_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
