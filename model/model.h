// A Mixtral-family model (or a dense Mistral/Llama decoder: the same with one
// SwiGLU MLP per layer in place of the MoE block) running from any checkpoint
// source. Weights stay in
// their stored dtype and in the source's mapping (bf16 stays bf16); only the
// norm vectors (hidden_size floats each) are widened at load.
#pragma once
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "io/checkpoint.h"
#include "model/attention.h"
#include "model/linear.h"
#include "model/moe.h"
#include "model/rope.h"
#include "model/sub1_plane_cache.h"

namespace moec {

class ThreadPool;

// Optional record of a forward pass, for tests and `--routing`.
struct ForwardTrace {
  bool keep_hidden = false;
  std::vector<std::vector<float>> hidden;    // embedding output, then after each layer
  std::vector<RoutingRecord> routing;        // per layer
};

class Model {
 public:
  // `source` must outlive the model.
  Model(const CheckpointSource& source, ThreadPool& pool);
  ~Model();

  const ModelConfig& config() const { return config_; }
  ThreadPool& pool() { return pool_; }

  // Runs `length` new tokens of each of cache.sequences sequences (tokens
  // sequence-major), at positions cache.length .., appending to the cache.
  // Returns the final-normed hidden states [sequences*length, H].
  const std::vector<float>& forward(std::span<const int32_t> tokens, int64_t length, KvCache& cache,
                                    ForwardTrace* trace = nullptr);
  // Runs each span's tokens (tokens span by span) in its cache slot at its
  // own positions; cache.length is neither read nor advanced (the caller
  // keeps each slot's length). Returns the final-normed hidden states
  // [Σ length, H]. A span's rows do not depend on the other spans as long as
  // the call's kernels are batch-invariant (see model/linear.h).
  const std::vector<float>& forward(std::span<const int32_t> tokens, std::span<const SequenceSpan> spans,
                                    KvCache& cache, ForwardTrace* trace = nullptr);
  // Layer-level steps, for stages that run the model a layer at a time
  // (calibration). x is the residual stream [tokens, H].
  void embed(std::span<const int32_t> tokens, std::vector<float>& x) const;
  // Adds layer `layer`'s attention output to x for cache.sequences sequences
  // of `length` tokens at positions cache.length.., storing keys/values in
  // cache layer `cache_layer` (cache.length is not advanced).
  void attention_layer(int64_t layer, float* x, int64_t length, KvCache& cache, int64_t cache_layer);
  void attention_layer(int64_t layer, float* x, std::span<const SequenceSpan> spans, KvCache& cache,
                       int64_t cache_layer);
  // Calibration of attention (quantize/): attention_layer calls the tap, when
  // set, with its normalized input [n, H] (the input of q/k/v) and the
  // attention context [n, heads·head_dim] (the input of o).
  using AttentionTap = std::function<void(const float* normed, const float* context, int64_t n)>;
  void set_attention_tap(AttentionTap tap) { attention_tap_ = std::move(tap); }
  // A layer's attention projections, and replacing them (quantized ones
  // while calibrating the rest of the layer); the views must outlive their use.
  struct AttentionWeights {
    WeightView q, k, v, o;
  };
  AttentionWeights attention_weights(int64_t layer) const;
  void set_attention_weights(int64_t layer, const AttentionWeights& weights);
  const MoeWeights& moe_weights(int64_t layer) const { return layers_[layer].moe; }
  // A dense layer's MLP (dense models, Qwen's mlp_only_layers): adds
  // down(silu(gate·h) ⊙ up·h) of n normalized rows h to x.
  void dense_mlp(int64_t layer, const float* h, int64_t n, float* x) { mlp(layers_[size_t(layer)], h, n, x); }
  const std::vector<float>& moe_norm(int64_t layer) const { return layers_[layer].moe_norm; }

  // The cache of sub1 experts decoded for small batches
  // (model/sub1_plane_cache.h); capacity kDefaultExpertCacheBytes until set.
  Sub1PlaneCache& expert_cache() { return *expert_cache_; }
  static constexpr uint64_t kDefaultExpertCacheBytes = uint64_t(512) << 20;

  // logits[r, :] = lm_head(hidden[r, :]) for `rows` rows.
  void logits(const float* hidden, int64_t rows, float* out);
  // The final RMSNorm of `rows` rows of the residual stream (lm_head's input).
  void final_norm(const float* x, int64_t rows, float* out) {
    norm_rows(x, rows, config_.hidden_size, final_norm_.data(), out);
  }
  KvCache make_cache(int64_t sequences, int64_t capacity) const;

 private:
  struct Layer {
    std::vector<float> attn_norm, moe_norm;
    std::vector<float> q_norm, k_norm;  // q/k RMSNorm weights (Qwen3-MoE per head, OLMoE whole rows)
    std::vector<float> q_bias, k_bias, v_bias;  // Qwen2-MoE
    bool sparse = false;           // an MoE block (else a dense MLP)
    WeightView q, k, v, o;
    MoeWeights moe;                // MoE layers
    WeightView gate, up, down;     // dense layers (mistral / llama, Qwen's mlp_only_layers)
  };
  // Dense models: adds down(silu(gate·h) ⊙ up·h) of `n` rows of h to x.
  void mlp(const Layer& layer, const float* h, int64_t n, float* x);
  WeightView view(const TensorKey& key);
  std::vector<float> vector(const TensorKey& key);
  // rms_norm of `rows` rows of `dim` values on every thread.
  void norm_rows(const float* x, int64_t rows, int64_t dim, const float* weight, float* out);

  const CheckpointSource& source_;
  ModelConfig config_;
  ThreadPool& pool_;
  std::vector<TensorData> held_;  // keeps views (or owned buffers) alive
  std::unique_ptr<Sub1PlaneCache> expert_cache_;  // before the views that point at it
  std::vector<Layer> layers_;
  WeightView embed_, lm_head_;
  std::vector<float> final_norm_;
  AttentionTap attention_tap_;
  Rope rope_;
  MoeBlock moe_;
  // Activations, reused between calls (no per-token allocation).
  std::vector<float> x_, h_, q_, k_, v_, attn_, out_;
  std::vector<SequenceSpan> spans_;
  std::vector<int64_t> row_slot_, row_pos_;  // per token row of a forward: its cache slot and position
  std::vector<float> mlp_gate_, mlp_up_, mlp_out_;
};

}  // namespace moec
