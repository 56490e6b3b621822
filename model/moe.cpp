#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "model/ops.h"
#include "model/thread_pool.h"

namespace moec {

void route_tokens(ThreadPool& pool, const WeightView& router, int64_t top_k, const float* x, int64_t tokens,
                  Routing& routing, std::vector<float>& logits, bool normalize) {
  const int64_t experts = router.rows;
  logits.resize(size_t(tokens * experts));
  linear(pool, LinearProblem{x, router.cols, tokens, router, logits.data(), experts});
  routing.top_k = top_k;
  routing.chosen.resize(size_t(tokens * top_k));
  routing.weight.resize(routing.chosen.size());
  std::vector<int32_t> order(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
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
}

void MoeBlock::forward(ThreadPool& pool, const MoeWeights& weights, int64_t top_k, const float* x, int64_t tokens,
                       float* residual, RoutingRecord* record) {
  const int64_t experts = weights.router.rows, inter = weights.experts[0].w1.rows, h = weights.router.cols;
  route_tokens(pool, weights.router, top_k, x, tokens, routing_, logits_, weights.normalize);
  const auto& chosen = routing_.chosen;

  // Group (token, choice) pairs by expert and pack each expert's tokens.
  rows_.resize(size_t(experts));
  for (auto& r : rows_) r.clear();
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < top_k; ++j) rows_[chosen[t * top_k + j]].push_back(t);
  offsets_.assign(size_t(experts) + 1, 0);
  for (int64_t e = 0; e < experts; ++e) offsets_[e + 1] = offsets_[e] + int64_t(rows_[e].size());
  const int64_t packed = offsets_[experts];
  gathered_.resize(size_t(packed * h));
  gate_.resize(size_t(packed * inter));
  up_.resize(gate_.size());
  down_.resize(gathered_.size());
  for (int64_t e = 0; e < experts; ++e)
    for (size_t i = 0; i < rows_[e].size(); ++i)
      std::memcpy(&gathered_[(offsets_[e] + int64_t(i)) * h], x + rows_[e][i] * h, size_t(h) * sizeof(float));

  std::vector<LinearProblem> problems;
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t n = int64_t(rows_[e].size()), o = offsets_[e];
    if (n == 0) continue;
    problems.push_back({&gathered_[o * h], h, n, weights.experts[e].w1, &gate_[o * inter], inter});
    problems.push_back({&gathered_[o * h], h, n, weights.experts[e].w3, &up_[o * inter], inter});
  }
  linear(pool, problems);
  silu_mul(gate_.data(), up_.data(), packed * inter);
  problems.clear();
  for (int64_t e = 0; e < experts; ++e) {
    const int64_t n = int64_t(rows_[e].size()), o = offsets_[e];
    if (n == 0) continue;
    problems.push_back({&gate_[o * inter], inter, n, weights.experts[e].w2, &down_[o * h], h});
  }
  linear(pool, problems);

  // Scatter back: each token sums its experts' outputs in ascending expert
  // order (as HF's loop over experts does), weighted.
  combined_.assign(size_t(tokens * h), 0.0f);
  std::vector<int64_t> cursor(offsets_.begin(), offsets_.end() - 1);
  for (int64_t e = 0; e < experts; ++e)
    for (int64_t t : rows_[e]) {
      const int64_t row = cursor[e]++;
      float weight = 0;
      for (int64_t j = 0; j < top_k; ++j)
        if (chosen[t * top_k + j] == e) weight = routing_.weight[t * top_k + j];
      float* out = &combined_[t * h];
      const float* y = &down_[row * h];
      for (int64_t i = 0; i < h; ++i) out[i] += weight * y[i];
    }
  if (weights.has_shared()) add_shared(pool, weights, x, tokens);
  for (int64_t i = 0; i < tokens * h; ++i) residual[i] += combined_[i];
  if (record) {
    record->chosen = chosen;
    record->expert_load.resize(size_t(experts), 0);
    for (int64_t e = 0; e < experts; ++e) record->expert_load[e] += rows_[e].size();
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
  silu_mul(shared_gate_.data(), shared_up_.data(), tokens * inter);
  linear(pool, LinearProblem{shared_gate_.data(), inter, tokens, w.w2, shared_out_.data(), h});
  for (int64_t t = 0; t < tokens; ++t) {
    const float scale = 1.0f / (1.0f + std::exp(-shared_scale_[size_t(t)]));
    for (int64_t i = 0; i < h; ++i) combined_[size_t(t * h + i)] += scale * shared_out_[size_t(t * h + i)];
  }
}

}  // namespace moec
