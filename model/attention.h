// Grouped-query causal self-attention over a KV cache. Queries of `length`
// new tokens per sequence (positions start .. start+length-1) attend to the
// cached keys/values of positions 0 .. start+length-1 of their own sequence.
#pragma once
#include <cstdint>
#include <vector>

namespace moec {

class ThreadPool;

// Keys and values of every layer for `sequences` independent sequences of up
// to `capacity` positions, in f32: [layer][sequence][position][kv_dim].
struct KvCache {
  KvCache(int64_t layers, int64_t sequences, int64_t capacity, int64_t kv_dim);
  float* key(int64_t layer, int64_t sequence, int64_t position);
  float* value(int64_t layer, int64_t sequence, int64_t position);
  int64_t sequences, capacity, kv_dim;
  int64_t length = 0;  // positions filled, the same in every sequence
  std::vector<std::vector<float>> keys, values;
};

struct AttentionShape {
  int64_t heads, kv_heads, head_dim;
};

// q: [sequences*length, heads*head_dim]; out: same shape. The cache must
// already hold this step's keys and values.
void attention(ThreadPool& pool, KvCache& cache, int64_t layer, const AttentionShape& shape, const float* q,
               int64_t length, int64_t start, float* out);

}  // namespace moec
