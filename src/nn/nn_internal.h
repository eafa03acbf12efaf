/* Model internals shared by the files of src/nn/. Like the rest of nn/,
 * this is written on the public API only (nabla/nabla.h): no engine
 * internals, no tensor fields. Not installed. */
#ifndef NABLA_NN_INTERNAL_H
#define NABLA_NN_INTERNAL_H

#include "../targets.h" /* before nabla.h: the kernels' vector widths */
#include "nabla/nabla.h"

#include <string.h>

/* Symbols shared between nn's files but not part of the library's API. */
#if defined(__GNUC__)
#define NN_PRIVATE __attribute__((visibility("hidden")))
#else
#define NN_PRIVATE
#endif

#define NN_MAX_WEIGHTS 8
#define NN_NAME_LEN 48 /* a metric's or custom loss's name, with its NUL */

/* The compiled metrics (src/nn/metrics.c): built-in (kind) or custom. */
typedef struct {
    nb_metric kind;    /* NB_NO_METRIC for a custom one */
    nb_custom_fn custom;
    char name[NN_NAME_LEN];
} nn_metric;

typedef struct {
    int n;
    nn_metric m[NB_MAX_METRICS];
    int top_k;                       /* NB_TOP_K_ACCURACY's k */
    int order[NB_MAX_METRICS + 1];   /* fit's lines: indices of m, -1 the loss, by name */
} nn_metrics;

struct nb_layer {
    char name[32];
    const nb_model *owner; /* the model it was added to, which frees it */
    const nb_layer_type *type;
    void *ctx;             /* the type's own data */
    bool built, auto_named;
    int in_ndim, out_ndim; /* shapes without the batch axis, once built */
    int64_t in[NB_MAX_DIMS], out[NB_MAX_DIMS];
    int nw;                /* weights (heap tensors), made by build */
    nb_tensor *w[NN_MAX_WEIGHTS];
    bool trainable[NN_MAX_WEIGHTS];
};

struct nb_model {
    nb_layer **layers;
    int n, cap;
    bool built, compiled;
    bool training;      /* nb_model_set_training; fit's batches set it */
    int in_ndim;        /* the input's shape without the batch axis */
    int64_t in[NB_MAX_DIMS];
    nb_dtype dtype;     /* of the parameters, and so of x and y */
    nb_tensor **params; /* the trainable weights, in layer order */
    int nparams;
    nb_tensor **weights; /* every weight (params and state), in layer order */
    int nweights;
    nb_rng rng;         /* what training draws (nb_layer_rng) */
    /* Where training stands, for nb_fit's .resume and checkpoints: the
     * epochs done and the shuffling stream, its seed and the shuffles drawn
     * from it (each epoch permutes the order the last one left, so a
     * resumed fit draws them again). Set by nb_fit and nb_load_checkpoint;
     * trained is false before either. */
    bool trained;
    int epochs_done;
    uint64_t shuffle_seed;
    int64_t shuffles;
    bool distributed;   /* nb_model_distribute: fit, evaluate and predict run on every rank */
    nb_optimizer *opt;
    nb_loss loss;            /* 0 with a custom loss */
    nb_custom_fn custom_loss; /* fn NULL: the built-in loss */
    char custom_loss_name[NN_NAME_LEN];
    nn_metrics metrics;
    nb_history hist;
    /* Nothing a forward or an evaluation writes lives here (see
     * last_forward in model.c): threads may share a model they only read. */
    nb_model *next_live; /* the registry of live models (src/nn/model.c) */
};

/* The data of Input and Reshape layers: a shape without the batch axis. */
typedef struct {
    int ndim;
    int64_t shape[NB_MAX_DIMS];
} nn_shape_ctx;

/* x's dtype and shape against the model's input (the batch axis first):
 * 0, or -1 with an error naming fn. With what ("the", "validation"), data
 * given to fit, evaluate or predict, which may be u8 too. */
NN_PRIVATE int nn_check_input(const nb_model *m, const nb_tensor *x, const char *what,
                              const char *fn);

/* nb_model_forward in training or inference mode, whatever the model's
 * (fit, evaluate and predict: a model shared by threads is not written). */
NN_PRIVATE nb_tensor *nn_forward(nb_model *m, nb_tensor *x, bool training);

/* src/nn/distributed.c: whether m is data-parallel over more than one rank;
 * its non-trainable weights (into out, room for m->nweights; the count);
 * those averaged over the ranks (0 or -1). */
/* src/nn/fit_report.c: fn's .verbose checked (-1 with an error naming fn)
 * and made 0, 1 or 2 (auto: a bar on a terminal; a distributed model's
 * rank 0 prints lines, the others nothing), *tty whether out is one;
 * Keras 3's line for an epoch (or an evaluate or predict) at verbose 2
 * (steps, seconds, per step, the loss and metrics sorted by name, then the
 * validation's when val_loss is not NULL; m NULL: no values, predict's); its progress bar (verbose 1),
 * redrawn after each step at most every 0.05 s and always at the last,
 * where the line ends; the history for epochs from first (0 or -1); the
 * logs after batch (-1: the epoch) of epoch e (vv NULL: no validation yet). */
NN_PRIVATE int nn_verbose(const char *fn, const nb_model *m, int *verbose, FILE *out,
                           bool *tty);
NN_PRIVATE void nn_epoch_line(FILE *f, const nb_model *m, int64_t steps, double secs,
                              double loss, const double *v, const double *val_loss,
                              const double *vv);
typedef struct nn_bar {
    FILE *f;
    bool colour; /* Keras's ANSI bold and colours (on a terminal) */
    int64_t target;
    double start, after_first, last;
    int prev; /* the last drawing's width, which the next one covers */
} nn_bar;
NN_PRIVATE void nn_bar_start(nn_bar *b, FILE *f, bool colour, int64_t target, double now);
NN_PRIVATE void nn_bar_update(nn_bar *b, const nb_model *m, int64_t current, double now,
                              double loss, const double *v, const double *val_loss,
                              const double *vv);
NN_PRIVATE int nn_history_alloc(nb_model *m, int epochs, int first);
NN_PRIVATE nb_logs nn_make_logs(const nb_model *m, int e, int64_t batch, double loss,
                                const double *v, double val_loss, const double *vv);

NN_PRIVATE bool nn_distributed(const nb_model *m);
NN_PRIVATE int nn_state_weights(const nb_model *m, nb_tensor **out);
NN_PRIVATE int nn_average_state(nb_model *m);

/* A layer name of 1 to 31 characters, or NULL (a default name); false
 * with an error naming fn. */
NN_PRIVATE bool nn_valid_name(const char *fn, const char *name);
/* A layer type's free_ctx for a ctx from nb_mem_alloc. */
NN_PRIVATE void nn_free_ctx(void *ctx);
/* A build whose output has the input's shape, and which makes no weights. */
NN_PRIVATE int nn_same_shape_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim,
                                   int64_t *out, nb_rng *rng);

/* Frees the weights a layer's build made (it can be built again). */
NN_PRIVATE void nn_layer_unbuild(nb_layer *l);

/* Built-in layer types whose layers the model treats specially: Input
 * declares the model's input, Dense gives the loss its logits. */
NN_PRIVATE extern const nb_layer_type nn_input_type, nn_dense_type;
/* A Dense layer's forward, with the pre-activation in *logits. */
NN_PRIVATE nb_tensor *nn_dense_forward(nb_layer *l, nb_tensor *x, nb_tensor **logits);
/* "softmax + categorical_crossentropy" when the loss of a compiled m is
 * taken from the last layer's logits (the activation fused into it), else
 * NULL; the loss's name, Keras's or the custom one's. */
NN_PRIVATE const char *nn_fused_loss(const nb_model *m);
NN_PRIVATE const char *nn_loss_name(const nb_model *m);
/* v with Keras's thousands separators, "52,650", into b; returns b. */
#define NN_THOUSANDS_LEN 32
NN_PRIVATE char *nn_thousands(char b[NN_THOUSANDS_LEN], int64_t v);
/* A Dense layer's activation (NB_LINEAR for other layers). */
NN_PRIVATE nb_activation nn_layer_activation(const nb_layer *l);
/* src/nn/batches.c, the batches of nb_fit and nb_batches: copies rows
 * idx[0..n) of src (contiguous; rows first .. first + n when idx is NULL)
 * into the first n rows of dst, a heap tensor, and bumps dst's version. A
 * u8 src is converted to dst's dtype on the way, each byte b to b * scale in
 * double, then rounded (src/nn/fit.c's top says why). */
NN_PRIVATE void nn_gather_rows(nb_tensor *dst, const nb_tensor *src, const int64_t *idx,
                               int64_t first, int64_t n, double scale);
/* Asks for rows idx[0..n) of src to be fetched into the caches: the next
 * batch's, while this one trains (its rows are scattered over the data). */
NN_PRIVATE void nn_prefetch_rows(const nb_tensor *src, const int64_t *idx, int64_t n);
/* Fisher-Yates on idx[0..n), drawing from rng: an epoch's shuffle. */
NN_PRIVATE void nn_shuffle(int64_t *idx, int64_t n, nb_rng *rng);
/* A Conv2D layer's activation (NB_LINEAR for other layers). */
NN_PRIVATE nb_activation nn_conv_activation(const nb_layer *l);
/* src/nn/torch_layout.c: nb_save_weights and nb_load_weights in
 * NB_LAYOUT_PYTORCH, for a built model (0 or -1, errors naming them). */
NN_PRIVATE int nn_torch_save(const nb_model *m, const char *path);
NN_PRIVATE int nn_torch_load(nb_model *m, const char *path, bool partial);
/* The output's features of a model (the last axis of its output shape). */
static inline int64_t nn_out_features(const nb_model *m)
{
    const nb_layer *l = m->layers[m->n - 1];
    return l->out_ndim ? l->out[l->out_ndim - 1] : 1;
}

/* Runs `call` (of type T) inside nb_error_scope_begin(fn) and returns its
 * value: anything failing inside names fn, the function the user called. */
#define NN_NAMED(fn, T, call)                                                  \
    do {                                                                       \
        const char *outer_ = nb_error_scope_begin(fn);                         \
        T r_ = (call);                                                         \
        nb_error_scope_end(outer_);                                            \
        return r_;                                                             \
    } while (0)

/* True when an error is pending (a NULL argument then keeps the first one). */
static inline bool nn_has_error(void) { return nb_last_error() != NULL; }

/* A NULL model: keep a pending error (the call that failed to make the
 * model), or say that the model is NULL. Returns -1. */
static inline int nn_null_model(const char *fn)
{
    return nn_has_error() ? -1 : nb_set_error("%s: model is NULL", fn);
}

/* Two shapes equal. */
static inline bool nn_same_shape(const nb_tensor *a, const nb_tensor *b)
{
    int n = nb_ndim(a);
    return n == nb_ndim(b) && memcmp(nb_shape(a), nb_shape(b), (size_t)n * sizeof(int64_t)) == 0;
}

/* A zero-filled heap tensor (nb_zeros) whose error, if any, names fn, the
 * function the user called: "nb_predict: out of memory for ...". */
NN_PRIVATE nb_tensor *nn_zeros(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape);
/* The same, unfilled (nb_empty), for buffers written before they are read. */
NN_PRIVATE nb_tensor *nn_empty(const char *fn, nb_dtype dtype, int ndim, const int64_t *shape);

/* After a failure deep inside (out of memory), the message names fn, the
 * function the user called, unless it names one already: "out of memory
 * allocating 64 bytes", and "nb_mem_alloc: ..." (the allocator itself, which
 * says nothing about who needed the memory), become "fn: out of memory
 * allocating 64 bytes". Returns -1. */
NN_PRIVATE int nn_blame(const char *fn);

/* The message of a failed call of `from` made on behalf of `to` starts with
 * `to`, the function the user called ("nb_load_safetensors: p: ..." becomes
 * "nb_load_weights: p: ..."). Returns -1. */
NN_PRIVATE int nn_as_caller(const char *from, const char *to);

/* Stores v as element i of a contiguous heap tensor (the caller bumps the
 * version when done writing). */
static inline void nn_put(nb_tensor *t, int64_t i, double v)
{
    if (nb_dtype_of(t) == NB_F64)
        ((double *)nb_data(t))[i] = v;
    else
        ((float *)nb_data(t))[i] = (float)v;
}

/* Input checks shared by losses and metrics (src/nn/losses.c): NULLs, graph,
 * dtypes, and equal shapes (pred and target) or labels matching pred without
 * its class axis, all in range. -1 with an error naming fn. */
typedef enum {
    NN_ELEMENTWISE, /* any shape */
    NN_CLASSES,     /* the last axis holds the classes: at least 1-D */
} nn_loss_kind;
NN_PRIVATE int nn_loss_inputs(const char *fn, const char *pn, const nb_tensor *p,
                              const char *tn, const nb_tensor *t, nn_loss_kind kind);
NN_PRIVATE int nn_loss_labels(const char *fn, const char *pn, const nb_tensor *p,
                              const nb_tensor *labels);

/* A model argument that is NULL (keeping a pending error) or not a live
 * model (freed): -1 with an error naming fn; 0 for a live model. */
NN_PRIVATE int nn_bad_model(const nb_model *m, const char *fn);

/* nb_model_loss without the checks of its arguments (fit and evaluate's
 * own data): a custom loss's errors name no function. */
NN_PRIVATE nb_tensor *nn_model_loss(nb_model *m, nb_tensor *output, nb_tensor *y);

/* y against the model's output and loss (src/nn/model.c); -1 with an error
 * naming fn. */
NN_PRIVATE int nn_check_targets(const nb_model *m, const nb_tensor *y, int64_t rows,
                                const char *fn);
/* What targets a loss takes: labels (the sparse loss), the output's shape
 * (the other built-in losses), or either (a custom loss). */
typedef enum { NN_TARGETS_ANY, NN_TARGETS_SAME, NN_TARGETS_LABELS } nn_targets;

/* A name for fit's lines (a metric's, a custom loss's): 1 to NN_NAME_LEN - 1
 * letters, digits or '_'. 0, or -1 with an error "nb_compile: <what> ...". */
NN_PRIVATE int nn_check_name(const char *what, const char *name);
/* nb_compile's metrics (.metric, .metrics, .custom_metrics, .top_k) into
 * *out, checked against the loss (loss_name, taking targets): 0, or -1 with
 * an error naming nb_compile. */
NN_PRIVATE int nn_metrics_parse(const nb_compile_opts *o, const char *loss_name,
                                nn_targets targets, nn_metrics *out);
/* The compiled metrics of a batch into v[0 .. m->metrics.n), with recording
 * off: 0, or -1 with an error (a custom metric's, or one saying what it
 * gave). */
NN_PRIVATE int nn_batch_metrics(const nb_model *m, nb_tensor *output, nb_tensor *y, double *v);

#endif
