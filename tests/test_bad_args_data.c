/* The counted bad-argument test, part 3: weights in the PyTorch layout,
 * nb_batches, the initialisers (bad_args.h says what a case checks). */
#define _POSIX_C_SOURCE 200809L
#include "bad_args.h"

static const char *tmp(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "/tmp/nabla_bad_data_%ld_%s", (long)getpid(), name);
    return buf[k];
}

static void test_layout(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_model *m = nb_sequential(nb_dense(4, .input = 3, .activation = NB_RELU), nb_dense(2));
    nb_model *other = nb_sequential(nb_dense(5, .input = 3), nb_dense(2));
    nb_model *bn = nb_sequential(nb_dense(4, .input = 3), nb_batch_normalization());
    nb_model *rnn = nb_sequential(nb_input(5, 3), nb_gru(4));
    nb_model *unbuilt = nb_sequential(nb_dense(4), nb_dense(2));
    assert_int_equal(nb_build(m, 0, 1) | nb_build(other, 0, 1) | nb_build(bn, 0, 1) |
                         nb_build(rnn, 0, 1),
                     0);
    const char *p = tmp("t.safetensors"), *q = tmp("o.safetensors");
    assert_int_equal(nb_save_weights(m, p, .layout = NB_LAYOUT_PYTORCH), 0);
    assert_int_equal(nb_save_weights(other, q, .layout = NB_LAYOUT_PYTORCH), 0);
    nb_clear_error();
    CASE("nb_save_weights", INV, nb_save_weights(NULL, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    KEEP(nb_save_weights(NULL, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_save_weights", INV, nb_save_weights(m, NULL, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_save_weights", INV, nb_save_weights(m, p, .layout = (nb_layout)2) == -1);
    CASE("nb_save_weights", INV, nb_save_weights(m, p, .layout = (nb_layout)-1) == -1);
    CASE("nb_save_weights", STA, nb_save_weights(unbuilt, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_save_weights", STA, nb_save_weights(bn, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_save_weights", STA, nb_save_weights(rnn, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_save_weights", IOE,
         nb_save_weights(m, "/nonexistent/dir/w.safetensors", .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", INV, nb_load_weights(NULL, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    KEEP(nb_load_weights(NULL, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", INV, nb_load_weights(m, NULL, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", INV, nb_load_weights(m, p, .layout = (nb_layout)2) == -1);
    CASE("nb_load_weights", STA, nb_load_weights(unbuilt, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", STA, nb_load_weights(bn, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", STA, nb_load_weights(rnn, p, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", IOE,
         nb_load_weights(m, tmp("missing.safetensors"), .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", SHP, nb_load_weights(m, q, .layout = NB_LAYOUT_PYTORCH) == -1);
    CASE("nb_load_weights", SHP,
         nb_load_weights(m, q, .layout = NB_LAYOUT_PYTORCH, .partial = true) == -1);
    unlink(p);
    unlink(q);
    nb_model_free(m);
    nb_model_free(other);
    nb_model_free(bn);
    nb_model_free(rnn);
    nb_model_free(unbuilt);
    SECTION_END();
}

static void test_batches(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_tensor *u8 = nb_zeros(NB_U8, NB_SHAPE(2, 3));
    CASE("nb_batches_new", INV, nb_batches_new((nb_dataset){0}) == NULL);
    KEEP(nb_batches_new((nb_dataset){0}) == NULL);
    CASE("nb_batches_new", SHP, nb_batches_new((nb_dataset){.x = s0}) == NULL);
    CASE("nb_batches_new", SHP, nb_batches_new((nb_dataset){.x = f23, .y = s0}) == NULL);
    CASE("nb_batches_new", SHP, nb_batches_new((nb_dataset){.x = f23, .y = f4}) == NULL);
    CASE("nb_batches_new", SHP, nb_batches_new((nb_dataset){.x = e03}) == NULL);
    CASE("nb_batches_new", INV, nb_batches_new((nb_dataset){.x = f23}, .batch_size = -1) == NULL);
    CASE("nb_batches_new", DTY, nb_batches_new((nb_dataset){.x = u8}, .dtype = NB_U8) == NULL);
    CASE("nb_batches_new", DTY, nb_batches_new((nb_dataset){.x = u8}, .dtype = (nb_dtype)9) == NULL);
    CASE("nb_batches_new", DTY, nb_batches_new((nb_dataset){.x = f23}, .dtype = NB_F64) == NULL);
    CASE("nb_batches_new", INV, nb_batches_new((nb_dataset){.x = u8, .scale = NAN}) == NULL);
    CASE("nb_batches_new", INV, nb_batches_new((nb_dataset){.x = f23, .scale = 0.5}) == NULL);
    CASE("nb_batches_new", SHP,
         nb_batches_new((nb_dataset){.x = f23}, .batch_size = 3, .drop_last = true) == NULL);
    nb_tensor *const *bad = bad_tensors();
    for (int i = 0; i < 4; i++) {
        CASE("nb_batches_new", STA, nb_batches_new((nb_dataset){.x = bad[i]}) == NULL);
        CASE("nb_batches_new", STA, nb_batches_new((nb_dataset){.x = f23, .y = bad[i]}) == NULL);
    }
    nb_batches *it = nb_batches_new((nb_dataset){.x = f23, .y = lab});
    assert_non_null(it);
    nb_tensor *x, *y;
    CASE("nb_batches_next", INV, nb_batches_next(NULL, &x, &y) == -1);
    KEEP(nb_batches_next(NULL, &x, &y) == -1);
    CASE("nb_batches_next", INV, nb_batches_next(it, NULL, &y) == -1);
    CASE("nb_batches_next", INV, nb_batches_next(it, &x, NULL) == -1);
    CASE("nb_batches_count", INV, nb_batches_count(NULL) == -1);
    KEEP(nb_batches_count(NULL) == -1);
    nb_batches_free(it);
    nb_free(u8);
    SECTION_END();
}

static void test_init(void **state)
{
    (void)state;
    SECTION_BEGIN();
    int (*fans[6])(nb_tensor *, nb_rng *) = {nb_init_glorot_uniform, nb_init_glorot_normal,
                                              nb_init_he_uniform,     nb_init_he_normal,
                                              nb_init_lecun_uniform,  nb_init_lecun_normal};
    const char *names[6] = {"nb_init_glorot_uniform", "nb_init_glorot_normal",
                            "nb_init_he_uniform",     "nb_init_he_normal",
                            "nb_init_lecun_uniform",  "nb_init_lecun_normal"};
    nb_rng r = nb_rng_new(1);
    nb_tensor *u8 = nb_zeros(NB_U8, NB_SHAPE(2, 3));
    nb_tensor *live = nb_add(f23, f23); /* a tensor of the current graph */
    nb_tensor *const *bad = bad_tensors();
    for (int k = 0; k < 6; k++) {
        CASE(names[k], INV, fans[k](NULL, &r) == -1);
        KEEP(fans[k](NULL, &r) == -1);
        CASE(names[k], INV, fans[k](f23, NULL) == -1);
        CASE(names[k], DTY, fans[k](u8, &r) == -1);
        CASE(names[k], SHP, fans[k](f4, &r) == -1);
        CASE(names[k], SHP, fans[k](s0, &r) == -1);
        CASE(names[k], STA, fans[k](live, &r) == -1);
        for (int i = 0; i < 4; i++)
            CASE(names[k], STA, fans[k](bad[i], &r) == -1);
    }
    const char *vs = "nb_init_variance_scaling";
    CASE(vs, INV, nb_init_variance_scaling(NULL, &r, (nb_variance_scaling){0}) == -1);
    CASE(vs, INV, nb_init_variance_scaling(f23, NULL, (nb_variance_scaling){0}) == -1);
    CASE(vs, SHP, nb_init_variance_scaling(f4, &r, (nb_variance_scaling){0}) == -1);
    CASE(vs, INV, nb_init_variance_scaling(f23, &r, (nb_variance_scaling){.scale = -1}) == -1);
    CASE(vs, INV, nb_init_variance_scaling(f23, &r, (nb_variance_scaling){.scale = INFINITY}) == -1);
    CASE(vs, INV, nb_init_variance_scaling(f23, &r, (nb_variance_scaling){.mode = (nb_fan_mode)3}) == -1);
    CASE(vs, INV,
         nb_init_variance_scaling(f23, &r, (nb_variance_scaling){.distribution = (nb_init_distribution)3}) == -1);
    CASE("nb_init_orthogonal", INV, nb_init_orthogonal(NULL, 1, &r) == -1);
    KEEP(nb_init_orthogonal(NULL, 1, &r) == -1);
    CASE("nb_init_orthogonal", INV, nb_init_orthogonal(f23, 1, NULL) == -1);
    CASE("nb_init_orthogonal", INV, nb_init_orthogonal(f23, NAN, &r) == -1);
    CASE("nb_init_orthogonal", SHP, nb_init_orthogonal(f4, 1, &r) == -1);
    CASE("nb_init_orthogonal", DTY, nb_init_orthogonal(u8, 1, &r) == -1);
    CASE("nb_init_orthogonal", STA, nb_init_orthogonal(live, 1, &r) == -1);
    CASE("nb_init_constant", INV, nb_init_constant(NULL, 1) == -1);
    KEEP(nb_init_constant(NULL, 1) == -1);
    CASE("nb_init_constant", DTY, nb_init_constant(u8, 1) == -1);
    CASE("nb_init_constant", STA, nb_init_constant(live, 1) == -1);
    CASE("nb_init_zeros", INV, nb_init_zeros(NULL) == -1);
    CASE("nb_init_zeros", DTY, nb_init_zeros(u8) == -1);
    CASE("nb_init_ones", INV, nb_init_ones(NULL) == -1);
    CASE("nb_init_ones", STA, nb_init_ones(bad[2]) == -1);
    nb_free(u8);
    SECTION_END();
}

static void test_summary(void **state)
{
    (void)state;
    printf("# bad arguments (PyTorch layout, batches, initialisers): %d cases tried, %d gave "
           "the documented error\n", tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
