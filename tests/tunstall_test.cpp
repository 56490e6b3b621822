#include <catch2/catch.hpp>

#include <random>

#include "io/checkpoint.h"
#include "quant/quantized_matrix.h"
#include "quant/tensor_view.h"
#include "quant/tunstall.h"

using namespace moec;

namespace {

// i.i.d. trits: zero (code 1) with probability p0, ±1 equally otherwise.
std::vector<uint8_t> random_trits(int64_t n, double p0, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<uint8_t> t(static_cast<size_t>(n));
  for (auto& x : t) {
    double v = u(rng);
    x = v < p0 ? 1 : (v < p0 + (1 - p0) / 2 ? 0 : 2);
  }
  return t;
}

}  // namespace

TEST_CASE("Tunstall coding round-trips any rows exactly", "[sub1]") {
  for (int64_t cols : {1, 2, 7, 64, 255, 512}) {
    const int64_t rows = 37;
    auto trits = random_trits(rows * cols, 0.8, uint32_t(cols));
    TritCounts counts = count_trits(trits);
    for (uint32_t size : {3u, 100u, 4096u, 65536u}) {
      TunstallDictionary dict(counts, size);
      REQUIRE(dict.size() <= size);
      Sub1Matrix m = encode_sub1(trits, rows, cols, dict, counts, 8);
      std::vector<uint8_t> back(trits.size());
      decode_sub1_rows(m, dict, 0, rows, back.data());
      REQUIRE(back == trits);
      std::vector<uint8_t> middle(static_cast<size_t>(5 * cols));  // from inside a block
      decode_sub1_rows(m, dict, 11, 5, middle.data());
      REQUIRE(std::equal(middle.begin(), middle.end(), trits.begin() + 11 * cols));
    }
  }
}

TEST_CASE("Tunstall coding of symbols it never saw still works", "[sub1]") {
  std::vector<uint8_t> zeros(1000, 1), mixed = random_trits(1000, 0.5, 3);
  TunstallDictionary dict(count_trits(zeros), 65536);
  Sub1Matrix m = encode_sub1(mixed, 10, 100, dict, count_trits(zeros));
  std::vector<uint8_t> back(1000);
  decode_sub1_rows(m, dict, 0, 10, back.data());
  CHECK(back == mixed);
}

TEST_CASE("sub1 codes come within 5% of the pair entropy at p(0) = 0.885", "[sub1]") {
  const int64_t rows = 4096, cols = 4096;  // a 16M-weight tensor
  auto trits = random_trits(rows * cols, 0.885, 7);
  TritCounts counts = count_trits(trits);
  TunstallDictionary dict(counts);
  Sub1Matrix m = encode_sub1(trits, rows, cols, dict, counts);
  const double entropy = pair_entropy_bits_per_weight(count_pairs(trits, rows, cols)), bits = m.bits_per_weight();
  INFO("entropy " << entropy << " bits/weight, sub1 " << bits);
  CHECK(entropy == Approx(0.630).margin(0.002));
  CHECK(bits <= 0.68);  // issue 5's target; QMoE's fixed dictionary needs ~0.76
  CHECK(bits <= 1.05 * entropy);
  CHECK(bits > entropy);
}
