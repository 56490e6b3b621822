// The one read interface every stage uses. A checkpoint source is either a
// Hugging Face folder (hf_checkpoint.h) or a moec container (container.h);
// both present the same config, the same logical tensors (TensorKey) in the
// same order, and the same views of their bytes.
#pragma once
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/dtype.h"
#include "io/model_config.h"
#include "io/tensor_names.h"

namespace moec {

// One stored array of an encoded (non-dense) tensor, e.g. its packed codes.
struct TensorPart {
  std::string name;  // "codes", "scales", "zeros"
  DType dtype;
  std::vector<int64_t> dims;
  uint64_t nbytes() const;
};

struct TensorInfo {
  TensorKey key;
  std::string name;         // logical name, "layers.0.experts.3.w1"
  std::string stored_name;  // name in its file: HF tensor name or container path
  std::string encoding;     // dense: "bf16", "f16", "f32"; encoded: "affine", "ternary"
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;         // bytes stored, all parts included
  std::string format;          // encoded tensors: the quantization format spec, e.g. "q4g128"
  std::vector<TensorPart> parts;  // encoded tensors: their arrays
  uint64_t numel() const;
  bool encoded() const { return !parts.empty(); }
  // "bf16", or the format of an encoded tensor ("q4g128"): for summaries.
  const std::string& label() const { return encoded() ? format : encoding; }
  // The element type when the encoding is a plain dense dtype.
  std::optional<DType> dense_dtype() const { return dtype_from_encoding(encoding); }
};

// A tensor's stored bytes: a view into a mapping, or a buffer it owns.
class TensorData {
 public:
  TensorData(const TensorInfo& info, std::span<const std::byte> view) : info_(&info), bytes_(view) {}
  TensorData(const TensorInfo& info, std::vector<std::byte> owned)
      : info_(&info), owned_(std::move(owned)), bytes_(owned_) {}
  // An encoded tensor: one view per part, in info.parts order.
  TensorData(const TensorInfo& info, std::vector<std::span<const std::byte>> parts)
      : info_(&info), parts_(std::move(parts)) {}
  // An encoded tensor whose parts it owns (copies of misaligned parts).
  TensorData(const TensorInfo& info, std::vector<std::vector<std::byte>> owned_parts)
      : info_(&info), owned_parts_(std::move(owned_parts)) {
    for (const auto& p : owned_parts_) parts_.emplace_back(p);
  }
  TensorData(TensorData&&) = default;
  TensorData(const TensorData&) = delete;
  // Mapped bytes as they are, or copied when not aligned to their element
  // type (kernels read tensors in place as u16/u32/f32 arrays; some published
  // safetensors files put every tensor at an odd offset). Encoded tensors:
  // one span per part of info.parts, each checked against its part's dtype.
  static TensorData mapped(const TensorInfo& info, std::span<const std::byte> bytes, size_t element_size);
  static TensorData mapped(const TensorInfo& info, std::vector<std::span<const std::byte>> parts);

  const TensorInfo& info() const { return *info_; }
  // A dense tensor's bytes (empty for encoded tensors).
  std::span<const std::byte> bytes() const { return bytes_; }
  // An encoded tensor's part by name; empty when it has no such part.
  std::span<const std::byte> part(std::string_view name) const;
  // Dense encodings only: the values widened to f32.
  std::vector<float> to_f32() const;
  // Drops the tensor's mapped pages from the resident set once a streaming
  // stage is done with them (io/mapped_file.h); copies are left alone.
  void release_pages() const;

 private:
  const TensorInfo* info_;
  std::vector<std::byte> owned_;
  std::span<const std::byte> bytes_;
  std::vector<std::span<const std::byte>> parts_;
  std::vector<std::vector<std::byte>> owned_parts_;
};

// The tokenizer files a checkpoint carries: sentencepiece's tokenizer.model
// and/or Hugging Face's tokenizer.json (byte-level BPE), and
// tokenizer_config.json (the chat template and special tokens), which every
// stage carries along unchanged.
struct TokenizerFiles {
  std::optional<std::vector<std::byte>> model, json, config;
  bool empty() const { return !model && !json; }  // no tokenizer (a config alone does not tokenize)
};

class CheckpointSource {
 public:
  virtual ~CheckpointSource() = default;
  virtual std::string_view format() const = 0;  // "hf-safetensors", "moec-h5"
  virtual TensorData read(const TensorKey& key) const = 0;
  // The sentencepiece model's bytes, when the checkpoint has one.
  virtual std::optional<std::vector<std::byte>> tokenizer_model() const = 0;
  // tokenizer.json's bytes, when the checkpoint has one.
  virtual std::optional<std::vector<std::byte>> tokenizer_json() const = 0;
  // tokenizer_config.json's bytes, when the checkpoint has one.
  virtual std::optional<std::vector<std::byte>> tokenizer_config() const = 0;
  TokenizerFiles tokenizer_files() const { return {tokenizer_model(), tokenizer_json(), tokenizer_config()}; }
  // The files the checkpoint consists of (for sizes and checksums).
  virtual std::vector<std::filesystem::path> files() const = 0;

  const std::filesystem::path& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  const nlohmann::json& config_json() const { return config_json_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo& info(const TensorKey& key) const;

 protected:
  std::filesystem::path path_;
  nlohmann::json config_json_;
  ModelConfig config_;
  std::vector<TensorInfo> tensors_;  // in expected_tensors() order
};

// Opens a Hugging Face folder or a .h5 container, by what `path` is.
std::unique_ptr<CheckpointSource> open_checkpoint(const std::filesystem::path& path);

}  // namespace moec
