// The launch interface of the sub1 CUDA kernels (quant/cuda/sub1_kernels.cu):
// plain pointers to device memory, so nvcc compiles it without moec's C++20
// headers. Host code uses quant/cuda/sub1_kernels.h.
#pragma once
#include <cstdint>

namespace moec::cuda {

struct Sub1DeviceArrays {
  int64_t rows = 0, cols = 0;
  float level_scale = 0.0f;
  const uint16_t* words = nullptr;   // codewords
  const uint32_t* blocks = nullptr;  // [n_blocks + 1] first codeword of each block
  const uint8_t* levels = nullptr;   // [rows, 2] level codes
  const uint64_t* masks = nullptr;   // [dictionary size, 2] decoding table
};

// y[t, r] = Σ_c W[r, c] · x[t, c] on the default stream; x is f32, or bf16
// bit patterns when bf16 is set. Returns the launch's cudaError_t as int.
int launch_sub1_linear(const Sub1DeviceArrays& w, const void* x, bool bf16, int64_t x_stride, int64_t tokens,
                       float* y, int64_t y_stride);

}  // namespace moec::cuda
