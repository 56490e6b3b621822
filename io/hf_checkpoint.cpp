#include "io/hf_checkpoint.h"

#include <fstream>
#include <iterator>
#include <algorithm>
#include <cstring>
#include <set>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/limits.h"

namespace moec {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// The shard files listed by an index, each once, in first-mention order,
// and the tensor -> shard map it promises.
std::vector<std::string> read_index(const fs::path& index_path, std::map<std::string, std::string>& weight_map) {
  nlohmann::json index = read_json_file(index_path);
  const std::string file = index_path.string();
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail("{}: missing 'weight_map' object", file);
  std::vector<std::string> shards;
  std::set<std::string> seen;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail("{}: tensor '{}': shard name is not a string", file, tensor);
    std::string name = shard.get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        name.find('\0') != std::string::npos || name.size() > limits::kMaxShardNameBytes)
      fail("{}: tensor '{}': shard name '{}' is not a file in this folder", file, tensor,
           name.substr(0, 64) + (name.size() > 64 ? "..." : ""));
    weight_map[tensor] = name;
    if (seen.insert(name).second) shards.push_back(name);
  }
  if (shards.empty()) fail("{}: weight_map lists no tensors", file);
  return shards;
}

}  // namespace

HfCheckpoint::HfCheckpoint(const fs::path& dir) {
  path_ = dir;
  fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) fail("{}: no config.json in this folder", dir.string());
  config_json_ = read_json_file(config_path);
  config_ = parse_model_config(config_json_, config_path.string());
  open_shards();
  index_tensors();
}

void HfCheckpoint::open_shards() {
  fs::path index_path = path_ / kIndexName;
  if (!fs::exists(index_path)) {
    if (!fs::exists(path_ / kSingleName))
      fail("{}: neither {} nor {} in this folder", path_.string(), kSingleName, kIndexName);
    shards_.push_back(std::make_unique<SafetensorsFile>(path_ / kSingleName));
    return;
  }
  std::map<std::string, std::string> weight_map;
  for (const auto& name : read_index(index_path, weight_map)) {
    std::error_code ec;
    if (!fs::is_regular_file(path_ / name, ec))
      fail("{}: shard '{}' listed in the index does not exist (or is not a file)", index_path.string(), name);
    shards_.push_back(std::make_unique<SafetensorsFile>(path_ / name));
  }
  // The index and the shards must agree tensor for tensor.
  std::set<std::string> found;
  for (const auto& shard : shards_) {
    const std::string shard_name = shard->path().filename().string();
    for (const auto& entry : shard->entries()) {
      auto it = weight_map.find(entry.name);
      if (it == weight_map.end())
        fail("{}: tensor '{}': not listed in {}", shard->path().string(), entry.name, kIndexName);
      if (it->second != shard_name)
        fail("{}: tensor '{}': the index places it in '{}'", shard->path().string(), entry.name, it->second);
      found.insert(entry.name);
    }
  }
  for (const auto& [tensor, shard] : weight_map)
    if (!found.count(tensor)) fail("{}: tensor '{}': listed in the index but missing", (path_ / shard).string(), tensor);
}

void HfCheckpoint::index_tensors() {
  const ArchitectureNames& arch = *find_architecture(config_.model_type);
  for (const auto& shard : shards_) {
    for (const auto& entry : shard->entries()) {
      const std::string file = shard->path().string();
      // Rotary frequency buffers some older checkpoints saved: computed
      // from the config, and skipped by Hugging Face's loader too.
      if (entry.name.ends_with(".rotary_emb.inv_freq")) continue;
      auto key = parse_hf_name(arch, entry.name);
      if (!key) fail("{}: tensor '{}': not a {} tensor name", file, entry.name, config_.model_type);
      if (key->layer >= config_.num_layers)
        fail("{}: tensor '{}': layer {} but the config has {} layers", file, entry.name, key->layer, config_.num_layers);
      if (key->expert >= config_.num_experts)
        fail("{}: tensor '{}': expert {} but the config has {} experts", file, entry.name, key->expert,
             config_.num_experts);
      // A tied model's stored lm_head: Hugging Face ties it to the embedding
      // and never reads it, so it is not read (or checked) here either.
      if (config_.tie_word_embeddings && key->role == TensorRole::LmHead) continue;
      if (!dtype_is_float(entry.dtype))
        fail("{}: tensor '{}': dtype {} is not a floating-point weight type", file, entry.name, dtype_name(entry.dtype));
      locations_[*key] = {shard.get(), &entry};
    }
  }
  for (const TensorKey& key : expected_tensors(config_)) {
    auto it = locations_.find(key);
    if (it == locations_.end())
      fail("{}: tensor '{}': missing from the checkpoint", path_.string(), hf_name(arch, key));
    const SafetensorsEntry& entry = *it->second.entry;
    std::vector<int64_t> shape = expected_shape(config_, key);
    if (entry.shape != shape)
      fail("{}: tensor '{}': shape [{}] but the config needs [{}]", it->second.shard->path().string(), entry.name,
           fmt::join(entry.shape, ", "), fmt::join(shape, ", "));
    tensors_.push_back({key, logical_name(key), entry.name, std::string(dtype_encoding(entry.dtype)), entry.shape,
                        entry.end - entry.begin, {}, {}});
  }
  if (locations_.size() != tensors_.size())
    for (const auto& located : locations_)
      if (std::find_if(tensors_.begin(), tensors_.end(), [&](auto& t) { return t.key == located.first; }) ==
          tensors_.end())
        fail("{}: tensor '{}': not expected by the config", located.second.shard->path().string(),
             located.second.entry->name);
}

TensorData HfCheckpoint::read(const TensorKey& key) const {
  auto it = locations_.find(key);
  if (it == locations_.end()) fail("{}: tensor '{}': not in this checkpoint", path_.string(), logical_name(key));
  return TensorData::mapped(info(key), it->second.shard->bytes(*it->second.entry),
                            dtype_size(it->second.entry->dtype));
}

std::optional<std::vector<std::byte>> read_tokenizer_file(const fs::path& p) {
  if (!fs::exists(p)) return std::nullopt;
  if (fs::file_size(p) > limits::kMaxTokenizerBytes)
    fail("{}: {} bytes is over the {} byte limit for a tokenizer file", p.string(), fs::file_size(p),
         limits::kMaxTokenizerBytes);
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("{}: cannot open", p.string());
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

std::optional<std::vector<std::byte>> HfCheckpoint::tokenizer_model() const {
  return read_tokenizer_file(path_ / "tokenizer.model");
}

std::optional<std::vector<std::byte>> HfCheckpoint::tokenizer_json() const {
  return read_tokenizer_file(path_ / "tokenizer.json");
}

// Newer transformers save the chat template beside tokenizer_config.json as
// chat_template.jinja; it is folded in as "chat_template" (when the config
// has none) so every stage carries one file.
std::optional<std::vector<std::byte>> HfCheckpoint::tokenizer_config() const {
  auto config = read_tokenizer_file(path_ / "tokenizer_config.json");
  auto jinja = read_tokenizer_file(path_ / "chat_template.jinja");
  if (!jinja) return config;
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (config) {
    j = nlohmann::ordered_json::parse(reinterpret_cast<const char*>(config->data()),
                              reinterpret_cast<const char*>(config->data()) + config->size(), nullptr, false);
    if (!j.is_object() || j.contains("chat_template")) return config;  // malformed ones are reported where used
  }
  j["chat_template"] = std::string(reinterpret_cast<const char*>(jinja->data()), jinja->size());
  const std::string text = j.dump(2) + "\n";
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

std::vector<fs::path> HfCheckpoint::files() const {
  std::vector<fs::path> files{path_ / "config.json"};
  if (fs::exists(path_ / kIndexName)) files.push_back(path_ / kIndexName);
  for (const auto& shard : shards_) files.push_back(shard->path());
  if (fs::exists(path_ / "tokenizer.model")) files.push_back(path_ / "tokenizer.model");
  return files;
}

}  // namespace moec
