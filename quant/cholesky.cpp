#include "quant/cholesky.h"

#include <algorithm>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "quant/gemm.h"

namespace moec {

namespace {

constexpr int64_t kBlock = 128;
using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Block = Eigen::Map<RowMatrixF, 0, Eigen::OuterStride<>>;

Block block(float* a, int64_t n, int64_t r, int64_t c, int64_t rows, int64_t cols) {
  return Block(a + r * n + c, rows, cols, Eigen::OuterStride<>(n));
}

// The inverse of a small lower-triangular block.
RowMatrixF lower_inverse(const RowMatrixF& l) {
  RowMatrixF inv = RowMatrixF::Identity(l.rows(), l.cols());
  l.triangularView<Eigen::Lower>().solveInPlace(inv);
  return inv;
}

}  // namespace

bool cholesky_lower_in_place(float* a, int64_t n) {
  RowMatrixF panel;
  for (int64_t j = 0; j < n; j += kBlock) {
    const int64_t jb = std::min(kBlock, n - j), below = n - j - jb;
    Block a11 = block(a, n, j, j, jb, jb);
    const RowMatrixF d = a11;
    Eigen::LLT<RowMatrixF> llt(d);
    if (llt.info() != Eigen::Success) return false;
    const RowMatrixF l11 = llt.matrixL();
    a11 = l11;
    if (below == 0) break;
    // L21 = A21 · L11⁻ᵀ.
    const RowMatrixF inv = lower_inverse(l11);
    panel = block(a, n, j + jb, j, below, jb);
    gemm_f32(a + (j + jb) * n + j, n, panel.data(), jb, inv.data(), jb, true, below, jb, jb, 1.0f, false);
    // A22 −= L21 · L21ᵀ, lower triangle only: one column block at a time,
    // from its diagonal down.
    for (int64_t k = j + jb; k < n; k += kBlock) {
      const int64_t kb = std::min(kBlock, n - k);
      const float* l21 = a + k * n + j;  // rows k.. of L21
      gemm_f32(a + k * n + k, n, l21, n, l21, n, true, n - k, kb, jb, -1.0f, true);
    }
  }
  for (int64_t r = 0; r < n; ++r) std::fill(a + r * n + r + 1, a + (r + 1) * n, 0.0f);
  return true;
}

void invert_lower_in_place(float* a, int64_t n) {
  RowMatrixF t;
  const int64_t last = ((n - 1) / kBlock) * kBlock;
  for (int64_t j = last; j >= 0; j -= kBlock) {
    const int64_t jb = std::min(kBlock, n - j), below = n - j - jb;
    Block a11 = block(a, n, j, j, jb, jb);
    const RowMatrixF inv11 = lower_inverse(a11);
    if (below > 0) {
      // X21 = −X22 · L21 · X11, X22 (rows and columns j+jb..) already inverted.
      t.setZero(below, jb);
      for (int64_t r = j + jb; r < n; r += kBlock) {
        const int64_t rb = std::min(kBlock, n - r), width = r + rb - (j + jb);  // X22 is lower: columns ≤ r + rb
        gemm_f32(t.data() + (r - j - jb) * jb, jb, a + r * n + j + jb, n, a + (j + jb) * n + j, n, false, rb, jb,
                  width, 1.0f, false);
      }
      gemm_f32(a + (j + jb) * n + j, n, t.data(), jb, inv11.data(), jb, false, below, jb, jb, -1.0f, false);
    }
    a11 = inv11;
  }
}

void permute_symmetric_in_place(float* a, int64_t n, const std::vector<int64_t>& p) {
  std::vector<float> row(static_cast<size_t>(n));
  std::vector<char> done(static_cast<size_t>(n), 0);
  // Rows: new row i = old row p[i], cycle by cycle.
  for (int64_t start = 0; start < n; ++start) {
    if (done[size_t(start)]) continue;
    std::copy(a + start * n, a + (start + 1) * n, row.begin());
    int64_t i = start;
    for (;;) {
      done[size_t(i)] = 1;
      const int64_t from = p[size_t(i)];
      if (from == start) {
        std::copy(row.begin(), row.end(), a + i * n);
        break;
      }
      std::copy(a + from * n, a + (from + 1) * n, a + i * n);
      i = from;
    }
  }
  // Columns, within each row.
  for (int64_t r = 0; r < n; ++r) {
    float* x = a + r * n;
    for (int64_t c = 0; c < n; ++c) row[size_t(c)] = x[p[size_t(c)]];
    std::copy(row.begin(), row.end(), x);
  }
}

bool inverse_upper_factor_in_place(float* a, int64_t n) {
  std::reverse(a, a + n * n);  // J·H·J
  if (!cholesky_lower_in_place(a, n)) return false;
  invert_lower_in_place(a, n);
  std::reverse(a, a + n * n);  // J·L⁻¹·J
  return true;
}

}  // namespace moec
