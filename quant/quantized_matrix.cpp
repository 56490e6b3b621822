#include "quant/quantized_matrix.h"

#include <array>

#include "io/cpu_isa.h"
#include "quant/sub1_code.h"

namespace moec {
namespace {

// The five trits of every byte value, for fast ternary decoding.
struct TritTable {
  std::array<std::array<uint8_t, 5>, 256> trits{};
  TritTable() {
    for (int v = 0; v < 243; ++v)
      for (int i = 0, x = v; i < 5; ++i, x /= 3) trits[v][i] = uint8_t(x % 3);
  }
};
const TritTable kTrits;

[[gnu::always_inline]] inline void decode_affine_row(const QuantizedView& v, int64_t r, float* out) {
  const QuantFormat& f = v.format;
  const uint8_t* row = v.codes + r * f.row_bytes(v.cols);
  const int64_t groups = f.groups(v.cols), width = f.group_columns(v.cols);
  for (int64_t g = 0; g < groups; ++g) {
    const float scale = f16_to_f32(v.scales[r * groups + g]);
    const float zero = float(v.zeros[r * groups + g]);
    const int64_t c1 = std::min(v.cols, (g + 1) * width);
    int64_t c = g * width;
    if (f.bits == 4 && c % 2 == 0) {
      for (; c + 2 <= c1; c += 2) {
        const uint8_t b = row[c / 2];
        out[c] = scale * (float(b & 15) - zero);
        out[c + 1] = scale * (float(b >> 4) - zero);
      }
    } else if (f.bits == 8) {
      for (; c < c1; ++c) out[c] = scale * (float(row[c]) - zero);
    }
    for (; c < c1; ++c) out[c] = scale * (float(affine_code(row, c, f.bits)) - zero);
  }
}

[[gnu::always_inline]] inline void decode_ternary_row(const QuantizedView& v, int64_t r, float* out) {
  const QuantFormat& f = v.format;
  const uint8_t* row = v.codes + r * f.row_bytes(v.cols);
  float levels[3];
  if (f.kind == GridKind::TernaryQmoe) {
    levels[0] = f16_to_f32(v.scales[2 * r]);
    levels[2] = f16_to_f32(v.scales[2 * r + 1]);
  } else if (f.kind == GridKind::Sub1) {  // the scales hold the levels' codes
    levels[0] = -sub1_level(v.scales[2 * r], f.level_scale);
    levels[2] = sub1_level(v.scales[2 * r + 1], f.level_scale);
  } else {
    levels[2] = f16_to_f32(v.scales[r]);
    levels[0] = -levels[2];
  }
  levels[1] = 0.0f;
  int64_t c = 0;
  for (; c + 5 <= v.cols; c += 5) {
    const auto& t = kTrits.trits[row[c / 5]];
    for (int i = 0; i < 5; ++i) out[c + i] = levels[t[i]];
  }
  for (; c < v.cols; ++c) out[c] = levels[ternary_code(row, c)];
}

}  // namespace

QuantizedMatrix::QuantizedMatrix(const QuantFormat& f, int64_t rows, int64_t cols)
    : format(f),
      rows(rows),
      cols(cols),
      codes(size_t(rows * f.row_bytes(cols)), 0),
      scales(size_t(rows * f.groups(cols) * f.scales_per_group()), 0),
      zeros(f.has_zeros() ? size_t(rows * f.groups(cols)) : 0, 0) {}

void pack_code(const QuantFormat& format, uint8_t* row, int64_t c, int q) {
  if (format.ternary()) {
    int scale = 1;
    for (int64_t i = c % 5; i > 0; --i) scale *= 3;
    row[c / 5] = uint8_t(row[c / 5] + q * scale);
    return;
  }
  const int64_t bit = c * format.bits;
  const int shift = int(bit & 7);
  row[bit >> 3] |= uint8_t(q << shift);
  if (shift + format.bits > 8) row[(bit >> 3) + 1] |= uint8_t(q >> (8 - shift));
}

namespace {

// One body, compiled once per instruction set: the row decoders are inlined
// into each wrapper and vectorized by the compiler for its target.
[[gnu::always_inline]] inline void dequantize_rows_body(const QuantizedView& view, int64_t row0, int64_t n,
                                                        float* out) {
  for (int64_t i = 0; i < n; ++i) {
    if (view.format.ternary())
      decode_ternary_row(view, row0 + i, out + i * view.cols);
    else
      decode_affine_row(view, row0 + i, out + i * view.cols);
  }
}

void dequantize_rows_portable(const QuantizedView& view, int64_t row0, int64_t n, float* out) {
  dequantize_rows_body(view, row0, n, out);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c,bmi,bmi2"))) void dequantize_rows_avx2(const QuantizedView& view, int64_t row0,
                                                                             int64_t n, float* out) {
  dequantize_rows_body(view, row0, n, out);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,bmi,bmi2"))) void dequantize_rows_avx512(
    const QuantizedView& view, int64_t row0, int64_t n, float* out) {
  dequantize_rows_body(view, row0, n, out);
}
#endif

}  // namespace

void dequantize_rows(const QuantizedView& view, int64_t row0, int64_t n, float* out) {
#if defined(__x86_64__)
  const Isa isa = active_isa();
  if (isa == Isa::Avx512) return dequantize_rows_avx512(view, row0, n, out);
  if (isa == Isa::Avx2) return dequantize_rows_avx2(view, row0, n, out);
#endif
  dequantize_rows_portable(view, row0, n, out);
}

}  // namespace moec
