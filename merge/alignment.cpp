#include "merge/alignment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "io/error.h"
#include "model/thread_pool.h"
#include "quant/gemm.h"

namespace moec {
namespace {

// Hungarian algorithm with row/column potentials (shortest augmenting paths).
std::vector<int64_t> hungarian(const std::vector<double>& cost, int64_t n) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(size_t(n + 1), 0), v(size_t(n + 1), 0);
  std::vector<int64_t> match(size_t(n + 1), 0), way(size_t(n + 1), 0);  // match[col] = row (1-based)
  for (int64_t row = 1; row <= n; ++row) {
    match[0] = row;
    int64_t col0 = 0;
    std::vector<double> min_to(size_t(n + 1), inf);
    std::vector<char> used(size_t(n + 1), 0);
    do {
      used[col0] = 1;
      const int64_t r = match[col0];
      double delta = inf;
      int64_t col1 = 0;
      for (int64_t c = 1; c <= n; ++c) {
        if (used[c]) continue;
        const double reduced = cost[(r - 1) * n + (c - 1)] - u[r] - v[c];
        if (reduced < min_to[c]) {
          min_to[c] = reduced;
          way[c] = col0;
        }
        if (min_to[c] < delta) {
          delta = min_to[c];
          col1 = c;
        }
      }
      for (int64_t c = 0; c <= n; ++c) {
        if (used[c]) {
          u[match[c]] += delta;
          v[c] -= delta;
        } else {
          min_to[c] -= delta;
        }
      }
      if (col1 == 0) break;  // no finite cost left (NaN weights): stop, the caller checks the result
      col0 = col1;
    } while (match[col0] != 0);
    do {  // augment along the path
      const int64_t col1 = way[col0];
      match[col0] = match[col1];
      col0 = col1;
    } while (col0 != 0);
  }
  std::vector<int64_t> result(static_cast<size_t>(n));
  for (int64_t c = 1; c <= n; ++c) result[match[c] - 1] = c - 1;
  return result;
}

// Greedy: cheapest remaining pairs first.
std::vector<int64_t> greedy(const std::vector<double>& cost, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n * n));
  std::iota(order.begin(), order.end(), 0);
  // NaN costs sort last, so the comparison stays a strict weak order.
  auto key = [&](int64_t i) { return std::isnan(cost[i]) ? std::numeric_limits<double>::infinity() : cost[i]; };
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key(a) < key(b) || (key(a) == key(b) && a < b); });
  std::vector<int64_t> result(static_cast<size_t>(n), -1);
  std::vector<char> taken(static_cast<size_t>(n), 0);
  for (int64_t k : order) {
    const int64_t r = k / n, c = k % n;
    if (result[r] >= 0 || taken[c]) continue;
    result[r] = c;
    taken[c] = 1;
  }
  return result;
}

// Unit-norm feature of neuron i: its w1 row, w3 row and w2 column.
std::vector<float> neuron_features(const ExpertMatrices& e) {
  const int64_t h = e.hidden, width = 3 * h;
  std::vector<float> f(static_cast<size_t>(e.inter * width));
  for (int64_t i = 0; i < e.inter; ++i) {
    float* out = &f[i * width];
    for (int64_t k = 0; k < h; ++k) {
      out[k] = e.w1[i * h + k];
      out[h + k] = e.w3[i * h + k];
      out[2 * h + k] = e.w2[k * e.inter + i];
    }
    double norm = 0;
    for (int64_t k = 0; k < width; ++k) norm += double(out[k]) * out[k];
    const float scale = norm > 0 ? float(1.0 / std::sqrt(norm)) : 0.0f;
    for (int64_t k = 0; k < width; ++k) out[k] *= scale;
  }
  return f;
}

// Wide experts (n above the exact limit: Mixtral's 14336 neurons): the
// n × n similarities are never held. Rows are taken in blocks of
// kAlignBlock; a block's similarities to the open columns come from three
// GEMMs (w1 rows, w3 rows, w2 columns), and each row keeps its kCandidates
// most similar columns. Greedy over those pairs, most similar first (ties:
// lower row, then column); rows whose candidates were all taken are matched
// the same way among the columns left, round after round (each round
// matches at least its best pair). Memory: a block of similarities per
// thread and the candidates, O(n); time: about 6·n²·hidden flops.
constexpr int64_t kAlignBlock = 256;
constexpr int64_t kCandidates = 16;

struct Candidate {
  float similarity;
  int64_t row, col;  // indices into the round's rows and columns
};

// The member's w1 and w3 rows and w2 columns `cols` (all of them: none
// copied), as GEMM operands: w1/w3 [cols, h], w2 [h, cols].
struct MemberColumns {
  const float *w1, *w3, *w2;
  int64_t ld2;
  std::vector<float> g1, g3, g2;
  MemberColumns(const ExpertMatrices& m, const std::vector<int64_t>& cols) {
    const int64_t h = m.hidden, n = int64_t(cols.size());
    if (n == m.inter) {
      w1 = m.w1.data(), w3 = m.w3.data(), w2 = m.w2.data(), ld2 = m.inter;
      return;
    }
    g1.resize(size_t(n * h)), g3.resize(g1.size()), g2.resize(g1.size());
    for (int64_t j = 0; j < n; ++j) {
      std::copy_n(&m.w1[cols[j] * h], h, &g1[j * h]);
      std::copy_n(&m.w3[cols[j] * h], h, &g3[j * h]);
      for (int64_t k = 0; k < h; ++k) g2[k * n + j] = m.w2[k * m.inter + cols[j]];
    }
    w1 = g1.data(), w3 = g3.data(), w2 = g2.data(), ld2 = n;
  }
};

std::vector<double> neuron_norms(const ExpertMatrices& e) {
  const int64_t h = e.hidden;
  std::vector<double> norm(size_t(e.inter));
  for (int64_t i = 0; i < e.inter; ++i) {
    double s = 0;
    for (int64_t k = 0; k < h; ++k)
      s += double(e.w1[i * h + k]) * e.w1[i * h + k] + double(e.w3[i * h + k]) * e.w3[i * h + k] +
           double(e.w2[k * e.inter + i]) * e.w2[k * e.inter + i];
    norm[size_t(i)] = std::sqrt(s);
  }
  return norm;
}

// Each of `rows`' kCandidates most similar columns among `cols`.
std::vector<Candidate> candidates(const ExpertMatrices& a, const ExpertMatrices& b, const std::vector<int64_t>& rows,
                                  const std::vector<int64_t>& cols, const std::vector<double>& norm_a,
                                  const std::vector<double>& norm_b, ThreadPool* pool) {
  const int64_t h = a.hidden, n = int64_t(cols.size());
  const int64_t keep = std::min<int64_t>(kCandidates, n);
  const MemberColumns m(b, cols);
  const size_t blocks = size_t((int64_t(rows.size()) + kAlignBlock - 1) / kAlignBlock);
  std::vector<std::vector<Candidate>> found(blocks);
  auto block = [&](size_t bi, int) {
    const int64_t r0 = int64_t(bi) * kAlignBlock, nr = std::min<int64_t>(kAlignBlock, int64_t(rows.size()) - r0);
    std::vector<float> a1(size_t(nr * h)), a3(a1.size()), a2(a1.size()), sim(size_t(nr * n));
    for (int64_t i = 0; i < nr; ++i) {
      const int64_t r = rows[r0 + i];
      std::copy_n(&a.w1[r * h], h, &a1[i * h]);
      std::copy_n(&a.w3[r * h], h, &a3[i * h]);
      for (int64_t k = 0; k < h; ++k) a2[i * h + k] = a.w2[k * a.inter + r];
    }
    gemm_f32(sim.data(), n, a1.data(), h, m.w1, h, true, nr, n, h);
    gemm_f32(sim.data(), n, a3.data(), h, m.w3, h, true, nr, n, h, 1.0f, true);
    gemm_f32(sim.data(), n, a2.data(), h, m.w2, m.ld2, false, nr, n, h, 1.0f, true);
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < nr; ++i) {
      float* s = &sim[i * n];
      const double na = norm_a[size_t(rows[r0 + i])];
      for (int64_t j = 0; j < n; ++j) {
        const double nb = norm_b[size_t(cols[j])];
        s[j] = na > 0 && nb > 0 ? float(double(s[j]) / (na * nb)) : 0.0f;
        if (!std::isfinite(s[j])) fail("expert weights are not finite (NaN or Inf): cannot align neurons");
      }
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + keep, order.end(),
                        [&](int64_t x, int64_t y) { return s[x] > s[y] || (s[x] == s[y] && x < y); });
      for (int64_t c = 0; c < keep; ++c) found[bi].push_back({s[order[c]], r0 + i, order[c]});
    }
  };
  if (pool)
    pool->parallel_for(blocks, block);
  else
    for (size_t bi = 0; bi < blocks; ++bi) block(bi, 0);
  std::vector<Candidate> all;
  for (auto& f : found) all.insert(all.end(), f.begin(), f.end());
  return all;
}

std::vector<int64_t> align_wide(const ExpertMatrices& a, const ExpertMatrices& b, ThreadPool* pool) {
  const int64_t n = a.inter;
  const auto norm_a = neuron_norms(a), norm_b = neuron_norms(b);
  std::vector<int64_t> result(static_cast<size_t>(n), -1), rows(static_cast<size_t>(n)), cols(static_cast<size_t>(n));
  std::iota(rows.begin(), rows.end(), 0);
  std::iota(cols.begin(), cols.end(), 0);
  while (!rows.empty()) {
    auto pairs = candidates(a, b, rows, cols, norm_a, norm_b, pool);
    std::sort(pairs.begin(), pairs.end(), [](const Candidate& x, const Candidate& y) {
      if (x.similarity != y.similarity) return x.similarity > y.similarity;
      return x.row != y.row ? x.row < y.row : x.col < y.col;
    });
    std::vector<char> row_done(rows.size(), 0), col_done(cols.size(), 0);
    for (const Candidate& c : pairs) {
      if (row_done[size_t(c.row)] || col_done[size_t(c.col)]) continue;
      row_done[size_t(c.row)] = col_done[size_t(c.col)] = 1;
      result[size_t(rows[size_t(c.row)])] = cols[size_t(c.col)];
    }
    std::vector<int64_t> open_rows, open_cols;
    for (size_t i = 0; i < rows.size(); ++i)
      if (!row_done[i]) open_rows.push_back(rows[i]);
    for (size_t j = 0; j < cols.size(); ++j)
      if (!col_done[j]) open_cols.push_back(cols[j]);
    rows.swap(open_rows);
    cols.swap(open_cols);
  }
  return result;
}

}  // namespace

std::vector<int64_t> solve_assignment(const std::vector<double>& cost, int64_t n, int64_t exact_limit) {
  return n <= exact_limit ? hungarian(cost, n) : greedy(cost, n);
}

std::vector<int64_t> align_neurons(const ExpertMatrices& reference, const ExpertMatrices& member, ThreadPool* pool,
                                   int64_t exact_limit) {
  if (reference.inter > exact_limit) return align_wide(reference, member, pool);
  const int64_t n = reference.inter, width = 3 * reference.hidden;
  auto a = neuron_features(reference), b = neuron_features(member);
  std::vector<double> cost(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < width; ++k) dot += double(a[i * width + k]) * b[j * width + k];
      cost[i * n + j] = -dot;  // most similar = cheapest
    }
  for (double c : cost)
    if (!std::isfinite(c)) fail("expert weights are not finite (NaN or Inf): cannot align neurons");
  return solve_assignment(cost, n, exact_limit);
}

ExpertMatrices permute_neurons(const ExpertMatrices& m, const std::vector<int64_t>& p) {
  ExpertMatrices out = m;
  const int64_t h = m.hidden, inter = m.inter;
  for (int64_t i = 0; i < inter; ++i) {
    std::copy_n(&m.w1[p[i] * h], h, &out.w1[i * h]);
    std::copy_n(&m.w3[p[i] * h], h, &out.w3[i * h]);
    for (int64_t k = 0; k < h; ++k) out.w2[k * inter + i] = m.w2[k * inter + p[i]];
  }
  return out;
}

}  // namespace moec
