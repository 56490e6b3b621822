// The typed model configuration every stage works from, parsed from a
// Hugging Face config.json. Only architectures with a tensor-name table
// (tensor_names.h) are accepted.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace moec {

// Where an architecture normalizes queries and keys before RoPE.
enum class QkNorm { None, PerHead, Whole };

struct ModelConfig {
  std::string model_type;  // "mixtral", or a dense "mistral" / "llama"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // width of one expert (dense models: of the MLP)
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t num_experts = 0;  // 0: a dense model (one MLP per layer)
  int64_t top_k = 0;
  bool moe() const { return num_experts > 0; }
  // Layer l runs a sparse MoE block (else a dense SwiGLU MLP of width
  // dense_intermediate_size).
  bool moe_layer(int64_t l) const { return moe() && !(l < int64_t(dense_layers.size()) && dense_layers[size_t(l)]); }
  int64_t dense_intermediate_size = 0;  // width of dense MLP layers (dense models: = intermediate_size)
  std::vector<bool> dense_layers;       // MoE models: the layers that are dense MLPs instead (Qwen's mlp_only_layers)
  int64_t shared_expert_size = 0;       // width of the shared expert in every MoE layer (0: none)
  bool attention_bias = false;          // q/k/v biases
  bool norm_topk_prob = true;  // the k routing weights renormalized to sum 1
  QkNorm qk_norm = QkNorm::None;  // RMSNorm of q and k before RoPE (Qwen3-MoE per head, OLMoE whole)
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 0;
  double rope_theta = 0;
  bool tie_word_embeddings = false;
  std::optional<int64_t> sliding_window;
  // Layers whose attention keeps to the window (Qwen's max_window_layers /
  // layer_types); empty: every layer.
  std::vector<bool> window_layers;
  // Layer l's window for attention (0: none).
  int64_t attention_window(int64_t l) const {
    if (!sliding_window) return 0;
    return window_layers.empty() || window_layers[size_t(l)] ? *sliding_window : 0;
  }
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;  // the first of eos_token_ids
  // Every id that ends a generation: config.json's eos_token_id may be a
  // list (Llama 3.1 lists three).
  std::vector<int64_t> eos_token_ids{2};
};

// `source` names where the JSON came from, for error messages.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source);
// Reads and parses a config.json file.
nlohmann::json read_json_file(const std::filesystem::path& path);

}  // namespace moec
