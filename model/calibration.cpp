#include "model/calibration.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "io/error.h"

namespace moec {

std::vector<int32_t> calibration_windows(std::span<const int32_t> ids, int64_t windows, int64_t ctx, uint64_t seed) {
  if (ctx < 2) fail("--ctx must be at least 2, got {}", ctx);
  if (windows < 1) fail("--calib-windows must be at least 1, got {}", windows);
  const int64_t available = int64_t(ids.size()) / ctx;
  if (available == 0) fail("the calibration text has {} tokens, fewer than one window of {}", ids.size(), ctx);
  std::vector<int64_t> order(static_cast<size_t>(available));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(size_t(std::min(windows, available)));
  std::sort(order.begin(), order.end());
  std::vector<int32_t> tokens;
  tokens.reserve(order.size() * size_t(ctx));
  for (int64_t w : order) tokens.insert(tokens.end(), ids.begin() + w * ctx, ids.begin() + (w + 1) * ctx);
  return tokens;
}

}  // namespace moec
