#include "merge/methods.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "io/error.h"

namespace moec {
namespace {

constexpr std::pair<MergeMethod, std::string_view> kNames[] = {
    {MergeMethod::PruneFreq, "prune-freq"},     {MergeMethod::PruneSearch, "prune-search"},
    {MergeMethod::MergeFreq, "merge-freq"},     {MergeMethod::MergeAligned, "merge-aligned"},
    {MergeMethod::MergeCluster, "merge-cluster"}};

// Experts by descending usage, ties to the lower id.
std::vector<int64_t> by_usage(const LayerStats& s) {
  std::vector<int64_t> order(static_cast<size_t>(s.experts));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s.usage[a] > s.usage[b]; });
  return order;
}

std::vector<ExpertGroup> singletons(std::vector<int64_t> kept) {
  std::sort(kept.begin(), kept.end());
  std::vector<ExpertGroup> groups;
  for (int64_t e : kept) groups.push_back({{e}, e});
  return groups;
}

// Completes groups: sorts members, picks dominants, orders groups.
std::vector<ExpertGroup> finish(std::vector<std::vector<int64_t>> members, const LayerStats& s) {
  std::vector<ExpertGroup> groups;
  for (auto& m : members) {
    std::sort(m.begin(), m.end());
    int64_t dominant = m[0];
    for (int64_t e : m)
      if (s.usage[e] > s.usage[dominant]) dominant = e;
    groups.push_back({m, dominant});
  }
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.members[0] < b.members[0]; });
  return groups;
}

std::vector<ExpertGroup> prune_search(const LayerStats& s, int64_t k) {
  const int64_t e = s.experts;
  double combos = 1;
  for (int64_t i = 0; i < k; ++i) combos = combos * double(e - i) / double(i + 1);
  if (combos <= 5000) {
    std::vector<char> pick(static_cast<size_t>(e), 0);
    std::fill(pick.begin(), pick.begin() + k, 1);
    std::vector<int64_t> best;
    double best_error = std::numeric_limits<double>::infinity();
    do {  // every K-subset (prev_permutation walks them in lexicographic order)
      std::vector<int64_t> kept;
      for (int64_t i = 0; i < e; ++i)
        if (pick[i]) kept.push_back(i);
      double err = pruned_error(s, kept);
      if (err < best_error) {
        best_error = err;
        best = kept;
      }
    } while (std::prev_permutation(pick.begin(), pick.end()));
    return singletons(best);
  }
  std::vector<int64_t> kept(static_cast<size_t>(e));
  std::iota(kept.begin(), kept.end(), 0);
  while (int64_t(kept.size()) > k) {  // drop the expert whose loss hurts least
    size_t drop = 0;
    double best_error = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < kept.size(); ++i) {
      auto trial = kept;
      trial.erase(trial.begin() + int64_t(i));
      double err = pruned_error(s, trial);
      if (err < best_error) {
        best_error = err;
        drop = i;
      }
    }
    kept.erase(kept.begin() + int64_t(drop));
  }
  return singletons(kept);
}

// Cosine similarity of two experts' router-logit columns over the sample.
double logit_similarity(const LayerStats& s, int64_t a, int64_t b) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t t = 0; t < s.samples; ++t) {
    const double x = s.logits[t * s.experts + a], y = s.logits[t * s.experts + b];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / std::sqrt(aa * bb + 1e-30);
}

std::vector<ExpertGroup> merge_by_frequency(const LayerStats& s, int64_t k) {
  auto order = by_usage(s);
  std::vector<std::vector<int64_t>> members;
  for (int64_t i = 0; i < k; ++i) members.push_back({order[i]});
  for (int64_t i = k; i < s.experts; ++i) {
    size_t best = 0;
    double best_similarity = -2;
    for (size_t g = 0; g < members.size(); ++g) {
      double sim = logit_similarity(s, order[i], members[g][0]);
      if (sim > best_similarity) {
        best_similarity = sim;
        best = g;
      }
    }
    members[best].push_back(order[i]);
  }
  return finish(members, s);
}

std::vector<ExpertGroup> merge_by_clustering(const LayerStats& s, int64_t k) {
  const int64_t e = s.experts, cap = (e + k - 1) / k + 1;
  std::vector<double> dist(static_cast<size_t>(e * e), 0);
  const size_t n = s.outputs[0].size();
  for (int64_t a = 0; a < e; ++a)
    for (int64_t b = a + 1; b < e; ++b) {
      double d = 0;
      for (size_t i = 0; i < n; ++i) d += double(s.outputs[a][i] - s.outputs[b][i]) * (s.outputs[a][i] - s.outputs[b][i]);
      dist[a * e + b] = dist[b * e + a] = std::sqrt(d);
    }
  std::vector<std::vector<int64_t>> clusters;
  for (int64_t i = 0; i < e; ++i) clusters.push_back({i});
  auto linkage = [&](const auto& x, const auto& y) {  // average distance
    double sum = 0;
    for (int64_t a : x)
      for (int64_t b : y) sum += dist[a * e + b];
    return sum / double(x.size() * y.size());
  };
  while (int64_t(clusters.size()) > k) {
    size_t bi = 0, bj = 0;
    double best = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < clusters.size(); ++i)
      for (size_t j = i + 1; j < clusters.size(); ++j) {
        if (int64_t(clusters[i].size() + clusters[j].size()) > cap) continue;
        double d = linkage(clusters[i], clusters[j]);
        if (d < best) {
          best = d;
          bi = i;
          bj = j;
        }
      }
    if (best == std::numeric_limits<double>::infinity()) {  // the cap blocks every pair: merge the two smallest
      std::vector<size_t> idx(clusters.size());
      std::iota(idx.begin(), idx.end(), 0);
      std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return clusters[a].size() < clusters[b].size(); });
      bi = std::min(idx[0], idx[1]);
      bj = std::max(idx[0], idx[1]);
    }
    clusters[bi].insert(clusters[bi].end(), clusters[bj].begin(), clusters[bj].end());
    clusters.erase(clusters.begin() + int64_t(bj));
  }
  return finish(clusters, s);
}

}  // namespace

MergeMethod parse_merge_method(std::string_view name) {
  for (auto [method, n] : kNames)
    if (n == name) return method;
  fail("merge method '{}' is not known (prune-freq, prune-search, merge-freq, merge-aligned, merge-cluster)", name);
}

std::string_view merge_method_name(MergeMethod method) {
  for (auto [m, n] : kNames)
    if (m == method) return n;
  return "?";
}

bool is_pruning(MergeMethod method) { return method == MergeMethod::PruneFreq || method == MergeMethod::PruneSearch; }

std::vector<float> routed_output(const LayerStats& s, const std::vector<int64_t>& kept) {
  const int64_t k = std::min<int64_t>(s.top_k, int64_t(kept.size())), h = s.hidden;
  std::vector<int64_t> order(kept);
  std::vector<float> y(static_cast<size_t>(s.samples * h), 0.0f);
  for (int64_t t = 0; t < s.samples; ++t) {
    const float* logit = &s.logits[t * s.experts];
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return logit[a] > logit[b] || (logit[a] == logit[b] && a < b); });
    // The softmax's denominator: the k chosen (norm_topk_prob) or all kept
    // experts (the router's softmax over the layer, Qwen's default).
    double norm = 0;
    const int64_t terms = s.normalize ? k : int64_t(order.size());
    for (int64_t j = 0; j < terms; ++j) norm += std::exp(double(logit[order[j]] - logit[order[0]]));
    for (int64_t j = 0; j < k; ++j) {
      const float w = float(std::exp(double(logit[order[j]] - logit[order[0]])) / norm);
      const float* out = &s.outputs[order[j]][t * h];
      for (int64_t i = 0; i < h; ++i) y[t * h + i] += w * out[i];
    }
  }
  return y;
}

double pruned_error(const LayerStats& s, const std::vector<int64_t>& kept) {
  const std::vector<float> y = routed_output(s, kept);
  double error = 0;
  for (size_t i = 0; i < y.size(); ++i) error += double(y[i] - s.reference[i]) * (y[i] - s.reference[i]);
  return error;
}

std::vector<ExpertGroup> plan_groups(MergeMethod method, const LayerStats& s, int64_t k) {
  if (k < 1 || k > s.experts) fail("--experts {} must be between 1 and the model's {} experts", k, s.experts);
  switch (method) {
    case MergeMethod::PruneFreq: {
      auto order = by_usage(s);
      return singletons({order.begin(), order.begin() + k});
    }
    case MergeMethod::PruneSearch: return prune_search(s, k);
    case MergeMethod::MergeFreq:
    case MergeMethod::MergeAligned: return merge_by_frequency(s, k);
    case MergeMethod::MergeCluster: return merge_by_clustering(s, k);
  }
  return {};
}

}  // namespace moec
