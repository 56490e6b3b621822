// Quantization formats of expert weights, named by a short spec string
// (faiss-style):
//   "q4g128"        asymmetric 4-bit codes, one f16 scale + one 8-bit zero per
//                   group of 128 columns of a row ("q3g128", "q2g64", "q8g0";
//                   g0 = one group per row)
//   "ternary-qmoe"  per row levels {min(row,0), 0, max(row,0)}, rounded at the
//                   halfway points (QMoE's grid); two f16 levels per row
//   "ternary-sym"   per row levels {-a, 0, +a} with a fitted to minimize the
//                   squared error; one f16 per row
//   "sub1"          ternary-qmoe's grid with each level stored as an 8-bit
//                   log code relative to a per-tensor scale (quant/sub1.h),
//                   the trits Tunstall-coded below one bit per weight. While
//                   being quantized it is held like a ternary matrix whose
//                   scales are the two level codes.
// Codes are packed per row: affine codes as an LSB-first bit stream of `bits`
// bits each; ternary codes (trits 0 -> low level, 1 -> 0, 2 -> high level)
// five to a byte in base 3, the first trit least significant.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace moec {

enum class GridKind : uint8_t { Affine, TernaryQmoe, TernarySym, Sub1 };

struct QuantFormat {
  GridKind kind = GridKind::Affine;
  int bits = 4;              // affine only: 2..8
  int64_t group_size = 128;  // affine only: columns per group; 0 = the whole row
  float level_scale = 0.0f;  // sub1 only: the tensor's largest |weight|, set per tensor

  // Throws moec::Error for an unknown or out-of-range spec.
  static QuantFormat parse(std::string_view spec);
  std::string spec() const;
  // The container's encoding name: "affine", "ternary" or "sub1".
  std::string_view encoding() const {
    return kind == GridKind::Affine ? "affine" : (kind == GridKind::Sub1 ? "sub1" : "ternary");
  }
  bool ternary() const { return kind != GridKind::Affine; }
  int64_t groups(int64_t cols) const;
  int64_t group_columns(int64_t cols) const;  // columns in every group but maybe the last
  int64_t row_bytes(int64_t cols) const;      // packed code bytes of one row
  int scales_per_group() const;               // f16 values per (row, group)
  // Bytes a rows × cols matrix takes in this format: packed codes, f16
  // scales, and (affine) an 8-bit zero per (row, group).
  uint64_t stored_bytes(int64_t rows, int64_t cols) const;
  bool has_zeros() const { return kind == GridKind::Affine; }
  int max_code() const { return ternary() ? 2 : (1 << bits) - 1; }
};

}  // namespace moec
