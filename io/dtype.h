// Element types of checkpoint tensors (the safetensors dtype names) and exact
// conversions between their bit patterns and f32.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "io/host_device.h"

namespace moec {

enum class DType : uint8_t { F32, F16, BF16, I8, U8, U16, I32, I64, U32, U64 };

// "F32" -> DType::F32; nullopt for names moec does not know.
std::optional<DType> dtype_from_name(std::string_view name);
std::string_view dtype_name(DType dtype);       // "BF16"
std::string_view dtype_encoding(DType dtype);   // "bf16": the container's name for it
std::optional<DType> dtype_from_encoding(std::string_view encoding);
size_t dtype_size(DType dtype);
bool dtype_is_float(DType dtype);

MOEC_HD float f32_from_bits(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

MOEC_HD uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return bits;
#endif
}

// bf16 is the top half of an f32, so widening is exact.
MOEC_HD float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t(h) << 16); }

// Round to nearest even; NaN stays a (quiet) NaN.
MOEC_HD uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// IEEE half to f32, exact for every input including subnormals, inf and NaN.
MOEC_HD float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal half: renormalize into an f32 normal
      uint32_t e = 113;
      while (!(mantissa & 0x400u)) {
        mantissa <<= 1;
        --e;
      }
      bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  return f32_from_bits(bits);
}

// f32 to IEEE half, round to nearest even; overflow to inf, NaN kept NaN.
MOEC_HD uint16_t f32_to_f16(float f) {
  uint32_t x = f32_to_bits(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return uint16_t(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds past 65504
  if (x < 0x38800000u) {                                    // below 2^-14: half subnormal
    if (x < 0x33000000u) return sign;                       // below 2^-25: rounds to 0
    const uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = (x >> 13) - (112u << 10);
  const uint32_t rest = x & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return uint16_t(sign | h);
}

// Converts n elements of `dtype` at `src` to f32 (vectorized where the CPU
// allows; integer types convert by value).
void convert_to_f32(DType dtype, const void* src, float* dst, size_t n);

}  // namespace moec
