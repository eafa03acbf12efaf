/* Weights in PyTorch's names and layouts (nb_save_weights and
 * nb_load_weights with .layout = NB_LAYOUT_PYTORCH): the state_dict of the
 * torch.nn.Sequential equivalent to the model, which a PyTorch user loads
 * with load_state_dict (docs/data.md).
 *
 * Every layer but the Input is one module of that Sequential, and a Dense
 * or Conv2D with an activation is two (Linear, then ReLU), so the keys go
 * "0.weight", "0.bias", "2.weight", ... Images are channels-last here and
 * channels-first in torch: a Conv2D kernel (kh, kw, in, out) is torch's
 * (out, in, kh, kw), and the Dense after a Flatten of an (h, w, c) image
 * has its kernel's rows reordered from (h, w, c) to torch's (c, h, w). */
#include "nn_internal.h"

#include <stdio.h>

typedef struct {
    nb_tensor *w;          /* the model's weight */
    nb_tensor *t;          /* a heap tensor in torch's name and shape */
    int ndim;              /* of the views below */
    int64_t wshape[4];     /* w seen with this shape (the same elements) */
    int perm[4];           /* t's view = w's view with its axes permuted: axis d is w's perm[d] */
} entry;

/* dst (contiguous, shape sshape permuted by perm) = src (contiguous, sshape). */
static void permute_copy(void *dst, const void *src, int ndim, const int64_t *sshape,
                         const int *perm, size_t es)
{
    int64_t sstride[4], dshape[4], idx[4] = {0}, n = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        sstride[d] = n;
        n *= sshape[d];
    }
    for (int d = 0; d < ndim; d++)
        dshape[d] = sshape[perm[d]];
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < ndim; d++)
            off += idx[d] * sstride[perm[d]];
        memcpy((char *)dst + (size_t)i * es, (const char *)src + (size_t)off * es, es);
        for (int d = ndim - 1; d >= 0 && ++idx[d] == dshape[d]; d--)
            idx[d] = 0;
    }
}

static int add_entry(entry *e, int *n, nb_tensor *w, const char *name, int ndim,
                     const int64_t *wshape, const int *perm, const char *fn)
{
    entry *x = &e[*n];
    int64_t tshape[4];
    x->w = w;
    x->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        x->wshape[d] = wshape[d];
        x->perm[d] = perm[d];
        tshape[d] = wshape[perm[d]];
    }
    /* torch's shape: the permuted view, with a Flatten's (c, h, w) as one axis */
    int tnd = ndim;
    if (nb_ndim(w) == 2 && ndim == 4) {
        tshape[1] *= tshape[2] * tshape[3];
        tnd = 2;
    }
    x->t = nn_zeros(fn, nb_dtype_of(w), tnd, tshape);
    if (!x->t)
        return -1;
    nb_set_name(x->t, name);
    permute_copy(nb_data(x->t), nb_data(w), ndim, x->wshape, x->perm, nb_dtype_size(nb_dtype_of(w)));
    ++*n;
    return 0;
}

/* A layer of that type holding nw weights, the first of ndim axes: a
 * layer of one's own that took a built-in's name but not its weights is
 * not taken for it. */
static bool is_(const nb_layer *l, const char *type, int nw, int ndim)
{
    return strcmp(l->type->type, type) == 0 && l->nw == nw && (!nw || nb_ndim(l->w[0]) == ndim);
}
static bool is(const nb_layer *l, const char *type) { return strcmp(l->type->type, type) == 0; }

/* The model's weights as torch's tensors, filled with their values: the
 * count, or -1 with an error naming fn (a layer torch's Sequential has no
 * equivalent for). */
static int torch_entries(const nb_model *m, const char *fn, entry *e)
{
    int n = 0, module = 0;
    int64_t flat[3] = {0}; /* (h, w, c) of a Flatten's image, for the next Dense */
    bool pending = false;
    char name[64];
    for (int i = 0; i < m->n; i++) {
        const nb_layer *l = m->layers[i];
        nb_activation act = NB_LINEAR;
        if (l->type == &nn_input_type)
            continue;
        if (l->type == &nn_dense_type && l->in_ndim == 3) {
            return nb_set_error_code(NB_ERR_STATE, "%s: layer '%s' (Dense) has no PyTorch layout: "
                                     "its input is an image, channels-last here, channels-first "
                                     "in torch (put a Flatten before it)", fn, l->name);
        } else if (l->type == &nn_dense_type) {
            const nb_dense_opts *o = l->ctx;
            act = o->activation;
            int64_t in = l->in[l->in_ndim - 1];
            if (pending && flat[0] * flat[1] * flat[2] == in) {
                static const int p4[4] = {3, 2, 0, 1}; /* (h, w, c, out) -> (out, c, h, w) */
                int64_t ws[4] = {flat[0], flat[1], flat[2], o->units};
                snprintf(name, sizeof name, "%d.weight", module);
                if (add_entry(e, &n, l->w[0], name, 4, ws, p4, fn) < 0)
                    return -1;
            } else {
                static const int p2[2] = {1, 0};
                snprintf(name, sizeof name, "%d.weight", module);
                if (add_entry(e, &n, l->w[0], name, 2, nb_shape(l->w[0]), p2, fn) < 0)
                    return -1;
            }
        } else if (is_(l, "Conv2D", 1, 4) || is_(l, "Conv2D", 2, 4)) {
            static const int p4[4] = {3, 2, 0, 1}; /* (kh, kw, in, out) -> (out, in, kh, kw) */
            act = nn_conv_activation(l);
            snprintf(name, sizeof name, "%d.weight", module);
            if (add_entry(e, &n, l->w[0], name, 4, nb_shape(l->w[0]), p4, fn) < 0)
                return -1;
        } else if (is_(l, "Embedding", 1, 2) || (is_(l, "LayerNormalization", 2, 1) && l->in_ndim != 3)) {
            static const int p1[2] = {0, 1};
            snprintf(name, sizeof name, "%d.weight", module);
            if (add_entry(e, &n, l->w[0], name, nb_ndim(l->w[0]), nb_shape(l->w[0]), p1, fn) < 0)
                return -1;
        } else if (!(is_(l, "Dropout", 0, 0) || is_(l, "Activation", 0, 0) ||
                     is_(l, "Flatten", 0, 0) || is_(l, "MaxPooling2D", 0, 0) ||
                     is_(l, "AveragePooling2D", 0, 0) || is_(l, "GlobalAveragePooling2D", 0, 0) ||
                     is_(l, "GlobalAveragePooling1D", 0, 0) ||
                     (is_(l, "Reshape", 0, 0) && l->out_ndim != 3))) {
            const char *why =
                is(l, "BatchNormalization")
                    ? "torch's BatchNorm holds num_batches_tracked as int64, which nabla's "
                      "safetensors files do not hold; save it in the Keras layout"
                : is(l, "LSTM") || is(l, "GRU") || is(l, "SimpleRNN")
                    ? "torch's recurrent modules return tuples and do not go into a "
                      "torch.nn.Sequential"
                : is(l, "Reshape") || is(l, "LayerNormalization")
                    ? "its image shape is channels-last, torch's channels-first"
                    : "torch.nn.Sequential has no equivalent of it";
            return nb_set_error_code(NB_ERR_STATE, "%s: layer '%s' (%s) has no PyTorch layout: %s",
                                     fn, l->name, l->type->type, why);
        }
        /* the bias (Dense, Conv2D, LayerNormalization's beta) follows the weight */
        if (l->nw > 1 && n && e[n - 1].w == l->w[0]) {
            static const int p1[1] = {0};
            snprintf(name, sizeof name, "%d.bias", module);
            if (add_entry(e, &n, l->w[1], name, 1, nb_shape(l->w[1]), p1, fn) < 0)
                return -1;
        }
        /* Dropout and Activation keep a Flatten's order for the Dense after them */
        if (is_(l, "Flatten", 0, 0)) {
            pending = l->in_ndim == 3;
            if (pending)
                memcpy(flat, l->in, sizeof flat);
        } else if (!is_(l, "Dropout", 0, 0) && !is_(l, "Activation", 0, 0)) {
            pending = false;
        }
        module += 1 + (act != NB_LINEAR);
    }
    return n;
}

/* Room for every weight, zeroed: an error half-way frees what was made. */
static entry *alloc_entries(const nb_model *m)
{
    size_t size = (size_t)(m->nweights ? m->nweights : 1) * sizeof(entry);
    entry *e = nb_mem_alloc(size);
    if (e)
        memset(e, 0, size);
    return e;
}

static void free_entries(entry *e, int n)
{
    for (int i = 0; i < n; i++)
        nb_free(e[i].t);
    nb_mem_free(e);
}

int nn_torch_save(const nb_model *m, const char *path)
{
    entry *e = alloc_entries(m);
    if (!e)
        return nn_blame("nb_save_weights");
    int n = torch_entries(m, "nb_save_weights", e);
    int rc = n < 0 ? -1 : 0;
    if (!rc) {
        nb_tensor **t = nb_mem_alloc((size_t)(n ? n : 1) * sizeof *t);
        for (int i = 0; t && i < n; i++)
            t[i] = e[i].t;
        if (!t || nb_save_safetensors(path, n, t) < 0) {
            nn_as_caller("nb_save_safetensors", "nb_save_weights");
            rc = nn_blame("nb_save_weights");
        }
        nb_mem_free(t);
    }
    free_entries(e, m->nweights);
    return rc;
}

int nn_torch_load(nb_model *m, const char *path, bool partial)
{
    entry *e = alloc_entries(m);
    if (!e)
        return nn_blame("nb_load_weights");
    /* The torch tensors start with the model's values, which the ones a
     * partial load leaves keep. */
    int n = torch_entries(m, "nb_load_weights", e);
    int rc = n < 0 ? -1 : 0;
    if (!rc) {
        nb_tensor **t = nb_mem_alloc((size_t)(n ? n : 1) * sizeof *t);
        for (int i = 0; t && i < n; i++)
            t[i] = e[i].t;
        if (!t || nb_load_safetensors(path, n, t, .partial = partial) < 0) {
            nn_as_caller("nb_load_safetensors", "nb_load_weights");
            rc = nn_blame("nb_load_weights");
        }
        nb_mem_free(t);
    }
    for (int i = 0; !rc && i < n; i++) {
        int inv[4], nd = e[i].ndim;
        int64_t tshape[4];
        for (int d = 0; d < nd; d++) {
            inv[e[i].perm[d]] = d;
            tshape[d] = e[i].wshape[e[i].perm[d]];
        }
        permute_copy(nb_data(e[i].w), nb_data(e[i].t), nd, tshape, inv,
                     nb_dtype_size(nb_dtype_of(e[i].w)));
        nb_bump_version(e[i].w);
    }
    free_entries(e, m->nweights);
    return rc;
}
