#include "model/linear.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "io/error.h"
#include "model/thread_pool.h"
#include "quant/sub1_kernels.h"
#include "quant/tensor_view.h"

namespace moec {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;

// Batches of up to this many tokens use the direct (matrix-vector style)
// kernel; larger ones the blocked GEMM, where widening a block of weights
// once pays off over many tokens.
constexpr int64_t kDirectMaxTokens = 4;
constexpr int64_t kTokenTile = 256;
constexpr int64_t kDirectRowTile = 64;  // a multiple of sub1's 16-row blocks
// sub1 weights: batches up to this size use the fused decode-and-multiply
// kernel; larger ones decode a tile to f32 and run the GEMM.
constexpr int64_t kSub1FusedMaxTokens = 16;

// Rows per GEMM tile: about 64 KB of widened f32 weights, a multiple of 16.
int64_t gemm_row_tile(int64_t cols) {
  int64_t rows = (16384 / std::max<int64_t>(cols, 1)) / 16 * 16;
  return std::clamp<int64_t>(rows, 16, 256);
}

const float* widen_rows(const WeightView& w, int64_t row0, int64_t rows, std::vector<float>& scratch) {
  if (w.kind == WeightKind::Quantized) {
    scratch.resize(size_t(rows * w.cols));
    dequantize_rows(w.quant, row0, rows, scratch.data());
    return scratch.data();
  }
  if (w.kind == WeightKind::Sub1) {  // row0 and rows are whole blocks (tiles are multiples of 16 rows)
    scratch.resize(size_t(rows * w.cols));
    for (int64_t r = 0; r < rows; r += kSub1BlockRows)
      sub1_dequantize_block(w.sub1, (row0 + r) / kSub1BlockRows, scratch.data() + r * w.cols);
    return scratch.data();
  }
  const size_t offset = size_t(row0) * size_t(w.cols) * dtype_size(w.dtype);
  if (w.dtype == DType::F32) return reinterpret_cast<const float*>(w.data + offset);
  scratch.resize(size_t(rows * w.cols));
  convert_to_f32(w.dtype, w.data + offset, scratch.data(), scratch.size());
  return scratch.data();
}

void gemm_tile(const LinearProblem& p, int64_t t0, int64_t tn, int64_t n0, int64_t nn) {
  thread_local std::vector<float> scratch;
  const float* w = widen_rows(p.w, n0, nn, scratch);
  Eigen::Map<const RowMatrix, 0, Stride> x(p.x + t0 * p.x_stride, tn, p.w.cols, Stride(p.x_stride));
  Eigen::Map<const RowMatrix> wt(w, nn, p.w.cols);
  Eigen::Map<RowMatrix, 0, Stride> y(p.y + t0 * p.y_stride + n0, tn, nn, Stride(p.y_stride));
  y.noalias() = x * wt.transpose();
}

// Dot products of 4 weight rows with one activation row, widening bf16 in
// registers (a bf16 is the top half of an f32: shift left 16).
#if defined(__AVX512F__)
inline __m512 load16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
#endif

template <typename W>
float widen(W v) {
  if constexpr (std::is_same_v<W, uint16_t>)
    return bf16_to_f32(v);
  else
    return v;
}

template <typename W>
void dot4(const W* w, int64_t ld, const float* x, int64_t k, float out[4]) {
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 16 <= k; i += 16) {
    __m512 xv = _mm512_loadu_ps(x + i);
    a0 = _mm512_fmadd_ps(load16(w + i), xv, a0);
    a1 = _mm512_fmadd_ps(load16(w + ld + i), xv, a1);
    a2 = _mm512_fmadd_ps(load16(w + 2 * ld + i), xv, a2);
    a3 = _mm512_fmadd_ps(load16(w + 3 * ld + i), xv, a3);
  }
  out[0] = _mm512_reduce_add_ps(a0);
  out[1] = _mm512_reduce_add_ps(a1);
  out[2] = _mm512_reduce_add_ps(a2);
  out[3] = _mm512_reduce_add_ps(a3);
#else
  out[0] = out[1] = out[2] = out[3] = 0.f;
#endif
  for (; i < k; ++i)
    for (int r = 0; r < 4; ++r) out[r] += widen(w[r * ld + i]) * x[i];
}

// `w` points at row n0; rows n0 .. n0+nn of y are written for every token.
template <typename W>
void direct_tile_typed(const LinearProblem& p, const W* w, int64_t n0, int64_t nn) {
  const int64_t k = p.w.cols;
  for (int64_t t = 0; t < p.tokens; ++t) {
    const float* x = p.x + t * p.x_stride;
    float* y = p.y + t * p.y_stride + n0;
    int64_t r = 0;
    for (; r + 4 <= nn; r += 4) dot4(w + r * k, k, x, k, y + r);
    for (; r < nn; ++r) {
      float acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += widen(w[r * k + i]) * x[i];
      y[r] = acc;
    }
  }
}

void direct_tile(const LinearProblem& p, int64_t n0, int64_t nn) {
  const size_t offset = size_t(n0) * size_t(p.w.cols) * dtype_size(p.w.dtype);
  if (p.w.kind == WeightKind::Sub1) {  // fused decode and product
    sub1_linear_blocks(p.w.sub1, n0 / kSub1BlockRows, (nn + kSub1BlockRows - 1) / kSub1BlockRows, p.x, p.x_stride,
                       p.tokens, p.y, p.y_stride);
    return;
  }
  if (p.w.kind == WeightKind::Quantized) {  // decode the tile's rows, then a plain f32 product
    thread_local std::vector<float> scratch;
    direct_tile_typed(p, widen_rows(p.w, n0, nn, scratch), n0, nn);
    return;
  }
  switch (p.w.dtype) {
    case DType::BF16: direct_tile_typed(p, reinterpret_cast<const uint16_t*>(p.w.data + offset), n0, nn); return;
    case DType::F32: direct_tile_typed(p, reinterpret_cast<const float*>(p.w.data + offset), n0, nn); return;
    default: {  // f16: widen the tile's rows, then treat as f32
      thread_local std::vector<float> scratch;
      direct_tile_typed(p, widen_rows(p.w, n0, nn, scratch), n0, nn);
    }
  }
}

struct Tile {
  const LinearProblem* problem;
  int64_t t0, tn, n0, nn;
  bool direct;
};

void add_tiles(const LinearProblem& p, std::vector<Tile>& tiles) {
  if (p.tokens <= 0 || p.w.rows <= 0) return;
  const bool sub1 = p.w.kind == WeightKind::Sub1;
  if (p.tokens <= (sub1 ? kSub1FusedMaxTokens : kDirectMaxTokens)) {
    for (int64_t n0 = 0; n0 < p.w.rows; n0 += kDirectRowTile)
      tiles.push_back({&p, 0, p.tokens, n0, std::min(kDirectRowTile, p.w.rows - n0), true});
    return;
  }
  const int64_t row_tile = gemm_row_tile(p.w.cols);
  for (int64_t t0 = 0; t0 < p.tokens; t0 += kTokenTile)
    for (int64_t n0 = 0; n0 < p.w.rows; n0 += row_tile)
      tiles.push_back({&p, t0, std::min(kTokenTile, p.tokens - t0), n0, std::min(row_tile, p.w.rows - n0), false});
}

}  // namespace

WeightView weight_view(const TensorData& tensor) {
  const TensorInfo& info = tensor.info();
  if (info.encoding == "sub1") return sub1_weights(sub1_view(tensor));
  if (info.encoded()) return quantized_weights(quantized_view(tensor));
  auto dtype = info.dense_dtype();
  if (!dtype || !dtype_is_float(*dtype) || info.shape.size() != 2)
    fail("tensor '{}': expected a dense 2-D float matrix, got encoding '{}' with {} dimensions", info.name,
         info.encoding, info.shape.size());
  WeightView w;
  w.dtype = *dtype;
  w.data = tensor.bytes().data();
  w.rows = info.shape[0];
  w.cols = info.shape[1];
  return w;
}

void linear(ThreadPool& pool, std::span<const LinearProblem> problems) {
  std::vector<Tile> tiles;
  for (const auto& p : problems) add_tiles(p, tiles);
  pool.parallel_for(tiles.size(), [&](size_t i, int) {
    const Tile& t = tiles[i];
    if (t.direct)
      direct_tile(*t.problem, t.n0, t.nn);
    else
      gemm_tile(*t.problem, t.t0, t.tn, t.n0, t.nn);
  });
}

void linear_reference(const LinearProblem& p) {
  std::vector<float> row(size_t(p.w.cols));
  for (int64_t n = 0; n < p.w.rows; ++n) {
    if (p.w.kind == WeightKind::Sub1)
      dequantize_sub1_rows(p.w.sub1, n, 1, row.data());
    else if (p.w.kind == WeightKind::Quantized)
      dequantize_rows(p.w.quant, n, 1, row.data());
    else
      convert_to_f32(p.w.dtype, p.w.data + size_t(n * p.w.cols) * dtype_size(p.w.dtype), row.data(), row.size());
    for (int64_t t = 0; t < p.tokens; ++t) {
      double acc = 0;
      for (int64_t k = 0; k < p.w.cols; ++k) acc += double(row[k]) * p.x[t * p.x_stride + k];
      p.y[t * p.y_stride + n] = float(acc);
    }
  }
}

}  // namespace moec
