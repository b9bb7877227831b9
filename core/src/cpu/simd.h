// Private to core: function multiversioning for the CPU engine's hand-written kernels (fast_conv.cpp).
#pragma once

// SPRINT_VECTOR_CLONES compiles a function for AVX-512, AVX2 and the x86-64 baseline, and the loader picks the
// widest the processor has (GCC target_clones), so one binary runs on any x86-64 and its loops over channels
// vectorise as wide as the machine allows. Elsewhere it is empty: the compiler's default target.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SPRINT_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SPRINT_VECTOR_CLONES
#endif
