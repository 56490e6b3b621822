// Calibration windows: `windows` non-overlapping windows of ctx tokens drawn
// at random (seeded) from a tokenized text, as GPTQ draws its segments.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace moec {

// Tokens of the chosen windows, window-major; fewer windows when the text
// has fewer. Throws when the text holds no full window.
std::vector<int32_t> calibration_windows(std::span<const int32_t> ids, int64_t windows, int64_t ctx, uint64_t seed);

}  // namespace moec
