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
#include "init.h"
#include "io.h"
#include "dist.h"

#define NB_VERSION "0.1.0"

#endif
