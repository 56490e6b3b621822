#include "io/safetensors_writer.h"

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/safetensors.h"

namespace moec {

uint64_t TensorSpec::nbytes() const { return shape_numel(shape) * dtype_size(dtype); }

SafetensorsWriter::SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorSpec> specs,
                                     std::map<std::string, std::string> metadata)
    : path_(path), specs_(std::move(specs)) {
  // nlohmann's ordered_json keeps tensors in data order, which readers like.
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& spec : specs_) {
    uint64_t end = offset + spec.nbytes();
    header[spec.name] = {{"dtype", dtype_name(spec.dtype)}, {"shape", spec.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  out_ = std::fopen(path_.c_str(), "wb");
  if (!out_) fail("{}: cannot create: {}", path_.string(), std::strerror(errno));
  unsigned char length[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(n >> (8 * i));
  if (std::fwrite(length, 1, 8, out_) != 8 || std::fwrite(text.data(), 1, text.size(), out_) != text.size())
    fail("{}: write failed: {}", path_.string(), std::strerror(errno));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (out_) std::fclose(out_);
}

void SafetensorsWriter::write(std::string_view name, std::span<const std::byte> bytes) {
  if (next_ >= specs_.size()) fail("{}: tensor '{}': not declared in the header", path_.string(), name);
  const TensorSpec& spec = specs_[next_];
  if (spec.name != name)
    fail("{}: tensor '{}': written out of order (expected '{}')", path_.string(), name, spec.name);
  if (bytes.size() != spec.nbytes())
    fail("{}: tensor '{}': {} bytes given, header says {}", path_.string(), name, bytes.size(), spec.nbytes());
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), out_) != bytes.size())
    fail("{}: tensor '{}': write failed: {}", path_.string(), name, std::strerror(errno));
  ++next_;
}

void SafetensorsWriter::finish() {
  if (next_ != specs_.size())
    fail("{}: tensor '{}': never written", path_.string(), specs_[next_].name);
  int rc = std::fclose(out_);
  out_ = nullptr;
  if (rc != 0) fail("{}: close failed: {}", path_.string(), std::strerror(errno));
}

}  // namespace moec
