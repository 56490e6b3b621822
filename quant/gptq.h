// GPTQ (Frantar et al., 2022) for one weight matrix W [rows, cols] whose
// inputs x (length cols) have Hessian H = (2/n) Σ x xᵀ. Columns are
// quantized in order; each column's rounding error is spread over the
// columns not yet quantized through the upper Cholesky factor of H⁻¹, so
// the layer's output error ‖WX − QX‖ is minimized rather than ‖W − Q‖.
// Lazy block updates (block 128) keep the work cache-friendly.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/format.h"
#include "quant/quantized_matrix.h"

namespace moec {

// H = (2/n) XᵀX accumulated over chunks of inputs, in f32: each chunk's
// product is added into the sum by a fast GEMM (no second matrix). f32 is
// what a 14336-input expert matrix (Mixtral's w2) can afford: 822 MB where
// double took 1.6 GB. Measured against all-double accumulation: relative
// error under 1e-6 at 20k samples (tests/quant_test.cpp), four orders of
// magnitude below the 1e-2 dampening GPTQ adds.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols);
  // Adds `rows` input vectors x[r * stride + c].
  void add(const float* x, int64_t rows, int64_t stride);
  int64_t samples() const { return samples_; }
  int64_t cols() const { return cols_; }
  // (2/n) XᵀX, [cols, cols] (symmetric).
  std::vector<float> hessian() const&;
  std::vector<float> hessian() &&;  // the same, in the accumulator's own storage

 private:
  int64_t cols_;
  int64_t samples_ = 0;
  std::vector<float> sum_;  // Σ x xᵀ
};

// Rate-aware rounding of ternary codes: entropy-constrained scalar
// quantization (Chou, Lookabaugh & Gray 1989) inside GPTQ's column loop.
// Each weight takes the trit minimizing
//   (v − level)² · H_ii + λ · S · bits[trit]
// where v is the error-updated weight, H_ii the (damped) Hessian diagonal
// of its input, bits the trit's code length under the current statistics
// (−log2 p, what the Tunstall code spends) and S = mean(w² · H_ii) over the
// matrix, so λ is dimensionless: bits traded against a share of the
// all-zero matrix's (diagonal) output error. Zeros are bought where inputs
// carry little energy. λ = 0 is plain GPTQ.
//
// Why H_ii and not GPTQ's own pivot d (the error it weighs is e²/d², with
// the remaining columns compensating): with ternary levels the later
// columns cannot absorb the compensation, so e²/d² badly underestimates
// what a zero costs. Measured on the shipped model (act-order, sub1):
// weighting by 1/d² at λ = 1 raised zeros only from 71.7% to 78.3% but the
// MoE output error from 0.11 to 0.34 (perplexity 124.2 at 1.097 bits); H_ii
// gives 116.57 at 1.165 bits and 117.77 at 1.079 (docs/rate-distortion.md).
struct TernaryRate {
  double lambda = 0;
  std::array<double, 3> bits{1.0, 1.0, 1.0};  // code lengths of trits 0 (low), 1 (zero), 2 (high)
};

struct GptqOptions {
  double damp = 0.01;  // added to the diagonal, relative to its mean
  int64_t block = 128;
  bool act_order = true;  // quantize columns by descending H diagonal
  TernaryRate rate;       // ternary grids only
  // Ternary grids: fit each row's levels to its trits this many times (least
  // squares in the Hessian's metric, ‖(W − Q)X‖² for fixed trits), re-running
  // GPTQ on the fitted levels after each fit but the last. 0: the grid's
  // own levels (min/max of the row for qmoe and sub1).
  int level_fits = 0;
};

struct QuantizeOutcome {
  QuantizedMatrix matrix;
  bool used_rtn = false;  // GPTQ not possible (no inputs or H not positive definite)
  std::string note;       // why RTN was used
};

// Round-to-nearest: every group's grid fitted on the original weights.
QuantizedMatrix quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantFormat& format);

// GPTQ with the Hessian of the matrix's inputs; falls back to RTN (and says
// so) when the Hessian has no samples or its Cholesky factorization fails.
// Memory: the Hessian (cols² f32, factored in place: pass an rvalue to lend
// the accumulator's storage) and two copies of W in f32 (transposed, then
// the pass's permuted working copy); with level_fits, one more cols² copy of H.
QuantizeOutcome quantize_gptq(const float* w, int64_t rows, int64_t cols, HessianAccumulator inputs,
                              const QuantFormat& format, const GptqOptions& options);

}  // namespace moec
