// Writes any checkpoint source whose tensors are dense as a Hugging Face
// folder: config.json, tokenizer.model, model.safetensors or shards
// model-0000i-of-0000n.safetensors with model.safetensors.index.json. Streams
// one tensor at a time; the folder appears only when complete.
#pragma once
#include <cstdint>
#include <filesystem>

#include "io/checkpoint.h"

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

HfWriteResult write_hf_checkpoint(const CheckpointSource& source, const std::filesystem::path& out_dir,
                                  const HfWriteOptions& options);

}  // namespace moec
