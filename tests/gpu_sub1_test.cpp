#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "io/dtype.h"
#include "quant/cuda/sub1_kernels.h"
#include "quant/sub1.h"
#include "tests/test_random.h"

using namespace moec;

namespace {

// The CPU reference: the scalar decoder, then a double-accumulated product.
std::vector<double> reference(const Sub1View& v, const std::vector<float>& x, int64_t tokens) {
  std::vector<float> w(static_cast<size_t>(v.rows * v.cols));
  dequantize_sub1_rows(v, 0, v.rows, w.data());
  std::vector<double> y(static_cast<size_t>(tokens * v.rows));
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t r = 0; r < v.rows; ++r) {
      double s = 0;
      for (int64_t c = 0; c < v.cols; ++c) s += double(w[r * v.cols + c]) * x[t * v.cols + c];
      y[t * v.rows + r] = s;
    }
  return y;
}

}  // namespace

TEST_CASE("CUDA sub1 kernels equal the CPU reference for any shape, f32 and bf16 activations", "[gpu]") {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 100}, {16, 64}, {33, 1}, {300, 515}, {64, 4096}})
    for (int64_t tokens : {1, 2, 16, 33, 64}) {
      auto trits = random_trits(rows * cols, 0.8, uint32_t(rows * cols));
      Sub1Matrix m = encode_sub1(trits, rows, cols, random_level_codes(rows, 3), 0.25f,
                                 shared_dictionary(count_trits(trits)));
      std::mt19937 rng{static_cast<uint32_t>(tokens)};
      std::normal_distribution<float> d(0, 1);
      std::vector<float> x(static_cast<size_t>(tokens * cols));
      for (auto& v : x) v = d(rng);
      for (bool bf16 : {false, true}) {
        INFO(rows << "x" << cols << " tokens " << tokens << (bf16 ? " bf16" : " f32"));
        std::vector<float> xs = x;
        if (bf16)
          for (auto& v : xs) v = bf16_to_f32(f32_to_bf16(v));  // what the device sees
        const auto want = reference(m.view(), xs, tokens);
        std::vector<float> got(want.size());
        cuda::sub1_linear_on_device(m.view(), x.data(), tokens, got.data(), bf16);
        for (size_t i = 0; i < want.size(); ++i) REQUIRE(std::abs(got[i] - want[i]) <= 1e-4 * (1 + std::abs(want[i])));
      }
    }
}
