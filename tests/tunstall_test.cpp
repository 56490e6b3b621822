#include <catch2/catch.hpp>

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
