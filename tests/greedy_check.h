// Greedy generation checked against the model itself: each generated token
// must be the argmax of a fresh forward pass over the whole sequence so far
// (so the KV cache, positions and every layer agree with a cache-free run).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace moec::test {

// The index of the first generated token that is not that argmax, or -1.
inline int64_t first_greedy_mismatch(Model& model, const std::vector<int32_t>& prompt,
                                     const std::vector<int32_t>& generated) {
  std::vector<int32_t> sequence = prompt;
  const int64_t V = model.config().vocab_size, H = model.config().hidden_size;
  std::vector<float> logits(static_cast<size_t>(V));
  for (size_t i = 0; i < generated.size(); ++i) {
    KvCache cache = model.make_cache(1, int64_t(sequence.size()));
    const auto& hidden = model.forward(sequence, int64_t(sequence.size()), cache);
    model.logits(&hidden[(sequence.size() - 1) * size_t(H)], 1, logits.data());
    if (std::max_element(logits.begin(), logits.end()) - logits.begin() != generated[i]) return int64_t(i);
    sequence.push_back(generated[i]);
  }
  return -1;
}

}  // namespace moec::test
