// Timing the sub1 CUDA kernels against cuBLAS on the same device, for
// `moec bench kernels` (only when a CUDA device is present).
#pragma once
#include <string>

#include "quant/sub1.h"

namespace moec::cuda {

struct GpuKernelTimes {
  std::string device;
  double sub1_matvec_ms = 0;         // 1 token, f32 activations
  double sub1_matvec_bf16_ms = 0;    // 1 token, bf16 activations
  double sub1_batch16_ms = 0;        // 16 tokens in one call
  double sub1_16_matvecs_ms = 0;     // the same 16 tokens, one call each
  double cublas_bf16_gemv_ms = 0;    // cublasGemmEx, bf16 weights and input, n = 1 (0: no cuBLAS)
  double cublas_bf16_batch16_ms = 0;  // the same, n = 16
};

// Means over `reps` launches after a warm-up, events on the default stream.
GpuKernelTimes time_sub1_on_gpu(const Sub1View& w, int reps = 50);

}  // namespace moec::cuda
