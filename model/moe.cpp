#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "model/ops.h"
#include "model/thread_pool.h"

namespace moec {
namespace {

// Tokens per chunk of the per-token steps (routing, gather, scatter): enough
// work per chunk to be worth handing to another thread. Fixed, so results do
// not depend on the thread count.
constexpr int64_t kTokensPerChunk = 64;

}  // namespace

void route_tokens(ThreadPool& pool, const WeightView& router, int64_t top_k, const float* x, int64_t tokens,
                  Routing& routing, std::vector<float>& logits, bool normalize) {
  const int64_t experts = router.rows;
  logits.resize(size_t(tokens * experts));
  linear(pool, LinearProblem{x, router.cols, tokens, router, logits.data(), experts});
  routing.top_k = top_k;
  routing.chosen.resize(size_t(tokens * top_k));
  routing.weight.resize(routing.chosen.size());
  parallel_rows(pool, tokens, kTokensPerChunk, [&](int64_t t0, int64_t t1) {
    std::vector<int32_t> order(static_cast<size_t>(experts));
    for (int64_t t = t0; t < t1; ++t) {
      float* p = &logits[t * experts];
      softmax(p, experts);
      std::iota(order.begin(), order.end(), 0);
      // Highest probability first; ties to the lower expert id, as torch.topk.
      std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                        [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      float sum = 0;
      for (int64_t j = 0; j < top_k; ++j) sum += p[order[j]];
      for (int64_t j = 0; j < top_k; ++j) {
        routing.chosen[t * top_k + j] = order[j];
        routing.weight[t * top_k + j] = normalize ? p[order[j]] / sum : p[order[j]];
      }
    }
  });
}

void MoeBlock::forward(ThreadPool& pool, const MoeWeights& weights, int64_t top_k, const float* x, int64_t tokens,
                       float* residual, RoutingRecord* record) {
  const int64_t experts = weights.router.rows, inter = weights.experts[0].w1.rows, h = weights.router.cols;
  route_tokens(pool, weights.router, top_k, x, tokens, routing_, logits_, weights.normalize);
  const auto& chosen = routing_.chosen;

  // Group (token, choice) pairs by expert, each expert's tokens in token
  // order: packed_token_ is each packed row's token, packed_row_ each pair's row.
  offsets_.assign(size_t(experts) + 1, 0);
  for (int32_t e : chosen) ++offsets_[size_t(e) + 1];
  for (int64_t e = 0; e < experts; ++e) offsets_[e + 1] += offsets_[e];
  const int64_t packed = offsets_[experts];
  packed_token_.resize(size_t(packed));
  packed_row_.resize(chosen.size());
  {
    std::vector<int64_t> cursor(offsets_.begin(), offsets_.end() - 1);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < top_k; ++j) {
        const int64_t row = cursor[chosen[t * top_k + j]]++;
        packed_row_[size_t(t * top_k + j)] = row;
        packed_token_[size_t(row)] = t;
      }
  }
  gathered_.resize(size_t(packed * h));
  gate_.resize(size_t(packed * inter));
  up_.resize(gate_.size());
  down_.resize(gathered_.size());
  parallel_rows(pool, packed, kTokensPerChunk, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(&gathered_[r * h], x + packed_token_[size_t(r)] * h, size_t(h) * sizeof(float));
  });

  std::vector<LinearProblem> problems;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t n = offsets_[e + 1] - offsets_[e], o = offsets_[e];
    if (n == 0) continue;
    problems.push_back({&gathered_[o * h], h, n, weights.experts[e].w1, &gate_[o * inter], inter});
    problems.push_back({&gathered_[o * h], h, n, weights.experts[e].w3, &up_[o * inter], inter});
  }
  linear(pool, problems);
  silu_mul_rows(pool, gate_.data(), up_.data(), packed, inter);
  problems.clear();
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t n = offsets_[e + 1] - offsets_[e], o = offsets_[e];
    if (n == 0) continue;
    problems.push_back({&gate_[o * inter], inter, n, weights.experts[e].w2, &down_[o * h], h});
  }
  linear(pool, problems);

  // Scatter back: each token sums its experts' outputs in ascending expert
  // order (as HF's loop over experts does), weighted.
  combined_.resize(size_t(tokens * h));
  parallel_rows(pool, tokens, kTokensPerChunk, [&](int64_t t0, int64_t t1) {
    std::vector<int64_t> by_expert(static_cast<size_t>(top_k));  // the token's choices j, ascending expert id
    for (int64_t t = t0; t < t1; ++t) {
      std::iota(by_expert.begin(), by_expert.end(), 0);
      std::sort(by_expert.begin(), by_expert.end(),
                [&](int64_t a, int64_t b) { return chosen[t * top_k + a] < chosen[t * top_k + b]; });
      float* out = &combined_[t * h];
      std::fill(out, out + h, 0.0f);
      for (int64_t j : by_expert) {
        const float weight = routing_.weight[t * top_k + j];
        const float* y = &down_[packed_row_[size_t(t * top_k + j)] * h];
        for (int64_t i = 0; i < h; ++i) out[i] += weight * y[i];
      }
    }
  });
  if (weights.has_shared()) add_shared(pool, weights, x, tokens);
  add_into(pool, residual, combined_.data(), tokens * h);
  if (record) {
    record->chosen = chosen;
    record->expert_load.resize(size_t(experts), 0);
    for (int64_t e = 0; e < experts; ++e) record->expert_load[e] += uint64_t(offsets_[e + 1] - offsets_[e]);
  }
}

void MoeBlock::add_shared(ThreadPool& pool, const MoeWeights& weights, const float* x, int64_t tokens) {
  const ExpertWeights& w = weights.shared;
  const int64_t h = w.w1.cols, inter = w.w1.rows;
  shared_scale_.resize(size_t(tokens));
  shared_gate_.resize(size_t(tokens * inter));
  shared_up_.resize(shared_gate_.size());
  shared_out_.resize(size_t(tokens * h));
  const LinearProblem first[] = {{x, h, tokens, weights.shared_gate, shared_scale_.data(), 1},
                                 {x, h, tokens, w.w1, shared_gate_.data(), inter},
                                 {x, h, tokens, w.w3, shared_up_.data(), inter}};
  linear(pool, first);
  silu_mul_rows(pool, shared_gate_.data(), shared_up_.data(), tokens, inter);
  linear(pool, LinearProblem{shared_gate_.data(), inter, tokens, w.w2, shared_out_.data(), h});
  for (int64_t t = 0; t < tokens; ++t) {
    const float scale = 1.0f / (1.0f + std::exp(-shared_scale_[size_t(t)]));
    for (int64_t i = 0; i < h; ++i) combined_[size_t(t * h + i)] += scale * shared_out_[size_t(t * h + i)];
  }
}

}  // namespace moec
