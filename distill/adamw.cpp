#include "distill/adamw.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace moec::distill {

AdamW::AdamW(std::vector<Parameter*> params, const AdamWOptions& options) : params_(std::move(params)), o_(options) {
  for (Parameter* p : params_) {
    p->ensure_grad();
    m_.emplace_back(p->value.size(), 0.0f);
    v_.emplace_back(p->value.size(), 0.0f);
  }
}

float AdamW::learning_rate(int64_t step) const {
  if (step < o_.warmup_steps) return o_.lr * float(step + 1) / float(o_.warmup_steps);
  const int64_t span = std::max<int64_t>(1, o_.total_steps - o_.warmup_steps);
  const double progress = std::min(1.0, double(step - o_.warmup_steps) / double(span));
  const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return float(o_.lr * (o_.min_lr_ratio + (1.0 - o_.min_lr_ratio) * cosine));
}

double AdamW::step() {
  double square = 0;  // in parameter order: the norm is reproducible
  for (Parameter* p : params_)
    for (float g : p->grad) square += double(g) * g;
  const double norm = std::sqrt(square);
  const float clip = o_.clip_norm > 0 && norm > o_.clip_norm ? float(o_.clip_norm / (norm + 1e-6)) : 1.0f;
  const float lr = learning_rate(t_);
  ++t_;
  const float correction1 = 1.0f - std::pow(o_.beta1, float(t_)), correction2 = 1.0f - std::pow(o_.beta2, float(t_));
  for (size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = *params_[i];
    const float decay = p.is_vector() ? 0.0f : lr * o_.weight_decay;
    float *m = m_[i].data(), *v = v_[i].data(), *w = p.value.data(), *g = p.grad.data();
    for (size_t j = 0; j < p.value.size(); ++j) {
      const float grad = g[j] * clip;
      m[j] = o_.beta1 * m[j] + (1.0f - o_.beta1) * grad;
      v[j] = o_.beta2 * v[j] + (1.0f - o_.beta2) * grad * grad;
      const float update = (m[j] / correction1) / (std::sqrt(v[j] / correction2) + o_.eps);
      w[j] -= decay * w[j] + lr * update;
      g[j] = 0.0f;
    }
  }
  return norm;
}

uint64_t AdamW::state_bytes() const {
  uint64_t floats = 0;
  for (const auto& m : m_) floats += 2 * m.size();
  return floats * sizeof(float);
}

}  // namespace moec::distill
