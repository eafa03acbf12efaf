/* The counted bad-argument test, part 3: nb_dist_* on one rank, and the
 * options of nb_evaluate and nb_predict (bad_args.h says what a case
 * checks). */
#define _POSIX_C_SOURCE 200809L
#include "bad_args.h"

/* ---- distributed training (one rank: MPI not started) ---- */

static void test_dist(void **state)
{
    (void)state;
    SECTION_BEGIN();
    double v[1] = {0};
    nb_tensor *ps[] = {p23}, *two[] = {p23, p23}, *data[] = {f23}, *none[] = {NULL};
    int64_t c[1] = {1};
    const char *names[1] = {"c"};
    CASE("nb_dist_set_timeout", INV, nb_dist_set_timeout(-1) == -1);
    CASE("nb_dist_set_timeout", INV, nb_dist_set_timeout(NAN) == -1);
    CASE("nb_dist_set_bucket_bytes", INV, nb_dist_set_bucket_bytes(0) == -1);
    CASE("nb_dist_allreduce", INV, nb_dist_allreduce(NULL, 1) == -1);
    CASE("nb_dist_allreduce", INV, nb_dist_allreduce(v, -1) == -1);
    CASE("nb_dist_check", INV, nb_dist_check(NULL, 1, NULL, names) == -1);
    CASE("nb_dist_check", INV, nb_dist_check(NULL, 0, c, names) == -1);
    CASE("nb_dist_broadcast", INV, nb_dist_broadcast(1, NULL) == -1);
    CASE("nb_dist_broadcast", INV, nb_dist_broadcast(1, none) == -1);
    CASE("nb_dist_broadcast", STA, nb_dist_broadcast(1, (nb_tensor *[]){stale}) == -1);
    CASE("nb_dist_average", INV, nb_dist_average(-2, data) == -1);
    CASE("nb_dist_average", INV, nb_dist_average(1, (nb_tensor *[]){bcast}) == -1);
    CASE("nb_dist_gather_rows", INV, nb_dist_gather_rows(NULL) == -1);
    CASE("nb_dist_gather_rows", INV, nb_dist_gather_rows(s0) == -1);
    KEEP(nb_dist_gather_rows(NULL) == -1);
    KEEP(nb_dist_broadcast(1, none) == -1);
    KEEP(nb_dist_backward(NULL, .weight = 1, .n = 1, .params = none) == -1);
    CASE("nb_dist_backward", INV, nb_dist_backward(NULL, .weight = 1, .n = 0, .params = ps) == -1);
    CASE("nb_dist_backward", INV, nb_dist_backward(NULL, .weight = INFINITY, .n = 1,
                                                   .params = ps) == -1);
    CASE("nb_dist_backward", INV, nb_dist_backward(NULL, .weight = 1, .n = 2, .params = two) == -1);
    CASE("nb_dist_backward", INV, nb_dist_backward(NULL, .weight = 1, .n = 1, .params = data) == -1);
    CASE("nb_dist_backward", INV, nb_dist_backward(NULL, .weight = 1, .n = 1, .params = ps,
                                                   .nsums = 1) == -1);
    CASE("nb_dist_backward", STA, nb_dist_backward(stale, .weight = 1, .n = 1, .params = ps) == -1);
    CASE("nb_model_distribute", INV, nb_model_distribute(NULL) == -1);
#ifdef NB_EXPECT_MPI
    CASE("nb_dist_attach", INV, nb_dist_attach(NULL) == -1);
#else /* a build without MPI refuses these, whatever the arguments */
    CASE("nb_dist_init", NB_ERR_DIST, nb_dist_init(NULL, NULL) == -1);
    CASE("nb_dist_attach", NB_ERR_DIST, nb_dist_attach(NULL) == -1);
#endif
    SECTION_END();
}

/* ---- nb_evaluate's and nb_predict's options ---- */

static void test_eval_opts(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_model *m = nb_sequential(nb_dense(3, .activation = NB_SOFTMAX, .input = 4));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_sgd(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(5, 4)), *y = nb_zeros(NB_F32, NB_SHAPE(5, 3));
    nb_dataset d = {x, y, 0};
    double loss = 42, acc[2] = {42, 42};
    CASE("nb_evaluate", INV, nb_evaluate(m, d, .verbose = 3) == -1);
    CASE("nb_evaluate", INV, nb_evaluate(m, d, .verbose = -2) == -1);
    /* An array without its length, a length without an array. */
    CASE("nb_evaluate", INV, nb_evaluate(m, d, .loss = &loss, .metrics = acc) == -1);
    CASE("nb_evaluate", INV, nb_evaluate(m, d, .metrics = acc, .nmetrics = -1) == -1);
    CASE("nb_evaluate", INV, nb_evaluate(m, d, .nmetrics = 1) == -1);
    CASE("nb_evaluate", INV, nb_evaluate(m, d, .verbose = 7, .metrics = acc, .nmetrics = 2) == -1);
    /* Refused before anything is written. */
    assert_true(loss == 42 && acc[0] == 42 && acc[1] == 42);
    CASE("nb_predict", INV, nb_predict(m, d, .verbose = 3) == NULL);
    CASE("nb_predict", INV, nb_predict(m, d, .verbose = -2) == NULL);
    CASE("nb_predict", INV, nb_predict(m, d, .verbose = 2, .batch_size = -1) == NULL);
    /* Data of the wrong state, with printing asked for: nothing printed. */
    for (int b = 0; b < 4; b++) {
        CASE("nb_evaluate", STA, nb_evaluate(m, (nb_dataset){bad_tensors()[b], y, 0},
                                             .verbose = 2) == -1);
        CASE("nb_predict", STA, nb_predict(m, (nb_dataset){.x = bad_tensors()[b]},
                                           .verbose = 1) == NULL);
    }
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    SECTION_END();
}

static void test_summary(void **state)
{
    (void)state;
    printf("# bad arguments (distributed, evaluate and predict options): %d cases tried, %d "
           "gave the documented error\n", tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dist),
        cmocka_unit_test(test_eval_opts),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
