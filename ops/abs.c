/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_abs = {.name = "abs"};

nb_tensor *nb_abs(nb_tensor *x)
{
    (void)x;
    nb__error("nb_abs: not implemented yet");
    return NULL;
}
