/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_exp = {.name = "exp"};

nb_tensor *nb_exp(nb_tensor *x)
{
    (void)x;
    nb__error("nb_exp: not implemented yet");
    return NULL;
}
