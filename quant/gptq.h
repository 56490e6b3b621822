// GPTQ (Frantar et al., 2022) for one weight matrix W [rows, cols] whose
// inputs x (length cols) have Hessian H = (2/n) Σ x xᵀ. Columns are
// quantized in order; each column's rounding error is spread over the
// columns not yet quantized through the upper Cholesky factor of H⁻¹, so
// the layer's output error ‖WX − QX‖ is minimized rather than ‖W − Q‖.
// Lazy block updates (block 128) keep the work cache-friendly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quant/format.h"
#include "quant/quantized_matrix.h"

namespace moec {

// H = (2/n) XᵀX accumulated over chunks of inputs. Each chunk's product is
// formed in f32 (a fast GEMM) and summed into a double matrix: relative error
// 6e-8 against all-double accumulation, where a running f32 sum reaches
// 2.7e-6 at 20k samples and grows with n (tests/quant_test.cpp).
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t cols);
  // Adds `rows` input vectors x[r * stride + c].
  void add(const float* x, int64_t rows, int64_t stride);
  int64_t samples() const { return samples_; }
  int64_t cols() const { return cols_; }
  // (2/n) XᵀX, column-major [cols, cols].
  std::vector<double> hessian() const;

 private:
  int64_t cols_;
  int64_t samples_ = 0;
  std::vector<double> sum_;  // Σ x xᵀ
};

struct GptqOptions {
  double damp = 0.01;  // added to the diagonal, relative to its mean
  int64_t block = 128;
  bool act_order = true;  // quantize columns by descending H diagonal
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
QuantizeOutcome quantize_gptq(const float* w, int64_t rows, int64_t cols, const HessianAccumulator& inputs,
                              const QuantFormat& format, const GptqOptions& options);

}  // namespace moec
