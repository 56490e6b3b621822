#include "model/ops.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <cmath>

namespace moec {
namespace {

using Array = Eigen::Array<float, Eigen::Dynamic, 1>;
using ArrayMap = Eigen::Map<Array>;
using ConstArrayMap = Eigen::Map<const Array>;

// Sums in a fixed order (eight interleaved partial sums), whatever the
// pointer's alignment. Eigen's reductions peel unaligned heads, so their
// rounding would depend on where malloc put the buffer, and a run would not
// reproduce the previous one bit for bit.
template <typename Fn>
float ordered_sum(const float* x, int64_t n, Fn&& f) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += f(x[i + k]);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += f(x[i]);
  return s;
}

// Eigen evaluates exp() with a SIMD polynomial on aligned packets but with
// std::exp on the unaligned head it peels off, so an in-place exp over a
// buffer would round differently depending on where malloc put it. Element
// wise work with exp therefore runs in an aligned scratch array.
Array& aligned_copy(const float* x, int64_t n) {
  thread_local Array scratch;
  scratch = ConstArrayMap(x, n);
  return scratch;
}

}  // namespace

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* out) {
  ConstArrayMap w(weight, dim);
  for (int64_t r = 0; r < rows; ++r) {
    const float* v = x + r * dim;
    float mean_square = ordered_sum(v, dim, [](float a) { return a * a; }) / float(dim);
    float scale = 1.0f / std::sqrt(mean_square + eps);
    ArrayMap(out + r * dim, dim) = w * (ConstArrayMap(v, dim) * scale);
  }
}

void silu_mul(float* a, const float* b, int64_t n) {
  Array& x = aligned_copy(a, n);
  x = x / (1.0f + (-x).exp());
  ArrayMap(a, n) = x * ConstArrayMap(b, n);
}

void softmax(float* x, int64_t n) {
  Array& v = aligned_copy(x, n);
  v = (v - v.maxCoeff()).exp();  // a maximum is exact in any order
  const float sum = ordered_sum(v.data(), n, [](float a) { return a; });
  ArrayMap(x, n) = v / sum;
}

float log_sum_exp(const float* x, int64_t n) {
  thread_local Array shifted;
  const float m = ConstArrayMap(x, n).maxCoeff();
  shifted = (ConstArrayMap(x, n) - m).exp();
  return m + std::log(ordered_sum(shifted.data(), n, [](float a) { return a; }));
}

}  // namespace moec
