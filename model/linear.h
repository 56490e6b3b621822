// y = x · Wᵀ for weights kept in their stored dtype (bf16/f16/f32). Weights
// are never copied whole to f32: the GEMM path widens one block of rows at a
// time into per-thread scratch, the small-batch path widens on the fly inside
// the dot product.
//
// Work is tiled into items that depend only on the problem's shape (never on
// the thread count), and each output element is computed by exactly one item,
// so results are bit-identical for any number of threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/checkpoint.h"
#include "io/dtype.h"
#include "quant/quantized_matrix.h"
#include "quant/sub1.h"
#include "quant/sub1_kernels.h"

namespace moec {

class ThreadPool;
class Sub1PlaneCache;

enum class WeightKind : uint8_t { Dense, Quantized, Sub1 };

// A weight matrix [rows, cols]: dense row-major in its stored dtype,
// quantized, or sub1-coded (both decoded a block of rows at a time, never
// whole; sub1 by the fused kernels of quant/sub1_kernels.h).
struct WeightView {
  DType dtype = DType::F32;
  const std::byte* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  WeightKind kind = WeightKind::Dense;
  QuantizedView quant;  // kind Quantized
  Sub1View sub1;        // kind Sub1
  // Sub1 only, optional: where small batches keep the decoded matrix
  // (model/sub1_plane_cache.h); the results are the same with or without.
  Sub1PlaneCache* plane_cache = nullptr;
  bool dense() const { return kind == WeightKind::Dense; }
};
inline WeightView quantized_weights(const QuantizedView& q) {
  WeightView w;
  w.kind = WeightKind::Quantized;
  w.quant = q;
  w.rows = q.rows;
  w.cols = q.cols;
  return w;
}
inline WeightView sub1_weights(const Sub1View& s) {
  WeightView w;
  w.kind = WeightKind::Sub1;
  w.sub1 = s;
  w.rows = s.rows;
  w.cols = s.cols;
  return w;
}
// An f32 matrix held in memory (merged or dequantized weights).
inline WeightView f32_view(const float* data, int64_t rows, int64_t cols) {
  WeightView w;
  w.data = reinterpret_cast<const std::byte*>(data);
  w.rows = rows;
  w.cols = cols;
  return w;
}
// Checks the tensor is a 2-D float matrix (dense or quantized) and views it.
WeightView weight_view(const TensorData& tensor);

// y[t, n] = Σ_k x[t, k] · w[n, k] for t < tokens, n < w.rows.
struct LinearProblem {
  const float* x;
  int64_t x_stride;  // floats between rows of x (>= w.cols)
  int64_t tokens;
  WeightView w;
  float* y;
  int64_t y_stride;  // floats between rows of y (>= w.rows)
};

// Batches of up to kBatchInvariantTokens tokens run kernels whose result for
// a token does not depend on the other tokens of the batch (dense, packed and
// sub1 weights alike): continuous batching relies on it for outputs that are
// the same alone or batched.
constexpr int64_t kBatchInvariantTokens = 16;

// Sub1 weights are multiplied by the fused kernels (quant/sub1_kernels.h),
// through the plane cache, up to this many tokens: lookup tables up to
// kSub1TableMaxTokens (batch-invariant), sums over the nonzeros with tokens
// in vector lanes above; larger batches decode tiles for a GEMM (the sums'
// cost grows with the token groups: at 64 tokens about a GEMM's).
constexpr int64_t kSub1FusedMaxTokens = 64;
static_assert(kBatchInvariantTokens <= kSub1TableMaxTokens, "sub1 products above the tables' limit depend on the batch");

// Solves all problems, their tiles spread over the pool together.
void linear(ThreadPool& pool, std::span<const LinearProblem> problems);
inline void linear(ThreadPool& pool, const LinearProblem& problem) { linear(pool, std::span(&problem, 1)); }

// Reference: the same product in plain double-accumulated loops (tests).
void linear_reference(const LinearProblem& problem);

// Rows [row0, row0 + rows) of w as f32 [rows, cols]: a pointer into w itself
// when it is f32, else into `scratch` (widened, dequantized or sub1-decoded
// with the CPU's kernels). Sub1: row0 is a multiple of kSub1BlockRows.
const float* widen_rows(const WeightView& w, int64_t row0, int64_t rows, std::vector<float>& scratch);

}  // namespace moec
