#include "quant/tunstall.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <queue>

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

TunstallDictionary::TunstallDictionary(const TritCounts& counts, uint32_t max_words) {
  if (max_words < 3 || max_words > 65536) fail("Tunstall dictionary size {} must be in 3..65536", max_words);
  // Laplace smoothing: every trit stays encodable, counts of 0 included.
  counts_ = counts;
  std::array<double, 3> p{};
  double total = 0;
  for (int t = 0; t < 3; ++t) total += double(counts[t]) + 1.0;
  for (int t = 0; t < 3; ++t) p[t] = (double(counts[t]) + 1.0) / total;
  fill_trit_ = uint8_t(std::max_element(p.begin(), p.end()) - p.begin());

  struct Leaf {
    double probability;
    uint32_t id;  // creation order: ties split the older leaf first
    uint32_t parent;
    uint8_t trit, depth;
    std::array<uint64_t, 2> path;
  };
  auto less_probable = [](const Leaf& a, const Leaf& b) {
    return a.probability < b.probability || (a.probability == b.probability && a.id > b.id);
  };
  std::priority_queue<Leaf, std::vector<Leaf>, decltype(less_probable)> open(less_probable);
  std::vector<Leaf> capped;  // at kMaxTrits: leaves for good
  uint32_t next_id = 0, internal = 1;
  child_.assign(3, 0);
  auto add_children = [&](uint32_t node, uint8_t depth, std::array<uint64_t, 2> path, double probability) {
    for (uint8_t t = 0; t < 3; ++t) {
      auto child_path = path;
      child_path[depth >> 5] |= uint64_t(t) << (2 * (depth & 31));
      Leaf leaf{probability * p[t], next_id++, node, t, uint8_t(depth + 1), child_path};
      (leaf.depth >= kMaxTrits ? capped.push_back(leaf) : open.push(leaf));
    }
  };
  add_children(0, 0, {0, 0}, 1.0);
  uint32_t leaves = 3;
  while (leaves + 2 <= max_words && !open.empty()) {
    Leaf leaf = open.top();
    open.pop();
    const uint32_t node = internal++;
    child_.resize(size_t(internal) * 3, 0);
    child_[size_t(leaf.parent) * 3 + leaf.trit] = node;
    add_children(node, leaf.depth, leaf.path, leaf.probability);
    leaves += 2;
  }
  // The remaining leaves become codewords, in creation order.
  std::vector<Leaf> all(capped);
  while (!open.empty()) {
    all.push_back(open.top());
    open.pop();
  }
  std::sort(all.begin(), all.end(), [](const Leaf& a, const Leaf& b) { return a.id < b.id; });
  masks_.reset(allocate_table(all.size() * 2));
  for (const Leaf& leaf : all) {
    const uint32_t word = uint32_t(lengths_.size());
    child_[size_t(leaf.parent) * 3 + leaf.trit] = kLeafBit | word;
    lengths_.push_back(leaf.depth);
    uint64_t low = 0, high = 0;
    for (int i = 0; i < leaf.depth; ++i) {
      const uint64_t t = (leaf.path[i >> 5] >> (2 * (i & 31))) & 3;
      low |= uint64_t(t == 0) << i;
      high |= uint64_t(t == 2) << i;
    }
    const uint64_t marker = leaf.depth < 64 ? uint64_t(1) << leaf.depth : 0;
    masks_[2 * word] = low | marker;
    masks_[2 * word + 1] = high | marker;
    mean_trits_ += leaf.probability * leaf.depth;
  }
}

void TunstallDictionary::encode(const uint8_t* trits, int64_t n, std::vector<uint16_t>& out) const {
  uint32_t node = 0;
  auto step = [&](uint8_t t) {
    const uint32_t next = child_[size_t(node) * 3 + t];
    if (next & kLeafBit) {
      out.push_back(uint16_t(next & ~kLeafBit));
      node = 0;
    } else {
      node = next;
    }
  };
  for (int64_t i = 0; i < n; ++i) step(trits[i]);
  while (node != 0) step(fill_trit_);  // complete the last codeword; the decoder drops the excess
}

const TunstallDictionary& shared_dictionary(const TritCounts& counts) {
  static std::mutex mutex;
  static std::map<TritCounts, std::unique_ptr<TunstallDictionary>> dictionaries;
  std::lock_guard lock(mutex);
  auto& slot = dictionaries[counts];
  if (!slot) slot = std::make_unique<TunstallDictionary>(counts);
  return *slot;
}

}  // namespace moec
