/* What the optimizers' files (optimizers.c: construction and the step;
 * state.c: the state as checkpoints see it) share. Like the rest of
 * optim/, written on the public API only. Not installed. */
#ifndef NABLA_OPTIM_INTERNAL_H
#define NABLA_OPTIM_INTERNAL_H

#include "nabla/nabla.h"

#if defined(__GNUC__)
#define OPTIM_PRIVATE __attribute__((visibility("hidden")))
#else
#define OPTIM_PRIVATE
#endif

typedef enum { SGD, ADAM, RMSPROP, ADAGRAD } algo;

/* Which options an optimizer reads; giving it another one is an error. */
enum {
    USES_MOMENTUM = 1u << 0,
    USES_NESTEROV = 1u << 1,
    USES_BETAS = 1u << 2,
    USES_RHO = 1u << 3,
    USES_INITIAL_ACC = 1u << 4,
};

typedef struct {
    algo algo;
    const char *name; /* nb_optimizer_name */
    const char *fn;   /* the constructor, for messages */
    double lr, weight_decay;
    unsigned uses;
} kind_info;

struct nb_optimizer {
    const kind_info *kind;
    nb_optim_opts o;      /* defaults filled in, NB_ZERO made a plain 0 */
    double beta1, beta2;  /* o.betas, resolved */
    int64_t t;            /* steps taken */
    int n;                /* parameters, fixed by the first update; -1 before the state is made */
    nb_tensor **params;   /* copies of the pointers the state was made for */
    nb_tensor **s1, **s2; /* state per parameter, NULL where unused */
    /* The parameters as they were before the step, written beside the new
     * values (stored in place) to undo a step that turns out not to be
     * finite. The new state goes to o1/o2, which become s1/s2 once every
     * parameter is stored: the old state stays where it was. */
    nb_tensor **old, **o1, **o2;
    nb_tensor **view;     /* nb_optimizer_state's array: s1/s2 of each parameter in turn */
    bool has_s1, has_s2;  /* which states the algorithm keeps */
    nb_fused *fused;      /* the update (update_fn) */
    int64_t skipped; /* steps skipped for a NaN or an infinity */
};

/* The list params[0..n) against the one the state was made for: after the
 * first update it must be the same (an error naming fn otherwise); before,
 * any list of distinct f32/f64 heap tensors. 0 or -1. */
OPTIM_PRIVATE int optim_check_list(const nb_optimizer *opt, const char *fn, int n,
                                   nb_tensor *const params[]);
/* Whether the state exists and was made for exactly params[0..n). */
OPTIM_PRIVATE bool optim_same_list(const nb_optimizer *opt, int n, nb_tensor *const params[]);
/* Frees any state and makes it for params (initial values, as the first
 * step does). 0, or -1 with an error and no state. */
OPTIM_PRIVATE int optim_make_state(nb_optimizer *opt, int n, nb_tensor *const params[]);

#endif
