// Reader for the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header][data area]
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end)}
// relative to the data area, plus an optional "__metadata__" string map.
// Opening validates the whole header (see validate rules in safetensors.cpp)
// so that later stages can trust every view without further checks.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/mapped_file.h"

namespace moec {


struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data area
  uint64_t end = 0;
};

uint64_t shape_numel(const std::vector<int64_t>& shape);

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws moec::Error naming the file (and the
  // tensor) on the first rule the file breaks.
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  // Entries in the order of their data.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(std::string_view name) const;
  // Zero-copy view of an entry's bytes inside the mapping.
  std::span<const std::byte> bytes(const SafetensorsEntry& entry) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return file_.size(); }

 private:
  MappedFile file_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace moec
