// Rate control for rate-aware ternary GPTQ (quant/gptq.h, TernaryRate) on
// sub1 codes: the trits' code lengths, a layer's expected stored bits, and
// the search for the λ that meets a bits-per-weight target.
//
// Bits fall monotonically as λ grows; each trial is one more GPTQ pass over
// a layer's experts, so the search is cheap in trials: the pipeline runs it
// on layer 0 only and keeps that λ for the model (quantize/pipeline.cpp says
// why one λ and not one per layer).
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "quant/tunstall.h"

namespace moec {

// −log2 p of trits 0, 1, 2 under these counts, Laplace-smoothed as the
// Tunstall dictionary is (tunstall.h): what a code built from them spends.
std::array<double, 3> trit_code_lengths(const TritCounts& counts);

// The trits and rows of a set of sub1 matrices.
struct Sub1Census {
  TritCounts trits{};
  int64_t rows = 0, matrices = 0;
  int64_t weights() const { return int64_t(trits[0] + trits[1] + trits[2]); }
};

// Expected stored bits per weight of these matrices coded by `dict`: the
// codewords (16 bits per mean_weights_per_word trits), each row's two level
// codes, each block's offset and its last partial codeword (half a word on
// average), each matrix's counts and scale (quant/sub1.h).
double expected_sub1_bits(const TunstallDictionary& dict, const Sub1Census& census);

// Searches λ ≥ 0 so that a layer's bits land within `tolerance` of the
// target, from at most `max_trials` trials: a secant step in log λ between
// the two nearest trials that bracket the target; until two do, a step by
// the secant's extrapolation (a factor of 2 to 16).
class LambdaSearch {
 public:
  LambdaSearch(double target_bits, double start_lambda, double tolerance = 0.005, int max_trials = 6);
  double next() const { return next_; }
  void observe(double lambda, double bits);  // a trial's result; sets next()
  bool done() const;
  // The trial to keep: the one closest to the target.
  int best() const;
  int trials() const { return int(lambdas_.size()); }
  double lambda(int trial) const { return lambdas_[size_t(trial)]; }
  double bits(int trial) const { return bits_[size_t(trial)]; }

 private:
  double extrapolated(int nearest, bool increase) const;
  double target_, tolerance_;
  int max_trials_;
  double next_;
  std::vector<double> lambdas_, bits_;
};

}  // namespace moec
