// Stage 1 of `moec distill`, one layer at a time: a dense SwiGLU MLP of
// width W initialized from the teacher's experts, then fitted to reproduce
// the MoE block's output on calibration activations (least squares for the
// down projection, Adam on all three matrices, least squares again). Only
// one layer's activations and experts are in memory.
#pragma once
#include <cstdint>
#include <string_view>

#include "distill/student.h"
#include "model/moe.h"

namespace moec {
class CheckpointSource;
class ThreadPool;
}

namespace moec::distill {

// How the dense MLP starts.
enum class MlpInit {
  Neurons,  // the W expert neurons with the most routed activation mass (gate/up rows, down columns scaled by usage)
  Random,   // N(0, initializer_range), as Hugging Face initializes a fresh model
};
MlpInit parse_mlp_init(std::string_view name);
std::string_view mlp_init_name(MlpInit init);

struct DenseMlp {
  Parameter& gate;  // [W, H]
  Parameter& up;    // [W, H]
  Parameter& down;  // [H, W]
};

// h: the MoE block's normalized inputs [n, H]; routing: the teacher's choice
// for them. Experts are read (widened to f32) one at a time.
void init_mlp(ThreadPool& pool, const CheckpointSource& teacher, int layer, MlpInit init, const float* h, int64_t n,
              const Routing& routing, uint64_t seed, DenseMlp mlp);

struct MlpFitOptions {
  int64_t epochs = 4;
  int64_t batch_rows = 512;
  float lr = 1e-3f;
  uint64_t seed = 0;
};
struct MlpFitResult {
  double error_init = 0;    // ‖mlp(h) − y‖ / ‖y‖ as initialized
  double error_fitted = 0;  // the same after fitting
};
MlpFitResult fit_mlp(ThreadPool& pool, const float* h, const float* y, int64_t n, const MlpFitOptions& options,
                     DenseMlp mlp);

// out[n, H] = down(silu(gate·h) ⊙ up·h).
void mlp_forward(ThreadPool& pool, const float* h, int64_t n, const DenseMlp& mlp, float* out);

}  // namespace moec::distill
