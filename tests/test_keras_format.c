/* Golden output: nb_summary and nb_fit's lines against what Keras 3.15
 * prints for the same models (tests/data/keras3_*, captured with TensorFlow
 * 2.21; /work/shared/reference/README.md told how).
 *
 * - Summaries are compared byte for byte: parameter counts and shapes are
 *   deterministic. Keras numbers unnamed layers across the whole process
 *   (its second model's first Conv2D is "conv2d_2") and names models
 *   "sequential_1", ...; nabla counts within a model, so for the second and
 *   third reference models those names are put back to a first model's
 *   ("conv2d", "sequential"), their cells re-padded to the same width
 *   (rename() below), and everything else must match.
 * - Epoch lines and evaluate's line hold times and values, so both texts
 *   are masked first (mask()): every run of digits becomes '#', and the
 *   per-step unit (s, ms, us: Keras picks it by size) becomes 's'. What is
 *   left, the layout, must match line for line. (The reference's last line,
 *   the list Python prints of what evaluate returned, is not nabla's.)
 * - The progress bar (verbose 1) is drawn on a pseudo-terminal, as Keras's
 *   reference was captured, and the last drawing of each line is compared
 *   to Keras's, masked the same way, escape codes and all: fit's epochs,
 *   then evaluate's. */
#define _GNU_SOURCE /* posix_openpt, strndup */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"
#include "pty_testing.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nabla/nabla.h"

static char *read_file(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", NB_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    char *s = text_of(f);
    fclose(f);
    return s;
}

/* Lines [from, from + n) of s, as a malloc'ed string. */
static char *lines(const char *s, int from, int n)
{
    const char *a = s;
    for (int i = 0; i < from && a; i++)
        a = strchr(a, '\n') ? strchr(a, '\n') + 1 : NULL;
    assert_non_null(a);
    const char *b = a;
    for (int i = 0; i < n && b; i++)
        b = strchr(b, '\n') ? strchr(b, '\n') + 1 : NULL;
    assert_non_null(b);
    return strndup(a, (size_t)(b - a));
}

/* Replaces the first `from` in s by `to` (no longer), adding the spaces it
 * saves before the cell's closing " │", so the table keeps its widths. */
static void rename_cell(char *s, const char *from, const char *to)
{
    char *p = strstr(s, from);
    assert_non_null(p);
    size_t lf = strlen(from), lt = strlen(to), d = lf - lt;
    char *end = strstr(p, " │");
    assert_non_null(end);
    memmove(p + lt, p + lf, (size_t)(end - (p + lf)));
    memcpy(p, to, lt);
    memset(end - d, ' ', d);
}

/* The first line's model name, Keras's `from`, to "sequential". */
static void rename_model(char *s, const char *from)
{
    char head[64];
    snprintf(head, sizeof head, "Model: \"%s\"\n", from);
    assert_true(strncmp(s, head, strlen(head)) == 0);
    size_t cut = strlen(from) - strlen("sequential");
    memmove(s + strlen("Model: \"sequential"), s + strlen("Model: \"sequential") + cut,
            strlen(s) - strlen("Model: \"sequential") - cut + 1);
}

/* Digits runs to '#', "ms/step" and "us/step" to "s/step" (in place). */
static void mask(char *s)
{
    char *o = s;
    for (const char *i = s; *i;) {
        if (*i >= '0' && *i <= '9') {
            while (*i >= '0' && *i <= '9')
                i++;
            *o++ = '#';
        } else if ((i[0] == 'm' || i[0] == 'u') && strncmp(i + 1, "s/step", 6) == 0) {
            i++;
        } else {
            *o++ = *i++;
        }
    }
    *o = '\0';
}

static nb_model *classic(void)
{
    nb_model *m = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784),
                                nb_dense(32, .activation = NB_RELU),
                                nb_dense(10, .activation = NB_SOFTMAX));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    return m;
}

static void expect_summary(nb_model *m, const char *want)
{
    char *got = summary_of(m);
    if (strcmp(got, want) != 0)
        fail_msg("summary:\n%s\nKeras's:\n%s", got, want);
    free(got);
}

static void test_summaries_are_keras(void **state)
{
    (void)state;
    char *v2 = read_file("keras3_seed_verbose2.txt"), *ref = read_file("keras3_summaries_cnn_bn_lstm.txt");
    nb_model *m = classic();
    char *want = lines(v2, 0, 13);
    expect_summary(m, want);
    free(want);
    nb_model_free(m);

    /* The Keras MNIST convnet. */
    m = nb_sequential(nb_input(28, 28, 1), nb_conv2d(32, {3}, .activation = NB_RELU),
                      nb_max_pooling2d(), nb_conv2d(64, {3}, .activation = NB_RELU),
                      nb_max_pooling2d(), nb_flatten(), nb_dropout(0.5),
                      nb_dense(10, .activation = NB_SOFTMAX));
    assert_int_equal(nb_build(m, 0, 1), 0);
    want = lines(ref, 0, 21);
    expect_summary(m, want);
    free(want);
    nb_model_free(m);

    /* Conv2D + BatchNormalization: state, and a name cell wrapped. */
    m = nb_sequential(nb_input(28, 28, 1), nb_conv2d(32, {3}, .no_bias = true),
                      nb_batch_normalization(), nb_activation_layer(NB_RELU), nb_max_pooling2d(),
                      nb_flatten(), nb_dense(10, .activation = NB_SOFTMAX));
    assert_int_equal(nb_build(m, 0, 1), 0);
    want = lines(ref, 21, 20);
    rename_model(want, "sequential_1");
    rename_cell(want, "conv2d_2 (", "conv2d (");
    rename_cell(want, "max_pooling2d_2 (", "max_pooling2d (");
    rename_cell(want, "flatten_1 (", "flatten (");
    rename_cell(want, "dense_1 (", "dense (");
    expect_summary(m, want);
    free(want);
    nb_model_free(m);

    /* Embedding + LSTM. */
    m = nb_sequential(nb_input(20), nb_embedding(1000, 16), nb_lstm(32),
                      nb_dense(1, .activation = NB_SIGMOID));
    assert_int_equal(nb_build(m, 0, 1), 0);
    want = lines(ref, 41, 13);
    rename_model(want, "sequential_2");
    rename_cell(want, "dense_2 (", "dense (");
    expect_summary(m, want);
    free(want);
    nb_model_free(m);
    free(v2);
    free(ref);
}

/* Rows of noise and random one-hot classes: the loss stays near log 10,
 * so no value is printed in e-notation (which masks differently). */
static void noise(int64_t n, nb_tensor **x, nb_tensor **y)
{
    nb_rng rng = nb_rng_new(5);
    *x = nb_zeros(NB_F32, NB_SHAPE(n, 784));
    *y = nb_zeros(NB_F32, NB_SHAPE(n, 10));
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < 784; j++)
            ((float *)nb_data(*x))[i * 784 + j] = (float)nb_rng_uniform(&rng);
        ((float *)nb_data(*y))[i * 10 + (int64_t)nb_rng_below(&rng, 10)] = 1;
    }
    nb_bump_version(*x);
    nb_bump_version(*y);
}

static void test_epoch_lines_are_keras(void **state)
{
    (void)state;
    nb_tensor *x, *y, *vx, *vy;
    noise(300, &x, &y);
    noise(100, &vx, &vy);
    nb_model *m = classic();
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(nb_summary(m, f), 0);
    const nb_history *h = nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 2,
                                 .validation = {vx, vy, 0}, .verbose = 2, .out = f);
    assert_non_null(h);
    /* Keras's evaluate(verbose=2) line, with the values of the last
     * epoch's validation, as in Keras's run. */
    double loss, acc;
    assert_int_equal(nb_evaluate(m, (nb_dataset){vx, vy, 0}, .verbose = 2, .out = f,
                                 .loss = &loss, .metrics = &acc, .nmetrics = 1),
                     0);
    assert_true(loss == h->val_loss[1] && acc == h->val_metric[1]);
    char *got = text_of(f), *v2 = read_file("keras3_seed_verbose2.txt"), *want = lines(v2, 0, 18);
    fclose(f);
    f = tmpfile();
    mask(got);
    mask(want);
    if (strcmp(got, want) != 0)
        fail_msg("masked:\n%s\nKeras's, masked:\n%s", got, want);
    free(got);
    free(v2);
    free(want);

    /* Keras's values only, and the message says which. */
    assert_null(nb_fit(m, (nb_dataset){x, y, 0}, .verbose = 3, .out = f));
    ERR_HAS("nb_fit: verbose is 3; it must be 0 (silent), 1 (a progress bar), 2 (a line per "
            "epoch) or NB_VERBOSE_AUTO (-1)");

    /* One epoch: no "Epoch 1/1" line, as in Keras; verbose 0 prints nothing. */
    assert_non_null(nb_fit(m, (nb_dataset){x, y, 0}, .verbose = 2, .out = f));
    assert_non_null(nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 3, .out = f));
    got = text_of(f);
    fclose(f);
    mask(got);
    assert_string_equal(got, "#/# - #s - #s/step - accuracy: #.# - loss: #.#\n");
    free(got);

    /* evaluate and predict: verbose as fit's, and predict's line has no
     * values, as Keras's ("313/313 - 0s - 1ms/step"); auto is a line off a
     * terminal. */
    f = tmpfile();
    assert_int_equal(nb_evaluate(m, (nb_dataset){vx, vy, 0}, .verbose = 3, .out = f), -1);
    ERR_HAS("nb_evaluate: verbose is 3; it must be 0 (silent), 1 (a progress bar), 2 (a line "
            "per call, at the end) or NB_VERBOSE_AUTO (-1)");
    assert_null(nb_predict(m, (nb_dataset){.x = vx}, .verbose = -2, .out = f));
    ERR_HAS("nb_predict: verbose is -2; it must be 0");
    nb_tensor *p = nb_predict(m, (nb_dataset){.x = vx}, .verbose = 2, .out = f);
    assert_non_null(p);
    nb_free(p);
    assert_non_null(p = nb_predict(m, (nb_dataset){.x = vx}, .batch_size = 7, .out = f));
    nb_free(p);
    assert_non_null(p = nb_predict(m, (nb_dataset){.x = vx}, .verbose = NB_VERBOSE_AUTO,
                                   .batch_size = 7, .out = f));
    nb_free(p);
    assert_int_equal(nb_evaluate(m, (nb_dataset){vx, vy, 0}, .verbose = NB_VERBOSE_AUTO,
                                 .batch_size = 50, .out = f),
                     0);
    got = text_of(f);
    fclose(f);
    assert_true(strncmp(got, "4/4 - ", 6) == 0); /* 100 rows in batches of 32 */
    assert_non_null(strstr(got, "\n15/15 - "));
    assert_non_null(strstr(got, "\n2/2 - "));
    mask(got);
    assert_string_equal(got, "#/# - #s - #s/step\n#/# - #s - #s/step\n"
                             "#/# - #s - #s/step - accuracy: #.# - loss: #.#\n");
    free(got);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    nb_free(vx);
    nb_free(vy);
}

/* The last drawing of each line of s ('\n' ends one, "\r\n" on a
 * terminal): what stays on the screen. */
static char *screen(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    assert_non_null(out);
    while (*s) {
        const char *nl = strchr(s, '\n'), *end = nl ? nl : s + strlen(s), *from = s;
        for (const char *p = s; p < end; p++)
            if (*p == '\r' && p + 1 < end)
                from = p + 1;
        size_t n = (size_t)(end - from);
        while (n && (from[n - 1] == '\r' || from[n - 1] == ' '))
            n--;
        memcpy(o, from, n);
        o += n;
        *o++ = '\n';
        s = nl ? nl + 1 : end;
    }
    *o = '\0';
    return out;
}

static void test_progress_bar_is_keras(void **state)
{
    (void)state;
    int master;
    FILE *tty = pty_open(&master);
    nb_tensor *x, *y, *vx, *vy;
    noise(300, &x, &y);
    noise(100, &vx, &vy);
    nb_model *m = classic();
    assert_int_equal(nb_summary(m, tty), 0);
    assert_non_null(nb_fit(m, (nb_dataset){x, y, 0}, .epochs = 2, .validation = {vx, vy, 0},
                           .verbose = NB_VERBOSE_AUTO, .out = tty));
    assert_int_equal(nb_evaluate(m, (nb_dataset){vx, vy, 0}, .verbose = NB_VERBOSE_AUTO,
                                 .out = tty),
                     0);
    fclose(tty);
    static char text[1 << 16];
    pty_drain(master, text, sizeof text);
    /* The first step is drawn at once; the last one covers it with
     * backspaces and a carriage return, as Keras's does. */
    assert_non_null(strstr(text, "\b\r\x1b[1m10/10\x1b[0m \x1b[32m"));
    char *raw = read_file("keras3_seed_verbose1_tty.raw");
    char *got = screen(text), *all = screen(raw), *want = lines(all, 0, 18);
    mask(got);
    mask(want);
    if (strcmp(got, want) != 0)
        fail_msg("masked:\n%s\nKeras's, masked:\n%s", got, want);
    free(got);
    free(all);
    free(want);
    free(raw);
    nb_model_free(m);
    nb_free(x);
    nb_free(y);
    nb_free(vx);
    nb_free(vy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summaries_are_keras),
        cmocka_unit_test(test_epoch_lines_are_keras),
        cmocka_unit_test(test_progress_bar_is_keras),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
