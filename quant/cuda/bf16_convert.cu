#include "quant/cuda/bf16_convert.h"

#include <cuda_runtime.h>

#include "io/dtype.h"
#include "io/error.h"

namespace moec::cuda {
namespace {

// One thread per element, grid-stride so any n works with a bounded grid.
// Memory-bound: each thread reads 2 bytes and writes 4, coalesced.
__global__ void bf16_to_f32_kernel(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = moec::bf16_to_f32(src[i]);
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("cuda: {}: {}", what, cudaGetErrorString(status));
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

void bf16_to_f32(const uint16_t* host_src, float* host_dst, size_t n) {
  if (device_count() == 0) fail("cuda: no CUDA device available");
  if (n == 0) return;
  uint16_t* src = nullptr;
  float* dst = nullptr;
  check(cudaMalloc(&src, n * sizeof(uint16_t)), "cudaMalloc");
  if (cudaMalloc(&dst, n * sizeof(float)) != cudaSuccess) {
    cudaFree(src);
    fail("cuda: cudaMalloc of {} floats failed", n);
  }
  cudaError_t status = cudaMemcpy(src, host_src, n * sizeof(uint16_t), cudaMemcpyHostToDevice);
  if (status == cudaSuccess) {
    const int threads = 256;
    const int blocks = int(std::min<size_t>((n + threads - 1) / threads, 65535));
    bf16_to_f32_kernel<<<blocks, threads>>>(src, dst, n);
    status = cudaGetLastError();
  }
  if (status == cudaSuccess) status = cudaMemcpy(host_dst, dst, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(src);
  cudaFree(dst);
  check(status, "bf16_to_f32");
}

}  // namespace moec::cuda
