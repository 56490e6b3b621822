#include "io/atomic_output.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>

#include "io/error.h"

namespace moec {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kTempTag = ".moec-tmp-";
constexpr std::string_view kOldTag = ".moec-old-";
// A moved-aside folder is renamed to this before it is deleted: a folder
// under kOldTag is always whole (the next run may put it back), one under
// kTrashTag may be half deleted (the next run only removes it).
constexpr std::string_view kTrashTag = ".moec-del-";

// fsync of a file or directory by path: its data (or its entries) reach the
// disk before the rename that publishes them, so a crash of the machine (not
// only of moec) cannot leave a complete name over incomplete data.
void sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open to sync: {}", path.string(), std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) fail("{}: fsync failed: {}", path.string(), std::strerror(err));
}

void sync_tree(const fs::path& path) {
  if (fs::is_directory(path))
    for (const auto& entry : fs::recursive_directory_iterator(path)) sync_path(entry.path());
  sync_path(path);
}

// The pid a leftover name was made by, when `name` is `base` + tag + digits.
std::optional<pid_t> leftover_pid(const std::string& name, const std::string& base, std::string_view tag) {
  if (name.size() <= base.size() + tag.size() || name.compare(0, base.size(), base) != 0 ||
      name.compare(base.size(), tag.size(), tag) != 0)
    return std::nullopt;
  const std::string digits = name.substr(base.size() + tag.size());
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) return std::nullopt;
  return pid_t(std::stol(digits));
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

// `target` + tag + pid: the names of a run's leftovers beside its target.
fs::path leftover_name(const fs::path& target, std::string_view tag, pid_t pid) {
  fs::path name = target;
  name += std::string(tag) + std::to_string(pid);
  return name;
}

// Deletes a moved-aside folder under its kTrashTag name (`trash`): killed
// halfway through remove_all, a folder still under kOldTag would be put back
// half deleted by the next run once the new output is gone (seen in
// tests/kill_test.sh). If the rename fails it is deleted where it is.
void discard_folder(const fs::path& folder, const fs::path& trash) {
  std::error_code ec;
  fs::rename(folder, trash, ec);
  fs::remove_all(ec ? folder : trash, ec);
}

// What a killed run (SIGKILL, power loss) of an earlier moec left beside the
// target: its temporary and a folder it was deleting are removed; a previous
// output it had moved aside (while replacing a folder) is put back if
// nothing took its place.
void recover_leftovers(const fs::path& target) {
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  const std::string base = target.filename().string();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    auto removable = leftover_pid(name, base, kTempTag);  // a temporary, or a folder being deleted
    if (!removable) removable = leftover_pid(name, base, kTrashTag);
    auto old = leftover_pid(name, base, kOldTag);
    if (removable && *removable != ::getpid() && !process_alive(*removable)) {
      fs::remove_all(entry.path(), ec);
    } else if (old && *old != ::getpid() && !process_alive(*old)) {
      if (!fs::exists(target)) fs::rename(entry.path(), target, ec);
      else discard_folder(entry.path(), leftover_name(target, kTrashTag, *old));
    }
  }
}

}  // namespace

AtomicOutput::AtomicOutput(fs::path target, bool overwrite, Kind kind)
    : target_(std::move(target)), overwrite_(overwrite) {
  if (target_.filename().empty()) fail("{}: output name is empty", target_.string());
  fs::path parent = target_.parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    fail("{}: directory '{}' does not exist", target_.string(), parent.string());
  recover_leftovers(target_);
  if (!overwrite_ && fs::exists(target_)) fail("{}: already exists (use --force to replace it)", target_.string());
  if (kind == Kind::File && fs::is_directory(target_))
    fail("{}: is a directory, not replacing it with a file", target_.string());
  if (kind == Kind::Directory && fs::exists(target_) && !fs::is_directory(target_))
    fail("{}: is a file, not replacing it with a folder", target_.string());
  temp_ = leftover_name(target_, kTempTag, ::getpid());
  std::error_code ec;
  fs::remove_all(temp_, ec);
  // An earlier process with this pid (containers reuse pids) may have left
  // one: commit() must be able to rename a folder to that name.
  fs::remove_all(leftover_name(target_, kTrashTag, ::getpid()), ec);
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

void AtomicOutput::make_directory() {
  std::error_code ec;
  if (!fs::create_directory(temp_, ec) || ec)
    fail("{}: cannot create directory: {}", temp_.string(), ec.message());
}

void AtomicOutput::commit() {
  std::error_code ec;
  sync_tree(temp_);
  if (fs::is_directory(temp_) && fs::exists(target_)) {
    // rename() cannot replace a non-empty directory: move the old one aside
    // (a run killed in between leaves it under kOldTag; the next run puts it
    // back, see recover_leftovers).
    const fs::path old = leftover_name(target_, kOldTag, ::getpid());
    fs::rename(target_, old, ec);
    if (ec) fail("{}: cannot replace: {}", target_.string(), ec.message());
    fs::rename(temp_, target_, ec);
    if (ec) {
      std::error_code ignored;
      fs::rename(old, target_, ignored);  // put the previous output back
      fail("{}: cannot move output into place: {}", target_.string(), ec.message());
    }
    discard_folder(old, leftover_name(target_, kTrashTag, ::getpid()));
  } else {
    if (fs::is_directory(target_) && !fs::is_directory(temp_))
      fail("{}: is a directory, not replacing it with a file", target_.string());
    fs::rename(temp_, target_, ec);
    if (ec) fail("{}: cannot move output into place: {}", target_.string(), ec.message());
  }
  committed_ = true;
  sync_path(target_.parent_path().empty() ? fs::path(".") : target_.parent_path());  // the rename itself
}

}  // namespace moec
