// Grouped-query causal self-attention over a KV cache. Queries of `length`
// new tokens per sequence (positions start .. start+length-1) attend to the
// cached keys/values of positions 0 .. start+length-1 of their own sequence.
#pragma once
#include <cstdint>
#include <span>
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
  // Sliding-window attention (Mistral's `sliding_window`): a query at
  // position p sees keys p-window+1 .. p, as Hugging Face masks them; 0: all
  // keys up to p.
  int64_t window = 0;
};

// One sequence's part of a forward call: `length` new tokens at positions
// start .. start+length-1, kept in cache sequence `slot`. Sequences of one
// call may be at different positions (continuous batching: one stream
// decoding its 200th token beside another's first).
struct SequenceSpan {
  int64_t slot = 0, start = 0, length = 0;
};

// q: the spans' rows one after another, [Σ length, heads*head_dim]; out: same
// shape. The cache must already hold this call's keys and values. Each
// span's result depends only on its own rows and cache (not on the others).
void attention(ThreadPool& pool, KvCache& cache, int64_t layer, const AttentionShape& shape, const float* q,
               std::span<const SequenceSpan> spans, float* out);

}  // namespace moec
