#include "model/generate.h"

#include <algorithm>

#include "io/error.h"
#include "io/process_stats.h"
#include "model/model.h"

namespace moec {

std::vector<int32_t> eos_tokens(const ModelConfig& config) {
  return std::vector<int32_t>(config.eos_token_ids.begin(), config.eos_token_ids.end());
}

GenerateResult generate(Model& model, std::span<const int32_t> prompt, const GenerateOptions& options,
                        const std::function<void(int32_t)>& on_token) {
  const int64_t max_positions = model.config().max_position_embeddings;
  if (prompt.empty()) fail("the prompt is empty");
  if (int64_t(prompt.size()) > max_positions)
    fail("the prompt has {} tokens, more than the model's max_position_embeddings {}", prompt.size(), max_positions);
  if (options.max_new_tokens < 0) fail("-n must not be negative");
  GenerateResult result;
  result.prompt_tokens = int64_t(prompt.size());
  const int64_t wanted = result.prompt_tokens + std::min(options.max_new_tokens, max_positions);
  const int64_t capacity = std::min<int64_t>(max_positions, wanted);
  result.truncated = capacity < wanted;
  if (options.max_new_tokens == 0) return result;

  Sampler sampler(options.sampling);
  KvCache cache = model.make_cache(1, capacity);
  std::vector<float> logits(size_t(model.config().vocab_size));
  const int64_t hd = model.config().hidden_size;

  Stopwatch prefill;
  for (int64_t done = 0, n = int64_t(prompt.size()); done < n;) {
    const int64_t length = std::min(kPrefillChunkTokens, n - done);
    const auto& hidden = model.forward(prompt.subspan(size_t(done), size_t(length)), length, cache);
    done += length;
    if (done == n) model.logits(&hidden[size_t(length - 1) * size_t(hd)], 1, logits.data());
  }
  result.prefill_seconds = prefill.seconds();

  Stopwatch decode;
  for (;;) {
    int32_t next = sampler.sample(logits);
    result.tokens.push_back(next);
    if (on_token) on_token(next);
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), next) != options.stop_tokens.end() ||
        int64_t(result.tokens.size()) >= options.max_new_tokens ||
        cache.length >= capacity)
      break;
    const auto& h = model.forward(std::span(&next, 1), 1, cache);
    model.logits(h.data(), 1, logits.data());
  }
  result.decode_seconds = decode.seconds();
  return result;
}

}  // namespace moec
