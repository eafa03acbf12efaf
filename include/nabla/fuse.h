/* nabla: fused elementwise functions. A function written with elementwise
 * ops (add, mul, sqrt, where, relu, ..., user ops declaring .elementwise)
 * and scalar constants is recorded once and then run block by block: each
 * block of the inputs goes through every op while it is in L1, so the chain
 * costs one pass over memory instead of one per op. The values are those of
 * the ops' own kernels (bit for bit what calling f gives) and the backward
 * is made of the ops' own rules, so a fused function differentiates like f,
 * also twice. The optimizers' updates are fused functions, which the build
 * also compiles into one loop each (same bits). */
#ifndef NABLA_FUSE_H
#define NABLA_FUSE_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_fused nb_fused;

/* Computes out[0..n_out) from in[0..n_in) with elementwise ops: 0 or -1. */
typedef int (*nb_fused_fn)(nb_tensor *out[], nb_tensor *const in[], void *ctx);

/* The most inputs and outputs of a fused function. */
#define NB_FUSED_MAX 8

/* A fused function of f, which is traced on first use per dtype and per
 * pattern of one-element inputs: values f reads from ctx (or makes with
 * nb_scalar_like) are then fixed, so what changes between calls must be an
 * input. ctx must stay valid while the fused function is used. NULL on
 * error. */
nb_fused *nb_fused_new(const char *name, int n_in, int n_out, nb_fused_fn f, void *ctx);

/* Frees fn (NULL: no-op), once the graphs that recorded it are reset. */
void nb_fused_free(nb_fused *fn);

/* Runs fn on in[], of one dtype, each either of the result's shape (the
 * NumPy broadcast of all of them) or of one element (a scalar, broadcast).
 * An out[k] that is NULL becomes a new tensor of the current graph,
 * recorded for backward when an input requires grad; a given one (packed,
 * of the result's dtype and shape, apart from the inputs or exactly one of
 * them: in place) is written into, its version bumped, with gradients off.
 * -1 on error; otherwise a mask whose bit k is set when out[k], computed
 * by an op of f, holds a NaN or an infinity (found in the same pass; an
 * output that is one of the inputs is not checked). */
int nb_fused_apply(nb_fused *fn, nb_tensor *const in[], nb_tensor *out[]);

#ifdef __cplusplus
}
#endif
#endif
