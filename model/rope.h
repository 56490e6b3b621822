// Rotary position embeddings, rotate-half convention (as HF Llama/Mixtral):
// the pair (x[i], x[i + d/2]) is rotated by angle pos · θ^(-2i/d).
#pragma once
#include <cstdint>
#include <vector>

namespace moec {

class Rope {
 public:
  Rope(int64_t head_dim, double theta, int64_t max_positions);
  // Rotates `heads` vectors of head_dim floats (contiguous) at position pos.
  void apply(float* x, int64_t heads, int64_t pos) const;
  int64_t max_positions() const { return max_positions_; }

 private:
  int64_t half_;
  int64_t max_positions_;
  std::vector<float> cos_, sin_;  // [max_positions, half]
};

}  // namespace moec
