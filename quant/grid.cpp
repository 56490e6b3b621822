#include "quant/grid.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/sub1.h"

namespace moec {
namespace {

float round_f16(float v) { return f16_to_f32(f32_to_f16(v)); }

GroupGrid fit_affine(const QuantFormat& f, const float* v, int64_t n, int64_t stride) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    lo = std::min(lo, v[i * stride]);
    hi = std::max(hi, v[i * stride]);
  }
  if (lo == 0.0f && hi == 0.0f) {
    lo = -1.0f;
    hi = 1.0f;
  }
  GroupGrid g;
  g.scale = round_f16((hi - lo) / float(f.max_code()));
  if (g.scale == 0.0f) g.scale = round_f16(6.2e-5f);  // all values tiny: smallest normal f16
  g.zero = std::clamp(std::round(-lo / g.scale), 0.0f, float(f.max_code()));
  return g;
}

// Least squares over levels {−a, 0, a}: for the support of the m largest
// |v|, the best a is their mean and the error is Σv² − (Σ top-m |v|)²/m; the
// best support is always such a top-m set, so scan m.
GroupGrid fit_ternary_sym(const float* v, int64_t n, int64_t stride) {
  std::vector<float> mags(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) mags[i] = std::abs(v[i * stride]);
  std::sort(mags.begin(), mags.end(), std::greater<>());
  double sum = 0, best_gain = 0, best_a = 0;
  for (int64_t m = 1; m <= n; ++m) {
    sum += mags[m - 1];
    double gain = sum * sum / double(m);
    if (gain > best_gain) {
      best_gain = gain;
      best_a = sum / double(m);
    }
  }
  GroupGrid g;
  g.high = round_f16(float(best_a));
  g.low = -g.high;
  return g;
}

}  // namespace

GroupGrid fit_grid(const QuantFormat& f, const float* v, int64_t n, int64_t stride) {
  switch (f.kind) {
    case GridKind::Affine: return fit_affine(f, v, n, stride);
    case GridKind::TernarySym: return fit_ternary_sym(v, n, stride);
    case GridKind::TernaryQmoe:
    case GridKind::Sub1: {
      float low = 0.0f, high = 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        low = std::min(low, v[i * stride]);
        high = std::max(high, v[i * stride]);
      }
      return ternary_grid(f, low, high);
    }
  }
  return {};
}

GroupGrid ternary_grid(const QuantFormat& f, float low, float high) {
  GroupGrid g;
  switch (f.kind) {
    case GridKind::Affine: break;
    case GridKind::TernaryQmoe:
      g.low = round_f16(low);
      g.high = round_f16(high);
      break;
    case GridKind::TernarySym:
      g.high = round_f16(high);
      g.low = -g.high;
      break;
    case GridKind::Sub1:
      g.low_code = sub1_level_code(-low, f.level_scale);
      g.high_code = sub1_level_code(high, f.level_scale);
      g.low = -sub1_level(g.low_code, f.level_scale);
      g.high = sub1_level(g.high_code, f.level_scale);
      break;
  }
  return g;
}

void store_grid(QuantizedMatrix& m, int64_t row, int64_t group, const GroupGrid& g) {
  const int64_t groups = m.format.groups(m.cols);
  switch (m.format.kind) {
    case GridKind::Affine:
      m.scales[row * groups + group] = f32_to_f16(g.scale);
      m.zeros[row * groups + group] = uint8_t(g.zero);
      break;
    case GridKind::TernaryQmoe:
      m.scales[2 * row] = f32_to_f16(g.low);
      m.scales[2 * row + 1] = f32_to_f16(g.high);
      break;
    case GridKind::TernarySym: m.scales[row] = f32_to_f16(g.high); break;
    case GridKind::Sub1:
      m.scales[2 * row] = g.low_code;
      m.scales[2 * row + 1] = g.high_code;
      break;
  }
}

}  // namespace moec
