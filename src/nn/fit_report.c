/* What nb_fit, nb_evaluate and nb_predict print, and what nb_fit keeps:
 * Keras 3's progress bar and lines (the layout of keras.utils.Progbar,
 * checked against its output in tests/test_keras_format.c), the history,
 * and the logs fit's callbacks get. */
#include "nn_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* Text with its width in columns (the bar's "━" is one column, three
 * bytes), Keras's ANSI codes written only when colour is on. */
typedef struct {
    char b[1024];
    size_t n;
    int cols;
    bool colour;
} text;

static void put(text *t, const char *code, const char *fmt, ...)
{
    va_list ap;
    char s[512];
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    for (const char *c = s; *c; c++)
        t->cols += ((unsigned char)*c & 0xC0) != 0x80; /* UTF-8 lead bytes */
    bool esc = t->colour && code;
    int k = snprintf(t->b + t->n, sizeof t->b - t->n, esc ? "\x1b[%sm%s\x1b[0m" : "%.0s%s",
                     esc ? code : "", s);
    if (k > 0)
        t->n = t->n + (size_t)k < sizeof t->b ? t->n + (size_t)k : sizeof t->b - 1;
}

/* " - accuracy: 0.9000 - loss: 0.1000": the loss and the metrics v in
 * Keras 3's order (by name), each name after prefix ("val_"), as %.4f, or
 * %.4e for a value at most 1e-3 (the progress bar compares |x|, the epoch
 * line x itself, as Keras's Progbar does). */
static void values(text *t, const nb_model *m, const char *prefix, double loss, const double *v,
                   bool bar)
{
    if (!m) /* predict's: no values */
        return;
    for (int i = 0; i <= m->metrics.n; i++) {
        int k = m->metrics.order[i];
        double x = k < 0 ? loss : v[k];
        put(t, NULL, (bar ? fabs(x) : x) > 1e-3 ? " - %s%s: %.4f" : " - %s%s: %.4e", prefix,
            k < 0 ? "loss" : m->metrics.m[k].name, x);
    }
}

/* Keras's Progbar._format_time: " 6ms/step", whole s, ms or us. */
static void per_step(text *t, double s)
{
    if (s >= 1 || s == 0)
        put(t, NULL, " %.0fs/step", s);
    else if (s >= 1e-3)
        put(t, NULL, " %.0fms/step", s * 1e3);
    else
        put(t, NULL, " %.0fus/step", s * 1e6);
}

/* Digits of the step count (Keras: int(log10(target)) + 1). */
static int digits(int64_t n)
{
    char b[24];
    return snprintf(b, sizeof b, "%lld", (long long)n);
}

int nn_verbose(const char *fn, const nb_model *m, int *verbose, FILE *out, bool *tty)
{
    if (*verbose < NB_VERBOSE_AUTO || *verbose > 2)
        return nb_set_error("%s: verbose is %d; it must be 0 (silent), 1 (a progress bar), 2 (a "
                            "line per %s) or NB_VERBOSE_AUTO (-1)", fn, *verbose,
                            strcmp(fn, "nb_fit") == 0 ? "epoch" : "call, at the end");
    *tty = isatty(fileno(out));
    /* Launchers give ranks a pseudo-terminal whatever their own output
     * is: rank 0 of a distributed model prints lines, no bar. */
    if (nn_distributed(m))
        *verbose = nb_dist_rank() != 0 ? 0 : *verbose ? 2 : 0;
    if (*verbose == NB_VERBOSE_AUTO) /* Keras's "auto" */
        *verbose = *tty ? 1 : 2;
    return 0;
}

void nn_epoch_line(FILE *f, const nb_model *m, int64_t steps, double secs, double loss,
                   const double *v, const double *val_loss, const double *vv)
{
    text t = {.colour = false};
    /* Keras times the epoch with its validation, per step over all steps. */
    put(&t, NULL, "%*lld/%lld - %.0fs -", digits(steps), (long long)steps, (long long)steps, secs);
    per_step(&t, secs / (double)steps);
    values(&t, m, "", loss, v, false);
    if (val_loss)
        values(&t, m, "val_", *val_loss, vv, false);
    fprintf(f, "%s\n", t.b);
    fflush(f);
}

void nn_bar_start(nn_bar *b, FILE *f, bool colour, int64_t target, double now)
{
    *b = (nn_bar){.f = f, .colour = colour, .target = target, .start = now, .after_first = -1,
                  .last = -1e300};
}

void nn_bar_update(nn_bar *b, const nb_model *m, int64_t current, double now, double loss,
                   const double *v, const double *val_loss, const double *vv)
{
    bool final = current >= b->target;
    /* Keras's estimate leaves out the first step (compiling, warming up). */
    double unit = b->after_first >= 0 && current > 1
                      ? (now - b->after_first) / (double)(current - 1)
                      : (now - b->start) / (double)current;
    if (current == 1)
        b->after_first = now;
    if (!final && now - b->last < 0.05) /* Keras's interval */
        return;
    text t = {.colour = b->colour};
    int fill = (int)(20 * current / b->target);
    put(&t, "1", "%*lld/%lld", digits(b->target), (long long)current, (long long)b->target);
    put(&t, NULL, " ");
    char done[20 * 3 + 1] = "", rest[20 * 3 + 1] = "";
    for (int i = 0; i < 20; i++)
        strcat(i < fill ? done : rest, "\xe2\x94\x81"); /* U+2501 ━ */
    if (fill > 0)
        put(&t, "32", "%s", done);
    put(&t, "37", "%s", rest);
    put(&t, NULL, " ");
    if (final) {
        put(&t, "1", "%.0fs", now - b->start);
    } else {
        double eta = unit * (double)(b->target - current);
        long long s = (long long)eta;
        if (eta > 3600)
            put(&t, "1", "%lld:%02lld:%02lld", s / 3600, s % 3600 / 60, s % 60);
        else if (eta > 60)
            put(&t, "1", "%lld:%02lld", s / 60, s % 60);
        else
            put(&t, "1", "%llds", s);
    }
    per_step(&t, unit);
    values(&t, m, "", loss, v, true);
    if (val_loss)
        values(&t, m, "val_", *val_loss, vv, true);
    for (int i = 0; i < b->prev; i++)
        fputc('\b', b->f);
    fprintf(b->f, "\r%s%*s%s", t.b, b->prev > t.cols ? b->prev - t.cols : 0, "",
            final ? "\n" : "");
    fflush(b->f);
    b->prev = t.cols;
    b->last = now;
}

int nn_history_alloc(nb_model *m, int epochs, int first)
{
    nb_mem_free(m->hist.loss);
    memset(&m->hist, 0, sizeof m->hist);
    m->hist.initial_epoch = first;
    /* One block: the arrays of doubles (loss, val_loss, seconds, then each
     * metric's and its validation's; one NAN pair without metrics), the
     * counts of skipped batches, the metrics' names. A resumed fit with no
     * epoch left still gets a block. */
    int nm = m->metrics.n, na = 3 + 2 * (nm ? nm : 1);
    size_t nums = (size_t)(epochs ? epochs : 1) * ((size_t)na * sizeof(double) + sizeof(int64_t));
    double *v = nb_mem_alloc(nums + (size_t)nm * NN_NAME_LEN);
    if (!v)
        return -1;
    size_t e = (size_t)epochs;
    for (size_t i = 0; i < e * (size_t)na; i++)
        v[i] = NAN;
    m->hist.loss = v;
    m->hist.val_loss = v + e;
    m->hist.seconds = v + 2 * e;
    for (int i = 0; i < (nm ? nm : 1); i++) {
        m->hist.metrics[i] = v + (size_t)(3 + 2 * i) * e;
        m->hist.val_metrics[i] = v + (size_t)(4 + 2 * i) * e;
    }
    m->hist.metric = m->hist.metrics[0];
    m->hist.val_metric = m->hist.val_metrics[0];
    m->hist.skipped = (int64_t *)(v + (size_t)na * e);
    memset(m->hist.skipped, 0, (size_t)epochs * sizeof(int64_t));
    char *names = (char *)v + nums;
    for (int i = 0; i < nm; i++) {
        memcpy(names + i * NN_NAME_LEN, m->metrics.m[i].name, NN_NAME_LEN);
        m->hist.metric_names[i] = names + i * NN_NAME_LEN;
    }
    if (!nm) /* the NAN pair is not a metric */
        m->hist.metrics[0] = m->hist.val_metrics[0] = NULL;
    m->hist.nmetrics = nm;
    return 0;
}

/* The logs after batch (or -1: the epoch) of epoch e: loss, metrics v and
 * the validation's (NULL: none yet). */
nb_logs nn_make_logs(const nb_model *m, int e, int64_t batch, double loss, const double *v,
                         double val_loss, const double *vv)
{
    nb_logs lg = {.epoch = e, .batch = batch, .loss = loss, .metric = NAN, .val_loss = val_loss,
                  .val_metric = NAN, .nmetrics = m->metrics.n,
                  .metric_names = m->hist.metric_names};
    for (int i = 0; i < m->metrics.n; i++) {
        lg.metrics[i] = v[i];
        lg.val_metrics[i] = vv ? vv[i] : NAN;
    }
    if (m->metrics.n) {
        lg.metric = lg.metrics[0];
        lg.val_metric = lg.val_metrics[0];
    }
    return lg;
}

