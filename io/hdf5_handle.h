// RAII ownership of HDF5 C-API identifiers, and small typed helpers for the
// attributes the container uses. Internal to io/.
#pragma once
#include <hdf5.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moec::h5 {

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      closer_ = o.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  // Gives up ownership (the caller closes it).
  hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// HDF5 prints its error stack to stderr by default; moec reports one line of
// its own instead.
void silence_errors();

bool has_attribute(hid_t object, const char* name);
// A fixed-length string attribute; nullopt if absent, not a string, or a
// variable-length string (never read: HDF5's global heap parser is not safe
// on damaged files).
std::optional<std::string> read_string_attribute(hid_t object, const char* name);
std::optional<int64_t> read_int_attribute(hid_t object, const char* name);
std::optional<std::vector<int64_t>> read_int_array_attribute(hid_t object, const char* name);
// Writers throw moec::Error on failure; `what` names the file for the message.
// Strings are written fixed-length (UTF-8, NUL-terminated).
void write_string_attribute(hid_t object, const char* name, const std::string& value, const std::string& what);
void write_int_attribute(hid_t object, const char* name, int64_t value, const std::string& what);
void write_int_array_attribute(hid_t object, const char* name, const std::vector<int64_t>& value,
                               const std::string& what);

}  // namespace moec::h5
