// The runtime's MoE block (model/moe.h) at OLMoE / Qwen3 scale of routing
// (64 experts, top-8: most experts get a few tokens or none) against a
// per-token double-precision reference that follows Hugging Face's loop, and
// for results that do not depend on the thread count.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "model/moe.h"
#include "model/thread_pool.h"
#include "tests/test_random.h"

using namespace moec;

namespace {

struct RandomMoe {
  int64_t experts, hidden, inter;
  std::vector<float> router;                  // [E, H]
  std::vector<std::vector<float>> w1, w2, w3;  // per expert: [I, H], [H, I], [I, H]
  MoeWeights weights;

  RandomMoe(int64_t experts, int64_t hidden, int64_t inter, bool normalize)
      : experts(experts), hidden(hidden), inter(inter) {
    router = random_normals(experts * hidden, 1);
    for (int64_t e = 0; e < experts; ++e) {
      w1.push_back(scaled(random_normals(inter * hidden, uint32_t(10 + 3 * e)), hidden));
      w2.push_back(scaled(random_normals(hidden * inter, uint32_t(11 + 3 * e)), inter));
      w3.push_back(scaled(random_normals(inter * hidden, uint32_t(12 + 3 * e)), hidden));
    }
    weights.router = view(router, experts, hidden);
    weights.normalize = normalize;
    for (int64_t e = 0; e < experts; ++e)
      weights.experts.push_back({view(w1[e], inter, hidden), view(w2[e], hidden, inter), view(w3[e], inter, hidden)});
  }

  static std::vector<float> scaled(std::vector<float> v, int64_t fan_in) {
    for (float& x : v) x /= std::sqrt(float(fan_in));
    return v;
  }
  static WeightView view(const std::vector<float>& m, int64_t rows, int64_t cols) {
    WeightView w;
    w.dtype = DType::F32;
    w.data = reinterpret_cast<const std::byte*>(m.data());
    w.rows = rows;
    w.cols = cols;
    return w;
  }

  // One token's block output, in double, experts in ascending id order.
  std::vector<double> reference(const float* x, int64_t top_k) const {
    std::vector<double> p(static_cast<size_t>(experts));
    for (int64_t e = 0; e < experts; ++e)
      p[e] = std::inner_product(x, x + hidden, &router[e * hidden], 0.0);
    const double max = *std::max_element(p.begin(), p.end());
    double z = 0;
    for (double& v : p) z += (v = std::exp(v - max));
    for (double& v : p) v /= z;
    std::vector<int64_t> order(static_cast<size_t>(experts));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    order.resize(size_t(top_k));
    std::sort(order.begin(), order.end());
    double chosen_sum = 0;
    for (int64_t e : order) chosen_sum += p[e];
    std::vector<double> out(size_t(hidden), 0.0);
    for (int64_t e : order) {
      const double weight = weights.normalize ? p[e] / chosen_sum : p[e];
      std::vector<double> act(static_cast<size_t>(inter));
      for (int64_t i = 0; i < inter; ++i) {
        const double g = std::inner_product(x, x + hidden, &w1[e][i * hidden], 0.0);
        const double u = std::inner_product(x, x + hidden, &w3[e][i * hidden], 0.0);
        act[i] = g / (1.0 + std::exp(-g)) * u;
      }
      for (int64_t h = 0; h < hidden; ++h)
        out[h] += weight * std::inner_product(act.begin(), act.end(), &w2[e][h * inter], 0.0);
    }
    return out;
  }
};

// The block's output added to a zero residual, for `tokens` random tokens.
std::vector<float> run_block(ThreadPool& pool, const RandomMoe& moe, int64_t top_k, const std::vector<float>& x,
                             int64_t tokens, RoutingRecord* record = nullptr) {
  MoeBlock block;
  std::vector<float> out(size_t(tokens * moe.hidden), 0.0f);
  block.forward(pool, moe.weights, top_k, x.data(), tokens, out.data(), record);
  return out;
}

}  // namespace

TEST_CASE("MoE block with 64 experts top-8 equals the per-token reference, idle experts included", "[model]") {
  const int64_t experts = 64, top_k = 8, hidden = 48, inter = 32;
  for (bool normalize : {true, false}) {  // Qwen3 / OLMoE norm_topk_prob both ways
    const RandomMoe moe(experts, hidden, inter, normalize);
    ThreadPool pool(2);
    // 1 token: 56 idle experts; 5 and 40: a few tokens per expert (the
    // direct kernels); 300 (> 16 per expert on average): the GEMM path.
    for (int64_t tokens : {1, 5, 40, 300}) {
      INFO("normalize " << normalize << ", tokens " << tokens);
      const std::vector<float> x = random_normals(tokens * hidden, uint32_t(100 + tokens));
      RoutingRecord record;
      const std::vector<float> y = run_block(pool, moe, top_k, x, tokens, &record);
      uint64_t routed = 0;
      for (uint64_t load : record.expert_load) routed += load;
      REQUIRE(routed == uint64_t(tokens * top_k));
      for (int64_t t = 0; t < tokens; ++t) {
        const std::vector<double> ref = moe.reference(&x[t * hidden], top_k);
        double scale = 0;
        for (double v : ref) scale = std::max(scale, std::abs(v));
        for (int64_t h = 0; h < hidden; ++h) REQUIRE(std::abs(y[t * hidden + h] - ref[h]) <= 1e-4 * scale + 1e-6);
      }
    }
  }
}

TEST_CASE("MoE block results do not depend on the thread count", "[model]") {
  const RandomMoe moe(64, 48, 32, true);
  const int64_t tokens = 500;  // several chunks of the per-token steps
  const std::vector<float> x = random_normals(tokens * 48, 7);
  ThreadPool one(1), three(3);
  CHECK(run_block(one, moe, 8, x, tokens) == run_block(three, moe, 8, x, tokens));
}
