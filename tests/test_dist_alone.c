/* include/nabla/dist.h in one process, without MPI started (every build,
 * under valgrind too): one rank, 0 of 1, whose collectives act on it
 * alone, and every bad argument an error naming the function. The ranks
 * themselves are tests/test_dist.c's. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nabla/nabla.h"

#define assert_error(call, code, text)                                                  \
    do {                                                                                \
        nb_clear_error();                                                               \
        assert_int_equal((call), -1);                                                   \
        assert_int_equal(nb_last_error_code(), (code));                                 \
        if (!strstr(nb_last_error(), (text)))                                           \
            fail_msg("'%s' does not contain '%s'", nb_last_error(), (text));            \
    } while (0)

static void test_one_rank(void **state)
{
    (void)state;
    assert_int_equal(nb_dist_rank(), 0);
    assert_int_equal(nb_dist_size(), 1);
    assert_string_equal(nb_error_code_name(NB_ERR_DIST), "dist");
#ifdef NB_EXPECT_MPI
    assert_true(nb_dist_built());
    assert_error(nb_dist_attach(NULL), NB_ERR_INVALID, "nb_dist_attach: comm is NULL");
    int comm = 0; /* not looked at: MPI is not initialised */
    assert_error(nb_dist_attach(&comm), NB_ERR_STATE, "nb_dist_attach: MPI is not initialised");
#else
    assert_false(nb_dist_built());
    assert_error(nb_dist_init(NULL, NULL), NB_ERR_DIST, "nb_dist_init: nabla was built without MPI");
    assert_error(nb_dist_attach(NULL), NB_ERR_DIST, "nb_dist_attach: nabla was built without MPI");
#endif
    assert_int_equal(nb_dist_finalize(), 0);
    int64_t start = -1, count = -1;
    nb_dist_shard(10, &start, &count);
    assert_true(start == 0 && count == 10);
    nb_dist_shard(-3, &start, &count);
    assert_true(start == 0 && count == 0);
    nb_dist_shard(5, NULL, NULL);

    double v[2] = {1.5, -2};
    assert_int_equal(nb_dist_allreduce(v, 2), 0);
    assert_true(v[0] == 1.5 && v[1] == -2);
    assert_int_equal(nb_dist_allreduce(NULL, 0), 0);
    assert_error(nb_dist_allreduce(NULL, 2), NB_ERR_INVALID, "nb_dist_allreduce: 2 values");
    assert_error(nb_dist_allreduce(v, -1), NB_ERR_INVALID, "nb_dist_allreduce: -1 values");

    double t = nb_dist_timeout();
    assert_true(t > 0);
    assert_error(nb_dist_set_timeout(0), NB_ERR_INVALID, "nb_dist_set_timeout: seconds must be");
    assert_error(nb_dist_set_timeout(NAN), NB_ERR_INVALID, "got nan");
    assert_error(nb_dist_set_timeout(INFINITY), NB_ERR_INVALID, "got inf");
    assert_int_equal(nb_dist_set_timeout(2.5), 0);
    assert_true(nb_dist_timeout() == 2.5);
    assert_int_equal(nb_dist_set_timeout(t), 0);
    assert_error(nb_dist_set_bucket_bytes(8), NB_ERR_INVALID, "nb_dist_set_bucket_bytes: 8 bytes");
    assert_int_equal(nb_dist_set_bucket_bytes(1 << 20), 0);

    int64_t c[2] = {3, 4};
    const char *names[2] = {"a", "b"};
    assert_int_equal(nb_dist_check("mine", 2, c, names), 0);
    assert_error(nb_dist_check("mine", 0, c, names), NB_ERR_INVALID, "mine: 0 values");
    assert_error(nb_dist_check(NULL, 2, NULL, names), NB_ERR_INVALID, "nb_dist_check: 2 values");
    assert_error(nb_dist_check("mine", 2, c, NULL), NB_ERR_INVALID, "mine: 2 values");

    nb_dist_stats st;
    memset(&st, 0xff, sizeof st);
    nb_dist_stats_get(&st, true);
    assert_int_equal(st.calls, 0);
    nb_dist_stats_get(NULL, false);
}

static void test_tensor_collectives(void **state)
{
    (void)state;
    double six[] = {0, 1, 2, 3, 4, 5};
    nb_tensor *a = nb_arange(NB_F32, 0, 6, 1),
              *b = nb_from_array(NB_F64, 2, (int64_t[]){2, 3}, six);
    nb_tensor *both[] = {a, b};
    assert_int_equal(nb_dist_broadcast(2, both), 0);
    assert_int_equal(nb_dist_average(2, both), 0);
    assert_true(nb_get_flat(a, 5) == 5 && nb_get_flat(b, 4) == 4);
    assert_int_equal(nb_dist_gather_rows(b), 0);
    assert_true(nb_get_flat(b, 5) == 5);
    assert_int_equal(nb_dist_broadcast(0, NULL), 0);
    assert_error(nb_dist_broadcast(1, NULL), NB_ERR_INVALID, "nb_dist_broadcast: 1 tensors");
    assert_error(nb_dist_average(-1, both), NB_ERR_INVALID, "nb_dist_average: -1 tensors");
    nb_tensor *none[] = {NULL};
    assert_error(nb_dist_broadcast(1, none), NB_ERR_INVALID, "nb_dist_broadcast: tensor 1 is NULL");
    nb_tensor *u8 = nb_zeros(NB_U8, 1, (int64_t[]){4});
    nb_tensor *bad[] = {a, u8};
    assert_error(nb_dist_average(2, bad), NB_ERR_INVALID,
                 "nb_dist_average: tensor 2 must be a contiguous f32 or f64 heap tensor");
    nb_graph *g = nb_graph_new();
    nb_tensor *view[] = {nb_transpose(b, 0, 1)};
    assert_error(nb_dist_broadcast(1, view), NB_ERR_INVALID, "tensor 1 must be a contiguous");
    nb_graph_free(g);
    assert_error(nb_dist_gather_rows(NULL), NB_ERR_INVALID, "nb_dist_gather_rows: tensor is NULL");
    nb_tensor *s = nb_scalar(NB_F32, 1);
    assert_error(nb_dist_gather_rows(s), NB_ERR_INVALID, "nb_dist_gather_rows: a 0-d tensor");
    nb_free(s);
    nb_free(u8);
    nb_free(a);
    nb_free(b);
}

/* nb_dist_backward on one rank is nb_backward with the weight as seed. */
static void test_backward_alone(void **state)
{
    (void)state;
    nb_rng rng = nb_rng_new(3);
    nb_tensor *w = nb_param(nb_randn(NB_F64, 2, (int64_t[]){3, 2}, &rng)),
              *u = nb_param(nb_randn(NB_F64, 1, (int64_t[]){2}, &rng)),
              *x = nb_randn(NB_F64, 2, (int64_t[]){4, 3}, &rng);
    nb_tensor *ps[] = {w, u};
    nb_graph *g = nb_graph_new();
    assert_int_equal(nb_backward(nb_sum(nb_tanh(nb_matmul(x, w)))), 0);
    nb_tensor *want = nb_clone(nb_grad_of(w));
    nb_zero_grad(w);
    double sums[1] = {7};
    /* u is unused: it gets a zero gradient, as every rank's parameters do. */
    assert_int_equal(nb_dist_backward(nb_sum(nb_tanh(nb_matmul(x, w))), .weight = 0.25, .n = 2,
                                      .params = ps, .sums = sums, .nsums = 1), 0);
    assert_true(sums[0] == 7);
    for (int64_t j = 0; j < 6; j++)
        assert_true(nb_get_flat(nb_grad_of(w), j) == 0.25 * nb_get_flat(want, j));
    assert_non_null(nb_grad_of(u));
    assert_true(nb_get_flat(nb_grad_of(u), 0) == 0 && nb_get_flat(nb_grad_of(u), 1) == 0);
    /* A rank without rows adds nothing. */
    assert_int_equal(nb_dist_backward(NULL, .weight = 0, .n = 2, .params = ps), 0);
    assert_true(nb_get_flat(nb_grad_of(w), 0) == 0.25 * nb_get_flat(want, 0));

    nb_tensor *l = nb_sum(nb_matmul(x, w));
    assert_error(nb_dist_backward(l, .weight = NAN, .n = 2, .params = ps), NB_ERR_INVALID,
                 "nb_dist_backward: weight is nan");
    assert_error(nb_dist_backward(l, .weight = 1, .n = 0, .params = ps), NB_ERR_INVALID,
                 "nb_dist_backward: needs n >= 1 params");
    assert_error(nb_dist_backward(l, .weight = 1, .n = 2), NB_ERR_INVALID, "needs n >= 1 params");
    assert_error(nb_dist_backward(l, .weight = 1, .n = 2, .params = ps, .nsums = 2),
                 NB_ERR_INVALID, "nb_dist_backward: 2 sums at");
    nb_tensor *twice[] = {w, w};
    assert_error(nb_dist_backward(l, .weight = 1, .n = 2, .params = twice), NB_ERR_INVALID,
                 "params 1 and 2 are the same tensor");
    nb_tensor *plain[] = {x};
    assert_error(nb_dist_backward(l, .weight = 1, .n = 1, .params = plain), NB_ERR_INVALID,
                 "param 1 must be an f32 or f64 heap tensor that requires grad");
    nb_tensor *null[] = {NULL};
    assert_error(nb_dist_backward(l, .weight = 1, .n = 1, .params = null), NB_ERR_INVALID,
                 "nb_dist_backward: param 1 is NULL");
    nb_graph_reset(g);
    assert_error(nb_dist_backward(l, .weight = 1, .n = 2, .params = ps), NB_ERR_STATE,
                 "nb_dist_backward: loss is a tensor of graph generation");
    nb_graph_free(g);
    nb_free(want);
    nb_free(w);
    nb_free(u);
    nb_free(x);
}

/* One rank: nb_model_distribute changes nothing, bit for bit. */
static void test_model_alone(void **state)
{
    (void)state;
    assert_error(nb_model_distribute(NULL), NB_ERR_INVALID, "nb_model_distribute: model is NULL");
    nb_model *unbuilt = nb_sequential(nb_dense(3));
    assert_error(nb_model_distribute(unbuilt), NB_ERR_STATE,
                 "nb_model_distribute: the model is not built");
    nb_model_free(unbuilt);
    nb_rng rng = nb_rng_new(9);
    nb_tensor *x = nb_randn(NB_F32, 2, (int64_t[]){50, 4}, &rng),
              *y = nb_rand(NB_F32, 2, (int64_t[]){50, 2}, &rng);
    nb_model *m[2];
    for (int i = 0; i < 2; i++) {
        m[i] = nb_sequential(nb_dense(8, .activation = NB_TANH, .input = 4), nb_dense(2));
        assert_int_equal(nb_compile(m[i], nb_adam(), NB_MEAN_SQUARED_ERROR), 0);
    }
    assert_int_equal(nb_model_distribute(m[1]), 0);
    for (int i = 0; i < 2; i++)
        assert_non_null(nb_fit(m[i], (nb_dataset){.x = x, .y = y}, .epochs = 2,
                               .batch_size = 7));
    nb_tensor *const *p0, *const *p1;
    int n = nb_model_params(m[0], &p0);
    assert_int_equal(nb_model_params(m[1], &p1), n);
    for (int i = 0; i < n; i++)
        assert_memory_equal(nb_data(p0[i]), nb_data(p1[i]), (size_t)nb_numel(p0[i]) * 4);
    nb_model_free(m[0]);
    nb_model_free(m[1]);
    nb_free(x);
    nb_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_rank),
        cmocka_unit_test(test_tensor_collectives),
        cmocka_unit_test(test_backward_alone),
        cmocka_unit_test(test_model_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
