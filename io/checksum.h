// CRC-32 (zlib's) of whole files, recorded in a container's provenance so a
// compressed model can be traced to the exact checkpoint it came from.
#pragma once
#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

namespace moec {

uint32_t crc32_file(const std::filesystem::path& path);
uint32_t crc32_bytes(std::string_view bytes);
// [{"file": name, "bytes": n, "crc32": "89abcdef"}, ...]
nlohmann::json describe_files(const std::vector<std::filesystem::path>& files);

}  // namespace moec
