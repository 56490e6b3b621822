// A tiny Mixtral checkpoint split over two safetensors shards, for the shard
// index fuzz target and its seeds: writes config.json and the shards into
// `dir` and returns the index JSON that correctly describes them (the fuzz
// input replaces model.safetensors.index.json).
#pragma once
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/model_config.h"
#include "io/safetensors_writer.h"
#include "io/tensor_names.h"

namespace moec::fuzz {

inline nlohmann::json sharded_config() {
  return {{"model_type", "mixtral"}, {"vocab_size", 16},         {"hidden_size", 8},
          {"intermediate_size", 8},  {"num_hidden_layers", 2},   {"num_attention_heads", 2},
          {"num_key_value_heads", 1}, {"num_local_experts", 2},  {"num_experts_per_tok", 1},
          {"max_position_embeddings", 16}};
}

inline std::string write_sharded_model(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << sharded_config().dump(1);
  const ModelConfig config = parse_model_config(sharded_config(), "sharded_config");
  const ArchitectureNames& arch = *find_architecture(config.model_type);
  std::vector<TensorSpec> shards[2];
  for (const TensorKey& key : expected_tensors(config))  // layer 0 and the embeddings in shard 1, the rest in 2
    shards[key.layer >= 1 ? 1 : 0].push_back({hf_name(arch, key), DType::BF16, expected_shape(config, key)});
  nlohmann::json weight_map = nlohmann::json::object();
  const char* names[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  for (int s = 0; s < 2; ++s) {
    SafetensorsWriter writer(dir / names[s], shards[s]);
    for (const TensorSpec& spec : shards[s]) {
      std::vector<std::byte> bytes(spec.nbytes(), std::byte{0x3c});  // bf16 0x3c3c ≈ 0.0115
      writer.write(spec.name, bytes);
      weight_map[spec.name] = names[s];
    }
    writer.finish();
  }
  return nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(1);
}

}  // namespace moec::fuzz
