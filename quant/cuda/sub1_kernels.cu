// The sub1 CUDA kernel; layout and limits in quant/cuda/sub1_kernels.h.
#include <cuda_runtime.h>

#include "io/dtype.h"
#include "quant/cuda/sub1_launch.h"
#include "quant/sub1_code.h"

namespace moec::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kTokensPerPass = 32;
constexpr unsigned kFullMask = 0xffffffffu;

template <bool kBf16>
__device__ float load_x(const void* x, int64_t i) {
  if constexpr (kBf16)
    return moec::bf16_to_f32(static_cast<const uint16_t*>(x)[i]);
  else
    return static_cast<const float*>(x)[i];
}

template <bool kBf16>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    sub1_linear_kernel(Sub1DeviceArrays w, const void* x, int64_t x_stride, int64_t tokens, float* y,
                       int64_t y_stride) {
  __shared__ float acc[kWarpsPerBlock][kSub1BlockRows][kTokensPerPass];
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int64_t n_blocks = (w.rows + kSub1BlockRows - 1) / kSub1BlockRows;
  const int64_t b = int64_t(blockIdx.x) * kWarpsPerBlock + warp;
  if (b >= n_blocks) return;  // whole warps only; no block-wide barrier below
  const Sub1Codebook cb{w.masks, 0};
  const int64_t row0 = b * kSub1BlockRows;
  const int rows = int(w.rows - row0 < kSub1BlockRows ? w.rows - row0 : kSub1BlockRows);
  const int64_t n = int64_t(rows) * w.cols;
  const uint32_t begin = w.blocks[b], end = w.blocks[b + 1];
  float(*a)[kTokensPerPass] = acc[warp];

  for (int64_t t0 = 0; t0 < tokens; t0 += kTokensPerPass) {
    const int nt = int(tokens - t0 < kTokensPerPass ? tokens - t0 : kTokensPerPass);
    for (int i = lane; i < kSub1BlockRows * kTokensPerPass; i += 32) a[i / kTokensPerPass][i % kTokensPerPass] = 0.0f;
    __syncwarp();
    int64_t pos = 0;  // first trit of the next 32 codewords
    for (uint32_t k0 = begin; k0 < end && pos < n; k0 += 32) {
      const uint32_t k = k0 + uint32_t(lane);
      const unsigned word = k < end ? w.words[k] : 0u;
      const int len = k < end ? sub1_word_length(cb, word) : 0;
      int inclusive = len;  // warp prefix sum of the lengths
      for (int d = 1; d < 32; d <<= 1) {
        const int v = __shfl_up_sync(kFullMask, inclusive, d);
        if (lane >= d) inclusive += v;
      }
      const int64_t start = pos + inclusive - len;
      if (len > 0) {
        uint64_t nonzero = (cb.masks[2 * word] ^ cb.masks[2 * word + 1]);  // the end marker cancels out
        while (nonzero) {
          const int i = __ffsll((long long)nonzero) - 1;
          nonzero &= nonzero - 1;
          const int64_t p = start + i;
          if (p >= n) break;
          const int r = int(p / w.cols);
          const int64_t c = p - int64_t(r) * w.cols;
          const int trit = sub1_word_trit(cb, word, i);
          const float level = trit == 0 ? -sub1_level(w.levels[2 * (row0 + r)], w.level_scale)
                                        : sub1_level(w.levels[2 * (row0 + r) + 1], w.level_scale);
          for (int t = 0; t < nt; ++t) atomicAdd(&a[r][t], level * load_x<kBf16>(x, (t0 + t) * x_stride + c));
        }
      }
      pos += __shfl_sync(kFullMask, inclusive, 31);
    }
    __syncwarp();
    for (int i = lane; i < rows * nt; i += 32) {
      const int r = i / nt, t = i % nt;
      y[(t0 + t) * y_stride + row0 + r] = a[r][t];
    }
    __syncwarp();
  }
}

}  // namespace

int launch_sub1_linear(const Sub1DeviceArrays& w, const void* x, bool bf16, int64_t x_stride, int64_t tokens,
                       float* y, int64_t y_stride) {
  const int64_t n_blocks = (w.rows + kSub1BlockRows - 1) / kSub1BlockRows;
  if (n_blocks == 0 || tokens == 0) return int(cudaSuccess);
  const unsigned grid = unsigned((n_blocks + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (bf16)
    sub1_linear_kernel<true><<<grid, kWarpsPerBlock * 32>>>(w, x, x_stride, tokens, y, y_stride);
  else
    sub1_linear_kernel<false><<<grid, kWarpsPerBlock * 32>>>(w, x, x_stride, tokens, y, y_stride);
  return int(cudaGetLastError());
}

}  // namespace moec::cuda
