/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_slice = {.name = "slice"};
const nb_op nb_op_slice_scatter = {.name = "slice_scatter"};

nb_tensor *nb_slice(nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    (void)x;
    (void)axis;
    (void)start;
    (void)stop;
    (void)step;
    nb__error("nb_slice: not implemented yet");
    return NULL;
}

nb_tensor *nb_slice_scatter(nb_tensor *x, nb_tensor *src, int axis, int64_t start, int64_t stop, int64_t step)
{
    (void)x;
    (void)src;
    (void)axis;
    (void)start;
    (void)stop;
    (void)step;
    nb__error("nb_slice_scatter: not implemented yet");
    return NULL;
}
