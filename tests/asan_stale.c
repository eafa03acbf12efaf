/* Stale accesses that no check of nabla's can see, for the AddressSanitizer
 * build only (tests/meson.build defines the test when b_sanitize has
 * address): each case must be reported by ASan, which ends the program.
 *
 *   asan_stale data   a raw pointer from nb_data kept across nb_graph_reset:
 *                     the data arena is poisoned on reset (use-after-poison)
 *   asan_stale freed  a tensor of a graph that nb_graph_free released
 *                     (heap-use-after-free: its header is gone with the graph)
 *   asan_stale fresh  past the end of a graph tensor's data, inside the arena
 *                     chunk: what is not handed out stays poisoned
 *
 * Run by a wrapper that expects the ASan report; exits 0 (and so fails the
 * test) if nothing was reported. */
#include <stdio.h>
#include <string.h>

#include "nabla/nabla.h"

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "";
    nb_tensor *x = nb_ones(NB_F32, NB_SHAPE(4));
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_add(x, x);
    volatile float sink = 0;
    if (!strcmp(which, "data")) {
        float *p = nb_data(y);
        nb_graph_reset(g);
        sink = p[0];
    } else if (!strcmp(which, "freed")) {
        nb_graph_free(g);
        g = nb_graph_new();
        sink = (float)nb_item(nb_sum(nb_add(y, x))); /* reads y's freed header */
    } else if (!strcmp(which, "fresh")) {
        float *p = nb_data(y);
        sink = p[64]; /* 4 floats were handed out (rounded to 64 bytes) */
    } else {
        fprintf(stderr, "usage: asan_stale data|freed|fresh\n");
        return 2;
    }
    printf("no report (read %g)\n", (double)sink);
    nb_graph_free(g);
    nb_free(x);
    return 0;
}
