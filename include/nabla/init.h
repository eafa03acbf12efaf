/* nabla: weight initialisers for parameters made by hand, as Keras's
 * keras.initializers and PyTorch's torch.nn.init compute them
 * (docs/data.md). Each fills w in place, a contiguous f32 or f64 heap
 * tensor (nb_zeros(...)), drawing from rng in row-major order, bumps its
 * version and returns 0; -1 with an error naming the function otherwise
 * (NULL w or rng, a u8, graph or strided tensor, too few axes).
 *
 * Fans, as Keras's (nabla's layouts are Keras's): a 2-D w is (in, out),
 * fan_in = shape[0], fan_out = shape[1]; a conv kernel (kh, kw, in, out)
 * has fan_in = in * kh * kw and fan_out = out * kh * kw (the receptive
 * field times the last two axes). PyTorch's weights are (out, in, kh, kw):
 * the same fans, read from other axes, so the values' law is the same. The
 * fan-based ones need at least 2 axes (as PyTorch; Keras would take 1). */
#ifndef NABLA_INIT_H
#define NABLA_INIT_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nb_fan_mode { NB_FAN_IN = 0, NB_FAN_OUT, NB_FAN_AVG } nb_fan_mode;
typedef enum nb_init_distribution {
    NB_TRUNCATED_NORMAL = 0, /* N(0, s) cut at 2s, s = sqrt(scale / fan) / .87962566103423978
                                (the variance after the cut is scale / fan), as Keras */
    NB_NORMAL,               /* N(0, sqrt(scale / fan)), untruncated: PyTorch's *_normal_,
                                Keras's "untruncated_normal" */
    NB_UNIFORM,              /* U(-sqrt(3 scale / fan), +sqrt(3 scale / fan)) */
} nb_init_distribution;

/* Keras's VarianceScaling: values of variance scale / fan (fan_in, fan_out
 * or their mean; at least 1). scale 0 means 1. */
typedef struct nb_variance_scaling {
    double scale;
    nb_fan_mode mode;
    nb_init_distribution distribution;
} nb_variance_scaling;
int nb_init_variance_scaling(nb_tensor *w, nb_rng *rng, nb_variance_scaling how);

/* Glorot (Xavier): variance 2 / (fan_in + fan_out). The uniform one is
 * Keras's GlorotUniform and PyTorch's xavier_uniform_ (bound sqrt(6 /
 * (fan_in + fan_out))), nabla's Dense and Conv2D default; the normal one is
 * Keras's GlorotNormal (truncated; PyTorch's xavier_normal_ is
 * {1, NB_FAN_AVG, NB_NORMAL}). */
int nb_init_glorot_uniform(nb_tensor *w, nb_rng *rng);
int nb_init_glorot_normal(nb_tensor *w, nb_rng *rng);
/* He (Kaiming): variance 2 / fan_in. Uniform: Keras's HeUniform and
 * PyTorch's kaiming_uniform_(nonlinearity='relu') (bound sqrt(6 / fan_in));
 * normal: Keras's HeNormal (truncated; PyTorch's kaiming_normal_(
 * nonlinearity='relu') is {2, NB_FAN_IN, NB_NORMAL}). */
int nb_init_he_uniform(nb_tensor *w, nb_rng *rng);
int nb_init_he_normal(nb_tensor *w, nb_rng *rng);
/* LeCun: variance 1 / fan_in, Keras's LecunUniform (bound sqrt(3 / fan_in))
 * and LecunNormal (truncated); PyTorch has none. */
int nb_init_lecun_uniform(nb_tensor *w, nb_rng *rng);
int nb_init_lecun_normal(nb_tensor *w, nb_rng *rng);
/* Orthogonal, as Keras's Orthogonal and PyTorch's orthogonal_: w seen as a
 * matrix (rows = the product of all axes but the last, cols = the last),
 * a normal draw of (max, min) made orthonormal by Gram-Schmidt (QR with
 * R's diagonal positive, the sign correction both do), transposed when
 * rows < cols, times gain (0 means 1): orthonormal columns (rows >= cols)
 * or rows. At least 2 axes. */
int nb_init_orthogonal(nb_tensor *w, double gain, nb_rng *rng);
/* Every element value (w may be any contiguous f32 or f64 heap tensor, 0-d
 * and 1-D too); zeros and ones are constant 0 and 1. */
int nb_init_constant(nb_tensor *w, double value);
int nb_init_zeros(nb_tensor *w);
int nb_init_ones(nb_tensor *w);

#ifdef __cplusplus
}
#endif
#endif
