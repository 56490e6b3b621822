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

struct TensorInfo {
  TensorKey key;
  std::string name;         // logical name, "layers.0.experts.3.w1"
  std::string stored_name;  // name in its file: HF tensor name or container path
  std::string encoding;     // "bf16", "f16", "f32" (dense); later issues add more
  std::vector<int64_t> shape;
  uint64_t nbytes = 0;  // bytes stored, all parts included
  uint64_t numel() const;
  // The element type when the encoding is a plain dense dtype.
  std::optional<DType> dense_dtype() const { return dtype_from_encoding(encoding); }
};

// A tensor's stored bytes: a view into a mapping, or a buffer it owns.
class TensorData {
 public:
  TensorData(const TensorInfo& info, std::span<const std::byte> view) : info_(&info), bytes_(view) {}
  TensorData(const TensorInfo& info, std::vector<std::byte> owned)
      : info_(&info), owned_(std::move(owned)), bytes_(owned_) {}
  TensorData(TensorData&&) = default;
  TensorData(const TensorData&) = delete;

  const TensorInfo& info() const { return *info_; }
  std::span<const std::byte> bytes() const { return bytes_; }
  // Dense encodings only: the values widened to f32.
  std::vector<float> to_f32() const;

 private:
  const TensorInfo* info_;
  std::vector<std::byte> owned_;
  std::span<const std::byte> bytes_;
};

class CheckpointSource {
 public:
  virtual ~CheckpointSource() = default;
  virtual std::string_view format() const = 0;  // "hf-safetensors", "moec-h5"
  virtual TensorData read(const TensorKey& key) const = 0;
  // The sentencepiece model's bytes, when the checkpoint has one.
  virtual std::optional<std::vector<std::byte>> tokenizer_model() const = 0;
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
