#include "model/attention.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <cmath>
#include <limits>

#include "model/ops.h"
#include "model/thread_pool.h"

namespace moec {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

KvCache::KvCache(int64_t layers, int64_t sequences, int64_t capacity, int64_t kv_dim)
    : sequences(sequences), capacity(capacity), kv_dim(kv_dim) {
  keys.assign(size_t(layers), std::vector<float>(size_t(sequences * capacity * kv_dim)));
  values = keys;
}

float* KvCache::key(int64_t layer, int64_t sequence, int64_t position) {
  return keys[layer].data() + (sequence * capacity + position) * kv_dim;
}

float* KvCache::value(int64_t layer, int64_t sequence, int64_t position) {
  return values[layer].data() + (sequence * capacity + position) * kv_dim;
}

void attention(ThreadPool& pool, KvCache& cache, int64_t layer, const AttentionShape& shape, const float* q,
               int64_t length, int64_t start, float* out) {
  const int64_t d = shape.head_dim, q_dim = shape.heads * d, keys = start + length;
  const int64_t group = shape.heads / shape.kv_heads;
  const float scale = 1.0f / std::sqrt(float(d));
  pool.parallel_for(size_t(cache.sequences * shape.heads), [&](size_t item, int) {
    const int64_t b = int64_t(item) / shape.heads, h = int64_t(item) % shape.heads, g = h / group;
    thread_local RowMatrix scores;
    scores.resize(length, keys);
    Eigen::Map<const RowMatrix, 0, Stride> qh(q + b * length * q_dim + h * d, length, d, Stride(q_dim));
    Eigen::Map<const RowMatrix, 0, Stride> kh(cache.key(layer, b, 0) + g * d, keys, d, Stride(cache.kv_dim));
    Eigen::Map<const RowMatrix, 0, Stride> vh(cache.value(layer, b, 0) + g * d, keys, d, Stride(cache.kv_dim));
    scores.noalias() = (qh * kh.transpose()) * scale;
    for (int64_t i = 0; i < length; ++i) {
      const int64_t visible = start + i + 1;  // causal: keys up to the query's own position
      float* row = scores.data() + i * keys;
      softmax(row, visible);
      std::fill(row + visible, row + keys, 0.0f);
    }
    Eigen::Map<RowMatrix, 0, Stride> oh(out + b * length * q_dim + h * d, length, d, Stride(q_dim));
    oh.noalias() = scores * vh;
  });
}

}  // namespace moec
