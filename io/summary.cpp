#include "io/summary.h"

#include <fmt/ranges.h>

namespace moec {
namespace {

// 15345920 -> "15,345,920": readable counts without depending on the locale.
std::string grouped(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

CheckpointSummary summarize(const CheckpointSource& source) {
  CheckpointSummary s;
  s.path = source.path().string();
  s.format = source.format();
  s.config = source.config();
  for (int c = 0; c < kComponentCount; ++c) {
    s.components.emplace_back();
    s.components.back().component = Component(c);
  }
  for (const TensorInfo& t : source.tensors()) {
    ComponentSummary& comp = s.components[static_cast<size_t>(component_of(t.key.role))];
    comp.params += t.numel();
    comp.bytes += t.nbytes;
    comp.encodings.insert(t.label());
    s.params_total += t.numel();
    s.tensor_bytes += t.nbytes;
  }
  s.params_experts = s.components[static_cast<size_t>(Component::Experts)].params;
  // Each token runs top_k of the num_experts experts in every layer.
  s.params_active = s.config.moe() ? s.params_total - s.params_experts +
                                        s.params_experts / uint64_t(s.config.num_experts) * uint64_t(s.config.top_k)
                                  : s.params_total;
  for (const auto& f : source.files()) s.file_bytes += std::filesystem::file_size(f);
  s.has_tokenizer = !source.tokenizer_files().empty();
  return s;
}

nlohmann::ordered_json to_json(const CheckpointSummary& s) {
  const ModelConfig& c = s.config;
  nlohmann::ordered_json j;
  j["path"] = s.path;
  j["format"] = s.format;
  j["architecture"] = c.model_type;
  j["layers"] = c.num_layers;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["experts"] = c.num_experts;
  j["top_k"] = c.top_k;
  j["attention_heads"] = c.num_heads;
  j["kv_heads"] = c.num_kv_heads;
  j["vocab_size"] = c.vocab_size;
  j["params_total"] = s.params_total;
  j["params_experts"] = s.params_experts;
  j["expert_fraction"] = double(s.params_experts) / double(s.params_total);
  j["params_active_per_token"] = s.params_active;
  j["tensor_bytes"] = s.tensor_bytes;
  j["file_bytes"] = s.file_bytes;
  j["bits_per_weight"] = 8.0 * double(s.tensor_bytes) / double(s.params_total);
  j["tokenizer"] = s.has_tokenizer;
  for (const auto& comp : s.components) {
    if (!comp.params) continue;
    j["components"][std::string(component_name(comp.component))] = {{"params", comp.params},
                                                                      {"bytes", comp.bytes},
                                                                      {"bits_per_weight", comp.bits_per_weight()},
                                                                      {"encodings", comp.encodings}};
  }
  return j;
}

std::string to_text(const CheckpointSummary& s) {
  const ModelConfig& c = s.config;
  std::string out = fmt::format("{} ({})\n", s.path, s.format);
  out += fmt::format("  architecture   {}: {} layers, hidden {}, {} heads ({} kv, head_dim {}), vocab {}\n",
                     c.model_type, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size);
  if (c.moe())
    out += fmt::format("  experts        {} per layer of width {}, top-{} routing\n", c.num_experts,
                       c.intermediate_size, c.top_k);
  else
    out += fmt::format("  mlp            dense, width {} (no experts)\n", c.intermediate_size);
  out += fmt::format("  parameters     {} total, {} in experts ({:.1f}%), {} active per token\n", grouped(s.params_total),
                     grouped(s.params_experts), 100.0 * double(s.params_experts) / double(s.params_total),
                     grouped(s.params_active));
  out += fmt::format("  storage        {} bytes of tensors ({:.2f} bits/weight), {} bytes on disk{}\n",
                     grouped(s.tensor_bytes), 8.0 * double(s.tensor_bytes) / double(s.params_total), grouped(s.file_bytes),
                     s.has_tokenizer ? "" : ", no tokenizer");
  out += fmt::format("  {:<14} {:>14} {:>14} {:>10}  {}\n", "component", "parameters", "bytes", "bits/w", "encoding");
  for (const auto& comp : s.components) {
    if (!comp.params) continue;
    out += fmt::format("  {:<14} {:>14} {:>14} {:>10.3f}  {}\n", component_name(comp.component),
                       grouped(comp.params), grouped(comp.bytes), comp.bits_per_weight(), fmt::join(comp.encodings, ","));
  }
  return out;
}

}  // namespace moec
