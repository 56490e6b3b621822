#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "model/linear.h"
#include "model/sub1_plane_cache.h"
#include "model/thread_pool.h"
#include "quant/gptq.h"
#include "quant/sub1.h"
#include "quant/sub1_kernels.h"
#include "tests/test_random.h"

using namespace moec;

namespace {

Sub1Matrix random_sub1(int64_t rows, int64_t cols, double p0, uint32_t seed) {
  auto trits = random_trits(rows * cols, p0, seed);
  return encode_sub1(trits, rows, cols, random_level_codes(rows, seed + 1), 0.37f,
                     shared_dictionary(count_trits(trits)));
}

TEST_CASE("sub1 level codes: exact round trip, monotonic, nearest within 2.2%", "[sub1]") {
  const float scale = 0.0625f;
  CHECK(sub1_level(0, scale) == 0.0f);
  CHECK(sub1_level(255, scale) == scale);
  CHECK(sub1_level(255 - 16, scale) == scale / 2);
  for (unsigned k = 1; k < 256; ++k) {
    CHECK(sub1_level_code(sub1_level(k, scale), scale) == k);
    if (k > 1) CHECK(sub1_level(k, scale) > sub1_level(k - 1, scale));
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-10.0f, 0.0f);
  for (int i = 0; i < 1000; ++i) {
    const float v = scale * std::exp2(u(rng));
    const float back = sub1_level(sub1_level_code(v, scale), scale);
    CHECK(std::abs(back - v) <= 0.022f * v);
  }
  CHECK(sub1_level_code(0.0f, scale) == 0);
  CHECK(sub1_level_code(1e-30f, scale) == 0);
  CHECK(sub1_level_code(1.0f, 0.0f) == 0);
}

TEST_CASE("sub1 matrices round-trip through blocks for any shape", "[sub1]") {
  for (int64_t rows : {1, 15, 16, 17, 37})
    for (int64_t cols : {1, 3, 64, 100, 256}) {
      auto trits = random_trits(rows * cols, 0.8, uint32_t(rows * 1000 + cols));
      auto levels = random_level_codes(rows, 5);
      Sub1Matrix m = encode_sub1(trits, rows, cols, levels, 0.5f, shared_dictionary(count_trits(trits)));
      Sub1View v = m.view();
      REQUIRE(int64_t(m.blocks.size()) == v.n_blocks() + 1);
      std::vector<float> out(static_cast<size_t>(rows * cols));
      dequantize_sub1_rows(v, 0, rows, out.data());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const uint8_t t = trits[r * cols + c];
          const float want = t == 1 ? 0.0f : (t == 0 ? -sub1_level(levels[2 * r], 0.5f) : sub1_level(levels[2 * r + 1], 0.5f));
          REQUIRE(out[r * cols + c] == want);
        }
      if (rows > 5) {  // a range starting inside a block
        std::vector<float> part(static_cast<size_t>(4 * cols));
        dequantize_sub1_rows(v, 3, 4, part.data());
        REQUIRE(std::equal(part.begin(), part.end(), out.begin() + 3 * cols));
      }
    }
}

TEST_CASE("A matrix quantized on the sub1 grid encodes to exactly its dequantized values", "[sub1]") {
  const int64_t rows = 40, cols = 96;
  auto w = random_normals(rows * cols, 3);
  QuantFormat f = QuantFormat::parse("sub1");
  f.level_scale = 0.0f;
  for (float v : w) f.level_scale = std::max(f.level_scale, std::abs(v));
  QuantizedMatrix q = quantize_rtn(w.data(), rows, cols, f);
  std::vector<float> want(w.size()), got(w.size());
  dequantize_rows(q.view(), 0, rows, want.data());
  Sub1Matrix m = encode_sub1(q, shared_dictionary(count_trits(trits_of(q))));
  dequantize_sub1_rows(m.view(), 0, rows, got.data());
  CHECK(got == want);
  // and the grid is a real ternary grid: levels within 2.2% of the row's min and max
  for (int64_t r = 0; r < rows; ++r) {
    float lo = 0, hi = 0;
    for (int64_t c = 0; c < cols; ++c) lo = std::min(lo, w[r * cols + c]), hi = std::max(hi, w[r * cols + c]);
    CHECK(std::abs(m.view().low(r) - lo) <= 0.022f * -lo);
    CHECK(std::abs(m.view().high(r) - hi) <= 0.022f * hi);
  }
}

// Checks every kernel path of `v` against the reference decoder and a
// double-precision product; returns the outputs of the last batch per ISA.
void check_kernels(const Sub1View& v, Isa isa) {
  const int64_t rows = v.rows, cols = v.cols;
  std::vector<float> w(static_cast<size_t>(rows * cols));
  dequantize_sub1_rows(v, 0, rows, w.data());
  // decoding a block is bit-exact
  std::vector<float> block(static_cast<size_t>(kSub1BlockRows * cols));
  for (int64_t b = 0; b < v.n_blocks(); ++b) {
    sub1_dequantize_block(v, b, block.data(), isa);
    REQUIRE(std::equal(block.begin(), block.begin() + v.rows_in_block(b) * cols, w.begin() + b * kSub1BlockRows * cols));
  }
  for (int64_t tokens : {1, 3, 4, 5, 8, 9, 16, 17, 64}) {
    INFO(tokens << " tokens");
    const int64_t x_stride = cols + 3, y_stride = rows + 5;
    auto x = random_normals(tokens * x_stride, uint32_t(tokens));
    std::vector<float> y(static_cast<size_t>(tokens * y_stride), -1.0f);
    sub1_linear_blocks(v, 0, v.n_blocks(), x.data(), x_stride, tokens, y.data(), y_stride, isa);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        const ReferenceDot want = reference_dot(&w[r * cols], &x[t * x_stride], cols);
        REQUIRE(std::abs(y[t * y_stride + r] - want.value) <= 1e-5 * want.magnitude + 1e-30);
      }
    // up to the tables' limit, each token's result does not depend on the tokens beside it
    std::vector<float> alone(static_cast<size_t>(y_stride), -1.0f);
    sub1_linear_blocks(v, 0, v.n_blocks(), x.data() + (tokens - 1) * x_stride, x_stride, 1, alone.data(), y_stride, isa);
    if (tokens <= kSub1TableMaxTokens)
      REQUIRE(std::equal(alone.begin(), alone.begin() + rows, y.begin() + (tokens - 1) * y_stride));
    for (int64_t t = 0; t < tokens; ++t)  // nothing written past the rows
      for (int64_t r = rows; r < y_stride; ++r) REQUIRE(y[t * y_stride + r] == -1.0f);
  }
}

}  // namespace

TEST_CASE("sub1 kernels equal the reference decoder followed by a dense product", "[sub1]") {
  for (Isa isa : supported_isas())
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 100}, {16, 64}, {33, 1}, {20, 515}, {48, 256}, {5, 3},
                               {29, 70}}) {  // last blocks of 5, 16, 1, 4, 16, 5 and 13 rows
      INFO(isa_name(isa) << " " << rows << "x" << cols);
      Sub1Matrix m = random_sub1(rows, cols, 0.75, uint32_t(rows + cols));
      check_kernels(m.view(), isa);
    }
}

TEST_CASE("sub1 kernels: the same bits on every ISA and batch size", "[sub1]") {
  for (int64_t rows : {70, 61}) {  // last blocks of 6 and 13 rows (AVX2 splits a block into halves of 8)
    Sub1Matrix m = random_sub1(rows, 333, 0.88, uint32_t(rows));
    for (int64_t tokens : {kSub1TableMaxTokens, int64_t(19), int64_t(40)}) {  // tables; token lanes (8, 16 per vector)
      INFO(rows << " rows, " << tokens << " tokens");
      auto x = random_normals(tokens * 333, 3);
      std::vector<float> first;
      for (Isa isa : supported_isas()) {
        INFO(isa_name(isa));
        std::vector<float> y(static_cast<size_t>(tokens * rows));
        sub1_linear_blocks(m.view(), 0, m.view().n_blocks(), x.data(), 333, tokens, y.data(), rows, isa);
        if (first.empty()) first = y;
        REQUIRE(y == first);
        if (tokens > kSub1TableMaxTokens) continue;
        for (int64_t t : {1, 4, 7, 14}) {  // each token alone, and in pairs that the full batch pairs differently
          std::vector<float> alone(static_cast<size_t>(rows)), pair(static_cast<size_t>(2 * rows));
          sub1_linear_blocks(m.view(), 0, m.view().n_blocks(), x.data() + t * 333, 333, 1, alone.data(), rows, isa);
          REQUIRE(std::equal(alone.begin(), alone.end(), first.begin() + t * rows));
          if (t % 2 == 0) continue;  // even offsets are the batch's own pairs
          sub1_linear_blocks(m.view(), 0, m.view().n_blocks(), x.data() + t * 333, 333, 2, pair.data(), rows, isa);
          REQUIRE(std::equal(pair.begin(), pair.end(), first.begin() + t * rows));
        }
      }
    }
  }
}

TEST_CASE("sub1 kernels: every level code gives the same bits on every ISA", "[sub1]") {
  // 133 rows (a last block of 5) whose codes, low and high, run through all 256
  // values (0: a level of zero) at a scale that is not a power of two.
  const int64_t rows = 133, cols = 45;
  std::vector<uint8_t> codes(static_cast<size_t>(2 * rows));
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = uint8_t(i * 7 % 256);
  const auto trits = random_trits(rows * cols, 0.5, 11);
  Sub1Matrix m = encode_sub1(trits, rows, cols, codes, 0.7123f, shared_dictionary(count_trits(trits)));
  for (int64_t tokens : {int64_t(1), int64_t(3)}) {
    auto x = random_normals(tokens * cols, 12);
    std::vector<float> first;
    for (Isa isa : supported_isas()) {
      INFO(isa_name(isa) << ", " << tokens << " tokens");
      std::vector<float> y(static_cast<size_t>(tokens * rows));
      sub1_linear_blocks(m.view(), 0, m.view().n_blocks(), x.data(), cols, tokens, y.data(), rows, isa);
      if (first.empty()) first = y;
      REQUIRE(std::memcmp(y.data(), first.data(), y.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("sub1 kernels: dictionaries with many nonzeros per codeword, very wide rows", "[sub1]") {
  Sub1Matrix dense = random_sub1(20, 300, 0.2, 4);  // codewords of mostly nonzero trits
  for (Isa isa : supported_isas()) check_kernels(dense.view(), isa);
  Sub1Matrix wide = random_sub1(2, 65536, 0.9, 5);
  std::vector<float> x(65536, 1.0f), y(2), want(2);
  for (Isa isa : supported_isas()) {
    sub1_linear_blocks(wide.view(), 0, 1, x.data(), 65536, 1, y.data(), 2, isa);
    linear_reference({x.data(), 65536, 1, sub1_weights(wide.view()), want.data(), 2});
    CHECK(y[0] == Approx(want[0]).margin(1e-3));
    CHECK(y[1] == Approx(want[1]).margin(1e-3));
  }
}

TEST_CASE("linear() over sub1 weights: fused and GEMM paths, any thread count", "[sub1]") {
  const int64_t rows = 90, cols = 200;
  Sub1Matrix m = random_sub1(rows, cols, 0.8, 11);
  const WeightView view = sub1_weights(m.view());
  for (int64_t tokens : {1, 7, 64, 65, 300}) {
    auto x = random_normals(tokens * cols, 17);
    std::vector<float> want(static_cast<size_t>(tokens * rows)), one(want.size()), two(want.size());
    linear_reference({x.data(), cols, tokens, view, want.data(), rows});
    ThreadPool p1(1), p2(2);
    linear(p1, {x.data(), cols, tokens, view, one.data(), rows});
    linear(p2, {x.data(), cols, tokens, view, two.data(), rows});
    CHECK(one == two);
    for (size_t i = 0; i < want.size(); ++i) REQUIRE(one[i] == Approx(want[i]).margin(1e-4));
  }
}

TEST_CASE("sub1 plane cache: replays give the same bits, hits are counted, capacity is kept", "[sub1]") {
  Sub1Matrix a = random_sub1(90, 200, 0.8, 21), b = random_sub1(50, 300, 0.85, 22);
  Sub1PlaneCache cache(uint64_t(1) << 20);
  WeightView wa = sub1_weights(a.view()), wb = sub1_weights(b.view());
  wa.plane_cache = wb.plane_cache = &cache;
  ThreadPool pool(2);
  for (int64_t tokens : {1, 5, 16, 40}) {
    auto x = random_normals(tokens * 300, uint32_t(tokens));
    std::vector<float> plain(size_t(tokens * 90)), first(plain.size()), again(plain.size());
    linear(pool, {x.data(), 300, tokens, sub1_weights(a.view()), plain.data(), 90});
    std::vector<float> direct(plain.size());  // activations prepared per call, not per product: same bits
    sub1_linear_blocks(a.view(), 0, a.view().n_blocks(), x.data(), 300, tokens, direct.data(), 90);
    CHECK(direct == plain);
    linear(pool, {x.data(), 300, tokens, wa, first.data(), 90});
    linear(pool, {x.data(), 300, tokens, wa, again.data(), 90});
    CHECK(first == plain);
    CHECK(again == plain);
  }
  Sub1PlaneCache::Stats s = cache.stats();
  CHECK(s.misses == 1);  // recorded once, replayed for every later product
  CHECK(s.hits == 7);
  CHECK(s.entries == 1);
  CHECK(s.bytes > 0);
  // A second matrix beyond a capacity that holds one: the older is evicted.
  cache.set_capacity(s.bytes + 64);
  auto x = random_normals(300, 1);
  std::vector<float> y(90);
  linear(pool, {x.data(), 300, 1, wb, y.data(), 50});
  s = cache.stats();
  CHECK(s.entries == 1);
  CHECK(s.evictions == 1);
  CHECK(s.bytes <= s.capacity);
  // A matrix of another shape at the same codes (a freed one's memory
  // reused) is not handed the kept planes: a new entry is recorded.
  Sub1View reshaped = b.view();
  reshaped.cols = 150;
  reshaped.rows = 100;
  auto fresh = cache.acquire(reshaped);
  REQUIRE(fresh != nullptr);
  CHECK_FALSE(fresh->complete);
  CHECK(fresh->cols == 150);
  cache.release(reshaped, fresh);  // nothing recorded: dropped
  CHECK(cache.stats().entries == 0);
  // No capacity: nothing is kept.
  cache.set_capacity(0);
  CHECK(cache.stats().entries == 0);
  CHECK(cache.acquire(a.view()) == nullptr);
}
