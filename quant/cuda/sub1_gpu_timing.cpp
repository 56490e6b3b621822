#include "quant/cuda/sub1_gpu_timing.h"

#include <cublas_v2.h>  // declarations only: cuBLAS is loaded with dlopen when timed
#include <cuda_runtime.h>
#include <dlfcn.h>

#include "io/error.h"
#include "quant/cuda/sub1_kernels.h"

namespace moec::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) fail("cuda: {}: {}", what, cudaGetErrorString(status));
}
void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) fail("cublas: {}: status {}", what, int(status));
}

// cuBLAS, opened only here: linking it would map its 600 MB of libraries
// into every moec process (about 150 MiB more resident memory at start-up).
struct Cublas {
  void* library = nullptr;
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  using GemmEx = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                    const void*, cudaDataType, int, const void*, cudaDataType, int, const void*,
                                    void*, cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  GemmEx gemm = nullptr;
  Cublas() {
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"})
      if ((library = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (!library) return;
    create = reinterpret_cast<decltype(create)>(dlsym(library, "cublasCreate_v2"));
    destroy = reinterpret_cast<decltype(destroy)>(dlsym(library, "cublasDestroy_v2"));
    gemm = reinterpret_cast<decltype(gemm)>(dlsym(library, "cublasGemmEx"));
  }
  ~Cublas() {
    if (library) dlclose(library);
  }
  bool usable() const { return create && destroy && gemm; }
};

struct Buffer {
  void* p = nullptr;
  explicit Buffer(size_t bytes, int fill) {
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    check(cudaMemset(p, fill, bytes), "cudaMemset");
  }
  ~Buffer() { cudaFree(p); }
};

// Milliseconds per call of fn, averaged over reps after one warm-up call.
template <typename Fn>
double per_call_ms(Fn&& fn, int reps) {
  fn();
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  cudaEventRecord(start);
  for (int i = 0; i < reps; ++i) fn();
  cudaEventRecord(stop);
  check(cudaEventSynchronize(stop), "kernel");
  float ms = 0;
  cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return double(ms) / reps;
}

}  // namespace

GpuKernelTimes time_sub1_on_gpu(const Sub1View& w, int reps) {
  GpuKernelTimes t;
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  t.device = prop.name;
  const Sub1DeviceMatrix m(w);
  constexpr int kBatch = 16;
  // Contents do not matter for timing: 0x3c3c… is 1.15 as f32, 0.011 as bf16.
  Buffer x(size_t(kBatch * w.cols) * 4, 0x3c), xb(size_t(kBatch * w.cols) * 2, 0x3c),
      y(size_t(kBatch * w.rows) * 4, 0), dense(size_t(w.rows * w.cols) * 2, 0x3c);
  const float* xf = static_cast<const float*>(x.p);
  const uint16_t* xh = static_cast<const uint16_t*>(xb.p);
  float* yf = static_cast<float*>(y.p);
  t.sub1_matvec_ms = per_call_ms([&] { m.linear(xf, w.cols, 1, yf, w.rows); }, reps);
  t.sub1_matvec_bf16_ms = per_call_ms([&] { m.linear_bf16(xh, w.cols, 1, yf, w.rows); }, reps);
  t.sub1_batch16_ms = per_call_ms([&] { m.linear(xf, w.cols, kBatch, yf, w.rows); }, reps);
  t.sub1_16_matvecs_ms = per_call_ms(
      [&] {
        for (int i = 0; i < kBatch; ++i) m.linear(xf + i * w.cols, w.cols, 1, yf + i * w.rows, w.rows);
      },
      reps);
  const Cublas cublas;
  if (!cublas.usable()) return t;  // cuBLAS figures stay 0: not installed
  cublasHandle_t handle;
  check(cublas.create(&handle), "cublasCreate");
  const float alpha = 1.0f, beta = 0.0f;
  auto gemm = [&](int n) {
    // y[n, rows] = x[n, cols] · Wᵀ: column-major C[rows, n] = Wᵀ[rows, cols] · X[cols, n]
    check(cublas.gemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, int(w.rows), n, int(w.cols), &alpha, dense.p, CUDA_R_16BF,
                      int(w.cols), xb.p, CUDA_R_16BF, int(w.cols), &beta, y.p, CUDA_R_32F, int(w.rows),
                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  };
  t.cublas_bf16_gemv_ms = per_call_ms([&] { gemm(1); }, reps);
  t.cublas_bf16_batch16_ms = per_call_ms([&] { gemm(kBatch); }, reps);
  cublas.destroy(handle);
  return t;
}

}  // namespace moec::cuda
