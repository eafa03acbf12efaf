/* Fuzzes nb_read_csv, with the label column taken from the input's length
 * (-1, 0 or 1). A table read must be consistent: features (N, F) and
 * labels (N,); a failure must name nb_read_csv and the path. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    nb_tensor *x = NULL, *y = NULL;
    int label = (int)(size % 3) - 1;
    if (nb_read_csv(path, label, &x, &y) != 0) {
        if (x || y)
            abort();
        fuzz_check_error("nb_read_csv", path);
        return 0;
    }
    if (nb_ndim(x) != 2 || nb_ndim(y) != 1 || nb_dim(x, 0) != nb_dim(y, 0) ||
        nb_dim(x, 0) < 1 || nb_dim(x, 1) < 1)
        abort();
    nb_free(x);
    nb_free(y);
    return 0;
}
