/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_permute = {.name = "permute"};

nb_tensor *nb_permute(nb_tensor *x, int ndim, const int *perm)
{
    (void)x;
    (void)ndim;
    (void)perm;
    nb__error("nb_permute: not implemented yet");
    return NULL;
}
