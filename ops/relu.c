/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_relu = {.name = "relu"};

nb_tensor *nb_relu(nb_tensor *x)
{
    (void)x;
    nb__error("nb_relu: not implemented yet");
    return NULL;
}
