// Reads the PyTorch reference numbers in ../shared/fixtures/reference/*.h5.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace moec::test {

template <typename T>
struct RefArray {
  std::vector<T> values;
  std::vector<size_t> dims;
};

RefArray<float> read_reference_floats(const std::filesystem::path& file, const std::string& name);
RefArray<int32_t> read_reference_ints(const std::filesystem::path& file, const std::string& name);
double read_reference_attribute(const std::filesystem::path& file, const std::string& name);

// The largest |a[i] - b[i]| (comparisons with reference arrays).
float max_abs_diff(const float* a, const float* b, size_t n);

}  // namespace moec::test
