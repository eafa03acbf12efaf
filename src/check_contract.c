/* The contract of an op beyond its derivative (stub: being written). */
#include "check_internal.h"

const char *nb_contract_name(nb_contract c)
{
    static const char *const names[NB_CONTRACTS] = {"deterministic", "accumulates",
                                                    "no-grad-inputs", "nondiff", "batch",
                                                    "layouts", "inplace"};
    return (int)c >= 0 && (int)c < NB_CONTRACTS ? names[c] : "?";
}

bool nb_check_contract(const nb_op *op, const nb_check_opts *opts, nb_contract_report *r)
{
    (void)op, (void)opts;
    memset(r, 0, sizeof *r);
    return false;
}
