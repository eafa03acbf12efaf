/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_cast = {.name = "cast"};

nb_tensor *nb_cast(nb_tensor *x, nb_dtype dtype)
{
    (void)x;
    (void)dtype;
    nb__error("nb_cast: not implemented yet");
    return NULL;
}
