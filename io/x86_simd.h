// <immintrin.h> for kernels compiled with per-function target attributes
// (io/cpu_isa.h chooses among them at run time).
//
// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined_*()
// (`__Y = __Y`), which -Wmaybe-uninitialized reports at every use once they
// are inlined into a target("avx512f") function: a false positive, silenced
// for the files that include this header.
#pragma once
#if defined(__x86_64__)
#if defined(__GNUC__) && !defined(__clang__)  // clang has no -Wmaybe-uninitialized (and warns about the name)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#endif
