#include "io/checkpoint.h"

#include "io/mapped_file.h"

#include "io/container.h"
#include "io/error.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"

namespace moec {

uint64_t TensorInfo::numel() const { return shape_numel(shape); }

uint64_t TensorPart::nbytes() const { return shape_numel(dims) * dtype_size(dtype); }

namespace {
bool aligned(std::span<const std::byte> bytes, size_t element_size) {
  return reinterpret_cast<uintptr_t>(bytes.data()) % element_size == 0;
}
}  // namespace

TensorData TensorData::mapped(const TensorInfo& info, std::span<const std::byte> bytes, size_t element_size) {
  if (aligned(bytes, element_size)) return TensorData(info, bytes);
  return TensorData(info, std::vector<std::byte>(bytes.begin(), bytes.end()));
}

TensorData TensorData::mapped(const TensorInfo& info, std::vector<std::span<const std::byte>> parts) {
  bool all_aligned = true;
  for (size_t i = 0; i < parts.size() && i < info.parts.size(); ++i)
    all_aligned = all_aligned && aligned(parts[i], dtype_size(info.parts[i].dtype));
  if (all_aligned) return TensorData(info, std::move(parts));
  std::vector<std::vector<std::byte>> copies;
  for (auto p : parts) copies.emplace_back(p.begin(), p.end());
  return TensorData(info, std::move(copies));
}

std::span<const std::byte> TensorData::part(std::string_view name) const {
  for (size_t i = 0; i < parts_.size() && i < info_->parts.size(); ++i)
    if (info_->parts[i].name == name) return parts_[i];
  return {};
}

void TensorData::release_pages() const {
  if (!owned_.empty() || !owned_parts_.empty()) return;
  release_mapped_pages(bytes_);
  for (const auto& p : parts_) release_mapped_pages(p);
}

std::vector<float> TensorData::to_f32() const {
  auto dtype = info_->dense_dtype();
  if (!dtype) fail("tensor '{}': encoding '{}' is not a dense type", info_->name, info_->encoding);
  std::vector<float> out(info_->numel());
  convert_to_f32(*dtype, bytes_.data(), out.data(), out.size());
  return out;
}

const TensorInfo& CheckpointSource::info(const TensorKey& key) const {
  for (const auto& t : tensors_)
    if (t.key == key) return t;
  fail("{}: tensor '{}': not in this checkpoint", path_.string(), logical_name(key));
}

std::unique_ptr<CheckpointSource> open_checkpoint(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) return std::make_unique<HfCheckpoint>(path);
  if (!fs::exists(path)) fail("{}: no such file or directory", path.string());
  if (is_container_file(path)) return std::make_unique<ContainerReader>(path);
  fail("{}: neither a Hugging Face model folder nor a moec .h5 container", path.string());
}

}  // namespace moec
