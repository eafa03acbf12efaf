/* End to end: a two-layer MLP written by hand from ops learns XOR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nabla/nabla.h"

static void learn_xor(nb_dtype dt)
{
    nb_tensor *x = nb_from_array(NB_F64, NB_SHAPE(4, 2), (double[]){0, 0, 0, 1, 1, 0, 1, 1});
    nb_tensor *y = nb_from_array(NB_F64, NB_SHAPE(4, 1), (double[]){0, 1, 1, 0});
    nb_rng rng = nb_rng_new(7);
    nb_tensor *w1 = nb_randn(dt, NB_SHAPE(2, 8), &rng), *w2 = nb_randn(dt, NB_SHAPE(8, 1), &rng);
    nb_tensor *p[4] = {nb_param(w1), nb_param(nb_zeros(dt, NB_SHAPE(8))), nb_param(w2),
                       nb_param(nb_zeros(dt, NB_SHAPE(1)))};
    nb_graph *g = nb_graph_new();
    double first = 0, loss_v = 0;
    nb_tensor *logits = NULL;
    for (int step = 0; step < 1500; step++) {
        nb_graph_reset(g);
        nb_tensor *xs = nb_cast(x, dt), *ys = nb_cast(y, dt);
        nb_tensor *h = nb_tanh(nb_add(nb_matmul(xs, p[0]), p[1]));
        logits = nb_add(nb_matmul(h, p[2]), p[3]);
        /* Binary cross-entropy from logits, stable form:
         * max(z,0) - z*y + log(1 + exp(-|z|)) */
        nb_tensor *l = nb_add(nb_sub(nb_relu(logits), nb_mul(logits, ys)),
                              nb_log(nb_add(nb_scalar_like(logits, 1),
                                            nb_exp(nb_neg(nb_abs(logits))))));
        nb_tensor *loss = nb_mean(l);
        assert_non_null(loss);
        loss_v = nb_item(loss);
        if (step == 0)
            first = loss_v;
        for (int i = 0; i < 4; i++)
            nb_zero_grad(p[i]);
        assert_int_equal(nb_backward(loss), 0);
        bool prev = nb_set_grad_enabled(false);
        for (int i = 0; i < 4; i++)
            assert_int_equal(
                nb_assign(p[i], nb_sub(p[i], nb_mul(nb_grad_of(p[i]), nb_scalar_like(p[i], 0.5)))),
                0);
        nb_set_grad_enabled(prev);
    }
    assert_true(loss_v < 0.05);
    assert_true(loss_v < first / 10);
    for (int i = 0; i < 4; i++) {
        double z = nb_get(logits, NB_AT(i, 0)), want = nb_get(y, NB_AT(i, 0));
        assert_true((z > 0) == (want > 0.5));
    }
    nb_graph_free(g);
    for (int i = 0; i < 4; i++)
        nb_free(p[i]);
    nb_free(x);
    nb_free(y);
}

static void test_xor_f32(void **state)
{
    (void)state;
    learn_xor(NB_F32);
}

static void test_xor_f64(void **state)
{
    (void)state;
    learn_xor(NB_F64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_xor_f32),
                                       cmocka_unit_test(test_xor_f64)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
