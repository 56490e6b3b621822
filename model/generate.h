// Autoregressive generation with a KV cache: the prompt prefilled in chunks
// of kPrefillChunkTokens, then one token per step through the small-batch
// kernels.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/sampler.h"

namespace moec {

class Model;

// Prompts run through the model this many tokens at a time. Shared with the
// server (serve/), which prefills a request in the same chunks between
// decode steps: the same forward calls give the same floats, so a greedy
// request there reproduces `moec generate` token for token.
constexpr int64_t kPrefillChunkTokens = 128;

struct ModelConfig;

// The config's EOS ids as stop tokens.
std::vector<int32_t> eos_tokens(const ModelConfig& config);

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplerOptions sampling;
  std::vector<int32_t> stop_tokens;  // e.g. the config's EOS ids; none: never stop early
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated, excluding the prompt
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  bool truncated = false;  // stopped at max_position_embeddings
  double decode_tokens_per_second() const {
    return tokens.size() > 1 ? double(tokens.size() - 1) / decode_seconds : 0.0;
  }
};

// Calls on_token after each generated token.
GenerateResult generate(Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token = {});

}  // namespace moec
