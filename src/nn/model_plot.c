/* nb_plot_model: the layers of a model as a Graphviz picture, as Keras's
 * plot_model draws them. One box per layer: its name and type, input and
 * output shapes (the batch axis as None), the activation of a Dense and
 * the parameter count; arrows from layer to layer; under the last layer,
 * the loss the model was compiled with. A softmax (sigmoid) that the loss
 * takes from the logits is marked as fused into it, which is what a
 * picture of a training step shows (nb_model_loss). */
#include "nn_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define FN "nb_plot_model"

/* Also what the scope of nb_model_loss's loss says (model.c). */
const char *nn_fused_loss(const nb_model *m)
{
    if (!m->compiled || m->custom_loss.fn || m->n == 0)
        return NULL;
    nb_activation last = nn_layer_activation(m->layers[m->n - 1]);
    if (last == NB_SOFTMAX && m->loss == NB_CATEGORICAL_CROSSENTROPY)
        return "softmax + categorical_crossentropy";
    if (last == NB_SOFTMAX && m->loss == NB_SPARSE_CATEGORICAL_CROSSENTROPY)
        return "softmax + sparse_categorical_crossentropy";
    if (last == NB_SIGMOID && m->loss == NB_BINARY_CROSSENTROPY)
        return "sigmoid + binary_crossentropy";
    return NULL;
}

/* A growing text; failed once an allocation failed. */
typedef struct {
    char *p;
    size_t n, cap;
    bool failed;
} text;

static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    for (int pass = 0; pass < 2 && !t->failed; pass++) {
        va_start(ap, fmt);
        size_t room = t->cap - t->n;
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)k < room) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 1024) + (size_t)k;
        char *q = nb_mem_alloc(cap);
        if (!q) {
            t->failed = true;
            return;
        }
        if (t->p)
            memcpy(q, t->p, t->n + 1);
        nb_mem_free(t->p);
        t->p = q;
        t->cap = cap;
    }
}

/* User text (a layer's name) for an HTML-like label. */
static void put_escaped(text *t, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '&')
            put(t, "&amp;");
        else if (c == '<')
            put(t, "&lt;");
        else if (c == '>')
            put(t, "&gt;");
        else if (c == '"')
            put(t, "&quot;");
        else if (c < 0x20 || c >= 0x7F) /* names are ASCII; anything else reads as '?' */
            put(t, "?");
        else
            put(t, "%c", c);
    }
}

static void put_shape(text *t, int ndim, const int64_t *d)
{
    put(t, "(None");
    for (int i = 0; i < ndim; i++)
        put(t, ", %lld", (long long)d[i]);
    put(t, ")");
}

static void put_count(text *t, int64_t v)
{
    char b[NN_THOUSANDS_LEN];
    put(t, "%s", nn_thousands(b, v));
}

static void row(text *t, const char *key)
{
    put(t, "<tr><td align=\"left\"><font color=\"#555555\">%s</font></td><td align=\"left\">",
        key);
}

/* The DOT text of m's layers, nb_mem_alloc'd; NULL with an error. */
static char *model_dot(const nb_model *m)
{
    text t = {0};
    put(&t, "digraph model {\n"
            "  graph [rankdir=TB, nodesep=0.3, ranksep=0.3, fontname=\"Helvetica\"];\n"
            "  node [shape=plain, fontname=\"Helvetica\", fontsize=11];\n"
            "  edge [color=\"#555555\", arrowsize=0.7];\n");
    put(&t, "  input [label=<<table border=\"1\" cellborder=\"0\" cellspacing=\"0\" "
            "cellpadding=\"3\" color=\"#999999\" bgcolor=\"#f5f5f5\"><tr><td><b>input (InputLayer)</b>"
            "</td></tr><tr><td>");
    put_shape(&t, m->in_ndim, m->in);
    put(&t, "</td></tr></table>>];\n");
    const char *fused = nn_fused_loss(m);
    int64_t trainable = 0, total = 0;
    char prev[16] = "input", id[16];
    for (int i = 0; i < m->n; i++) {
        const nb_layer *l = m->layers[i];
        if (l->type == &nn_input_type)
            continue;
        int64_t params = 0, state = 0;
        for (int k = 0; k < l->nw; k++) {
            params += nb_numel(l->w[k]);
            state += l->trainable[k] ? 0 : nb_numel(l->w[k]);
        }
        trainable += params - state;
        total += params;
        bool last = i == m->n - 1;
        put(&t, "  l%d [label=<<table border=\"1\" cellborder=\"0\" cellspacing=\"0\" "
                "cellpadding=\"3\" color=\"#6c8ebf\" bgcolor=\"#ffffff\">"
                "<tr><td colspan=\"2\" bgcolor=\"#dae8fc\"><b>",
            i);
        put_escaped(&t, l->name);
        put(&t, " (");
        put_escaped(&t, l->type->type);
        put(&t, ")</b></td></tr>");
        row(&t, "input");
        put_shape(&t, l->in_ndim, l->in);
        put(&t, "</td></tr>");
        row(&t, "output");
        put_shape(&t, l->out_ndim, l->out);
        put(&t, "</td></tr>");
        nb_activation a = nn_layer_activation(l);
        if (l->type == &nn_dense_type && a != NB_LINEAR) {
            row(&t, "activation");
            if (last && fused)
                put(&t, "<font color=\"#a50e0e\"><b>%s</b>, fused into the loss</font>",
                    nb_activation_name(a));
            else
                put(&t, "%s", nb_activation_name(a));
            put(&t, "</td></tr>");
        }
        row(&t, "params");
        put_count(&t, params);
        if (state) {
            put(&t, " (");
            put_count(&t, state);
            put(&t, " non-trainable)");
        }
        put(&t, "</td></tr></table>>];\n");
        snprintf(id, sizeof id, "l%d", i);
        put(&t, "  %s -> %s;\n", prev, id);
        memcpy(prev, id, sizeof id);
    }
    if (m->compiled) {
        put(&t, "  loss [label=<<table border=\"1\" cellborder=\"0\" cellspacing=\"0\" "
                "cellpadding=\"3\" color=\"#d79b00\" bgcolor=\"#ffe6cc\"><tr><td><b>loss ("
                "");
        put_escaped(&t, nn_loss_name(m));
        put(&t, ")</b></td></tr>");
        if (fused) {
            put(&t, "<tr><td><font color=\"#a50e0e\">");
            put_escaped(&t, fused);
            put(&t, ", fused:<br/>taken from the logits</font></td></tr>");
        }
        put(&t, "</table>>];\n  %s -> loss [style=dashed%s];\n", prev,
            fused ? ", label=<<font point-size=\"9\">logits</font>>" : "");
    }
    put(&t, "  labelloc=b; fontsize=11; label=\"Total params: ");
    put_count(&t, total);
    put(&t, " (trainable ");
    put_count(&t, trainable);
    put(&t, ")\";\n}\n");
    if (t.failed) {
        nb_mem_free(t.p);
        nb_set_error_code(NB_ERR_MEMORY, FN ": out of memory for the DOT text of %d layers",
                          m->n);
        return NULL;
    }
    return t.p;
}

/* The extension of path, lower case, into ext ("" when there is none). */
static void extension(const char *path, char ext[5])
{
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    ext[0] = '\0';
    if (!dot || (slash && slash > dot) || strlen(dot + 1) > 3)
        return;
    int i = 0;
    for (const char *c = dot + 1; *c; c++)
        ext[i++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    ext[i] = '\0';
}

int nb_plot_model(const nb_model *m, const char *path)
{
    if (nn_bad_model(m, FN))
        return -1;
    if (!path)
        return nb_set_error(FN ": path is NULL");
    char ext[5];
    extension(path, ext);
    bool dot = strcmp(ext, "dot") == 0, picture = !strcmp(ext, "svg") || !strcmp(ext, "png");
    if (!dot && !picture)
        return nb_set_error(FN ": cannot tell the format of '%s': the name must end in .dot, "
                            ".svg or .png",
                            path);
    if (picture && !nb_dot_can_render())
        return nb_set_error_code(NB_ERR_STATE, FN ": this nabla was built without Graphviz "
                                 "(libgvc); write '.dot' and run `dot -Tsvg`");
    if (!m->built)
        return nb_set_error_code(NB_ERR_STATE, FN ": the model is not built (give it an "
                                 "nb_input or the first layer .input, or call nb_build)");
    char *text = model_dot(m);
    if (!text)
        return -1;
    int rc = 0;
    if (picture) {
        rc = nb_dot_render_string(text, path) ? nn_as_caller("nb_dot_render_string", FN) : 0;
    } else {
        FILE *f = fopen(path, "wb");
        if (!f)
            rc = nb_set_error_code(NB_ERR_IO, FN ": cannot open '%s' for writing: %s", path,
                                   strerror(errno));
        else {
            bool ok = fputs(text, f) >= 0;
            ok = fclose(f) == 0 && ok;
            if (!ok)
                rc = nb_set_error_code(NB_ERR_IO, FN ": writing '%s' failed: %s", path,
                                       strerror(errno));
        }
    }
    nb_mem_free(text);
    return rc;
}
