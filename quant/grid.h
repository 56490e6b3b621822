// Fitting a quantization grid to one group of a row's values, and rounding
// values to it. Every grid parameter is rounded to the f16 it is stored as
// before use, so what GPTQ optimizes is exactly what the file holds.
#pragma once
#include <cstdint>

#include "quant/format.h"
#include "quant/quantized_matrix.h"

namespace moec {

struct GroupGrid {
  float scale = 1.0f, zero = 0.0f;  // affine
  float low = 0.0f, high = 0.0f;    // ternary levels (low, 0, high)
  uint8_t low_code = 0, high_code = 0;  // sub1: the levels' 8-bit codes
};

// Fits the grid of `n` values v[i * stride].
//   affine: range [min(v,0), max(v,0)] over 2^bits − 1 steps (GPTQ's
//           asymmetric grid), zero an integer code
//   ternary-qmoe: low = min(v,0), high = max(v,0)
//   ternary-sym:  a minimizing Σ(v − q(v))² over levels {−a, 0, a}
//   sub1: as ternary-qmoe, each level rounded to its nearest 8-bit log code
//         relative to format.level_scale
GroupGrid fit_grid(const QuantFormat& format, const float* v, int64_t n, int64_t stride);

// A ternary grid with levels (low ≤ 0 ≤ high) rounded to what the format
// stores: f16 (qmoe), one f16 for sym (levels −high, high),
// 8-bit log codes relative to format.level_scale (sub1).
GroupGrid ternary_grid(const QuantFormat& format, float low, float high);

// The code of v on the grid; *value gets the code's dequantized value.
inline int quantize_value(const QuantFormat& format, const GroupGrid& g, float v, float* value) {
  if (format.ternary()) {
    int q = v < 0.5f * g.low ? 0 : (v > 0.5f * g.high ? 2 : 1);
    *value = q == 0 ? g.low : (q == 2 ? g.high : 0.0f);
    return q;
  }
  float code = __builtin_roundf(v / g.scale) + g.zero;
  int q = int(code < 0.0f ? 0.0f : (code > float(format.max_code()) ? float(format.max_code()) : code));
  *value = g.scale * (float(q) - g.zero);
  return q;
}

// Rate-aware ternary rounding (quant/gptq.h, TernaryRate): the trit
// minimizing (v − level)² + penalty[trit]; ties go to zero, then low.
inline int quantize_trit_with_rate(const GroupGrid& g, float v, const float* penalty, float* value) {
  const float cost_low = (v - g.low) * (v - g.low) + penalty[0], cost_zero = v * v + penalty[1],
              cost_high = (v - g.high) * (v - g.high) + penalty[2];
  int q = 1;
  float best = cost_zero;
  if (cost_low < best) q = 0, best = cost_low;
  if (cost_high < best) q = 2;
  *value = q == 0 ? g.low : (q == 2 ? g.high : 0.0f);
  return q;
}

// Records the grid of (row, group) in the matrix's scales/zeros.
void store_grid(QuantizedMatrix& m, int64_t row, int64_t group, const GroupGrid& g);

}  // namespace moec
