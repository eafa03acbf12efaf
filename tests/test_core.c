#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nabla/nabla.h"

static void test_mul_backward(void **state)
{
    (void)state;
    nb_tensor *a = nb_param(nb_from_array(NB_F64, NB_SHAPE(3), (double[]){1, 2, 3}));
    nb_tensor *b = nb_param(nb_from_array(NB_F64, NB_SHAPE(3), (double[]){4, 5, 6}));
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_sum(nb_tanh(nb_mul(a, b)), NB_ALL, false);
    assert_non_null(y);
    assert_int_equal(nb_backward(y), 0);
    nb_print(y, stdout);
    nb_print(nb_grad_of(a), stdout);
    nb_graph_free(g);
    nb_free(a);
    nb_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_mul_backward)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
