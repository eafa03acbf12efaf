/* Metrics: 0-d tensors in pred's dtype, computed with recording off (they
 * carry no gradient), each a composition of ops:
 *
 *   categorical_accuracy(p, t)        = mean(argmax(p, -1) == argmax(t, -1))
 *   sparse_categorical_accuracy(p, l) = mean(argmax(p, -1) == l)
 *   top_k(p, l, k)                    = mean(above < k  and  s == s),
 *       s = sum(where(one_hot(l), p, 0), -1)   the score of the row's class
 *       above = sum(p > s, -1)                 classes scoring strictly higher
 *   binary_accuracy(p, t)             = mean(t == (p > 0.5))
 *
 * argmax takes the first maximum, so a row of ties counts as class 0. Top-k
 * is Keras's in_top_k (its class's score at least the k-th highest): ties at
 * the k-th place count, k >= classes counts every row, and s == s makes a
 * NaN score of the class a miss. Then the model's side: which metrics
 * nb_compile was given, and their values for a batch. */
#include "nn_internal.h"

#include <ctype.h>
#include <stdio.h>

static nb_tensor *categorical_accuracy_impl(nb_tensor *pred, nb_tensor *target)
{
    if (nn_loss_inputs("nb_categorical_accuracy", "pred", pred, "target", target, NN_CLASSES))
        return NULL;
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *hit = nb_eq(nb_argmax(pred, -1), nb_argmax(target, -1));
    nb_tensor *acc = nb_mean(hit);
    nb_set_grad_enabled(prev);
    return acc;
}

static nb_tensor *sparse_categorical_accuracy_impl(nb_tensor *pred, nb_tensor *labels)
{
    if (nn_loss_labels("nb_sparse_categorical_accuracy", "pred", pred, labels))
        return NULL;
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *hit = nb_eq(nb_argmax(pred, -1), labels);
    nb_tensor *acc = nb_mean(hit);
    nb_set_grad_enabled(prev);
    return acc;
}

/* The fraction of rows of pred whose class (labels, checked) is in the top k. */
static nb_tensor *in_top_k(nb_tensor *pred, nb_tensor *labels, int k)
{
    nb_tensor *hot = nb_one_hot(labels, nb_dim(pred, -1));
    nb_tensor *s = nb_sum(nb_where(hot, pred, nb_scalar_like(pred, 0)), .axes = NB_AXES(-1),
                          .keepdims = true);
    nb_tensor *above = nb_sum(nb_gt(pred, s), .axes = NB_AXES(-1));
    nb_tensor *hit = nb_mul(nb_lt(above, nb_scalar_like(above, (double)k)),
                            nb_squeeze(nb_eq(s, s), -1));
    return nb_mean(hit);
}

static int check_k(const char *fn, int k)
{
    return k >= 1 ? 0 : nb_set_error("%s: k must be at least 1, got %d", fn, k);
}

static nb_tensor *top_k_accuracy_impl(nb_tensor *pred, nb_tensor *target, int k)
{
    if (nn_loss_inputs("nb_top_k_accuracy", "pred", pred, "target", target, NN_CLASSES) ||
        check_k("nb_top_k_accuracy", k))
        return NULL;
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *acc = in_top_k(pred, nb_argmax(target, -1), k);
    nb_set_grad_enabled(prev);
    return acc;
}

static nb_tensor *sparse_top_k_accuracy_impl(nb_tensor *pred, nb_tensor *labels, int k)
{
    if (nn_loss_labels("nb_sparse_top_k_accuracy", "pred", pred, labels) ||
        check_k("nb_sparse_top_k_accuracy", k))
        return NULL;
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *acc = in_top_k(pred, labels, k);
    nb_set_grad_enabled(prev);
    return acc;
}

static nb_tensor *binary_accuracy_impl(nb_tensor *pred, nb_tensor *target)
{
    if (nn_loss_inputs("nb_binary_accuracy", "pred", pred, "target", target, NN_ELEMENTWISE))
        return NULL;
    bool prev = nb_set_grad_enabled(false);
    nb_tensor *acc = nb_mean(nb_eq(target, nb_gt(pred, nb_scalar_like(pred, 0.5))));
    nb_set_grad_enabled(prev);
    return acc;
}

/* The public functions: anything failing inside names the one called. */

nb_tensor *nb_categorical_accuracy(nb_tensor *pred, nb_tensor *target)
{
    NN_NAMED("nb_categorical_accuracy", nb_tensor *, categorical_accuracy_impl(pred, target));
}

nb_tensor *nb_sparse_categorical_accuracy(nb_tensor *pred, nb_tensor *labels)
{
    NN_NAMED("nb_sparse_categorical_accuracy", nb_tensor *, sparse_categorical_accuracy_impl(pred, labels));
}

nb_tensor *nb_top_k_accuracy(nb_tensor *pred, nb_tensor *target, int k)
{
    NN_NAMED("nb_top_k_accuracy", nb_tensor *, top_k_accuracy_impl(pred, target, k));
}

nb_tensor *nb_sparse_top_k_accuracy(nb_tensor *pred, nb_tensor *labels, int k)
{
    NN_NAMED("nb_sparse_top_k_accuracy", nb_tensor *, sparse_top_k_accuracy_impl(pred, labels, k));
}

nb_tensor *nb_binary_accuracy(nb_tensor *pred, nb_tensor *target)
{
    NN_NAMED("nb_binary_accuracy", nb_tensor *, binary_accuracy_impl(pred, target));
}

/* ---- the compiled metrics ---- */

/* Each built-in metric: its Keras name, what targets it takes, and the
 * enum's name for messages. */
static const struct {
    const char *name, *enum_name;
    nn_targets targets;
} builtin[] = {
    [NB_ACCURACY] = {"accuracy", "NB_ACCURACY", NN_TARGETS_ANY},
    [NB_CATEGORICAL_ACCURACY] = {"categorical_accuracy", "NB_CATEGORICAL_ACCURACY",
                                 NN_TARGETS_SAME},
    [NB_SPARSE_CATEGORICAL_ACCURACY] = {"sparse_categorical_accuracy",
                                        "NB_SPARSE_CATEGORICAL_ACCURACY", NN_TARGETS_LABELS},
    [NB_TOP_K_ACCURACY] = {"top_k_categorical_accuracy", "NB_TOP_K_ACCURACY", NN_TARGETS_ANY},
    [NB_BINARY_ACCURACY] = {"binary_accuracy", "NB_BINARY_ACCURACY", NN_TARGETS_SAME},
    [NB_MSE] = {"mean_squared_error", "NB_MSE", NN_TARGETS_SAME},
    [NB_MAE] = {"mean_absolute_error", "NB_MAE", NN_TARGETS_SAME},
};
#define NBUILTIN (int)(sizeof builtin / sizeof builtin[0])

int nn_check_name(const char *what, const char *name)
{
    if (!name)
        return nb_set_error("nb_compile: %s has no name (fit's lines and the history show it)",
                            what);
    size_t n = strlen(name), ok = 0;
    while (ok < n && (isalnum((unsigned char)name[ok]) || name[ok] == '_'))
        ok++;
    if (n == 0 || n >= NN_NAME_LEN || ok < n)
        return nb_set_error("nb_compile: %s name \"%.*s%s\" must be 1 to %d letters, digits or "
                            "'_'", what, NN_NAME_LEN, name, n > NN_NAME_LEN ? "..." : "",
                            NN_NAME_LEN - 1);
    return 0;
}

/* Appends a metric to out, refusing a repeated or reserved name. */
static int add_metric(nn_metrics *out, nb_metric kind, nb_custom_fn custom, const char *name,
                      const char *what)
{
    if (out->n == NB_MAX_METRICS)
        return nb_set_error("nb_compile: more than NB_MAX_METRICS (%d) metrics (%s is one too "
                            "many)", NB_MAX_METRICS, what);
    if (strcmp(name, "loss") == 0 || strncmp(name, "val_", 4) == 0)
        return nb_set_error("nb_compile: %s is named \"%s\", which fit's lines use for the "
                            "loss or validation", what, name);
    for (int i = 0; i < out->n; i++)
        if (strcmp(out->m[i].name, name) == 0)
            return nb_set_error("nb_compile: %s is named \"%s\", as metric %d is; each "
                                "metric needs a name of its own", what, name, i + 1);
    nn_metric *m = &out->m[out->n++];
    m->kind = kind;
    m->custom = custom;
    snprintf(m->name, sizeof m->name, "%s", name);
    return 0;
}

static int add_builtin(nn_metrics *out, nb_metric kind, const char *what, const char *loss_name,
                       nn_targets targets)
{
    if ((int)kind < NB_ACCURACY || (int)kind >= NBUILTIN)
        return nb_set_error("nb_compile: unknown metric %d (%s)", (int)kind, what);
    nn_targets want = builtin[kind].targets;
    bool cat = kind == NB_CATEGORICAL_ACCURACY || kind == NB_SPARSE_CATEGORICAL_ACCURACY;
    if (want == NN_TARGETS_SAME && targets == NN_TARGETS_LABELS)
        return nb_set_error("nb_compile: %s (%s) needs targets of the output's shape, but the "
                            "loss %s takes labels%s", builtin[kind].enum_name, what, loss_name,
                            cat ? " (NB_SPARSE_CATEGORICAL_ACCURACY or NB_ACCURACY would fit)"
                                : "");
    if (want == NN_TARGETS_LABELS && targets == NN_TARGETS_SAME)
        return nb_set_error("nb_compile: %s (%s) needs labels, but the loss %s takes targets "
                            "of the output's shape%s", builtin[kind].enum_name, what, loss_name,
                            cat ? " (NB_CATEGORICAL_ACCURACY or NB_ACCURACY would fit)" : "");
    return add_metric(out, kind, (nb_custom_fn){0}, builtin[kind].name, what);
}

int nn_metrics_parse(const nb_compile_opts *o, const char *loss_name, nn_targets targets,
                     nn_metrics *out)
{
    char what[40];
    memset(out, 0, sizeof *out);
    bool top_k = false;
    /* .metric, then .metrics: the list ends at the first NB_NO_METRIC. */
    int nb = 1 + NB_MAX_METRICS - 1, end = -1;
    for (int i = 0; i < nb; i++) {
        nb_metric k = i == 0 ? o->metric : o->metrics[i - 1];
        if (i == 0)
            snprintf(what, sizeof what, ".metric");
        else
            snprintf(what, sizeof what, ".metrics[%d]", i - 1);
        if (k == NB_NO_METRIC) {
            if (end < 0 && i > 0)
                end = i;
            continue;
        }
        if (end >= 0)
            return nb_set_error("nb_compile: %s (%d) comes after an empty entry, .metrics[%d] "
                                "(the list ends at the first NB_NO_METRIC)", what, (int)k,
                                end - 1);
        if (add_builtin(out, k, what, loss_name, targets))
            return -1;
        top_k |= k == NB_TOP_K_ACCURACY;
    }
    end = -1;
    for (int i = 0; i < NB_MAX_METRICS; i++) {
        const nb_custom_fn *c = &o->custom_metrics[i];
        snprintf(what, sizeof what, ".custom_metrics[%d]", i);
        if (!c->fn && !c->ctx && !c->name) {
            if (end < 0)
                end = i;
            continue;
        }
        if (end >= 0)
            return nb_set_error("nb_compile: %s comes after an empty entry, "
                                ".custom_metrics[%d] (the list ends at the first without a "
                                "fn)", what, end);
        if (nn_check_name(what, c->name))
            return -1;
        if (!c->fn)
            return nb_set_error("nb_compile: %s \"%s\" has a NULL fn", what, c->name);
        if (add_metric(out, NB_NO_METRIC, *c, c->name, what))
            return -1;
    }
    if (o->top_k < 0 || (o->top_k > 0 && !top_k))
        return nb_set_error("nb_compile: .top_k is %d; it is NB_TOP_K_ACCURACY's k, at least 1 "
                            "(0: 5)%s", o->top_k, top_k ? "" : ", and no metric is NB_TOP_K_ACCURACY");
    out->top_k = o->top_k ? o->top_k : 5;
    /* fit's lines: the loss and the metrics sorted by name, as Keras 3
     * prints its logs. Insertion sort of at most NB_MAX_METRICS + 1. */
    for (int i = 0; i <= out->n; i++) {
        int k = i - 1, j = i;
        const char *name = k < 0 ? "loss" : out->m[k].name;
        for (; j > 0; j--) {
            int prev = out->order[j - 1];
            if (strcmp(prev < 0 ? "loss" : out->m[prev].name, name) <= 0)
                break;
            out->order[j] = prev;
        }
        out->order[j] = k;
    }
    return 0;
}

/* A built-in metric of a batch. NB_ACCURACY and NB_TOP_K_ACCURACY take y as
 * labels when it has one axis fewer than the output (Keras's choice). */
static nb_tensor *builtin_value(nb_metric kind, nb_tensor *out, nb_tensor *y, int k)
{
    bool labels = nb_ndim(y) == nb_ndim(out) - 1;
    switch (kind) {
    case NB_ACCURACY:
        return labels                   ? nb_sparse_categorical_accuracy(out, y)
               : nb_dim(out, -1) == 1 ? nb_binary_accuracy(out, y)
                                        : nb_categorical_accuracy(out, y);
    case NB_CATEGORICAL_ACCURACY:
        return nb_categorical_accuracy(out, y);
    case NB_SPARSE_CATEGORICAL_ACCURACY:
        return nb_sparse_categorical_accuracy(out, y);
    case NB_TOP_K_ACCURACY:
        return labels ? nb_sparse_top_k_accuracy(out, y, k) : nb_top_k_accuracy(out, y, k);
    case NB_BINARY_ACCURACY:
        return nb_binary_accuracy(out, y);
    case NB_MSE:
        return nb_mse(out, y);
    case NB_MAE:
        return nb_mae(out, y);
    case NB_NO_METRIC:
        break;
    }
    nb_set_error("unknown metric %d", (int)kind);
    return NULL;
}

int nn_batch_metrics(const nb_model *m, nb_tensor *output, nb_tensor *y, double *v)
{
    char b[NB_SHAPE_STR_LEN];
    bool prev = nb_set_grad_enabled(false);
    int rc = 0;
    for (int i = 0; rc == 0 && i < m->metrics.n; i++) {
        const nn_metric *mt = &m->metrics.m[i];
        nb_tensor *r = mt->kind ? builtin_value(mt->kind, output, y, m->metrics.top_k)
                                : mt->custom.fn(output, y, mt->custom.ctx);
        if (!r)
            rc = nn_has_error() ? -1
                                : nb_set_error("the metric \"%s\" gave NULL and set no error",
                                               mt->name);
        else if (nb_ndim(r) != 0)
            rc = nb_set_error_code(NB_ERR_SHAPE, "the metric \"%s\" gave a %s tensor; a metric "
                                   "gives a 0-d tensor (the batch's mean)", mt->name,
                                   nb_shape_str(r, b));
        else
            v[i] = nb_item(r);
    }
    nb_set_grad_enabled(prev);
    return rc;
}
