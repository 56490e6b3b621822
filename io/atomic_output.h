// Outputs appear complete or not at all: everything is written under a
// temporary name beside the target and renamed over it on commit(). If the
// writer is destroyed before commit() (an error was thrown), the temporary is
// removed, so a failed run never leaves a partial file behind. commit()
// fsyncs the data (every file of a folder) before the rename and the parent
// directory after it. A run killed outright (SIGKILL, power loss) may leave
// its temporary (target.moec-tmp-PID), never a partial target: the next
// AtomicOutput for the same target removes temporaries of dead processes and
// puts back a previous folder that a killed replacement had moved aside
// (target.moec-old-PID).
#pragma once
#include <filesystem>

namespace moec {

class AtomicOutput {
 public:
  enum class Kind { File, Directory };
  // `overwrite` allows replacing an existing target of the same kind; without
  // it an existing target is an error (checked now, before any work is done).
  AtomicOutput(std::filesystem::path target, bool overwrite, Kind kind);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  // Where to write: a file path, or a directory (created) with `make_directory`.
  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& target() const { return target_; }
  void make_directory();
  // Moves the temporary into place.
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path temp_;
  bool overwrite_;
  bool committed_ = false;
};

}  // namespace moec
