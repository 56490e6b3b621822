// MOEC_HD marks functions that are compiled for both the CPU and CUDA devices,
// so the same decoding logic runs in kernels and in the CPU tests that check
// those kernels bit-exactly.
#pragma once
#if defined(__CUDACC__)
#define MOEC_HD __host__ __device__ __forceinline__
#else
#define MOEC_HD inline
#endif
