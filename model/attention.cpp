#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/ops.h"
#include "quant/gemm.h"
#include "model/thread_pool.h"

namespace moec {

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
    thread_local std::vector<float> scores;
    scores.resize(size_t(length * keys));
    GemmProblem qk;  // scores = scale · q_h · k_hᵀ
    qk.m = length;
    qk.n = keys;
    qk.k = d;
    qk.a = q + b * length * q_dim + h * d;
    qk.lda = q_dim;
    qk.b = cache.key(layer, b, 0) + g * d;
    qk.ldb = cache.kv_dim;
    qk.b_transposed = true;
    qk.c = scores.data();
    qk.ldc = keys;
    qk.alpha = scale;
    gemm_f32(qk);
    for (int64_t i = 0; i < length; ++i) {
      const int64_t visible = start + i + 1;  // causal: keys up to the query's own position
      float* row = scores.data() + i * keys;
      softmax(row, visible);
      std::fill(row + visible, row + keys, 0.0f);
    }
    GemmProblem sv;  // out_h = scores · v_h
    sv.m = length;
    sv.n = d;
    sv.k = keys;
    sv.a = scores.data();
    sv.lda = keys;
    sv.b = cache.value(layer, b, 0) + g * d;
    sv.ldb = cache.kv_dim;
    sv.c = out + b * length * q_dim + h * d;
    sv.ldc = q_dim;
    gemm_f32(sv);
  });
}

}  // namespace moec
