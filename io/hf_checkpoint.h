// A Hugging Face model folder: config.json, tokenizer.model, and either one
// model.safetensors or shards listed by model.safetensors.index.json. All
// shards are memory-mapped; reads are zero-copy views.
#pragma once
#include <map>
#include <memory>

#include "io/checkpoint.h"
#include "io/safetensors.h"

namespace moec {

class HfCheckpoint final : public CheckpointSource {
 public:
  // Validates the folder completely: config, every shard, every tensor's
  // name, dtype and shape against the config. Throws moec::Error naming the
  // file and tensor on the first problem.
  explicit HfCheckpoint(const std::filesystem::path& dir);

  std::string_view format() const override { return "hf-safetensors"; }
  TensorData read(const TensorKey& key) const override;
  std::optional<std::vector<std::byte>> tokenizer_model() const override;
  std::optional<std::vector<std::byte>> tokenizer_json() const override;
  std::optional<std::vector<std::byte>> tokenizer_config() const override;
  std::vector<std::filesystem::path> files() const override;

 private:
  void open_shards();
  void index_tensors();
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  struct Location {
    const SafetensorsFile* shard;
    const SafetensorsEntry* entry;
  };
  std::map<TensorKey, Location> locations_;
};

// A tokenizer file's bytes (tokenizer.model or tokenizer.json), nullopt when
// it does not exist; over limits::kMaxTokenizerBytes is an error.
std::optional<std::vector<std::byte>> read_tokenizer_file(const std::filesystem::path& path);

}  // namespace moec
