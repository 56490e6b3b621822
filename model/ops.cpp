#include "model/ops.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <cmath>

namespace moec {

using Array = Eigen::Array<float, Eigen::Dynamic, 1>;
using ArrayMap = Eigen::Map<Array>;
using ConstArrayMap = Eigen::Map<const Array>;

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* weight, float eps, float* out) {
  ConstArrayMap w(weight, dim);
  for (int64_t r = 0; r < rows; ++r) {
    ConstArrayMap v(x + r * dim, dim);
    float mean_square = v.square().sum() / float(dim);
    float scale = 1.0f / std::sqrt(mean_square + eps);
    ArrayMap(out + r * dim, dim) = w * (v * scale);
  }
}

void silu_mul(float* a, const float* b, int64_t n) {
  ArrayMap x(a, n);
  x = x / (1.0f + (-x).exp()) * ConstArrayMap(b, n);
}

void softmax(float* x, int64_t n) {
  ArrayMap v(x, n);
  v = (v - v.maxCoeff()).exp();
  v /= v.sum();
}

float log_sum_exp(const float* x, int64_t n) {
  ConstArrayMap v(x, n);
  float m = v.maxCoeff();
  return m + std::log((v - m).exp().sum());
}

}  // namespace moec
