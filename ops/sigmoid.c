/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_sigmoid = {.name = "sigmoid"};

nb_tensor *nb_sigmoid(nb_tensor *x)
{
    (void)x;
    nb__error("nb_sigmoid: not implemented yet");
    return NULL;
}
