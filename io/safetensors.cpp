#include "io/safetensors.h"

#include <algorithm>
#include <set>
#include <tuple>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/limits.h"

namespace moec {
namespace {

using json = nlohmann::json;

// Parses the header JSON, rejecting duplicate top-level keys (nlohmann would
// silently keep the last one, hiding a lying file).
json parse_header(std::string_view text, const std::string& file) {
  std::set<std::string> seen;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()) {
      if (!seen.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json header = json::parse(text.begin(), text.end(), on_event, /*allow_exceptions=*/false);
  if (header.is_discarded()) fail("{}: header is not valid JSON", file);
  if (!header.is_object()) fail("{}: header is not a JSON object", file);
  if (!duplicate.empty()) fail("{}: tensor '{}': listed twice in the header", file, duplicate);
  return header;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& file) {
  if (!value.is_object()) fail("{}: __metadata__ is not an object of strings", file);
  std::map<std::string, std::string> metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) fail("{}: __metadata__ value '{}' is not a string", file, key);
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

std::vector<int64_t> parse_shape(const json& value, const std::string& file, const std::string& name) {
  if (!value.is_array()) fail("{}: tensor '{}': shape is not an array", file, name);
  if (value.size() > limits::kMaxRank)
    fail("{}: tensor '{}': {} dimensions (limit {})", file, name, value.size(), limits::kMaxRank);
  std::vector<int64_t> shape;
  for (const auto& dim : value) {
    if (!dim.is_number_integer()) fail("{}: tensor '{}': shape has a non-integer dimension", file, name);
    if (dim.get<int64_t>() < 0) fail("{}: tensor '{}': shape has a negative dimension", file, name);
    shape.push_back(dim.get<int64_t>());
  }
  return shape;
}

SafetensorsEntry parse_entry(const std::string& name, const json& value, const std::string& file) {
  if (name.size() > limits::kMaxNameBytes)
    fail("{}: tensor '{}...': name of {} bytes (limit {})", file, name.substr(0, 64), name.size(),
         limits::kMaxNameBytes);
  if (!value.is_object()) fail("{}: tensor '{}': entry is not an object", file, name);
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!value.contains(field)) fail("{}: tensor '{}': missing '{}'", file, name, field);
  const json& dtype = value["dtype"];
  if (!dtype.is_string()) fail("{}: tensor '{}': dtype is not a string", file, name);
  auto parsed = dtype_from_name(dtype.get<std::string>());
  if (!parsed) fail("{}: tensor '{}': unknown dtype '{}'", file, name, dtype.get<std::string>());

  SafetensorsEntry entry{name, *parsed, parse_shape(value["shape"], file, name), 0, 0};
  const json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    fail("{}: tensor '{}': data_offsets is not two non-negative integers", file, name);
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.end < entry.begin) fail("{}: tensor '{}': data_offsets end before they begin", file, name);

  uint64_t numel = shape_numel(entry.shape);
  if (numel == UINT64_MAX || numel > limits::kMaxTensorElements)
    fail("{}: tensor '{}': shape [{}] is too large (limit {} elements)", file, name, fmt::join(entry.shape, ", "),
         limits::kMaxTensorElements);
  if (entry.end - entry.begin != numel * dtype_size(entry.dtype))
    fail("{}: tensor '{}': holds {} bytes but its shape and dtype need {}", file, name,
         entry.end - entry.begin, numel * dtype_size(entry.dtype));
  return entry;
}

// Tensors must tile the data area exactly: sorted by offset, each one starts
// where the previous ended, and the last ends at the end of the file.
void check_tiling(const std::vector<SafetensorsEntry>& entries, uint64_t data_size, const std::string& file) {
  uint64_t cursor = 0;
  for (const auto& e : entries) {
    if (e.end > data_size)
      fail("{}: tensor '{}': data_offsets [{}, {}) run past the data area ({} bytes); file truncated?", file,
           e.name, e.begin, e.end, data_size);
    if (e.begin < cursor) fail("{}: tensor '{}': data overlaps the previous tensor", file, e.name);
    if (e.begin > cursor) fail("{}: tensor '{}': {} unused bytes before its data", file, e.name, e.begin - cursor);
    cursor = e.end;
  }
  if (cursor != data_size)
    fail("{}: {} bytes after the last tensor: file length does not match the header", file, data_size - cursor);
}

}  // namespace

uint64_t shape_numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return UINT64_MAX;
    if (d != 0 && n > (uint64_t{1} << 60) / static_cast<uint64_t>(d)) return UINT64_MAX;
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  const std::string file = path.string();
  auto bytes = file_.bytes();
  if (bytes.size() < 8) fail("{}: {} bytes is too short for a safetensors file", file, bytes.size());
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<uint8_t>(bytes[i]);
  if (header_size > limits::kSafetensorsHeaderBytes)
    fail("{}: header length {} is over the 100 MB limit", file, header_size);
  if (header_size > bytes.size() - 8)
    fail("{}: header length {} runs past the end of the file ({} bytes)", file, header_size, bytes.size());
  data_start_ = 8 + header_size;

  std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, header_size);
  json header = parse_header(text, file);
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      metadata_ = parse_metadata(value, file);
      continue;
    }
    entries_.push_back(parse_entry(key, value, file));
  }
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const auto& a, const auto& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  check_tiling(entries_, bytes.size() - data_start_, file);
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].name, i);
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::span<const std::byte> SafetensorsFile::bytes(const SafetensorsEntry& entry) const {
  return file_.bytes().subspan(data_start_ + entry.begin, entry.end - entry.begin);
}

}  // namespace moec
