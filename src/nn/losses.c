/* Losses: compositions of primitive ops, no derivative code. Each gives a
 * 0-d tensor, the mean over the batch:
 *
 *   mse        mean((p - t)^2)
 *   mae        mean(|p - t|)
 *   huber      mean(q (e - q/2)),  e = p - t,  q = clamp(e, -delta, delta)
 *   bce        -mean(t log p' + (1 - t) log(1 - p')),  p' = clamp(p, 1e-7, 1 - 1e-7)
 *   bce_logits mean(softplus(z) - z t)
 *   cce        -mean_rows(sum_last(t log p')),          p' clipped as above
 *   cce_logits -mean_rows(sum_last(t log_softmax(z)))
 *   sparse     cce / cce_logits with t = one_hot(labels, classes)
 *
 * The elementwise losses are means over every element, which is Keras's
 * mean over the last axis, then over the batch, since rows have equal sizes.
 * The categorical ones sum over the class axis (the last) and average the
 * rest.
 *
 * Huber: q (e - q/2) is e^2/2 where |e| <= delta and delta |e| - delta^2/2
 * beyond, with no where() (so no discarded branch that can overflow) and
 * the gradient clamp(e, -delta, delta).
 * BCE from logits: softplus(z) = max(z, 0) + log(1 + exp(-|z|)), the stable
 * form, computed as nb_softplus does so that the gradient is sigmoid(z) - t
 * exactly, also at z = 0.
 * Clipping the probabilities bounds each term by -log(1e-7) ~ 16.1, and
 * the clipped side gets no gradient, so a confident wrong prediction gives a
 * finite loss and a finite gradient; the logit forms are finite for any
 * finite logit. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

#define EPS 1e-7 /* Keras's backend.epsilon() */

/* ---- input checks (shared with metrics.c) ---- */

/* Common to both: NULLs (keeping the first error), a current graph, dtypes. */
static int check_common(const char *fn, const char *pn, const nb_tensor *p, const char *tn,
                        const nb_tensor *t)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    if (nb_check_tensor(fn, pn, p) || nb_check_tensor(fn, tn, t))
        return -1;
    if (!nb_graph_current())
        return nb_set_error_code(NB_ERR_STATE, "%s: no current graph (create one with "
                                 "nb_graph_new)", fn);
    if (nb_dtype_of(p) != nb_dtype_of(t))
        return nb_set_error_code(NB_ERR_DTYPE, "%s: dtypes differ: %s %s %s and %s %s %s", fn, pn,
                            nb_dtype_name(nb_dtype_of(p)), nb_shape_str(p, b), tn,
                            nb_dtype_name(nb_dtype_of(t)), nb_shape_str(t, c));
    return 0;
}

/* pred and target of exactly the same shape, not empty; for NN_CLASSES,
 * at least one dimension (the classes are the last). */
int nn_loss_inputs(const char *fn, const char *pn, const nb_tensor *p, const char *tn,
                   const nb_tensor *t, nn_loss_kind kind)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN];
    if (check_common(fn, pn, p, tn, t))
        return -1;
    if (!nn_same_shape(p, t))
        return nb_set_error_code(NB_ERR_SHAPE, "%s: %s %s and %s %s differ", fn, pn, nb_shape_str(p, b), tn,
                            nb_shape_str(t, c));
    if (kind == NN_CLASSES && nb_ndim(p) < 1)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: %s %s has no class axis (the last one)", fn, pn,
                            nb_shape_str(p, b));
    if (nb_numel(p) == 0)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: %s %s is empty", fn, pn, nb_shape_str(p, b));
    return 0;
}

/* labels: p's shape without its last axis (the classes), whole numbers in
 * [0, classes). The message names the first bad label and its position. */
int nn_loss_labels(const char *fn, const char *pn, const nb_tensor *p, const nb_tensor *labels)
{
    char b[NB_SHAPE_STR_LEN], c[NB_SHAPE_STR_LEN], d[NB_SHAPE_STR_LEN];
    if (check_common(fn, pn, p, "labels", labels))
        return -1;
    int nd = nb_ndim(p), nl = nb_ndim(labels);
    const int64_t *ps = nb_shape(p), *ls = nb_shape(labels);
    if (nd < 1)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: %s %s has no class axis (the last one)", fn, pn,
                            nb_shape_str(p, b));
    if (nl != nd - 1 || memcmp(ls, ps, (size_t)nl * sizeof(int64_t)) != 0)
        return nb_set_error_code(NB_ERR_SHAPE,
                                 "%s: labels %s must have the shape of %s without its last axis, "
                            "%s (%s is %s)",
                            fn, nb_shape_str(labels, b), pn, nb_dims_str(nd - 1, ps, c), pn,
                            nb_shape_str(p, d));
    if (nb_numel(p) == 0)
        return nb_set_error_code(NB_ERR_SHAPE, "%s: %s %s is empty", fn, pn, nb_shape_str(p, b));
    int64_t classes = ps[nd - 1];
    for (int64_t j = 0; j < nb_numel(labels); j++) {
        double v = nb_get_flat(labels, j); /* row-major, whatever the view */
        if (v == floor(v) && v >= 0 && v < (double)classes)
            continue;
        /* The position of row-major element j, "1,0". */
        int64_t at[NB_MAX_DIMS] = {0}, r = j;
        for (int i = nl - 1; i >= 0; i--) {
            at[i] = r % ls[i];
            r /= ls[i];
        }
        char pos[96];
        int k = 0;
        pos[0] = '\0';
        for (int i = 0; i < nl && k < 80; i++)
            k += snprintf(pos + k, sizeof pos - (size_t)k, i ? ",%lld" : "%lld",
                          (long long)at[i]);
        if (!(v == floor(v)))
            return nb_set_error("%s: labels[%s] = %g is not a whole number (labels %s)", fn,
                                pos, v, nb_shape_str(labels, b));
        return nb_set_error("%s: labels[%s] = %g is outside [0, %lld): %s %s has %lld classes",
                            fn, pos, v, (long long)classes, pn, nb_shape_str(p, c),
                            (long long)classes);
    }
    return 0;
}

/* ---- helpers ---- */

static nb_tensor *k(nb_tensor *like, double v) { return nb_scalar_like(like, v); }

/* -mean over rows of the sum over the last axis of t * logp. */
static nb_tensor *neg_mean_rows(nb_tensor *t, nb_tensor *logp)
{
    return nb_neg(nb_mean(nb_sum(nb_mul(t, logp), .axes = NB_AXES(-1))));
}

/* ---- regression ---- */

static nb_tensor *mse_impl(nb_tensor *pred, nb_tensor *target)
{
    if (nn_loss_inputs("nb_mse", "pred", pred, "target", target, NN_ELEMENTWISE))
        return NULL;
    return nb_mean(nb_square(nb_sub(pred, target)));
}

static nb_tensor *mae_impl(nb_tensor *pred, nb_tensor *target)
{
    if (nn_loss_inputs("nb_mae", "pred", pred, "target", target, NN_ELEMENTWISE))
        return NULL;
    return nb_mean(nb_abs(nb_sub(pred, target)));
}

static nb_tensor *huber_impl(nb_tensor *pred, nb_tensor *target, double delta)
{
    if (nn_loss_inputs("nb_huber", "pred", pred, "target", target, NN_ELEMENTWISE))
        return NULL;
    if (!(delta > 0) || !isfinite(delta)) {
        nb_set_error("nb_huber: delta must be a positive finite number, got %g", delta);
        return NULL;
    }
    nb_tensor *e = nb_sub(pred, target);
    nb_tensor *q = nb_clamp(e, -delta, delta);
    return nb_mean(nb_mul(q, nb_sub(e, nb_mul(k(e, 0.5), q))));
}

/* ---- binary ---- */

static nb_tensor *binary_crossentropy_impl(nb_tensor *prob, nb_tensor *target)
{
    if (nn_loss_inputs("nb_binary_crossentropy", "prob", prob, "target", target, NN_ELEMENTWISE))
        return NULL;
    nb_tensor *p = nb_clamp(prob, EPS, 1.0 - EPS);
    nb_tensor *one = k(p, 1.0);
    nb_tensor *ll = nb_add(nb_mul(target, nb_log(p)),
                           nb_mul(nb_sub(one, target), nb_log(nb_sub(one, p))));
    return nb_neg(nb_mean(ll));
}

static nb_tensor *binary_crossentropy_logits_impl(nb_tensor *logits, nb_tensor *target)
{
    if (nn_loss_inputs("nb_binary_crossentropy_logits", "logits", logits, "target", target,
                       NN_ELEMENTWISE))
        return NULL;
    return nb_mean(nb_sub(nb_softplus(logits), nb_mul(logits, target)));
}

/* ---- categorical ---- */

static nb_tensor *cce(nb_tensor *prob, nb_tensor *target)
{
    return neg_mean_rows(target, nb_log(nb_clamp(prob, EPS, 1.0 - EPS)));
}

static nb_tensor *cce_logits(nb_tensor *logits, nb_tensor *target)
{
    return neg_mean_rows(target, nb_log_softmax(logits, -1));
}

static nb_tensor *categorical_crossentropy_impl(nb_tensor *prob, nb_tensor *target)
{
    if (nn_loss_inputs("nb_categorical_crossentropy", "prob", prob, "target", target, NN_CLASSES))
        return NULL;
    return cce(prob, target);
}

static nb_tensor *categorical_crossentropy_logits_impl(nb_tensor *logits, nb_tensor *target)
{
    if (nn_loss_inputs("nb_categorical_crossentropy_logits", "logits", logits, "target", target,
                       NN_CLASSES))
        return NULL;
    return cce_logits(logits, target);
}

static nb_tensor *sparse_categorical_crossentropy_impl(nb_tensor *prob, nb_tensor *labels)
{
    if (nn_loss_labels("nb_sparse_categorical_crossentropy", "prob", prob, labels))
        return NULL;
    return cce(prob, nb_one_hot(labels, nb_dim(prob, -1)));
}

static nb_tensor *sparse_categorical_crossentropy_logits_impl(nb_tensor *logits, nb_tensor *labels)
{
    if (nn_loss_labels("nb_sparse_categorical_crossentropy_logits", "logits", logits, labels))
        return NULL;
    return cce_logits(logits, nb_one_hot(labels, nb_dim(logits, -1)));
}

/* The public functions: anything failing inside names the one called. */

nb_tensor *nb_mse(nb_tensor *pred, nb_tensor *target)
{
    NN_NAMED("nb_mse", nb_tensor *, mse_impl(pred, target));
}

nb_tensor *nb_mae(nb_tensor *pred, nb_tensor *target)
{
    NN_NAMED("nb_mae", nb_tensor *, mae_impl(pred, target));
}

nb_tensor *nb_huber(nb_tensor *pred, nb_tensor *target, double delta)
{
    NN_NAMED("nb_huber", nb_tensor *, huber_impl(pred, target, delta));
}

nb_tensor *nb_binary_crossentropy(nb_tensor *prob, nb_tensor *target)
{
    NN_NAMED("nb_binary_crossentropy", nb_tensor *, binary_crossentropy_impl(prob, target));
}

nb_tensor *nb_binary_crossentropy_logits(nb_tensor *logits, nb_tensor *target)
{
    NN_NAMED("nb_binary_crossentropy_logits", nb_tensor *, binary_crossentropy_logits_impl(logits, target));
}

nb_tensor *nb_categorical_crossentropy(nb_tensor *prob, nb_tensor *target)
{
    NN_NAMED("nb_categorical_crossentropy", nb_tensor *, categorical_crossentropy_impl(prob, target));
}

nb_tensor *nb_categorical_crossentropy_logits(nb_tensor *logits, nb_tensor *target)
{
    NN_NAMED("nb_categorical_crossentropy_logits", nb_tensor *, categorical_crossentropy_logits_impl(logits, target));
}

nb_tensor *nb_sparse_categorical_crossentropy(nb_tensor *prob, nb_tensor *labels)
{
    NN_NAMED("nb_sparse_categorical_crossentropy", nb_tensor *, sparse_categorical_crossentropy_impl(prob, labels));
}

nb_tensor *nb_sparse_categorical_crossentropy_logits(nb_tensor *logits, nb_tensor *labels)
{
    NN_NAMED("nb_sparse_categorical_crossentropy_logits", nb_tensor *, sparse_categorical_crossentropy_logits_impl(logits, labels));
}
