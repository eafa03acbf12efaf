/* Training, evaluation and prediction loops. Each step gathers a batch into
 * buffers made once per call, runs forward, loss, backward and the
 * optimizer in one graph, and resets it: no heap allocation per step.
 *
 * The data may be any tensors or views of the right shape and dtype: rows
 * are copied from contiguous data directly, and a dataset tensor that is a
 * strided view is packed once per call (nb_clone) before the first step.
 * u8 x (images as the files hold them) is converted as its rows are
 * gathered, straight into the batch buffer of the model's dtype: the data
 * set stays bytes, and only a batch is ever in floats. Each byte b becomes
 * (T)((double)b * scale); for scale 1/255.0 and f32 that is the float
 * nearest to b/255 for every b (checked for all 256 in tests/test_u8.c),
 * which is what nb_scale_images and the f32 loader before it gave, so
 * training on u8 data is bit-identical to training on those floats. */
#define _POSIX_C_SOURCE 200809L

#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The factor u8 x is converted with: scale, 0 meaning 1. */
static double x_scale(nb_dataset d) { return d.scale != 0 ? d.scale : 1.0; }

/* A heap tensor of dtype shaped like src with `rows` rows, zero-filled or
 * unfilled (predict's, whose rows are written before a slice reads them);
 * errors name fn. */
static nb_tensor *rows_like(const char *fn, const nb_tensor *src, int64_t rows, nb_dtype dtype,
                            bool zeroed)
{
    int64_t shape[NB_MAX_DIMS];
    memcpy(shape, nb_shape(src), (size_t)nb_ndim(src) * sizeof(int64_t));
    shape[0] = rows;
    return (zeroed ? nn_zeros : nn_empty)(fn, dtype, nb_ndim(src), shape);
}

/* The data as contiguous tensors: d itself, or packed copies of the parts
 * that are strided views (freed with packed_free). */
typedef struct {
    nb_dataset d;
    nb_tensor *own[2];
} packed;

static int pack(packed *p, nb_dataset d, const char *fn)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    nb_tensor **parts[2] = {&p->d.x, &p->d.y};
    for (int i = 0; i < 2; i++) {
        if (nb_is_contiguous(*parts[i]))
            continue;
        char b[NB_SHAPE_STR_LEN];
        nb_shape_str(*parts[i], b);
        if (!(p->own[i] = *parts[i] = nb_clone(*parts[i])))
            return nb_set_error_code(NB_ERR_MEMORY, "%s: out of memory packing a strided %s %s "
                                     "into a contiguous "
                                "copy", fn, i ? "y" : "x", b);
    }
    return 0;
}

static void packed_free(packed *p)
{
    nb_free(p->own[0]);
    nb_free(p->own[1]);
}

/* x and scale of d against the model; -1 with an error naming fn. */
static int check_x(const nb_model *m, nb_dataset d, const char *fn, const char *what)
{
    if (!d.x)
        return nn_has_error() ? -1 : nb_set_error("%s: %s x is NULL", fn, what);
    if (nb_check_tensor(fn, "x", d.x))
        return -1;
    nb_dtype dt = nb_dtype_of(d.x);
    bool u8 = dt == NB_U8;
    if (nn_check_input(m, d.x, what, fn))
        return -1;
    if (!isfinite(d.scale))
        return nb_set_error("%s: %s scale is %g; it must be finite (0: 1)", fn, what, d.scale);
    if (!u8 && d.scale != 0 && d.scale != 1)
        return nb_set_error("%s: %s scale is %g, but x is %s: scale converts u8 x only (leave "
                            "it 0 for float data, or scale that with nb_mul)", fn, what, d.scale,
                            nb_dtype_name(dt));
    return 0;
}

static int check_data(const nb_model *m, nb_dataset d, const char *fn, const char *what)
{
    if (check_x(m, d, fn, what))
        return -1;
    if (nb_dim(d.x, 0) < 1)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: %s data has no rows", fn, what);
    return nn_check_targets(m, d.y, nb_dim(d.x, 0), fn);
}

/* Batch buffers: a full batch and the smaller last one. */
typedef struct {
    nb_tensor *x[2], *y[2];
} batches;

/* This rank's rows of a batch of k: all of them but in a distributed
 * model, whose ranks each take their shard (from *off). */
static int64_t shard(const nb_model *m, int64_t k, int64_t *off)
{
    int64_t start = 0, count = k;
    if (nn_distributed(m))
        nb_dist_shard(k, &start, &count);
    if (off)
        *off = start;
    return count;
}

/* Buffers for batches of bs of n rows of d: x[0] for a full batch, x[1]
 * for the smaller last one (NULL where there is none); with shards, for
 * this rank's shards of those batches. */
static int batches_make(batches *b, const nb_model *m, nb_dataset d, int64_t n, int64_t bs,
                        const char *fn, bool shards)
{
    int64_t full = n < bs ? n : bs, rest = n % bs && n > bs ? n % bs : 0;
    if (shards) {
        full = shard(m, full, NULL);
        rest = shard(m, rest, NULL);
    }
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 2; i++) {
        int64_t rows = i ? rest : full;
        if (rows && (!(b->x[i] = rows_like(fn, d.x, rows, m->dtype, true)) ||
                     !(b->y[i] = rows_like(fn, d.y, rows, m->dtype, true))))
            return -1;
    }
    return 0;
}

static void batches_free(batches *b)
{
    for (int i = 0; i < 2; i++) {
        nb_free(b->x[i]);
        nb_free(b->y[i]);
    }
}

/* Evaluates contiguous data in batches with recording off: the means of
 * the loss and of each metric (into metrics[0 .. nmetrics)) over the n rows
 * idx[0..n) of d. A bar (not NULL: one process) is drawn after each batch
 * but the last, whose drawing the caller makes with the means. */
static int eval_sums(nb_model *m, nb_dataset d, int64_t n, int64_t bs, int64_t *idx, batches *b,
                     double *loss, double *metrics, nn_bar *bar)
{
    /* sums[0] the loss's, sums[1 + i] metric i's: each rank's over its
     * shard of the rows, then summed over the ranks. */
    double sums[1 + NB_MAX_METRICS] = {0}, mv[NB_MAX_METRICS];
    int nm = m->metrics.n;
    int64_t off, rows = shard(m, n, &off);
    bool prev = nb_set_grad_enabled(false);
    nb_graph *g = nb_graph_new();
    int rc = g ? 0 : -1;
    idx += off;
    for (int64_t start = 0; rc == 0 && start < rows; start += bs) {
        int64_t k = rows - start < bs ? rows - start : bs;
        int w = k == bs || !b->x[1] ? 0 : 1;
        nn_gather_rows(b->x[w], d.x, idx + start, 0, k, x_scale(d));
        nn_gather_rows(b->y[w], d.y, idx + start, 0, k, 1);
        nb_tensor *out = nn_forward(m, b->x[w], false);
        nb_tensor *l = nn_model_loss(m, out, b->y[w]);
        if (!l || nn_batch_metrics(m, out, b->y[w], mv)) {
            rc = -1;
            break;
        }
        sums[0] += nb_item(l) * (double)k;
        for (int i = 0; i < nm; i++)
            sums[1 + i] += mv[i] * (double)k;
        nb_graph_reset(g);
        if (bar && start + k < rows) {
            double seen = (double)(start + k);
            for (int i = 0; i < nm; i++)
                mv[i] = sums[1 + i] / seen;
            nn_bar_update(bar, m, start / bs + 1, now(), sums[0] / seen, mv, NULL, NULL);
        }
    }
    nb_graph_free(g);
    nb_set_grad_enabled(prev);
    /* A rank that failed still takes part, its error kept (a collective
     * that succeeds sets none); the others learn of it from the count. */
    if (nn_distributed(m)) {
        sums[1 + nm] = rc ? 1 : 0;
        if (nb_dist_allreduce(sums, 2 + nm) || rc)
            return -1;
        if (sums[1 + nm] > 0)
            return nb_set_error_code(NB_ERR_DIST, "another rank failed to evaluate its rows");
    }
    *loss = sums[0] / (double)n;
    for (int i = 0; i < nm; i++)
        metrics[i] = sums[1 + i] / (double)n;
    return rc;
}

static int64_t *identity_index(int64_t n)
{
    int64_t *idx = nb_mem_alloc((size_t)n * sizeof *idx);
    if (idx)
        for (int64_t i = 0; i < n; i++)
            idx[i] = i;
    return idx;
}

/* The end of an evaluate's or a predict's report: the bar's last drawing
 * (verbose 1) or Keras's line (2), over steps batches from t0; m NULL: no
 * values (predict's). */
static void report_end(int verbose, nn_bar *bar, FILE *out, const nb_model *m, int64_t steps,
                       double t0, double loss, const double *v)
{
    if (verbose == 1)
        nn_bar_update(bar, m, steps, now(), loss, v, NULL, NULL);
    else if (verbose == 2)
        nn_epoch_line(out, m, steps, now() - t0, loss, v, NULL, NULL);
}

int nb_evaluate_(nb_model *m, nb_evaluate_opts o)
{
    const char *fn = "nb_evaluate";
    if (nn_bad_model(m, fn))
        return -1;
    if (!m->compiled)
        return nb_set_error_code(NB_ERR_STATE, "nb_evaluate: the model is not compiled (call "
                                 "nb_compile)");
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_evaluate: the model is not built");
    if (o.batch_size < 0)
        return nb_set_error("nb_evaluate: batch_size must be positive, got %d", o.batch_size);
    /* A metrics array without its length (the old signature's) is refused
     * rather than written to any guessed length. */
    if (o.nmetrics < 0 || (o.metrics && o.nmetrics < 1) || (!o.metrics && o.nmetrics))
        return nb_set_error("nb_evaluate: .metrics is %s with .nmetrics %d: give an array and "
                            "how many entries it has, at least 1 (the model has %d metrics)",
                            o.metrics ? "an array" : "NULL", o.nmetrics, m->metrics.n);
    FILE *out = o.out ? o.out : stdout;
    bool tty;
    if (nn_verbose(fn, m, &o.verbose, out, &tty) || check_data(m, o.data, fn, "the"))
        return -1;
    int64_t bs = o.batch_size ? o.batch_size : 32, n = nb_dim(o.data.x, 0);
    batches b;
    packed pd;
    memset(&b, 0, sizeof b);
    int rc = pack(&pd, o.data, fn);
    int64_t *idx = rc == 0 ? identity_index(n) : NULL;
    if (rc == 0 && (!idx || batches_make(&b, m, pd.d, shard(m, n, NULL), bs, fn, false)))
        rc = -1;
    double l = NAN, mt[NB_MAX_METRICS];
    for (int i = 0; i < NB_MAX_METRICS; i++)
        mt[i] = NAN;
    nn_bar bar;
    double t0 = now();
    nn_bar_start(&bar, out, tty, (n + bs - 1) / bs, t0);
    if (rc == 0)
        rc = eval_sums(m, pd.d, n, bs, idx, &b, &l, mt, o.verbose == 1 ? &bar : NULL);
    if (rc == 0)
        report_end(o.verbose, &bar, out, m, (n + bs - 1) / bs, t0, l, mt);
    batches_free(&b);
    packed_free(&pd);
    nb_mem_free(idx);
    if (o.loss)
        *o.loss = rc ? NAN : l;
    for (int i = 0; i < o.nmetrics; i++)
        o.metrics[i] = rc || i >= m->metrics.n ? NAN : mt[i];
    return rc ? nn_blame(fn) : 0;
}

nb_tensor *nb_predict_(nb_model *m, nb_predict_opts o)
{
    const char *fn = "nb_predict";
    nb_dataset d = o.data;
    if (nn_bad_model(m, fn))
        return NULL;
    if (!m->built) {
        nb_set_error_code(NB_ERR_STATE, "nb_predict: the model is not built");
        return NULL;
    }
    if (check_x(m, d, fn, "the"))
        return NULL;
    if (o.batch_size < 0) {
        nb_set_error("nb_predict: batch_size must be positive, got %d", o.batch_size);
        return NULL;
    }
    FILE *fo = o.out ? o.out : stdout;
    bool tty;
    if (nn_verbose(fn, m, &o.verbose, fo, &tty))
        return NULL;
    int64_t bs = o.batch_size ? o.batch_size : 32, n = nb_dim(d.x, 0);
    /* A distributed model's ranks each predict their shard of the rows
     * [first, end), then gather all. */
    int64_t first, end = shard(m, n, &first);
    end += first;
    const nb_layer *last = m->layers[m->n - 1];
    int64_t shape[NB_MAX_DIMS], units = 1;
    shape[0] = n;
    for (int i = 0; i < last->out_ndim; i++)
        units *= shape[i + 1] = last->out[i];
    size_t es = nb_dtype_size(m->dtype);
    bool u8 = nb_dtype_of(d.x) == NB_U8;
    /* u8 x: a batch at a time is converted into buf (the last, smaller one
     * into its first rows, seen through a slice). Float x is read in place
     * through slices, whatever its strides. */
    nb_tensor *out = nn_zeros(fn, m->dtype, last->out_ndim + 1, shape);
    nb_tensor *buf = out && u8 ? rows_like(fn, d.x, n < bs ? n : bs, m->dtype, false) : NULL;
    nb_graph *g = out && (buf || !u8) ? nb_graph_new() : NULL;
    if (!g) {
        nb_free(out);
        nb_free(buf);
        nn_blame(fn);
        return NULL;
    }
    bool prev = nb_set_grad_enabled(false);
    char *dst = nb_data(out);
    nn_bar bar;
    double t0 = now();
    nn_bar_start(&bar, fo, tty, (n + bs - 1) / bs, t0);
    for (int64_t start = first; start < end; start += bs) {
        int64_t k = end - start < bs ? end - start : bs;
        nb_tensor *xb = d.x;
        if (u8) {
            nn_gather_rows(buf, d.x, NULL, start, k, x_scale(d));
            xb = buf;
        }
        /* The slice is a view, and the output of the last layer's op is a
         * fresh tensor (nb_contiguous returns it). */
        nb_tensor *x = nb_slice(xb, 0, u8 ? 0 : start, u8 ? k : start + k, 1);
        nb_tensor *y = nb_contiguous(nn_forward(m, x, false));
        if (!y) {
            nn_blame(fn);
            nb_free(out);
            out = NULL;
            break;
        }
        memcpy(dst + (size_t)(start * units) * es, nb_data(y), (size_t)(k * units) * es);
        nb_graph_reset(g);
        if (o.verbose == 1 && start + k < end)
            nn_bar_update(&bar, NULL, (start - first) / bs + 1, now(), NAN, NULL, NULL, NULL);
    }
    if (out)
        nb_bump_version(out);
    if (nn_distributed(m)) { /* every rank gathers, or none: a failed one says so */
        double failed = !out;
        int rc = nb_dist_allreduce(&failed, 1);
        if (rc == 0 && out && failed > 0)
            rc = nb_set_error_code(NB_ERR_DIST, "%s: another rank failed to predict its rows",
                                   fn);
        if (rc == 0 && out && nb_dist_gather_rows(out))
            rc = nn_blame(fn);
        if (rc) {
            nb_free(out);
            out = NULL;
        }
    }
    if (out)
        report_end(o.verbose, &bar, fo, NULL, (n + bs - 1) / bs, t0, NAN, NULL);
    nb_graph_free(g);
    nb_free(buf);
    nb_set_grad_enabled(prev);
    return out;
}

/* "NaN", "inf", "-inf". */
static const char *kind(double v) { return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf"; }

#define KEPT "the weights are those of the last good step (.skip_nonfinite skips such batches)"

/* The error of a failed step, prefixed with where it happened: "nb_fit:
 * epoch 3, batch 17: ...". A refusal of the optimizer (its message ends in
 * "nothing was updated") loses the optimizer's name and says what the
 * weights are. */
static int step_error(int epoch, int64_t batch)
{
    const char *msg = nb_last_error(), *own = "nb_optimizer_step: ", *end = "nothing was updated";
    nb_error_code code = nb_last_error_code();
    char why[480];
    snprintf(why, sizeof why, "%s", msg ? msg : "unknown error");
    char *p = strncmp(why, own, strlen(own)) == 0 ? why + strlen(own) : why;
    size_t n = strlen(p), k = strlen(end);
    bool refused = p != why && n >= k && strcmp(p + n - k, end) == 0;
    if (refused)
        p[n - k] = '\0';
    return nb_set_error_code(code ? code : NB_ERR_INVALID, "nb_fit: epoch %d, batch %lld: %s%s",
                             epoch + 1, (long long)batch + 1, p, refused ? KEPT : "");
}

/* One step on the global batch idx[0..k), in buffer w: 0 taken, 1 skipped
 * (a NaN or an infinity, .skip_nonfinite), 2 the loss is not finite (*lv
 * says how), -1 an error. *lv and mv get the batch's loss and metrics:
 * the global batch's on every rank of a distributed model, each rank
 * taking its shard of the rows. */
static int step(nb_model *m, const nb_fit_opts *o, batches *b, nb_dataset d, const int64_t *idx,
                int64_t k, int w, double *lv, double *mv)
{
    bool dist = nn_distributed(m);
    int nm = m->metrics.n, st = 0;
    int64_t off, kr = shard(m, k, &off);
    nb_tensor *loss = NULL;
    *lv = 0;
    for (int i = 0; i < nm; i++)
        mv[i] = 0;
    if (kr > 0) {
        nn_gather_rows(b->x[w], d.x, idx + off, 0, kr, x_scale(d));
        nn_gather_rows(b->y[w], d.y, idx + off, 0, kr, 1);
        nb_tensor *output = nn_forward(m, b->x[w], true);
        loss = nn_model_loss(m, output, b->y[w]);
        st = loss && nn_batch_metrics(m, output, b->y[w], mv) == 0 ? 0 : -1;
        *lv = loss ? nb_item(loss) : NAN;
    }
    if (dist) {
        /* Every rank takes part, one that failed too (the last sum counts
         * those), and the losses and metrics travel with the gradients. */
        double sums[2 + NB_MAX_METRICS];
        sums[0] = *lv * (double)kr;
        for (int i = 0; i < nm; i++)
            sums[1 + i] = mv[i] * (double)kr;
        sums[1 + nm] = st < 0;
        for (int i = 0; i < m->nparams; i++)
            nb_zero_grad(m->params[i]);
        if (nb_dist_backward(st < 0 ? NULL : loss, .weight = (double)kr / (double)k,
                             .n = m->nparams, .params = m->params, .sums = sums,
                             .nsums = 2 + nm) ||
            st < 0) /* this rank's error is still the one set */
            return -1;
        if (sums[1 + nm] > 0)
            return nb_set_error_code(NB_ERR_DIST, "another rank failed in this step");
        *lv = sums[0] / (double)k;
        for (int i = 0; i < nm; i++)
            mv[i] = sums[1 + i] / (double)k;
    }
    if (st < 0)
        return -1;
    if (!isfinite(*lv)) /* a non-finite loss goes no further */
        return o->skip_nonfinite ? 1 : 2;
    if (!dist) {
        for (int i = 0; i < m->nparams; i++)
            nb_zero_grad(m->params[i]);
        if (nb_backward(loss))
            return -1;
    }
    return nb_optimizer_step(m->opt, m->nparams, m->params, .loss = dist ? NULL : loss,
                             .skip_nonfinite = o->skip_nonfinite);
}

/* The callbacks' on_batch (or on_epoch): 0, with *stop set when one asked
 * to stop; -1 when one failed (its error named as fit's). The ranks of a
 * distributed model agree: all stop, or all fail, when one does. */
static int call_back(nb_model *m, nb_fit_opts o, const nb_logs *lg, bool epoch, bool *stop)
{
    int rc = 0;
    bool any = false;
    for (int c = 0; c < o.ncallbacks && rc == 0; c++) {
        nb_callback_fn f = epoch ? o.callbacks[c].on_epoch : o.callbacks[c].on_batch;
        int r = f ? f(m, lg, o.callbacks[c].ctx) : 0;
        any |= f != NULL;
        if (r < 0) {
            if (!nn_has_error())
                nb_set_error("nb_fit: callback %d failed at epoch %d", c + 1, lg->epoch + 1);
            rc = -1;
        }
        *stop |= r > 0;
    }
    if (!any || !nn_distributed(m))
        return rc;
    double v[2] = {rc != 0, *stop};
    if (nb_dist_allreduce(v, 2) || rc) /* a failed callback's error stays set */
        return -1;
    *stop = v[1] > 0;
    return v[0] > 0 ? nb_set_error_code(NB_ERR_DIST, "nb_fit: a callback failed on another "
                                        "rank at epoch %d", lg->epoch + 1)
                    : 0;
}

/* .plot: a picture the curves can be drawn to, checked before training. */
static int check_plot(const char *path)
{
    size_t n = strlen(path);
    const char *ext = n >= 4 ? path + n - 4 : "";
    bool ok = ext[0] == '.'; /* as nb_plot_history reads it: ".svg" is a name */
    char low[4] = {0};
    for (int i = 0; ok && i < 3; i++)
        low[i] = (char)(ext[1 + i] >= 'A' && ext[1 + i] <= 'Z' ? ext[1 + i] - 'A' + 'a' : ext[1 + i]);
    if (!ok || (strcmp(low, "svg") != 0 && strcmp(low, "png") != 0))
        return nb_set_error("nb_fit: .plot '%s' must end in .svg or .png", path);
    if (!nb_plot_can_render())
        return nb_set_error_code(NB_ERR_STATE, "nb_fit: .plot needs PLplot, and this nabla was "
                                 "built without it");
    return 0;
}

static const nb_history *fit(nb_model *m, nb_fit_opts o)
{
    const char *fn = "nb_fit";
    if (nn_bad_model(m, fn))
        return NULL;
    if (!m->compiled) {
        nb_set_error_code(NB_ERR_STATE, "nb_fit: the model is not compiled (call nb_compile "
                          "first)");
        return NULL;
    }
    if (!m->built) {
        if (nb_ndim(o.data.x) != 2) {
            if (!o.data.x && nn_has_error())
                return NULL; /* keep the error that made x NULL */
            nb_set_error_code(NB_ERR_SHAPE, "nb_fit: the model is not built and x is not "
                              "(N, features)");
            return NULL;
        }
        if (nb_build(m, nb_dim(o.data.x, 1), 0))
            return NULL;
    }
    if (o.ncallbacks < 0 || (o.ncallbacks > 0 && !o.callbacks)) {
        nb_set_error("nb_fit: %d callbacks at %p", o.ncallbacks, (const void *)o.callbacks);
        return NULL;
    }
    if (o.plot && check_plot(o.plot))
        return NULL;
    if (o.epochs < 0 || o.batch_size < 0) {
        nb_set_error("nb_fit: epochs and batch_size must be positive, got %d and %d", o.epochs,
                     o.batch_size);
        return NULL;
    }
    FILE *out = o.out ? o.out : stdout;
    bool tty;
    if (nn_verbose(fn, m, &o.verbose, out, &tty))
        return NULL;
    if (check_data(m, o.data, fn, "training"))
        return NULL;
    bool given = o.validation.x || o.validation.y, split = o.validation_split != 0;
    if (given && check_data(m, o.validation, fn, "validation"))
        return NULL;
    int64_t n = nb_dim(o.data.x, 0), vn = given ? nb_dim(o.validation.x, 0) : 0;
    if (split) {
        /* Keras's rule: the last rows, before any shuffling, held out. */
        double f = o.validation_split;
        int64_t at = (int64_t)llround((double)n * (1 - f));
        if (given) {
            nb_set_error("nb_fit: validation_split (%g) and validation data are both given; "
                         "pass one", f);
            return NULL;
        }
        if (!(f > 0 && f < 1) || at < 1 || at >= n) {
            nb_set_error("nb_fit: validation_split must be in (0, 1) and leave rows on both "
                         "sides of the %lld, got %g", (long long)n, f);
            return NULL;
        }
        vn = n - at;
        n = at;
    }
    bool val = given || split;
    int epochs = o.epochs ? o.epochs : 1;
    /* Where training starts: epoch 0 of .seed's stream, or (.resume) where
     * the model's training stands, with epochs the total, as Keras's
     * initial_epoch. */
    uint64_t seed = o.seed;
    int first = 0;
    int64_t shuffles = 0;
    if (o.resume && m->trained) {
        if (o.seed && o.seed != m->shuffle_seed) {
            nb_set_error("nb_fit: .seed is %llu, but the model's training goes on with the "
                         "shuffling of seed %llu (.resume; leave .seed 0 or give %llu)",
                         (unsigned long long)o.seed, (unsigned long long)m->shuffle_seed,
                         (unsigned long long)m->shuffle_seed);
            return NULL;
        }
        seed = m->shuffle_seed;
        first = m->epochs_done;
        shuffles = m->shuffles;
    }
    int run = epochs > first ? epochs - first : 0; /* epochs first .. epochs - 1 */
    int64_t bs = o.batch_size ? o.batch_size : 32, steps = (n + bs - 1) / bs;
    if (nn_distributed(m)) {
        /* The same training on every rank, or an error on every rank; the
         * ranks but 0 print nothing. */
        int64_t v[] = {bs, epochs, first, (int64_t)seed, n, vn, o.no_shuffle,
                       o.skip_nonfinite, o.keep_subnormals, o.plot != NULL};
        static const char *const names[] = {
            "batch_size", "epochs", "the first epoch", "the shuffling seed",
            "training rows", "validation rows", "no_shuffle", "skip_nonfinite",
            "keep_subnormals", "a .plot"};
        if (nb_dist_check(fn, (int)(sizeof v / sizeof v[0]), v, names))
            return NULL;
    }
    nn_bar bar;

    /* Everything a step needs is made here, once. */
    batches b, vb;
    packed train, vdata;
    memset(&b, 0, sizeof b);
    memset(&vb, 0, sizeof vb);
    memset(&vdata, 0, sizeof vdata);
    int64_t *idx = NULL, *vidx = NULL;
    nb_graph *g = NULL;
    int rc = pack(&train, o.data, fn);
    if (rc == 0 && given)
        rc = pack(&vdata, o.validation, fn);
    if (rc == 0) {
        idx = identity_index(n + (split ? vn : 0));
        vidx = given ? identity_index(vn) : split && idx ? idx + n : NULL;
        rc = idx && (!val || vidx) && nn_history_alloc(m, run, first) == 0 ? 0 : -1;
    }
    nb_dataset vd = given ? vdata.d : train.d; /* a split validates on the training rows' tail */
    if (rc == 0)
        rc = batches_make(&b, m, train.d, n, bs, fn, true);
    if (rc == 0 && val)
        rc = batches_make(&vb, m, vd, shard(m, vn, NULL), bs, fn, false);
    if (rc == 0 && !(g = nb_graph_new()))
        rc = -1;
    nb_rng rng = nb_rng_new(seed);
    /* Each epoch permutes the order the last one left: a resumed fit draws
     * the shuffles before it again (n random numbers each). */
    for (int64_t k = 0; rc == 0 && k < shuffles; k++)
        nn_shuffle(idx, n, &rng);
    if (rc == 0) {
        m->trained = true;
        m->shuffle_seed = seed;
        m->shuffles = shuffles;
        m->epochs_done = first;
    }

    bool stop = false; /* a callback asked: this epoch is the last */
    /* e counts this fit's epochs (the history's index); the epoch's number
     * is first + e. */
    for (int e = 0; rc == 0 && !stop && e < run; e++) {
        if (!o.no_shuffle)
            nn_shuffle(idx, n, &rng);
        if (o.verbose && epochs > 1) /* as Keras: none for a single epoch */
            fprintf(out, "Epoch %d/%d\n", first + e + 1, epochs);
        double t0 = now(), ls = 0, ms[NB_MAX_METRICS] = {0}, mean[NB_MAX_METRICS],
               mv[NB_MAX_METRICS];
        nn_bar_start(&bar, out, tty, steps, t0);
        int64_t seen = 0;
        for (int i = 0; i < NB_MAX_METRICS; i++)
            mean[i] = NAN;
        for (int64_t s = 0; s < steps; s++) {
            int64_t start = s * bs, k = n - start < bs ? n - start : bs;
            if (start + k < n) { /* the next batch's rows, on their way while this one trains */
                int64_t kn = n - start - k < bs ? n - start - k : bs, off, kr = shard(m, kn, &off);
                nn_prefetch_rows(train.d.x, idx + start + k + off, kr);
                nn_prefetch_rows(train.d.y, idx + start + k + off, kr);
            }
            double lv;
            int st = step(m, &o, &b, train.d, idx + start, k, k == (n < bs ? n : bs) ? 0 : 1,
                          &lv, mv);
            if (st == 2)
                rc = nb_set_error_code(NB_ERR_NUMERIC, "nb_fit: epoch %d, batch %lld: the loss "
                                       "is %s (a NaN in the data, or too high a learning "
                                       "rate?); " KEPT, first + e + 1, (long long)s + 1, kind(lv));
            else if (st < 0)
                rc = step_error(first + e, s);
            if (rc)
                break;
            if (st == 1) {
                m->hist.skipped[e]++;
            } else {
                ls += lv * (double)k;
                for (int i = 0; i < m->metrics.n; i++)
                    ms[i] += mv[i] * (double)k;
                seen += k;
            }
            nb_graph_reset(g);
            for (int i = 0; i < m->metrics.n; i++)
                mean[i] = seen ? ms[i] / (double)seen : NAN;
            if (o.verbose == 1 && s < steps - 1) /* the last step's drawing waits for val */
                nn_bar_update(&bar, m, s + 1, now(), seen ? ls / (double)seen : NAN, mean, NULL,
                              NULL);
            nb_logs lg = nn_make_logs(m, first + e, s, seen ? ls / (double)seen : NAN, mean, NAN,
                                   NULL);
            if ((rc = call_back(m, o, &lg, false, &stop)) || stop)
                break;
        }
        if (rc)
            break;
        double secs = now() - t0;
        if (nn_average_state(m)) {
            rc = -1;
            break;
        }
        /* Means over the batches trained on (all of them unless skipped). */
        m->hist.loss[e] = seen ? ls / (double)seen : NAN;
        for (int i = 0; i < m->metrics.n; i++)
            m->hist.metrics[i][e] = mean[i];
        m->hist.seconds[e] = secs;
        double vm[NB_MAX_METRICS];
        for (int i = 0; i < m->metrics.n; i++)
            vm[i] = NAN;
        if (val && eval_sums(m, vd, vn, bs, vidx, &vb, &m->hist.val_loss[e], vm, NULL))
            rc = -1;
        for (int i = 0; i < m->metrics.n; i++)
            m->hist.val_metrics[i][e] = vm[i];
        m->hist.epochs = e + 1;
        if (!rc && o.plot) {
            /* Rank 0 draws; the ranks stop together if it failed. */
            char why[400] = "";
            int failed = 0;
            if (nb_dist_rank() == 0 && nb_plot_history(&m->hist, o.plot)) {
                failed = (int)nb_last_error_code();
                snprintf(why, sizeof why, "%s", nb_last_error());
            }
            static const char *const what[] = {"the error code of drawing .plot"};
            if (nn_distributed(m) && nb_dist_check(fn, 1, (int64_t[]){failed}, what))
                rc = -1;
            if (failed)
                rc = nb_set_error_code((nb_error_code)failed, "nb_fit: epoch %d: %s",
                                       first + e + 1, why);
        }
        if (!rc) {
            /* Done with this epoch (a callback's checkpoint records it). */
            m->epochs_done = first + e + 1;
            m->shuffles += !o.no_shuffle;
            nb_logs lg = nn_make_logs(m, first + e, -1, m->hist.loss[e], mean, m->hist.val_loss[e],
                                   vm);
            rc = call_back(m, o, &lg, true, &stop);
        }
        if (!o.verbose || rc)
            continue;
        /* Keras's epoch time takes in the validation. */
        const double *vl = val ? &m->hist.val_loss[e] : NULL;
        if (o.verbose == 1)
            nn_bar_update(&bar, m, steps, now(), m->hist.loss[e], mean, vl, vm);
        else
            nn_epoch_line(out, m, steps, now() - t0, m->hist.loss[e], mean, vl, vm);
        if (m->hist.skipped[e])
            fprintf(out, "Epoch %d/%d: skipped %lld of %lld batches (a NaN or an infinity in the "
                    "loss or the gradients)\n", first + e + 1, epochs,
                    (long long)m->hist.skipped[e], (long long)steps);
        fflush(out);
    }
    nb_graph_free(g);
    batches_free(&b);
    batches_free(&vb);
    packed_free(&train);
    packed_free(&vdata);
    nb_mem_free(idx);
    if (given)
        nb_mem_free(vidx);
    if (rc)
        nn_blame(fn);
    return rc ? NULL : &m->hist;
}

const nb_history *nb_fit_(nb_model *m, nb_fit_opts o)
{
    /* Subnormals flushed to zero while training (unless keep_subnormals):
     * the moments of idle units decay into the subnormal range, where
     * arithmetic is ~100x slower. The caller's setting comes back on every
     * return. */
    bool prev = nb_set_flush_subnormals(!o.keep_subnormals);
    const nb_history *h = fit(m, o);
    nb_set_flush_subnormals(prev);
    return h;
}
