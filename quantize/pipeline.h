// `moec quantize`: layer-sequential quantization of every expert (GPTQ or
// RTN), as GPTQ/QMoE do it. The calibration windows run through the model;
// at each MoE layer every expert's inputs (the tokens the router sends it)
// give its Hessians — w1 and w3 share the block input, w2 sees its real
// input silu(Q1·x) ⊙ Q3·x through the already-quantized w1/w3 — the layer's
// experts are quantized, and the windows continue through the quantized
// layer to give the next layer its inputs. Attention, embeddings, router and
// norms keep their stored precision (unless --non-expert). Memory: per
// expert quantized at once (one per thread), one matrix in f32 and one f32
// Hessian factored in place (quant/gptq.h); the layer's quantized codes; the
// calibration activations. The source stays memory-mapped, each layer's
// pages released from the resident set once it is written, and the
// container is written tensor by tensor.
// A dense model (mistral / llama, e.g. a distilled student) is quantized the
// same way: each layer's MLP is one expert that every token reaches.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/format.h"
#include "quant/gptq.h"

namespace moec {

class CheckpointSource;
class ThreadPool;

// Tensors other than the MLPs' (--non-expert), by kind: attention
// projections, the embedding (with a tied lm_head), an untied lm_head. Each is
// kept at its stored precision (nullopt) or takes an affine k-bit code
// (q<bits>g<group>) — attention and an untied lm_head by GPTQ on the
// calibration stream (with act-order and dampening 0.01, whatever the
// experts use), the embedding by round-to-nearest. Routers, norms and biases
// always stay as stored.
struct NonExpertPlan {
  std::optional<QuantFormat> attention, embedding, lm_head;
  bool lm_head_given = false;  // head= was written (a tied lm_head follows embed=, and must not differ)
  // The plan of a model whose lm_head is its embedding (tied): head = embed.
  NonExpertPlan tied() const;
  // "keep", one format when every kind has it ("q3g128"), else each kind:
  // "attn=q2g32,embed=q3g128,head=q4g128".
  std::string spec() const;
};
// A comma-separated list: a value alone (keep, q8, q4, q3, q2 — groups of
// 128 — or q<bits>g<group>) sets every kind; attn=, embed=, head= set one,
// later items overriding earlier ones: "q3,attn=q2g32,head=q4".
NonExpertPlan parse_non_expert(std::string_view spec);

struct QuantizeOptions {
  QuantFormat format;
  bool gptq = true;  // false: round-to-nearest
  GptqOptions gptq_options;
  std::filesystem::path calib;  // calibration text
  int64_t calib_windows = 128;
  int64_t ctx = 256;
  uint64_t seed = 0;
  bool overwrite = false;
  // Shared experts (Qwen2-MoE) are quantized like routed experts, with a
  // Hessian from every token, unless kept at their stored precision.
  bool keep_shared = false;
  // sub1 with rate-aware GPTQ (quant/gptq.h): a fixed λ
  // (gptq_options.rate.lambda), or, when target_bits > 0, one λ for the
  // model, searched on layer 0 and steered on later layers, so that the
  // experts take about target_bits per weight (quantize/rate_control.h).
  double target_bits = 0;
  NonExpertPlan non_expert;
  // Quantize layer 0 only, write nothing, and project the whole model's
  // time, peak memory and file size from it (QuantizeReport::projection).
  bool dry_run = false;
  std::string command_line;
  // After each expert: layer, expert, experts per layer.
  std::function<void(int64_t layer, int64_t expert, int64_t experts)> progress;
};

struct LayerReport {
  int64_t layer = 0;
  double relative_error = 0;  // ‖MoE(x) − MoE_Q(x)‖ / ‖MoE(x)‖ over the first 8 calibration windows
  std::vector<int64_t> tokens_per_expert;  // routed experts (a shared expert sees every token)
  std::vector<std::string> fallbacks;  // "expert 3 w2: no calibration tokens (RTN)"
  double seconds = 0;
  // Where the time went (wall seconds; hessian and gptq are thread seconds
  // summed over the experts quantized in parallel) and the process's peak
  // resident memory when the layer was done.
  double attention_seconds = 0, forward_seconds = 0, experts_seconds = 0, hessian_seconds = 0, gptq_seconds = 0,
         write_seconds = 0;
  uint64_t peak_rss = 0;
  // Rate-aware sub1: the λ kept, GPTQ passes over the layer's experts, and
  // the experts' expected stored bits per weight (rate_control.h).
  double rate_lambda = 0;
  int passes = 1;
  double expected_bits = 0;
  std::vector<std::pair<double, double>> trials;  // --target-bits: (λ, expected bits) of every pass
  double zero_fraction = 0;  // ternary: share of zero codes in this layer's experts
};

// --dry-run: the whole model projected from its first layer on this
// machine. Layers are alike in shape, so time scales with their number and
// peak memory does not (every layer's pages are released when it is done).
struct Projection {
  int64_t layers_measured = 0, layers_total = 0;
  double setup_seconds = 0;  // tokenizing, checksums, embedding: paid once
  double seconds_per_layer = 0, seconds = 0;
  // The untied lm_head's GPTQ (--non-expert with GPTQ), paid once: run in
  // the dry run too, on the stream after the layers it ran (its cost does
  // not depend on which), so its time and memory are measured, not guessed.
  double lm_head_seconds = 0;
  uint64_t peak_rss = 0;
  uint64_t file_bytes = 0;  // experts at layer 0's bits, other tensors as they will be stored
};

struct QuantizeReport {
  std::string format;
  std::string method;
  int64_t calib_tokens = 0;
  std::vector<LayerReport> layers;
  uint64_t expert_params = 0, expert_bytes = 0;  // every quantized MLP matrix (routed, shared, dense layers)
  std::string non_expert = "keep";
  uint64_t non_expert_params = 0, non_expert_bytes = 0;  // the quantized non-expert tensors
  uint64_t total_params = 0, file_bytes = 0;
  double zero_fraction = 0;  // ternary: share of zero codes
  double seconds = 0;
  uint64_t peak_rss = 0;
  std::optional<Projection> projection;  // --dry-run
  double expert_bits_per_weight() const { return 8.0 * double(expert_bytes) / double(expert_params); }
  double file_bits_per_weight() const { return 8.0 * double(file_bytes) / double(total_params); }
  double non_expert_bits_per_weight() const {
    return non_expert_params ? 8.0 * double(non_expert_bytes) / double(non_expert_params) : 0.0;
  }
};

QuantizeReport quantize_model(const CheckpointSource& source, const std::filesystem::path& out,
                              const QuantizeOptions& options, ThreadPool& pool);

nlohmann::ordered_json to_json(const QuantizeReport& report);
std::string to_text(const QuantizeReport& report);

}  // namespace moec
