// moec's own checkpoint: one self-describing, versioned HDF5 file. The layout
// is specified field by field in docs/container.md; in short:
//   /                      attrs moec_format="moec", format_version, config,
//                          architecture, moec_version, created_by, created_at,
//                          provenance (JSON)
//   /tokenizer.model       uint8[n], the sentencepiece model (optional)
//   /tokenizer.json        uint8[n], Hugging Face's tokenizer.json (optional)
//   /tokenizer_config.json uint8[n], its tokenizer_config.json: chat template,
//                          special tokens (optional)
//   /tensors/<logical/name/with/slashes>
//                          one dataset per dense tensor, attrs encoding,
//                          shape, hf_name; an encoded (quantized) tensor is
//                          a group of datasets (codes, scales, zeros) with
//                          the same attributes plus format
// Dense data is stored contiguously and unfiltered so readers can map it
// (zero-copy, like safetensors) instead of reading it into memory.
#pragma once
#include <filesystem>
#include <array>
#include <map>
#include <set>
#include <memory>
#include <span>

#include "io/atomic_output.h"
#include "io/checkpoint.h"
#include "io/hdf5_handle.h"
#include "io/mapped_file.h"

namespace moec {

inline constexpr const char* kContainerMagic = "moec";
// 2: string attributes are fixed-length. Version 1 (variable-length strings,
// in HDF5's global heap) is refused: see docs/container.md §7.
inline constexpr int64_t kContainerVersion = 2;

// True when `path` is an HDF5 file (by its signature), container or not.
bool is_container_file(const std::filesystem::path& path);
// "/tensors/layers/0/experts/3/w1"
std::string container_path(const TensorKey& key);

struct Provenance {
  std::string command_line;
  std::string source;         // path of what the container was made from
  std::string source_format;  // "hf-safetensors", ...
  nlohmann::json source_files = nlohmann::json::array();  // [{file, bytes, crc32}]
  nlohmann::json quantization;  // how experts were quantized (null: lossless)
};

class ContainerWriter {
 public:
  // Starts a container at a temporary name beside `target`.
  ContainerWriter(const std::filesystem::path& target, bool overwrite, const nlohmann::json& config_json,
                  const Provenance& provenance);
  ~ContainerWriter();
  void write_tokenizer(std::span<const std::byte> model);
  void write_tokenizer_json(std::span<const std::byte> json);
  void write_tokenizer_config(std::span<const std::byte> config);
  // Whichever of the two the source has.
  void write_tokenizers(const TokenizerFiles& files);
  // One dense tensor (encoding f32/f16/bf16), written and released at once.
  void write_dense(const TensorInfo& info, std::string_view hf_name, std::span<const std::byte> bytes);
  // One encoded tensor (info.encoding "affine"/"ternary", info.format, and
  // info.parts describing `parts`, in order): an HDF5 group of datasets.
  void write_encoded(const TensorInfo& info, std::string_view hf_name,
                     std::span<const std::span<const std::byte>> parts);
  // Verifies every tensor the config expects was written, closes, renames.
  void commit();

 private:
  AtomicOutput output_;
  ModelConfig config_;
  h5::Handle file_;
  size_t written_ = 0;
};

class ContainerReader final : public CheckpointSource {
 public:
  // Opens and validates: magic, version, config, and every tensor's
  // encoding, shape, storage type and extent. Throws moec::Error naming the
  // file and tensor on the first problem.
  explicit ContainerReader(const std::filesystem::path& path);

  std::string_view format() const override { return "moec-h5"; }
  TensorData read(const TensorKey& key) const override;
  std::optional<std::vector<std::byte>> tokenizer_model() const override;
  std::optional<std::vector<std::byte>> tokenizer_json() const override;
  std::optional<std::vector<std::byte>> tokenizer_config() const override;
  std::vector<std::filesystem::path> files() const override { return {path_}; }
  int64_t format_version() const { return version_; }
  const nlohmann::json& provenance() const { return provenance_; }

 private:
  void open_tensor(const TensorKey& key);
  void open_dense(TensorInfo& info, hid_t set);
  void open_encoded(TensorInfo& info, hid_t group);
  std::optional<uint64_t> mapped_offset(hid_t set, uint64_t nbytes, const std::string& what) const;
  h5::Handle file_;
  MappedFile mapping_;
  int64_t version_ = 0;
  nlohmann::json provenance_;
  // File offsets of mappable tensors: one for dense, one per part if encoded.
  std::map<TensorKey, std::vector<uint64_t>> offsets_;
  std::set<std::array<uint64_t, 3>> sub1_dictionaries_;  // distinct trit_counts seen (io/limits.h)
};

}  // namespace moec
