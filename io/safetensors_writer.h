// Writes one safetensors file, streaming: the header (all names, dtypes and
// shapes) is fixed up front, then tensors are written one at a time in that
// order, so memory stays bounded by one tensor. The header is padded with
// spaces to a multiple of 8 bytes (so the data area is aligned) and carries
// __metadata__ {"format": "pt"} as PyTorch loaders expect.
#pragma once
#include <cstdio>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace moec {

struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t nbytes() const;
};

class SafetensorsWriter {
 public:
  // Opens `path` (a temporary, usually) and writes the header.
  SafetensorsWriter(const std::filesystem::path& path, std::vector<TensorSpec> specs,
                    std::map<std::string, std::string> metadata = {{"format", "pt"}});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next tensor, in the order of the specs; its size must match.
  void write(std::string_view name, std::span<const std::byte> bytes);
  // Checks every tensor was written, flushes and closes.
  void finish();

 private:
  std::filesystem::path path_;
  std::vector<TensorSpec> specs_;
  size_t next_ = 0;
  std::FILE* out_ = nullptr;
};

}  // namespace moec
