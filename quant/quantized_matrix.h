// A quantized weight matrix [rows, cols] and its non-owning view.
//   codes   uint8  [rows, format.row_bytes(cols)]      packed per row
//   scales  f16    [rows, groups, scales_per_group]    bit patterns
//           affine: the group's scale; ternary-qmoe: (low, high) levels;
//           ternary-sym: a (levels -a, 0, +a); sub1 (while being
//           quantized): the codes of |low| and high (quant/sub1.h)
//   zeros   uint8  [rows, groups]                      affine only
// Value of affine code q: scale · (q − zero). Kernels decode through
// dequantize_rows(); the per-element decoding below is __host__ __device__
// so CUDA kernels can share it bit-exactly.
#pragma once
#include <cstdint>
#include <vector>

#include "io/dtype.h"
#include "io/host_device.h"
#include "quant/format.h"

namespace moec {

struct QuantizedView {
  QuantFormat format;
  int64_t rows = 0, cols = 0;
  const uint8_t* codes = nullptr;
  const uint16_t* scales = nullptr;
  const uint8_t* zeros = nullptr;  // null unless affine
};

struct QuantizedMatrix {
  QuantFormat format;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales;
  std::vector<uint8_t> zeros;

  QuantizedMatrix() = default;
  QuantizedMatrix(const QuantFormat& format, int64_t rows, int64_t cols);
  QuantizedView view() const { return {format, rows, cols, codes.data(), scales.data(), zeros.data()}; }
  uint64_t bytes() const { return codes.size() + 2 * scales.size() + zeros.size(); }
};

// Affine code of column c in a packed row (LSB-first bit stream).
MOEC_HD int affine_code(const uint8_t* row, int64_t c, int bits) {
  const int64_t bit = c * bits;
  const int64_t byte = bit >> 3;
  const int shift = int(bit & 7);
  unsigned word = row[byte];
  if (shift + bits > 8) word |= unsigned(row[byte + 1]) << 8;
  return int((word >> shift) & ((1u << bits) - 1));
}

// Trit of column c in a packed ternary row (five per byte, base 3).
MOEC_HD int ternary_code(const uint8_t* row, int64_t c) {
  unsigned v = row[c / 5];
  for (int64_t i = c % 5; i > 0; --i) v /= 3;
  return int(v % 3);
}

// Writes code q for column c into a zeroed packed row.
void pack_code(const QuantFormat& format, uint8_t* row, int64_t c, int q);

// Dequantizes rows [row0, row0 + n) into out [n, cols] (f32).
void dequantize_rows(const QuantizedView& view, int64_t row0, int64_t n, float* out);

}  // namespace moec
