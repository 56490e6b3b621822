#include "model/perplexity.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "io/error.h"
#include "io/process_stats.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/thread_pool.h"

namespace moec {
namespace {

constexpr int64_t kLogitRows = 256;  // logits are computed this many rows at a time

void check_options(const Model& model, size_t tokens, const PerplexityOptions& o) {
  if (o.ctx < 2) fail("--ctx must be at least 2 (one token of context and one scored), got {}", o.ctx);
  if (o.ctx > model.config().max_position_embeddings)
    fail("--ctx {} exceeds the model's max_position_embeddings {}", o.ctx, model.config().max_position_embeddings);
  if (tokens == 0) fail("the text is empty");
  if (int64_t(tokens) < o.ctx) fail("the text has {} tokens, fewer than one window of --ctx {}", tokens, o.ctx);
  if (o.max_windows < 0) fail("--max-windows must not be negative");
  if (o.batch_windows < 1) fail("batch of windows must be at least 1");
}

// Σ NLL of the targets of `windows` windows whose final hidden states are
// `hidden` [windows*ctx, H]: row i of a window predicts token i+1.
double window_nll(Model& model, const std::vector<float>& hidden, std::span<const int32_t> tokens, int64_t windows,
                  int64_t ctx, std::vector<float>& logits, std::vector<double>& row_nll) {
  const int64_t hd = model.config().hidden_size, vocab = model.config().vocab_size;
  double total = 0;
  for (int64_t w = 0; w < windows; ++w) {
    for (int64_t r0 = 0; r0 < ctx - 1; r0 += kLogitRows) {
      const int64_t rows = std::min(kLogitRows, ctx - 1 - r0), base = w * ctx + r0;
      logits.resize(size_t(rows * vocab));
      row_nll.resize(size_t(rows));
      model.logits(&hidden[base * hd], rows, logits.data());
      model.pool().parallel_for(size_t(rows), [&](size_t r, int) {
        const float* row = &logits[r * vocab];
        row_nll[r] = double(log_sum_exp(row, vocab)) - double(row[tokens[base + int64_t(r) + 1]]);
      });
      for (double v : row_nll) total += v;  // fixed order: thread-count independent
    }
  }
  return total;
}

}  // namespace

PerplexityResult evaluate_perplexity(Model& model, std::span<const int32_t> ids, const PerplexityOptions& o) {
  check_options(model, ids.size(), o);
  Stopwatch clock;
  PerplexityResult result;
  result.tokens_in_text = int64_t(ids.size());
  result.windows = int64_t(ids.size()) / o.ctx;
  if (o.max_windows > 0) result.windows = std::min(result.windows, o.max_windows);
  const int64_t layers = model.config().num_layers;
  if (o.routing) result.expert_load.assign(size_t(layers), std::vector<uint64_t>(size_t(model.config().num_experts)));

  std::vector<float> logits;
  std::vector<double> row_nll;
  double nll = 0;
  ForwardTrace trace;
  // One cache for all batches (rewritten by each before it is read: a window
  // starts at position 0), instead of allocating and zeroing one per batch.
  std::optional<KvCache> cache_storage;
  for (int64_t w0 = 0; w0 < result.windows; w0 += o.batch_windows) {
    const int64_t batch = std::min(o.batch_windows, result.windows - w0);
    auto tokens = ids.subspan(size_t(w0 * o.ctx), size_t(batch * o.ctx));
    if (!cache_storage || cache_storage->sequences != batch) cache_storage.emplace(model.make_cache(batch, o.ctx));
    KvCache& cache = *cache_storage;
    cache.length = 0;
    const auto& hidden = model.forward(tokens, o.ctx, cache, o.routing ? &trace : nullptr);
    nll += window_nll(model, hidden, tokens, batch, o.ctx, logits, row_nll);
    if (o.routing)
      for (int64_t l = 0; l < layers; ++l) {
        auto& load = trace.routing[l].expert_load;
        for (size_t e = 0; e < load.size(); ++e) result.expert_load[l][e] += load[e];
        load.assign(load.size(), 0);
      }
    if (o.progress) o.progress(w0 + batch, result.windows);
  }
  result.scored = result.windows * (o.ctx - 1);
  result.mean_nll = nll / double(result.scored);
  result.ppl = std::exp(result.mean_nll);
  result.seconds = clock.seconds();
  result.tokens_per_second = double(result.windows * o.ctx) / result.seconds;
  return result;
}

}  // namespace moec
