#include "nabla/version.h"

const char *nb_version(void)
{
    return NB_VERSION_STRING;
}
