// The exp-bound element-wise pieces of the forward pass (SiLU·up, softmax,
// log-sum-exp) in the best instruction set this CPU has (io/cpu_isa.h).
// In a small model they are a quarter of eval's time (tiny-qwen3moe: the
// log-softmax over the vocabulary, attention's softmax and the experts'
// SiLU), and plain x86-64 gives Eigen's exp only 4 lanes.
//
// Like the GEMM (quant/gemm.h), the body is compiled three times, each copy
// with Eigen's namespace renamed, so no AVX instantiation can leak into the
// portable path. Results agree across ISAs to rounding (Eigen's exp
// polynomial is the same; FMA changes its last bits), and are bit-identical
// run to run and for any buffer alignment on one ISA: exp runs in an aligned
// scratch array and sums use a fixed order.
#pragma once
#include <cstdint>

#include "io/cpu_isa.h"

namespace moec {

// In place: a[i] = silu(a[i]) * b[i].
void silu_mul_kernel(float* a, const float* b, int64_t n, Isa isa = active_isa());
// In place softmax of one row, max-subtracted.
void softmax_kernel(float* x, int64_t n, Isa isa = active_isa());
// log Σ exp(x[i]), computed stably.
float log_sum_exp_kernel(const float* x, int64_t n, Isa isa = active_isa());

namespace detail {
#define MOEC_DECLARE_ELEMENTWISE(suffix)                               \
  void silu_mul_##suffix(float* a, const float* b, int64_t n);         \
  void softmax_##suffix(float* x, int64_t n);                          \
  float log_sum_exp_##suffix(const float* x, int64_t n);
MOEC_DECLARE_ELEMENTWISE(portable)
MOEC_DECLARE_ELEMENTWISE(avx2)
MOEC_DECLARE_ELEMENTWISE(avx512)
#undef MOEC_DECLARE_ELEMENTWISE
}  // namespace detail

}  // namespace moec
