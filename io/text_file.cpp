#include "io/text_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/error.h"

namespace moec {

std::string read_text_file(const std::filesystem::path& path) {
  if (std::filesystem::is_directory(path)) fail("{}: is a directory, not a text file", path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace moec
