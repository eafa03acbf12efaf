/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_sqrt = {.name = "sqrt"};

nb_tensor *nb_sqrt(nb_tensor *x)
{
    (void)x;
    nb__error("nb_sqrt: not implemented yet");
    return NULL;
}
