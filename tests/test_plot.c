/* Pictures a Keras user reads: training curves (nb_plot_history, nb_fit's
 * .plot), the layers (nb_plot_model), and what a training step's graph
 * says about the loss (the detached max, the fused softmax). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testing.h"

#define DIR_TEMPLATE "/tmp/nabla-plot-XXXXXX"
#include "file_testing.h"

#include <math.h>
#include <threads.h>
#include <zlib.h>

/* The whole file, NUL-terminated; its size in *n. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)k + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)k, f), (size_t)k);
    fclose(f);
    p[k] = '\0';
    *n = (size_t)k;
    return p;
}

/* PLplot's SVG writes each character of a text as &#xNN;: decoded here. */
static char *svg_text(const char *path)
{
    size_t n;
    char *s = slurp(path, &n), *out = malloc(n + 1), *o = out;
    for (const char *p = s; *p;) {
        unsigned v;
        int used;
        if (p[0] == '&' && p[1] == '#' && p[2] == 'x' && sscanf(p, "&#x%x;%n", &v, &used) == 1 &&
            v < 0x80) {
            *o++ = (char)v;
            p += used;
        } else
            *o++ = *p++;
    }
    *o = '\0';
    free(s);
    return out;
}

/* A history of 5 epochs with one metric, as nb_fit leaves it. */
static double loss5[] = {1.0, 0.7, 0.55, 0.5, 0.47}, vloss5[] = {0.8, 0.65, 0.6, 0.58, 0.59};
static double acc5[] = {0.6, 0.75, 0.8, 0.83, 0.85}, vacc5[] = {0.7, 0.76, 0.79, 0.8, 0.79};
static nb_history history5(void)
{
    nb_history h = {.epochs = 5, .loss = loss5, .val_loss = vloss5, .nmetrics = 1,
                    .metric_names = {"accuracy"}, .metrics = {acc5}, .val_metrics = {vacc5}};
    return h;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A PNG's size from IHDR, and (8-bit RGB or RGBA, one IDAT or several) how
 * many pixels are near each colour of want (RGB triples). */
static void png_facts(const char *path, uint32_t *w, uint32_t *h, int ncol, const int *want,
                      long *near)
{
    size_t n;
    unsigned char *p = (unsigned char *)slurp(path, &n);
    static const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_true(n > 33);
    assert_memory_equal(p, magic, 8);
    assert_memory_equal(p + 12, "IHDR", 4);
    *w = be32(p + 16), *h = be32(p + 20);
    int bpp = p[25] == 6 ? 4 : 3;
    assert_int_equal(p[24], 8);
    assert_true(p[25] == 2 || p[25] == 6);
    unsigned char *z = malloc(n);
    size_t zn = 0;
    for (size_t at = 8; at + 12 <= n;) {
        uint32_t len = be32(p + at);
        if (!memcmp(p + at + 4, "IDAT", 4)) {
            memcpy(z + zn, p + at + 8, len);
            zn += len;
        }
        at += 12 + len;
    }
    size_t stride = (size_t)*w * (size_t)bpp + 1;
    uLongf rn = (uLongf)(stride * *h);
    unsigned char *raw = malloc(rn);
    assert_int_equal(uncompress(raw, &rn, z, (uLong)zn), Z_OK);
    assert_int_equal(rn, stride * *h);
    /* Undo the filters (0 none, 1 sub, 2 up, 3 average, 4 Paeth). */
    for (uint32_t y = 0; y < *h; y++) {
        unsigned char *r = raw + y * stride + 1, *up = y ? r - stride : NULL;
        int f = r[-1];
        for (size_t i = 0; i < stride - 1; i++) {
            int a = i >= (size_t)bpp ? r[i - bpp] : 0, b = up ? up[i] : 0,
                c = up && i >= (size_t)bpp ? up[i - bpp] : 0;
            int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c);
            int pr = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
            int add = f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : f == 4 ? pr : 0;
            r[i] = (unsigned char)(r[i] + add);
        }
    }
    for (int k = 0; k < ncol; k++)
        near[k] = 0;
    for (uint32_t y = 0; y < *h; y++)
        for (uint32_t x = 0; x < *w; x++) {
            const unsigned char *px = raw + y * stride + 1 + x * (size_t)bpp;
            for (int k = 0; k < ncol; k++)
                near[k] += abs(px[0] - want[3 * k]) + abs(px[1] - want[3 * k + 1]) +
                               abs(px[2] - want[3 * k + 2]) <
                           40;
        }
    free(raw);
    free(z);
    free(p);
}

/* Runs f(arg) with stdout and stderr going to a file; what they got. */
static long printed_by(int (*f)(void *), void *arg, int *rc)
{
    FILE *cap = tmpfile();
    assert_non_null(cap);
    fflush(NULL);
    int o = dup(1), e = dup(2);
    dup2(fileno(cap), 1);
    dup2(fileno(cap), 2);
    *rc = f(arg);
    fflush(NULL);
    dup2(o, 1);
    dup2(e, 2);
    close(o);
    close(e);
    long n = (long)lseek(fileno(cap), 0, SEEK_END);
    fclose(cap);
    return n;
}

static const char *quiet_path;
static int plot5(void *arg)
{
    nb_history h = history5();
    (void)arg;
    return nb_plot_history(&h, quiet_path);
}

/* ---- training curves ---- */

static void test_curves_svg(void **state)
{
    (void)state;
#ifdef NB_EXPECT_PLPLOT
    assert_true(nb_plot_can_render());
#else
    assert_false(nb_plot_can_render());
#endif
    nb_history h = history5();
    const char *path = P("curves.svg");
    if (!nb_plot_can_render()) { /* the documented error, and no file */
        FAILS_RC(nb_plot_history(&h, path), "nb_plot_history: this nabla was built without PLplot");
        assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
        assert_int_equal(access(path, F_OK), -1);
        return;
    }
    assert_int_equal(nb_plot_history(&h, path), 0);
    char *t = svg_text(path);
    assert_non_null(strstr(t, "<svg"));
    assert_non_null(strstr(t, "</svg>"));
    /* Title, both panels with their axes, a legend per panel with the last
     * values. */
    assert_non_null(strstr(t, "training curves, epochs 1 to 5"));
    assert_non_null(strstr(t, ">loss<"));
    assert_non_null(strstr(t, ">accuracy<"));
    assert_non_null(strstr(t, ">epoch<"));
    assert_non_null(strstr(t, "training 0.47<"));
    assert_non_null(strstr(t, "validation 0.59<"));
    assert_non_null(strstr(t, "training 0.85<"));
    assert_non_null(strstr(t, "validation 0.79<"));
    free(t);

    /* Epochs count from initial_epoch + 1; without validation data there
     * is no validation entry, and the title says so. */
    h.initial_epoch = 3;
    h.val_loss = NULL;
    h.val_metrics[0] = NULL;
    assert_int_equal(nb_plot_history(&h, path), 0);
    t = svg_text(path);
    assert_non_null(strstr(t, "epochs 4 to 8 (no validation data)"));
    assert_null(strstr(t, "validation 0"));
    assert_non_null(strstr(t, ">8<")); /* the last tick */
    free(t);
}

static void test_curves_png(void **state)
{
    (void)state;
    nb_history h = history5();
    if (!nb_plot_can_render()) {
        FAILS_RC(nb_plot_history(&h, P("c.png")), "without PLplot");
        assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
        return;
    }
    const int colours[] = {31, 119, 180, 255, 127, 14}; /* training blue, validation orange */
    uint32_t w, ht;
    long near[2];
    assert_int_equal(nb_plot_history(&h, P("c.PNG")), 0); /* any case */
    png_facts(P("c.PNG"), &w, &ht, 2, colours, near);
    assert_int_equal(w, 2 * 560); /* two panels side by side */
    assert_int_equal(ht, 400 + 56);
    assert_true(near[0] > 300); /* both curves drawn, in their colours */
    assert_true(near[1] > 300);
    /* PLplot prints nothing, in either format. */
    int rc;
    quiet_path = P("quiet.png");
    assert_int_equal(printed_by(plot5, NULL, &rc), 0);
    assert_int_equal(rc, 0);
    quiet_path = P("quiet.svg");
    assert_int_equal(printed_by(plot5, NULL, &rc), 0);
    assert_int_equal(rc, 0);

    /* Five panels: three columns, two rows; one epoch alone draws too. */
    double m[4][1] = {{0.5}, {0.6}, {0.7}, {0.8}};
    nb_history one = {.epochs = 1, .loss = (double[]){0.9}, .val_loss = (double[]){NAN},
                      .nmetrics = 4, .metric_names = {"a", "b", "c", "d"},
                      .metrics = {m[0], m[1], m[2], m[3]}};
    assert_int_equal(nb_plot_history(&one, P("five.png")), 0);
    png_facts(P("five.png"), &w, &ht, 2, colours, near);
    assert_int_equal(w, 3 * 560);
    assert_int_equal(ht, 2 * 400 + 56);
    assert_true(near[0] > 20);  /* the dots of the one epoch */
    assert_int_equal(near[1], 0); /* no validation curve */

    /* NaN and infinite values leave gaps; all of them, an empty panel. */
    double gaps[] = {1.0, NAN, 0.5, INFINITY, 0.4};
    h.loss = gaps;
    assert_int_equal(nb_plot_history(&h, P("gaps.png")), 0);
    double none[] = {NAN, NAN, NAN, NAN, NAN};
    h.loss = none;
    h.val_loss = none;
    assert_int_equal(nb_plot_history(&h, P("none.svg")), 0);
}

typedef struct {
    const char *path;
    int rc;
} plot_job;

static int plot_thread(void *arg)
{
    plot_job *j = arg;
    nb_history h = history5();
    for (int i = 0; i < 3 && j->rc == 0; i++)
        j->rc = nb_plot_history(&h, j->path);
    return 0;
}

static void test_curves_threads(void **state)
{
    (void)state;
    plot_job a = {P("ta.png"), 0}, b = {P("tb.svg"), 0};
    thrd_t ta, tb;
    assert_int_equal(thrd_create(&ta, plot_thread, &a), thrd_success);
    assert_int_equal(thrd_create(&tb, plot_thread, &b), thrd_success);
    thrd_join(ta, NULL);
    thrd_join(tb, NULL);
    if (!nb_plot_can_render()) { /* each thread got the error */
        assert_int_equal(a.rc, -1);
        assert_int_equal(b.rc, -1);
        return;
    }
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    uint32_t w, h;
    long near;
    png_facts(a.path, &w, &h, 1, (const int[]){31, 119, 180}, &near);
    assert_true(near > 300);
    char *t = svg_text(b.path);
    assert_non_null(strstr(t, "validation 0.59<"));
    free(t);
}

/* ---- fit's .plot ---- */

static nb_model *small_model(nb_activation last, nb_loss loss)
{
    nb_model *m = nb_sequential(nb_dense(8, .activation = NB_RELU, .input = 4, .name = "hidden"),
                                nb_dense(3, .activation = last, .name = "out"));
    assert_non_null(m);
    assert_int_equal(nb_compile(m, nb_adam(), loss, NB_ACCURACY), 0);
    return m;
}

typedef struct {
    const char *path;
    int epochs_seen;
    long sizes[4];
} watch;

static int on_epoch(nb_model *m, const nb_logs *lg, void *ctx)
{
    (void)m, (void)lg;
    watch *w = ctx;
    struct stat st;
    w->sizes[w->epochs_seen++] = stat(w->path, &st) == 0 ? (long)st.st_size : -1;
    return 0;
}

static void test_fit_plot(void **state)
{
    (void)state;
    nb_model *m = small_model(NB_SOFTMAX, NB_CATEGORICAL_CROSSENTROPY);
    nb_rng rng = nb_rng_new(1);
    nb_tensor *x = nb_randn(NB_F32, NB_SHAPE(48, 4), &rng);
    float yv[48 * 3] = {0};
    for (int i = 0; i < 48; i++)
        yv[i * 3 + i % 3] = 1;
    nb_tensor *y = nb_from_array(NB_F32, NB_SHAPE(48, 3), yv);
    watch w = {.path = P("fit.svg")};
    nb_callback cb = {.on_epoch = on_epoch, .ctx = &w};
    const nb_history *h = nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 3, .validation_split = 0.25,
                                 .plot = w.path, .callbacks = &cb,
                                 .ncallbacks = 1);
    if (!nb_plot_can_render()) {
        assert_null(h);
        assert_int_equal(nb_last_error_code(), NB_ERR_STATE);
        ERR_HAS("nb_fit: .plot needs PLplot");
        assert_int_equal(w.epochs_seen, 0); /* refused before training */
    } else {
        assert_non_null(h);
        /* Drawn after every epoch, before the callbacks see it. */
        assert_int_equal(w.epochs_seen, 3);
        for (int e = 0; e < 3; e++)
            assert_true(w.sizes[e] > 1000);
        char *t = svg_text(w.path);
        assert_non_null(strstr(t, "epochs 1 to 3"));
        char want[64];
        snprintf(want, sizeof want, "validation %.4g<", h->val_loss[2]);
        assert_non_null(strstr(t, want));
        free(t);
        /* A path it cannot write stops the fit at the first epoch, with an
         * error naming the epoch. */
        w.epochs_seen = 0;
        assert_null(nb_fit(m, (nb_dataset){.x = x, .y = y}, .epochs = 2,
                           .plot = "/nonexistent-dir/c.png", .callbacks = &cb, .ncallbacks = 1));
        ERR_HAS("nb_fit: epoch 1: nb_plot_history: cannot open '/nonexistent-dir/c.png'");
        assert_int_equal(nb_last_error_code(), NB_ERR_IO);
        assert_int_equal(w.epochs_seen, 0);
    }
    /* A name that is no picture is refused before training, in any build. */
    assert_null(nb_fit(m, (nb_dataset){.x = x, .y = y}, .plot = P("c.pdf")));
    ERR_HAS("nb_fit: .plot '");
    ERR_HAS("must end in .svg or .png");
    nb_free(x);
    nb_free(y);
    nb_model_free(m);
}

/* ---- the layers ---- */

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

static void test_model_picture(void **state)
{
    (void)state;
    nb_model *m = nb_sequential(nb_dense(64, .activation = NB_RELU, .input = 784, .name = "h1"),
                                nb_dense(32, .activation = NB_TANH, .name = "h2"),
                                nb_dense(10, .activation = NB_SOFTMAX, .name = "probs"));
    assert_int_equal(nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY), 0);
    assert_int_equal(nb_plot_model(m, P("m.dot")), 0);
    size_t n;
    char *d = slurp(P("m.dot"), &n);
    /* One box per layer with its name, type, shapes, activation and
     * parameter count, in order, joined by arrows; the input; the loss. */
    assert_int_equal(count(d, "(Dense)"), 3);
    assert_non_null(strstr(d, "<b>input (InputLayer)</b></td></tr><tr><td>(None, 784)"));
    const char *h1 = strstr(d, "<b>h1 (Dense)</b>"), *h2 = strstr(d, "<b>h2 (Dense)</b>"),
               *pr = strstr(d, "<b>probs (Dense)</b>");
    assert_true(h1 && h2 && pr && h1 < h2 && h2 < pr);
    assert_non_null(strstr(h1, "(None, 784)"));
    assert_true(strstr(h1, "(None, 64)") < h2);
    assert_true(strstr(h1, ">relu<") < h2);
    assert_true(strstr(h1, ">50,240<") < h2); /* 784 * 64 + 64 */
    assert_true(strstr(h2, ">tanh<") < pr);
    assert_true(strstr(h2, ">2,080<") < pr);
    assert_non_null(strstr(pr, ">330<"));
    assert_int_equal(count(d, " -> "), 4);
    assert_non_null(strstr(d, "input -> l0;"));
    assert_non_null(strstr(d, "l0 -> l1;"));
    assert_non_null(strstr(d, "l1 -> l2;"));
    assert_non_null(strstr(d, "l2 -> loss"));
    /* The softmax the loss takes from the logits is marked as fused. */
    assert_non_null(strstr(pr, "<b>softmax</b>, fused into the loss"));
    assert_non_null(strstr(d, "<b>loss (categorical_crossentropy)</b>"));
    assert_non_null(strstr(d, "softmax + categorical_crossentropy, fused"));
    assert_non_null(strstr(d, "Total params: 52,650 (trainable 52,650)"));
    free(d);
    if (nb_dot_can_render()) {
        assert_int_equal(nb_plot_model(m, P("m.svg")), 0);
        d = slurp(P("m.svg"), &n);
        assert_non_null(strstr(d, "<svg"));
        assert_non_null(strstr(d, "fused into the loss"));
        free(d);
    }
    nb_model_free(m);

    /* Another loss: no fusion to mark; a layer of state shows it. */
    m = nb_sequential(nb_dense(4, .input = 3, .name = "a"), nb_batch_normalization(),
                      nb_dense(2, .activation = NB_SOFTMAX, .name = "b"));
    assert_int_equal(nb_compile(m, nb_adam(), NB_MEAN_SQUARED_ERROR), 0);
    assert_int_equal(nb_plot_model(m, P("m2.dot")), 0);
    d = slurp(P("m2.dot"), &n);
    assert_null(strstr(d, "fused"));
    assert_non_null(strstr(d, "(mean_squared_error)"));
    assert_non_null(strstr(d, ">16 (8 non-trainable)<")); /* gamma, beta; moving mean, var */
    assert_int_equal(count(d, " -> "), 4);
    free(d);
    nb_model_free(m);
}

/* ---- what a step's graph says about the loss ---- */

static char *step_dot(nb_activation last, nb_loss loss)
{
    nb_model *m = small_model(last, loss);
    nb_graph *g = nb_graph_new();
    nb_rng rng = nb_rng_new(2);
    nb_tensor *x = nb_set_name(nb_randn(NB_F32, NB_SHAPE(5, 4), &rng), "x");
    nb_tensor *y = nb_set_name(nb_full(NB_F32, NB_SHAPE(5, 3), 1.0 / 3), "y");
    nb_tensor *l = nb_model_loss(m, nb_model_forward(m, x), y);
    assert_non_null(l);
    char *d = nb_dot_string(l, NULL);
    assert_non_null(d);
    char *copy = strdup(d);
    nb_dot_free(d);
    nb_graph_free(g);
    nb_free(x);
    nb_free(y);
    nb_model_free(m);
    return copy;
}

static void test_step_picture(void **state)
{
    (void)state;
    /* Softmax + cross-entropy: the loss box says the softmax is fused into
     * it, the logits it takes are named, and log-softmax's shift is the
     * detached max, not a bare constant. */
    char *d = step_dot(NB_SOFTMAX, NB_CATEGORICAL_CROSSENTROPY);
    assert_non_null(strstr(d, "label=<<b>loss: softmax + categorical_crossentropy (fused)</b>>"));
    assert_non_null(strstr(d, "<b>add</b><br/><i>logits</i>"));
    assert_int_equal(count(d, "<b>max (detached)</b><br/>(5,1) f32"), 1);
    assert_null(strstr(d, "label=<const<br/>"));
    free(d);
    /* Sigmoid + binary cross-entropy is fused the same way. */
    d = step_dot(NB_SIGMOID, NB_BINARY_CROSSENTROPY);
    assert_non_null(strstr(d, "loss: sigmoid + binary_crossentropy (fused)"));
    free(d);
    /* Another loss takes the softmax's output: the softmax is in the
     * picture (its own detached max), the loss box is plain "loss". */
    d = step_dot(NB_SOFTMAX, NB_MEAN_SQUARED_ERROR);
    assert_non_null(strstr(d, "label=<<b>loss</b>>"));
    assert_null(strstr(d, "fused"));
    assert_null(strstr(d, "logits"));
    assert_int_equal(count(d, "<b>max (detached)</b>"), 1);
    free(d);
    /* nb_logsumexp and nb_softmax called directly name their shift too. */
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_param(nb_full(NB_F64, NB_SHAPE(2, 3), 0.5));
    nb_tensor *s = nb_sum(nb_add(nb_logsumexp(p, .axes = NB_AXES(1)), nb_sum(nb_softmax(p, 0))));
    d = nb_dot_string(s, NULL);
    assert_non_null(d);
    assert_int_equal(count(d, "<b>max (detached)</b>"), 2);
    nb_dot_free(d);
    nb_graph_free(g);
    nb_free(p);
}

/* Out of memory at every allocation in turn: an error saying so, no crash,
 * nothing left behind (the ASan and valgrind runs see leaks), until one
 * budget is enough. */
static void test_out_of_memory(void **state)
{
    (void)state;
    nb_history h = history5();
    nb_model *m = small_model(NB_SOFTMAX, NB_CATEGORICAL_CROSSENTROPY);
    for (int which = 0; which < 2; which++) {
        if (which == 0 && !nb_plot_can_render())
            continue;
        int rc = -1;
        int64_t k;
        for (k = 0; k < 64 && rc; k++) {
            alloc_budget = k;
            nb_set_allocator(&failing_allocator);
            rc = which ? nb_plot_model(m, P("oom.dot")) : nb_plot_history(&h, P("oom.png"));
            nb_set_allocator(NULL);
            if (rc)
                assert_int_equal(nb_last_error_code(), NB_ERR_MEMORY);
        }
        assert_int_equal(rc, 0);
        assert_true(k > 1); /* some budget was too small */
    }
    nb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curves_svg),     cmocka_unit_test(test_curves_png),
        cmocka_unit_test(test_curves_threads), cmocka_unit_test(test_fit_plot),
        cmocka_unit_test(test_model_picture),  cmocka_unit_test(test_step_picture),
        cmocka_unit_test(test_out_of_memory),  cmocka_unit_test(test_no_leaks),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
