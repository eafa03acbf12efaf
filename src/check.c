/* PLACEHOLDER: gradcheck to be written. */
#include "internal.h"
