#include "distill/student_pass.h"

#include <algorithm>

#include "io/error.h"
#include "model/thread_pool.h"

namespace moec::distill {
namespace {

void add(std::vector<float>& to, const std::vector<float>& from) {
  for (size_t i = 0; i < to.size(); ++i) to[i] += from[i];
}

}  // namespace

StudentPass::StudentPass(Student& student, ThreadPool& pool, int64_t windows, int64_t ctx)
    : student_(student),
      pool_(pool),
      windows_(windows),
      ctx_(ctx),
      rows_(windows * ctx),
      rope_(student.config().head_dim, student.config().rope_theta, ctx) {
  const ModelConfig& c = student.config();
  dims_ = {windows, ctx, c.num_heads, c.num_kv_heads, c.head_dim, c.sliding_window.value_or(0)};
  const size_t n = size_t(rows_), h = size_t(c.hidden_size), w = size_t(c.intermediate_size);
  const size_t qd = size_t(c.num_heads * c.head_dim), kvd = size_t(c.num_kv_heads * c.head_dim);
  positions_.resize(n);
  for (size_t r = 0; r < n; ++r) positions_[r] = int32_t(int64_t(r) % ctx);
  labels_.resize(n);
  layers_.resize(size_t(c.num_layers));
  for (LayerActivations& a : layers_) {
    for (auto* v : {&a.x_in, &a.norm1, &a.x_mid, &a.norm2}) v->resize(n * h);
    for (auto* v : {&a.rstd1, &a.rstd2}) v->resize(n);
    for (auto* v : {&a.q, &a.att}) v->resize(n * qd);
    for (auto* v : {&a.k, &a.v}) v->resize(n * kvd);
    for (auto* v : {&a.gate, &a.up, &a.act}) v->resize(n * w);
    a.probs.resize(size_t(windows * c.num_heads * ctx * ctx));
  }
  for (auto* v : {&x_, &final_norm_, &dx_, &dnorm_, &dtmp_}) v->resize(n * h);
  final_rstd_.resize(n);
  logits_.resize(n * size_t(c.vocab_size));
  for (auto* v : {&datt_, &dq_}) v->resize(n * qd);
  for (auto* v : {&dk_, &dv_}) v->resize(n * kvd);
  for (auto* v : {&dact_, &dgate_, &dup_}) v->resize(n * w);
}

uint64_t StudentPass::activation_bytes() const {
  uint64_t floats = x_.size() + final_norm_.size() + final_rstd_.size() + logits_.size() + dx_.size() +
                    dnorm_.size() + dtmp_.size() + datt_.size() + dq_.size() + dk_.size() + dv_.size() +
                    dact_.size() + dgate_.size() + dup_.size();
  for (const LayerActivations& a : layers_)
    for (auto* v : {&a.x_in, &a.norm1, &a.rstd1, &a.q, &a.k, &a.v, &a.probs, &a.att, &a.x_mid, &a.norm2, &a.rstd2,
                    &a.gate, &a.up, &a.act})
      floats += v->size();
  return floats * sizeof(float);
}

void StudentPass::forward_layer(int64_t l, std::vector<float>& x) {
  const ModelConfig& c = student_.config();
  const int64_t n = rows_, h = c.hidden_size, w = c.intermediate_size;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  const float eps = float(c.rms_norm_eps);
  const int li = int(l);
  LayerActivations& a = layers_[size_t(l)];
  a.x_in = x;
  rms_norm_forward(pool_, x.data(), student_.at({TensorRole::AttnNorm, li}).value.data(), n, h, eps, a.norm1.data(),
                   a.rstd1.data());
  linear_forward(pool_, a.norm1.data(), student_.at({TensorRole::AttnQ, li}).value.data(), n, h, qd, a.q.data());
  linear_forward(pool_, a.norm1.data(), student_.at({TensorRole::AttnK, li}).value.data(), n, h, kvd, a.k.data());
  linear_forward(pool_, a.norm1.data(), student_.at({TensorRole::AttnV, li}).value.data(), n, h, kvd, a.v.data());
  rope_.rotate(pool_, a.q.data(), n, c.num_heads, positions_, false);
  rope_.rotate(pool_, a.k.data(), n, c.num_kv_heads, positions_, false);
  attention_forward(pool_, dims_, a.q.data(), a.k.data(), a.v.data(), a.probs.data(), a.att.data());
  linear_forward(pool_, a.att.data(), student_.at({TensorRole::AttnO, li}).value.data(), n, qd, h, dtmp_.data());
  add(x, dtmp_);
  a.x_mid = x;
  rms_norm_forward(pool_, x.data(), student_.at({TensorRole::MoeNorm, li}).value.data(), n, h, eps, a.norm2.data(),
                   a.rstd2.data());
  linear_forward(pool_, a.norm2.data(), student_.at({TensorRole::MlpGate, li}).value.data(), n, h, w, a.gate.data());
  linear_forward(pool_, a.norm2.data(), student_.at({TensorRole::MlpUp, li}).value.data(), n, h, w, a.up.data());
  swiglu_forward(pool_, a.gate.data(), a.up.data(), n * w, a.act.data());
  linear_forward(pool_, a.act.data(), student_.at({TensorRole::MlpDown, li}).value.data(), n, w, h, dtmp_.data());
  add(x, dtmp_);
}

void StudentPass::backward_layer(int64_t l, std::vector<float>& dx) {
  const ModelConfig& c = student_.config();
  const int64_t n = rows_, h = c.hidden_size, w = c.intermediate_size;
  const int64_t qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  const int li = int(l);
  LayerActivations& a = layers_[size_t(l)];
  Parameter &gate = student_.at({TensorRole::MlpGate, li}), &up = student_.at({TensorRole::MlpUp, li}),
            &down = student_.at({TensorRole::MlpDown, li}), &norm2 = student_.at({TensorRole::MoeNorm, li});
  // MLP: x += down(silu(gate·n2) ⊙ up·n2), n2 = norm(x_mid).
  linear_backward(pool_, dx.data(), a.act.data(), down.value.data(), n, w, h, dact_.data(), down.grad.data());
  swiglu_backward(pool_, dact_.data(), a.gate.data(), a.up.data(), n * w, dgate_.data(), dup_.data());
  linear_backward(pool_, dgate_.data(), a.norm2.data(), gate.value.data(), n, h, w, dnorm_.data(), gate.grad.data());
  linear_backward(pool_, dup_.data(), a.norm2.data(), up.value.data(), n, h, w, dtmp_.data(), up.grad.data());
  add(dnorm_, dtmp_);
  rms_norm_backward(pool_, dnorm_.data(), a.x_mid.data(), norm2.value.data(), a.rstd2.data(), n, h, dx.data(),
                    norm2.grad.data());
  // Attention: x += o(attn(rope(q·n1), rope(k·n1), v·n1)), n1 = norm(x_in).
  Parameter &q = student_.at({TensorRole::AttnQ, li}), &k = student_.at({TensorRole::AttnK, li}),
            &v = student_.at({TensorRole::AttnV, li}), &o = student_.at({TensorRole::AttnO, li}),
            &norm1 = student_.at({TensorRole::AttnNorm, li});
  linear_backward(pool_, dx.data(), a.att.data(), o.value.data(), n, qd, h, datt_.data(), o.grad.data());
  attention_backward(pool_, dims_, datt_.data(), a.q.data(), a.k.data(), a.v.data(), a.probs.data(), dq_.data(),
                     dk_.data(), dv_.data());
  rope_.rotate(pool_, dq_.data(), n, c.num_heads, positions_, true);
  rope_.rotate(pool_, dk_.data(), n, c.num_kv_heads, positions_, true);
  linear_backward(pool_, dq_.data(), a.norm1.data(), q.value.data(), n, h, qd, dnorm_.data(), q.grad.data());
  linear_backward(pool_, dk_.data(), a.norm1.data(), k.value.data(), n, h, kvd, dtmp_.data(), k.grad.data());
  add(dnorm_, dtmp_);
  linear_backward(pool_, dv_.data(), a.norm1.data(), v.value.data(), n, h, kvd, dtmp_.data(), v.grad.data());
  add(dnorm_, dtmp_);
  rms_norm_backward(pool_, dnorm_.data(), a.x_in.data(), norm1.value.data(), a.rstd1.data(), n, h, dx.data(),
                    norm1.grad.data());
}

LossSums StudentPass::run(std::span<const int32_t> ids, const float* teacher, const LossWeights& weights,
                          bool backward) {
  const ModelConfig& c = student_.config();
  const int64_t windows = int64_t(ids.size()) / ctx_;
  if (windows < 1 || windows > windows_ || windows * ctx_ != int64_t(ids.size()))
    fail("student pass: {} tokens are not 1 to {} windows of {}", ids.size(), windows_, ctx_);
  rows_ = windows * ctx_;
  dims_.windows = windows;
  const int64_t n = rows_, h = c.hidden_size, vocab = c.vocab_size;
  for (int32_t id : ids)
    if (id < 0 || id >= vocab) fail("student pass: token id {} outside the vocabulary of {}", id, vocab);
  for (int64_t r = 0; r < n; ++r) labels_[size_t(r)] = (r + 1) % ctx_ == 0 ? -1 : ids[size_t(r + 1)];

  Parameter& embed = student_.at({TensorRole::Embed});
  for (int64_t r = 0; r < n; ++r)
    std::copy_n(embed.value.data() + int64_t(ids[size_t(r)]) * h, h, x_.data() + r * h);
  for (int64_t l = 0; l < c.num_layers; ++l) forward_layer(l, x_);
  Parameter& final_norm = student_.at({TensorRole::FinalNorm});
  Parameter& head = student_.lm_head();
  rms_norm_forward(pool_, x_.data(), final_norm.value.data(), n, h, float(c.rms_norm_eps), final_norm_.data(),
                   final_rstd_.data());
  linear_forward(pool_, final_norm_.data(), head.value.data(), n, h, vocab, logits_.data());
  const int64_t labelled = windows * (ctx_ - 1);
  LossSums sums = loss_backward(pool_, logits_.data(), teacher, labels_, vocab, weights, 1.0f / float(labelled));
  if (!backward) return sums;
  for (Parameter& p : student_.parameters()) p.ensure_grad();

  linear_backward(pool_, logits_.data(), final_norm_.data(), head.value.data(), n, h, vocab, dnorm_.data(),
                  head.grad.data());
  std::fill(dx_.begin(), dx_.end(), 0.0f);
  rms_norm_backward(pool_, dnorm_.data(), x_.data(), final_norm.value.data(), final_rstd_.data(), n, h, dx_.data(),
                    final_norm.grad.data());
  for (int64_t l = c.num_layers - 1; l >= 0; --l) backward_layer(l, dx_);
  for (int64_t r = 0; r < n; ++r) {  // rows in order: the sum per id is reproducible
    float* g = embed.grad.data() + int64_t(ids[size_t(r)]) * h;
    const float* d = dx_.data() + r * h;
    for (int64_t i = 0; i < h; ++i) g[i] += d[i];
  }
  return sums;
}

}  // namespace moec::distill
