// Whole text files (evaluation and calibration corpora).
#pragma once
#include <filesystem>
#include <string>

namespace moec {

// The file's bytes; moec::Error naming the file when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

}  // namespace moec
