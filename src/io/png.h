/* A minimal PNG encoder: 8-bit RGB, no interlacing, every row with filter 0
 * (none), one IDAT chunk compressed by zlib. Private to nabla (the pictures
 * of gradient checks, src/check_picture.c). */
#ifndef NABLA_IO_PNG_H
#define NABLA_IO_PNG_H

#include "internal.h"

/* Encodes w x h pixels (rgb: 3 bytes each, row-major, top row first) as a
 * PNG file in memory: *out (nb_mem_alloc'd, release with nb_mem_free) of *n
 * bytes. 0, or -1 with an error naming fn. */
int nb__png_encode(const char *fn, const uint8_t *rgb, int w, int h, uint8_t **out, size_t *n);

#endif
