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

}  // namespace moec
