/* Mutation testing of gradient checks (stub: being written). */
#include "check_internal.h"

const char *nb_mutation_name(nb_mutation m)
{
    static const char *const names[NB_MUTATIONS] = {"zero",    "scale",     "negate", "swap",
                                                    "perturb", "broadcast", "detach"};
    return (int)m >= 0 && (int)m < NB_MUTATIONS ? names[m] : "?";
}

int nb__mutate(const nb_mutant *m, const nb_node *nd, nb_tensor *gi[])
{
    (void)m, (void)nd, (void)gi;
    return 0;
}

nb_tensor *nb__mutate_broadcast(nb_tensor *g, const nb_tensor *x)
{
    return nb_sum_to(g, x->ndim, x->shape);
}

bool nb_gradcheck_mutations(const nb_op *op, const nb_check_opts *opts, nb_mutation_report *r)
{
    (void)op, (void)opts;
    memset(r, 0, sizeof *r);
    return false;
}
