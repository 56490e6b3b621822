// What `moec inspect` reports about a checkpoint: its shape, its parameter
// counts (total, in experts, active per token) and, per component, the bytes
// and bits per weight it is stored in.
#pragma once
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"

namespace moec {

struct ComponentSummary {
  Component component;
  uint64_t params = 0;
  uint64_t bytes = 0;
  std::set<std::string> encodings;
  double bits_per_weight() const { return params ? 8.0 * double(bytes) / double(params) : 0.0; }
};

struct CheckpointSummary {
  std::string path;
  std::string format;
  ModelConfig config;
  uint64_t params_total = 0;
  uint64_t params_experts = 0;
  uint64_t params_active = 0;  // per token: everything but the unused experts
  uint64_t tensor_bytes = 0;
  uint64_t file_bytes = 0;
  std::vector<ComponentSummary> components;
  bool has_tokenizer = false;
};

CheckpointSummary summarize(const CheckpointSource& source);
nlohmann::ordered_json to_json(const CheckpointSummary& summary);
std::string to_text(const CheckpointSummary& summary);

}  // namespace moec
