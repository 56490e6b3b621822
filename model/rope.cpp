#include "model/rope.h"

#include <cmath>

namespace moec {

Rope::Rope(int64_t head_dim, double theta, int64_t max_positions)
    : half_(head_dim / 2), max_positions_(max_positions) {
  cos_.resize(size_t(max_positions * half_));
  sin_.resize(cos_.size());
  for (int64_t i = 0; i < half_; ++i) {
    // As HF: inverse frequencies in f32, angle = f32(pos) * inv_freq in f32.
    float inv_freq = float(1.0 / std::pow(theta, double(2 * i) / double(head_dim)));
    for (int64_t p = 0; p < max_positions; ++p) {
      float angle = float(p) * inv_freq;
      cos_[p * half_ + i] = std::cos(angle);
      sin_[p * half_ + i] = std::sin(angle);
    }
  }
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
