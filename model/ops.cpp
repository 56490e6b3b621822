#include "model/ops.h"

#include "model/thread_pool.h"

#include "quant/elementwise.h"

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

// The exp-bound pieces run in the CPU's best instruction set (quant/elementwise.h).
void silu_mul(float* a, const float* b, int64_t n) { silu_mul_kernel(a, b, n); }

void softmax(float* x, int64_t n) { softmax_kernel(x, n); }

float log_sum_exp(const float* x, int64_t n) { return log_sum_exp_kernel(x, n); }

int64_t rows_per_chunk(int64_t dim) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(dim, 1)); }

void silu_mul_rows(ThreadPool& pool, float* a, const float* b, int64_t rows, int64_t dim) {
  parallel_rows(pool, rows, rows_per_chunk(dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) silu_mul(a + r * dim, b + r * dim, dim);
  });
}

void add_into(ThreadPool& pool, float* x, const float* y, int64_t n) {
  parallel_rows(pool, n, 8192, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] += y[i];
  });
}

}  // namespace moec
