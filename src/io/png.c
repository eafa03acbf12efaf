/* The PNG encoder of png.h. A PNG file is the 8-byte signature and chunks,
 * each: length (4 bytes, big-endian, of the data only), type (4 ASCII
 * bytes), data, CRC-32 of type and data. Here: IHDR (width, height, bit
 * depth 8, colour type 2 = RGB, compression 0, filter 0, interlace 0), one
 * IDAT (the zlib stream of the rows, each prefixed by its filter byte 0)
 * and an empty IEND. */
#include "png.h"

#include <zlib.h>

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

/* Writes a chunk's length and type at p; its n data bytes already follow
 * them; then its CRC. Returns the end of the chunk. */
static uint8_t *chunk(uint8_t *p, const char *type, size_t n)
{
    put32(p, (uint32_t)n);
    memcpy(p + 4, type, 4);
    uLong crc = crc32(0L, p + 4, (uInt)(4 + n));
    return put32(p + 8 + n, (uint32_t)crc);
}

int nb__png_encode(const char *fn, const uint8_t *rgb, int w, int h, uint8_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    /* Kept far below zlib's uLong and PNG's 2^31 limits. */
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        return nb__error("%s: a PNG of %d x %d pixels is out of range (1..16384 each)", fn, w, h);
    size_t stride = 1 + 3 * (size_t)w, raw_n = stride * (size_t)h;
    uint8_t *raw = nb__alloc(raw_n);
    if (!raw)
        return -1;
    for (int y = 0; y < h; y++) {
        raw[y * stride] = 0; /* filter: none */
        memcpy(raw + y * stride + 1, rgb + (size_t)y * 3 * (size_t)w, 3 * (size_t)w);
    }
    uLong bound = compressBound((uLong)raw_n);
    size_t cap = 8 + (12 + 13) + (12 + (size_t)bound) + 12;
    uint8_t *png = nb__alloc(cap);
    if (!png) {
        nb__free(raw);
        return -1;
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    memcpy(png, sig, 8);
    uint8_t *p = png + 8, *d = p + 8;
    d = put32(d, (uint32_t)w);
    d = put32(d, (uint32_t)h);
    memcpy(d, (const uint8_t[]){8, 2, 0, 0, 0}, 5);
    p = chunk(p, "IHDR", 13);
    uLongf zn = bound;
    int zrc = compress2(p + 8, &zn, raw, (uLong)raw_n, Z_BEST_COMPRESSION);
    nb__free(raw);
    if (zrc != Z_OK) {
        nb__free(png);
        return nb__error("%s: zlib failed to compress %zu bytes of pixels (code %d)", fn, raw_n,
                         zrc);
    }
    p = chunk(p, "IDAT", zn);
    p = chunk(p, "IEND", 0);
    *out = png;
    *n = (size_t)(p - png);
    return 0;
}
