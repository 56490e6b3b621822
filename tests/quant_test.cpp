#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "io/error.h"
#include "quant/format.h"
#include "quant/gptq.h"
#include "quant/grid.h"
#include "quant/quantized_matrix.h"
#include "quant/sub1.h"
#include "quant/tunstall.h"

using namespace moec;

namespace {

const char* kSpecs[] = {"q8g0", "q4g128", "q4g32", "q3g128", "q3g0", "q2g128", "q2g64", "ternary-qmoe", "ternary-sym"};

std::vector<float> dequantized(const QuantizedMatrix& m) {
  std::vector<float> out(static_cast<size_t>(m.rows * m.cols));
  dequantize_rows(m.view(), 0, m.rows, out.data());
  return out;
}

// Inputs with strongly correlated channels (as real activations are): a
// low-rank mix plus noise, with per-channel scales.
std::vector<float> correlated_inputs(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  const int64_t rank = 8;
  std::vector<float> mix(static_cast<size_t>(rank * cols)), scale(static_cast<size_t>(cols)),
      x(static_cast<size_t>(n * cols));
  for (auto& v : mix) v = normal(rng);
  for (auto& v : scale) v = std::exp(normal(rng));
  for (int64_t i = 0; i < n; ++i) {
    float z[rank];
    for (auto& v : z) v = normal(rng);
    for (int64_t c = 0; c < cols; ++c) {
      float s = 0.3f * normal(rng);
      for (int64_t k = 0; k < rank; ++k) s += z[k] * mix[k * cols + c];
      x[i * cols + c] = s * scale[c];
    }
  }
  return x;
}

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(size_t(rows * cols));
  for (auto& v : w) v = normal(rng);
  return w;
}

// ‖W X − Q X‖ / ‖W X‖ over the n inputs.
double output_error(const std::vector<float>& w, const std::vector<float>& q, const std::vector<float>& x,
                    int64_t rows, int64_t cols) {
  const int64_t n = int64_t(x.size()) / cols;
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < rows; ++r) {
      double a = 0, b = 0;
      for (int64_t c = 0; c < cols; ++c) {
        a += double(w[r * cols + c]) * x[i * cols + c];
        b += double(q[r * cols + c]) * x[i * cols + c];
      }
      num += (a - b) * (a - b);
      den += a * a;
    }
  return std::sqrt(num / den);
}

GptqOptions gptq_options(bool act_order) {
  GptqOptions o;
  o.damp = 0.01;
  o.block = 128;
  o.act_order = act_order;
  return o;
}

}  // namespace

TEST_CASE("format specs parse and print", "[quant]") {
  for (const char* spec : kSpecs) CHECK(QuantFormat::parse(spec).spec() == spec);
  for (const char* bad : {"q1g128", "q9g128", "q4", "q4g", "q4g-1", "ternary", "int4", "q4g128x"})
    CHECK_THROWS_AS(QuantFormat::parse(bad), Error);
  QuantFormat f = QuantFormat::parse("q3g128");
  CHECK(f.groups(300) == 3);
  CHECK(f.row_bytes(300) == 113);  // 900 bits
  CHECK(QuantFormat::parse("ternary-sym").row_bytes(256) == 52);
}

TEST_CASE("a format's stored bytes are what a matrix in it holds", "[quant]") {
  for (const char* spec : {"q8g128", "q4g128", "q3g64", "q2g32", "q5g40", "q4g0", "ternary-qmoe", "ternary-sym"})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3, 7}, {64, 256}, {5, 90}, {1, 1000}}) {
      const QuantFormat f = QuantFormat::parse(spec);
      INFO(spec << " " << rows << "x" << cols);
      CHECK(f.stored_bytes(rows, cols) == QuantizedMatrix(f, rows, cols).bytes());
    }
}

TEST_CASE("packing and unpacking codes is exact for every grid", "[quant]") {
  std::mt19937 rng(1);
  for (const char* spec : kSpecs) {
    QuantFormat f = QuantFormat::parse(spec);
    for (int64_t cols : {1, 5, 7, 64, 257}) {
      std::vector<uint8_t> row(size_t(f.row_bytes(cols)), 0);
      std::vector<int> codes(static_cast<size_t>(cols));
      for (auto& q : codes) q = int(rng() % uint32_t(f.max_code() + 1));
      for (int64_t c = 0; c < cols; ++c) pack_code(f, row.data(), c, codes[c]);
      for (int64_t c = 0; c < cols; ++c)
        REQUIRE((f.ternary() ? ternary_code(row.data(), c) : affine_code(row.data(), c, f.bits)) == codes[c]);
    }
  }
}

TEST_CASE("round-to-nearest stays on its grid", "[quant]") {
  const int64_t rows = 16, cols = 200;
  auto w = random_matrix(rows, cols, 2);
  for (const char* spec : kSpecs) {
    QuantFormat f = QuantFormat::parse(spec);
    QuantizedMatrix m = quantize_rtn(w.data(), rows, cols, f);
    auto q = dequantized(m);
    INFO(spec);
    if (!f.ternary()) {  // within a step (half, plus the integer zero and f16 scale rounding)
      const int64_t groups = f.groups(cols), width = f.group_columns(cols);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          REQUIRE(std::abs(q[r * cols + c] - w[r * cols + c]) <= 1.2f * f16_to_f32(m.scales[r * groups + c / width]));
    }
    double err = 0, norm = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      err += (q[i] - w[i]) * (q[i] - w[i]);
      norm += w[i] * w[i];
    }
    // Relative squared error on Gaussian weights: more levels, less error;
    // the fitted symmetric ternary grid beats QMoE's min/max one.
    double bound = f.kind == GridKind::TernaryQmoe ? 0.7 : f.ternary() ? 0.5 : f.bits == 2 ? 0.3 : 0.1;
    CHECK(err / norm < bound);
  }
}

TEST_CASE("the symmetric ternary grid minimizes the squared error", "[quant]") {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  QuantFormat f = QuantFormat::parse("ternary-sym");
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> v(9);
    for (auto& x : v) x = normal(rng);
    GroupGrid g = fit_grid(f, v.data(), 9, 1);
    auto sse = [&](float a) {
      GroupGrid h{1, 0, -a, a};
      double s = 0;
      for (float x : v) {
        float y;
        quantize_value(f, h, x, &y);
        s += (x - y) * (x - y);
      }
      return s;
    };
    for (float a = 0.01f; a < 4.0f; a += 0.01f) REQUIRE(sse(g.high) <= sse(a) + 1e-3);
  }
}

TEST_CASE("GPTQ beats round-to-nearest on correlated inputs", "[quant]") {
  const int64_t rows = 64, cols = 256;
  auto w = random_matrix(rows, cols, 4);
  auto x = correlated_inputs(2048, cols, 5);
  HessianAccumulator h(cols);
  h.add(x.data(), 2048, cols);
  for (const char* spec : {"q4g128", "q3g128", "q2g128", "ternary-qmoe", "ternary-sym"}) {
    QuantFormat f = QuantFormat::parse(spec);
    auto rtn = dequantized(quantize_rtn(w.data(), rows, cols, f));
    for (bool act_order : {false, true}) {
      QuantizeOutcome g = quantize_gptq(w.data(), rows, cols, h, f, gptq_options(act_order));
      REQUIRE_FALSE(g.used_rtn);
      double e_rtn = output_error(w, rtn, x, rows, cols), e_gptq = output_error(w, dequantized(g.matrix), x, rows, cols);
      INFO(spec << " act_order " << act_order << ": RTN " << e_rtn << ", GPTQ " << e_gptq);
      CHECK(e_gptq < 0.8 * e_rtn);
    }
  }
}

TEST_CASE("GPTQ is deterministic and falls back to RTN without inputs", "[quant]") {
  const int64_t rows = 8, cols = 64;
  auto w = random_matrix(rows, cols, 6);
  auto x = correlated_inputs(300, cols, 7);
  HessianAccumulator h(cols);
  h.add(x.data(), 300, cols);
  QuantFormat f = QuantFormat::parse("q3g32");
  auto a = quantize_gptq(w.data(), rows, cols, h, f, {});
  auto b = quantize_gptq(w.data(), rows, cols, h, f, {});
  CHECK(a.matrix.codes == b.matrix.codes);
  CHECK(a.matrix.scales == b.matrix.scales);
  HessianAccumulator empty(cols);
  auto fallback = quantize_gptq(w.data(), rows, cols, empty, f, {});
  CHECK(fallback.used_rtn);
  CHECK(fallback.matrix.codes == quantize_rtn(w.data(), rows, cols, f).codes);
  CHECK_THROWS_AS(quantize_gptq(w.data(), rows, cols, HessianAccumulator(cols + 1), f, {}), Error);
}

TEST_CASE("Hessian: f32 chunk products summed in double match all-double accumulation", "[quant]") {
  const int64_t cols = 128, n = 20000;
  auto x = correlated_inputs(n, cols, 8);
  HessianAccumulator h(cols);
  h.add(x.data(), n, cols);
  auto got = h.hessian();
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      double exact = 0;
      for (int64_t t = 0; t < n; ++t) exact += double(x[t * cols + i]) * double(x[t * cols + j]);
      exact *= 2.0 / double(n);
      diff += (got[j * cols + i] - exact) * (got[j * cols + i] - exact);
      norm += exact * exact;
    }
  // Measured on data like this (numpy, 20k samples, 128 channels): a running
  // f32 sum of per-sample products is off by 2.7e-6 (relative Frobenius),
  // f32 chunk products summed in double by 6e-8. Both are far below the 1e-2
  // dampening GPTQ adds; the double sum costs nothing, so moec uses it.
  CHECK(std::sqrt(diff / norm) < 1e-6);
}

TEST_CASE("fitted ternary levels lower the output error of the same trits", "[quant]") {
  const int64_t rows = 48, cols = 192;
  auto w = random_matrix(rows, cols, 11);
  auto x = correlated_inputs(3000, cols, 12);
  HessianAccumulator h(cols);
  h.add(x.data(), 3000, cols);
  for (const char* spec : {"ternary-qmoe", "ternary-sym", "sub1"}) {
    QuantFormat f = QuantFormat::parse(spec);
    if (f.kind == GridKind::Sub1) f.level_scale = 0.1f;
    for (bool act_order : {false, true}) {
      GptqOptions o = gptq_options(act_order);
      QuantizeOutcome plain = quantize_gptq(w.data(), rows, cols, h, f, o);
      o.level_fits = 1;  // refit the levels of the same trits
      QuantizeOutcome fitted = quantize_gptq(w.data(), rows, cols, h, f, o);
      CHECK(fitted.matrix.codes == plain.matrix.codes);
      const double e_plain = output_error(w, dequantized(plain.matrix), x, rows, cols);
      const double e_fitted = output_error(w, dequantized(fitted.matrix), x, rows, cols);
      INFO(spec << " act_order " << act_order << ": " << e_plain << " -> " << e_fitted);
      CHECK(e_fitted < e_plain);
    }
  }
}

TEST_CASE("rate-aware ternary GPTQ buys zeros with error as lambda grows", "[quant]") {
  const int64_t rows = 64, cols = 256;
  auto w = random_matrix(rows, cols, 21);
  auto x = correlated_inputs(3000, cols, 22);
  HessianAccumulator h(cols);
  h.add(x.data(), 3000, cols);
  for (const char* spec : {"ternary-qmoe", "sub1"}) {
    QuantFormat f = QuantFormat::parse(spec);
    if (f.kind == GridKind::Sub1) f.level_scale = 0.1f;
    GptqOptions o = gptq_options(true);
    const QuantizeOutcome plain = quantize_gptq(w.data(), rows, cols, h, f, o);
    o.rate.bits = {4.0, 0.3, 4.0};  // zeros cheap, as with p(0) ≈ 0.8
    // λ = 0 is plain GPTQ whatever the code lengths.
    CHECK(quantize_gptq(w.data(), rows, cols, h, f, o).matrix.codes == plain.matrix.codes);
    double last_zeros = -1, last_error = -1, last_entropy = 10;
    for (double lambda : {0.0, 0.05, 0.2, 0.8}) {
      o.rate.lambda = lambda;
      const QuantizedMatrix m = quantize_gptq(w.data(), rows, cols, h, f, o).matrix;
      const TritCounts counts = count_trits(trits_of(m));
      const double zeros = double(counts[1]) / double(rows * cols), entropy = trit_entropy_bits_per_weight(counts);
      const double error = output_error(w, dequantized(m), x, rows, cols);
      INFO(spec << " lambda " << lambda << ": zeros " << zeros << ", entropy " << entropy << ", error " << error);
      CHECK(zeros > last_zeros);
      CHECK(entropy < last_entropy);
      CHECK(error > last_error);
      CHECK(error < 1.0);  // still an approximation, not an all-zero matrix
      last_zeros = zeros, last_error = error, last_entropy = entropy;
    }
  }
}
