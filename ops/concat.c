/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_concat = {.name = "concat"};

nb_tensor *nb_concat(int n, nb_tensor *const xs[], int axis)
{
    (void)n;
    (void)xs;
    (void)axis;
    nb__error("nb_concat: not implemented yet");
    return NULL;
}
