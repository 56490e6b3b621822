// `moec bench serve`: the server (serve/) started in-process on a loopback
// port and driven by C concurrent streaming clients (C = 1, 4, 8, 16 by
// default), each level sending the same requests: greedy completions of
// max_tokens tokens (ignore_eos, so every request generates as many) from
// prompts cut out of a text. Per level: aggregate generated tokens/s,
// requests/s, time to first token and inter-token latency (p50/p99, measured
// by the clients), and the ratio to the one-client level measured in the
// same run (the same requests one at a time).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moec {

struct ServeBenchOptions {
  std::filesystem::path model;
  std::filesystem::path text;
  int threads = 2;
  std::vector<int> clients = {1, 4, 8, 16};
  int64_t requests = 32;     // per level
  int64_t max_tokens = 64;
  int64_t prompt_chars = 200;  // prompt length (about 50 tokens of English)
  int repeats = 3;           // each level is the median run (by tokens/s) of this many
};

nlohmann::ordered_json run_serve_bench(const ServeBenchOptions& options);
std::string format_serve_bench(const nlohmann::ordered_json& result);

}  // namespace moec
