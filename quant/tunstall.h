// Variable-to-fixed (Tunstall) coding of ternary weight rows: the first
// piece of the sub-1-bit `sub1` encoding (issue 5; not yet wired into the
// container or the kernels).
//
// A row of trits (0 = low level, 1 = zero, 2 = high level) is parsed into
// words of a dictionary: the leaf set of a ternary tree grown by repeatedly
// splitting its most probable leaf (Tunstall's construction) until up to 2^16
// leaves; each leaf is a 16-bit codeword standing for 1..64 trits. Encoding
// parses a row greedily down the tree; a row's last partial path is completed
// with the most probable trit and cut off again by the decoder, which knows
// the row length. The dictionary is a pure function of the 3 trit counts, so
// a file stores the counts (24 bytes), not the 2^16 entries.
//
// Why trits and not QMoE's pairs (9 symbols): splitting a leaf adds 2 leaves
// instead of 8, so the 2^16 codewords go to probable strings rather than rare
// (±1, ±1) pairs. At p(0) = 0.885: trits 0.655 bits/weight (entropy 0.630),
// pairs 0.687 with a 32-pair cap, 0.731 with QMoE's 14-pair cap (measured).
#pragma once
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "io/host_device.h"

namespace moec {

using TritCounts = std::array<uint64_t, 3>;
using PairCounts = std::array<uint64_t, 9>;

TritCounts count_trits(std::span<const uint8_t> trits);
// Counts of the pair symbols 3·t0 + t1 of rows of trits ([rows, cols]
// row-major; an odd row's last trit is paired with a zero trit).
PairCounts count_pairs(std::span<const uint8_t> trits, int64_t rows, int64_t cols);
// Order-0 entropies in bits per weight: of single trits, and of pair symbols
// (half a pair's entropy; lower when neighbouring trits are correlated).
double trit_entropy_bits_per_weight(const TritCounts& counts);
double pair_entropy_bits_per_weight(const PairCounts& counts);

class TunstallDictionary {
 public:
  static constexpr int kMaxTrits = 64;  // a codeword covers at most 64 weights
  explicit TunstallDictionary(const TritCounts& counts, uint32_t max_words = 65536);

  uint32_t size() const { return uint32_t(lengths_.size()); }
  // Codeword w stands for lengths()[w] trits; trit i is trit(w, i).
  const std::vector<uint8_t>& lengths() const { return lengths_; }
  int trit(uint32_t w, int i) const { return int((trits_[2 * w + (i >> 5)] >> (2 * (i & 31))) & 3); }

  // Codewords of one row of `cols` trits.
  void encode_row(const uint8_t* trits, int64_t cols, std::vector<uint16_t>& out) const;
  // Decodes codewords from `words` into `cols` trits; returns codewords used.
  int64_t decode_row(const uint16_t* words, int64_t cols, uint8_t* trits) const;
  // Expected weights per codeword under the counts (for bits-per-weight estimates).
  double mean_weights_per_word() const { return mean_trits_; }

 private:
  std::vector<uint8_t> lengths_;
  std::vector<uint64_t> trits_;  // two words of 32 two-bit trits per codeword
  // Parse tree: child_[node * 3 + t] is an internal node id, or a codeword
  // with the top bit set.
  std::vector<uint32_t> child_;
  uint8_t fill_trit_ = 1;  // most probable trit, completes a row's last codeword
  double mean_trits_ = 0;
};

// A whole matrix of trits, coded: codewords row after row, and the index of
// the first codeword of every block of `block_rows` rows (so blocks decode in
// parallel).
struct Sub1Matrix {
  int64_t rows = 0, cols = 0, block_rows = 16;
  TritCounts counts{};
  std::vector<uint16_t> words;
  std::vector<uint32_t> block_offsets;
  // Code bits per weight: codewords, offsets and the counts (not the scales).
  double bits_per_weight() const;
};

Sub1Matrix encode_sub1(std::span<const uint8_t> trits, int64_t rows, int64_t cols, const TunstallDictionary& dict,
                       const TritCounts& counts, int64_t block_rows = 16);
// Decodes rows [row0, row0 + n) into trits [n, cols].
void decode_sub1_rows(const Sub1Matrix& m, const TunstallDictionary& dict, int64_t row0, int64_t n, uint8_t* trits);

}  // namespace moec
