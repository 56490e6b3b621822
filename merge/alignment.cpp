#include "merge/alignment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "io/error.h"

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

}  // namespace

std::vector<int64_t> solve_assignment(const std::vector<double>& cost, int64_t n, int64_t exact_limit) {
  return n <= exact_limit ? hungarian(cost, n) : greedy(cost, n);
}

std::vector<int64_t> align_neurons(const ExpertMatrices& reference, const ExpertMatrices& member) {
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
  return solve_assignment(cost, n);
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
