#include "quant/tunstall.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "io/error.h"

namespace moec {
namespace {

constexpr uint32_t kLeafBit = 0x80000000u;

uint8_t pair_symbol(const uint8_t* trits, int64_t cols, int64_t pair) {
  const int64_t c = 2 * pair;
  const uint8_t second = c + 1 < cols ? trits[c + 1] : 1;  // pad with a zero trit
  return uint8_t(3 * trits[c] + second);
}

// Room for n u64, 2 MiB aligned and advised to be a huge page.
uint64_t* allocate_table(size_t n) {
  constexpr size_t kHugePage = size_t(2) << 20;
  const size_t bytes = (n * sizeof(uint64_t) + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, bytes);
  if (!p) fail("cannot allocate a {}-byte decoding table", bytes);
  ::madvise(p, bytes, MADV_HUGEPAGE);  // advice only: fine if refused
  return static_cast<uint64_t*>(p);
}

}  // namespace

void TunstallDictionary::FreeTable::operator()(uint64_t* p) const { std::free(p); }

TritCounts count_trits(std::span<const uint8_t> trits) {
  TritCounts counts{};
  for (uint8_t t : trits) ++counts[t];
  return counts;
}

PairCounts count_pairs(std::span<const uint8_t> trits, int64_t rows, int64_t cols) {
  PairCounts counts{};
  const int64_t pairs = (cols + 1) / 2;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p = 0; p < pairs; ++p) ++counts[pair_symbol(trits.data() + r * cols, cols, p)];
  return counts;
}

namespace {

template <size_t N>
double entropy_bits(const std::array<uint64_t, N>& counts) {
  double total = 0, h = 0;
  for (auto c : counts) total += double(c);
  for (auto c : counts)
    if (c) h -= double(c) / total * std::log2(double(c) / total);
  return h;
}

}  // namespace

double trit_entropy_bits_per_weight(const TritCounts& counts) { return entropy_bits(counts); }
double pair_entropy_bits_per_weight(const PairCounts& counts) { return entropy_bits(counts) / 2.0; }

TunstallDictionary::TunstallDictionary(const TritCounts& counts, uint32_t max_words) : counts_(counts) {
  // Laplace smoothing: every trit stays encodable, counts of 0 included.
  std::array<double, 3> p{};
  double total = 0;
  for (int t = 0; t < 3; ++t) total += double(counts[t]) + 1.0;
  for (int t = 0; t < 3; ++t) p[t] = (double(counts[t]) + 1.0) / total;
  build(p, 1, kMaxTrits, max_words);
}

double TunstallDictionary::mean_weights_per_word(const TritCounts& source) const {
  if (symbol_trits_ != 1) fail("mean_weights_per_word(counts): a trit dictionary only");
  const double total = double(source[0]) + double(source[1]) + double(source[2]) + 3.0;
  const double p[3] = {(double(source[0]) + 1.0) / total, (double(source[1]) + 1.0) / total,
                       (double(source[2]) + 1.0) / total};
  // The codewords are the leaves of a complete ternary tree: their
  // probabilities under any i.i.d. source sum to one.
  double mean = 0;
  for (uint32_t w = 0; w < size(); ++w) {
    double prob = 1;
    for (int i = 0; i < lengths_[w]; ++i) prob *= p[trit(w, i)];
    mean += prob * lengths_[w];
  }
  return mean;
}

TunstallDictionary TunstallDictionary::pairs(const PairCounts& counts, int max_pairs, uint32_t max_words) {
  std::array<double, 9> p{};
  double total = 0;
  for (int s = 0; s < 9; ++s) total += double(counts[s]) + 1.0;
  for (int s = 0; s < 9; ++s) p[s] = (double(counts[s]) + 1.0) / total;
  TunstallDictionary d;
  d.build(p, 2, max_pairs, max_words);
  return d;
}

TunstallDictionary TunstallDictionary::qmoe_fixed() {
  // QMoE's assumption: i.i.d. weights, zero with probability 0.885, ±1 alike.
  const double p0 = 0.885, p1 = (1.0 - p0) / 2;
  const double trit[3] = {p1, p0, p1};
  std::array<double, 9> p{};
  for (int s = 0; s < 9; ++s) p[s] = trit[s / 3] * trit[s % 3];
  TunstallDictionary d;
  d.build(p, 2, 14, 65536);
  return d;
}

void TunstallDictionary::build(std::span<const double> p, int symbol_trits, int max_symbols, uint32_t max_words) {
  const uint32_t alphabet = uint32_t(p.size());
  if (max_words < alphabet || max_words > 65536)
    fail("Tunstall dictionary size {} must be in {}..65536", max_words, alphabet);
  if (max_symbols < 1 || max_symbols * symbol_trits > kMaxTrits)
    fail("Tunstall codewords of {} symbols exceed {} trits", max_symbols, kMaxTrits);
  alphabet_ = alphabet;
  symbol_trits_ = symbol_trits;
  fill_symbol_ = uint8_t(std::max_element(p.begin(), p.end()) - p.begin());

  struct Leaf {
    double probability;
    uint32_t id;  // creation order: ties split the older leaf first
    uint32_t parent;
    uint8_t symbol, depth;  // depth in symbols
    uint64_t low, high;  // bit i: trit i is 0 (low level), 2 (high level)
  };
  // Tunstall splits the most probable open leaf, older first on ties. No
  // heap is needed for that: leaves are split in non-increasing probability
  // order, so the children a symbol s adds (parent · p[s], rounding being
  // monotone) arrive in non-increasing order too, and in increasing id. One
  // FIFO queue per symbol then holds its open leaves sorted, and the leaf to
  // split is the best of the queues' heads: the same order as a priority
  // queue over (probability, id), hence the same dictionary, in O(1) a split.
  std::vector<std::vector<Leaf>> open(alphabet);  // per last symbol; consumed from head[s]
  std::vector<size_t> head(alphabet, 0);
  std::vector<Leaf> capped;  // at max_symbols: leaves for good
  uint32_t next_id = 0, internal = 1;
  child_.assign(alphabet, 0);
  auto add_children = [&](uint32_t node, const Leaf& parent) {
    for (uint32_t s = 0; s < alphabet; ++s) {
      uint64_t low = parent.low, high = parent.high;
      for (int j = 0; j < symbol_trits; ++j) {
        const int at = parent.depth * symbol_trits + j;  // < kMaxTrits = 64
        const uint32_t t = symbol_trits == 1 ? s : (j == 0 ? s / 3 : s % 3);
        low |= uint64_t(t == 0) << at;
        high |= uint64_t(t == 2) << at;
      }
      Leaf leaf{parent.probability * p[s], next_id++, node, uint8_t(s), uint8_t(parent.depth + 1), low, high};
      (leaf.depth >= max_symbols ? capped : open[s]).push_back(leaf);
    }
  };
  // The symbol whose queue holds the most probable open leaf (oldest on ties), or -1.
  auto best_queue = [&] {
    int best = -1;
    for (uint32_t s = 0; s < alphabet; ++s) {
      if (head[s] == open[s].size()) continue;
      const Leaf& a = open[s][head[s]];
      if (best < 0) {
        best = int(s);
        continue;
      }
      const Leaf& b = open[size_t(best)][head[size_t(best)]];
      if (a.probability > b.probability || (a.probability == b.probability && a.id < b.id)) best = int(s);
    }
    return best;
  };
  add_children(0, Leaf{1.0, 0, 0, 0, 0, 0, 0});
  uint32_t leaves = alphabet;
  for (int s; leaves + alphabet - 1 <= max_words && (s = best_queue()) >= 0;) {
    const Leaf leaf = open[size_t(s)][head[size_t(s)]++];
    const uint32_t node = internal++;
    child_.resize(size_t(internal) * alphabet, 0);
    child_[size_t(leaf.parent) * alphabet + leaf.symbol] = node;
    add_children(node, leaf);
    leaves += alphabet - 1;
  }
  // The remaining leaves become codewords, in creation order (ids are
  // dense: place each at its id, then read the ids in order).
  std::vector<const Leaf*> by_id(next_id, nullptr);
  for (const Leaf& leaf : capped) by_id[leaf.id] = &leaf;
  for (uint32_t s = 0; s < alphabet; ++s)
    for (size_t i = head[s]; i < open[s].size(); ++i) by_id[open[s][i].id] = &open[s][i];
  masks_.reset(allocate_table(size_t(leaves) * 2));
  for (const Leaf* leaf_ptr : by_id) {
    if (!leaf_ptr) continue;  // split: an internal node now
    const Leaf& leaf = *leaf_ptr;
    const uint32_t word = uint32_t(lengths_.size());
    const int trits = leaf.depth * symbol_trits;
    child_[size_t(leaf.parent) * alphabet + leaf.symbol] = kLeafBit | word;
    lengths_.push_back(uint8_t(trits));
    const uint64_t marker = trits < 64 ? uint64_t(1) << trits : 0;
    masks_[2 * word] = leaf.low | marker;
    masks_[2 * word + 1] = leaf.high | marker;
    mean_trits_ += leaf.probability * trits;
  }
}

void TunstallDictionary::encode(const uint8_t* trits, int64_t n, std::vector<uint16_t>& out) const {
  uint32_t node = 0;
  auto step = [&](uint32_t symbol) {
    const uint32_t next = child_[size_t(node) * alphabet_ + symbol];
    if (next & kLeafBit) {
      out.push_back(uint16_t(next & ~kLeafBit));
      node = 0;
    } else {
      node = next;
    }
  };
  if (symbol_trits_ == 1) {
    for (int64_t i = 0; i < n; ++i) step(trits[i]);
  } else {  // pairs; an odd stream's last trit is paired with a zero
    for (int64_t i = 0; i < n; i += 2) step(3u * trits[i] + (i + 1 < n ? trits[i + 1] : 1u));
  }
  while (node != 0) step(fill_symbol_);  // complete the last codeword; the decoder drops the excess
}

namespace {
std::mutex dictionaries_mutex;
std::map<TritCounts, std::unique_ptr<TunstallDictionary>> dictionaries;
}  // namespace

const TunstallDictionary& shared_dictionary(const TritCounts& counts) {
  std::lock_guard lock(dictionaries_mutex);
  auto it = dictionaries.find(counts);
  if (it != dictionaries.end()) return *it->second;
  if (dictionaries.size() >= kMaxSharedDictionaries)
    fail("more than {} distinct sub1 dictionaries (trit_counts) in one process: not a file moec wrote",
         kMaxSharedDictionaries);
  return *dictionaries.emplace(counts, std::make_unique<TunstallDictionary>(counts)).first->second;
}

size_t shared_dictionary_count() {
  std::lock_guard lock(dictionaries_mutex);
  return dictionaries.size();
}

void release_shared_dictionaries() {
  std::lock_guard lock(dictionaries_mutex);
  dictionaries.clear();
}

}  // namespace moec
