// `moec distill`: an MoE teacher into a dense Mistral student of MLP width W
// (Switch Transformers §5: the student starts from the teacher's non-expert
// weights and learns from a mix of the teacher's soft targets and the true
// next tokens).
//   init     the teacher's embeddings, attention, norms and lm_head; each
//            layer's dense MLP from the experts' neurons (layerwise.h);
//   stage 1  layer by layer, each MLP fitted to its MoE block's output on
//            calibration activations, propagated through the student's
//            already-fitted layers (one layer in memory);
//   stage 2  end to end: AdamW on (1 − α)·CE + α·T²·KL(teacher ‖ student)
//            over batches of calibration windows, teacher logits computed
//            on the fly (one batch of them in memory).
// Validation perplexity (held-out windows of the same text) after each.
// Output: a Hugging Face Mistral folder or a moec container (.h5), in the
// teacher's dtype, written only when complete.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "distill/layerwise.h"

namespace moec {
class CheckpointSource;
class ThreadPool;
}

namespace moec::distill {

struct DistillOptions {
  int64_t width = 0;                // the student's MLP width W
  std::filesystem::path calib;      // training text
  int64_t calib_windows = 1000;     // training windows (drawn at random, seeded)
  int64_t validation_windows = 16;  // held-out windows of the same text
  int64_t ctx = 256;
  MlpInit init = MlpInit::Neurons;
  // Stage 1.
  int64_t layer_windows = 256;  // windows whose activations fit each layer
  int64_t layer_epochs = 4;
  float layer_lr = 1e-3f;
  // Stage 2 (steps 0: skip it).
  int64_t steps = -1;  // -1: one pass over the training windows
  int64_t batch_windows = 8;
  float lr = 3e-4f;
  float alpha = 0.5f;        // weight of the teacher's soft targets
  float temperature = 1.0f;  // T
  int64_t curve_points = 8;  // validation perplexities measured during stage 2
  uint64_t seed = 0;
  bool overwrite = false;
  std::string command_line;
  std::function<void(const std::string& line)> progress;
};

struct CurvePoint {
  int64_t tokens = 0;  // training tokens seen in stage 2
  double ppl = 0;
  double seconds = 0;
};

struct StageReport {
  std::string name;  // "init", "layerwise", "end-to-end"
  double validation_ppl = 0;
  double seconds = 0;
  int64_t tokens = 0;  // calibration tokens it trained on
};

struct DistillReport {
  std::string init;
  int64_t width = 0;
  uint64_t teacher_params = 0, student_params = 0;
  double teacher_validation_ppl = 0;
  std::vector<StageReport> stages;
  std::vector<MlpFitResult> layers;  // stage 1 relative errors per layer
  std::vector<CurvePoint> curve;
  int64_t steps = 0;
  double tokens_per_second = 0;  // stage 2 training throughput
  uint64_t activation_bytes = 0, optimizer_bytes = 0, weight_bytes = 0;
  uint64_t bytes_written = 0;
  double seconds = 0;
  uint64_t peak_rss = 0;
};

// `out` ending in .h5 writes a moec container, anything else a HF folder.
DistillReport distill_model(const CheckpointSource& teacher, const std::filesystem::path& out,
                            const DistillOptions& options, ThreadPool& pool);

nlohmann::ordered_json to_json(const DistillReport& report);
std::string to_text(const DistillReport& report);

}  // namespace moec::distill
