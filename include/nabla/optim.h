/* nabla: optimizers (Keras 3 formulas; docs/optimizers.md). Each update is
 * written with nabla ops under no-grad, its temporaries in the current
 * graph's arena, and stored in place (nb_assign). Defaults are Keras's; a
 * field left 0 takes its default (NB_ZERO is an explicit 0). */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Learning-rate schedules: the rate used at step t (counting from 0; an
 * optimizer's k-th update, k = 1, 2, ..., uses t = k - 1). */
typedef enum nb_schedule_kind {
    NB_CONSTANT = 0,
    NB_STEP_DECAY,        /* lr * gamma^floor(t / step_size) */
    NB_EXPONENTIAL_DECAY, /* lr * rate^(t / steps) */
    NB_COSINE_DECAY,      /* lr * ((1 - alpha) * (1 + cos(pi * min(t, steps) / steps)) / 2 + alpha) */
} nb_schedule_kind;

typedef struct nb_schedule {
    nb_schedule_kind kind;
    int64_t steps; /* step_size (step), decay_steps (exponential, cosine): > 0 */
    double rate;   /* gamma (step), decay_rate (exponential): > 0;
                      alpha (cosine): the final fraction of lr, in [0, 1].
                      Both stay 0 for NB_CONSTANT. */
} nb_schedule;

/* The learning rate of schedule s with base rate lr at step t; NAN and an
 * error for an invalid schedule or t < 0. */
double nb_schedule_lr(nb_schedule s, double lr, int64_t t);

/* An explicit zero for an option whose 0 means "the default": for example
 * nb_adagrad(.initial_accumulator = NB_ZERO) (PyTorch's Adagrad),
 * nb_rmsprop(.rho = NB_ZERO), nb_adamw(.weight_decay = NB_ZERO). It is -0.0,
 * which the constructors tell apart from a field left 0. lr and eps refuse
 * it. */
#define NB_ZERO (-0.0)

/* Options; a field left 0 (or false) takes the default shown, and NB_ZERO
 * sets an exact 0 where 0 is allowed. Negative or non-finite values, and
 * options the optimizer does not read, make the constructor fail. */
typedef struct nb_optim_opts {
    int _defaults;       /* reserved: lets nb_adam() take no arguments */
    double lr;           /* SGD 0.01, the others 0.001; > 0 */
    double momentum;     /* SGD, RMSprop: 0 (off); in [0, 1) */
    bool nesterov;       /* SGD: false */
    double betas[2];     /* Adam, AdamW: {beta1, beta2}, as PyTorch's betas:
                            .betas = {0.0, 0.999}. Left {0, 0}: {0.9, 0.999}.
                            Each in [0, 1); once one is set both are taken as
                            given, and a plain 0 for beta2 is refused (it is
                            what `.betas = {0.5}` leaves; NB_ZERO if meant) */
    double rho;          /* RMSprop: 0.9; in [0, 1) */
    double eps;          /* 1e-7. Adam adds it to sqrt(v); RMSprop and Adagrad
                            under the root, sqrt(v + eps), as Keras does */
    double weight_decay; /* decoupled, p -= lr * wd * p before the update
                            (Keras); AdamW 0.004, others 0 */
    double initial_accumulator; /* Adagrad: 0.1 (PyTorch's is NB_ZERO) */
    double clipnorm;     /* > 0: scale gradients so their GLOBAL L2 norm (over
                            all parameters, Keras's global_clipnorm) is at
                            most this; applied after clipvalue */
    double clipvalue;    /* > 0: clamp each gradient element to [-v, v] */
    nb_schedule schedule; /* default: constant */
} nb_optim_opts;

typedef struct nb_optimizer nb_optimizer;

/* nb_adam(), nb_adam(.betas = {0.0, 0.999}),
 * nb_sgd(.lr = 0.1, .momentum = 0.9, .nesterov = true), ...
 * NULL on error (a negative rate, say). Free with nb_optimizer_free, unless
 * a model took it. */
#define nb_sgd(...) nb_sgd_((nb_optim_opts){._defaults = 0, __VA_ARGS__})
#define nb_adam(...) nb_adam_((nb_optim_opts){._defaults = 0, __VA_ARGS__})
#define nb_adamw(...) nb_adamw_((nb_optim_opts){._defaults = 0, __VA_ARGS__})
#define nb_rmsprop(...) nb_rmsprop_((nb_optim_opts){._defaults = 0, __VA_ARGS__})
#define nb_adagrad(...) nb_adagrad_((nb_optim_opts){._defaults = 0, __VA_ARGS__})
nb_optimizer *nb_sgd_(nb_optim_opts o);
nb_optimizer *nb_adam_(nb_optim_opts o);
nb_optimizer *nb_adamw_(nb_optim_opts o);
nb_optimizer *nb_rmsprop_(nb_optim_opts o);
nb_optimizer *nb_adagrad_(nb_optim_opts o);
void nb_optimizer_free(nb_optimizer *opt);

typedef struct nb_step_args {
    nb_optimizer *opt;
    int n;                    /* number of parameters */
    nb_tensor *const *params; /* heap tensors: the same list every step */
    const nb_tensor *loss;    /* optional: checked as well (a NaN loss refuses the step) */
    bool skip_nonfinite;      /* a NaN or an infinity skips the step (returns 1,
                                 counted, no error) instead of failing */
} nb_step_args;

/* One update of params (heap tensors) from their .grad;
 *   nb_optimizer_step(opt, n, params)
 *   nb_optimizer_step(opt, n, params, .loss = loss, .skip_nonfinite = true)
 * Params without a grad are left alone (no decay either). Clipping works on
 * temporaries: the .grad tensors are not changed. The first step that
 * updates fixes the parameter list and makes the state (heap tensors in each
 * parameter's dtype and shape, freed with the optimizer); later calls must
 * pass the same tensors (before the first update, another list makes the
 * state anew). Needs a current graph for temporaries; runs with
 * recording (and anomaly mode) off and restores them. Everything the
 * optimizer keeps is made by the first step; after it a step allocates
 * nothing (once the graph's arena is warm).
 * Nothing non-finite is ever stored: every new value is computed first, and
 * when the loss (if given), a gradient after clipping, or a new parameter
 * value holds a NaN or an infinity, the step changes nothing (no parameter,
 * no state, no step count) and fails with an error naming the parameter
 * and the element: "nb_optimizer_step: the gradient of 'dense.kernel'
 * (4,8) is NaN at element (2,3); nothing was updated". With .skip_nonfinite
 * it returns 1 instead and counts the skip (nb_optimizer_skipped).
 * 0 when updated, 1 when skipped, -1 with an error. */
#define nb_optimizer_step(...) nb_optimizer_step_((nb_step_args){.opt = __VA_ARGS__})
int nb_optimizer_step_(nb_step_args a);
/* Steps skipped for a NaN or an infinity (.skip_nonfinite) so far. */
int64_t nb_optimizer_skipped(const nb_optimizer *opt);
/* Steps taken, and the learning rate the next step will use. */
int64_t nb_optimizer_steps(const nb_optimizer *opt);
double nb_optimizer_lr(const nb_optimizer *opt);
/* "adam", "sgd", ... */
const char *nb_optimizer_name(const nb_optimizer *opt);

/* For checkpoints (nb_save_checkpoint does all of this for a model; a
 * hand-written loop saves its parameters and these, as PyTorch's
 * optimizer.state_dict()): */
/* The options the optimizer runs with, as its constructor would be given
 * them to make it again (Keras's get_config): defaults filled in, options
 * it does not read 0, a 0 whose default is not 0 as NB_ZERO. 0 or -1. */
int nb_optimizer_opts(const nb_optimizer *opt, nb_optim_opts *opts);
/* The state for params (Keras's optimizer.variables), made now if no step
 * has made it, with the values the first step starts from. Into *state: an
 * array of the count returned, each parameter's state tensors in turn,
 * heap tensors of its dtype and shape named "optimizer.<param>.<slot>"
 * ("optimizer.3.m" for an unnamed params[3]); slots: sgd with momentum
 * "velocity"; adam and adamw "m", "v"; rmsprop "v", then "momentum" with
 * momentum; adagrad "accumulator"; none for plain sgd. The optimizer owns
 * them; writing into them (nb_load_safetensors) sets the state. Valid until
 * the next step, which swaps in other buffers. params as for a step: after
 * the first update the list is fixed; before it, another list makes the
 * state anew. -1 on error. */
int nb_optimizer_state(nb_optimizer *opt, int n, nb_tensor *const params[],
                       nb_tensor *const **state);
/* Sets the counts of steps taken (the schedule and Adam's bias corrections
 * follow them) and skipped, as a checkpoint recorded them; steps > 0 needs
 * the state made (nb_optimizer_state). 0 or -1. */
int nb_optimizer_set_steps(nb_optimizer *opt, int64_t steps, int64_t skipped);

/* For hand-written loops (PyTorch's clip_grad_norm_ / clip_grad_value_):
 * these rewrite the .grad tensors in place (bumping their versions) and skip
 * params without a grad. They use the current graph for temporaries, or a
 * short-lived one of their own if there is none. */
/* Scales the gradients of params so that their global L2 norm is at most
 * max_norm (left alone if the norm is not finite); returns the norm before
 * clipping, or -1 on error. */
double nb_clip_grad_norm(int n, nb_tensor *const params[], double max_norm);
/* Clamps every gradient element to [-v, v] (v > 0). 0 or -1. */
int nb_clip_grad_value(int n, nb_tensor *const params[], double v);

#ifdef __cplusplus
}
#endif
#endif
