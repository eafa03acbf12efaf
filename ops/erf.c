/* PLACEHOLDER */
#include "internal.h"
const nb_op nb_op_erf = {.name = "erf"};
nb_tensor *nb_erf(nb_tensor *x) { (void)x; nb__error("nb_erf: not implemented yet"); return NULL; }
