// How `moec merge` decides which experts of a layer survive or merge, from
// statistics of the layer on calibration tokens.
//   prune-freq    keep the K most used experts
//   prune-search  keep the K-subset whose MoE output is closest to the full
//                 layer's on the sample (exhaustive when C(E,K) <= 5000,
//                 else greedy backward elimination)
//   merge-freq    the K most used experts dominate; every other expert joins
//                 the dominant one whose router-logit pattern is most similar
//   merge-aligned as merge-freq, members' neurons aligned to the dominant
//                 expert before averaging (SwiGLU-aware)
//   merge-cluster average-linkage clustering of the experts' outputs on the
//                 sample, group size capped at ceil(E/K) + 1
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace moec {

enum class MergeMethod { PruneFreq, PruneSearch, MergeFreq, MergeAligned, MergeCluster };
MergeMethod parse_merge_method(std::string_view name);  // throws moec::Error
std::string_view merge_method_name(MergeMethod method);
bool is_pruning(MergeMethod method);

// A layer seen on calibration tokens.
struct LayerStats {
  int64_t experts = 0, hidden = 0, samples = 0, top_k = 0;
  bool normalize = true;                    // norm_topk_prob: the k weights renormalized to sum 1
  std::vector<double> usage;                // [E]: share of routed (token, slot) pairs
  std::vector<float> logits;                // [S, E]: router logits on the sample
  std::vector<std::vector<float>> outputs;  // [E][S, H]: each expert's output on the sample
  std::vector<float> reference;             // [S, H]: the layer's MoE output on the sample
};

struct ExpertGroup {
  std::vector<int64_t> members;  // ascending
  int64_t dominant = 0;          // the most used member
};

// K groups, ordered by their lowest member. Pruning methods give singletons.
std::vector<ExpertGroup> plan_groups(MergeMethod method, const LayerStats& stats, int64_t k);

// The MoE output on the sample [S, H] when only `kept` experts route
// (top-min(top_k, |kept|) among them by logit; their softmax weights over
// the kept experts, renormalized over the k chosen when stats.normalize).
std::vector<float> routed_output(const LayerStats& stats, const std::vector<int64_t>& kept);
// Its squared error against stats.reference.
double pruned_error(const LayerStats& stats, const std::vector<int64_t>& kept);

}  // namespace moec
