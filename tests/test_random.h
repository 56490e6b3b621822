// Random test data and the double-precision reference shared by the kernel and codec tests.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

// i.i.d. trits: zero (trit 1) with probability p0, the low and high level
// (trits 0 and 2) equally likely otherwise.
inline std::vector<uint8_t> random_trits(int64_t n, double p0, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<uint8_t> t(static_cast<size_t>(n));
  for (auto& x : t) {
    const double v = u(rng);
    x = v < p0 ? 1 : (v < p0 + (1 - p0) / 2 ? 0 : 2);
  }
  return t;
}

// Level codes [rows, 2] spread over the code range (0 = a zero level).
inline std::vector<uint8_t> random_level_codes(int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> codes(static_cast<size_t>(2 * rows));
  for (auto& c : codes) c = uint8_t(rng() % 8 == 0 ? rng() % 256 : 180 + rng() % 76);
  return codes;
}

// n values drawn from N(0, 1): activations and weights.
inline std::vector<float> random_normals(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

// Σ w[i]·x[i] in double, and Σ |w[i]·x[i]| (the scale a float sum's rounding
// error is measured against): the reference of the kernel tests.
struct ReferenceDot {
  double value = 0, magnitude = 0;
};
inline ReferenceDot reference_dot(const float* w, const float* x, int64_t n) {
  ReferenceDot d;
  for (int64_t i = 0; i < n; ++i) {
    d.value += double(w[i]) * x[i];
    d.magnitude += std::abs(double(w[i]) * x[i]);
  }
  return d;
}
