// sub1 matrices on a CUDA device: fused decode + matrix-vector and decode +
// batched products, for any shape (no per-shape template list), with f32 or
// bf16 activations. The decoding logic is quant/sub1_code.h's, the same
// __host__ __device__ functions the CPU reference and its tests run.
//
// Layout (quant/sub1.h): the device holds the codewords, block offsets,
// level codes and the dictionary's decoding table (16 bytes per codeword,
// 1 MiB, read through L1/L2). One warp decodes one block of 16 rows: its 32
// lanes take 32 consecutive codewords, a warp prefix sum of their lengths
// gives each its first trit, and every lane adds level × x for the nonzero
// trits of its codeword into the block's [16 rows × 32 tokens] accumulators
// in shared memory (atomics: a codeword may end in the next row). Batches of
// more than 32 tokens decode the block again per 32 tokens.
// Limits: cols < 2^31 (row arithmetic in 32 bits within a block), tokens any;
// summation order is not fixed on the GPU (shared-memory atomics), so results
// match the CPU within rounding, not bit for bit.
#pragma once
#include <cstdint>

#include "quant/cuda/sub1_launch.h"
#include "quant/sub1.h"

namespace moec::cuda {

class Sub1DeviceMatrix {
 public:
  explicit Sub1DeviceMatrix(const Sub1View& host);  // uploads; throws moec::Error without a device
  ~Sub1DeviceMatrix();
  Sub1DeviceMatrix(const Sub1DeviceMatrix&) = delete;
  Sub1DeviceMatrix& operator=(const Sub1DeviceMatrix&) = delete;

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  // y[t, r] = Σ_c W[r, c] · x[t, c]; x and y in device memory; x as f32 or
  // as bf16 bit patterns. Asynchronous on the default stream.
  void linear(const float* x, int64_t x_stride, int64_t tokens, float* y, int64_t y_stride) const;
  void linear_bf16(const uint16_t* x, int64_t x_stride, int64_t tokens, float* y, int64_t y_stride) const;

 private:
  int64_t rows_ = 0, cols_ = 0;
  Sub1DeviceArrays arrays_;
};

// Host-memory convenience for tests: uploads x ([tokens, cols], as bf16 when
// asked), multiplies on the device, and returns y [tokens, rows].
void sub1_linear_on_device(const Sub1View& w, const float* x, int64_t tokens, float* y, bool bf16_activations);

}  // namespace moec::cuda
