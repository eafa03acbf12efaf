/* Pictures of failing checks (stub: being written). */
#include "check_internal.h"

int nb_check_heatmap(const nb_check_report *report, int input, const char *path)
{
    (void)report, (void)input, (void)path;
    return nb__error("nb_check_heatmap: not written yet");
}

int nb_check_graph(nb_check_fn f, void *ctx, int n, nb_tensor *const x[],
                   const nb_check_opts *opts, const char *path)
{
    (void)f, (void)ctx, (void)n, (void)x, (void)opts, (void)path;
    return nb__error("nb_check_graph: not written yet");
}
