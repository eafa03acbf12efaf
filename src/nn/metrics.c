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
 * NaN score of the class a miss. */
#include "nn_internal.h"

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
