#include "io/model_config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/limits.h"
#include "io/tensor_names.h"

namespace moec {
namespace {

using json = nlohmann::json;

// Sizes beyond these (io/limits.h) are not a real model but a lying file;
// they would overflow shape products or ask for absurd allocations.
constexpr int64_t kMaxDimension = limits::kMaxConfigDimension;

int64_t positive_int(const json& config, const char* field, const std::string& source) {
  if (!config.contains(field)) fail("{}: missing '{}'", source, field);
  const json& v = config[field];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    fail("{}: '{}' must be a positive integer, got {}", source, field, v.dump());
  if (v.get<int64_t>() > kMaxDimension) fail("{}: '{}' = {} is implausibly large", source, field, v.dump());
  return v.get<int64_t>();
}

double positive_number(const json& config, const char* field, double fallback, const std::string& source) {
  if (!config.contains(field)) return fallback;
  const json& v = config[field];
  if (!v.is_number() || !(v.get<double>() > 0))
    fail("{}: '{}' must be a positive number, got {}", source, field, v.dump());
  return v.get<double>();
}

std::optional<int64_t> optional_int(const json& config, const char* field, const std::string& source) {
  if (!config.contains(field) || config[field].is_null()) return std::nullopt;
  if (!config[field].is_number_integer()) fail("{}: '{}' must be an integer", source, field);
  return config[field].get<int64_t>();
}

void check_mixtral(const ModelConfig& c, const std::string& source) {
  if (c.head_dim % 2 != 0) fail("{}: head_dim {} must be even for rotary embeddings", source, c.head_dim);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", source, c.num_heads,
         c.num_kv_heads);
  if (c.top_k > c.num_experts)
    fail("{}: num_experts_per_tok {} exceeds num_local_experts {}", source, c.top_k, c.num_experts);
}

// Qwen's dense layers: layer l is sparse unless listed in mlp_only_layers,
// and only when (l + 1) % decoder_sparse_step == 0 (Hugging Face's rule).
void read_dense_layers(const json& config, ModelConfig& c, const std::string& source) {
  int64_t step = 1;
  if (config.contains("decoder_sparse_step") && !config["decoder_sparse_step"].is_null())
    step = positive_int(config, "decoder_sparse_step", source);
  c.dense_layers.assign(size_t(c.num_layers), false);
  for (int64_t l = 0; l < c.num_layers; ++l) c.dense_layers[size_t(l)] = (l + 1) % step != 0;
  if (config.contains("mlp_only_layers") && !config["mlp_only_layers"].is_null()) {
    const json& list = config["mlp_only_layers"];
    if (!list.is_array()) fail("{}: 'mlp_only_layers' must be a list of layer indices", source);
    for (const json& v : list) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        fail("{}: 'mlp_only_layers' entry {} is not a layer index", source, v.dump());
      // An index past the last layer matches no layer, as in Hugging Face's code.
      if (v.get<int64_t>() < c.num_layers) c.dense_layers[size_t(v.get<int64_t>())] = true;
    }
  }
  bool any_dense = false;
  for (bool d : c.dense_layers) any_dense = any_dense || d;
  if (any_dense) c.dense_intermediate_size = positive_int(config, "intermediate_size", source);
  else c.dense_layers.clear();
}

// rope_scaling: null, or Hugging Face's spelling of "no scaling" (its
// config classes let `type` override `rope_type`: both must say "default").
void check_rope_scaling(const json& config, const std::string& source) {
  if (!config.contains("rope_scaling") || config["rope_scaling"].is_null()) return;
  const json& r = config["rope_scaling"];
  bool none = r.is_object() && (r.contains("rope_type") || r.contains("type"));
  for (const char* key : {"rope_type", "type"})
    if (none && r.contains(key)) none = r[key] == "default";
  if (!none) fail("{}: rope_scaling {} is not supported", source, r.dump());
}

// transformers 5 writes the rotary settings as rope_parameters {rope_type,
// rope_theta, ...}, with no top-level rope_theta: its theta wins, and only
// the plain rotary embedding is supported.
void read_rope_parameters(const json& config, ModelConfig& c, const std::string& source) {
  if (!config.contains("rope_parameters") || config["rope_parameters"].is_null()) return;
  const json& p = config["rope_parameters"];
  if (!p.is_object()) fail("{}: 'rope_parameters' must be an object, got {}", source, p.dump());
  const bool plain = (!p.contains("rope_type") || p["rope_type"] == "default") &&
                     (!p.contains("partial_rotary_factor") || p["partial_rotary_factor"] == 1.0);
  if (!plain) fail("{}: rope_parameters {} is not supported", source, p.dump());
  c.rope_theta = positive_number(p, "rope_theta", c.rope_theta, source);
}

// Which layers use the sliding window, as the family's code reads the config.
void read_window(const json& config, const ArchitectureNames& arch, ModelConfig& c, const std::string& source) {
  using Window = ArchitectureNames::Window;
  if (arch.window == Window::None) return;
  if (arch.window != Window::EveryLayer &&
      (!config.contains("use_sliding_window") || config["use_sliding_window"] != true))
    return;  // Qwen: no window without use_sliding_window (its configs carry one they do not use)
  if (!config.contains("sliding_window")) {
    if (arch.default_sliding_window > 0) c.sliding_window = arch.default_sliding_window;
  } else {
    c.sliding_window = optional_int(config, "sliding_window", source);
  }
  if (c.sliding_window && *c.sliding_window <= 0)
    fail("{}: 'sliding_window' must be positive or null, got {}", source, *c.sliding_window);
  if (arch.window != Window::QwenFromMaxLayers || !c.sliding_window) return;
  // The layers layer_types marks, else those from max_window_layers (default 28) on.
  c.window_layers.assign(size_t(c.num_layers), false);
  if (config.contains("layer_types") && !config["layer_types"].is_null()) {
    const json& types = config["layer_types"];
    if (!types.is_array() || int64_t(types.size()) != c.num_layers)
      fail("{}: 'layer_types' must list the type of each of the {} layers", source, c.num_layers);
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const json& t = types[size_t(l)];
      if (t != "sliding_attention" && t != "full_attention")
        fail("{}: 'layer_types' entry {} is neither \"sliding_attention\" nor \"full_attention\"", source, t.dump());
      c.window_layers[size_t(l)] = t == "sliding_attention";
    }
  } else {
    int64_t first = 28;  // Qwen2MoeConfig's max_window_layers
    if (config.contains("max_window_layers") && !config["max_window_layers"].is_null()) {
      if (!config["max_window_layers"].is_number_integer() || config["max_window_layers"].get<int64_t>() < 0)
        fail("{}: 'max_window_layers' must be a non-negative integer", source);
      first = config["max_window_layers"].get<int64_t>();
    }
    for (int64_t l = first; l < c.num_layers; ++l) c.window_layers[size_t(l)] = true;
  }
  if (std::find(c.window_layers.begin(), c.window_layers.end(), true) == c.window_layers.end()) {
    c.sliding_window.reset();  // no layer uses it
    c.window_layers.clear();
  }
}

}  // namespace

ModelConfig parse_model_config(const json& config, const std::string& source) {
  if (!config.is_object()) fail("{}: config is not a JSON object", source);
  if (!config.contains("model_type") || !config["model_type"].is_string())
    fail("{}: missing 'model_type'", source);
  ModelConfig c;
  c.model_type = config["model_type"].get<std::string>();
  const ArchitectureNames* arch = find_architecture(c.model_type);
  if (!arch)
    fail("{}: model_type '{}' is not supported (supported: {})", source, c.model_type, supported_architectures());

  c.vocab_size = positive_int(config, "vocab_size", source);
  c.hidden_size = positive_int(config, "hidden_size", source);
  c.intermediate_size = positive_int(config, arch->moe ? arch->expert_width_key.c_str() : "intermediate_size", source);
  c.num_layers = positive_int(config, "num_hidden_layers", source);
  if (c.num_layers > limits::kMaxLayers)
    fail("{}: 'num_hidden_layers' = {} is implausibly large (limit {})", source, c.num_layers, limits::kMaxLayers);
  c.num_heads = positive_int(config, "num_attention_heads", source);
  // Missing: the config class's default; null: the number of heads (as
  // Hugging Face's config classes resolve them).
  if (!config.contains("num_key_value_heads"))
    c.num_kv_heads = arch->default_kv_heads > 0 ? arch->default_kv_heads : c.num_heads;
  else if (config["num_key_value_heads"].is_null())
    c.num_kv_heads = c.num_heads;
  else
    c.num_kv_heads = positive_int(config, "num_key_value_heads", source);
  if (config.contains("head_dim") && !config["head_dim"].is_null()) {
    c.head_dim = positive_int(config, "head_dim", source);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      fail("{}: hidden_size {} is not a multiple of num_attention_heads {}", source, c.hidden_size, c.num_heads);
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (arch->moe) {
    c.num_experts = positive_int(config, arch->experts_key.c_str(), source);
    c.top_k = config.contains("num_experts_per_tok") ? positive_int(config, "num_experts_per_tok", source)
                                                      : arch->default_top_k;
    c.norm_topk_prob = arch->default_norm_topk_prob;
    if (config.contains("norm_topk_prob") && !config["norm_topk_prob"].is_null()) {
      if (!config["norm_topk_prob"].is_boolean()) fail("{}: 'norm_topk_prob' must be true or false", source);
      c.norm_topk_prob = config["norm_topk_prob"].get<bool>();
    }
    if (arch->dense_layer_keys) read_dense_layers(config, c, source);
    if (!arch->shared_expert_width_key.empty())
      c.shared_expert_size = config.contains(arch->shared_expert_width_key)
                                 ? positive_int(config, arch->shared_expert_width_key.c_str(), source)
                                 : 5632;  // Qwen2MoeConfig's default
  } else {
    c.dense_intermediate_size = c.intermediate_size;
  }
  c.attention_bias = arch->attention_bias;
  c.qk_norm = arch->qk_norm;
  if (config.contains("clip_qkv") && !config["clip_qkv"].is_null())
    fail("{}: 'clip_qkv' {} is not supported", source, config["clip_qkv"].dump());
  c.max_position_embeddings = positive_int(config, "max_position_embeddings", source);
  c.rms_norm_eps = positive_number(config, "rms_norm_eps", arch->default_rms_norm_eps, source);
  c.rope_theta = positive_number(config, "rope_theta", arch->default_rope_theta, source);
  read_rope_parameters(config, c, source);
  check_rope_scaling(config, source);
  for (const char* bias : {"attention_bias", "mlp_bias"})
    if (!arch->attention_bias && config.contains(bias) && config[bias] == true)
      fail("{}: '{}' true is not supported", source, bias);
  if (config.contains("tie_word_embeddings")) {
    if (!config["tie_word_embeddings"].is_boolean()) fail("{}: 'tie_word_embeddings' must be true or false", source);
    c.tie_word_embeddings = config["tie_word_embeddings"].get<bool>();
  }
  read_window(config, *arch, c, source);
  c.bos_token_id = optional_int(config, "bos_token_id", source).value_or(1);
  if (config.contains("eos_token_id") && config["eos_token_id"].is_array()) {
    c.eos_token_ids.clear();
    for (const json& id : config["eos_token_id"]) {
      if (!id.is_number_integer()) fail("{}: 'eos_token_id' must be an integer or a list of integers", source);
      c.eos_token_ids.push_back(id.get<int64_t>());
    }
    if (c.eos_token_ids.empty()) fail("{}: 'eos_token_id' is an empty list", source);
    c.eos_token_id = c.eos_token_ids.front();
  } else {
    c.eos_token_id = optional_int(config, "eos_token_id", source).value_or(2);
    c.eos_token_ids = {c.eos_token_id};
  }
  if (config.contains("hidden_act") && config["hidden_act"] != "silu")
    fail("{}: hidden_act {} is not supported (only silu)", source, config["hidden_act"].dump());
  check_mixtral(c, source);
  if (c.num_layers > limits::kMaxLayers || c.num_experts > limits::kMaxExperts ||
      c.num_layers * c.num_experts > limits::kMaxExpertsPerModel)
    fail("{}: {} layers of {} experts is implausibly large (limits: {} layers, {} experts, {} in all)", source,
         c.num_layers, c.num_experts, limits::kMaxLayers, limits::kMaxExperts, limits::kMaxExpertsPerModel);
  return c;
}

json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path.string());
  std::stringstream text;
  text << in.rdbuf();
  json parsed = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) fail("{}: not valid JSON", path.string());
  return parsed;
}

}  // namespace moec
