#include "model/model.h"

#include <algorithm>
#include <cstring>

#include "io/error.h"
#include "model/ops.h"
#include "model/thread_pool.h"

namespace moec {

Model::Model(const CheckpointSource& source, ThreadPool& pool)
    : source_(source),
      config_(source.config()),
      pool_(pool),
      expert_cache_(std::make_unique<Sub1PlaneCache>(kDefaultExpertCacheBytes)),
      rope_(config_.head_dim, config_.rope_theta) {
  const ModelConfig& c = config_;
  embed_ = view({TensorRole::Embed});
  if (embed_.kind == WeightKind::Sub1)  // rows are looked up: dense or packed rows only
    fail("{}: tensor 'embed': a sub1-coded embedding is not supported", source.path().string());
  lm_head_ = c.tie_word_embeddings ? embed_ : view({TensorRole::LmHead});
  final_norm_ = vector({TensorRole::FinalNorm});
  for (int l = 0; l < c.num_layers; ++l) {
    Layer layer;
    layer.attn_norm = vector({TensorRole::AttnNorm, l});
    layer.moe_norm = vector({TensorRole::MoeNorm, l});
    layer.q = view({TensorRole::AttnQ, l});
    layer.k = view({TensorRole::AttnK, l});
    layer.v = view({TensorRole::AttnV, l});
    layer.o = view({TensorRole::AttnO, l});
    if (c.qk_norm != QkNorm::None) {
      layer.q_norm = vector({TensorRole::AttnQNorm, l});
      layer.k_norm = vector({TensorRole::AttnKNorm, l});
    }
    if (c.attention_bias) {
      layer.q_bias = vector({TensorRole::AttnQBias, l});
      layer.k_bias = vector({TensorRole::AttnKBias, l});
      layer.v_bias = vector({TensorRole::AttnVBias, l});
    }
    layer.sparse = c.moe_layer(l);
    if (!layer.sparse) {
      layer.gate = view({TensorRole::MlpGate, l});
      layer.up = view({TensorRole::MlpUp, l});
      layer.down = view({TensorRole::MlpDown, l});
      layers_.push_back(std::move(layer));
      continue;
    }
    layer.moe.router = view({TensorRole::Router, l});
    layer.moe.normalize = c.norm_topk_prob;
    for (int e = 0; e < c.num_experts; ++e)
      layer.moe.experts.push_back({view({TensorRole::ExpertW1, l, e}), view({TensorRole::ExpertW2, l, e}),
                                   view({TensorRole::ExpertW3, l, e})});
    if (c.shared_expert_size > 0) {
      layer.moe.shared = {view({TensorRole::SharedW1, l}), view({TensorRole::SharedW2, l}),
                          view({TensorRole::SharedW3, l})};
      layer.moe.shared_gate = view({TensorRole::SharedGate, l});
    }
    layers_.push_back(std::move(layer));
  }
}

Model::~Model() = default;

WeightView Model::view(const TensorKey& key) {
  held_.push_back(source_.read(key));
  try {
    WeightView w = weight_view(held_.back());
    if (w.kind == WeightKind::Sub1) w.plane_cache = expert_cache_.get();
    return w;
  } catch (const Error& e) {
    fail("{}: {}", source_.path().string(), e.what());
  }
}

std::vector<float> Model::vector(const TensorKey& key) { return source_.read(key).to_f32(); }

KvCache Model::make_cache(int64_t sequences, int64_t capacity) const {
  if (capacity > config_.max_position_embeddings)
    fail("{} positions requested but the model supports at most max_position_embeddings = {}", capacity,
         config_.max_position_embeddings);
  return KvCache(config_.num_layers, sequences, capacity, config_.num_kv_heads * config_.head_dim);
}

void Model::embed(std::span<const int32_t> tokens, std::vector<float>& x) const {
  const int64_t h = config_.hidden_size;
  x.resize(tokens.size() * size_t(h));
  const size_t row_bytes = size_t(h) * dtype_size(embed_.dtype);
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size)
      fail("token id {} is outside the vocabulary (size {})", tokens[t], config_.vocab_size);
    if (embed_.dense())
      convert_to_f32(embed_.dtype, embed_.data + size_t(tokens[t]) * row_bytes, &x[t * h], size_t(h));
    else  // a packed embedding (quantize --non-expert): its row decoded
      dequantize_rows(embed_.quant, tokens[t], 1, &x[t * h]);
  }
}

Model::AttentionWeights Model::attention_weights(int64_t layer) const {
  const Layer& l = layers_.at(size_t(layer));
  return {l.q, l.k, l.v, l.o};
}

void Model::set_attention_weights(int64_t layer, const AttentionWeights& w) {
  Layer& l = layers_.at(size_t(layer));
  const auto same_shape = [](const WeightView& a, const WeightView& b) { return a.rows == b.rows && a.cols == b.cols; };
  if (!same_shape(w.q, l.q) || !same_shape(w.k, l.k) || !same_shape(w.v, l.v) || !same_shape(w.o, l.o))
    fail("set_attention_weights: layer {}: the new projections' shapes differ from the model's", layer);
  l.q = w.q;
  l.k = w.k;
  l.v = w.v;
  l.o = w.o;
}

namespace {

// The spans of `sequences` sequences each running `length` tokens from `start`.
void uniform_spans(int64_t sequences, int64_t start, int64_t length, std::vector<SequenceSpan>& spans) {
  spans.clear();
  for (int64_t b = 0; b < sequences; ++b) spans.push_back({b, start, length});
}

}  // namespace

void Model::attention_layer(int64_t index, float* x, int64_t length, KvCache& cache, int64_t cache_layer) {
  uniform_spans(cache.sequences, cache.length, length, spans_);
  attention_layer(index, x, std::span<const SequenceSpan>(spans_), cache, cache_layer);
}

void Model::attention_layer(int64_t index, float* x, std::span<const SequenceSpan> spans, KvCache& cache,
                            int64_t cache_layer) {
  const ModelConfig& c = config_;
  const Layer& layer = layers_[index];
  const int64_t hd = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  int64_t n = 0, end = 0;
  for (const SequenceSpan& s : spans) {
    n += s.length;
    end = std::max(end, s.start + s.length);
  }
  rope_.reserve(end);
  h_.resize(size_t(n * hd));
  q_.resize(size_t(n * qd));
  k_.resize(size_t(n * kvd));
  v_.resize(size_t(n * kvd));
  attn_.resize(size_t(n * qd));
  out_.resize(size_t(n * hd));
  norm_rows(x, n, hd, layer.attn_norm.data(), h_.data());
  const LinearProblem qkv[] = {{h_.data(), hd, n, layer.q, q_.data(), qd},
                               {h_.data(), hd, n, layer.k, k_.data(), kvd},
                               {h_.data(), hd, n, layer.v, v_.data(), kvd}};
  linear(pool_, qkv);
  if (c.attention_bias)
    parallel_rows(pool_, n, rows_per_chunk(qd + 2 * kvd), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t i = 0; i < qd; ++i) q_[size_t(r * qd + i)] += layer.q_bias[size_t(i)];
        for (int64_t i = 0; i < kvd; ++i) k_[size_t(r * kvd + i)] += layer.k_bias[size_t(i)];
        for (int64_t i = 0; i < kvd; ++i) v_[size_t(r * kvd + i)] += layer.v_bias[size_t(i)];
      }
    });
  if (c.qk_norm != QkNorm::None) {  // q and k RMS-normalized before RoPE: each head, or each whole row
    const bool whole = c.qk_norm == QkNorm::Whole;
    norm_rows(q_.data(), whole ? n : n * c.num_heads, whole ? qd : c.head_dim, layer.q_norm.data(), q_.data());
    norm_rows(k_.data(), whole ? n : n * c.num_kv_heads, whole ? kvd : c.head_dim, layer.k_norm.data(), k_.data());
  }
  row_slot_.resize(size_t(n));
  row_pos_.resize(size_t(n));
  for (int64_t row = 0; const SequenceSpan& s : spans)
    for (int64_t i = 0; i < s.length; ++i, ++row) {
      row_slot_[size_t(row)] = s.slot;
      row_pos_[size_t(row)] = s.start + i;
    }
  parallel_rows(pool_, n, rows_per_chunk(qd + 2 * kvd), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      const int64_t pos = row_pos_[size_t(row)], slot = row_slot_[size_t(row)];
      rope_.apply(&q_[row * qd], c.num_heads, pos);
      rope_.apply(&k_[row * kvd], c.num_kv_heads, pos);
      std::memcpy(cache.key(cache_layer, slot, pos), &k_[row * kvd], size_t(kvd) * sizeof(float));
      std::memcpy(cache.value(cache_layer, slot, pos), &v_[row * kvd], size_t(kvd) * sizeof(float));
    }
  });
  const AttentionShape shape{c.num_heads, c.num_kv_heads, c.head_dim, c.attention_window(index)};
  attention(pool_, cache, cache_layer, shape, q_.data(), spans, attn_.data());
  if (attention_tap_) attention_tap_(h_.data(), attn_.data(), n);
  linear(pool_, LinearProblem{attn_.data(), qd, n, layer.o, out_.data(), hd});
  add_into(pool_, x, out_.data(), n * hd);
}

void Model::norm_rows(const float* x, int64_t rows, int64_t dim, const float* weight, float* out) {
  const float eps = float(config_.rms_norm_eps);
  parallel_rows(pool_, rows, rows_per_chunk(dim), [&](int64_t r0, int64_t r1) {
    rms_norm(x + r0 * dim, r1 - r0, dim, weight, eps, out + r0 * dim);
  });
}

const std::vector<float>& Model::forward(std::span<const int32_t> tokens, int64_t length, KvCache& cache,
                                         ForwardTrace* trace) {
  if (int64_t(tokens.size()) != cache.sequences * length)
    fail("forward: {} tokens for {} sequences of {}", tokens.size(), cache.sequences, length);
  uniform_spans(cache.sequences, cache.length, length, spans_);  // forward(spans) leaves spans_ alone
  const auto& hidden = forward(tokens, std::span<const SequenceSpan>(spans_), cache, trace);
  cache.length += length;
  return hidden;
}

const std::vector<float>& Model::forward(std::span<const int32_t> tokens, std::span<const SequenceSpan> spans,
                                         KvCache& cache, ForwardTrace* trace) {
  const ModelConfig& c = config_;
  int64_t total = 0;
  for (const SequenceSpan& s : spans) {
    if (s.slot < 0 || s.slot >= cache.sequences || s.start < 0 || s.length < 0)
      fail("forward: sequence slot {} at position {} (+{}) is outside the cache of {} sequences", s.slot, s.start,
           s.length, cache.sequences);
    if (s.start + s.length > cache.capacity)
      fail("sequence of {} tokens exceeds the context of {} positions", s.start + s.length, cache.capacity);
    total += s.length;
  }
  if (int64_t(tokens.size()) != total) fail("forward: {} tokens for spans of {} tokens", tokens.size(), total);
  const int64_t n = total, hd = c.hidden_size;
  embed(tokens, x_);
  if (trace) {
    trace->hidden.clear();
    trace->routing.resize(size_t(c.num_layers));
    if (trace->keep_hidden) trace->hidden.push_back(x_);
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Layer& layer = layers_[l];
    attention_layer(l, x_.data(), spans, cache, l);
    norm_rows(x_.data(), n, hd, layer.moe_norm.data(), h_.data());
    if (layer.sparse)
      moe_.forward(pool_, layer.moe, c.top_k, h_.data(), n, x_.data(), trace ? &trace->routing[l] : nullptr);
    else
      mlp(layer, h_.data(), n, x_.data());
    if (trace && trace->keep_hidden) trace->hidden.push_back(x_);
  }
  h_.resize(size_t(n * hd));
  norm_rows(x_.data(), n, hd, final_norm_.data(), h_.data());
  return h_;
}

void Model::mlp(const Layer& layer, const float* h, int64_t n, float* x) {
  const int64_t hd = config_.hidden_size, inter = config_.dense_intermediate_size;
  mlp_gate_.resize(size_t(n * inter));
  mlp_up_.resize(size_t(n * inter));
  mlp_out_.resize(size_t(n * hd));
  const LinearProblem gate_up[] = {{h, hd, n, layer.gate, mlp_gate_.data(), inter},
                                   {h, hd, n, layer.up, mlp_up_.data(), inter}};
  linear(pool_, gate_up);
  silu_mul_rows(pool_, mlp_gate_.data(), mlp_up_.data(), n, inter);
  linear(pool_, LinearProblem{mlp_gate_.data(), inter, n, layer.down, mlp_out_.data(), hd});
  add_into(pool_, x, mlp_out_.data(), n * hd);
}

void Model::logits(const float* hidden, int64_t rows, float* out) {
  linear(pool_, LinearProblem{hidden, config_.hidden_size, rows, lm_head_, out, config_.vocab_size});
}

}  // namespace moec
