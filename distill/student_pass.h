// One batch of windows through the student (forward, keeping every layer's
// activations), then, when asked, back through it (gradients accumulated into
// the student's parameters). Memory: about (4·H + 2·q + 2·kv + 3·W +
// heads·ctx) floats per token per layer plus two [tokens, vocab] logits
// buffers, so the batch size bounds it.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "distill/layers.h"
#include "distill/student.h"

namespace moec {
class ThreadPool;
}

namespace moec::distill {

class StudentPass {
 public:
  StudentPass(Student& student, ThreadPool& pool, int64_t windows, int64_t ctx);

  // ids: 1 to `windows` windows of ctx tokens (window-major), each an independent
  // sequence at positions 0..ctx-1; row t of a window is labelled with token
  // t+1 (the last row with none). teacher: the teacher's logits for the same
  // rows, or null. The loss is the mean over labelled rows; with `backward`
  // its gradient is added to the parameters' grad.
  LossSums run(std::span<const int32_t> ids, const float* teacher, const LossWeights& weights, bool backward);
  // Bytes of activations this pass keeps.
  uint64_t activation_bytes() const;

 private:
  struct LayerActivations {
    std::vector<float> x_in, norm1, rstd1, q, k, v, probs, att, x_mid, norm2, rstd2, gate, up, act;
  };
  void forward_layer(int64_t l, std::vector<float>& x);
  void backward_layer(int64_t l, std::vector<float>& dx);

  Student& student_;
  ThreadPool& pool_;
  int64_t windows_, ctx_, rows_;
  AttentionDims dims_;
  RotaryTable rope_;
  std::vector<int32_t> positions_, labels_;
  std::vector<LayerActivations> layers_;
  std::vector<float> x_, final_norm_, final_rstd_, logits_;
  // Backward scratch.
  std::vector<float> dx_, dnorm_, dtmp_, datt_, dq_, dk_, dv_, dact_, dgate_, dup_;
};

}  // namespace moec::distill
