/* Keras's recurrent layers, SimpleRNN, LSTM and GRU, on (N, T, features)
 * batches, and GlobalAveragePooling1D. Each is unrolled over time with
 * ops, which the dynamic graph makes plain: the input's projection for all
 * steps is one matmul, then each step adds the recurrent product and
 * applies the gates. Keras's gate orders, initialisers (Glorot-uniform
 * kernels, orthogonal recurrent kernels, zero biases, LSTM's forget-gate
 * bias 1) and GRU's reset_after form. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

typedef struct {
    int kind; /* SIMPLE, LSTM, GRU */
    nb_rnn_opts o;
} rnn_ctx;

enum { SIMPLE, LSTM, GRU };
static const int GATES[] = {1, 4, 3};

/* Uniform Glorot (in, out), f32. */
static nb_tensor *glorot(int64_t in, int64_t out, nb_rng *rng)
{
    nb_tensor *w = nn_zeros("nb_build", NB_F32, NB_SHAPE(in, out));
    if (!w)
        return NULL;
    double a = sqrt(6.0 / (double)(in + out));
    float *p = nb_data(w);
    for (int64_t i = 0; i < in * out; i++)
        p[i] = (float)((2.0 * nb_rng_uniform(rng) - 1.0) * a);
    nb_bump_version(w);
    return w;
}

/* Keras's orthogonal initialiser for (u, g*u): the rows of an orthonormal
 * basis (Gram-Schmidt in double of a normal draw), one block per gate. */
static nb_tensor *orthogonal(int64_t u, int g, nb_rng *rng)
{
    nb_tensor *w = nn_zeros("nb_build", NB_F32, NB_SHAPE(u, g * u));
    double *q = nb_mem_alloc((size_t)(u * u) * sizeof *q);
    if (!w || !q) {
        nb_free(w);
        nb_mem_free(q);
        return NULL;
    }
    float *p = nb_data(w);
    for (int b = 0; b < g; b++) {
        for (int64_t i = 0; i < u * u; i++) { /* Box-Muller */
            double r = sqrt(-2 * log(1 - nb_rng_uniform(rng)));
            q[i] = r * cos(6.283185307179586 * nb_rng_uniform(rng));
        }
        for (int64_t i = 0; i < u; i++) {
            double *v = q + i * u;
            for (int64_t j = 0; j < i; j++) {
                double d = 0, *e = q + j * u;
                for (int64_t k = 0; k < u; k++)
                    d += v[k] * e[k];
                for (int64_t k = 0; k < u; k++)
                    v[k] -= d * e[k];
            }
            double n = 0;
            for (int64_t k = 0; k < u; k++)
                n += v[k] * v[k];
            n = sqrt(n);
            for (int64_t k = 0; k < u; k++)
                v[k] /= n;
        }
        for (int64_t i = 0; i < u; i++)
            for (int64_t k = 0; k < u; k++)
                p[i * g * u + b * u + k] = (float)q[i * u + k];
    }
    nb_mem_free(q);
    nb_bump_version(w);
    return w;
}

static int rnn_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                     nb_rng *rng)
{
    const rnn_ctx *c = l->ctx;
    if (ndim != 2)
        return nb_set_error_code(NB_ERR_SHAPE, "layer '%s' (%s) takes sequences (timesteps, "
                                 "features), got %d axes", l->name, l->type->type, ndim);
    int64_t u = c->o.units, g = GATES[c->kind];
    /* GRU keeps two biases (reset_after): the input's and the recurrent one. */
    int64_t bias_rows = c->kind == GRU ? 2 : 1;
    nb_tensor *b = bias_rows == 1 ? nn_zeros("nb_build", NB_F32, NB_SHAPE(g * u))
                                  : nn_zeros("nb_build", NB_F32, NB_SHAPE(bias_rows, g * u));
    if (b && c->kind == LSTM) { /* unit_forget_bias */
        float *p = nb_data(b);
        for (int64_t k = u; k < 2 * u; k++)
            p[k] = 1;
        nb_bump_version(b);
    }
    if (nb_layer_weight(l, "kernel", glorot(in[1], g * u, rng), true) < 0 ||
        nb_layer_weight(l, "recurrent_kernel", orthogonal(u, (int)g, rng), true) < 0 ||
        nb_layer_weight(l, "bias", b, true) < 0)
        return -1;
    if (c->o.return_sequences) {
        out[0] = in[0];
        out[1] = u;
        *out_ndim = 2;
    } else {
        out[0] = u;
        *out_ndim = 1;
    }
    return 0;
}

/* Entries [k*u, (k+1)*u) of z's last axis ((N, g*u) or a bias (g*u,)): gate k. */
static nb_tensor *gate(nb_tensor *z, int k, int64_t u)
{
    return z ? nb_slice(z, nb_ndim(z) - 1, k * u, (k + 1) * u, 1) : NULL;
}

static nb_tensor *rnn_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const rnn_ctx *c = l->ctx;
    int64_t n = nb_dim(x, 0), T = nb_dim(x, 1), f = nb_dim(x, 2), u = c->o.units;
    int64_t g = GATES[c->kind];
    nb_tensor *W = nb_layer_get(l, 0), *U = nb_layer_get(l, 1), *B = nb_layer_get(l, 2);
    nb_tensor *bx = c->kind == GRU ? nb_reshape(nb_slice(B, 0, 0, 1, 1), 1, (int64_t[]){g * u}) : B;
    nb_tensor *bh = c->kind == GRU ? nb_reshape(nb_slice(B, 0, 1, 2, 1), 1, (int64_t[]){g * u}) : NULL;
    /* Every step's input projection at once, as one 2-D product. */
    nb_tensor *xs = nb_is_contiguous(x) ? x : nb_contiguous(x);
    nb_tensor *xw = nb_add(nb_matmul(nb_reshape(xs, NB_SHAPE(n * T, f)), W), bx);
    xw = nb_reshape(xw, 3, (int64_t[]){n, T, g * u});
    nb_tensor *h = NULL, *cell = NULL, **seq = NULL;
    if (c->o.return_sequences && !(seq = nb_mem_alloc((size_t)T * sizeof *seq))) {
        nn_blame("nb_model_forward");
        return NULL;
    }
    for (int64_t t = 0; t < T && xw; t++) {
        nb_tensor *z = nb_reshape(nb_slice(xw, 1, t, t + 1, 1), NB_SHAPE(n, g * u));
        /* h and the cell start at 0: the first step has no recurrent term. */
        nb_tensor *r = h ? nb_matmul(h, U) : NULL;
        switch (c->kind) {
        case SIMPLE:
            h = nb_tanh(r ? nb_add(z, r) : z);
            break;
        case LSTM: {
            nb_tensor *a = r ? nb_add(z, r) : z;
            nb_tensor *i = nb_sigmoid(gate(a, 0, u)), *fg = nb_sigmoid(gate(a, 1, u));
            nb_tensor *cc = nb_tanh(gate(a, 2, u)), *o = nb_sigmoid(gate(a, 3, u));
            cell = cell ? nb_add(nb_mul(fg, cell), nb_mul(i, cc)) : nb_mul(i, cc);
            h = nb_mul(o, nb_tanh(cell));
            break;
        }
        case GRU: {
            /* reset_after: the reset gate scales the recurrent product. */
            nb_tensor *rh = r ? nb_add(r, bh) : NULL;
            nb_tensor *zg = nb_sigmoid(rh ? nb_add(gate(z, 0, u), gate(rh, 0, u)) : nb_add(gate(z, 0, u), gate(bh, 0, u)));
            nb_tensor *rg = nb_sigmoid(rh ? nb_add(gate(z, 1, u), gate(rh, 1, u)) : nb_add(gate(z, 1, u), gate(bh, 1, u)));
            nb_tensor *hh = nb_tanh(nb_add(gate(z, 2, u), nb_mul(rg, rh ? gate(rh, 2, u) : gate(bh, 2, u))));
            /* h = z * h_prev + (1 - z) * hh, with h_prev = 0 at the first step */
            nb_tensor *keep = nb_sub(nb_scalar_like(zg, 1.0), zg);
            h = h ? nb_add(nb_mul(zg, h), nb_mul(keep, hh)) : nb_mul(keep, hh);
            break;
        }
        }
        if (!h)
            break;
        if (seq)
            seq[t] = nb_reshape(h, 3, (int64_t[]){n, 1, u});
    }
    nb_tensor *y = h;
    if (seq) {
        y = h ? nb_concat((int)T, seq, 1) : NULL;
        nb_mem_free(seq);
    }
    return y;
}

static const nb_layer_type rnn_types[] = {
    {"SimpleRNN", "simple_rnn", rnn_build, rnn_forward, nn_free_ctx},
    {"LSTM", "lstm", rnn_build, rnn_forward, nn_free_ctx},
    {"GRU", "gru", rnn_build, rnn_forward, nn_free_ctx},
};

static nb_layer *rnn(const char *fn, int kind, nb_rnn_opts o)
{
    if (o.units < 1) {
        nb_set_error("%s: units must be at least 1, got %lld", fn, (long long)o.units);
        return NULL;
    }
    if (!nn_valid_name(fn, o.name))
        return NULL;
    rnn_ctx *c = nb_mem_alloc(sizeof *c);
    if (!c) {
        nn_blame(fn);
        return NULL;
    }
    c->kind = kind;
    c->o = o;
    c->o.name = NULL;
    return nb_layer_new(&rnn_types[kind], c, o.name);
}

nb_layer *nb_simple_rnn_(nb_rnn_opts o) { return rnn("nb_simple_rnn", SIMPLE, o); }
nb_layer *nb_lstm_(nb_rnn_opts o) { return rnn("nb_lstm", LSTM, o); }
nb_layer *nb_gru_(nb_rnn_opts o) { return rnn("nb_gru", GRU, o); }

/* ---- GlobalAveragePooling1D ---- */

static int gap1_build(nb_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out,
                      nb_rng *rng)
{
    (void)rng;
    if (ndim != 2)
        return nb_set_error_code(NB_ERR_SHAPE, "layer '%s' (GlobalAveragePooling1D) takes "
                                 "sequences (timesteps, features), got %d axes", l->name, ndim);
    out[0] = in[1];
    *out_ndim = 1;
    return 0;
}

static nb_tensor *gap1_forward(nb_layer *l, nb_tensor *x, bool training)
{
    (void)l, (void)training;
    return nb_mean(x, .axes = NB_AXES(1));
}

static const nb_layer_type gap1_type = {"GlobalAveragePooling1D", "global_average_pooling1d",
                                        gap1_build, gap1_forward, NULL};

nb_layer *nb_global_average_pooling1d(void)
{
    return nb_layer_new(&gap1_type, NULL, NULL);
}
