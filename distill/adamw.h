// AdamW (Loshchilov & Hutter) over a student's f32 master weights, with a
// linear warmup then cosine decay of the learning rate, and clipping of the
// global gradient norm (as torch.nn.utils.clip_grad_norm_). Decoupled weight
// decay applies to matrices only, not to norm vectors.
#pragma once
#include <cstdint>
#include <vector>

#include "distill/student.h"

namespace moec::distill {

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  float weight_decay = 0.0f;
  float clip_norm = 1.0f;   // 0: no clipping
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;  // the cosine reaches min_lr_ratio·lr here
  float min_lr_ratio = 0.1f;
};

class AdamW {
 public:
  // Optimizes `params` (pointers stay valid: the student's vector is fixed).
  AdamW(std::vector<Parameter*> params, const AdamWOptions& options);
  // The learning rate of step `step` (0-based).
  float learning_rate(int64_t step) const;
  // Clips, updates every parameter from its grad, zeroes the grads.
  // Returns the gradient norm before clipping.
  double step();
  int64_t steps_taken() const { return t_; }
  uint64_t state_bytes() const;

 private:
  std::vector<Parameter*> params_;
  AdamWOptions o_;
  std::vector<std::vector<float>> m_, v_;
  int64_t t_ = 0;
};

}  // namespace moec::distill
