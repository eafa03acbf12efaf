/* A model's weights in files (safetensors); its summary is in summary.c. */
#include "nn_internal.h"

#include <stdio.h>

/* ---- weights ---- */

int nn_as_caller(const char *from, const char *to)
{
    const char *e = nb_last_error();
    size_t k = strlen(from);
    if (e && strncmp(e, from, k) == 0 && e[k] == ':') {
        char rest[512];
        snprintf(rest, sizeof rest, "%s", e + k);
        nb_set_error_code(nb_last_error_code(), "%s%s", to, rest);
    }
    return -1;
}

int nb_save_weights_(nb_save_weights_args a)
{
    const nb_model *m = a.model;
    const char *path = a.path;
    if (nn_bad_model(m, "nb_save_weights"))
        return -1;
    if (!path)
        return nb_set_error("nb_save_weights: path is NULL");
    if (a.layout != NB_LAYOUT_KERAS && a.layout != NB_LAYOUT_PYTORCH)
        return nb_set_error("nb_save_weights: unknown layout %d", (int)a.layout);
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_save_weights: %s: the model is not built",
                                 path);
    if (nn_distributed(m) && nb_dist_rank() != 0)
        return 0; /* rank 0 writes; the weights are the same on every rank */
    if (a.layout == NB_LAYOUT_PYTORCH)
        return nn_torch_save(m, path);
    if (nb_save_safetensors(path, m->nweights, m->weights) < 0) {
        nn_as_caller("nb_save_safetensors", "nb_save_weights");
        return nn_blame("nb_save_weights");
    }
    return 0;
}

int nb_load_weights_(nb_load_weights_args a)
{
    nb_model *m = a.model;
    if (nn_bad_model(m, "nb_load_weights"))
        return -1;
    if (!a.path)
        return nb_set_error("nb_load_weights: path is NULL");
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, "nb_load_weights: %s: the model is not built "
                                 "(build it with the same layers first)",
                                 a.path);
    if (a.layout == NB_LAYOUT_PYTORCH)
        return nn_torch_load(m, a.path, a.partial);
    if (a.layout != NB_LAYOUT_KERAS)
        return nb_set_error("nb_load_weights: unknown layout %d", (int)a.layout);
    if (nb_load_safetensors(a.path, m->nweights, m->weights, .partial = a.partial) < 0) {
        nn_as_caller("nb_load_safetensors", "nb_load_weights");
        return nn_blame("nb_load_weights");
    }
    return 0;
}
