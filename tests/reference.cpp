#include "tests/reference.h"

#include <algorithm>
#include <cmath>

#include <hdf5.h>

#include <stdexcept>

namespace moec::test {
namespace {

template <typename T>
RefArray<T> read(const std::filesystem::path& file, const std::string& name, hid_t mem_type) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("cannot open " + file.string());
  hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  if (d < 0) {
    H5Fclose(f);
    throw std::runtime_error("no dataset " + name);
  }
  hid_t s = H5Dget_space(d);
  int rank = H5Sget_simple_extent_ndims(s);
  std::vector<hsize_t> dims(size_t(rank > 0 ? rank : 0));
  H5Sget_simple_extent_dims(s, dims.data(), nullptr);
  RefArray<T> out;
  size_t n = 1;
  for (auto v : dims) {
    out.dims.push_back(size_t(v));
    n *= size_t(v);
  }
  out.values.resize(n);
  H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.values.data());
  H5Sclose(s);
  H5Dclose(d);
  H5Fclose(f);
  return out;
}

}  // namespace

RefArray<float> read_reference_floats(const std::filesystem::path& file, const std::string& name) {
  return read<float>(file, name, H5T_NATIVE_FLOAT);
}

RefArray<int32_t> read_reference_ints(const std::filesystem::path& file, const std::string& name) {
  return read<int32_t>(file, name, H5T_NATIVE_INT32);
}

double read_reference_attribute(const std::filesystem::path& file, const std::string& name) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = H5Aopen(f, name.c_str(), H5P_DEFAULT);
  double value = 0;
  H5Aread(a, H5T_NATIVE_DOUBLE, &value);
  H5Aclose(a);
  H5Fclose(f);
  return value;
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float worst = 0;
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

}  // namespace moec::test
