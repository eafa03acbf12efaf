/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_max = {.name = "max"};
const nb_op nb_op_argmax = {.name = "argmax"};

nb_tensor *nb_max(nb_tensor *x, int naxes, const int *axes, bool keepdims)
{
    (void)x;
    (void)naxes;
    (void)axes;
    (void)keepdims;
    nb__error("nb_max: not implemented yet");
    return NULL;
}

nb_tensor *nb_argmax(nb_tensor *x, int axis, bool keepdims)
{
    (void)x;
    (void)axis;
    (void)keepdims;
    nb__error("nb_argmax: not implemented yet");
    return NULL;
}
