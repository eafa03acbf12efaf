/* Metrics: 0-d tensors in pred's dtype, computed with recording off (they
 * carry no gradient).
 *
 *   categorical_accuracy(p, t)        = mean(argmax(p, -1) == argmax(t, -1))
 *   sparse_categorical_accuracy(p, l) = mean(argmax(p, -1) == l)
 *
 * argmax takes the first maximum, so a row of ties counts as class 0. */
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

/* The public functions: anything failing inside names the one called. */

nb_tensor *nb_categorical_accuracy(nb_tensor *pred, nb_tensor *target)
{
    NN_NAMED("nb_categorical_accuracy", nb_tensor *, categorical_accuracy_impl(pred, target));
}

nb_tensor *nb_sparse_categorical_accuracy(nb_tensor *pred, nb_tensor *labels)
{
    NN_NAMED("nb_sparse_categorical_accuracy", nb_tensor *, sparse_categorical_accuracy_impl(pred, labels));
}
