#include <catch2/catch.hpp>

#include <random>

#include "quant/sub1.h"
#include "quant/tunstall.h"
#include "test_trits.h"

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
