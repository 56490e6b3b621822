// quant/cholesky.h against Eigen in double: the in-place f32 factorizations
// GPTQ runs on its Hessians.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <random>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "quant/cholesky.h"

namespace {

using MatrixD = Eigen::MatrixXd;

// A Hessian-like SPD matrix: (2/m) XᵀX of correlated inputs plus 1% of the
// mean diagonal, as GPTQ damps it.
MatrixD hessian_like(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  const int64_t m = 2 * n + 8;
  MatrixD x(m, n);
  for (int64_t t = 0; t < m; ++t) {
    double shared = normal(rng);
    for (int64_t c = 0; c < n; ++c) x(t, c) = 0.7 * shared + normal(rng) * (1.0 + double(c % 7));
  }
  MatrixD h = (2.0 / double(m)) * x.transpose() * x;
  h.diagonal().array() += 0.01 * h.diagonal().mean();
  return h;
}

std::vector<float> as_f32(const MatrixD& m) {  // row-major
  std::vector<float> out(size_t(m.size()));
  for (int64_t r = 0; r < m.rows(); ++r)
    for (int64_t c = 0; c < m.cols(); ++c) out[size_t(r * m.cols() + c)] = float(m(r, c));
  return out;
}

double relative_error(const std::vector<float>& got, const MatrixD& want) {
  double diff = 0, norm = 0;
  for (int64_t r = 0; r < want.rows(); ++r)
    for (int64_t c = 0; c < want.cols(); ++c) {
      const double d = double(got[size_t(r * want.cols() + c)]) - want(r, c);
      diff += d * d;
      norm += want(r, c) * want(r, c);
    }
  return std::sqrt(diff / norm);
}

}  // namespace

TEST_CASE("in-place f32 Cholesky, triangular inverse and GPTQ's inverse factor match Eigen in double", "[quant]") {
  // Sizes around the 128 block: one element, under one block, exact blocks, ragged.
  for (int64_t n : {1, 5, 127, 128, 300, 517}) {
    const MatrixD h = hessian_like(n, uint32_t(n));
    INFO("n = " << n);
    const Eigen::LLT<MatrixD> llt(h);
    const MatrixD l = llt.matrixL();

    std::vector<float> a = as_f32(h);
    REQUIRE(moec::cholesky_lower_in_place(a.data(), n));
    CHECK(relative_error(a, l) < 1e-5);  // includes the zeroed upper triangle

    moec::invert_lower_in_place(a.data(), n);
    const MatrixD l_inv = l.triangularView<Eigen::Lower>().solve(MatrixD::Identity(n, n));
    CHECK(relative_error(a, l_inv) < 1e-4);

    // What GPTQ needs: U upper with H⁻¹ = UᵀU (the textbook route, in double).
    const MatrixD u = Eigen::LLT<MatrixD>(llt.solve(MatrixD::Identity(n, n))).matrixU();
    std::vector<float> b = as_f32(h);
    REQUIRE(moec::inverse_upper_factor_in_place(b.data(), n));
    CHECK(relative_error(b, u) < 1e-4);
  }
}

TEST_CASE("symmetric permutation in place", "[quant]") {
  const int64_t n = 37;
  const MatrixD h = hessian_like(n, 3);
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), std::mt19937(4));
  std::vector<float> a = as_f32(h);
  moec::permute_symmetric_in_place(a.data(), n, p);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) REQUIRE(a[size_t(i * n + j)] == float(h(p[size_t(i)], p[size_t(j)])));
}

TEST_CASE("a matrix that is not positive definite is refused", "[quant]") {
  for (int64_t n : {4, 200}) {
    MatrixD h = hessian_like(n, 9);
    h(n - 1, n - 1) = -1.0;  // the last pivot goes negative
    std::vector<float> a = as_f32(h);
    CHECK_FALSE(moec::cholesky_lower_in_place(a.data(), n));
    std::vector<float> b = as_f32(h);
    CHECK_FALSE(moec::inverse_upper_factor_in_place(b.data(), n));
  }
}
