/* What nb_fit prints and keeps: Keras's progress bar and epoch lines, the
 * history, and the logs its callbacks get. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* " - accuracy: 0.9000 - loss: 0.1000": the loss and the metrics v, in
 * Keras 3's order (by name) and format (%.4f, or %.4e within 1e-3 of 0),
 * each name after prefix ("val_"). */
void nn_print_values(FILE *f, const nb_model *m, const char *prefix, double loss,
                         const double *v)
{
    for (int i = 0; i <= m->metrics.n; i++) {
        int k = m->metrics.order[i];
        double x = k < 0 ? loss : v[k];
        fprintf(f, fabs(x) > 1e-3 ? " - %s%s: %.4f" : " - %s%s: %.4e", prefix,
                k < 0 ? "loss" : m->metrics.m[k].name, x);
    }
}

void nn_progress(FILE *f, const nb_model *m, int64_t done, int64_t total, double elapsed,
                     double loss, const double *metrics)
{
    int width = 30, fill = (int)(width * done / total);
    double eta = done ? elapsed * (double)(total - done) / (double)done : 0;
    fprintf(f, "\r%6lld/%lld [", (long long)done, (long long)total);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '=' : i == fill ? '>' : '.', f);
    fprintf(f, "] - ETA: %3.0fs", eta);
    nn_print_values(f, m, "", loss, metrics);
    fflush(f);
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

