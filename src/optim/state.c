/* An optimizer's state as checkpoints see it (optim.h): its options as
 * resolved, its state tensors, its step counts. Like the rest of optim/,
 * on the public API only. */
#include "optim_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* v, or NB_ZERO where v is 0 (an option whose plain 0 means a default
 * that is not 0). */
static double zero_marked(double v) { return v == 0 ? NB_ZERO : v; }

int nb_optimizer_opts(const nb_optimizer *opt, nb_optim_opts *opts)
{
    if (!opt || !opts)
        return nb_set_error("nb_optimizer_opts: %s is NULL", opt ? "opts" : "optimizer");
    const kind_info *k = opt->kind;
    nb_optim_opts o = opt->o;
    /* What the constructor would be given to make this optimizer again:
     * options it does not read are 0, and an option whose default is not 0
     * carries a 0 as NB_ZERO. */
    if (!(k->uses & USES_RHO))
        o.rho = 0;
    else
        o.rho = zero_marked(o.rho);
    if (!(k->uses & USES_INITIAL_ACC))
        o.initial_accumulator = 0;
    else
        o.initial_accumulator = zero_marked(o.initial_accumulator);
    if (k->weight_decay != 0)
        o.weight_decay = zero_marked(o.weight_decay);
    o.betas[0] = o.betas[1] = 0;
    if (k->uses & USES_BETAS) {
        o.betas[0] = zero_marked(opt->beta1);
        o.betas[1] = zero_marked(opt->beta2);
    }
    *opts = o;
    return 0;
}

int nb_optimizer_state(nb_optimizer *opt, int n, nb_tensor *const params[],
                       nb_tensor *const **state)
{
    const char *fn = "nb_optimizer_state";
    if (!opt || !state)
        return nb_set_error("%s: %s is NULL", fn, opt ? "state" : "optimizer");
    *state = NULL;
    if (optim_check_list(opt, fn, n, params) < 0)
        return -1;
    if (!optim_same_list(opt, n, params) && optim_make_state(opt, n, params) < 0) {
        /* The state's own message names the step, which makes it too. */
        const char *e = nb_last_error(), *step = "nb_optimizer_step: ";
        if (e && strncmp(e, step, strlen(step)) == 0) {
            char rest[512];
            snprintf(rest, sizeof rest, "%s", e + strlen(step));
            nb_set_error_code(nb_last_error_code(), "%s: %s", fn, rest);
        }
        return -1;
    }
    int k = 0;
    for (int i = 0; i < opt->n; i++) {
        if (opt->has_s1)
            opt->view[k++] = opt->s1[i];
        if (opt->has_s2)
            opt->view[k++] = opt->s2[i];
    }
    *state = opt->view;
    return k;
}

int nb_optimizer_set_steps(nb_optimizer *opt, int64_t steps, int64_t skipped)
{
    if (!opt)
        return nb_set_error("nb_optimizer_set_steps: optimizer is NULL");
    if (steps < 0 || skipped < 0)
        return nb_set_error("nb_optimizer_set_steps: steps and skipped must be >= 0, got %lld "
                            "and %lld", (long long)steps, (long long)skipped);
    if (steps > 0 && opt->n < 0)
        return nb_set_error_code(NB_ERR_STATE, "nb_optimizer_set_steps: %lld steps, but the "
                                 "optimizer has no state yet (make it with nb_optimizer_state "
                                 "and fill it first)", (long long)steps);
    opt->t = steps;
    opt->skipped = skipped;
    return 0;
}
