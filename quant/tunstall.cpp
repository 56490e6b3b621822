#include "quant/tunstall.h"

#include <algorithm>
#include <cmath>
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

}  // namespace

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
  for (const Leaf& leaf : all) {
    const uint32_t word = uint32_t(lengths_.size());
    child_[size_t(leaf.parent) * 3 + leaf.trit] = kLeafBit | word;
    lengths_.push_back(leaf.depth);
    trits_.push_back(leaf.path[0]);
    trits_.push_back(leaf.path[1]);
    mean_trits_ += leaf.probability * leaf.depth;
  }
}

void TunstallDictionary::encode_row(const uint8_t* trits, int64_t cols, std::vector<uint16_t>& out) const {
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
  for (int64_t c = 0; c < cols; ++c) step(trits[c]);
  while (node != 0) step(fill_trit_);  // complete the last codeword; the decoder drops the excess
}

int64_t TunstallDictionary::decode_row(const uint16_t* words, int64_t cols, uint8_t* trits) const {
  int64_t c = 0, used = 0;
  while (c < cols) {
    const uint16_t w = words[used++];
    const int n = int(std::min<int64_t>(lengths_[w], cols - c));
    for (int i = 0; i < n; ++i) trits[c++] = uint8_t(trit(w, i));
  }
  return used;
}

double Sub1Matrix::bits_per_weight() const {
  const double bits = 16.0 * double(words.size()) + 32.0 * double(block_offsets.size()) + 8.0 * sizeof(counts);
  return bits / double(rows * cols);
}

Sub1Matrix encode_sub1(std::span<const uint8_t> trits, int64_t rows, int64_t cols, const TunstallDictionary& dict,
                       const TritCounts& counts, int64_t block_rows) {
  Sub1Matrix m;
  m.rows = rows;
  m.cols = cols;
  m.block_rows = block_rows;
  m.counts = counts;
  for (int64_t r = 0; r < rows; ++r) {
    if (r % block_rows == 0) m.block_offsets.push_back(uint32_t(m.words.size()));
    dict.encode_row(trits.data() + r * cols, cols, m.words);
  }
  if (m.words.size() > UINT32_MAX) fail("sub1: {} codewords exceed the 32-bit block offsets", m.words.size());
  return m;
}

void decode_sub1_rows(const Sub1Matrix& m, const TunstallDictionary& dict, int64_t row0, int64_t n, uint8_t* trits) {
  // Start at the row's block, skip the rows before it within the block.
  const int64_t block = row0 / m.block_rows;
  int64_t word = m.block_offsets[block];
  std::vector<uint8_t> skip(static_cast<size_t>(m.cols));
  for (int64_t r = block * m.block_rows; r < row0; ++r) word += dict.decode_row(&m.words[word], m.cols, skip.data());
  for (int64_t i = 0; i < n; ++i) word += dict.decode_row(&m.words[word], m.cols, trits + i * m.cols);
}

}  // namespace moec
