/* PLACEHOLDER */
#include "internal.h"
