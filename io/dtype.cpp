#include "io/dtype.h"

#include <array>
#include <cstring>

#include "io/cpu_isa.h"
#include "io/x86_simd.h"

namespace moec {
namespace {

struct DTypeRow {
  DType dtype;
  std::string_view name;
  std::string_view encoding;
  size_t size;
  bool is_float;
};

constexpr std::array<DTypeRow, 10> kDTypes{{
    {DType::F32, "F32", "f32", 4, true},
    {DType::F16, "F16", "f16", 2, true},
    {DType::BF16, "BF16", "bf16", 2, true},
    {DType::I8, "I8", "i8", 1, false},
    {DType::U8, "U8", "u8", 1, false},
    {DType::U16, "U16", "u16", 2, false},
    {DType::I32, "I32", "i32", 4, false},
    {DType::I64, "I64", "i64", 8, false},
    {DType::U32, "U32", "u32", 4, false},
    {DType::U64, "U64", "u64", 8, false},
}};

const DTypeRow& row(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

// Widening loops for the GEMM path, one per instruction set
// (io/cpu_isa.h); a bf16 is the top half of an f32. Sources may have any
// alignment (safetensors files in the wild have odd headers), so they are
// bytes, loaded with memcpy / unaligned vector loads.
uint16_t load_u16(const unsigned char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void bf16_to_f32_portable(const unsigned char* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
}

void f16_to_f32_portable(const unsigned char* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_u16(src + 2 * i));
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) void bf16_to_f32_avx2(const unsigned char* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
}

__attribute__((target("avx2,f16c"))) void f16_to_f32_avx2(const unsigned char* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  for (; i < n; ++i) dst[i] = f16_to_f32(load_u16(src + 2 * i));
}

__attribute__((target("avx512f,avx512bw"))) void bf16_to_f32_avx512(const unsigned char* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * i));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_f32(load_u16(src + 2 * i));
}
#endif

void bf16_to_f32_n(const unsigned char* src, float* dst, size_t n) {
#if defined(__x86_64__)
  const Isa isa = active_isa();
  if (isa == Isa::Avx512) return bf16_to_f32_avx512(src, dst, n);
  if (isa == Isa::Avx2) return bf16_to_f32_avx2(src, dst, n);
#endif
  bf16_to_f32_portable(src, dst, n);
}

void f16_to_f32_n(const unsigned char* src, float* dst, size_t n) {
#if defined(__x86_64__)
  if (active_isa() != Isa::Portable) return f16_to_f32_avx2(src, dst, n);
#endif
  f16_to_f32_portable(src, dst, n);
}

template <typename T>
void cast_n(const void* src, float* dst, size_t n) {
  const auto* s = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, s + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<float>(v);
  }
}

}  // namespace

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& r : kDTypes)
    if (r.name == name) return r.dtype;
  return std::nullopt;
}

std::optional<DType> dtype_from_encoding(std::string_view encoding) {
  for (const auto& r : kDTypes)
    if (r.encoding == encoding) return r.dtype;
  return std::nullopt;
}

std::string_view dtype_name(DType dtype) { return row(dtype).name; }
std::string_view dtype_encoding(DType dtype) { return row(dtype).encoding; }
size_t dtype_size(DType dtype) { return row(dtype).size; }
bool dtype_is_float(DType dtype) { return row(dtype).is_float; }

void convert_to_f32(DType dtype, const void* src, float* dst, size_t n) {
  switch (dtype) {
    case DType::F32: std::memcpy(dst, src, n * sizeof(float)); return;
    case DType::BF16: bf16_to_f32_n(static_cast<const unsigned char*>(src), dst, n); return;
    case DType::F16: f16_to_f32_n(static_cast<const unsigned char*>(src), dst, n); return;
    case DType::I8: cast_n<int8_t>(src, dst, n); return;
    case DType::U8: cast_n<uint8_t>(src, dst, n); return;
    case DType::U16: cast_n<uint16_t>(src, dst, n); return;
    case DType::I32: cast_n<int32_t>(src, dst, n); return;
    case DType::I64: cast_n<int64_t>(src, dst, n); return;
    case DType::U32: cast_n<uint32_t>(src, dst, n); return;
    case DType::U64: cast_n<uint64_t>(src, dst, n); return;
  }
}

}  // namespace moec
