/* PLACEHOLDER: DOT export to be written. */
#include "internal.h"
