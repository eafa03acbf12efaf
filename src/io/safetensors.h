/* What the safetensors reader (safetensors.c) and writer
 * (safetensors_save.c) share: limits, byte order, and the walk over a
 * view's elements. Private to src/io. */
#ifndef NABLA_IO_SAFETENSORS_H
#define NABLA_IO_SAFETENSORS_H

#include "internal.h"

#define MAX_HEADER 100000000 /* the reference library's limit */

static inline bool host_is_le(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Reverses the bytes of each of count elements of esize bytes. */
static inline void swap_each(void *p, size_t count, size_t esize)
{
    unsigned char *b = p;
    for (size_t i = 0; i < count; i++, b += esize)
        for (size_t k = 0; k < esize / 2; k++) {
            unsigned char t = b[k];
            b[k] = b[esize - 1 - k];
            b[esize - 1 - k] = t;
        }
}

/* A view's elements in row-major order: next() gives the offset (in
 * elements from nb__ptr(t)) of each in turn, whatever the strides. */
typedef struct cursor {
    const nb_tensor *t;
    int64_t idx[NB_MAX_DIMS], off;
} cursor;

static inline int64_t next(cursor *c)
{
    int64_t at = c->off;
    NB_ODOMETER(c->t->ndim, c->t->shape, c->t->strides, c->idx, c->off)
    return at;
}

#define CHUNK 8192 /* bytes staged per read or write of a view or a dtype conversion */

#endif
