#include <catch2/catch.hpp>

#include <algorithm>
#include <queue>
#include <random>

#include "quant/sub1.h"
#include "quant/tunstall.h"
#include "tests/test_random.h"

using namespace moec;

TEST_CASE("Tunstall streams round-trip exactly, any length and dictionary size", "[sub1]") {
  for (int64_t n : {1, 2, 7, 64, 65, 255, 4096}) {
    auto trits = random_trits(n, 0.8, uint32_t(n));
    for (uint32_t size : {3u, 100u, 4096u, 65536u}) {
      TunstallDictionary dict(count_trits(trits), size);
      REQUIRE(dict.size() <= size);
      std::vector<uint16_t> words;
      dict.encode(trits.data(), n, words);
      std::vector<uint8_t> back(trits.size() + 3, 7);
      sub1_decode_stream(dict.codebook(), words.data(), int64_t(words.size()), n, back.data());
      REQUIRE(std::equal(trits.begin(), trits.end(), back.begin()));
      REQUIRE(back[n] == 7);  // nothing written past n
    }
  }
}

TEST_CASE("Tunstall coding of symbols it never saw still works", "[sub1]") {
  std::vector<uint8_t> zeros(1000, 1), mixed = random_trits(1000, 0.5, 3);
  TunstallDictionary dict(count_trits(zeros), 65536);
  std::vector<uint16_t> words;
  dict.encode(mixed.data(), 1000, words);
  std::vector<uint8_t> back(1000);
  sub1_decode_stream(dict.codebook(), words.data(), int64_t(words.size()), 1000, back.data());
  CHECK(back == mixed);
}

TEST_CASE("A stream that runs out of codewords decodes the rest as zeros", "[sub1]") {
  auto trits = random_trits(300, 0.5, 4);
  TunstallDictionary dict(count_trits(trits));
  std::vector<uint16_t> words;
  dict.encode(trits.data(), 300, words);
  std::vector<uint8_t> back(300, 9);
  sub1_decode_stream(dict.codebook(), words.data(), 2, 300, back.data());
  const int covered = dict.lengths()[words[0]] + dict.lengths()[words[1]];
  CHECK(std::equal(back.begin(), back.begin() + covered, trits.begin()));
  CHECK(std::all_of(back.begin() + covered, back.end(), [](uint8_t t) { return t == 1; }));
}

TEST_CASE("sub1 codes come within 5% of the pair entropy at p(0) = 0.885", "[sub1]") {
  const int64_t rows = 4096, cols = 4096;  // a 16M-weight tensor
  auto trits = random_trits(rows * cols, 0.885, 7);
  const TunstallDictionary dict(count_trits(trits));
  std::vector<uint8_t> levels(size_t(2 * rows), 200);
  Sub1Matrix m = encode_sub1(trits, rows, cols, levels, 1.0f, dict);
  const double entropy = pair_entropy_bits_per_weight(count_pairs(trits, rows, cols)), bits = m.bits_per_weight();
  INFO("entropy " << entropy << " bits/weight, sub1 with all metadata " << bits);
  CHECK(entropy == Approx(0.630).margin(0.002));
  CHECK(bits <= 0.68);  // issue 5's target; QMoE's fixed dictionary needs ~0.76
  CHECK(bits <= 1.05 * entropy);
  CHECK(bits > entropy);
}

TEST_CASE("Pair dictionaries (QMoE's alphabet) round-trip through the same decoder", "[sub1]") {
  for (int64_t n : {1, 2, 7, 64, 65, 1001}) {
    auto trits = random_trits(n, 0.85, uint32_t(n + 1));
    for (const TunstallDictionary& dict :
         {TunstallDictionary::pairs(count_pairs(trits, 1, n), 32), TunstallDictionary::qmoe_fixed()}) {
      REQUIRE(dict.symbol_trits() == 2);
      std::vector<uint16_t> words;
      dict.encode(trits.data(), n, words);
      std::vector<uint8_t> back(static_cast<size_t>(n));
      sub1_decode_stream(dict.codebook(), words.data(), int64_t(words.size()), n, back.data());
      REQUIRE(back == trits);
    }
  }
  const auto fixed = TunstallDictionary::qmoe_fixed();
  CHECK(fixed.size() <= 65536);
  CHECK(*std::max_element(fixed.lengths().begin(), fixed.lengths().end()) == 28);  // 14 pairs
}

TEST_CASE("At p(0) = 0.885 trit codes beat pairs and QMoE's fixed row-wise dictionary", "[sub1]") {
  const int64_t rows = 1024, cols = 4096;
  auto trits = random_trits(rows * cols, 0.885, 9);
  auto row_coded_bits = [&](const TunstallDictionary& dict, double row_overhead_bits) {
    std::vector<uint16_t> words;
    for (int64_t r = 0; r < rows; ++r) dict.encode(trits.data() + r * cols, cols, words);
    return (16.0 * double(words.size()) + row_overhead_bits * double(rows)) / double(rows * cols);
  };
  const TunstallDictionary trit_dict(count_trits(trits));
  std::vector<uint8_t> levels(size_t(2 * rows), 200);
  const double sub1 = encode_sub1(trits, rows, cols, levels, 1.0f, trit_dict).bits_per_weight();
  // QMoE: rows coded separately, each with min/max (2 × bf16) and a 32-bit offset
  const double qmoe = row_coded_bits(TunstallDictionary::qmoe_fixed(), 64);
  const double pairs = row_coded_bits(TunstallDictionary::pairs(count_pairs(trits, rows, cols), 32), 0);
  INFO("sub1 " << sub1 << ", pairs (row-wise, no overhead) " << pairs << ", QMoE fixed " << qmoe);
  CHECK(qmoe == Approx(0.76).margin(0.03));  // the figure for QMoE's dictionary
  CHECK(sub1 < pairs);
  CHECK(sub1 < qmoe - 0.05);
}

namespace {

// Tunstall's construction as textbooks state it, with a priority queue over
// (probability, creation order): the codewords' trit strings in creation
// order. TunstallDictionary builds the same tree with one FIFO queue per
// symbol; containers store only the counts, so the two must agree exactly.
std::vector<std::vector<uint8_t>> textbook_tunstall(const std::vector<double>& p, int symbol_trits, int max_symbols,
                                                    uint32_t max_words) {
  struct Leaf {
    double probability;
    uint32_t id;
    std::vector<uint8_t> trits;
  };
  auto less_probable = [](const Leaf& a, const Leaf& b) {
    return a.probability < b.probability || (a.probability == b.probability && a.id > b.id);
  };
  std::priority_queue<Leaf, std::vector<Leaf>, decltype(less_probable)> open(less_probable);
  std::vector<Leaf> done;
  uint32_t next_id = 0;
  const uint32_t alphabet = uint32_t(p.size());
  auto split = [&](const Leaf& parent) {
    for (uint32_t s = 0; s < alphabet; ++s) {
      Leaf child{parent.probability * p[s], next_id++, parent.trits};
      if (symbol_trits == 1) child.trits.push_back(uint8_t(s));
      else child.trits.insert(child.trits.end(), {uint8_t(s / 3), uint8_t(s % 3)});
      (int(child.trits.size()) >= max_symbols * symbol_trits ? done.push_back(child) : open.push(child));
    }
  };
  split(Leaf{1.0, 0, {}});
  uint32_t leaves = alphabet;
  while (leaves + alphabet - 1 <= max_words && !open.empty()) {
    const Leaf top = open.top();
    open.pop();
    split(top);
    leaves += alphabet - 1;
  }
  for (; !open.empty(); open.pop()) done.push_back(open.top());
  std::sort(done.begin(), done.end(), [](const Leaf& a, const Leaf& b) { return a.id < b.id; });
  std::vector<std::vector<uint8_t>> words;
  for (const Leaf& leaf : done) words.push_back(leaf.trits);
  return words;
}

std::vector<double> smoothed(const std::vector<uint64_t>& counts) {
  double total = 0;
  for (uint64_t c : counts) total += double(c) + 1.0;
  std::vector<double> p;
  for (uint64_t c : counts) p.push_back((double(c) + 1.0) / total);
  return p;
}

void require_same_words(const TunstallDictionary& dict, const std::vector<std::vector<uint8_t>>& words) {
  REQUIRE(dict.size() == words.size());
  for (uint32_t w = 0; w < dict.size(); ++w) {
    REQUIRE(dict.lengths()[w] == words[w].size());
    for (size_t i = 0; i < words[w].size(); ++i) REQUIRE(dict.trit(w, int(i)) == words[w][i]);
  }
}

}  // namespace

TEST_CASE("Tunstall dictionaries equal the textbook priority-queue construction, ties included", "[sub1]") {
  // Real skewed counts, ties (equal ±1 counts, all equal, all zero), and extremes.
  const std::vector<TritCounts> trit_counts = {
      {577, 8850, 573}, {1000, 1000, 1000}, {0, 0, 0}, {5, 1'000'000, 5}, {3, 7, 1'000'000'000'000ull}, {1, 2, 3}};
  for (const TritCounts& c : trit_counts)
    for (uint32_t size : {3u, 101u, 4096u, 65536u}) {
      INFO("counts " << c[0] << " " << c[1] << " " << c[2] << ", size " << size);
      require_same_words(TunstallDictionary(c, size), textbook_tunstall(smoothed({c[0], c[1], c[2]}), 1,
                                                                          TunstallDictionary::kMaxTrits, size));
    }
  const PairCounts pairs = {10, 80, 9, 81, 700, 79, 11, 80, 10};
  for (int max_pairs : {3, 14, 32}) {
    INFO("pairs, at most " << max_pairs);
    require_same_words(TunstallDictionary::pairs(pairs, max_pairs, 65536),
                       textbook_tunstall(smoothed({pairs.begin(), pairs.end()}), 2, max_pairs, 65536));
  }
}
