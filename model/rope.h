// Rotary position embeddings, rotate-half convention (as HF Llama/Mixtral):
// the pair (x[i], x[i + d/2]) is rotated by angle pos · θ^(-2i/d).
#pragma once
#include <cstdint>
#include <vector>

namespace moec {

class Rope {
 public:
  Rope(int64_t head_dim, double theta);
  // Makes positions [0, positions) available (tables grow on demand, so a
  // config's max_position_embeddings costs nothing until used).
  void reserve(int64_t positions);
  // Rotates `heads` vectors of head_dim floats (contiguous) at position pos.
  void apply(float* x, int64_t heads, int64_t pos) const;

 private:
  int64_t half_;
  double theta_;
  int64_t positions_ = 0;
  std::vector<float> cos_, sin_;  // [max_positions, half]
};

}  // namespace moec
