/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_detach = {.name = "detach"};

nb_tensor *nb_detach(nb_tensor *x)
{
    (void)x;
    nb__error("nb_detach: not implemented yet");
    return NULL;
}
