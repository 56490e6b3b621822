#include "quant/gptq.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <numeric>

#include "io/error.h"
#include "quant/cholesky.h"
#include "quant/gemm.h"
#include "quant/grid.h"

namespace moec {
namespace {

using RowMatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The weights transposed, wt[c][r], so a column of W (all rows of one input
// channel) is contiguous: GPTQ's updates run down columns.
RowMatrixF transposed(const float* w, int64_t rows, int64_t cols) {
  return Eigen::Map<const RowMatrixF>(w, rows, cols).transpose();
}

// Column c of the matrix is about to be quantized: fit the grids of the group
// starting at c (dynamic groups) from the current, error-updated weights.
void fit_group_at(QuantizedMatrix& m, const RowMatrixF& wt, int64_t c, std::vector<GroupGrid>& grids) {
  const int64_t width = m.format.group_columns(m.cols), group = c / width;
  const int64_t n = std::min(width, m.cols - group * width);
  for (int64_t r = 0; r < m.rows; ++r) {
    grids[r] = fit_grid(m.format, wt.data() + c * m.rows + r, n, m.rows);
    store_grid(m, r, group, grids[r]);
  }
}

// Quantizes column c of wt in place (wt[c] becomes the dequantized values),
// writing its codes; the error is wt_before - wt_after. `penalty` (ternary,
// rate-aware: three values) adds each trit's rate cost to its squared error.
void quantize_column(QuantizedMatrix& m, float* column, int64_t c, const std::vector<GroupGrid>& grids,
                     const std::vector<std::vector<GroupGrid>>* static_grids, const float* penalty = nullptr) {
  const int64_t row_bytes = m.format.row_bytes(m.cols);
  const int64_t group = c / m.format.group_columns(m.cols);
  for (int64_t r = 0; r < m.rows; ++r) {
    const GroupGrid& g = static_grids ? (*static_grids)[group][r] : grids[r];
    float value;
    int q = penalty ? quantize_trit_with_rate(g, column[r], penalty, &value) : quantize_value(m.format, g, column[r], &value);
    pack_code(m.format, m.codes.data() + r * row_bytes, c, q);
    column[r] = value;
  }
}

// Grids of every group fitted up front on the original weights (RTN, and
// GPTQ with act-order, whose column order does not follow the groups).
std::vector<std::vector<GroupGrid>> static_grids(QuantizedMatrix& m, const RowMatrixF& wt) {
  const int64_t width = m.format.group_columns(m.cols), groups = m.format.groups(m.cols);
  std::vector<std::vector<GroupGrid>> grids(size_t(groups), std::vector<GroupGrid>(size_t(m.rows)));
  for (int64_t g = 0; g < groups; ++g) fit_group_at(m, wt, g * width, grids[g]);
  return grids;
}

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t cols) : cols_(cols), sum_(size_t(cols * cols), 0.0f) {}

void HessianAccumulator::add(const float* x, int64_t rows, int64_t stride) {
  // chunkᵀ · chunk added into the sum in the CPU's best ISA (quant/gemm.h):
  // the bulk of calibration's arithmetic.
  GemmProblem p;
  p.m = p.n = cols_;
  p.k = rows;
  p.a = p.b = x;
  p.lda = p.ldb = stride;
  p.a_transposed = true;
  p.c = sum_.data();
  p.ldc = cols_;
  p.accumulate = true;
  if (rows > 0) gemm_f32(p);
  samples_ += rows;
}

std::vector<float> HessianAccumulator::hessian() const& { return HessianAccumulator(*this).hessian(); }

std::vector<float> HessianAccumulator::hessian() && {
  const float scale = samples_ ? float(2.0 / double(samples_)) : 0.0f;
  for (float& v : sum_) v *= scale;
  return std::move(sum_);
}

QuantizedMatrix quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantFormat& format) {
  QuantizedMatrix m(format, rows, cols);
  RowMatrixF wt = transposed(w, rows, cols);
  auto grids = static_grids(m, wt);
  for (int64_t c = 0; c < cols; ++c) quantize_column(m, wt.data() + c * rows, c, {}, &grids);
  return m;
}

namespace {

// What every GPTQ pass over one matrix shares: the column order and U, the
// upper Cholesky factor of the damped H⁻¹ (H⁻¹ = UᵀU), in that order.
struct Factorization {
  std::vector<int64_t> order;
  std::vector<float> u;  // row-major [cols, cols], in the Hessian's buffer
  int64_t n = 0;
  std::vector<double> diag;  // the damped H's diagonal, in order
  float at(int64_t i, int64_t j) const { return u[size_t(i * n + j)]; }
};

// One pass of GPTQ's column loop over wt (transposed weights, dead inputs
// zeroed): dynamic grids fitted per group as columns arrive, or the fixed
// grids given.
// Takes wt by value: the last pass gets it moved in and permutes it in
// place, so no second copy of W exists.
QuantizedMatrix gptq_pass(RowMatrixF wt, const Factorization& f, const QuantFormat& format,
                          const GptqOptions& options, const std::vector<std::vector<GroupGrid>>* fixed) {
  const int64_t cols = wt.rows(), rows = wt.cols();
  const std::vector<int64_t>& order = f.order;
  const std::vector<double>& diag = f.diag;
  // Work on the permuted columns: pw[i] is column order[i] (rows of wt
  // moved along order's cycles with one row of scratch).
  RowMatrixF& pw = wt;
  {
    std::vector<char> done(static_cast<size_t>(cols), 0);
    std::vector<float> first(static_cast<size_t>(rows));
    for (int64_t start = 0; start < cols; ++start) {
      if (done[size_t(start)] || order[size_t(start)] == start) continue;
      std::copy_n(pw.row(start).data(), rows, first.begin());
      for (int64_t i = start;;) {
        done[size_t(i)] = 1;
        const int64_t from = order[size_t(i)];
        if (from == start) {
          std::copy(first.begin(), first.end(), pw.row(i).data());
          break;
        }
        pw.row(i) = pw.row(from);
        i = from;
      }
    }
  }
  QuantizedMatrix m(format, rows, cols);
  std::vector<GroupGrid> grids(static_cast<size_t>(rows));
  if (fixed)
    for (int64_t g = 0; g < format.groups(cols); ++g)
      for (int64_t r = 0; r < rows; ++r) store_grid(m, r, g, (*fixed)[g][r]);
  const int64_t width = format.group_columns(cols);

  // Rate-aware ternary rounding: penalty λ · S · bits / H_ii in the squared
  // error's units (gptq.h), S = mean(w² · H_ii) of this matrix.
  const bool rate = format.ternary() && options.rate.lambda > 0;
  double unit = 0;
  if (rate) {
    for (int64_t i = 0; i < cols; ++i) unit += double(pw.row(i).squaredNorm()) * diag[size_t(i)];
    unit /= double(rows * cols);
  }
  float penalty[3];

  RowMatrixF err(options.block, rows);
  std::vector<float> before(static_cast<size_t>(rows));
  for (int64_t i1 = 0; i1 < cols; i1 += options.block) {
    const int64_t i2 = std::min(i1 + options.block, cols);
    for (int64_t i = i1; i < i2; ++i) {
      const int64_t c = order[i];
      float* column = pw.data() + i * rows;
      if (!fixed && c % width == 0) {
        // Fit from the current weights of this group's columns (in original
        // order these are pw rows i..i+width, since order is the identity).
        const int64_t n = std::min(width, cols - c);
        for (int64_t r = 0; r < rows; ++r) {
          grids[r] = fit_grid(format, column + r, n, rows);
          store_grid(m, r, c / width, grids[r]);
        }
      }
      const float d = f.at(i, i);
      if (rate)
        for (int t = 0; t < 3; ++t) penalty[t] = float(options.rate.lambda * unit * options.rate.bits[t] / diag[size_t(i)]);
      std::copy(column, column + rows, before.begin());
      quantize_column(m, column, c, grids, fixed, rate ? penalty : nullptr);
      float* e = err.data() + (i - i1) * rows;
      for (int64_t r = 0; r < rows; ++r) e[r] = (before[r] - column[r]) / d;
      for (int64_t j = i + 1; j < i2; ++j) {  // spread the error within the block
        const float fj = f.at(i, j);
        float* target = pw.data() + j * rows;
        for (int64_t r = 0; r < rows; ++r) target[r] -= e[r] * fj;
      }
    }
    if (i2 < cols) {  // and lazily over the rest: pw[i2..] −= U[i1..i2, i2..]ᵀ · err
      GemmProblem p;
      p.m = cols - i2;
      p.n = rows;
      p.k = i2 - i1;
      p.a = f.u.data() + i1 * cols + i2;
      p.lda = cols;
      p.a_transposed = true;
      p.b = err.data();
      p.ldb = rows;
      p.c = pw.data() + i2 * rows;
      p.ldc = rows;
      p.alpha = -1.0f;
      p.accumulate = true;
      gemm_f32(p);
    }
  }
  return m;
}

// Each row's ternary levels refitted to its trits: with a = [trit = high],
// b = [trit = low] and q = high·a + low·b, the (high, low) minimizing
// (w − q)ᵀ H (w − q) — the row's share of ‖(W − Q)X‖² — solve a 2×2 system
// (one unknown for the symmetric grid). A level with no trits, or a
// solution of the wrong sign, keeps its previous value. Rounded to what the
// format stores.
std::vector<GroupGrid> fitted_levels(const QuantizedMatrix& m, const RowMatrixF& wt, const Eigen::MatrixXf& h,
                                     const std::vector<GroupGrid>& current) {
  const int64_t rows = m.rows, cols = m.cols, row_bytes = m.format.row_bytes(cols);
  RowMatrixF a = RowMatrixF::Zero(rows, cols), b = RowMatrixF::Zero(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int t = ternary_code(m.codes.data() + r * row_bytes, c);
      if (t == 2) a(r, c) = 1.0f;
      if (t == 0) b(r, c) = 1.0f;
    }
  const RowMatrixF ah = a * h, bh = b * h;  // h is symmetric: rows of A·H are aᵀH
  const RowMatrixF w = wt.transpose();
  std::vector<GroupGrid> out(current);
  for (int64_t r = 0; r < rows; ++r) {
    const double aha = ah.row(r).dot(a.row(r)), ahb = ah.row(r).dot(b.row(r)), bhb = bh.row(r).dot(b.row(r));
    const double ahw = ah.row(r).dot(w.row(r)), bhw = bh.row(r).dot(w.row(r));
    double high = current[r].high, low = current[r].low;
    if (m.format.kind == GridKind::TernarySym) {
      const double den = aha - 2 * ahb + bhb;
      if (den > 0 && (ahw - bhw) / den > 0) high = (ahw - bhw) / den;
      low = -high;
    } else {
      const double det = aha * bhb - ahb * ahb;
      if (aha > 0 && bhb > 0 && det > 1e-9 * aha * bhb) {
        const double hi = (ahw * bhb - ahb * bhw) / det, lo = (aha * bhw - ahb * ahw) / det;
        if (hi > 0) high = hi;
        if (lo < 0) low = lo;
      } else if (aha > 0 && ahw / aha > 0) {
        high = ahw / aha;
      } else if (bhb > 0 && bhw / bhb < 0) {
        low = bhw / bhb;
      }
    }
    out[r] = ternary_grid(m.format, float(low), float(high));
  }
  return out;
}

}  // namespace

QuantizeOutcome quantize_gptq(const float* w, int64_t rows, int64_t cols, HessianAccumulator inputs,
                              const QuantFormat& format, const GptqOptions& options) {
  if (inputs.cols() != cols) fail("GPTQ: Hessian of {} inputs for a matrix of {} columns", inputs.cols(), cols);
  if (inputs.samples() == 0) return {quantize_rtn(w, rows, cols, format), true, "no calibration tokens"};
  RowMatrixF wt = transposed(w, rows, cols);
  Factorization f;
  f.n = cols;
  f.u = std::move(inputs).hessian();
  float* h = f.u.data();
  auto hd = [&](int64_t i) -> float& { return h[i * cols + i]; };

  // Inputs that never fire carry no information: pin them (as GPTQ does).
  for (int64_t c = 0; c < cols; ++c)
    if (hd(c) == 0) {
      hd(c) = 1;
      wt.row(c).setZero();
    }
  // Fitted levels need H itself after U has taken its place.
  const Eigen::MatrixXf h_copy =
      format.ternary() && options.level_fits > 0 ? Eigen::Map<Eigen::MatrixXf>(h, cols, cols) : Eigen::MatrixXf();
  f.order.resize(static_cast<size_t>(cols));
  std::iota(f.order.begin(), f.order.end(), 0);
  if (options.act_order)
    std::stable_sort(f.order.begin(), f.order.end(), [&](int64_t a, int64_t b) { return hd(a) > hd(b); });
  if (options.act_order) permute_symmetric_in_place(h, cols, f.order);
  double mean = 0;
  for (int64_t i = 0; i < cols; ++i) mean += hd(i);
  const float damp = float(options.damp * mean / double(cols));
  for (int64_t i = 0; i < cols; ++i) {
    hd(i) += damp;
    f.diag.push_back(hd(i));
  }
  if (!inverse_upper_factor_in_place(h, cols))
    return {quantize_rtn(w, rows, cols, format), true, "Hessian not positive definite"};

  // Ternary grids and GPTQ with act-order use grids fitted up front on the
  // original weights; affine grids without act-order follow the columns.
  const bool dynamic = !options.act_order && !format.ternary();
  if (dynamic) return {gptq_pass(std::move(wt), f, format, options, nullptr), false, {}};
  QuantizedMatrix scratch(format, rows, cols);
  std::vector<std::vector<GroupGrid>> fixed = static_grids(scratch, wt);
  const bool refits = format.ternary() && options.level_fits > 0;  // later passes need wt
  QuantizedMatrix m = refits ? gptq_pass(wt, f, format, options, &fixed) : gptq_pass(std::move(wt), f, format, options, &fixed);
  if (format.ternary() && options.level_fits > 0) {
    const Eigen::MatrixXf& hf = h_copy;
    for (int fit = 0; fit < options.level_fits; ++fit) {
      fixed[0] = fitted_levels(m, wt, hf, fixed[0]);
      if (fit + 1 < options.level_fits) {
        m = gptq_pass(wt, f, format, options, &fixed);
      } else {  // the last fit only replaces the levels of the final trits
        for (int64_t r = 0; r < rows; ++r) store_grid(m, r, 0, fixed[0][r]);
      }
    }
  }
  return {std::move(m), false, {}};
}

}  // namespace moec
