/* `nabla train`: trains an MLP or the Keras MNIST convnet on
 * (Fashion-)MNIST with the Keras-style API, prints the summary, progress
 * and test accuracy (Keras's evaluate line, then its own), and writes a checkpoint, a picture of one training
 * step's graph, one of the layers and (--plot) the training curves,
 * printing each file's full path. The defaults are the classic Keras
 * example: Dense 64 relu -> Dense 32 relu -> Dense 10 softmax, Adam,
 * categorical cross-entropy, 10 epochs of batch 32; --model cnn is examples/fashion_cnn.c's convnet, 15
 * epochs of batch 128. With --distributed, under mpirun, the ranks train
 * the model data-parallel (docs/distributed.md) and rank 0 reports. */
#define _XOPEN_SOURCE 700 /* realpath */

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nabla/nabla.h"

#include "cli.h"

typedef struct {
    const char *data, *out, *optimizer;
    bool cnn, mlp_options;  /* --model cnn; --hidden or --activation given */
    bool epochs_given, batch_given, distributed, plot;
    int64_t hidden[16];
    int nhidden;
    nb_activation activation;
    double lr;
    int epochs, batch, threads;
    uint64_t seed;
    int64_t limit;
} train_args;

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: nabla train [options]\n"
            "  --data DIR        IDX files (default /usr/share/datasets/fashion-mnist)\n"
            "  --model M         mlp (default) or cnn (the Keras MNIST convnet)\n"
            "  --hidden LIST     mlp: hidden layer sizes, e.g. 64,32 (default) or 100\n"
            "  --activation A    mlp: hidden activation: relu (default), tanh, gelu, ...\n"
            "  --optimizer O     adam (default), adamw, sgd, rmsprop, adagrad\n"
            "  --lr X            learning rate (default: the optimizer's Keras default)\n"
            "  --epochs N        default 10 (cnn: 15)\n"
            "  --batch-size N    default 32 (cnn: 128)\n"
            "  --seed N          initialisation and shuffling (default 42)\n"
            "  --limit N         train on the first N examples only\n"
            "  --threads N       threads for the large matrix products (default 1: reproducible)\n"
            "  --distributed     data-parallel over MPI: mpirun -np N nabla train --distributed\n"
            "  --plot            also draw the training curves: curves.png (redrawn after every\n"
            "                    epoch) and curves.svg, with PLplot\n"
            "  --out DIR         where to write model.safetensors, step.dot, step.svg, model.svg\n"
            "                    (the layers) and the curves (default out)\n");
}

static int parse_hidden(const char *s, train_args *a)
{
    a->nhidden = 0;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno == ERANGE || v < 1 || v > INT32_MAX || a->nhidden == 16)
            return -1;
        a->hidden[a->nhidden++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return a->nhidden ? 0 : -1;
}

static int parse_args(int argc, char **argv, train_args *a)
{
    *a = (train_args){.data = "/usr/share/datasets/fashion-mnist", .out = "out",
                      .optimizer = "adam", .hidden = {64, 32}, .nhidden = 2,
                      .activation = NB_RELU, .epochs = 10, .batch = 32, .threads = 1,
                      .seed = 42};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(k, "--distributed")) {
            a->distributed = true;
            continue;
        }
        if (!strcmp(k, "--plot")) {
            a->plot = true;
            continue;
        }
        if (!strcmp(k, "-h") || !strcmp(k, "--help")) {
            train_usage(stdout);
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "nabla train: %s needs a value\n", k);
            return -1;
        }
        i++;
        char *end = NULL;
        int64_t n = 0;
        /* Whole numbers are parsed in full and range-checked: --epochs
         * 4294967297 is refused, not truncated to 1. */
        struct {
            const char *name;
            int64_t lo, hi;
        } const ints[] = {{"--epochs", 1, INT32_MAX}, {"--batch-size", 1, INT32_MAX},
                          {"--threads", 1, NB_MAX_THREADS}, {"--limit", 0, INT64_MAX}};
        int which = -1;
        for (int j = 0; j < 4; j++)
            if (!strcmp(k, ints[j].name))
                which = j;
        if (which >= 0) {
            if (!cli_parse_i64(v, ints[which].lo, ints[which].hi, &n)) {
                fprintf(stderr, "nabla train: %s wants a whole number in [%lld, %lld], got '%s'\n",
                        k, (long long)ints[which].lo, (long long)ints[which].hi, v);
                return -1;
            }
            if (which == 0)
                a->epochs = (int)n, a->epochs_given = true;
            else if (which == 1)
                a->batch = (int)n, a->batch_given = true;
            else if (which == 2)
                a->threads = (int)n;
            else
                a->limit = n;
            continue;
        }
        if (!strcmp(k, "--seed")) {
            if (!cli_parse_u64(v, 10, &a->seed)) {
                fprintf(stderr, "nabla train: --seed wants a whole number in [0, 2^64), got '%s'\n",
                        v);
                return -1;
            }
            continue;
        }
        if (!strcmp(k, "--model")) {
            if (strcmp(v, "mlp") && strcmp(v, "cnn")) {
                fprintf(stderr, "nabla train: --model is mlp or cnn, got '%s'\n", v);
                return -1;
            }
            a->cnn = !strcmp(v, "cnn");
            continue;
        }
        if (!strcmp(k, "--data"))
            a->data = v;
        else if (!strcmp(k, "--out"))
            a->out = v;
        else if (!strcmp(k, "--optimizer"))
            a->optimizer = v;
        else if (!strcmp(k, "--hidden")) {
            if (parse_hidden(v, a)) {
                fprintf(stderr, "nabla train: --hidden wants sizes like 64,32, got '%s'\n", v);
                return -1;
            }
            a->mlp_options = true;
            continue;
        } else if (!strcmp(k, "--activation")) {
            int act = nb_activation_from_name(v);
            if (act < 0) {
                fprintf(stderr, "nabla train: unknown activation '%s'\n", v);
                return -1;
            }
            a->activation = (nb_activation)act;
            a->mlp_options = true;
            continue;
        } else if (!strcmp(k, "--lr"))
            a->lr = strtod(v, &end);
        else {
            fprintf(stderr, "nabla train: unknown option %s (see nabla train --help)\n", k);
            return -1;
        }
        if (end && (*end || end == v)) {
            fprintf(stderr, "nabla train: %s wants a number, got '%s'\n", k, v);
            return -1;
        }
    }
    if (a->cnn && a->mlp_options) {
        fprintf(stderr, "nabla train: --hidden and --activation are for --model mlp\n");
        return -1;
    }
    if (a->cnn) { /* the Keras convnet recipe's defaults */
        a->epochs = a->epochs_given ? a->epochs : 15;
        a->batch = a->batch_given ? a->batch : 128;
    }
    if (a->epochs < 1 || a->batch < 1 || a->threads < 1 || a->limit < 0) {
        fprintf(stderr, "nabla train: epochs, batch size and threads must be positive\n");
        return -1;
    }
    if (!(a->lr >= 0) || !isfinite(a->lr)) {
        fprintf(stderr, "nabla train: --lr must be positive, got %g\n", a->lr);
        return -1;
    }
    return 0;
}

static nb_optimizer *make_optimizer(const char *name, double lr)
{
    if (!strcmp(name, "adam"))
        return nb_adam(.lr = lr);
    if (!strcmp(name, "adamw"))
        return nb_adamw(.lr = lr);
    if (!strcmp(name, "sgd"))
        return nb_sgd(.lr = lr);
    if (!strcmp(name, "rmsprop"))
        return nb_rmsprop(.lr = lr);
    if (!strcmp(name, "adagrad"))
        return nb_adagrad(.lr = lr);
    fprintf(stderr, "nabla train: unknown optimizer '%s'\n", name);
    return NULL;
}

/* The first n rows of t as a new tensor (t is freed), or t itself. t is a
 * heap tensor from nb_load_mnist, so contiguous: nb_data is its whole
 * buffer, row-major, and its first n rows are the first bytes. */
static nb_tensor *first_rows(nb_tensor *t, int64_t n)
{
    if (!t || n <= 0 || n >= nb_dim(t, 0))
        return t;
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, nb_shape(t), sizeof(int64_t) * (size_t)nb_ndim(t));
    shape[0] = n;
    nb_tensor *c = nb_from_array(nb_dtype_of(t), nb_ndim(t), shape, nb_data(t));
    nb_free(t);
    return c;
}

/* The files written, with what each is, printed at the end. */
typedef struct {
    int n;
    const char *what[8];
    char path[8][PATH_MAX + 32];
} written;

/* dir/name into w's next slot; its path. */
static const char *file_in(written *w, const char *dir, const char *name, const char *what)
{
    w->what[w->n] = what;
    snprintf(w->path[w->n], sizeof w->path[0], "%s/%s", dir, name);
    return w->path[w->n++];
}

/* Writes a picture of one training step (forward, loss) of the model, on
 * the first 32 images (u8 x, scaled to [0, 1] as nb_fit does). */
static int write_step_picture(nb_model *m, nb_tensor *x, nb_tensor *y, const char *dir,
                              written *w)
{
    nb_graph *g = nb_graph_new();
    nb_tensor *first = first_rows(nb_clone(x), 32);
    nb_tensor *xs = first ? nb_scale_images(first) : NULL;
    nb_free(first);
    nb_tensor *xb = nb_set_name(xs, "x");
    nb_tensor *yb = nb_set_name(nb_slice(y, 0, 0, 32, 1), "y");
    nb_tensor *loss = nb_model_loss(m, nb_model_forward(m, xb), yb);
    nb_dot_opts opts = {.title = "one training step (a batch of 32)"};
    int rc = loss ? 0 : -1;
    if (rc == 0)
        rc = nb_dot_write(loss, file_in(w, dir, "step.dot", "one step's graph (DOT)"), &opts);
    if (rc == 0 && nb_dot_can_render())
        rc = nb_dot_render(loss, file_in(w, dir, "step.svg", "one step's graph (SVG)"), &opts);
    nb_graph_free(g);
    nb_free(xs);
    return rc;
}

/* The last error, after "nabla train: " (and the rank, of several). */
static void report(void)
{
    if (nb_dist_size() > 1)
        fprintf(stderr, "nabla train: rank %d: %s\n", nb_dist_rank(), nb_last_error());
    else
        fprintf(stderr, "nabla train: %s\n", nb_last_error());
}

static int train(train_args a)
{
    bool lead = nb_dist_rank() == 0; /* the rank that prints and writes */
    nb_set_num_threads(a.threads); /* in range: parse_args checked */
    char out[PATH_MAX];
    if ((mkdir(a.out, 0777) != 0 && errno != EEXIST) || !realpath(a.out, out)) {
        fprintf(stderr, "nabla train: cannot create %s: %s\n", a.out, strerror(errno));
        return 1;
    }
    if (a.plot && !nb_plot_can_render()) {
        fprintf(stderr, "nabla train: --plot needs PLplot, and this nabla was built without it "
                        "(libplplot-dev and plplot-driver-cairo, meson -Dplplot=enabled)\n");
        return 1;
    }
    written w = {0};
    char curves_png[sizeof w.path[0]]; /* redrawn by fit after every epoch */
    snprintf(curves_png, sizeof curves_png, "%s/curves.png", out);
    nb_optimizer *opt = make_optimizer(a.optimizer, a.lr);
    if (!opt) {
        if (nb_last_error())
            report();
        return 2;
    }
    nb_tensor *xtr, *ytr, *xte, *yte;
    if (nb_load_mnist(a.data, &xtr, &ytr, &xte, &yte)) {
        report();
        nb_optimizer_free(opt);
        return 1;
    }
    xtr = first_rows(xtr, a.limit);
    ytr = first_rows(ytr, a.limit);

    nb_model *m;
    if (a.cnn) { /* flat byte rows in; the first layer is Keras's expand_dims */
        m = nb_sequential(nb_input(784), nb_reshape_layer(28, 28, 1),
                          nb_conv2d(32, {3, 3}, .activation = NB_RELU), nb_max_pooling2d({2, 2}),
                          nb_conv2d(64, {3, 3}, .activation = NB_RELU), nb_max_pooling2d({2, 2}),
                          nb_flatten(), nb_dropout(0.5), nb_dense(10, .activation = NB_SOFTMAX));
    } else {
        m = nb_sequential(nb_dense(a.hidden[0], .activation = a.activation, .input = 784));
        for (int i = 1; m && i < a.nhidden; i++)
            nb_model_add(m, nb_dense(a.hidden[i], .activation = a.activation));
        if (m)
            nb_model_add(m, nb_dense(10, .activation = NB_SOFTMAX));
    }
    int rc = 1;
    const nb_history *h = NULL;
    int built = m ? nb_build(m, 784, a.seed) : -1;
    if (built == 0) {
        built = nb_compile(m, opt, NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY);
        opt = NULL; /* the model owns it now, also when compile failed */
    }
    if (built == 0 && a.distributed)
        built = nb_model_distribute(m);
    if (built) {
        if (nb_last_error())
            report();
        goto done;
    }
    if (lead) {
        nb_summary(m, stdout);
        printf("training on %lld examples, testing on %lld (%d thread%s, %s GEMM", (long long)nb_dim(xtr, 0),
               (long long)nb_dim(xte, 0), nb_num_threads(), nb_num_threads() == 1 ? "" : "s",
               nb_gemm_backend());
        if (a.distributed)
            printf("; %d rank%s, each taking its shard of every batch of %d", nb_dist_size(),
                   nb_dist_size() == 1 ? "" : "s", a.batch);
        printf(")\n");
    }
    /* The images stay bytes; fit converts each batch to [0, 1]. */
    nb_dataset train = {xtr, ytr, .scale = 1 / 255.0}, test = {xte, yte, .scale = 1 / 255.0};
    h = nb_fit(m, train, .epochs = a.epochs, .batch_size = a.batch, .validation = test,
               .seed = a.seed, .verbose = NB_VERBOSE_AUTO,
               .plot = a.plot ? curves_png : NULL); /* rank 0 draws */
    if (!h) {
        report();
        goto done;
    }
    double secs = 0;
    for (int e = 0; e < h->epochs; e++)
        secs += h->seconds[e];
    int bad = nb_save_weights(m, file_in(&w, out, "model.safetensors", "the weights"));
    if (!bad && lead) {
        bad = write_step_picture(m, xte, yte, out, &w);
        if (!bad && nb_dot_can_render())
            bad = nb_plot_model(m, file_in(&w, out, "model.svg", "the layers (SVG)"));
        if (!bad && a.plot) {
            file_in(&w, out, "curves.png", "training curves (PNG)"); /* fit drew it */
            bad = nb_plot_history(h, file_in(&w, out, "curves.svg", "training curves (SVG)"));
        }
    }
    if (bad) {
        report();
        goto done;
    }
    /* Keras's evaluate line (a bar on a terminal), as a Keras script ends;
     * every rank takes part, rank 0 prints. */
    double test_loss, test_acc;
    if (nb_evaluate(m, test, .batch_size = a.batch, .verbose = NB_VERBOSE_AUTO,
                    .loss = &test_loss, .metrics = &test_acc, .nmetrics = 1)) {
        report();
        goto done;
    }
    if (lead) {
        printf("test accuracy: %.4f  test loss: %.4f  (%.2f s per epoch)\n", test_acc, test_loss,
               secs / h->epochs);
        for (int i = 0; i < w.n; i++)
            printf("wrote %-24s %s\n", w.what[i], w.path[i]);
    }
    rc = 0;
done:
    nb_optimizer_free(opt);
    nb_model_free(m);
    nb_free(xtr);
    nb_free(ytr);
    nb_free(xte);
    nb_free(yte);
    return rc;
}

int cli_train(int argc, char **argv)
{
    train_args a;
    if (parse_args(argc, argv, &a))
        return 2;
    if (a.distributed && nb_dist_init(NULL, NULL)) {
        report();
        return 1;
    }
    int rc = train(a);
    if (a.distributed && nb_dist_finalize()) {
        fprintf(stderr, "nabla train: %s\n", nb_last_error());
        rc = 1;
    }
    return rc;
}
