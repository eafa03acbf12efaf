/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_maximum = {.name = "maximum"};
const nb_op nb_op_minimum = {.name = "minimum"};

nb_tensor *nb_maximum(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_maximum: not implemented yet");
    return NULL;
}

nb_tensor *nb_minimum(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_minimum: not implemented yet");
    return NULL;
}
