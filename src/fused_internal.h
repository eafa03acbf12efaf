/* Fused functions' shared parts: the program a trace makes
 * (src/fused_trace.c) and src/fused.c runs. Not installed. */
#ifndef NABLA_FUSED_INTERNAL_H
#define NABLA_FUSED_INTERNAL_H

#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#ifdef NB_KERNEL_AVX512
#include <immintrin.h>
#endif

/* Elements per block of the interpreter (and of the thread split): a
 * dozen-op chain keeps about six scratch buffers, 24 KiB in f32 of this
 * machine's 32 KiB L1 (bench/adam.c: 512 and 2048 were no faster, within
 * the noise). */
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

/* A compiled program's loop over n elements (src/fused_compile.c): in[i]
 * input i's data (full inputs), out[k] output k's, scal the one-element
 * slots' values (8 bytes apart), attr[i] instruction i's attributes, nt
 * the outputs to store with streaming stores (each 64-byte aligned); the
 * mask of outputs given a NaN or an inf. */
typedef unsigned (*nb_compiled_fn)(char *const *in, char *const *out, const char *scal,
                                   const void *const *attr, int64_t n, unsigned nt);
typedef struct {
    const char *key;
    nb_compiled_fn fn, fn512; /* fn512: the AVX-512 build of it, or NULL */
} nb_compiled;

/* 64 bytes from src to dst (both 64-byte aligned) with streaming stores:
 * a store that misses the caches then does not first read the line it
 * fills. The portable loops use SSE2's (every x86-64 has it); the AVX-512
 * loops store a whole line at once, which on this machine's Zen 4 is some
 * 10% faster for Adam beyond the caches (docs/performance.md). */
static inline void nb__stream_line(void *dst, const void *src)
{
#if defined(__SSE2__)
    for (int q = 0; q < 64; q += 16)
        _mm_stream_ps((float *)(void *)((char *)dst + q),
                      _mm_load_ps((const float *)(const void *)((const char *)src + q)));
#else
    memcpy(dst, src, 64);
#endif
}
#ifdef NB_KERNEL_AVX512
NB_KERNEL_AVX512 static inline void nb__stream_line512(void *dst, const void *src)
{
    _mm512_stream_ps((float *)dst, _mm512_load_ps((const float *)src));
}
/* The portable loops, beside the hand-picked AVX-512 ones. */
#define NB_FUSED_TARGETS __attribute__((target_clones("avx2", "default")))
#else
#define NB_FUSED_TARGETS NB_KERNEL_TARGETS
#endif
/* The build's compiled programs, ending with {NULL, ...}: written by
 * nabla-fusegen (src/fused_gen.c); none in the generator itself. */
extern const nb_compiled nb__compiled_programs[];

/* Loops whose iterations are independent though the compiler cannot tell
 * (outputs may be written over inputs, element for element). Not under
 * clang's sanitizers, whose checks stop the vectorising it asks for (and
 * then warn). */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NB_IVDEP
#endif
#endif
#if defined(NB_IVDEP)
#elif defined(__clang__)
#define NB_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define NB_IVDEP _Pragma("GCC ivdep")
#else
#define NB_IVDEP
#endif

typedef struct program {
    nb_dtype dtype;
    int n_in, n_out;
    nb_compiled_fn compiled; /* or NULL: interpreted */
    const void **attrs;      /* per instruction, for compiled: its attributes */
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

/* p's key (its dtype, slot kinds, ops and wiring) in buf: its
 * length, or -1 when p has an op with no element expression here (or buf
 * is too short). */
int nb__program_key(const program *p, char *buf, size_t cap);
/* p as C: a function `fname` of type nb_compiled_fn, written to f. */
int nb__program_emit(const program *p, const char *fname, FILE *f);
/* Gives p the build's compiled loop of it, if there is one (-1: out of
 * memory, with the error set). */
int nb__program_compile(program *p);
/* Called with every program traced (fn's name; NULL: none), for the
 * generator; not thread-safe, set before any tracing. */
extern void (*nb__traced_hook)(const program *p, const char *name);
/* Tests: while true, programs traced are interpreted, not compiled. */
extern bool nb__fused_interpret;
/* Tests: while true, programs compiled take the portable loop, not the
 * AVX-512 one. */
extern bool nb__fused_portable;

#endif
