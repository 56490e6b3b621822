#include "io/tensor_names.h"

#include <array>
#include <charconv>

#include "io/error.h"
#include "io/model_config.h"

namespace moec {
namespace {

enum class Scope { Model, Layer, Expert };

struct RoleRow {
  TensorRole role;
  Scope scope;
  std::string_view logical;  // suffix after "layers.L." / "layers.L.experts.E."
  Component component;
};

constexpr std::array<RoleRow, 25> kRoles{{
    {TensorRole::Embed, Scope::Model, "embed", Component::Embedding},
    {TensorRole::FinalNorm, Scope::Model, "norm", Component::Norms},
    {TensorRole::LmHead, Scope::Model, "lm_head", Component::LmHead},
    {TensorRole::AttnNorm, Scope::Layer, "attn_norm", Component::Norms},
    {TensorRole::AttnQ, Scope::Layer, "attn.q", Component::Attention},
    {TensorRole::AttnK, Scope::Layer, "attn.k", Component::Attention},
    {TensorRole::AttnV, Scope::Layer, "attn.v", Component::Attention},
    {TensorRole::AttnO, Scope::Layer, "attn.o", Component::Attention},
    {TensorRole::MoeNorm, Scope::Layer, "moe_norm", Component::Norms},
    {TensorRole::Router, Scope::Layer, "router", Component::Router},
    {TensorRole::ExpertW1, Scope::Expert, "w1", Component::Experts},
    {TensorRole::ExpertW2, Scope::Expert, "w2", Component::Experts},
    {TensorRole::ExpertW3, Scope::Expert, "w3", Component::Experts},
    {TensorRole::MlpGate, Scope::Layer, "mlp.gate", Component::Mlp},
    {TensorRole::MlpUp, Scope::Layer, "mlp.up", Component::Mlp},
    {TensorRole::MlpDown, Scope::Layer, "mlp.down", Component::Mlp},
    {TensorRole::AttnQNorm, Scope::Layer, "attn.q_norm", Component::Norms},
    {TensorRole::AttnKNorm, Scope::Layer, "attn.k_norm", Component::Norms},
    {TensorRole::AttnQBias, Scope::Layer, "attn.q_bias", Component::Attention},
    {TensorRole::AttnKBias, Scope::Layer, "attn.k_bias", Component::Attention},
    {TensorRole::AttnVBias, Scope::Layer, "attn.v_bias", Component::Attention},
    {TensorRole::SharedW1, Scope::Layer, "shared.w1", Component::SharedExperts},
    {TensorRole::SharedW2, Scope::Layer, "shared.w2", Component::SharedExperts},
    {TensorRole::SharedW3, Scope::Layer, "shared.w3", Component::SharedExperts},
    {TensorRole::SharedGate, Scope::Layer, "shared.gate", Component::SharedExperts},
}};

const RoleRow& role_row(TensorRole role) { return kRoles[static_cast<size_t>(role)]; }

using Patterns = std::vector<std::pair<TensorRole, std::string>>;

// The names every supported family shares (Llama's layout): embedding,
// attention, the two norms per layer, final norm and lm_head; `extra` adds
// the family's MLP or MoE tensors.
Patterns llama_layout(Patterns extra) {
  Patterns p{
      {TensorRole::Embed, "model.embed_tokens.weight"},
      {TensorRole::FinalNorm, "model.norm.weight"},
      {TensorRole::LmHead, "lm_head.weight"},
      {TensorRole::AttnNorm, "model.layers.{L}.input_layernorm.weight"},
      {TensorRole::AttnQ, "model.layers.{L}.self_attn.q_proj.weight"},
      {TensorRole::AttnK, "model.layers.{L}.self_attn.k_proj.weight"},
      {TensorRole::AttnV, "model.layers.{L}.self_attn.v_proj.weight"},
      {TensorRole::AttnO, "model.layers.{L}.self_attn.o_proj.weight"},
      {TensorRole::MoeNorm, "model.layers.{L}.post_attention_layernorm.weight"},
  };
  p.insert(p.end(), extra.begin(), extra.end());
  return p;
}

// The Qwen MoE families' layers: router `mlp.gate`, experts under
// `mlp.experts.{E}`, and a dense layer's MLP directly under `mlp.`.
Patterns qwen_moe_layout(Patterns extra) {
  const std::pair<TensorRole, std::string> mlp[] = {
      {TensorRole::Router, "model.layers.{L}.mlp.gate.weight"},
      {TensorRole::ExpertW1, "model.layers.{L}.mlp.experts.{E}.gate_proj.weight"},
      {TensorRole::ExpertW2, "model.layers.{L}.mlp.experts.{E}.down_proj.weight"},
      {TensorRole::ExpertW3, "model.layers.{L}.mlp.experts.{E}.up_proj.weight"},
      {TensorRole::MlpGate, "model.layers.{L}.mlp.gate_proj.weight"},
      {TensorRole::MlpUp, "model.layers.{L}.mlp.up_proj.weight"},
      {TensorRole::MlpDown, "model.layers.{L}.mlp.down_proj.weight"},
  };
  extra.insert(extra.end(), std::begin(mlp), std::end(mlp));
  return llama_layout(std::move(extra));
}

// Qwen3-MoE: Mixtral's layout under other names, per-head q/k norms,
// `num_experts` experts of width `moe_intermediate_size`, norm_topk_prob
// false unless the config says so (Hugging Face's Qwen3MoeConfig default).
ArchitectureNames qwen3_moe() {
  ArchitectureNames a;
  a.model_type = "qwen3_moe";
  a.default_rope_theta = 1e4;
  a.default_rms_norm_eps = 1e-6;
  a.experts_key = "num_experts";
  a.expert_width_key = "moe_intermediate_size";
  a.default_norm_topk_prob = false;
  a.qk_norm = QkNorm::PerHead;
  a.dense_layer_keys = true;
  a.default_kv_heads = 4;  // Qwen3MoeConfig's defaults
  a.default_top_k = 8;
  a.window = ArchitectureNames::Window::QwenEveryLayer;
  a.default_sliding_window = 4096;
  a.patterns = qwen_moe_layout({
      {TensorRole::AttnQNorm, "model.layers.{L}.self_attn.q_norm.weight"},
      {TensorRole::AttnKNorm, "model.layers.{L}.self_attn.k_norm.weight"},
  });
  return a;
}

// Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): q/k/v biases, a shared expert
// with a sigmoid gate beside the routed ones, dense MLP layers where
// mlp_only_layers / decoder_sparse_step say, norm_topk_prob false by default.
ArchitectureNames qwen2_moe() {
  ArchitectureNames a;
  a.model_type = "qwen2_moe";
  a.default_rope_theta = 1e4;
  a.default_rms_norm_eps = 1e-6;
  a.experts_key = "num_experts";
  a.expert_width_key = "moe_intermediate_size";
  a.default_norm_topk_prob = false;
  a.attention_bias = true;
  a.shared_expert_width_key = "shared_expert_intermediate_size";
  a.dense_layer_keys = true;
  a.default_kv_heads = 16;  // Qwen2MoeConfig's defaults
  a.default_top_k = 4;
  a.window = ArchitectureNames::Window::QwenFromMaxLayers;
  a.default_sliding_window = 4096;
  a.patterns = qwen_moe_layout({
      {TensorRole::AttnQBias, "model.layers.{L}.self_attn.q_proj.bias"},
      {TensorRole::AttnKBias, "model.layers.{L}.self_attn.k_proj.bias"},
      {TensorRole::AttnVBias, "model.layers.{L}.self_attn.v_proj.bias"},
      {TensorRole::SharedW1, "model.layers.{L}.mlp.shared_expert.gate_proj.weight"},
      {TensorRole::SharedW2, "model.layers.{L}.mlp.shared_expert.down_proj.weight"},
      {TensorRole::SharedW3, "model.layers.{L}.mlp.shared_expert.up_proj.weight"},
      {TensorRole::SharedGate, "model.layers.{L}.mlp.shared_expert_gate.weight"},
  });
  return a;
}

// OLMoE: Qwen3-MoE's names, q/k norms over the whole projections, the
// expert width in `intermediate_size`, norm_topk_prob false by default.
ArchitectureNames olmoe() {
  ArchitectureNames a = qwen3_moe();
  a.model_type = "olmoe";
  a.default_rope_theta = 1e4;
  a.default_rms_norm_eps = 1e-5;
  a.expert_width_key = "intermediate_size";
  a.qk_norm = QkNorm::Whole;
  a.dense_layer_keys = false;  // OLMoE's code has no dense layers
  a.default_kv_heads = 0;      // OlmoeConfig: the number of heads
  a.default_top_k = 8;
  a.window = ArchitectureNames::Window::None;  // OLMoE's attention has no window
  a.default_sliding_window = 0;
  return a;
}

ArchitectureNames mixtral() {
  ArchitectureNames a;
  a.model_type = "mixtral";
  a.default_kv_heads = 8;  // MixtralConfig's defaults
  a.default_top_k = 2;
  a.patterns = llama_layout({
      {TensorRole::Router, "model.layers.{L}.block_sparse_moe.gate.weight"},
      {TensorRole::ExpertW1, "model.layers.{L}.block_sparse_moe.experts.{E}.w1.weight"},
      {TensorRole::ExpertW2, "model.layers.{L}.block_sparse_moe.experts.{E}.w2.weight"},
      {TensorRole::ExpertW3, "model.layers.{L}.block_sparse_moe.experts.{E}.w3.weight"},
  });
  return a;
}

// Mistral and Llama dense decoders: a SwiGLU MLP per layer (HF defaults:
// rope_theta 10000, rms_norm_eps 1e-6).
ArchitectureNames dense(const char* model_type) {
  ArchitectureNames a;
  a.model_type = model_type;
  a.moe = false;
  a.default_rope_theta = 1e4;
  a.default_rms_norm_eps = 1e-6;
  const bool mistral = std::string_view(model_type) == "mistral";
  a.default_kv_heads = mistral ? 8 : 0;  // MistralConfig 8; LlamaConfig: the number of heads
  a.window = mistral ? ArchitectureNames::Window::EveryLayer : ArchitectureNames::Window::None;
  a.default_sliding_window = mistral ? 4096 : 0;  // MistralConfig's default
  a.patterns = llama_layout({
      {TensorRole::MlpGate, "model.layers.{L}.mlp.gate_proj.weight"},
      {TensorRole::MlpUp, "model.layers.{L}.mlp.up_proj.weight"},
      {TensorRole::MlpDown, "model.layers.{L}.mlp.down_proj.weight"},
  });
  return a;
}

const std::vector<ArchitectureNames>& architectures() {
  static const std::vector<ArchitectureNames> tables{mixtral(),         qwen2_moe(),      qwen3_moe(), olmoe(),
                                                      dense("mistral"), dense("llama")};
  return tables;
}

// Reads a non-negative decimal from the front of `text`; no sign, no leading
// zeros (so "01" never aliases "1").
std::optional<int> take_index(std::string_view& text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  size_t used = static_cast<size_t>(end - text.data());
  if (ec != std::errc() || used == 0 || value < 0 || (used > 1 && text[0] == '0')) return std::nullopt;
  text.remove_prefix(used);
  return value;
}

// Matches `name` against a pattern with {L}/{E} placeholders.
std::optional<TensorKey> match(std::string_view pattern, std::string_view name, TensorRole role) {
  TensorKey key{role, -1, -1};
  while (!pattern.empty()) {
    if (pattern.starts_with("{L}") || pattern.starts_with("{E}")) {
      auto index = take_index(name);
      if (!index) return std::nullopt;
      (pattern[1] == 'L' ? key.layer : key.expert) = *index;
      pattern.remove_prefix(3);
    } else {
      if (name.empty() || name.front() != pattern.front()) return std::nullopt;
      name.remove_prefix(1);
      pattern.remove_prefix(1);
    }
  }
  if (!name.empty()) return std::nullopt;
  return key;
}

std::string substitute(std::string pattern, const TensorKey& key) {
  for (auto [tag, value] : {std::pair{"{L}", key.layer}, std::pair{"{E}", key.expert}}) {
    auto pos = pattern.find(tag);
    if (pos != std::string::npos) pattern.replace(pos, 3, std::to_string(value));
  }
  return pattern;
}

}  // namespace

std::string_view component_name(Component component) {
  static constexpr std::array<std::string_view, kComponentCount> names{
      "embedding", "attention", "norms", "router", "experts", "lm_head", "mlp", "shared_experts"};
  return names[static_cast<size_t>(component)];
}

Component component_of(TensorRole role) { return role_row(role).component; }

std::string logical_name(const TensorKey& key) {
  const RoleRow& row = role_row(key.role);
  switch (row.scope) {
    case Scope::Model: return std::string(row.logical);
    case Scope::Layer: return fmt::format("layers.{}.{}", key.layer, row.logical);
    case Scope::Expert: return fmt::format("layers.{}.experts.{}.{}", key.layer, key.expert, row.logical);
  }
  return {};
}

std::optional<TensorKey> parse_logical_name(std::string_view name) {
  for (const RoleRow& row : kRoles) {
    std::string pattern(row.logical);
    if (row.scope == Scope::Layer) pattern = "layers.{L}." + pattern;
    if (row.scope == Scope::Expert) pattern = "layers.{L}.experts.{E}." + pattern;
    if (auto key = match(pattern, name, row.role)) return key;
  }
  return std::nullopt;
}

const ArchitectureNames* find_architecture(std::string_view model_type) {
  for (const auto& arch : architectures())
    if (arch.model_type == model_type) return &arch;
  return nullptr;
}

std::string supported_architectures() {
  std::string names;
  for (const auto& arch : architectures()) names += (names.empty() ? "" : ", ") + arch.model_type;
  return names;
}

std::string hf_name(const ArchitectureNames& arch, const TensorKey& key) {
  for (const auto& [role, pattern] : arch.patterns)
    if (role == key.role) return substitute(pattern, key);
  fail("architecture {} has no tensor for role '{}'", arch.model_type, logical_name(key));
}

std::optional<TensorKey> parse_hf_name(const ArchitectureNames& arch, std::string_view name) {
  for (const auto& [role, pattern] : arch.patterns)
    if (auto key = match(pattern, name, role)) return key;
  return std::nullopt;
}

std::vector<TensorKey> expected_tensors(const ModelConfig& c) {
  std::vector<TensorKey> keys{{TensorRole::Embed}};
  for (int l = 0; l < c.num_layers; ++l) {
    for (auto role : {TensorRole::AttnNorm, TensorRole::AttnQ, TensorRole::AttnK, TensorRole::AttnV,
                      TensorRole::AttnO, TensorRole::MoeNorm})
      keys.push_back({role, l, -1});
    if (c.qk_norm != QkNorm::None)
      for (auto role : {TensorRole::AttnQNorm, TensorRole::AttnKNorm}) keys.push_back({role, l, -1});
    if (c.attention_bias)
      for (auto role : {TensorRole::AttnQBias, TensorRole::AttnKBias, TensorRole::AttnVBias}) keys.push_back({role, l, -1});
    if (!c.moe_layer(l)) {  // a dense model, or a dense layer among MoE layers
      for (auto role : {TensorRole::MlpGate, TensorRole::MlpUp, TensorRole::MlpDown}) keys.push_back({role, l, -1});
      continue;
    }
    keys.push_back({TensorRole::Router, l, -1});
    for (int e = 0; e < c.num_experts; ++e)
      for (auto role : {TensorRole::ExpertW1, TensorRole::ExpertW2, TensorRole::ExpertW3})
        keys.push_back({role, l, e});
    if (c.shared_expert_size > 0)
      for (auto role : {TensorRole::SharedGate, TensorRole::SharedW1, TensorRole::SharedW2, TensorRole::SharedW3})
        keys.push_back({role, l, -1});
  }
  keys.push_back({TensorRole::FinalNorm});
  if (!c.tie_word_embeddings) keys.push_back({TensorRole::LmHead});
  return keys;
}

std::vector<int64_t> expected_shape(const ModelConfig& c, const TensorKey& key) {
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  switch (key.role) {
    case TensorRole::Embed:
    case TensorRole::LmHead: return {c.vocab_size, h};
    case TensorRole::FinalNorm:
    case TensorRole::AttnNorm:
    case TensorRole::MoeNorm: return {h};
    case TensorRole::AttnQNorm: return {c.qk_norm == QkNorm::Whole ? q : c.head_dim};
    case TensorRole::AttnKNorm: return {c.qk_norm == QkNorm::Whole ? kv : c.head_dim};
    case TensorRole::AttnQ: return {q, h};
    case TensorRole::AttnK:
    case TensorRole::AttnV: return {kv, h};
    case TensorRole::AttnO: return {h, q};
    case TensorRole::Router: return {c.num_experts, h};
    case TensorRole::ExpertW1:
    case TensorRole::ExpertW3: return {c.intermediate_size, h};
    case TensorRole::ExpertW2: return {h, c.intermediate_size};
    case TensorRole::MlpGate:
    case TensorRole::MlpUp: return {c.dense_intermediate_size, h};
    case TensorRole::MlpDown: return {h, c.dense_intermediate_size};
    case TensorRole::AttnQBias: return {q};
    case TensorRole::AttnKBias:
    case TensorRole::AttnVBias: return {kv};
    case TensorRole::SharedW1:
    case TensorRole::SharedW3: return {c.shared_expert_size, h};
    case TensorRole::SharedW2: return {h, c.shared_expert_size};
    case TensorRole::SharedGate: return {1, h};
  }
  return {};
}

}  // namespace moec
