#include "quant/elementwise.h"

// The portable copy: Eigen under its own name, plain x86-64 flags.
#define MOEC_ELEMENTWISE(name) name##_portable
#include "quant/elementwise_eigen.inc"

namespace moec {

void silu_mul_kernel(float* a, const float* b, int64_t n, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return detail::silu_mul_avx512(a, b, n);
  if (isa == Isa::Avx2) return detail::silu_mul_avx2(a, b, n);
#endif
  detail::silu_mul_portable(a, b, n);
}

void softmax_kernel(float* x, int64_t n, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return detail::softmax_avx512(x, n);
  if (isa == Isa::Avx2) return detail::softmax_avx2(x, n);
#endif
  detail::softmax_portable(x, n);
}

float log_sum_exp_kernel(const float* x, int64_t n, Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return detail::log_sum_exp_avx512(x, n);
  if (isa == Isa::Avx2) return detail::log_sum_exp_avx2(x, n);
#endif
  return detail::log_sum_exp_portable(x, n);
}

}  // namespace moec
