// Picks the next token from logits: greedy at temperature 0, otherwise
// softmax(logits / T) restricted to the smallest set of tokens whose
// probability reaches top_p (nucleus sampling), drawn with a seeded RNG.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace moec {

struct SamplerOptions {
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
  // Ids at or above this are never chosen (0: no limit): a checkpoint whose
  // vocab_size exceeds its tokenizer's pieces (padded vocabularies; moec
  // synth's 32000 rows under a 4096-piece tokenizer) has ids no text has.
  int64_t vocab_limit = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  int32_t sample(std::span<const float> logits);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace moec
