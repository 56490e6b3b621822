// Lossless conversion of any checkpoint source into a moec container, one
// tensor at a time (memory stays bounded by the mapping's page cache).
#pragma once
#include <filesystem>
#include <functional>
#include <string>

#include "io/checkpoint.h"

namespace moec {

struct ConvertResult {
  size_t tensors = 0;
  uint64_t tensor_bytes = 0;
  uint64_t file_bytes = 0;
};

// Called after each layer (and once at the end with layer == num_layers).
using LayerProgress = std::function<void(int layer, int num_layers)>;

ConvertResult convert_to_container(const CheckpointSource& source, const std::filesystem::path& out,
                                   bool overwrite, const std::string& command_line,
                                   const LayerProgress& progress = {});

}  // namespace moec
