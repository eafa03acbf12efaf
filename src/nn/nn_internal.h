/* Model internals shared by src/nn/model.c and src/nn/fit.c. */
#ifndef NABLA_NN_INTERNAL_H
#define NABLA_NN_INTERNAL_H

#include "internal.h"

struct nb_layer {
    char name[32];
    nb_dense_opts opts;
    int64_t in;              /* input features, once built */
    nb_tensor *kernel, *bias; /* heap parameters, once built */
};

struct nb_model {
    nb_layer **layers;
    int n, cap, dense_count;
    bool built, compiled;
    int64_t in_features;
    nb_dtype dtype; /* of the parameters, and so of x and y */
    nb_tensor **params; /* kernel, bias per layer */
    int nparams;
    nb_optimizer *opt;
    nb_loss loss;
    nb_metric metric;
    nb_history hist;
    /* The last forward's output and pre-activation (graph tensors), so the
     * loss of a softmax output can be taken from its logits. */
    nb_tensor *last_out, *last_logits;
};

/* A NULL model: keep a pending error (the call that failed to make the
 * model), or say that the model is NULL. Returns -1. */
static inline int nb__null_model(const char *fn)
{
    return nb__has_error() ? -1 : nb__error("%s: model is NULL", fn);
}

/* Input checks shared by losses and metrics (src/nn/losses.c): NULLs, graph,
 * dtypes, and equal shapes (pred and target) or labels matching pred without
 * its class axis, all in range. -1 with an error naming fn. */
int nb__loss_inputs(const char *fn, const char *pn, const nb_tensor *p, const char *tn,
                    const nb_tensor *t, bool class_axis);
int nb__loss_labels(const char *fn, const char *pn, const nb_tensor *p, const nb_tensor *labels);

int nb__check_targets(const nb_model *m, const nb_tensor *y, int64_t rows, const char *fn);
double nb__batch_metric(const nb_model *m, nb_tensor *output, nb_tensor *y);

#endif
