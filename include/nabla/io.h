/* nabla: reading data and reading/writing tensors. Every reader checks
 * what it reads and fails with a message naming the file and the problem
 * (bad magic, truncated data, mismatched counts); nothing aborts. */
#ifndef NABLA_IO_H
#define NABLA_IO_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits of the readers, beyond the shape limits of every tensor
 * (NB_MAX_DIMS, NB_MAX_NUMEL). A gzipped IDX file may expand to at most
 * NB_GZIP_MAX_RATIO times its own size, or NB_GZIP_FREE_BYTES when that is
 * more: real data sets compress 2 to 5 times (Fashion-MNIST's images 1.8,
 * MNIST's 4.7), a gzip bomb about 1000 times (a 190 KB file of zeros
 * expands to 196 MB, a 784 MB f32 tensor). The header's sizes say how much
 * the data expands to, so a file beyond the limit is refused before
 * anything is decompressed. A genuine file beyond it loads once gunzipped:
 * plain files have no limit but their size. */
#define NB_GZIP_MAX_RATIO 128
#define NB_GZIP_FREE_BYTES ((int64_t)64 << 20)

/* Every reader opens its file without blocking and refuses anything but a
 * regular file (a FIFO, a device, a folder, a socket: "nb_read_idx: p: is a
 * FIFO (named pipe), not a regular file"), so a path from outside cannot
 * make it wait for ever or read without end. */

/* Reads an IDX file (the MNIST format), gzipped or not, as an f32 heap tensor
 * of the raw values with the file's shape (types u8, i8, i16, i32, f32, f64;
 * up to 8 dimensions; a shape beyond NB_MAX_NUMEL elements is an error even
 * when a zero size makes it empty; gzip within NB_GZIP_MAX_RATIO). The data
 * must be exactly as long as the header says: "truncated data" and
 * "trailing data" are errors. NULL on error. */
nb_tensor *nb_read_idx(const char *path);

/* Loads (Fashion-)MNIST from dir (train-images-idx3-ubyte[.gz] and friends):
 * images as stored, bytes 0..255 flattened to (N, 784) u8 (47 MB for the
 * training set, read straight into the tensor), labels one-hot (N, 10)
 * f32. nb_fit and friends convert the images a batch at a time: give them
 * {x, y, .scale = 1 / 255.0} (nb_dataset) for values in [0, 1]. The caller
 * frees the four tensors. 0, or -1 with all four outputs NULL (the message
 * names the file: mismatched counts, a label out of range, a truncated
 * file, ...). */
int nb_load_mnist(const char *dir, nb_tensor **x_train, nb_tensor **y_train,
                  nb_tensor **x_test, nb_tensor **y_test);

/* Images (N, 28, 28) or (N, 784) values 0..255 (u8, or floats) -> (N, 784)
 * f32 in [0, 1], each the float nearest to v / 255 (what nb_fit makes of u8
 * x with scale 1 / 255.0), a new heap tensor (images may be any view).
 * NULL on error. */
nb_tensor *nb_scale_images(const nb_tensor *images);
/* Labels (N,) whole numbers in [0, classes) -> (N, classes) one-hot f32, a
 * new heap tensor (labels may be any view). NULL on error. */
nb_tensor *nb_to_one_hot(const nb_tensor *labels, int64_t classes);

/* Reads a numeric CSV table: every column but label_column becomes a
 * feature (N, F) f32, label_column (negative: from the end) the labels
 * (N,) f32. A first line that is not numeric is taken as a header.
 * 0 or -1 (the message names the line and column of a bad cell). */
int nb_read_csv(const char *path, int label_column, nb_tensor **features,
                nb_tensor **labels);

/* The version of nabla's use of safetensors, written into every file it
 * saves: "__metadata__": {"nabla_format": "1", "nabla_crc32": "<hex>"}. */
#define NB_SAFETENSORS_FORMAT 1

/* One entry of a safetensors file's "__metadata__": a key and its value,
 * both strings (the format allows nothing else). */
typedef struct nb_metadata {
    const char *key, *value;
} nb_metadata;

/* The arguments of nb_save_safetensors; metadata is the only option. */
typedef struct nb_save_args {
    const char *path;
    int n;
    nb_tensor *const *tensors;
    /* nmetadata entries written into "__metadata__" after nabla's two:
     * UTF-8 keys and values, the keys distinct and neither "nabla_format"
     * nor "nabla_crc32" (PyTorch's save_file(..., metadata=)). */
    const nb_metadata *metadata;
    int nmetadata;
} nb_save_args;

/* Writes tensors in the safetensors format (a JSON header, then raw
 * little-endian data; dtypes F32, F64 and U8) under their names (each needs one, all distinct), in
 * the order given; a view is written as its elements in row-major order,
 * like a contiguous copy:
 *   nb_save_safetensors(path, n, tensors)
 *   nb_save_safetensors(path, n, tensors, .metadata = kv, .nmetadata = 2)
 * The metadata records NB_SAFETENSORS_FORMAT and
 * the CRC-32 of the data, which loading verifies. Atomic: written to
 * "<path>.nbtmp" in the same folder, then renamed; on failure path is
 * untouched. path must be a regular file or missing (a symbolic link to a
 * regular file is followed: the file it leads to is replaced); a device, a
 * FIFO or a folder is refused. The temporary name is one per file and
 * locked while written: a second save of the same file waits for the
 * first, and a save killed half-way leaves that one file, which the next
 * save reuses. 0 or -1. */
#define nb_save_safetensors(...) nb_save_safetensors_((nb_save_args){.path = __VA_ARGS__})
int nb_save_safetensors_(nb_save_args args);

/* The arguments of nb_load_safetensors: partial, and a look at the metadata. */
typedef struct nb_load_args {
    const char *path;
    int n;
    nb_tensor *const *tensors;
    /* false (the default): the file must hold exactly these tensors, and,
     * when nabla wrote it (its metadata says so), in this order; the first
     * difference (a missing, extra or misplaced tensor, a shape) is the
     * error. true: tensors the file lacks keep their values, tensors of the
     * file not asked for are ignored; at least one must be there. */
    bool partial;
    /* Optional: called once with the file's "__metadata__" entries whose
     * values are strings, but for nabla's two (which the load checks
     * itself), in the file's order, when the header has been read and
     * checked and before any tensor is matched or written. The strings
     * live until it returns. Returning -1 (with an error set) fails the
     * load with nothing written; 0 goes on. */
    int (*on_metadata)(int n, const nb_metadata *metadata, void *ctx);
    void *ctx;
} nb_load_args;

/* Reads into existing tensors, matched by name:
 *   nb_load_safetensors(path, n, tensors)                  the whole file
 *   nb_load_safetensors(path, n, tensors, .partial = true) the ones it has
 *   nb_load_safetensors(path, 0, NULL, .partial = true, .on_metadata = f)
 *                                                          its metadata alone
 * Each tensor loaded must have its shape in the file (F32 or F64 there
 * converts to an f32 or f64 tensor's dtype; U8 loads into u8 tensors only,
 * as nb_save_safetensors writes them). A file from nabla has its CRC-32
 * verified (the whole data is read once); a file without nabla's metadata
 * (from PyTorch, NumPy, the reference library, an older nabla) loads
 * without, and its order is not checked. The file's entries must tile its
 * data exactly, as the format requires. A view is filled through its
 * strides (into the storage it shares with the tensor it views); one whose
 * elements share memory (a broadcast) is refused. Everything is checked
 * before anything is written; the writes bump the versions of the tensors'
 * storages like any in-place write. 0 or -1. */
#define nb_load_safetensors(...) nb_load_safetensors_((nb_load_args){.path = __VA_ARGS__})
int nb_load_safetensors_(nb_load_args args);

#ifdef __cplusplus
}
#endif
#endif
