#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "model/ops.h"
#include "quant/gemm.h"
#include "model/thread_pool.h"

namespace moec {
namespace {

// Query rows per block of causal attention: small enough that the skipped
// upper triangle is most of it, large enough for GEMM-sized products.
constexpr int64_t kQueryBlock = 64;

}  // namespace

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
               std::span<const SequenceSpan> spans, float* out) {
  const int64_t d = shape.head_dim, q_dim = shape.heads * d;
  const int64_t group = shape.heads / shape.kv_heads;
  const float scale = 1.0f / std::sqrt(float(d));
  std::vector<int64_t> first_row(spans.size());
  for (size_t s = 0, row = 0; s < spans.size(); row += size_t(spans[s].length), ++s) first_row[s] = int64_t(row);
  pool.parallel_for(spans.size() * size_t(shape.heads), [&](size_t item, int) {
    const SequenceSpan& span = spans[item / size_t(shape.heads)];
    const int64_t h = int64_t(item % size_t(shape.heads)), g = h / group, b = span.slot;
    const int64_t length = span.length, start = span.start;
    const int64_t row0 = first_row[item / size_t(shape.heads)];
    thread_local std::vector<float> scores;
    // Causal attention in blocks of query rows: a block needs only the keys
    // its rows can see, [key0, key_end), so a prefill of n tokens computes
    // about n^2/2 scores instead of n^2 (the masked ones were exact zeros, so
    // leaving them out changes no sum). A decode step is one block.
    for (int64_t i0 = 0; i0 < length; i0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, length - i0);
      const int64_t key_end = start + i0 + rows;  // the block's last row sees up to its own position
      const int64_t key0 = shape.window > 0 ? std::max<int64_t>(0, start + i0 + 1 - shape.window) : 0;
      const int64_t keys = key_end - key0;
      scores.resize(size_t(rows * keys));
      GemmProblem qk;  // scores = scale · q_h · k_hᵀ
      qk.m = rows;
      qk.n = keys;
      qk.k = d;
      qk.a = q + (row0 + i0) * q_dim + h * d;
      qk.lda = q_dim;
      qk.b = cache.key(layer, b, key0) + g * d;
      qk.ldb = cache.kv_dim;
      qk.b_transposed = true;
      qk.c = scores.data();
      qk.ldc = keys;
      qk.alpha = scale;
      gemm_f32(qk);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t visible = start + i0 + i + 1;  // causal: keys up to the query's own position
        const int64_t first = shape.window > 0 ? std::max<int64_t>(0, visible - shape.window) : 0;
        float* row = scores.data() + i * keys;
        softmax(row + (first - key0), visible - first);
        std::fill(row, row + (first - key0), 0.0f);
        std::fill(row + (visible - key0), row + keys, 0.0f);
      }
      GemmProblem sv;  // out_h = scores · v_h
      sv.m = rows;
      sv.n = d;
      sv.k = keys;
      sv.a = scores.data();
      sv.lda = keys;
      sv.b = cache.value(layer, b, key0) + g * d;
      sv.ldb = cache.kv_dim;
      sv.c = out + (row0 + i0) * q_dim + h * d;
      sv.ldc = q_dim;
      gemm_f32(sv);
    }
  });
}

}  // namespace moec
