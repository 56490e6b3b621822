// Every instruction set this CPU runs (io/cpu_isa.h) against double-precision
// references: the dense small-batch kernels, the GEMM, and the runtime's
// perplexity on the fixture.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <random>

#include "io/checkpoint.h"
#include "io/cpu_isa.h"
#include "io/dtype.h"
#include "io/text_file.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"
#include "quant/dense_kernels.h"
#include "quant/elementwise.h"
#include "quant/gemm.h"
#include "quant/gptq.h"
#include "quant/quantized_matrix.h"
#include "tests/reference.h"
#include "tests/test_paths.h"
#include "tests/test_random.h"

using namespace moec;
namespace fs = std::filesystem;

namespace {

// Restores the process's ISA when a test that forced one ends.
struct IsaScope {
  Isa saved = active_isa();
  ~IsaScope() { set_active_isa(saved); }
};

std::vector<uint16_t> to_half(const std::vector<float>& v, DType dtype) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::BF16) out[i] = f32_to_bf16(v[i]);
    if (dtype == DType::F16) {
      _Float16 h = static_cast<_Float16>(v[i]);
      std::memcpy(&out[i], &h, 2);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("ISA names, support and the active level", "[isa]") {
  CHECK(isa_supported(Isa::Portable));
  CHECK(supported_isas().front() == Isa::Portable);
  CHECK(supported_isas().back() == best_isa());
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512}) CHECK(isa_from_name(isa_name(isa)) == isa);
  CHECK_FALSE(isa_from_name("sse9").has_value());
  IsaScope scope;
  for (Isa isa : supported_isas()) {
    set_active_isa(isa);
    CHECK(active_isa() == isa);
  }
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    if (!isa_supported(isa)) CHECK_THROWS_WITH(set_active_isa(isa), Catch::Contains("does not support"));
}

TEST_CASE("MOEC_ISA: an unknown or unsupported level is refused in one line", "[isa][cli]") {
  auto bad = test::run_moec("--version", "MOEC_ISA=sse9 ");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.err, Catch::Contains("MOEC_ISA=sse9: unknown instruction set"));
  auto portable = test::run_moec("--version", "MOEC_ISA=portable ");
  CHECK(portable.exit_code == 0);
  if (!isa_supported(Isa::Avx512)) {
    auto missing = test::run_moec("--version", "MOEC_ISA=avx512 ");
    CHECK(missing.exit_code != 0);
    CHECK_THAT(missing.err, Catch::Contains("does not support"));
  }
}

TEST_CASE("dense small-batch kernels equal a double-precision product on every ISA", "[isa]") {
  for (Isa isa : supported_isas())
    for (DType dtype : {DType::BF16, DType::F16, DType::F32})
      for (int64_t cols : {1, 7, 8, 16, 33, 100, 515})
        for (int64_t rows : {1, 3, 4, 9}) {
          INFO(isa_name(isa) << " " << dtype_name(dtype) << " " << rows << "x" << cols);
          auto w = random_normals(rows * cols, uint32_t(rows * cols));
          auto half = to_half(w, dtype);
          std::vector<float> exact(w.size());  // the values the kernel sees
          if (dtype == DType::F32)
            exact = w;
          else
            convert_to_f32(dtype, half.data(), exact.data(), exact.size());
          const int64_t tokens = 7, x_stride = cols + 2, y_stride = rows + 3;  // token groups of 4, 2 and 1
          auto x = random_normals(tokens * x_stride, 3);
          std::vector<float> y(size_t(tokens * y_stride), -7.0f);
          DenseRows d{dtype, dtype == DType::F32 ? static_cast<const void*>(w.data()) : half.data(), rows, cols};
          dense_rows_product(d, x.data(), x_stride, tokens, y.data(), y_stride, isa);
          for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t r = 0; r < rows; ++r) {
              const ReferenceDot want = reference_dot(&exact[r * cols], &x[t * x_stride], cols);
              REQUIRE(std::abs(y[t * y_stride + r] - want.value) <= 1e-6 * want.magnitude + 1e-30);
            }
            REQUIRE(y[t * y_stride + rows] == -7.0f);  // nothing past the rows
          }
          // a token's result does not depend on the batch it is in (bit for bit)
          for (int64_t t = 0; t < tokens; ++t) {
            std::vector<float> alone(static_cast<size_t>(y_stride));
            dense_rows_product(d, x.data() + t * x_stride, x_stride, 1, alone.data(), y_stride, isa);
            REQUIRE(std::equal(alone.begin(), alone.begin() + rows, y.begin() + t * y_stride));
          }
        }
}

TEST_CASE("GEMM on every ISA, every transposition", "[isa]") {
  const int64_t m = 13, n = 29, k = 37;
  for (Isa isa : supported_isas())
    for (bool at : {false, true})
      for (bool bt : {false, true}) {
        INFO(isa_name(isa) << " a_transposed " << at << " b_transposed " << bt);
        const int64_t lda = (at ? m : k) + 3, ldb = (bt ? k : n) + 2, ldc = n + 5;
        auto a = random_normals((at ? k : m) * lda, 1);
        auto b = random_normals((bt ? n : k) * ldb, 2);
        std::vector<float> c(size_t(m * ldc), -7.0f);
        GemmProblem p{m, n, k, a.data(), lda, at, b.data(), ldb, bt, c.data(), ldc, 0.5f};
        gemm_f32(p, isa);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            double want = 0;
            for (int64_t l = 0; l < k; ++l)
              want += double(at ? a[l * lda + i] : a[i * lda + l]) * (bt ? b[j * ldb + l] : b[l * ldb + j]);
            REQUIRE(c[i * ldc + j] == Approx(0.5 * want).margin(1e-4));
          }
          REQUIRE(c[i * ldc + n] == -7.0f);
        }
      }
}

TEST_CASE("perplexity on every ISA equals the reference within 1e-4", "[isa][slow]") {
  auto source = open_checkpoint(test::fixture_model_dir());
  Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
  auto ids = tokenizer.encode(read_text_file(test::text_file("test")));
  double want = 114.57557935890647;
  const fs::path ref = test::reference_h5();
  if (!ref.empty()) want = test::read_reference_attribute(ref, "ppl");
  IsaScope scope;
  for (Isa isa : supported_isas()) {
    set_active_isa(isa);
    ThreadPool pool(0);
    Model model(*source, pool);
    const double ppl = evaluate_perplexity(model, ids, {}).ppl;
    INFO(isa_name(isa) << " perplexity " << ppl << " reference " << want);
    CHECK(std::abs(ppl / want - 1) < 1e-4);
  }
}

TEST_CASE("packed k-bit and ternary decoding: the same floats on every ISA", "[isa]") {
  const int64_t rows = 9, cols = 300;
  auto w = random_normals(rows * cols, 4);
  for (const char* spec : {"q4g128", "q3g64", "q2g128", "q8g128", "ternary-qmoe", "ternary-sym"}) {
    INFO(spec);
    const QuantizedMatrix m = quantize_rtn(w.data(), rows, cols, QuantFormat::parse(spec));
    std::vector<float> want(size_t(rows * cols));
    IsaScope scope;
    set_active_isa(Isa::Portable);
    dequantize_rows(m.view(), 0, rows, want.data());
    for (Isa isa : supported_isas()) {
      set_active_isa(isa);
      std::vector<float> got(want.size());
      dequantize_rows(m.view(), 0, rows, got.data());
      REQUIRE(got == want);
    }
  }
}

TEST_CASE("element-wise kernels (SiLU·up, softmax, log-sum-exp) on every ISA equal double precision, for any alignment",
          "[isa]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 4.0f);
  for (int64_t n : {1, 7, 16, 33, 4096}) {
    std::vector<float> x(static_cast<size_t>(n)), b(x.size());
    for (float& v : x) v = normal(rng);
    for (float& v : b) v = normal(rng);
    double m = x[0], sum = 0;
    for (float v : x) m = std::max(m, double(v));
    for (float v : x) sum += std::exp(double(v) - m);
    for (Isa isa : supported_isas()) {
      INFO(isa_name(isa) << ", n " << n);
      std::vector<float> first_softmax, first_silu;
      float first_lse = 0;
      for (size_t offset : {0, 1, 3}) {  // the same values at other alignments
        std::vector<float> buffer(offset + x.size()), up(offset + x.size());
        std::copy(x.begin(), x.end(), buffer.begin() + offset);
        std::copy(b.begin(), b.end(), up.begin() + offset);
        float* row = buffer.data() + offset;
        const float lse = log_sum_exp_kernel(row, n, isa);
        CHECK(lse == Approx(m + std::log(sum)).epsilon(1e-6).margin(1e-6));
        std::vector<float> p(row, row + n);
        softmax_kernel(p.data(), n, isa);
        for (int64_t i = 0; i < n; ++i)
          CHECK(p[size_t(i)] == Approx(std::exp(double(x[size_t(i)]) - m) / sum).epsilon(1e-5).margin(1e-7));
        silu_mul_kernel(row, up.data() + offset, n, isa);
        std::vector<float> s(row, row + n);
        for (int64_t i = 0; i < n; ++i) {
          const double v = x[size_t(i)];
          CHECK(s[size_t(i)] == Approx(v / (1 + std::exp(-v)) * b[size_t(i)]).epsilon(1e-5).margin(1e-6));
        }
        if (offset == 0) {
          first_softmax = p;
          first_silu = s;
          first_lse = lse;
        } else {  // bit for bit whatever the buffers' alignment
          CHECK(p == first_softmax);
          CHECK(s == first_silu);
          CHECK(lse == first_lse);
        }
      }
    }
  }
}
