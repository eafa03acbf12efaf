/* The vector widths the library's kernels are built for. Included before
 * nabla/nabla.h by src/internal.h and src/nn/nn_internal.h. Not installed. */
#ifndef NABLA_TARGETS_H
#define NABLA_TARGETS_H

/* Elementwise kernels in AVX-512 and AVX2 versions too (kernel.h), where
 * the toolchain makes ifuncs: gcc on x86-64 Linux, but not under
 * ThreadSanitizer, whose runtime is not up yet when the loader runs the
 * ifunc resolvers (the process crashes at start). A test that includes
 * nabla.h first keeps kernel.h's empty default. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_THREAD__) && !defined(NB_KERNEL_TARGETS)
#define NB_KERNEL_TARGETS __attribute__((target_clones("avx512f", "avx2", "default")))
/* Kernels may also be written for AVX-512 by hand, picked at run time. */
#define NB_KERNEL_AVX512 __attribute__((target("avx512f")))
#endif

#endif
