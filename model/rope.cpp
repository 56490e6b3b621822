#include "model/rope.h"

#include <cmath>

namespace moec {

Rope::Rope(int64_t head_dim, double theta) : half_(head_dim / 2), theta_(theta) {}

void Rope::reserve(int64_t positions) {
  if (positions <= positions_) return;
  cos_.resize(size_t(positions * half_));
  sin_.resize(cos_.size());
  for (int64_t i = 0; i < half_; ++i) {
    // As HF: inverse frequencies in f32, angle = f32(pos) * inv_freq in f32.
    float inv_freq = float(1.0 / std::pow(theta_, double(2 * i) / double(2 * half_)));
    for (int64_t p = positions_; p < positions; ++p) {
      float angle = float(p) * inv_freq;
      cos_[p * half_ + i] = std::cos(angle);
      sin_[p * half_ + i] = std::sin(angle);
    }
  }
  positions_ = positions;
}

void Rope::apply(float* x, int64_t heads, int64_t pos) const {
  const float* c = &cos_[pos * half_];
  const float* s = &sin_[pos * half_];
  for (int64_t h = 0; h < heads; ++h) {
    float* v = x + h * 2 * half_;
    for (int64_t i = 0; i < half_; ++i) {
      float a = v[i], b = v[i + half_];
      v[i] = a * c[i] - b * s[i];
      v[i + half_] = b * c[i] + a * s[i];
    }
  }
}

}  // namespace moec
