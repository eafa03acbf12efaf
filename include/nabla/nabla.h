/* nabla: reverse-mode automatic differentiation for C. One include. */
#ifndef NABLA_H
#define NABLA_H

#include "tensor.h"
#include "kernel.h"
#include "autograd.h"
#include "ops.h"
#include "fuse.h"
#include "check.h"
#include "dot.h"
#include "optim.h"
#include "nn.h"
#include "io.h"
#include "dist.h"
/* Generated at build time (meson.build: build/include/nabla/), so named from
 * the include directory rather than beside this file. */
#include "nabla/version.h"

#endif
