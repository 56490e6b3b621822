#include "distill/layers.h"

#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/ops.h"
#include "model/thread_pool.h"

namespace moec::distill {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::OuterStride<>;
using ConstBlock = Eigen::Map<const RowMatrix, 0, Strided>;
using Block = Eigen::Map<RowMatrix, 0, Strided>;
using Array = Eigen::Array<float, Eigen::Dynamic, 1>;
using ArrayMap = Eigen::Map<Array>;
using ConstArrayMap = Eigen::Map<const Array>;

// Tile sizes of the parallel loops: fixed, so the split (and therefore every
// rounding) is the same whatever the thread count.
constexpr int64_t kRowTile = 256, kColTile = 64, kElementTile = 16384;

int64_t tiles(int64_t n, int64_t tile) { return (n + tile - 1) / tile; }

ConstBlock cblock(const float* base, int64_t ld, int64_t r0, int64_t c0, int64_t rows, int64_t cols) {
  return ConstBlock(base + r0 * ld + c0, rows, cols, Strided(ld));
}
Block block(float* base, int64_t ld, int64_t r0, int64_t c0, int64_t rows, int64_t cols) {
  return Block(base + r0 * ld + c0, rows, cols, Strided(ld));
}

// Runs fn(r0, rows, c0, cols) over a grid of tiles of an [n, m] output.
template <typename Fn>
void for_tiles(ThreadPool& pool, int64_t n, int64_t m, int64_t row_tile, int64_t col_tile, Fn&& fn) {
  const int64_t row_tiles = tiles(n, row_tile), col_tiles = tiles(m, col_tile);
  pool.parallel_for(size_t(row_tiles * col_tiles), [&](size_t item, int) {
    const int64_t r0 = int64_t(item) / col_tiles * row_tile, c0 = int64_t(item) % col_tiles * col_tile;
    fn(r0, std::min(row_tile, n - r0), c0, std::min(col_tile, m - c0));
  });
}

// Element-wise work with exp runs on an aligned copy: Eigen's vectorized exp
// treats an unaligned head differently (see model/ops.cpp), and results must
// not depend on where a buffer starts.
Array& scratch(int slot, const float* x, int64_t n) {
  thread_local Array buffers[4];
  buffers[slot] = ConstArrayMap(x, n);
  return buffers[slot];
}

}  // namespace

void linear_forward(ThreadPool& pool, const float* x, const float* w, int64_t n, int64_t in, int64_t out, float* y) {
  for_tiles(pool, n, out, kRowTile, kColTile, [&](int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
    block(y, out, r0, c0, rows, cols).noalias() =
        cblock(x, in, r0, 0, rows, in) * cblock(w, in, c0, 0, cols, in).transpose();
  });
}

void linear_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, int64_t n, int64_t in,
                     int64_t out, float* dx, float* dw) {
  if (dx)
    for_tiles(pool, n, in, kRowTile, kColTile, [&](int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
      block(dx, in, r0, c0, rows, cols).noalias() = cblock(dy, out, r0, 0, rows, out) * cblock(w, in, 0, c0, out, cols);
    });
  for_tiles(pool, out, in, kColTile, kColTile, [&](int64_t o0, int64_t outs, int64_t i0, int64_t ins) {
    block(dw, in, o0, i0, outs, ins).noalias() +=
        cblock(dy, out, 0, o0, n, outs).transpose() * cblock(x, in, 0, i0, n, ins);
  });
}

void rms_norm_forward(ThreadPool& pool, const float* x, const float* w, int64_t n, int64_t dim, float eps, float* y,
                      float* rstd) {
  pool.parallel_for(size_t(tiles(n, kRowTile)), [&](size_t item, int) {
    const int64_t r0 = int64_t(item) * kRowTile, r1 = std::min(n, r0 + kRowTile);
    for (int64_t r = r0; r < r1; ++r) {
      const float* v = x + r * dim;
      double square = 0;
      for (int64_t i = 0; i < dim; ++i) square += double(v[i]) * v[i];
      rstd[r] = float(1.0 / std::sqrt(square / double(dim) + eps));
      for (int64_t i = 0; i < dim; ++i) y[r * dim + i] = w[i] * (v[i] * rstd[r]);
    }
  });
}

void rms_norm_backward(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* rstd, int64_t n,
                       int64_t dim, float* dx, float* dw) {
  pool.parallel_for(size_t(tiles(n, kRowTile)), [&](size_t item, int) {
    const int64_t r0 = int64_t(item) * kRowTile, r1 = std::min(n, r0 + kRowTile);
    for (int64_t r = r0; r < r1; ++r) {
      const float *g = dy + r * dim, *v = x + r * dim;
      double dot = 0;  // Σ w·dy·x
      for (int64_t i = 0; i < dim; ++i) dot += double(w[i]) * g[i] * v[i];
      const float s = rstd[r], c = float(dot * double(s) * s * s / double(dim));
      for (int64_t i = 0; i < dim; ++i) dx[r * dim + i] += s * w[i] * g[i] - v[i] * c;
    }
  });
  pool.parallel_for(size_t(tiles(dim, kColTile)), [&](size_t item, int) {
    const int64_t c0 = int64_t(item) * kColTile, c1 = std::min(dim, c0 + kColTile);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = c0; i < c1; ++i) dw[i] += dy[r * dim + i] * x[r * dim + i] * rstd[r];
  });
}

RotaryTable::RotaryTable(int64_t head_dim, double theta, int64_t positions) : half_(head_dim / 2) {
  cos_.resize(size_t(positions * half_));
  sin_.resize(cos_.size());
  for (int64_t i = 0; i < half_; ++i) {
    // As Hugging Face: inverse frequencies and angles in f32.
    const float inv_freq = float(1.0 / std::pow(theta, double(2 * i) / double(2 * half_)));
    for (int64_t p = 0; p < positions; ++p) {
      const float angle = float(p) * inv_freq;
      cos_[size_t(p * half_ + i)] = std::cos(angle);
      sin_[size_t(p * half_ + i)] = std::sin(angle);
    }
  }
}

void RotaryTable::rotate(ThreadPool& pool, float* x, int64_t n, int64_t heads, std::span<const int32_t> positions,
                         bool inverse) const {
  const float sign = inverse ? -1.0f : 1.0f;
  pool.parallel_for(size_t(tiles(n, kRowTile)), [&](size_t item, int) {
    const int64_t r0 = int64_t(item) * kRowTile, r1 = std::min(n, r0 + kRowTile);
    for (int64_t r = r0; r < r1; ++r) {
      const float* c = &cos_[size_t(positions[r] * half_)];
      const float* s = &sin_[size_t(positions[r] * half_)];
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (r * heads + h) * 2 * half_;
        for (int64_t i = 0; i < half_; ++i) {
          const float a = v[i], b = v[i + half_], sn = sign * s[i];
          v[i] = a * c[i] - b * sn;
          v[i + half_] = b * c[i] + a * sn;
        }
      }
    }
  });
}

void attention_forward(ThreadPool& pool, const AttentionDims& dims, const float* q, const float* k, const float* v,
                       float* probs, float* out) {
  const int64_t t = dims.ctx, d = dims.head_dim, q_dim = dims.heads * d, kv_dim = dims.kv_heads * d;
  const int64_t group = dims.heads / dims.kv_heads;
  const float scale = 1.0f / std::sqrt(float(d));
  pool.parallel_for(size_t(dims.windows * dims.heads), [&](size_t item, int) {
    const int64_t b = int64_t(item) / dims.heads, h = int64_t(item) % dims.heads, g = h / group;
    float* p = probs + int64_t(item) * t * t;
    Eigen::Map<RowMatrix> scores(p, t, t);
    scores.noalias() = scale * cblock(q, q_dim, b * t, h * d, t, d) * cblock(k, kv_dim, b * t, g * d, t, d).transpose();
    for (int64_t i = 0; i < t; ++i) {
      const int64_t first = dims.sliding > 0 ? std::max<int64_t>(0, i + 1 - dims.sliding) : 0;
      float* row = p + i * t;
      softmax(row + first, i + 1 - first);
      std::fill(row, row + first, 0.0f);
      std::fill(row + i + 1, row + t, 0.0f);
    }
    block(out, q_dim, b * t, h * d, t, d).noalias() = scores * cblock(v, kv_dim, b * t, g * d, t, d);
  });
}

void attention_backward(ThreadPool& pool, const AttentionDims& dims, const float* dout, const float* q,
                        const float* k, const float* v, const float* probs, float* dq, float* dk, float* dv) {
  const int64_t t = dims.ctx, d = dims.head_dim, q_dim = dims.heads * d, kv_dim = dims.kv_heads * d;
  const int64_t group = dims.heads / dims.kv_heads;
  const float scale = 1.0f / std::sqrt(float(d));
  // One item per (window, kv head): the group's heads add into its dk/dv in
  // head order.
  pool.parallel_for(size_t(dims.windows * dims.kv_heads), [&](size_t item, int) {
    const int64_t b = int64_t(item) / dims.kv_heads, g = int64_t(item) % dims.kv_heads;
    auto dk_g = block(dk, kv_dim, b * t, g * d, t, d);
    auto dv_g = block(dv, kv_dim, b * t, g * d, t, d);
    dk_g.setZero();
    dv_g.setZero();
    const auto k_g = cblock(k, kv_dim, b * t, g * d, t, d), v_g = cblock(v, kv_dim, b * t, g * d, t, d);
    thread_local RowMatrix dp;
    for (int64_t h = g * group; h < (g + 1) * group; ++h) {
      Eigen::Map<const RowMatrix> p(probs + (b * dims.heads + h) * t * t, t, t);
      const auto dout_h = cblock(dout, q_dim, b * t, h * d, t, d);
      dv_g.noalias() += p.transpose() * dout_h;
      dp.noalias() = dout_h * v_g.transpose();
      for (int64_t i = 0; i < t; ++i) {  // softmax backward, row by row
        double dot = 0;
        for (int64_t j = 0; j <= i; ++j) dot += double(p(i, j)) * dp(i, j);
        for (int64_t j = 0; j < t; ++j) dp(i, j) = p(i, j) * (dp(i, j) - float(dot));
      }
      block(dq, q_dim, b * t, h * d, t, d).noalias() = scale * dp * k_g;
      dk_g.noalias() += scale * dp.transpose() * cblock(q, q_dim, b * t, h * d, t, d);
    }
  });
}

void swiglu_forward(ThreadPool& pool, const float* g, const float* u, int64_t count, float* a) {
  pool.parallel_for(size_t(tiles(count, kElementTile)), [&](size_t item, int) {
    const int64_t i0 = int64_t(item) * kElementTile, len = std::min(kElementTile, count - i0);
    Array& x = scratch(0, g + i0, len);
    ArrayMap(a + i0, len) = x / (1.0f + (-x).exp()) * ConstArrayMap(u + i0, len);
  });
}

void swiglu_backward(ThreadPool& pool, const float* da, const float* g, const float* u, int64_t count, float* dg,
                     float* du) {
  pool.parallel_for(size_t(tiles(count, kElementTile)), [&](size_t item, int) {
    const int64_t i0 = int64_t(item) * kElementTile, len = std::min(kElementTile, count - i0);
    Array& x = scratch(0, g + i0, len);
    Array& sig = scratch(1, g + i0, len);
    sig = 1.0f / (1.0f + (-x).exp());
    ConstArrayMap grad(da + i0, len), up(u + i0, len);
    ArrayMap(du + i0, len) = grad * x * sig;
    ArrayMap(dg + i0, len) = grad * up * sig * (1.0f + x * (1.0f - sig));
  });
}

LossSums loss_backward(ThreadPool& pool, float* logits, const float* teacher, std::span<const int32_t> labels,
                       int64_t vocab, const LossWeights& weights, float scale) {
  const int64_t rows = int64_t(labels.size());
  const float alpha = teacher ? weights.alpha : 0.0f, temp = weights.temperature;
  std::vector<double> nll(size_t(rows), 0.0), kl(size_t(rows), 0.0);
  pool.parallel_for(size_t(rows), [&](size_t r, int) {
    float* z = logits + int64_t(r) * vocab;
    if (labels[r] < 0) {
      std::fill(z, z + vocab, 0.0f);
      return;
    }
    const float lse = log_sum_exp(z, vocab);
    nll[r] = double(lse) - z[labels[r]];
    Array& grad = scratch(0, z, vocab);
    grad = ((grad - lse).exp()) * (1.0f - alpha);  // (1−α)·softmax(z)
    grad[labels[r]] -= 1.0f - alpha;
    if (alpha > 0) {  // log-probabilities at temperature T, then KL and its gradient T·(p_s − p_t)
      Array& log_s = scratch(1, z, vocab);
      log_s /= temp;
      log_s -= log_sum_exp(log_s.data(), vocab);
      Array& log_t = scratch(2, teacher + int64_t(r) * vocab, vocab);
      log_t /= temp;
      log_t -= log_sum_exp(log_t.data(), vocab);
      Array& p_t = scratch(3, log_t.data(), vocab);
      p_t = p_t.exp();
      kl[r] = (p_t * (log_t - log_s)).cast<double>().sum();
      grad += alpha * temp * (log_s.exp() - p_t);
    }
    ArrayMap(z, vocab) = grad * scale;
  });
  LossSums sums;
  for (int64_t r = 0; r < rows; ++r) {
    if (labels[r] < 0) continue;
    sums.nll += nll[r];
    sums.kl += kl[r];
    sums.loss += (1.0 - alpha) * nll[r] + double(alpha) * temp * temp * kl[r];
    ++sums.rows;
  }
  return sums;
}

}  // namespace moec::distill
