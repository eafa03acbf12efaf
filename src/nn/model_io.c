/* A model's outside: the Keras-style summary and its weights in files
 * (safetensors). */
#include "nn_internal.h"

#include <stdio.h>

/* ---- summary ---- */

static const char *with_commas(int64_t v, char *buf)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%lld", (long long)v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0 && raw[i - 1] != '-')
            buf[k++] = ',';
        buf[k++] = raw[i];
    }
    buf[k] = '\0';
    return buf;
}

static const char *human_bytes(double bytes, char *buf)
{
    static const char *unit[] = {"B", "KB", "MB", "GB"};
    int u = 0;
    while (bytes >= 1024 && u < 3) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, 32, "%.2f %s", bytes, unit[u]);
    return buf;
}

int nb_summary(const nb_model *m, FILE *f)
{
    if (nn_bad_model(m, "nb_summary"))
        return -1;
    if (!f)
        return nb_set_error("nb_summary: FILE is NULL");
    static const char line[] =
        "_________________________________________________________________\n";
    static const char dline[] =
        "=================================================================\n";
    char c1[40], c2[40], c3[40];
    fprintf(f, "Model: \"sequential\"\n%s", line);
    fprintf(f, " %-28s%-26s%s\n%s", "Layer (type)", "Output Shape", "Param #", dline);
    int shown = 0;
    for (int i = 0; i < m->n; i++)
        shown += m->layers[i]->type != &nn_input_type;
    int64_t trainable = 0, state = 0;
    for (int i = 0, row = 0; i < m->n; i++) {
        const nb_layer *l = m->layers[i];
        if (l->type == &nn_input_type)
            continue;
        char name[80], shape[96] = "(None";
        snprintf(name, sizeof name, "%s (%s)", l->name, l->type->type);
        if (l->built)
            for (int d = 0; d < l->out_ndim; d++)
                snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", %lld",
                         (long long)l->out[d]);
        else if (l->type == &nn_dense_type)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), ", %lld",
                     (long long)((const nb_dense_opts *)l->ctx)->units);
        else
            strcpy(shape, "(unbuilt");
        strcat(shape, ")");
        int64_t params = 0;
        for (int k = 0; k < l->nw; k++) {
            params += nb_numel(l->w[k]);
            *(l->trainable[k] ? &trainable : &state) += nb_numel(l->w[k]);
        }
        bool has = l->built || l->type != &nn_dense_type;
        /* A name wider than its column keeps one space before the shape. */
        int w = (int)strlen(name) < 28 ? 28 : (int)strlen(name) + 1;
        fprintf(f, " %-*s%-26s%s\n", w, name, shape, has ? with_commas(params, c1) : "0 (unbuilt)");
        if (++row < shown)
            fputc('\n', f);
    }
    double es = (double)nb_dtype_size(m->built ? m->dtype : NB_F32);
    fprintf(f, "%sTotal params: %s (%s)\n", dline, with_commas(trainable + state, c1),
            human_bytes(es * (double)(trainable + state), c2));
    fprintf(f, "Trainable params: %s (%s)\n", with_commas(trainable, c1),
            human_bytes(es * (double)trainable, c3));
    fprintf(f, "Non-trainable params: %s (%s)\n%s", with_commas(state, c1),
            human_bytes(es * (double)state, c3), line);
    return ferror(f) ? nb_set_error_code(NB_ERR_IO, "nb_summary: write failed") : 0;
}

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
