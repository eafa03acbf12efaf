/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_index_select = {.name = "index_select"};
const nb_op nb_op_index_add = {.name = "index_add"};
const nb_op nb_op_one_hot = {.name = "one_hot"};

nb_tensor *nb_index_select(nb_tensor *x, int axis, nb_tensor *idx)
{
    (void)x;
    (void)axis;
    (void)idx;
    nb__error("nb_index_select: not implemented yet");
    return NULL;
}

nb_tensor *nb_index_add(nb_tensor *x, int axis, nb_tensor *idx, nb_tensor *src)
{
    (void)x;
    (void)axis;
    (void)idx;
    (void)src;
    nb__error("nb_index_add: not implemented yet");
    return NULL;
}

nb_tensor *nb_one_hot(nb_tensor *labels, int64_t n)
{
    (void)labels;
    (void)n;
    nb__error("nb_one_hot: not implemented yet");
    return NULL;
}
