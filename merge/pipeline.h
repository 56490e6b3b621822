// `moec merge`: fewer experts per layer, as a real smaller checkpoint.
// Layer by layer, the calibration windows run through the model (through the
// already-merged layers, so each layer is planned on the inputs it will see).
// At each MoE layer: expert usage over all calibration tokens, and router
// logits and every expert's output on a shared sample of tokens; the method
// (methods.h) forms K groups; each group becomes one expert (usage-weighted
// average of its members, neurons aligned for merge-aligned and
// merge-cluster), blended toward its dominant member by 1, 0.5, 0.25 or 0,
// with one router row: the dominant member's row, the usage-weighted average
// of the members' rows, or a least-squares fit of log Σ exp(member logits)
// (the group's summed softmax mass). The blend and router that reproduce the
// layer's output on the sample best are kept; blend 0 with the dominant's row
// is exactly pruning, so merging is used only where it measurably pays. The output is a plain Mixtral with num_local_experts = K
// and top-k = min(top_k, K), written tensor by tensor.
// Memory: experts are loaded from the mapping when needed (one member
// matrix at a time beside the group being merged, one per thread) and
// never held for the layer; candidates keep only their outputs on the
// sample; the chosen experts are kept in the stored dtype, which is also
// what the calibration stream runs through to the next layer.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "merge/methods.h"

namespace moec {

class CheckpointSource;
class ThreadPool;

struct MergeOptions {
  MergeMethod method = MergeMethod::MergeAligned;
  int64_t experts = 0;  // K
  std::filesystem::path calib;
  int64_t calib_windows = 32;
  int64_t ctx = 256;
  int64_t sample_tokens = 4096;  // tokens whose expert outputs are compared
  uint64_t seed = 0;
  bool overwrite = false;
  std::string command_line;
  std::function<void(int64_t layer, int64_t layers)> progress;
};

struct MergeLayerReport {
  int64_t layer = 0;
  std::vector<std::vector<int64_t>> groups;  // members of each new expert
  std::string router;                        // "kept", "dominant", "average" or "summed-mass"
  double relative_error = 0;                 // ‖MoE − MoE_K‖ / ‖MoE‖ on the sample
  float blend = 1;                           // 1: members averaged; 0: dominant kept
};

struct MergeReport {
  std::string method;
  int64_t experts_before = 0, experts_after = 0;
  uint64_t params_before = 0, params_after = 0;
  uint64_t bytes_written = 0;
  std::vector<MergeLayerReport> layers;
  double seconds = 0;
  uint64_t peak_rss = 0;
};

// `out` ending in .h5 writes a moec container, anything else a HF folder.
MergeReport merge_model(const CheckpointSource& source, const std::filesystem::path& out, const MergeOptions& options,
                        ThreadPool& pool);

nlohmann::ordered_json to_json(const MergeReport& report);
std::string to_text(const MergeReport& report);

}  // namespace moec
