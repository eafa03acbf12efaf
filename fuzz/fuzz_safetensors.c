/* Fuzzes the safetensors reader three ways, as a program would use it:
 *   - nb_load_safetensors(path, 0, NULL, .partial = true): the header, the
 *     tiling, the metadata and the checksum, whatever the file holds;
 *   - a partial load into a fixed set of tensors ("t" f32 (3,), "a" f64
 *     (2,), "s" f32 (), and "w" (2,3), a transposed f32 view of a (3,2)
 *     tensor), the names of the seed corpus;
 *   - nb_load_weights into a built Dense(3 -> 2) model (dense.kernel
 *     (3,2), dense.bias (2,)): the strict checkpoint path, and in the
 *     PyTorch layout (0.weight (2,3), 0.bias (2,)).
 * A failure must name the function called and the path. */
#include "fuzz.h"

static nb_tensor *set[4];
static nb_model *model;

static void init(void)
{
    set[0] = nb_set_name(nb_zeros(NB_F32, NB_SHAPE(3)), "t");
    set[1] = nb_set_name(nb_zeros(NB_F64, NB_SHAPE(2)), "a");
    set[2] = nb_set_name(nb_zeros(NB_F32, 0, NULL), "s");
    static nb_tensor *base;
    base = nb_zeros(NB_F32, NB_SHAPE(3, 2));
    nb_graph_new(); /* current for good: the view lives in it */
    set[3] = nb_set_name(nb_transpose(base, 0, 1), "w");
    model = nb_sequential(nb_dense(2, .input = 3));
    if (!set[0] || !set[1] || !set[2] || !set[3] || !model || nb_build(model, 3, 0) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model)
        init();
    const char *path = fuzz_file(data, size);
    if (nb_load_safetensors(path, 0, NULL, .partial = true) != 0)
        fuzz_check_error("nb_load_safetensors", path);
    if (nb_load_safetensors(path, 4, set, .partial = true) != 0)
        fuzz_check_error("nb_load_safetensors", path);
    if (nb_load_weights(model, path) != 0)
        fuzz_check_error("nb_load_weights", path);
    if (nb_load_weights(model, path, .layout = NB_LAYOUT_PYTORCH) != 0)
        fuzz_check_error("nb_load_weights", path);
    return 0;
}
