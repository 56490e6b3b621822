#include "quant/tensor_view.h"

#include "io/error.h"

namespace moec {

QuantizedView quantized_view(const TensorData& tensor) {
  const TensorInfo& info = tensor.info();
  if (!info.encoded()) fail("tensor '{}': encoding '{}' is not a quantized encoding", info.name, info.encoding);
  QuantFormat format;
  try {
    format = QuantFormat::parse(info.format);
  } catch (const Error& e) {
    fail("tensor '{}': {}", info.name, e.what());
  }
  if (std::string_view(format.encoding()) != info.encoding)
    fail("tensor '{}': format '{}' does not belong to encoding '{}'", info.name, info.format, info.encoding);
  if (info.shape.size() != 2 || info.shape[0] <= 0 || info.shape[1] <= 0)
    fail("tensor '{}': a quantized tensor must be a non-empty matrix", info.name);
  const int64_t rows = info.shape[0], cols = info.shape[1];
  auto expect = [&](const char* part, uint64_t bytes) {
    auto data = tensor.part(part);
    if (data.empty() && bytes > 0) fail("tensor '{}': missing its '{}' array", info.name, part);
    if (data.size() != bytes)
      fail("tensor '{}': '{}' holds {} bytes but format {} of a [{}, {}] matrix needs {}", info.name, part,
           data.size(), info.format, rows, cols, bytes);
    return data.data();
  };
  QuantizedView view;
  view.format = format;
  view.rows = rows;
  view.cols = cols;
  view.codes = reinterpret_cast<const uint8_t*>(expect("codes", uint64_t(rows * format.row_bytes(cols))));
  view.scales = reinterpret_cast<const uint16_t*>(
      expect("scales", uint64_t(rows * format.groups(cols) * format.scales_per_group()) * 2));
  if (format.has_zeros())
    view.zeros = reinterpret_cast<const uint8_t*>(expect("zeros", uint64_t(rows * format.groups(cols))));
  // Scales (ternary: levels) decide every decoded weight: an infinite or NaN
  // one would turn a row into non-numbers without a word.
  const int64_t n_scales = rows * format.groups(cols) * format.scales_per_group();
  for (int64_t i = 0; i < n_scales; ++i)
    if ((view.scales[i] & 0x7c00) == 0x7c00)
      fail("tensor '{}': 'scales' value {} (row {}) is not a finite number", info.name, i,
           i / (format.groups(cols) * format.scales_per_group()));
  return view;
}

std::vector<std::span<const std::byte>> describe_quantized(const QuantizedMatrix& m, TensorInfo& info) {
  const int64_t groups = m.format.groups(m.cols);
  info.encoding = std::string(m.format.encoding());
  info.format = m.format.spec();
  info.parts = {{"codes", DType::U8, {m.rows, m.format.row_bytes(m.cols)}},
                {"scales", DType::U16, {m.rows, groups * m.format.scales_per_group()}}};
  std::vector<std::span<const std::byte>> parts{std::as_bytes(std::span(m.codes)), std::as_bytes(std::span(m.scales))};
  if (m.format.has_zeros()) {
    info.parts.push_back({"zeros", DType::U8, {m.rows, groups}});
    parts.push_back(std::as_bytes(std::span(m.zeros)));
  }
  info.nbytes = m.bytes();
  return parts;
}

}  // namespace moec
