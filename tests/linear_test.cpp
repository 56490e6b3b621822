#include <catch2/catch.hpp>

#include <cmath>
#include <chrono>
#include <random>
#include <thread>

#include "io/dtype.h"
#include "model/linear.h"
#include "model/thread_pool.h"
#include "quant/gptq.h"
#include "tests/test_random.h"

using namespace moec;

namespace {

struct Weights {
  std::vector<std::byte> bytes;
  WeightView view;
};

Weights random_weights(DType dtype, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  Weights w;
  w.bytes.resize(size_t(rows * cols) * dtype_size(dtype));
  for (int64_t i = 0; i < rows * cols; ++i) {
    float v = normal(rng);
    if (dtype == DType::F32) std::memcpy(&w.bytes[i * 4], &v, 4);
    if (dtype == DType::BF16) {
      uint16_t b = f32_to_bf16(v);
      std::memcpy(&w.bytes[i * 2], &b, 2);
    }
    if (dtype == DType::F16) {
      _Float16 h = static_cast<_Float16>(v);
      std::memcpy(&w.bytes[i * 2], &h, 2);
    }
  }
  w.view.dtype = dtype;
  w.view.data = w.bytes.data();
  w.view.rows = rows;
  w.view.cols = cols;
  return w;
}

}  // namespace

TEST_CASE("linear matches a double-precision reference on every path", "[linear]") {
  ThreadPool pool(2);
  for (DType dtype : {DType::BF16, DType::F16, DType::F32}) {
    for (int64_t cols : {16, 37, 256}) {
      for (int64_t tokens : {1, 3, 4, 5, 300}) {  // direct kernel up to 4 tokens, GEMM above
        const int64_t rows = 70;
        Weights w = random_weights(dtype, rows, cols, 7);
        auto x = random_normals(tokens * (cols + 3), 11);  // strided rows
        std::vector<float> got(size_t(tokens * (rows + 5))), want(got.size());
        LinearProblem p{x.data(), cols + 3, tokens, w.view, got.data(), rows + 5};
        linear(pool, p);
        p.y = want.data();
        linear_reference(p);
        INFO("dtype " << dtype_name(dtype) << " cols " << cols << " tokens " << tokens);
        for (int64_t t = 0; t < tokens; ++t)
          for (int64_t n = 0; n < rows; ++n)
            REQUIRE(std::abs(got[t * (rows + 5) + n] - want[t * (rows + 5) + n]) <= 1e-5f * std::sqrt(float(cols)));
      }
    }
  }
}

TEST_CASE("linear results are bit-identical for any thread count", "[linear]") {
  Weights w = random_weights(DType::BF16, 700, 256, 3);
  for (int64_t tokens : {1, 600}) {
    auto x = random_normals(tokens * 256, 5);
    std::vector<std::vector<float>> results;
    for (int threads : {1, 2, 3, 5}) {
      ThreadPool pool(threads);
      std::vector<float> y(size_t(tokens * 700));
      linear(pool, LinearProblem{x.data(), 256, tokens, w.view, y.data(), 700});
      results.push_back(y);
    }
    for (size_t i = 1; i < results.size(); ++i) REQUIRE(results[i] == results[0]);
  }
}

TEST_CASE("a thread pool runs every item exactly once", "[linear]") {
  ThreadPool pool(3);
  for (size_t items : {0, 1, 2, 7, 1000}) {
    std::vector<std::atomic<int>> hits(items);
    for (int round = 0; round < 50; ++round) pool.parallel_for(items, [&](size_t i, int) { hits[i]++; });
    for (auto& h : hits) REQUIRE(h == 50);
  }
}

TEST_CASE("an exception in a parallel loop reaches the caller after all threads stop", "[linear]") {
  ThreadPool pool(3);
  std::atomic<int> ran{0};
  CHECK_THROWS_WITH(pool.parallel_for(1000,
                                      [&](size_t i, int) {
                                        ++ran;
                                        if (i == 10) throw std::runtime_error("item 10 failed");
                                        std::this_thread::sleep_for(std::chrono::microseconds(200));
                                      }),
                    "item 10 failed");
  CHECK(ran < 1000);  // nothing more is handed out after the failure
  std::atomic<int> after{0};
  pool.parallel_for(100, [&](size_t, int) { ++after; });  // the pool still works
  CHECK(after == 100);
}

TEST_CASE("linear on quantized weights equals the product with the dequantized matrix", "[linear]") {
  ThreadPool pool(2);
  const int64_t rows = 70, cols = 256;
  Weights dense = random_weights(DType::F32, rows, cols, 9);
  const float* w = reinterpret_cast<const float*>(dense.bytes.data());
  for (const char* spec : {"q4g128", "q3g64", "q2g128", "q8g0", "ternary-qmoe", "ternary-sym"}) {
    QuantizedMatrix q = quantize_rtn(w, rows, cols, QuantFormat::parse(spec));
    WeightView view = quantized_weights(q.view());
    std::vector<float> deq(static_cast<size_t>(rows * cols));
    dequantize_rows(q.view(), 0, rows, deq.data());
    for (int64_t tokens : {1, 3, 40}) {  // direct and GEMM paths
      auto x = random_normals(tokens * cols, 13);
      std::vector<float> got(static_cast<size_t>(tokens * rows)), want(got.size());
      linear(pool, LinearProblem{x.data(), cols, tokens, view, got.data(), rows});
      linear_reference(LinearProblem{x.data(), cols, tokens, f32_view(deq.data(), rows, cols), want.data(), rows});
      INFO(spec << " tokens " << tokens);
      for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::abs(got[i] - want[i]) <= 1e-4f);
    }
  }
}
