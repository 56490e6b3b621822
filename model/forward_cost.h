// What one token costs a forward pass, in multiply-adds, from the config
// alone. `eval` and `bench runtime` multiply their tokens/s by it (GFLOP/s),
// so models of different shapes can be compared: tokens/s per active
// parameter cannot do that fairly, because an untied model's input
// embedding counts as active parameters but costs a row lookup, and the
// attention's cost grows with the window, not with any parameter count.
#pragma once
#include <cstdint>

#include "io/model_config.h"

namespace moec {

struct ForwardCost {
  // Products with weights: q/k/v/o, the router, the top_k experts run, the
  // shared expert and its gate, dense MLPs, lm_head (biases, norms, RoPE
  // and the embedding lookup are left out: O(hidden) each). lm_head counts
  // for every token run, though eval scores ctx − 1 of a window's ctx.
  double linear_macs = 0;
  // q·kᵀ and scores·v, averaged over the positions 1..ctx of a window (each
  // sees min(position, sliding window) keys).
  double attention_macs = 0;
  double macs() const { return linear_macs + attention_macs; }
  double flops() const { return 2.0 * macs(); }
};

ForwardCost forward_cost(const ModelConfig& config, int64_t ctx);

}  // namespace moec
