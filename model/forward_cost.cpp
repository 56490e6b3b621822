#include "model/forward_cost.h"

#include <algorithm>

namespace moec {

ForwardCost forward_cost(const ModelConfig& c, int64_t ctx) {
  ForwardCost cost;
  const double hidden = double(c.hidden_size), hd = double(c.head_dim);
  const double q = double(c.num_heads) * hd, kv = double(c.num_kv_heads) * hd;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    cost.linear_macs += hidden * (q + 2 * kv) + q * hidden;  // q, k, v; o
    if (c.moe_layer(l)) {
      cost.linear_macs += hidden * double(c.num_experts);                                   // router
      cost.linear_macs += double(c.top_k) * 3 * hidden * double(c.intermediate_size);       // experts run
      if (c.shared_expert_size > 0)  // the shared expert and its sigmoid gate's dot product
        cost.linear_macs += 3 * hidden * double(c.shared_expert_size) + hidden;
    } else {
      cost.linear_macs += 3 * hidden * double(c.dense_intermediate_size);
    }
    // Keys seen, summed over positions 1..ctx, then per position.
    const int64_t window = c.attention_window(l);
    double keys = 0;
    for (int64_t p = 1; p <= ctx; ++p) keys += double(window > 0 ? std::min(p, window) : p);
    if (ctx > 0) cost.attention_macs += 2 * q * keys / double(ctx);
  }
  cost.linear_macs += double(c.vocab_size) * hidden;  // lm_head (tied or not)
  return cost;
}

}  // namespace moec
