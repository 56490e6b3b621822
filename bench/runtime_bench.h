// `moec bench runtime`: eval (prefill) and generation throughput of the
// runtime on a model, each next to a baseline measured in the same run:
//   eval:       expert-grouped batched prefill vs. running the same windows
//               one token at a time through the KV-cache decode path (the
//               per-token matrix-vector approach);
//   generation: tokens/s of greedy decoding after a short prompt.
// Published anchors for the fixture (other tools, same machine kind) are
// printed beside the figures for orientation; they are not measured here.
#pragma once
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace moec {

struct RuntimeBenchOptions {
  std::filesystem::path model;
  std::filesystem::path text;
  int threads = 2;
  int64_t windows = 32;      // eval windows of ctx tokens for the batched figure
  int64_t ctx = 256;
  int64_t baseline_windows = 2;  // windows for the slow per-token baseline
  int64_t gen_tokens = 256;
  int repeats = 3;           // each figure is the median of this many runs
  int64_t expert_cache_mib = 512;  // sub1 experts kept decoded between generated tokens
};

nlohmann::ordered_json run_runtime_bench(const RuntimeBenchOptions& options);
std::string format_runtime_bench(const nlohmann::ordered_json& result);

}  // namespace moec
