/* PLACEHOLDER: to be written (forward + backward + examples). */
#include "internal.h"

const nb_op nb_op_eq = {.name = "eq"};
const nb_op nb_op_ne = {.name = "ne"};
const nb_op nb_op_lt = {.name = "lt"};
const nb_op nb_op_le = {.name = "le"};
const nb_op nb_op_gt = {.name = "gt"};
const nb_op nb_op_ge = {.name = "ge"};
const nb_op nb_op_where = {.name = "where"};
const nb_op nb_op_sign = {.name = "sign"};

nb_tensor *nb_eq(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_eq: not implemented yet");
    return NULL;
}

nb_tensor *nb_ne(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_ne: not implemented yet");
    return NULL;
}

nb_tensor *nb_lt(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_lt: not implemented yet");
    return NULL;
}

nb_tensor *nb_le(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_le: not implemented yet");
    return NULL;
}

nb_tensor *nb_gt(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_gt: not implemented yet");
    return NULL;
}

nb_tensor *nb_ge(nb_tensor *a, nb_tensor *b)
{
    (void)a;
    (void)b;
    nb__error("nb_ge: not implemented yet");
    return NULL;
}

nb_tensor *nb_where(nb_tensor *c, nb_tensor *a, nb_tensor *b)
{
    (void)c;
    (void)a;
    (void)b;
    nb__error("nb_where: not implemented yet");
    return NULL;
}

nb_tensor *nb_sign(nb_tensor *x)
{
    (void)x;
    nb__error("nb_sign: not implemented yet");
    return NULL;
}
