#include "quantize/rate_control.h"

#include <algorithm>
#include <cmath>

#include "quant/sub1_code.h"

namespace moec {

std::array<double, 3> trit_code_lengths(const TritCounts& counts) {
  const double total = double(counts[0]) + double(counts[1]) + double(counts[2]) + 3.0;
  std::array<double, 3> bits{};
  for (int t = 0; t < 3; ++t) bits[t] = -std::log2((double(counts[t]) + 1.0) / total);
  return bits;
}

double expected_sub1_bits(const TunstallDictionary& dict, const Sub1Census& census) {
  if (census.weights() == 0) return 0;
  const double words = double(census.weights()) / dict.mean_weights_per_word(census.trits);
  const double blocks = double(census.rows) / double(kSub1BlockRows) + double(census.matrices);  // rounded up, about
  const double bits = 16.0 * words + 16.0 * double(census.rows) + blocks * (32.0 + 8.0) +
                      double(census.matrices) * 8.0 * (24 + 4 + 4);
  return bits / double(census.weights());
}

LambdaSearch::LambdaSearch(double target_bits, double start_lambda, double tolerance, int max_trials)
    : target_(target_bits), tolerance_(tolerance), max_trials_(max_trials), next_(start_lambda) {}

void LambdaSearch::observe(double lambda, double bits) {
  lambdas_.push_back(lambda);
  bits_.push_back(bits);
  // The nearest trials on either side of the target.
  int over = -1, under = -1;  // bits above the target (λ too small) / at or below it
  for (int i = 0; i < trials(); ++i) {
    if (bits_[i] > target_ && (over < 0 || lambdas_[i] > lambdas_[over])) over = i;
    if (bits_[i] <= target_ && (under < 0 || lambdas_[i] < lambdas_[under])) under = i;
  }
  if (over >= 0 && under >= 0) {
    if (lambdas_[over] <= 0) {  // λ = 0 cannot be a log: bisect
      next_ = lambdas_[under] / 2;
      return;
    }
    const double lo = std::log(lambdas_[over]), hi = std::log(lambdas_[under]);
    // The secant through the last two trials where it falls well inside the
    // bracket (fast near the answer); regula falsi between the bracket's
    // ends otherwise.
    const size_t a = lambdas_.size() - 1, b = a - 1;
    const double margin = 0.02 * (hi - lo);
    double x = lo - 1;
    if (bits_[a] != bits_[b] && lambdas_[b] > 0)
      x = std::log(lambdas_[a]) +
          (target_ - bits_[a]) * (std::log(lambdas_[a]) - std::log(lambdas_[b])) / (bits_[a] - bits_[b]);
    if (!(x > lo + margin && x < hi - margin)) {
      const double t = (bits_[over] - target_) / (bits_[over] - bits_[under]);
      x = lo + std::clamp(t, 0.05, 0.95) * (hi - lo);
    }
    next_ = std::exp(x);
  } else {
    next_ = extrapolated(over >= 0 ? over : under, over >= 0);
  }
}

// Not bracketed yet: all trials on one side of the target. Step from the
// nearest one (largest λ when bits are too high, smallest when too low) by
// the secant through it and the trial before it, if that points the right
// way, else by 4; the factor kept within [2, 16] so that a far start
// brackets in two or three trials.
double LambdaSearch::extrapolated(int nearest, bool increase) const {
  const double from = lambdas_[nearest];
  if (from <= 0) return increase ? 0.5 : 0.0;
  double factor = 4;
  const int prev = trials() - 2;
  if (prev >= 0 && prev != nearest && lambdas_[prev] > 0 && lambdas_[prev] != from) {
    const double slope = (bits_[nearest] - bits_[prev]) / (std::log(from) - std::log(lambdas_[prev]));
    if (slope < 0) factor = std::exp(std::abs((bits_[nearest] - target_) / slope));
  }
  factor = std::clamp(factor, 2.0, 16.0);
  return increase ? from * factor : from / factor;
}

bool LambdaSearch::done() const {
  if (trials() >= max_trials_) return true;
  for (int i = 0; i < trials(); ++i)
    if (std::abs(bits_[i] - target_) <= tolerance_) return true;
  // λ = 0 already below the target: nothing to trade.
  for (int i = 0; i < trials(); ++i)
    if (lambdas_[i] == 0 && bits_[i] <= target_) return true;
  return false;
}

int LambdaSearch::best() const {
  int best = 0;
  for (int i = 1; i < trials(); ++i)
    if (std::abs(bits_[i] - target_) < std::abs(bits_[best] - target_)) best = i;
  return best;
}

}  // namespace moec
