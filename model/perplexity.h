// Perplexity under moec's protocol (README): the text tokenized once with no
// BOS; non-overlapping windows of ctx tokens, the last partial window
// dropped; each window an independent sequence at positions 0..ctx-1;
// positions 1..ctx-1 scored; ppl = exp(mean NLL over scored positions).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace moec {

class Model;

struct PerplexityOptions {
  int64_t ctx = 256;
  int64_t max_windows = 0;    // 0: every full window
  int64_t batch_windows = 8;  // windows run together (bigger expert GEMMs)
  bool routing = false;       // collect per-layer expert load
  std::function<void(int64_t done, int64_t total)> progress;
};

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;
  int64_t tokens_in_text = 0;
  int64_t windows = 0;
  int64_t scored = 0;
  double seconds = 0;
  double tokens_per_second = 0;  // tokens run through the model (windows × ctx)
  std::vector<std::vector<uint64_t>> expert_load;  // [layer][expert] token counts
};

PerplexityResult evaluate_perplexity(Model& model, std::span<const int32_t> ids, const PerplexityOptions& options);

}  // namespace moec
