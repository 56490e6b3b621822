#include "model/linear.h"

#include <algorithm>
#include <deque>
#include <vector>

#include "io/error.h"
#include "model/sub1_plane_cache.h"
#include "model/thread_pool.h"
#include "quant/dense_kernels.h"
#include "quant/gemm.h"
#include "quant/sub1_kernels.h"
#include "quant/tensor_view.h"

namespace moec {
namespace {

// Batches of up to this many tokens use the direct (matrix-vector style)
// kernel; larger ones the blocked GEMM, where widening a block of weights
// once pays off over many tokens. 16, not less: the direct kernels give each
// token the same result whatever the batch, so a decode step of up to 16
// sequences (serve/) computes every sequence exactly as it would alone; and
// at 8 tokens they are faster than widening for the GEMM (bf16 Mixtral
// shape [14336 x 4096], Zen 3 AVX2, 2 threads: 14.3 ms vs 22.9 ms).
constexpr int64_t kDirectMaxTokens = kBatchInvariantTokens;
constexpr int64_t kTokenTile = 256;
constexpr int64_t kDirectRowTile = 64;  // a multiple of sub1's 16-row blocks

// Rows per GEMM tile: about 64 KB of widened f32 weights, a multiple of 16.
int64_t gemm_row_tile(int64_t cols) {
  int64_t rows = (16384 / std::max<int64_t>(cols, 1)) / 16 * 16;
  return std::clamp<int64_t>(rows, 16, 256);
}


void gemm_tile(const LinearProblem& p, int64_t t0, int64_t tn, int64_t n0, int64_t nn) {
  thread_local std::vector<float> scratch;
  GemmProblem g;
  g.m = tn;
  g.n = nn;
  g.k = p.w.cols;
  g.a = p.x + t0 * p.x_stride;
  g.lda = p.x_stride;
  g.b = widen_rows(p.w, n0, nn, scratch);
  g.ldb = p.w.cols;
  g.b_transposed = true;
  g.c = p.y + t0 * p.y_stride + n0;
  g.ldc = p.y_stride;
  gemm_f32(g);
}

void direct_tile(const LinearProblem& p, int64_t n0, int64_t nn, Sub1BlockPlanes* planes, const Sub1Activations* tables) {
  if (p.w.kind == WeightKind::Sub1) {  // fused decode and product
    sub1_linear_blocks(p.w.sub1, n0 / kSub1BlockRows, (nn + kSub1BlockRows - 1) / kSub1BlockRows, p.x, p.x_stride,
                       p.tokens, p.y, p.y_stride, active_isa(), planes, tables);
    return;
  }
  DenseRows rows;
  rows.rows = nn;
  rows.cols = p.w.cols;
  if (p.w.kind == WeightKind::Quantized) {  // decode the tile's rows, then a plain f32 product
    thread_local std::vector<float> scratch;
    rows.data = widen_rows(p.w, n0, nn, scratch);
  } else {
    rows.dtype = p.w.dtype;
    rows.data = p.w.data + size_t(n0) * size_t(p.w.cols) * dtype_size(p.w.dtype);
  }
  dense_rows_product(rows, p.x, p.x_stride, p.tokens, p.y + n0, p.y_stride);
}

struct Tile {
  const LinearProblem* problem;
  int64_t t0, tn, n0, nn;
  bool direct;
  Sub1BlockPlanes* planes = nullptr;  // sub1 direct tiles with a plane cache: the tile's blocks
  const Sub1Activations* tables = nullptr;  // sub1 direct tiles: the problem's prepared activations
};

// Cache entries one linear() call records into or replays, released when it
// ends (also by an exception: an entry left half recorded is dropped).
class HeldPlanes {
 public:
  ~HeldPlanes() {
    for (auto& [p, entry] : held_) p->w.plane_cache->release(p->w.sub1, entry);
  }
  // The problem's planes (one per block), or null without a cache entry.
  Sub1BlockPlanes* acquire(const LinearProblem& p) {
    if (p.w.plane_cache == nullptr) return nullptr;
    auto entry = p.w.plane_cache->acquire(p.w.sub1);
    if (!entry) return nullptr;
    held_.emplace_back(&p, entry);
    return entry->blocks.data();
  }

 private:
  std::vector<std::pair<const LinearProblem*, std::shared_ptr<Sub1PlaneCache::Entry>>> held_;
};

// Sub1 problems' activations (lookup tables or token lanes), prepared once
// per problem for all its tiles (std::deque: the tiles keep pointers).
using PreparedTables = std::deque<Sub1Activations>;

void add_tiles(const LinearProblem& p, std::vector<Tile>& tiles, HeldPlanes& held, PreparedTables& prepared) {
  if (p.tokens <= 0 || p.w.rows <= 0) return;
  const bool sub1 = p.w.kind == WeightKind::Sub1;
  if (p.tokens <= (sub1 ? kSub1FusedMaxTokens : kDirectMaxTokens)) {
    Sub1BlockPlanes* planes = sub1 ? held.acquire(p) : nullptr;
    const Sub1Activations* tables = nullptr;
    if (sub1) {
      prepared.emplace_back().prepare(p.x, p.x_stride, p.tokens, p.w.cols);
      tables = &prepared.back();
    }
    for (int64_t n0 = 0; n0 < p.w.rows; n0 += kDirectRowTile)
      tiles.push_back({&p, 0, p.tokens, n0, std::min(kDirectRowTile, p.w.rows - n0), true,
                       planes ? planes + n0 / kSub1BlockRows : nullptr, tables});
    return;
  }
  const int64_t row_tile = gemm_row_tile(p.w.cols);
  for (int64_t t0 = 0; t0 < p.tokens; t0 += kTokenTile)
    for (int64_t n0 = 0; n0 < p.w.rows; n0 += row_tile)
      tiles.push_back({&p, t0, std::min(kTokenTile, p.tokens - t0), n0, std::min(row_tile, p.w.rows - n0), false,
                       nullptr, nullptr});
}

}  // namespace

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
  HeldPlanes held;
  PreparedTables prepared;
  for (const auto& p : problems) add_tiles(p, tiles, held, prepared);
  pool.parallel_for(tiles.size(), [&](size_t i, int) {
    const Tile& t = tiles[i];
    if (t.direct)
      direct_tile(*t.problem, t.n0, t.nn, t.planes, t.tables);
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
