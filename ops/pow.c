/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_pow = {.name = "pow"};

nb_tensor *nb_pow(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_pow: not implemented yet");
    return NULL;
}
