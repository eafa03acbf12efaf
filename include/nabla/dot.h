/* nabla: pictures of graphs. Exports a tensor's history as Graphviz DOT:
 * one node per op (name, output shape, dtype), leaves and parameters drawn
 * distinctly with their names, scopes as clusters, chosen nodes in red. */
#ifndef NABLA_DOT_H
#define NABLA_DOT_H

#include "autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_dot_opts {
    const char *title;  /* graph label; NULL: none */
    bool backward;      /* also draw the backward pass: one node per rule,
                           gradients flowing back to the leaves */
    bool values;        /* show values of tensors with at most 8 elements
                           (of a view: its own, read through its strides) */
    /* Tensors to fill red (nb_check_graph's failing nodes), each with a line
     * added under its label: marked_notes[i] (NULL, or an entry NULL: none). */
    nb_tensor *const *marked;
    const char *const *marked_notes;
    int n_marked;
    /* Fill red, with a note of what was found, the tensor of this thread's
     * last anomaly (nb_anomaly_tensor) if it is in the picture. */
    bool anomaly;
} nb_dot_opts;

/* The DOT text of root's history (opts NULL: defaults), allocated through
 * the nabla allocator: release it with nb_dot_free. NULL on error. */
char *nb_dot_string(nb_tensor *root, const nb_dot_opts *opts);
void nb_dot_free(char *dot);
/* Writes the DOT text to path. 0, or -1 on error. */
int nb_dot_write(nb_tensor *root, const char *path, const nb_dot_opts *opts);
/* Renders to path with Graphviz's library; the format comes from the
 * extension (.svg or .png). -1 with an error when built without Graphviz. */
int nb_dot_render(nb_tensor *root, const char *path, const nb_dot_opts *opts);
/* Renders DOT text (nb_dot_string's, nb_plot_model's or any) to path as
 * nb_dot_render does; Graphviz's complaints about the text come back as the
 * error. */
int nb_dot_render_string(const char *dot, const char *path);
/* Whether this build can render (was built with Graphviz's libgvc). */
bool nb_dot_can_render(void);

#ifdef __cplusplus
}
#endif
#endif
