// moec's logical tensor names and, per architecture, the table that maps them
// to Hugging Face checkpoint names. Stages only ever use TensorKey; adding an
// architecture (Qwen2-MoE, OLMoE) means adding a table here, nothing else.
#pragma once
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/model_config.h"

namespace moec {

struct ModelConfig;

enum class TensorRole {
  Embed,      // [vocab, hidden]
  FinalNorm,  // [hidden]
  LmHead,     // [vocab, hidden]; absent when tied to Embed
  AttnNorm,   // [hidden]            per layer
  AttnQ,      // [heads*hd, hidden]
  AttnK,      // [kv*hd, hidden]
  AttnV,      // [kv*hd, hidden]
  AttnO,      // [hidden, heads*hd]
  MoeNorm,    // [hidden]
  Router,     // [experts, hidden]
  ExpertW1,   // [inter, hidden]     per layer and expert (gate)
  ExpertW2,   // [hidden, inter]     (down)
  ExpertW3,   // [inter, hidden]     (up)
  MlpGate,    // [inter, hidden]     per layer, dense models (gate_proj)
  MlpUp,      // [inter, hidden]     (up_proj)
  MlpDown,    // [hidden, inter]     (down_proj)
  AttnQNorm,  // [head_dim] per layer: RMSNorm of each query head (Qwen3-MoE), or
              // [heads*head_dim]: of the whole q projection (OLMoE)
  AttnKNorm,  // [head_dim] or [kv_heads*head_dim], the same for keys
  AttnQBias,  // [heads*hd] per layer (Qwen2-MoE: q/k/v projections have biases)
  AttnKBias,  // [kv*hd]
  AttnVBias,  // [kv*hd]
  SharedW1,   // [shared, hidden] per MoE layer: the shared expert every token runs (Qwen2-MoE), gate
  SharedW2,   // [hidden, shared]  (down)
  SharedW3,   // [shared, hidden]  (up)
  SharedGate, // [1, hidden]: sigmoid(gate·x) scales the shared expert's output
};

// Where a tensor's parameters are counted in summaries.
// SharedExperts: the expert every token of an MoE layer runs (Qwen2-MoE),
// with its gate; counted apart from the routed experts and from dense MLPs.
enum class Component { Embedding, Attention, Norms, Router, Experts, LmHead, Mlp, SharedExperts };
constexpr int kComponentCount = 8;
std::string_view component_name(Component component);
Component component_of(TensorRole role);

struct TensorKey {
  TensorRole role = TensorRole::Embed;
  int layer = -1;   // -1 when not per layer
  int expert = -1;  // -1 when not per expert
  auto operator<=>(const TensorKey&) const = default;
};

// "layers.0.experts.3.w1", "embed", "layers.2.attn.q", ...
std::string logical_name(const TensorKey& key);
std::optional<TensorKey> parse_logical_name(std::string_view name);

// One supported architecture: its tensor names and what its config.json
// means (the keys differ between families; defaults as Hugging Face's).
struct ArchitectureNames {
  std::string model_type;
  bool moe = true;  // sparse MoE blocks (router + experts); false: a dense SwiGLU MLP per layer
  // Hugging Face's defaults for keys a config.json may leave out.
  double default_rope_theta = 1e6;
  double default_rms_norm_eps = 1e-5;
  // MoE config keys: the expert count and the expert width.
  std::string experts_key = "num_local_experts";
  std::string expert_width_key = "intermediate_size";
  bool default_norm_topk_prob = true;  // top-k weights renormalized to sum 1
  QkNorm qk_norm = QkNorm::None;       // RMSNorm of q and k before RoPE
  bool attention_bias = false;          // q/k/v projections have biases (always, whatever the config says)
  // The shared expert's width key ("" : the family has none).
  std::string shared_expert_width_key;
  // Whether mlp_only_layers / decoder_sparse_step place dense MLP layers
  // (of width `intermediate_size`) among the MoE layers, as in Qwen's code.
  bool dense_layer_keys = false;
  // The config class's defaults for a missing num_key_value_heads (0: the
  // number of attention heads) and num_experts_per_tok.
  int64_t default_kv_heads = 0;
  int64_t default_top_k = 2;
  // How the family reads `sliding_window` (Hugging Face's code):
  // EveryLayer: Mistral/Mixtral; QwenEveryLayer (Qwen3-MoE): every layer,
  // only with use_sliding_window; QwenFromMaxLayers (Qwen2-MoE, the Qwen2
  // family's rule): only with use_sliding_window, on the layers layer_types
  // calls "sliding_attention", else on those from max_window_layers on;
  // None: Llama and OLMoE ignore the key.
  enum class Window { EveryLayer, QwenEveryLayer, QwenFromMaxLayers, None };
  Window window = Window::EveryLayer;
  // The config class's sliding_window when config.json leaves the key out
  // (0: none): MistralConfig's and the Qwen configs' 4096, MixtralConfig's None.
  int64_t default_sliding_window = 0;
  // HF name patterns with {L} (layer) and {E} (expert) placeholders.
  std::vector<std::pair<TensorRole, std::string>> patterns;
};

const ArchitectureNames* find_architecture(std::string_view model_type);
std::string supported_architectures();  // "mixtral, mistral, llama"
std::string hf_name(const ArchitectureNames& arch, const TensorKey& key);
std::optional<TensorKey> parse_hf_name(const ArchitectureNames& arch, std::string_view name);

// Every tensor a model with this config has, in a stable order (embedding,
// then layer by layer with experts in order (or the dense MLP), then final
// norm and lm_head),
// and the shape each must have.
std::vector<TensorKey> expected_tensors(const ModelConfig& config);
std::vector<int64_t> expected_shape(const ModelConfig& config, const TensorKey& key);

}  // namespace moec
