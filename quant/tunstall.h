// Variable-to-fixed (Tunstall) coding of ternary weights: the dictionary of
// the sub-1-bit `sub1` encoding (quant/sub1.h).
//
// A stream of trits (0 = low level, 1 = zero, 2 = high level) is parsed into
// words of a dictionary: the leaf set of a ternary tree grown by repeatedly
// splitting its most probable leaf (Tunstall's construction) until up to 2^16
// leaves; each leaf is a 16-bit codeword standing for 1..64 trits. Encoding
// parses a stream greedily down the tree; its last partial path is completed
// with the most probable trit and cut off again by the decoder, which knows
// the stream's length. The dictionary is a pure function of the 3 trit
// counts, so a file stores the counts (24 bytes), not the 2^16 entries.
//
// Why trits and not QMoE's pairs (9 symbols): splitting a leaf adds 2 leaves
// instead of 8, so the 2^16 codewords go to probable strings rather than rare
// (±1, ±1) pairs. At p(0) = 0.885: trits 0.655 bits/weight (entropy 0.630),
// pairs 0.687 with a 32-pair cap, 0.731 with QMoE's 14-pair cap (measured).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "quant/sub1_code.h"

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
  static constexpr int kMaxTrits = kSub1MaxWordTrits;  // a codeword covers at most 64 weights
  // The dictionary over single trits, from their counts (sub1's).
  explicit TunstallDictionary(const TritCounts& counts, uint32_t max_words = 65536);
  // Over pair symbols 3·t0 + t1 (QMoE's alphabet), at most max_pairs per
  // codeword: for comparisons (`moec bench sub1`); it decodes through the
  // same table, but containers store trit dictionaries only.
  static TunstallDictionary pairs(const PairCounts& counts, int max_pairs = 32, uint32_t max_words = 65536);
  // QMoE's fixed dictionary: pairs, built once for p(0) = 0.885, ≤ 14 pairs.
  static TunstallDictionary qmoe_fixed();

  uint32_t size() const { return uint32_t(lengths_.size()); }
  const TritCounts& counts() const { return counts_; }  // trit dictionaries only
  int symbol_trits() const { return symbol_trits_; }
  // Codeword w stands for lengths()[w] trits; trit i is trit(w, i).
  const std::vector<uint8_t>& lengths() const { return lengths_; }
  int trit(uint32_t w, int i) const { return sub1_word_trit(codebook(), w, i); }
  // The decoding table (quant/sub1_code.h): 16 bytes per codeword.
  Sub1Codebook codebook() const { return {masks_.get(), size()}; }

  // Appends the codewords of a stream of n trits; the last codeword is
  // completed with the most probable symbol, which the decoder (knowing n)
  // cuts off again.
  void encode(const uint8_t* trits, int64_t n, std::vector<uint16_t>& out) const;
  // Expected weights per codeword under the counts (for bits-per-weight estimates).
  double mean_weights_per_word() const { return mean_trits_; }
  // The same for i.i.d. trits of other counts (a shared dictionary coding
  // another layer's trits): Σ over codewords of P(word) · length.
  double mean_weights_per_word(const TritCounts& source) const;

 private:
  TunstallDictionary() = default;
  // Grows the tree over an alphabet of p.size() symbols of symbol_trits
  // trits each.
  void build(std::span<const double> p, int symbol_trits, int max_symbols, uint32_t max_words);

  TritCounts counts_{};
  uint32_t alphabet_ = 3;
  int symbol_trits_ = 1;
  std::vector<uint8_t> lengths_;
  // Per codeword: low, high bit masks with the end marker. In one 2 MiB
  // huge page where the kernel allows it: the kernels read it at random, and
  // with 4 KiB pages those reads miss the TLB.
  struct FreeTable {
    void operator()(uint64_t* p) const;
  };
  std::unique_ptr<uint64_t[], FreeTable> masks_;
  // Parse tree: child_[node * 3 + t] is an internal node id, or a codeword
  // with the top bit set.
  std::vector<uint32_t> child_;
  uint8_t fill_symbol_ = 1;  // most probable symbol, completes a stream's last codeword
  double mean_trits_ = 0;
};

// The dictionary of these counts, built once per process and shared (a
// model's tensors that share counts share one decoding table of 1-3 MiB).
// moec's quantizer writes one set of counts per model; a file that asks for
// more than kMaxSharedDictionaries distinct ones is refused (moec::Error)
// instead of building gigabytes of tables.
inline constexpr size_t kMaxSharedDictionaries = 64;
const TunstallDictionary& shared_dictionary(const TritCounts& counts);
// Frees every shared dictionary. Only when no view into one is alive (the
// fuzz targets call it between inputs).
void release_shared_dictionaries();
size_t shared_dictionary_count();

}  // namespace moec
