/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_clamp = {.name = "clamp"};

nb_tensor *nb_clamp(nb_tensor *x, double lo, double hi)
{
    (void)x;
    (void)lo;
    (void)hi;
    nb__error("nb_clamp: not implemented yet");
    return NULL;
}
