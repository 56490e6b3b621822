#include "io/checksum.h"

#include <zlib.h>

#include <fmt/format.h>

#include "io/mapped_file.h"

namespace moec {

uint32_t crc32_file(const std::filesystem::path& path) {
  MappedFile file(path);
  auto bytes = file.bytes();
  uLong crc = crc32(0L, Z_NULL, 0);
  // 64 MiB at a time (zlib takes uInt lengths), each chunk's pages released
  // after it: a 5 GB shard must not enter the resident set whole.
  constexpr size_t kChunk = size_t{1} << 26;
  for (size_t pos = 0; pos < bytes.size(); pos += kChunk) {
    size_t n = std::min(kChunk, bytes.size() - pos);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + pos), static_cast<uInt>(n));
    release_mapped_pages(bytes.subspan(pos, n));
  }
  return static_cast<uint32_t>(crc);
}

uint32_t crc32_bytes(std::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t pos = 0; pos < bytes.size(); pos += kChunk)
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + pos),
                static_cast<uInt>(std::min(kChunk, bytes.size() - pos)));
  return static_cast<uint32_t>(crc);
}

nlohmann::json describe_files(const std::vector<std::filesystem::path>& files) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& f : files)
    list.push_back({{"file", f.filename().string()},
                    {"bytes", std::filesystem::file_size(f)},
                    {"crc32", fmt::format("{:08x}", crc32_file(f))}});
  return list;
}

}  // namespace moec
