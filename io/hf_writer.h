// Writes Hugging Face model folders: config.json, tokenizer.model, and
// model.safetensors or shards model-0000i-of-0000n.safetensors with
// model.safetensors.index.json. Streams one tensor at a time; the folder
// appears only when complete.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "io/atomic_output.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"

namespace moec {

struct HfWriteOptions {
  bool overwrite = false;
  uint64_t max_shard_bytes = uint64_t{5} << 30;  // as transformers' default
};

struct HfWriteResult {
  size_t tensors = 0;
  size_t shards = 0;
  uint64_t bytes = 0;
};

// A folder written tensor by tensor, in the order of `specs` (names are HF
// names), for stages that produce tensors as they go (merge).
class HfStreamWriter {
 public:
  HfStreamWriter(const std::filesystem::path& out_dir, const HfWriteOptions& options, const nlohmann::json& config,
                 const TokenizerFiles& tokenizer, std::vector<TensorSpec> specs);
  ~HfStreamWriter();
  void write(std::string_view name, std::span<const std::byte> bytes);
  HfWriteResult commit();

 private:
  void open_shard();
  AtomicOutput output_;
  std::vector<std::vector<TensorSpec>> shards_;
  size_t shard_ = 0, next_ = 0;
  std::unique_ptr<SafetensorsWriter> writer_;
  nlohmann::ordered_json weight_map_;
  HfWriteResult result_;
};

// Any checkpoint source whose tensors are dense, as a Hugging Face folder.
HfWriteResult write_hf_checkpoint(const CheckpointSource& source, const std::filesystem::path& out_dir,
                                  const HfWriteOptions& options);

}  // namespace moec
