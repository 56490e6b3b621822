#include "quant/format.h"

#include <fmt/format.h>

#include <charconv>

#include "io/error.h"

namespace moec {

QuantFormat QuantFormat::parse(std::string_view spec) {
  if (spec == "ternary-qmoe") return {GridKind::TernaryQmoe, 2, 0};
  if (spec == "ternary-sym") return {GridKind::TernarySym, 2, 0};
  if (spec == "sub1") return {GridKind::Sub1, 2, 0};
  QuantFormat f;
  int bits = 0;
  long long group = -1;
  if (spec.size() >= 4 && spec[0] == 'q') {
    auto [p, ec] = std::from_chars(spec.data() + 1, spec.data() + spec.size(), bits);
    if (ec == std::errc() && p < spec.data() + spec.size() && *p == 'g') {
      auto [q, ec2] = std::from_chars(p + 1, spec.data() + spec.size(), group);
      if (ec2 != std::errc() || q != spec.data() + spec.size()) group = -1;
    }
  }
  if (bits < 2 || bits > 8 || group < 0)
    fail("quantization format '{}' is not known (use q<bits 2-8>g<group>, ternary-qmoe, ternary-sym or sub1)", spec);
  f.bits = bits;
  f.group_size = group;
  return f;
}

std::string QuantFormat::spec() const {
  switch (kind) {
    case GridKind::TernaryQmoe: return "ternary-qmoe";
    case GridKind::TernarySym: return "ternary-sym";
    case GridKind::Sub1: return "sub1";
    default: return fmt::format("q{}g{}", bits, group_size);
  }
}

int64_t QuantFormat::group_columns(int64_t cols) const {
  return (ternary() || group_size == 0 || group_size >= cols) ? cols : group_size;
}

int64_t QuantFormat::groups(int64_t cols) const {
  const int64_t g = group_columns(cols);
  return g == 0 ? 0 : (cols + g - 1) / g;
}

int64_t QuantFormat::row_bytes(int64_t cols) const { return ternary() ? (cols + 4) / 5 : (cols * bits + 7) / 8; }

uint64_t QuantFormat::stored_bytes(int64_t rows, int64_t cols) const {
  return uint64_t(rows) * uint64_t(row_bytes(cols) + groups(cols) * (2 * scales_per_group() + (has_zeros() ? 1 : 0)));
}

int QuantFormat::scales_per_group() const { return kind == GridKind::TernarySym || kind == GridKind::Affine ? 1 : 2; }

}  // namespace moec
