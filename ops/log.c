/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_log = {.name = "log"};

nb_tensor *nb_log(nb_tensor *x)
{
    (void)x;
    nb__error("nb_log: not implemented yet");
    return NULL;
}
