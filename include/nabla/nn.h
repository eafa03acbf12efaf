/* nabla: neural-network building blocks, all compositions of ops (so every
 * piece is gradient-checkable and shows up in graph pictures), and a
 * Keras-style Sequential model.
 *
 * Threads: a built model may be shared by threads that only read it
 * (nb_predict, nb_evaluate, nb_model_forward and nb_model_loss, each thread
 * in graphs of its own), with the same results as on one thread. Training
 * it (nb_fit, backward into its parameters, optimizer steps) writes it, and
 * needs it to itself. */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "ops.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- activations ----------------------------------------------------------- */

typedef enum nb_activation {
    NB_LINEAR = 0, /* identity (the default) */
    NB_RELU,
    NB_LEAKY_RELU, /* slope 0.2 below zero (keras.activations.leaky_relu) */
    NB_ELU,        /* alpha 1 */
    NB_GELU,       /* exact: x * Phi(x), through erf */
    NB_SIGMOID,
    NB_TANH,
    NB_SOFTPLUS,
    NB_SOFTMAX,     /* over the last axis */
    NB_LOG_SOFTMAX, /* over the last axis */
} nb_activation;

/* x for x > 0, alpha * x otherwise (any finite alpha); the derivative at 0
 * is alpha, as in PyTorch and Keras. */
nb_tensor *nb_leaky_relu(nb_tensor *x, double alpha);
/* x for x > 0, alpha * (exp(x) - 1) otherwise (no overflow for large x). */
nb_tensor *nb_elu(nb_tensor *x, double alpha);
/* x * (1 + erf(x / sqrt 2)) / 2. */
nb_tensor *nb_gelu(nb_tensor *x);
/* log(1 + exp(x)), stable for large |x|. */
nb_tensor *nb_softplus(nb_tensor *x);
/* Applies an activation by name (softmax variants over the last axis). */
nb_tensor *nb_activate(nb_tensor *x, nb_activation a);
/* "relu", "softmax", ... and back; -1 / NULL when unknown. */
int nb_activation_from_name(const char *name);
const char *nb_activation_name(nb_activation a);

/* ---- losses: mean over the batch (the first axis) --------------------------- */

nb_tensor *nb_mse(nb_tensor *pred, nb_tensor *target);
nb_tensor *nb_mae(nb_tensor *pred, nb_tensor *target);
/* Quadratic within delta of the target, linear beyond (Keras: delta 1). */
nb_tensor *nb_huber(nb_tensor *pred, nb_tensor *target, double delta);
/* From probabilities (clipped to [1e-7, 1 - 1e-7], as Keras does) ... */
nb_tensor *nb_binary_crossentropy(nb_tensor *prob, nb_tensor *target);
/* ... and from logits (stable for any logit). */
nb_tensor *nb_binary_crossentropy_logits(nb_tensor *logits, nb_tensor *target);
/* One-hot (or soft) targets over the last axis. */
nb_tensor *nb_categorical_crossentropy(nb_tensor *prob, nb_tensor *target);
nb_tensor *nb_categorical_crossentropy_logits(nb_tensor *logits, nb_tensor *target);
/* Integer labels (whole numbers in [0, classes)), shape = pred's without the last axis. */
nb_tensor *nb_sparse_categorical_crossentropy(nb_tensor *prob, nb_tensor *labels);
nb_tensor *nb_sparse_categorical_crossentropy_logits(nb_tensor *logits, nb_tensor *labels);

/* ---- metrics: 0-d tensors, no gradient ------------------------------------------ */

/* Fraction of rows whose arg-max matches the target's arg-max / label (the
 * first maximum wins a tie). */
nb_tensor *nb_categorical_accuracy(nb_tensor *pred, nb_tensor *target);
nb_tensor *nb_sparse_categorical_accuracy(nb_tensor *pred, nb_tensor *labels);
/* Fraction of rows whose class (the target's arg-max / the label) is among
 * pred's k highest, k >= 1. Keras's tie rule: a row counts when fewer than
 * k classes score strictly higher than its class, so a tie at the k-th
 * place counts, and k >= classes counts every row; a NaN score of its
 * class never does. */
nb_tensor *nb_top_k_accuracy(nb_tensor *pred, nb_tensor *target, int k);
nb_tensor *nb_sparse_top_k_accuracy(nb_tensor *pred, nb_tensor *labels, int k);
/* Fraction of elements where (pred > 0.5) equals the target, Keras's rule
 * (a target other than 0 or 1 never matches). */
nb_tensor *nb_binary_accuracy(nb_tensor *pred, nb_tensor *target);

/* ---- layers ------------------------------------------------------------------------ */

typedef struct nb_layer nb_layer;

/* What a kind of layer does. Each built-in layer has one; a layer of your
 * own fills one in and goes into nb_sequential beside them
 * (examples/custom_layer.c). Shapes here leave out the batch axis. */
typedef struct nb_layer_type {
    const char *type;   /* shown in the summary: "Conv2D" */
    const char *prefix; /* default names: "conv2d", "conv2d_1", ... in a model */
    /* Called once, by nb_build, with the input's shape: sets the output's
     * (*out_ndim dims in out[0..NB_MAX_DIMS - 1)) and makes the layer's
     * weights with nb_layer_weight, drawing initial values from rng. 0, or
     * -1 with an error set (nb_set_error). */
    int (*build)(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                 nb_rng *rng);
    /* The output for a batch x, written with ops (recorded in the layer's
     * scope): training tells fit's batches from inference. NULL on error. */
    nb_tensor *(*forward)(nb_layer *l, nb_tensor *x, bool training);
    /* Frees ctx when the layer is freed (NULL: nothing to free). */
    void (*free_ctx)(void *ctx);
} nb_layer_type;

/* A layer of type (which must outlive it) keeping ctx (freed with it by
 * type->free_ctx, also on error); name NULL: the prefix, numbered
 * from the second of its type in the model ("dense", "dense_1", ...).
 * NULL on error. */
nb_layer *nb_layer_new(const nb_layer_type *type, void *ctx, const char *name);
/* The ctx given to nb_layer_new; the layer's name (set once in a model). */
void *nb_layer_ctx(const nb_layer *l);
const char *nb_layer_name(const nb_layer *l);
/* In build: a weight named "<layer>.<name>" with init's values (a heap
 * tensor the layer takes, also on error). Trainable weights are the model's
 * parameters, which the optimizer updates; the others are state that the
 * layer's forward updates itself (a moving mean), counted as non-trainable.
 * Checkpoints hold both. The weight's index in the layer, or -1. */
int nb_layer_weight(nb_layer *l, const char *name, nb_tensor *init, bool trainable);
/* Weight k of a built layer (nb_model_set_dtype may replace the tensors:
 * fetch them in forward, do not keep them). */
nb_tensor *nb_layer_get(const nb_layer *l, int k);
/* The model's generator for what training draws (dropout masks): seeded
 * by nb_build's seed. NULL for a layer in no model. */
nb_rng *nb_layer_rng(nb_layer *l);

/* The input's shape, batch axis left out, as the first layer of a model
 * (Keras's Input; not a layer of its own in the summary):
 * nb_sequential(nb_input(28, 28, 1), nb_conv2d(32, 3), ...). */
#define nb_input(...)                                                          \
    nb_input_((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__})
nb_layer *nb_input_(int ndim, const int64_t *shape);
/* (N, d1, d2, ...) -> (N, d1 * d2 * ...). */
nb_layer *nb_flatten(void);

/* ---- image layers: channels-last (N, height, width, channels), as Keras --------------- */

typedef struct nb_conv2d_opts {
    int64_t filters;          /* output channels (required) */
    int64_t kernel_size[2];   /* (kh, kw); {k}: (k, k) (required) */
    int64_t strides[2];       /* default 1; {s}: (s, s) */
    nb_padding padding;       /* NB_PAD_VALID (default) or NB_PAD_SAME */
    int64_t dilation_rate[2]; /* default 1 */
    int64_t groups;           /* default 1; divides the channels and filters */
    nb_activation activation; /* default NB_LINEAR */
    bool no_bias;             /* default: a bias, initialised to zero */
    int (*kernel_initializer)(nb_tensor *w, nb_rng *rng); /* default nb_init_glorot_uniform
                                                             (init.h), Keras's */
    const char *name;         /* default "conv2d", "conv2d_1", ... */
} nb_conv2d_opts;
/* Keras's Conv2D: nb_conv2d(32, {3, 3}, .activation = NB_RELU) (or {3}). The kernel is
 * (kh, kw, channels / groups, filters), Glorot-uniform; the output
 * (N, oh, ow, filters). Composition: nb_convolution. NULL on error. */
#define nb_conv2d(...) nb_conv2d_((nb_conv2d_opts){.filters = __VA_ARGS__})
nb_layer *nb_conv2d_(nb_conv2d_opts opts);

typedef struct nb_pooling_opts {
    int _defaults;        /* reserved: lets nb_max_pooling2d() take no arguments */
    int64_t pool_size[2]; /* default 2; {k}: (k, k) */
    int64_t strides[2];   /* default: pool_size */
    nb_padding padding;   /* NB_PAD_VALID (default) or NB_PAD_SAME */
    const char *name;     /* default "max_pooling2d", "max_pooling2d_1", ... */
} nb_pooling_opts;
/* Keras's MaxPooling2D and AveragePooling2D: nb_max_pooling2d() (2x2),
 * nb_max_pooling2d({3}), nb_max_pooling2d({3, 2}, .strides = {1}). Max
 * pooling sends a window's gradient to its first maximum (as PyTorch);
 * average pooling with SAME padding averages the pixels inside the image. */
#define nb_max_pooling2d(...) nb_max_pooling2d_((nb_pooling_opts){._defaults = 0, __VA_ARGS__})
#define nb_average_pooling2d(...)                                              \
    nb_average_pooling2d_((nb_pooling_opts){._defaults = 0, __VA_ARGS__})
nb_layer *nb_max_pooling2d_(nb_pooling_opts opts);
nb_layer *nb_average_pooling2d_(nb_pooling_opts opts);
/* (N, h, w, c) -> (N, c), the mean over the image. */
nb_layer *nb_global_average_pooling2d(void);
/* ---- normalisation, embedding -------------------------------------------------------- */

typedef struct nb_norm_opts {
    int _defaults;    /* reserved: lets nb_batch_normalization() take no arguments */
    double momentum;  /* BatchNormalization: 0.99 (NB_ZERO for 0); in [0, 1) */
    double epsilon;   /* 1e-3 */
    const char *name; /* default "batch_normalization", ... */
} nb_norm_opts;
/* Keras's BatchNormalization over the last axis (the channels): in
 * training, x normalised by the batch's mean and (population) variance
 * over every other axis, then gamma * x + beta; the moving mean and
 * variance (non-trainable state, saved in checkpoints) move towards them
 * by 1 - momentum each training forward, and inference uses them. */
#define nb_batch_normalization(...)                                            \
    nb_batch_normalization_((nb_norm_opts){._defaults = 0, __VA_ARGS__})
nb_layer *nb_batch_normalization_(nb_norm_opts opts);
/* Keras's LayerNormalization: each sample normalised over its last axis,
 * then gamma * x + beta; the same in training and inference. */
#define nb_layer_normalization(...)                                            \
    nb_layer_normalization_((nb_norm_opts){._defaults = 0, __VA_ARGS__})
nb_layer *nb_layer_normalization_(nb_norm_opts opts);
/* Keras's Embedding: x of indices (whole numbers in [0, input_dim), in the
 * model's dtype), (N, ...) -> (N, ..., output_dim), rows of a table drawn
 * uniform in [-0.05, 0.05]. */
nb_layer *nb_embedding(int64_t input_dim, int64_t output_dim);

/* ---- recurrent layers: (N, timesteps, features) -------------------------------------- */

typedef struct nb_rnn_opts {
    int64_t units;         /* the state's size (required) */
    bool return_sequences; /* (N, T, units), every step's output; default (N, units), the last */
    const char *name;      /* default "lstm", "lstm_1", ... */
} nb_rnn_opts;
/* Keras's SimpleRNN (h = tanh(x W + h U + b)), LSTM (gates i, f, c, o;
 * forget bias 1) and GRU (gates z, r, h; reset_after, two biases), unrolled
 * over time with ops: nb_lstm(32), nb_gru(16, .return_sequences = true).
 * Kernels Glorot-uniform, recurrent kernels orthogonal, as Keras. */
#define nb_simple_rnn(...) nb_simple_rnn_((nb_rnn_opts){.units = __VA_ARGS__})
#define nb_lstm(...) nb_lstm_((nb_rnn_opts){.units = __VA_ARGS__})
#define nb_gru(...) nb_gru_((nb_rnn_opts){.units = __VA_ARGS__})
nb_layer *nb_simple_rnn_(nb_rnn_opts opts);
nb_layer *nb_lstm_(nb_rnn_opts opts);
nb_layer *nb_gru_(nb_rnn_opts opts);
/* (N, T, features) -> (N, features), the mean over time. */
nb_layer *nb_global_average_pooling1d(void);

/* Keras's Dropout: in training, each element is zeroed with probability
 * rate and the others scaled by 1 / (1 - rate); in inference, x as it is.
 * The masks come from the model's generator (nb_build's seed). */
nb_layer *nb_dropout(double rate);
/* Keras's Activation: nb_activate(x, a), the shape kept (a BatchNormalization
 * between a Conv2D and its relu). */
nb_layer *nb_activation_layer(nb_activation a);
/* (N, ...) -> (N, shape...), the element count kept: nb_reshape_layer(28, 28, 1). */
#define nb_reshape_layer(...)                                                  \
    nb_reshape_layer_((int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)),          \
                      (int64_t[]){__VA_ARGS__})
nb_layer *nb_reshape_layer_(int ndim, const int64_t *shape);

typedef struct nb_dense_opts {
    int64_t units;            /* output features (required) */
    nb_activation activation; /* default NB_LINEAR */
    int64_t input;            /* input features; 0: from the previous layer */
    bool no_bias;             /* default: a bias, initialised to zero */
    int (*kernel_initializer)(nb_tensor *w, nb_rng *rng); /* default nb_init_glorot_uniform
                                                             (init.h): .kernel_initializer =
                                                             nb_init_he_normal */
    const char *name;         /* default "dense", "dense_1", ... (Keras's) */
} nb_dense_opts;

/* A fully connected layer y = activation(x @ kernel + bias); kernel is
 * Glorot-uniform. nb_dense(64, .activation = NB_RELU, .input = 784).
 * The model it is added to owns it. NULL on error. */
#define nb_dense(...) nb_dense_((nb_dense_opts){.units = __VA_ARGS__})
nb_layer *nb_dense_(nb_dense_opts opts);
/* Frees a layer that was never added to a model; one a model owns is
 * refused (NB_ERR_STATE) and stays with it. */
void nb_layer_free(nb_layer *layer);

/* ---- the model ----------------------------------------------------------------------- */

typedef struct nb_model nb_model;

typedef enum nb_loss {
    NB_MEAN_SQUARED_ERROR = 1,
    NB_MEAN_ABSOLUTE_ERROR,
    NB_HUBER,
    NB_BINARY_CROSSENTROPY,
    NB_CATEGORICAL_CROSSENTROPY,
    NB_SPARSE_CATEGORICAL_CROSSENTROPY,
} nb_loss;

/* Built-in metrics, named in fit's lines and the history as Keras names them. */
typedef enum nb_metric {
    NB_NO_METRIC = 0,
    NB_ACCURACY,                    /* "accuracy": sparse when y are labels (one axis fewer
                                       than the output), else binary for one output, else
                                       categorical (Keras's choice) */
    NB_CATEGORICAL_ACCURACY,        /* "categorical_accuracy" */
    NB_SPARSE_CATEGORICAL_ACCURACY, /* "sparse_categorical_accuracy" */
    NB_TOP_K_ACCURACY,              /* "top_k_categorical_accuracy", k = .top_k (5); sparse
                                       when y are labels */
    NB_BINARY_ACCURACY,             /* "binary_accuracy", threshold 0.5 */
    NB_MSE,                         /* "mean_squared_error" (nb_mse) */
    NB_MAE,                         /* "mean_absolute_error" (nb_mae) */
} nb_metric;

/* Data for fit, evaluate and predict: x is (N, features) in the model's
 * dtype, or u8 (images as files hold them, a quarter of the memory of f32),
 * which is converted batch by batch as its rows are gathered: byte b
 * becomes b * scale, computed in double and rounded to the model's dtype
 * (so with 1 / 255.0, the floats nb_scale_images gives, in [0, 1]; Keras
 * writes x.astype("float32") / 255). scale 0 means 1; for f32 or f64 x it
 * must be 0 or 1. y is (N, classes) one-hot, (N,) labels for the sparse
 * loss, or (N, outputs) for regression, in the model's dtype; nb_predict
 * does not read it. Any tensors or views (a view in a graph must outlive
 * the call):
 *   nb_dataset train = {x_train, y_train, .scale = 1 / 255.0}; */
typedef struct nb_dataset {
    nb_tensor *x, *y;
    double scale;
} nb_dataset;

/* Batches of a data set for a training loop of one's own, gathered as
 * nb_fit gathers them (docs/data.md, examples/custom_loop.c):
 *   nb_batches *it = nb_batches_new(train, .batch_size = 64, .seed = 1);
 *   for (int epoch = 0; epoch < 5; epoch++)
 *       for (nb_tensor *x, *y; nb_batches_next(it, &x, &y) > 0;) { ... }
 *   nb_batches_free(it);
 * Each epoch (the first too) shuffles the order the last one left with
 * Fisher-Yates from the generator of .seed, so the batches are nb_fit's for
 * the same .seed, .batch_size and .no_shuffle. */
typedef struct nb_batches nb_batches;
typedef struct nb_batches_opts {
    nb_dataset data; /* x required, y optional */
    int batch_size;  /* default 32 */
    uint64_t seed;   /* shuffling; default 0 */
    bool no_shuffle; /* default: shuffle every epoch, as nb_fit */
    bool drop_last;  /* default: the last batch may be smaller; with this it is skipped */
    nb_dtype dtype;  /* of the batches of u8 x: NB_F32 (default) or NB_F64 */
} nb_batches_opts;
/* An iterator over the data (any tensors or views, which must outlive it:
 * a strided view is packed once here). Its batches: x's rows, u8 converted
 * to .dtype with the data's scale (as nb_fit, see nb_dataset), float x as it
 * is; y's rows (u8 y as f32). NULL on error. */
#define nb_batches_new(...) nb_batches_new_((nb_batches_opts){.data = __VA_ARGS__})
nb_batches *nb_batches_new_(nb_batches_opts opts);
/* The next batch in *x and *y (y may be NULL when d has no y): heap tensors
 * the iterator owns and rewrites at the next call (the last batch has rows
 * of its own). 1 with a batch; 0 at the end of an epoch (*x, *y NULL), after
 * which the next call begins the next epoch; -1 on error. No allocation. */
int nb_batches_next(nb_batches *it, nb_tensor **x, nb_tensor **y);
/* Batches per epoch. -1 on error. */
int64_t nb_batches_count(const nb_batches *it);
/* Frees the iterator and its batches (NULL is ignored). */
void nb_batches_free(nb_batches *it);

/* A model of the given layers, in order (it takes ownership of them):
 * nb_sequential(nb_dense(64, ...), nb_dense(10, ...)). NULL on error; the
 * layers are freed then, each once, except any a model already owned. */
#define nb_sequential(...)                                                     \
    nb_sequential_((int)(sizeof((nb_layer *[]){__VA_ARGS__}) / sizeof(nb_layer *)), \
                   (nb_layer *[]){__VA_ARGS__})
nb_model *nb_sequential_(int n, nb_layer *const layers[]);
/* Appends a layer (the model owns it, also on error). A layer already in
 * this model or another is refused with NB_ERR_STATE and left with its
 * model, never freed twice. 0 or -1. */
int nb_model_add(nb_model *m, nb_layer *layer);
/* Frees the model, its layers, parameters and optimizer. The model functions
 * refuse a freed model handle with NB_ERR_STATE (the live models are
 * listed, so nothing freed is read). */
void nb_model_free(nb_model *m);

/* Creates the weights for inputs of `features` (a flat input), or of the
 * shape nb_input or the first layer's .input declares (features 0), drawing
 * initial values (and later dropout masks) from seed. Done by nb_compile
 * when the input is declared. 0 or -1; a failed build frees what it made,
 * so it can be tried again. */
int nb_build(nb_model *m, int64_t features, uint64_t seed);

/* Training or inference mode of nb_model_forward (Keras's training
 * argument, PyTorch's train()/eval()): layers such as Dropout act only in
 * training. Off until set. nb_fit's batches run in training, its
 * validation, nb_evaluate and nb_predict in inference, whatever it is. */
void nb_model_set_training(nb_model *m, bool training);
bool nb_model_training(const nb_model *m);

/* Converts the parameters to dtype (f32 by default; f64 to gradient-check a
 * model). Call it before training: optimizer state is not converted. */
int nb_model_set_dtype(nb_model *m, nb_dtype dtype);

/* At most this many metrics, built-in and custom together. */
#define NB_MAX_METRICS 8

/* A loss or metric of your own (docs/layers.md): fn(output, y, ctx) written
 * with ops, where output is the model's (probabilities after a softmax) and
 * y the batch's targets, gives a 0-d tensor, the batch's mean (NULL with an
 * error set on failure); fit and evaluate average it over the rows. Called
 * on the thread that runs them (several at once for a model threads share).
 * A metric's fn runs with recording off. name: 1 to 47 letters, digits or
 * '_', shown in fit's lines and the history (a metric's; a loss's is
 * optional and names it in errors, fit shows "loss"). */
typedef struct nb_custom_fn {
    nb_tensor *(*fn)(nb_tensor *output, nb_tensor *y, void *ctx);
    void *ctx;
    const char *name;
} nb_custom_fn;

/* Keras-style: a loss (built-in or custom) and the metrics to report. */
typedef struct nb_compile_opts {
    int _defaults;      /* reserved: lets the loss and metric come first, unnamed */
    nb_loss loss;       /* a built-in loss; 0 with .custom_loss */
    nb_metric metric;   /* the first metric; NB_NO_METRIC (0): none */
    nb_metric metrics[NB_MAX_METRICS - 1];      /* more built-ins, after it; 0 ends */
    nb_custom_fn custom_loss;                   /* instead of .loss */
    nb_custom_fn custom_metrics[NB_MAX_METRICS]; /* after the built-ins; fn NULL ends */
    int top_k;          /* NB_TOP_K_ACCURACY's k; 0: 5 */
} nb_compile_opts;

/* Sets the optimizer (the model takes ownership, also on error), the loss
 * and the metrics, and builds the model when it can:
 *   nb_compile(m, nb_adam(), NB_CATEGORICAL_CROSSENTROPY, NB_ACCURACY)
 *   nb_compile(m, nb_adam(), NB_SPARSE_CATEGORICAL_CROSSENTROPY, NB_ACCURACY,
 *              .metrics = {NB_TOP_K_ACCURACY}, .top_k = 3)
 *   nb_compile(m, nb_adam(), .custom_loss = {my_loss, NULL, "my_loss"},
 *              .custom_metrics = {{my_metric, NULL, "my_metric"}})
 * The metrics are reported in that order: .metric, .metrics, then
 * .custom_metrics. Refused: unknown values, no loss or two, a metric whose
 * targets the built-in loss does not take (sparse against one-hot), more
 * than NB_MAX_METRICS, a repeated name, a custom entry without a fn.
 * Compiling again with the model's own optimizer keeps it; another model's
 * is refused (NB_ERR_STATE) and left with that model. Softmax + categorical
 * cross-entropy is computed from the logits through log-softmax, as Keras
 * does. 0 or -1. */
#define nb_compile(m, opt, ...)                                                \
    nb_compile_((m), (opt), (nb_compile_opts){._defaults = 0, __VA_ARGS__})
int nb_compile_(nb_model *m, nb_optimizer *opt, nb_compile_opts opts);

/* Prints Keras 3's summary table: layers, output shapes, parameter counts
 * (long cells wrapped as Keras wraps them), the totals; on a terminal in
 * Keras's bold and colours. */
int nb_summary(const nb_model *m, FILE *f);
/* A picture of the layers, as Keras's plot_model: a box per layer with its
 * name, type, input and output shapes, activation and parameter count,
 * arrows between them, then the loss (a softmax it takes from the logits
 * marked as fused into it). path: .dot writes the DOT text; .svg or .png
 * renders it (needs Graphviz). Needs a built model. 0, or -1. */
int nb_plot_model(const nb_model *m, const char *path);
/* Every weight's elements: the parameters and the non-trainable state. */
int64_t nb_count_params(const nb_model *m);

/* Per-epoch results of fit, owned by the model (valid until the next fit). */
typedef struct nb_history {
    int epochs;
    int initial_epoch;             /* the first one's number, from 0: 0, or where a .resume
                                      fit began (entry e is epoch initial_epoch + e) */
    double *loss, *metric;         /* training, averaged over the epoch; metric is
                                      metrics[0] (NAN without metrics) */
    double *val_loss, *val_metric; /* NAN when there was no validation data */
    double *seconds;               /* wall time of each epoch's training */
    int64_t *skipped;              /* batches skipped in each epoch (.skip_nonfinite);
                                      loss and metrics are means over the others */
    int nmetrics;                  /* the compiled metrics, in nb_compile's order: */
    const char *metric_names[NB_MAX_METRICS];                /* "accuracy", ... */
    double *metrics[NB_MAX_METRICS], *val_metrics[NB_MAX_METRICS]; /* [i][epoch] */
} nb_history;

/* .verbose (nb_fit, nb_evaluate, nb_predict) as Keras's "auto": a progress bar (1) on a terminal, a
 * line per epoch (2) otherwise. */
#define NB_VERBOSE_AUTO (-1)

/* Draws h's training curves with PLplot to path, .svg or .png by the
 * extension: a panel for the loss and one per metric, training and
 * validation (if any) against the epoch (initial_epoch + 1 on), with a
 * legend. Non-finite values leave gaps. 0, or -1 with an error (NB_ERR_STATE
 * when built without PLplot). One plot at a time: calls from several
 * threads wait for each other. */
int nb_plot_history(const nb_history *h, const char *path);
/* Whether this build can draw curves (was built with PLplot). */
bool nb_plot_can_render(void);

typedef struct nb_fit_opts {
    nb_dataset data;       /* training data (required) */
    int epochs;            /* default 1 */
    int batch_size;        /* default 32 */
    nb_dataset validation; /* optional */
    double validation_split; /* in (0, 1): the last fraction of data's rows, before
                                any shuffling, held out for validation (Keras's
                                rule); not with .validation */
    uint64_t seed;         /* shuffling; default 0 */
    bool resume;           /* go on with the model's training (Keras's initial_epoch): from
                              the epochs its last fit or nb_load_checkpoint left, to .epochs
                              in all, its shuffling stream going on where it was; .seed, if
                              given, must be that stream's (an untrained model starts at
                              epoch 0 with .seed's). Default: epoch 0, .seed's stream */
    bool no_shuffle;       /* default: shuffle every epoch */
    bool keep_subnormals;  /* default: flush subnormals to zero while training */
    bool skip_nonfinite;   /* default: a batch whose loss or gradients hold a NaN or
                              an infinity stops the fit with an error; with this it
                              is skipped (no update) and counted in the history */
    int verbose;           /* what fit prints, as Keras 3's verbose: 0 nothing (the
                              default: Keras's is "auto"), 1 a progress bar (in
                              Keras's colours on a terminal), 2 a line per epoch
                              ("188/188 - 1s - 6ms/step - accuracy: 0.8047 - loss:
                              0.5583 - val_accuracy: ..."; the loss and metrics
                              sorted by name, then the validation's), or
                              NB_VERBOSE_AUTO; an "Epoch 2/10" line before each
                              epoch when there are several */
    FILE *out;             /* default stdout */
    const char *plot;      /* .svg or .png: the curves so far (nb_plot_history) drawn
                              there after every epoch, to watch; needs PLplot.
                              Distributed: given on every rank, drawn by rank 0 */
    const struct nb_callback *callbacks; /* called as fit goes (below); ncallbacks of them */
    int ncallbacks;
} nb_fit_opts;

/* What fit has seen so far, for callbacks: after batch `batch` of epoch
 * `epoch` (from 0, counting the epochs a .resume fit goes on from) the
 * running means of the epoch's loss and metrics; after an epoch (batch -1)
 * also the validation's (NAN without). metric is metrics[0] (NAN without
 * metrics). */
typedef struct nb_logs {
    int epoch;
    int64_t batch;
    double loss, metric, val_loss, val_metric;
    int nmetrics;
    const char *const *metric_names; /* the history's */
    double metrics[NB_MAX_METRICS], val_metrics[NB_MAX_METRICS];
} nb_logs;
/* A callback returns 0 to go on, 1 to stop training (fit then returns the
 * history so far), or -1 with an error set to fail the fit. */
typedef int (*nb_callback_fn)(nb_model *m, const nb_logs *logs, void *ctx);
typedef struct nb_callback {
    nb_callback_fn on_batch, on_epoch; /* either may be NULL */
    void *ctx;
} nb_callback;

/* Keras's EarlyStopping, as a callback on the epochs: stop once the
 * monitored value (val_loss unless .monitor_loss) has not improved by more
 * than min_delta for patience epochs; with restore_best_weights, the
 * weights (and state) of the best epoch are put back when it stops.
 * The struct is its state: keep it alive through the fit, free it with
 * nb_early_stopping_free. */
typedef struct nb_early_stopping {
    int patience;              /* epochs without improvement allowed; 0 */
    double min_delta;          /* 0 */
    bool monitor_loss;         /* watch the training loss instead of val_loss */
    bool restore_best_weights; /* false */
    /* state, zero to start */
    double best;
    int best_epoch, wait;
    bool stopped;
    nb_tensor **saved;
    int nsaved;
} nb_early_stopping;
/* The callback of es (on_epoch). */
nb_callback nb_early_stopping_callback(nb_early_stopping *es);

/* Keras's ModelCheckpoint, as a callback on the epochs: the model's weights
 * saved to path (nb_save_weights: atomic) after every epoch, or with
 * save_best_only after each epoch that improves the monitored value
 * (val_loss unless .monitor_loss); with .full, a whole training checkpoint
 * (nb_save_checkpoint), from which an interrupted run resumes. */
typedef struct nb_model_checkpoint {
    const char *path;    /* required */
    bool full;           /* nb_save_checkpoint instead of nb_save_weights */
    bool save_best_only; /* false */
    bool monitor_loss;   /* watch the training loss instead of val_loss */
    /* state, zero to start */
    double best;
    int saved_epoch;     /* the last epoch saved, from 0; -1 before any */
    int saves;
} nb_model_checkpoint;
nb_callback nb_model_checkpoint_callback(nb_model_checkpoint *ck);
/* Frees the weights es saved (its fields stay). */
void nb_early_stopping_free(nb_early_stopping *es);

/* Trains: nb_fit(m, train, .epochs = 10, .validation = test). Needs a
 * compiled model; makes no heap allocation per step. Never stores a NaN or
 * an infinity in the weights: a batch whose loss or gradients hold one
 * stops the fit, with the weights of the last good step and an error
 * naming the batch ("nb_fit: epoch 3, batch 17: the loss is NaN; ..."),
 * or with .skip_nonfinite is skipped and counted (history->skipped). The data may be any
 * tensors or views (a strided view is packed once per call). Trains with
 * nb_set_flush_subnormals(true) unless .keep_subnormals (Adam's moments of
 * idle units decay into subnormals, where arithmetic is ~100x slower; the
 * results differ only below ~1e-38 in f32) and gives the caller's setting
 * back when it returns, also on error. NULL on error. */
#define nb_fit(m, ...) nb_fit_((m), (nb_fit_opts){.data = __VA_ARGS__})
const nb_history *nb_fit_(nb_model *m, nb_fit_opts opts);

typedef struct nb_evaluate_opts {
    nb_dataset data;   /* required */
    int batch_size;    /* default 32 */
    int verbose;       /* as nb_fit's (0 silent, the default; 1 a progress bar; 2
                          Keras's line "313/313 - 0s - 669us/step - accuracy: 0.8106
                          - loss: 0.5523"; NB_VERBOSE_AUTO) */
    FILE *out;         /* default stdout */
    double *loss;      /* gets the mean loss; may be NULL */
    double *metrics;   /* gets the compiled metrics in order, at most nmetrics of
                          them (the first ones), NAN in entries past the model's
                          metrics; NULL, or nmetrics >= 1 entries */
    int nmetrics;
} nb_evaluate_opts;
/* Mean loss and metrics over data, as Keras's evaluate:
 * nb_evaluate(m, test, .loss = &loss, .metrics = &acc, .nmetrics = 1). Needs
 * a compiled model. Bad arguments leave the results untouched; a failed
 * evaluation gives them NAN. 0 or -1. */
#define nb_evaluate(m, ...) nb_evaluate_((m), (nb_evaluate_opts){.data = __VA_ARGS__})
int nb_evaluate_(nb_model *m, nb_evaluate_opts opts);

typedef struct nb_predict_opts {
    nb_dataset data; /* required; data.y is not read */
    int batch_size;  /* default 32 */
    int verbose;     /* as nb_evaluate's; the line is "313/313 - 0s - 1ms/step" */
    FILE *out;       /* default stdout */
} nb_predict_opts;
/* The model's outputs for data.x (u8 x converted as nb_fit does, a batch at
 * a time) as a new (N, outputs) heap tensor (caller frees):
 * nb_predict(m, test), or nb_predict(m, (nb_dataset){.x = x}) for a float
 * tensor. NULL on error. */
#define nb_predict(m, ...) nb_predict_((m), (nb_predict_opts){.data = __VA_ARGS__})
nb_tensor *nb_predict_(nb_model *m, nb_predict_opts opts);
/* The model's output for x in the current graph, recorded, with each layer
 * in its own scope: for custom training loops and pictures. */
nb_tensor *nb_model_forward(nb_model *m, nb_tensor *x);
/* The loss the model was compiled with, of a forward's output. For the last
 * nb_model_forward's output on this thread, while the graph it was made in
 * is current and not reset since, a softmax (sigmoid) output's cross-entropy is taken from
 * its logits, as Keras does; any other output's from its values. */
nb_tensor *nb_model_loss(nb_model *m, nb_tensor *output, nb_tensor *y);
/* The trainable parameters, in layer order (Dense: kernel, bias). */
int nb_model_params(const nb_model *m, nb_tensor *const **params);
/* The optimizer the model was compiled with, or NULL. */
nb_optimizer *nb_model_optimizer(const nb_model *m);

/* Makes m data-parallel over the ranks of nb_dist_init (dist.h), as
 * PyTorch's DistributedDataParallel wraps a model; call it after
 * nb_compile (and nb_load_checkpoint, on every rank). Collective: every rank
 * must have built the same model (layers, shapes, dtype; compiled with the
 * same optimizer, at the same step), which is checked, and every rank's
 * weights and non-trainable state become rank 0's. Then nb_fit takes each
 * rank's shard of every global batch (.batch_size rows, as with one
 * process), sums the gradients over the ranks as the backward goes, and
 * reports the global loss and metrics on every rank (rank 0 prints, with
 * .verbose 1 or auto a line per epoch: no progress bar); the non-trainable state is averaged over the ranks after each
 * epoch; nb_evaluate and nb_predict shard the rows and gather the results
 * on every rank (rank 0 prints their line); nb_save_weights and nb_save_checkpoint write on rank 0
 * only. Each rank draws its own dropout masks. With one rank it changes
 * nothing. 0 or -1. */
int nb_model_distribute(nb_model *m);

/* How weights are named and laid out in a file (docs/data.md):
 * NB_LAYOUT_KERAS (0): nabla's names and Keras's layouts, "dense.kernel"
 *   (in, out), "dense.bias", every weight and state;
 * NB_LAYOUT_PYTORCH: the state_dict of the equivalent torch.nn.Sequential,
 *   "0.weight" (out, in), "0.bias", "2.weight", ... (an activation is a
 *   module too), for load_state_dict after safetensors.torch.load_file.
 *   Dense, Conv2D (weight (out, in, kh, kw)), Embedding, LayerNormalization
 *   and the layers without weights map (images channels-first, as torch's);
 *   another layer (BatchNormalization, the recurrent ones, a custom one, a
 *   Dense on an image) is an error naming it. */
typedef enum nb_layout { NB_LAYOUT_KERAS = 0, NB_LAYOUT_PYTORCH } nb_layout;

typedef struct nb_save_weights_args {
    const nb_model *model;
    const char *path;
    nb_layout layout; /* default NB_LAYOUT_KERAS */
} nb_save_weights_args;
/* Weights (parameters and state) in the safetensors format, f32 (or the
 * model's dtype), through nb_save_safetensors (atomic; the file records
 * nabla's format version and the CRC-32 of its data):
 *   nb_save_weights(m, path)
 *   nb_save_weights(m, path, .layout = NB_LAYOUT_PYTORCH)
 * 0 or -1. */
#define nb_save_weights(...) nb_save_weights_((nb_save_weights_args){.model = __VA_ARGS__})
int nb_save_weights_(nb_save_weights_args args);

/* The version of nabla's training checkpoints, recorded in their metadata
 * as "nabla_checkpoint". */
#define NB_CHECKPOINT_FORMAT 1

/* A training checkpoint in one safetensors file (atomic, as nb_save_weights):
 * the weights under their names, the optimizer's state
 * ("optimizer.dense.kernel.m", ..., nb_optimizer_state) and, in its
 * metadata, the optimizer's kind, options and step counts, the model's
 * generator (dropout masks) and where training stands (epochs done, the
 * shuffling stream). Needs a compiled model; makes the optimizer's state if
 * no step has (as the first step would). 0 or -1. */
int nb_save_checkpoint(nb_model *m, const char *path);
/* Restores all of that into a compiled model of the same layers, dtype and
 * optimizer (kind and options), so that nb_fit(m, ..., .resume = true) goes
 * on bit for bit as the uninterrupted training would have. The first
 * difference (another optimizer or option, other layers, another dtype, a
 * tensor missing, a damaged file) is an error naming it, and the model is
 * left as it was (but for its optimizer's state, made if no step had made
 * it, with the values the first step starts from). 0 or -1. */
int nb_load_checkpoint(nb_model *m, const char *path);

typedef struct nb_load_weights_args {
    nb_model *model;
    const char *path;
    bool partial;     /* as nb_load_args.partial */
    nb_layout layout; /* the file's, as nb_save_weights wrote it; default NB_LAYOUT_KERAS */
} nb_load_weights_args;
/* Loads a checkpoint into a built model, through nb_load_safetensors:
 *   nb_load_weights(m, path)                   every tensor, as saved
 *   nb_load_weights(m, path, .partial = true)  the tensors both have
 *   nb_load_weights(m, path, .layout = NB_LAYOUT_PYTORCH)  a torch state_dict
 * By default a model whose tensors differ from the file's (extra, missing,
 * reordered, another shape) is an error naming the first difference; the
 * checksum is verified. f32 and f64 in the file convert. 0 or -1. */
#define nb_load_weights(...) nb_load_weights_((nb_load_weights_args){.model = __VA_ARGS__})
int nb_load_weights_(nb_load_weights_args args);

#ifdef __cplusplus
}
#endif
#endif
