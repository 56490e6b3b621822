// The sparse MoE block exactly as Hugging Face Mixtral computes it: router
// logits -> softmax in f32 -> top-k -> the k weights renormalized to sum 1 ->
// Σ weight · w2(silu(w1·x) ⊙ w3·x); plus, where the family has one (Qwen2-MoE),
// a shared expert scaled by a sigmoid gate.
//
// Tokens are grouped by expert: each expert's routed tokens are gathered into
// one matrix and run as GEMMs (all experts' tiles in one parallel batch), then
// scattered back weighted, per token in ascending expert order.
#pragma once
#include <cstdint>
#include <vector>

#include "model/linear.h"

namespace moec {

struct ExpertWeights {
  WeightView w1, w2, w3;  // gate [I, H], down [H, I], up [I, H]
};

struct MoeWeights {
  WeightView router;  // [E, H]
  std::vector<ExpertWeights> experts;
  bool normalize = true;  // norm_topk_prob: the k weights renormalized to sum 1
  // Qwen2-MoE's shared expert: every token adds sigmoid(shared_gate·x) ·
  // shared(x) to the routed sum (shared_gate [1, H]; absent when
  // shared_gate.rows == 0).
  ExpertWeights shared;
  WeightView shared_gate;
  bool has_shared() const { return shared_gate.rows > 0; }
};

// Where the tokens of one forward went: expert ids per token (descending
// router weight), and the running count of tokens per expert.
struct RoutingRecord {
  std::vector<int32_t> chosen;        // [tokens, top_k] of the last call
  std::vector<uint64_t> expert_load;  // [experts], accumulated
};

// The router's choice for each token: top_k experts by descending softmax
// probability (ties to the lower id) and their weights, renormalized to sum 1
// when `normalize` (Mixtral; Qwen's norm_topk_prob) or the probabilities
// themselves.
struct Routing {
  int64_t top_k = 0;
  std::vector<int32_t> chosen;  // [tokens, top_k]
  std::vector<float> weight;    // [tokens, top_k]
};
void route_tokens(ThreadPool& pool, const WeightView& router, int64_t top_k, const float* x, int64_t tokens,
                  Routing& routing, std::vector<float>& logits_scratch, bool normalize = true);

class MoeBlock {
 public:
  // x: [tokens, H] normalized input; adds the block's output into residual.
  void forward(ThreadPool& pool, const MoeWeights& weights, int64_t top_k, const float* x, int64_t tokens,
               float* residual, RoutingRecord* record);

 private:
  Routing routing_;
  std::vector<float> logits_;        // [tokens, E]
  std::vector<int64_t> offsets_;     // per expert: first row in the packed buffers
  std::vector<int64_t> packed_token_;  // per packed row: its token
  std::vector<int64_t> packed_row_;    // per (token, choice): its packed row
  // Adds sigmoid(gate·x) · shared(x) of every token to combined_.
  void add_shared(ThreadPool& pool, const MoeWeights& weights, const float* x, int64_t tokens);
  std::vector<float> gathered_, gate_, up_, down_, combined_;
  std::vector<float> shared_gate_, shared_up_, shared_out_, shared_scale_;
};

}  // namespace moec
