#include "distill/layerwise.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "distill/adamw.h"
#include "distill/layers.h"
#include "io/checkpoint.h"
#include "io/error.h"
#include "model/thread_pool.h"

namespace moec::distill {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMatrix>;
using Map = Eigen::Map<RowMatrix>;

constexpr int64_t kChunkRows = 4096;  // rows per pass over the activations (bounds scratch memory)

int64_t width_of(const DenseMlp& mlp) { return mlp.gate.shape[0]; }
int64_t hidden_of(const DenseMlp& mlp) { return mlp.gate.shape[1]; }

// The SwiGLU activations silu(gate·h) ⊙ up·h of n rows: [n, W].
void activations(ThreadPool& pool, const float* h, int64_t n, const DenseMlp& mlp, std::vector<float>& gate,
                 std::vector<float>& up, std::vector<float>& act) {
  const int64_t w = width_of(mlp), hidden = hidden_of(mlp);
  for (auto* v : {&gate, &up, &act}) v->resize(size_t(n * w));
  linear_forward(pool, h, mlp.gate.value.data(), n, hidden, w, gate.data());
  linear_forward(pool, h, mlp.up.value.data(), n, hidden, w, up.data());
  swiglu_forward(pool, gate.data(), up.data(), n * w, act.data());
}

double relative_error(ThreadPool& pool, const float* h, const float* y, int64_t n, const DenseMlp& mlp) {
  const int64_t hidden = hidden_of(mlp);
  std::vector<float> out;
  double diff = 0, norm = 0;
  for (int64_t r0 = 0; r0 < n; r0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, n - r0);
    out.resize(size_t(rows * hidden));
    mlp_forward(pool, h + r0 * hidden, rows, mlp, out.data());
    for (int64_t i = 0; i < rows * hidden; ++i) {
      const double t = y[r0 * hidden + i];
      diff += (out[size_t(i)] - t) * (out[size_t(i)] - t);
      norm += t * t;
    }
  }
  return norm > 0 ? std::sqrt(diff / norm) : 0.0;
}

// With gate and up fixed the output is linear in down: the least-squares
// down projection (ridge-regularized relative to the activations' scale).
void solve_down(ThreadPool& pool, const float* h, const float* y, int64_t n, DenseMlp& mlp) {
  const int64_t w = width_of(mlp), hidden = hidden_of(mlp);
  Eigen::MatrixXd gram = Eigen::MatrixXd::Zero(w, w), cross = Eigen::MatrixXd::Zero(w, hidden);
  std::vector<float> gate, up, act;
  for (int64_t r0 = 0; r0 < n; r0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, n - r0);
    activations(pool, h + r0 * hidden, rows, mlp, gate, up, act);
    ConstMap a(act.data(), rows, w), t(y + r0 * hidden, rows, hidden);
    gram.noalias() += (a.transpose() * a).cast<double>();
    cross.noalias() += (a.transpose() * t).cast<double>();
  }
  const double ridge = 1e-3 * std::max(gram.diagonal().mean(), 1e-12);
  gram.diagonal().array() += ridge;
  const Eigen::MatrixXd d = gram.ldlt().solve(cross);  // [W, H]
  if (!d.allFinite()) return;  // keep the current down projection
  Map(mlp.down.value.data(), hidden, w) = d.transpose().cast<float>();
}

// Adam on the normalized squared error ‖mlp(h) − y‖² / ‖y‖² over shuffled
// mini-batches.
void adam_epochs(ThreadPool& pool, const float* h, const float* y, int64_t n, const MlpFitOptions& o, DenseMlp& mlp) {
  const int64_t w = width_of(mlp), hidden = hidden_of(mlp), batch = std::min(o.batch_rows, n);
  const int64_t batches = n / batch;
  if (o.epochs <= 0 || batches == 0) return;
  double norm = 0;
  for (int64_t i = 0; i < n * hidden; ++i) norm += double(y[i]) * y[i];
  const float scale = float(2.0 / std::max(norm / double(n) * double(batch), 1e-30));
  AdamWOptions ao;
  ao.lr = o.lr;
  ao.clip_norm = 0;
  ao.total_steps = o.epochs * batches;
  AdamW adam({&mlp.gate, &mlp.up, &mlp.down}, ao);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  std::vector<float> xb(size_t(batch * hidden)), yb(xb.size()), gate, up, act, out(xb.size()), dact, dgate, dup;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng() % uint64_t(i + 1))]);
    for (int64_t b = 0; b < batches; ++b) {
      for (int64_t r = 0; r < batch; ++r) {
        const int64_t src = order[size_t(b * batch + r)];
        std::copy_n(h + src * hidden, hidden, &xb[size_t(r * hidden)]);
        std::copy_n(y + src * hidden, hidden, &yb[size_t(r * hidden)]);
      }
      activations(pool, xb.data(), batch, mlp, gate, up, act);
      linear_forward(pool, act.data(), mlp.down.value.data(), batch, w, hidden, out.data());
      for (size_t i = 0; i < out.size(); ++i) out[i] = (out[i] - yb[i]) * scale;  // d loss / d out
      dact.resize(act.size());
      dgate.resize(act.size());
      dup.resize(act.size());
      linear_backward(pool, out.data(), act.data(), mlp.down.value.data(), batch, w, hidden, dact.data(),
                      mlp.down.grad.data());
      swiglu_backward(pool, dact.data(), gate.data(), up.data(), batch * w, dgate.data(), dup.data());
      linear_backward(pool, dgate.data(), xb.data(), mlp.gate.value.data(), batch, hidden, w, nullptr,
                      mlp.gate.grad.data());
      linear_backward(pool, dup.data(), xb.data(), mlp.up.value.data(), batch, hidden, w, nullptr, mlp.up.grad.data());
      adam.step();
    }
  }
}

}  // namespace

MlpInit parse_mlp_init(std::string_view name) {
  if (name == "neurons") return MlpInit::Neurons;
  if (name == "random") return MlpInit::Random;
  fail("unknown --init '{}': expected neurons or random", name);
}

std::string_view mlp_init_name(MlpInit init) { return init == MlpInit::Neurons ? "neurons" : "random"; }

void mlp_forward(ThreadPool& pool, const float* h, int64_t n, const DenseMlp& mlp, float* out) {
  std::vector<float> gate, up, act;  // one chunk of rows at a time: [chunk, W] each
  const int64_t hidden = hidden_of(mlp);
  for (int64_t r0 = 0; r0 < n; r0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, n - r0);
    activations(pool, h + r0 * hidden, rows, mlp, gate, up, act);
    linear_forward(pool, act.data(), mlp.down.value.data(), rows, width_of(mlp), hidden, out + r0 * hidden);
  }
}

void init_mlp(ThreadPool& pool, const CheckpointSource& teacher, int layer, MlpInit init, const float* h, int64_t n,
              const Routing& routing, uint64_t seed, DenseMlp mlp) {
  const ModelConfig& c = teacher.config();
  const int64_t w = width_of(mlp), hidden = hidden_of(mlp), inter = c.intermediate_size, experts = c.num_experts;
  std::mt19937_64 rng(seed ^ (uint64_t(layer) * 0x9E3779B97F4A7C15ull));
  const float range = float(teacher.config_json().value("initializer_range", 0.02));
  std::normal_distribution<float> normal(0.0f, range);
  for (Parameter* p : {&mlp.gate, &mlp.up, &mlp.down})
    for (float& v : p->value) v = normal(rng);
  if (init == MlpInit::Random) return;

  // Score of neuron j of expert e: ‖w2[:, j]‖ · Σ over its routed tokens of
  // routing weight · |silu(w1_j·h) · (w3_j·h)|, the mass it adds to outputs.
  struct Neuron {
    double score;
    int64_t expert, index;
  };
  std::vector<Neuron> neurons(size_t(experts * inter));
  std::vector<double> mass(size_t(experts), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < routing.top_k; ++k)
      mass[size_t(routing.chosen[size_t(t * routing.top_k + k)])] += routing.weight[size_t(t * routing.top_k + k)];
  pool.parallel_for(size_t(experts), [&](size_t e, int) {
    std::vector<int64_t> rows;
    std::vector<float> weights;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t k = 0; k < routing.top_k; ++k)
        if (routing.chosen[size_t(t * routing.top_k + k)] == int32_t(e)) {
          rows.push_back(t);
          weights.push_back(routing.weight[size_t(t * routing.top_k + k)]);
        }
    const auto w1 = teacher.read({TensorRole::ExpertW1, layer, int(e)}).to_f32();
    const auto w2 = teacher.read({TensorRole::ExpertW2, layer, int(e)}).to_f32();
    const auto w3 = teacher.read({TensorRole::ExpertW3, layer, int(e)}).to_f32();
    std::vector<double> sums(size_t(inter), 0.0);
    for (size_t r0 = 0; r0 < rows.size(); r0 += size_t(kChunkRows)) {  // bounded scratch per expert
      const int64_t m = std::min<int64_t>(kChunkRows, int64_t(rows.size() - r0));
      RowMatrix x(m, hidden);
      for (int64_t r = 0; r < m; ++r) x.row(r) = ConstMap(h + rows[r0 + size_t(r)] * hidden, 1, hidden);
      const RowMatrix g = x * ConstMap(w1.data(), inter, hidden).transpose();
      const RowMatrix u = x * ConstMap(w3.data(), inter, hidden).transpose();
      const Eigen::ArrayXXf gs = g.array(), act = (gs / (1.0f + (-gs).exp()) * u.array()).abs();
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < inter; ++j) sums[size_t(j)] += double(weights[r0 + size_t(r)]) * act(r, j);
    }
    const Eigen::VectorXf col_norms = ConstMap(w2.data(), hidden, inter).colwise().norm().transpose();
    for (int64_t j = 0; j < inter; ++j) neurons[size_t(int64_t(e) * inter + j)] = {sums[size_t(j)] * col_norms[j], int64_t(e), j};
  });
  const int64_t chosen = std::min(w, experts * inter);
  std::partial_sort(neurons.begin(), neurons.begin() + chosen, neurons.end(), [](const Neuron& a, const Neuron& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.expert != b.expert ? a.expert < b.expert : a.index < b.index;
  });
  // Copy the chosen neurons expert by expert (one expert's weights at a time).
  for (int64_t e = 0; e < experts; ++e) {
    std::vector<float> w1, w2, w3;
    for (int64_t i = 0; i < chosen; ++i) {
      const Neuron& nr = neurons[size_t(i)];
      if (nr.expert != e) continue;
      if (w1.empty()) {
        w1 = teacher.read({TensorRole::ExpertW1, layer, int(e)}).to_f32();
        w2 = teacher.read({TensorRole::ExpertW2, layer, int(e)}).to_f32();
        w3 = teacher.read({TensorRole::ExpertW3, layer, int(e)}).to_f32();
      }
      // The dense neuron fires on every token; the expert's on its share.
      const float usage = float(mass[size_t(e)] / double(std::max<int64_t>(n, 1)));
      std::copy_n(&w1[size_t(nr.index * hidden)], hidden, &mlp.gate.value[size_t(i * hidden)]);
      std::copy_n(&w3[size_t(nr.index * hidden)], hidden, &mlp.up.value[size_t(i * hidden)]);
      for (int64_t d = 0; d < hidden; ++d) mlp.down.value[size_t(d * w + i)] = w2[size_t(d * inter + nr.index)] * usage;
    }
  }
}

MlpFitResult fit_mlp(ThreadPool& pool, const float* h, const float* y, int64_t n, const MlpFitOptions& o,
                     DenseMlp mlp) {
  MlpFitResult result;
  result.error_init = relative_error(pool, h, y, n, mlp);
  solve_down(pool, h, y, n, mlp);
  adam_epochs(pool, h, y, n, o, mlp);
  solve_down(pool, h, y, n, mlp);
  result.error_fitted = relative_error(pool, h, y, n, mlp);
  for (Parameter* p : {&mlp.gate, &mlp.up, &mlp.down}) std::vector<float>().swap(p->grad);  // no memory until stage 2
  return result;
}

}  // namespace moec::distill
