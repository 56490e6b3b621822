#include "quant/gemm.h"

// The portable copy: Eigen under its own name, plain x86-64 flags.
#define MOEC_GEMM_FUNCTION gemm_f32_portable
#include "quant/gemm_eigen.inc"

namespace moec {

void gemm_f32(const GemmProblem& p, Isa isa) {
  if (p.m <= 0 || p.n <= 0) return;
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return detail::gemm_f32_avx512(p);
  if (isa == Isa::Avx2) return detail::gemm_f32_avx2(p);
#endif
  detail::gemm_f32_portable(p);
}

void gemm_f32(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb, bool b_transposed,
              int64_t m, int64_t n, int64_t k, float alpha, bool accumulate) {
  GemmProblem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = a;
  p.lda = lda;
  p.b = b;
  p.ldb = ldb;
  p.b_transposed = b_transposed;
  p.c = c;
  p.ldc = ldc;
  p.alpha = alpha;
  p.accumulate = accumulate;
  gemm_f32(p);
}

}  // namespace moec
