// Each backward pass of distill/layers.h against central finite differences
// of its forward: L = Σ r ⊙ op(x) for a random r, so dL/dx is what the
// backward computes from dy = r. Inputs are f32; L is summed in double.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "distill/layers.h"
#include "model/thread_pool.h"

using namespace moec;
using namespace moec::distill;

namespace {

std::vector<float> random_vector(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

double weighted_sum(const std::vector<float>& r, const std::vector<float>& y) {
  double s = 0;
  for (size_t i = 0; i < y.size(); ++i) s += double(r[i]) * y[i];
  return s;
}

// Compares analytic[i] with the central difference of loss() in x[i] for a
// spread of indices; restores x.
void check_gradient(const char* what, std::vector<float>& x, const std::vector<float>& analytic,
                    const std::function<double()>& loss, float step = 1e-2f) {
  INFO(what);
  REQUIRE(analytic.size() == x.size());
  const size_t probes = std::min<size_t>(x.size(), 24);
  for (size_t p = 0; p < probes; ++p) {
    const size_t i = p * x.size() / probes;
    const float saved = x[i];
    x[i] = saved + step;
    const double up = loss();
    x[i] = saved - step;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2.0 * step);
    INFO("index " << i << ": analytic " << analytic[i] << ", numeric " << numeric);
    CHECK(std::abs(analytic[i] - numeric) <= 1e-2 * (std::abs(analytic[i]) + std::abs(numeric)) + 2e-3);
  }
}

}  // namespace

TEST_CASE("distill layers: linear backward matches finite differences", "[distill][gradcheck]") {
  ThreadPool pool(2);
  std::mt19937 rng(1);
  const int64_t n = 5, in = 7, out = 3;
  auto x = random_vector(n * in, rng), w = random_vector(out * in, rng), r = random_vector(n * out, rng);
  std::vector<float> y(n * out), dx(n * in), dw(out * in, 0.0f);
  auto loss = [&] {
    linear_forward(pool, x.data(), w.data(), n, in, out, y.data());
    return weighted_sum(r, y);
  };
  linear_backward(pool, r.data(), x.data(), w.data(), n, in, out, dx.data(), dw.data());
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
}

TEST_CASE("distill layers: RMSNorm backward matches finite differences", "[distill][gradcheck]") {
  ThreadPool pool(2);
  std::mt19937 rng(2);
  const int64_t n = 4, dim = 9;
  auto x = random_vector(n * dim, rng), w = random_vector(dim, rng), r = random_vector(n * dim, rng);
  std::vector<float> y(n * dim), rstd(n), dx(n * dim, 0.0f), dw(dim, 0.0f);
  auto loss = [&] {
    rms_norm_forward(pool, x.data(), w.data(), n, dim, 1e-5f, y.data(), rstd.data());
    return weighted_sum(r, y);
  };
  loss();
  rms_norm_backward(pool, r.data(), x.data(), w.data(), rstd.data(), n, dim, dx.data(), dw.data());
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
}

TEST_CASE("distill layers: rotary backward is the inverse rotation", "[distill][gradcheck]") {
  ThreadPool pool(2);
  std::mt19937 rng(3);
  const int64_t n = 6, heads = 2, d = 8;
  RotaryTable rope(d, 10000.0, n);
  std::vector<int32_t> positions = {0, 1, 2, 3, 4, 5};
  auto x = random_vector(n * heads * d, rng), r = random_vector(x.size(), rng);
  auto loss = [&] {
    std::vector<float> y = x;
    rope.rotate(pool, y.data(), n, heads, positions, false);
    return weighted_sum(r, y);
  };
  std::vector<float> dx = r;
  rope.rotate(pool, dx.data(), n, heads, positions, true);
  check_gradient("dx", x, dx, loss);
}

TEST_CASE("distill layers: causal GQA attention backward matches finite differences", "[distill][gradcheck]") {
  ThreadPool pool(2);
  for (int64_t sliding : {0, 3}) {
    INFO("sliding window " << sliding);
    std::mt19937 rng(4);
    AttentionDims dims{2, 5, 4, 2, 4, sliding};
    const int64_t n = dims.windows * dims.ctx, qd = dims.heads * dims.head_dim, kvd = dims.kv_heads * dims.head_dim;
    auto q = random_vector(n * qd, rng), k = random_vector(n * kvd, rng), v = random_vector(n * kvd, rng);
    auto r = random_vector(n * qd, rng);
    std::vector<float> probs(dims.windows * dims.heads * dims.ctx * dims.ctx), out(n * qd);
    auto loss = [&] {
      attention_forward(pool, dims, q.data(), k.data(), v.data(), probs.data(), out.data());
      return weighted_sum(r, out);
    };
    loss();
    // Causality: a query sees no later key.
    CHECK(probs[1] == 0.0f);
    std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
    attention_backward(pool, dims, r.data(), q.data(), k.data(), v.data(), probs.data(), dq.data(), dk.data(), dv.data());
    check_gradient("dq", q, dq, loss);
    check_gradient("dk", k, dk, loss);
    check_gradient("dv", v, dv, loss);
  }
}

TEST_CASE("distill layers: SwiGLU backward matches finite differences", "[distill][gradcheck]") {
  ThreadPool pool(2);
  std::mt19937 rng(5);
  const int64_t count = 40;
  auto g = random_vector(count, rng, 2.0f), u = random_vector(count, rng), r = random_vector(count, rng);
  std::vector<float> a(count), dg(count), du(count);
  auto loss = [&] {
    swiglu_forward(pool, g.data(), u.data(), count, a.data());
    return weighted_sum(r, a);
  };
  swiglu_backward(pool, r.data(), g.data(), u.data(), count, dg.data(), du.data());
  check_gradient("dg", g, dg, loss);
  check_gradient("du", u, du, loss);
}

TEST_CASE("distill layers: cross-entropy and distillation loss gradients", "[distill][gradcheck]") {
  ThreadPool pool(2);
  std::mt19937 rng(6);
  const int64_t rows = 3, vocab = 11;
  auto logits = random_vector(rows * vocab, rng, 2.0f), teacher = random_vector(rows * vocab, rng, 2.0f);
  const std::vector<int32_t> labels = {4, -1, 9};
  for (float alpha : {0.0f, 0.25f, 1.0f}) {
    for (float temperature : {1.0f, 2.0f}) {
      INFO("alpha " << alpha << " T " << temperature);
      const LossWeights w{alpha, temperature};
      auto loss = [&] {
        std::vector<float> z = logits;
        return loss_backward(pool, z.data(), teacher.data(), labels, vocab, w, 1.0f).loss;
      };
      std::vector<float> grad = logits;
      const LossSums sums = loss_backward(pool, grad.data(), teacher.data(), labels, vocab, w, 1.0f);
      CHECK(sums.rows == 2);
      CHECK(sums.kl >= 0);
      for (int64_t i = 0; i < vocab; ++i) CHECK(grad[vocab + i] == 0.0f);  // the unlabelled row
      check_gradient("dlogits", logits, grad, loss, 1e-2f);
    }
  }
  // KL of a distribution with itself is zero.
  std::vector<float> same = teacher;
  const LossSums self = loss_backward(pool, same.data(), teacher.data(), labels, vocab, {1.0f, 1.0f}, 1.0f);
  CHECK(std::abs(self.kl) < 1e-6);
}
