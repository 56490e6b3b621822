#include "quant/cuda/sub1_kernels.h"

#include <cuda_runtime.h>

#include <vector>

#include "io/error.h"

namespace moec::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("cuda: {}: {}", what, cudaGetErrorString(status));
}

template <typename T>
T* upload(const T* host, size_t n) {
  T* device = nullptr;
  check(cudaMalloc(&device, n * sizeof(T) + 1), "cudaMalloc");
  if (n) {
    const cudaError_t status = cudaMemcpy(device, host, n * sizeof(T), cudaMemcpyHostToDevice);
    if (status != cudaSuccess) cudaFree(device);
    check(status, "cudaMemcpy to the device");
  }
  return device;
}

// Device memory freed when it goes out of scope.
template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { check(cudaMalloc(&p, n * sizeof(T) + 1), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p); }
};

}  // namespace

Sub1DeviceMatrix::Sub1DeviceMatrix(const Sub1View& host) : rows_(host.rows), cols_(host.cols) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) fail("cuda: no CUDA device available");
  arrays_.rows = host.rows;
  arrays_.cols = host.cols;
  arrays_.level_scale = host.level_scale;
  try {
    arrays_.words = upload(host.words, size_t(host.n_words));
    arrays_.blocks = upload(host.blocks, size_t(host.n_blocks() + 1));
    arrays_.levels = upload(host.levels, size_t(2 * host.rows));
    arrays_.masks = upload(host.codebook.masks, size_t(2) * host.codebook.size);
  } catch (...) {
    this->~Sub1DeviceMatrix();
    throw;
  }
}

Sub1DeviceMatrix::~Sub1DeviceMatrix() {
  cudaFree(const_cast<uint16_t*>(arrays_.words));
  cudaFree(const_cast<uint32_t*>(arrays_.blocks));
  cudaFree(const_cast<uint8_t*>(arrays_.levels));
  cudaFree(const_cast<uint64_t*>(arrays_.masks));
  arrays_ = {};
}

void Sub1DeviceMatrix::linear(const float* x, int64_t x_stride, int64_t tokens, float* y, int64_t y_stride) const {
  check(cudaError_t(launch_sub1_linear(arrays_, x, false, x_stride, tokens, y, y_stride)), "sub1 linear");
}

void Sub1DeviceMatrix::linear_bf16(const uint16_t* x, int64_t x_stride, int64_t tokens, float* y,
                                   int64_t y_stride) const {
  check(cudaError_t(launch_sub1_linear(arrays_, x, true, x_stride, tokens, y, y_stride)), "sub1 linear (bf16)");
}

void sub1_linear_on_device(const Sub1View& w, const float* x, int64_t tokens, float* y, bool bf16_activations) {
  Sub1DeviceMatrix matrix(w);
  const size_t nx = size_t(tokens * w.cols), ny = size_t(tokens * w.rows);
  DeviceBuffer<float> dx(bf16_activations ? 0 : nx), dy(ny);
  DeviceBuffer<uint16_t> dxb(bf16_activations ? nx : 0);
  if (bf16_activations) {
    std::vector<uint16_t> xb(nx);
    for (size_t i = 0; i < nx; ++i) xb[i] = f32_to_bf16(x[i]);
    check(cudaMemcpy(dxb.p, xb.data(), nx * 2, cudaMemcpyHostToDevice), "cudaMemcpy x");
    matrix.linear_bf16(dxb.p, w.cols, tokens, dy.p, w.rows);
  } else {
    check(cudaMemcpy(dx.p, x, nx * 4, cudaMemcpyHostToDevice), "cudaMemcpy x");
    matrix.linear(dx.p, w.cols, tokens, dy.p, w.rows);
  }
  check(cudaMemcpy(y, dy.p, ny * 4, cudaMemcpyDeviceToHost), "cudaMemcpy y");  // waits for the kernel
}

}  // namespace moec::cuda
