#include <catch2/catch.hpp>

#include <vector>

#include "io/dtype.h"
#include "quant/cuda/bf16_convert.h"

// The device kernel and the CPU share io/dtype.h's bf16_to_f32, so the GPU
// result must equal the CPU's bit for bit, for every bf16 pattern.
TEST_CASE("CUDA bf16 -> f32 equals the CPU conversion for every bit pattern", "[gpu]") {
  std::vector<uint16_t> src(65536 * 3 + 5);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint16_t(i * 40503u);
  std::vector<float> gpu(src.size()), cpu(src.size());
  moec::cuda::bf16_to_f32(src.data(), gpu.data(), src.size());
  moec::convert_to_f32(moec::DType::BF16, src.data(), cpu.data(), cpu.size());
  for (size_t i = 0; i < src.size(); ++i) REQUIRE(moec::f32_to_bits(gpu[i]) == moec::f32_to_bits(cpu[i]));
}
