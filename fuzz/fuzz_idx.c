/* Fuzzes nb_read_idx, plain and gzipped (zlib tells them apart by the
 * magic, 1f 8b): the input as it is, and, unless it is gzip already, also
 * gzipped, so the mutations of a plain IDX file reach the reader through
 * zlib too. A tensor read is printed (to /dev/null), which walks its shape
 * and every element; a failure must name nb_read_idx and the path. */
#include "fuzz.h"

#include <zlib.h>

static FILE *devnull;

static void read_one(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    nb_tensor *t = nb_read_idx(path);
    if (!t) {
        fuzz_check_error("nb_read_idx", path);
        return;
    }
    if (nb_print(t, devnull) != 0)
        abort();
    nb_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull && !(devnull = fopen("/dev/null", "w")))
        abort();
    read_one(data, size);
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        return 0;
    /* The same bytes as a gzip stream (level 1: fast). */
    static uint8_t *gz;
    static size_t cap;
    z_stream z = {0};
    if (deflateInit2(&z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t need = deflateBound(&z, (uLong)size);
    if (need > cap) {
        free(gz);
        if (!(gz = malloc(cap = need)))
            abort();
    }
    z.next_in = (uint8_t *)data;
    z.avail_in = (uInt)size;
    z.next_out = gz;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        abort();
    size_t len = z.total_out;
    deflateEnd(&z);
    read_one(gz, len);
    return 0;
}
