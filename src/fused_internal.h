/* Fused functions' shared parts: the program a trace makes
 * (src/fused_trace.c) and src/fused.c runs. Not installed. */
#ifndef NABLA_FUSED_INTERNAL_H
#define NABLA_FUSED_INTERNAL_H

#include "internal.h"

#include <pthread.h>

/* Elements per block: Adam's update keeps about six scratch buffers, 24 KiB
 * in f32 of this machine's 32 KiB L1 (bench/adam.c: 512 and 2048 were no
 * faster, within the noise). */
#define NB_FUSED_BLOCK 1024
/* Outputs of at least this many bytes are stored with streaming stores. */
#define NB_FUSED_STREAM (1u << 20)
/* Calls with fewer elements stay on the calling thread. */
#define NB_FUSED_PARALLEL (1 << 16)
#define MAX_INSTR 4096

/* Slot kinds: scalars and constants have one element. */
enum { FULL = 0, SCALAR = 1, CONST = 2 };

typedef struct {
    const nb_op *op;
    int n, out;
    int in[NB_MAX_INPUTS];
    void *attr; /* a copy, op->attr_size bytes */
} instr;

typedef struct program {
    nb_dtype dtype;
    unsigned scalars; /* bit i: input i has one element */
    int nslots, ninstr, nbuf;
    uint8_t *kind;   /* per slot: FULL, SCALAR or CONST */
    double *value;   /* per slot: constants' values */
    int *buf;        /* per slot: scratch buffer of a full intermediate, or -1 */
    int *outs;       /* per output: its slot */
    instr *ins;
    struct program *next;
} program;

typedef struct {
    const program *p;
    int k;
} fused_attr;

struct nb_fused {
    char *name;
    int n_in, n_out;
    nb_fused_fn f;
    void *ctx;
    pthread_mutex_t lock;
    program *programs;
    nb_op ops[NB_FUSED_MAX];
    char names[NB_FUSED_MAX][80];
};

/* Frees a program and what it holds (NULL: no-op). */
void nb__program_free(program *p);
/* fn's program for a dtype and a pattern of one-element inputs (bit i:
 * input i), traced on first use (under fn's lock); NULL with an error. */
const program *nb__program_for(nb_fused *fn, nb_dtype dtype, unsigned scalars);

#endif
