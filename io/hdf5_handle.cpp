#include "io/hdf5_handle.h"

#include <cstring>

#include "io/error.h"
#include "io/limits.h"

namespace moec::h5 {

void silence_errors() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

bool has_attribute(hid_t object, const char* name) { return H5Aexists(object, name) > 0; }

std::optional<std::string> read_string_attribute(hid_t object, const char* name) {
  if (!has_attribute(object, name)) return std::nullopt;
  Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) return std::nullopt;
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Sget_simple_extent_npoints(space.get()) != 1) return std::nullopt;
  // Variable-length strings live in HDF5's global heap, whose parser
  // (libhdf5 1.10) loops forever on some damaged files (found by fuzzing):
  // never read.
  if (H5Tis_variable_str(type.get()) != 0) return std::nullopt;
  size_t size = H5Tget_size(type.get());
  if (size == 0 || size > limits::kMaxStringAttributeBytes) return std::nullopt;
  std::string out(size, '\0');
  Handle mem(H5Tcopy(type.get()), H5Tclose);
  if (H5Aread(attr.get(), mem.get(), out.data()) < 0) return std::nullopt;
  out.resize(std::strlen(out.c_str()));
  return out;
}

std::optional<std::vector<int64_t>> read_int_array_attribute(hid_t object, const char* name) {
  if (!has_attribute(object, name)) return std::nullopt;
  Handle attr(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  Handle type(H5Aget_type(attr.get()), H5Tclose);
  Handle space(H5Aget_space(attr.get()), H5Sclose);
  if (!attr.valid() || H5Tget_class(type.get()) != H5T_INTEGER) return std::nullopt;
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0 || n > 64) return std::nullopt;
  std::vector<int64_t> values(static_cast<size_t>(n));
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()) < 0) return std::nullopt;
  return values;
}

std::optional<int64_t> read_int_attribute(hid_t object, const char* name) {
  auto values = read_int_array_attribute(object, name);
  if (!values || values->size() != 1) return std::nullopt;
  return values->front();
}

void write_string_attribute(hid_t object, const char* name, const std::string& value, const std::string& what) {
  // Fixed length (value + NUL), UTF-8: no global heap (see read_string_attribute).
  if (value.size() + 1 > limits::kMaxStringAttributeBytes)
    fail("{}: attribute '{}' of {} bytes is over the {} byte limit", what, name, value.size(),
         limits::kMaxStringAttributeBytes);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), value.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), type.get(), value.c_str()) < 0)
    fail("{}: cannot write attribute '{}'", what, name);
}

void write_int_array_attribute(hid_t object, const char* name, const std::vector<int64_t>& value,
                               const std::string& what) {
  hsize_t n = value.size();
  Handle space(n ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL), H5Sclose);
  Handle attr(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || (n && H5Awrite(attr.get(), H5T_NATIVE_INT64, value.data()) < 0))
    fail("{}: cannot write attribute '{}'", what, name);
}

void write_int_attribute(hid_t object, const char* name, int64_t value, const std::string& what) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(object, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) < 0)
    fail("{}: cannot write attribute '{}'", what, name);
}

}  // namespace moec::h5
