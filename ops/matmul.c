/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_matmul = {.name = "matmul"};

nb_tensor *nb_matmul(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_matmul: not implemented yet");
    return NULL;
}

nb_tensor *nb_matmul_t(nb_tensor *a, nb_tensor *b, bool transpose_a, bool transpose_b)
{
    (void)a;
    (void)b;
    (void)transpose_a;
    (void)transpose_b;
    nb__error("nb_matmul_t: not implemented yet");
    return NULL;
}
