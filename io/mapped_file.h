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

// Drops the pages wholly inside `bytes` (a view into a read-only file
// mapping) from this process's resident set, for stages that stream a model
// once: the kernel keeps them in its page cache and a later read faults
// them back in. Without it, reading a 90 GB checkpoint layer by layer would
// leave every page counted in the process's RSS until the end. Anything
// else (an owned copy, an empty span) is left alone.
void release_mapped_pages(std::span<const std::byte> bytes);

}  // namespace moec
