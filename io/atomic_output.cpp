#include "io/atomic_output.h"

#include <unistd.h>

#include <system_error>

#include "io/error.h"

namespace moec {

namespace fs = std::filesystem;

AtomicOutput::AtomicOutput(fs::path target, bool overwrite, Kind kind)
    : target_(std::move(target)), overwrite_(overwrite) {
  if (target_.filename().empty()) fail("{}: output name is empty", target_.string());
  if (!overwrite_ && fs::exists(target_)) fail("{}: already exists (use --force to replace it)", target_.string());
  if (kind == Kind::File && fs::is_directory(target_))
    fail("{}: is a directory, not replacing it with a file", target_.string());
  if (kind == Kind::Directory && fs::exists(target_) && !fs::is_directory(target_))
    fail("{}: is a file, not replacing it with a folder", target_.string());
  fs::path parent = target_.parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    fail("{}: directory '{}' does not exist", target_.string(), parent.string());
  temp_ = target_;
  temp_ += ".moec-tmp-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(temp_, ec);
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
  if (fs::is_directory(temp_) && fs::exists(target_)) {
    // rename() cannot replace a non-empty directory: move the old one aside.
    fs::path old = target_;
    old += ".moec-old-" + std::to_string(::getpid());
    fs::rename(target_, old, ec);
    if (ec) fail("{}: cannot replace: {}", target_.string(), ec.message());
    fs::rename(temp_, target_, ec);
    if (ec) {
      std::error_code ignored;
      fs::rename(old, target_, ignored);  // put the previous output back
      fail("{}: cannot move output into place: {}", target_.string(), ec.message());
    }
    fs::remove_all(old, ec);
  } else {
    if (fs::is_directory(target_) && !fs::is_directory(temp_))
      fail("{}: is a directory, not replacing it with a file", target_.string());
    fs::rename(temp_, target_, ec);
    if (ec) fail("{}: cannot move output into place: {}", target_.string(), ec.message());
  }
  committed_ = true;
}

}  // namespace moec
