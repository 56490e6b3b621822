// Shared by the fuzz targets (tests/fuzz/*_fuzz.cpp). Each target defines
// LLVMFuzzerTestOneInput; it is linked either with libFuzzer (MOEC_FUZZ=ON,
// clang) or with replay_main.cpp, which runs a corpus through it once (ctest
// does that in every build).
//
// The contract every target checks: moec either accepts the input or throws
// moec::Error (one line naming the file). Any other exception escapes the
// target and is reported as a finding (libFuzzer: "deadly signal"; replay:
// exit 1), as are crashes, sanitizer reports, leaks, timeouts and memory over
// the run's limit.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>

#include "io/error.h"

namespace moec::fuzz {

// A file holding `bytes`, for readers that take a path (mmap, HDF5): in
// /dev/shm (memory) where it exists, else the temporary folder; removed when
// the object dies. Not a memfd: HDF5 resolves the path's real name, which a
// memfd does not have.
class MemFile {
 public:
  explicit MemFile(std::span<const uint8_t> bytes, const char* name = "moec-fuzz") {
    static int counter = 0;
    const std::filesystem::path dir = std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                                          : std::filesystem::temp_directory_path();
    path_ = dir / (std::string(name) + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + path_.string());
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n <= 0) {
        ::close(fd);
        throw std::runtime_error("cannot write " + path_.string());
      }
      done += size_t(n);
    }
    ::close(fd);
  }
  ~MemFile() { ::unlink(path_.c_str()); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs `body`; a moec::Error is the expected way to refuse bad input.
template <typename F>
void accept_or_refuse(F&& body) {
  try {
    body();
  } catch (const moec::Error&) {
  }
}

}  // namespace moec::fuzz
