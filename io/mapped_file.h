// A read-only memory mapping of a whole file. Checkpoints are tens to
// thousands of GB, so tensors are views into the mapping, never copies.
#pragma once
#include <cstddef>
#include <filesystem>
#include <span>

namespace moec {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`; throws moec::Error naming the file when it cannot.
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void release();
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moec
