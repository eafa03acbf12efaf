/* The counted bad-argument test, part 3: the pictures a Keras user reads,
 * nb_plot_history (and nb_fit's .plot), nb_plot_model and
 * nb_dot_render_string (bad_args.h says what a case checks). Without PLplot
 * or Graphviz, every call of the function that needs it is refused with
 * NB_ERR_STATE first, whatever its arguments. */
#define _POSIX_C_SOURCE 200809L
#include "bad_args.h"

static double l3[] = {1, 0.8, 0.7}, a3[] = {0.5, 0.6, 0.7};

static void test_plot_history(void **state)
{
    (void)state;
    SECTION_BEGIN();
    int inv = nb_plot_can_render() ? INV : STA, ioe = nb_plot_can_render() ? IOE : STA;
    const char *fn = "nb_plot_history";
    nb_history ok = {.epochs = 3, .loss = l3, .val_loss = l3, .nmetrics = 1,
                     .metric_names = {"accuracy"}, .metrics = {a3}, .val_metrics = {a3}};
    CASE(fn, inv, nb_plot_history(NULL, "/tmp/c.svg") == -1);
    CASE(fn, inv, nb_plot_history(&ok, NULL) == -1);
    CASE(fn, inv, nb_plot_history(&ok, "/tmp/c.pdf") == -1);
    CASE(fn, inv, nb_plot_history(&ok, "/tmp/c") == -1);
    CASE(fn, inv, nb_plot_history(&ok, "/tmp/c.svg/") == -1);
    CASE(fn, ioe, nb_plot_history(&ok, "/nonexistent-dir/c.svg") == -1);
    CASE(fn, ioe, nb_plot_history(&ok, "/nonexistent-dir/c.png") == -1);
    nb_history bad = ok;
    bad.epochs = 0; /* empty */
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad.epochs = -2;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.initial_epoch = -1;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.initial_epoch = INT32_MAX - 1;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.loss = NULL;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.nmetrics = NB_MAX_METRICS + 1;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.nmetrics = -1;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.metric_names[0] = NULL;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.metric_names[0] = "";
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    bad = ok, bad.metrics[0] = NULL;
    CASE(fn, inv, nb_plot_history(&bad, "/tmp/c.svg") == -1);
    SECTION_END();
}

/* A compiled model of two Dense layers, and data for it. */
static nb_model *model(void)
{
    nb_model *m = nb_sequential(nb_dense(4, .activation = NB_RELU, .input = 3),
                                nb_dense(2, .activation = NB_SOFTMAX));
    if (m && nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY))
        return NULL;
    return m;
}

static void test_fit_plot(void **state)
{
    (void)state;
    SECTION_BEGIN();
    nb_model *m = model();
    assert_non_null(m);
    nb_tensor *x = nb_zeros(NB_F32, NB_SHAPE(4, 3));
    nb_tensor *y = nb_from_array(NB_F32, NB_SHAPE(4, 2), (float[]){1, 0, 0, 1, 1, 0, 0, 1});
    nb_dataset d = {.x = x, .y = y};
    /* Trained once first: the optimizer's state is made, not a partial
     * result of a failing fit. */
    assert_non_null(nb_fit(m, d));
    CASE("nb_fit", INV, nb_fit(m, d, .plot = "/tmp/c.pdf") == NULL);
    CASE("nb_fit", INV, nb_fit(m, d, .plot = "") == NULL);
    CASE("nb_fit", INV, nb_fit(m, d, .plot = "/tmp/.png/x") == NULL);
    CASE("nb_fit", INV, nb_fit(m, d, .plot = "/tmp/c.sv") == NULL);
    /* A picture it cannot write: an I/O error after the first epoch (with
     * PLplot), refused before training without it. */
    CASE("nb_fit", nb_plot_can_render() ? IOE : STA,
         nb_fit(m, d, .plot = "/nonexistent-dir/c.png") == NULL);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    SECTION_END();
}

static void test_plot_model(void **state)
{
    (void)state;
    SECTION_BEGIN();
    const char *fn = "nb_plot_model";
    nb_model *m = model();
    assert_non_null(m);
    CASE(fn, INV, nb_plot_model(NULL, "/tmp/m.dot") == -1);
    CASE(fn, INV, nb_plot_model(m, NULL) == -1);
    CASE(fn, INV, nb_plot_model(m, "/tmp/m.pdf") == -1);
    CASE(fn, INV, nb_plot_model(m, "/tmp/m") == -1);
    CASE(fn, INV, nb_plot_model(m, "/tmp/m.dot/") == -1);
    CASE(fn, IOE, nb_plot_model(m, "/nonexistent-dir/m.dot") == -1);
    CASE(fn, nb_dot_can_render() ? IOE : STA, nb_plot_model(m, "/nonexistent-dir/m.svg") == -1);
    nb_model *unbuilt = nb_sequential(nb_dense(3), nb_dense(2));
    assert_non_null(unbuilt);
    CASE(fn, STA, nb_plot_model(unbuilt, "/tmp/m.dot") == -1);
    nb_model_free(unbuilt);
    nb_model *freed = model();
    nb_model_free(freed);
    CASE(fn, STA, nb_plot_model(freed, "/tmp/m.dot") == -1); /* not a live model */
    nb_model_free(m);
    SECTION_END();
}

static void test_dot_render_string(void **state)
{
    (void)state;
    SECTION_BEGIN();
    const char *fn = "nb_dot_render_string";
    int inv = nb_dot_can_render() ? INV : STA, ioe = nb_dot_can_render() ? IOE : STA;
    const char *ok = "digraph { a -> b }";
    CASE(fn, inv, nb_dot_render_string(NULL, "/tmp/g.svg") == -1);
    CASE(fn, inv, nb_dot_render_string(ok, NULL) == -1);
    CASE(fn, inv, nb_dot_render_string(ok, "/tmp/g.gif") == -1);
    CASE(fn, inv, nb_dot_render_string("digraph { a -> ", "/tmp/g.svg") == -1);
    CASE(fn, inv, nb_dot_render_string("", "/tmp/g.png") == -1);
    CASE(fn, ioe, nb_dot_render_string(ok, "/nonexistent-dir/g.svg") == -1);
    SECTION_END();
}

static void test_summary(void **state)
{
    (void)state;
    (void)bad_tensors; /* the pictures take no tensors */
    printf("# bad arguments (pictures: curves, layers, DOT text): %d cases tried, %d gave the "
           "documented error\n",
           tried, passed);
    assert_int_equal(passed, tried);
    assert_true(tried >= 35);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plot_history),      cmocka_unit_test(test_fit_plot),
        cmocka_unit_test(test_plot_model),        cmocka_unit_test(test_dot_render_string),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
