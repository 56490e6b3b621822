// Widening bf16 -> f32 on a CUDA device. The first kernel of moec: it proves
// the CUDA build path, and its per-element logic is io/dtype.h's
// bf16_to_f32(), the same function the CPU path and tests use.
#pragma once
#include <cstddef>
#include <cstdint>

namespace moec::cuda {

// Number of CUDA devices visible; 0 when there is no device or no driver.
int device_count();

// Converts n bf16 values from host memory to f32 in host memory, through the
// device. Throws moec::Error when no device is usable.
void bf16_to_f32(const uint16_t* host_src, float* host_dst, size_t n);

}  // namespace moec::cuda
