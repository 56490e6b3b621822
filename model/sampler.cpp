#include "model/sampler.h"

#include <algorithm>
#include <cmath>

#include "io/error.h"

namespace moec {

Sampler::Sampler(const SamplerOptions& options) : options_(options), rng_(options.seed) {
  if (!(options.temperature >= 0)) fail("--temperature must be >= 0, got {}", options.temperature);
  if (!(options.top_p > 0 && options.top_p <= 1)) fail("--top-p must be in (0, 1], got {}", options.top_p);
}

int32_t Sampler::sample(std::span<const float> all_logits) {
  const std::span<const float> logits =
      options_.vocab_limit > 0 ? all_logits.first(std::min(all_logits.size(), size_t(options_.vocab_limit))) : all_logits;
  if (options_.temperature == 0.0f)
    return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  candidates_.resize(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    float p = std::exp((logits[i] - max_logit) / options_.temperature);
    candidates_[i] = {p, int32_t(i)};
    total += p;
  }
  std::sort(candidates_.begin(), candidates_.end(),
            [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  // Keep the head of the distribution up to top_p of the mass.
  double kept = 0;
  size_t n = 0;
  while (n < candidates_.size() && (n == 0 || kept < options_.top_p * total)) kept += candidates_[n++].first;
  double draw = std::uniform_real_distribution<double>(0.0, kept)(rng_);
  for (size_t i = 0; i < n; ++i) {
    draw -= candidates_[i].first;
    if (draw <= 0) return candidates_[i].second;
  }
  return candidates_[n - 1].second;
}

}  // namespace moec
