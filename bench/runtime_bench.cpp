#include "bench/runtime_bench.h"

#include <algorithm>

#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/cpu_isa.h"
#include "io/process_stats.h"
#include "io/text_file.h"
#include "model/forward_cost.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"

namespace moec {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Tokens/s of running `windows` windows one token at a time with a KV cache.
double per_token_eval(Model& model, std::span<const int32_t> ids, int64_t windows, int64_t ctx) {
  Stopwatch clock;
  for (int64_t w = 0; w < windows; ++w) {
    KvCache cache = model.make_cache(1, ctx);
    std::vector<float> logits(static_cast<size_t>(model.config().vocab_size));
    for (int64_t i = 0; i < ctx; ++i) {
      const auto& h = model.forward(ids.subspan(size_t(w * ctx + i), 1), 1, cache);
      model.logits(h.data(), 1, logits.data());
    }
  }
  return double(windows * ctx) / clock.seconds();
}

}  // namespace

nlohmann::ordered_json run_runtime_bench(const RuntimeBenchOptions& o) {
  auto source = open_checkpoint(o.model);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
  auto ids = tokenizer.encode(read_text_file(o.text));
  ThreadPool pool(o.threads);
  Model model(*source, pool);
  model.expert_cache().set_capacity(uint64_t(o.expert_cache_mib) << 20);

  std::vector<double> batched, per_token, generation;
  PerplexityOptions eval;
  eval.ctx = o.ctx;
  eval.max_windows = o.windows;
  const auto prompt = tokenizer.encode_prompt("The Fulton County Grand Jury said Friday", model.config().bos_token_id);
  GenerateOptions gen;
  gen.max_new_tokens = o.gen_tokens;
  for (int r = 0; r < o.repeats; ++r) {
    batched.push_back(evaluate_perplexity(model, ids, eval).tokens_per_second);
    per_token.push_back(per_token_eval(model, ids, o.baseline_windows, o.ctx));
    generation.push_back(generate(model, prompt, gen).decode_tokens_per_second());
  }
  nlohmann::ordered_json j;
  j["model"] = o.model.string();
  j["threads"] = pool.size();
  j["eval_tokens_per_s"] = median(batched);
  // The same as work per second, comparable across model shapes.
  const double flops_per_token = forward_cost(model.config(), o.ctx).flops();
  j["eval_flops_per_token"] = flops_per_token;
  j["eval_gflop_per_s"] = median(batched) * flops_per_token * 1e-9;
  j["eval_per_token_baseline_tokens_per_s"] = median(per_token);
  j["eval_speedup_vs_per_token"] = median(batched) / median(per_token);
  j["generate_tokens_per_s"] = median(generation);
  const Sub1PlaneCache::Stats cache = model.expert_cache().stats();
  if (cache.hits + cache.misses > 0)
    j["sub1_expert_cache"] = {{"capacity_mib", cache.capacity >> 20},
                              {"hit_rate", cache.hit_rate()},
                              {"bytes", cache.bytes},
                              {"evictions", cache.evictions}};
  j["peak_rss_bytes"] = peak_rss_bytes();
  j["isa"] = isa_name(active_isa());
  // llama.cpp on this fixture (../shared/fixtures/README.md): Intel Xeon with
  // AVX-512, AMD EPYC Zen 3 with AVX2 only; the row of this run's ISA.
  const bool avx512 = active_isa() == Isa::Avx512;
  j["anchors"] = {{"pytorch_eval", 2030},
                  {"llama_cpp_cpu", avx512 ? "Intel Xeon, AVX-512" : "AMD EPYC Zen 3, AVX2"},
                  {"llama_cpp_bf16_pp256", avx512 ? 9150 : 5709},
                  {"llama_cpp_bf16_tg", avx512 ? 2270 : 1745},
                  {"llama_cpp_iq1_s_tg", avx512 ? 2570 : 1961},
                  {"llama_cpp_tq1_0_tg", avx512 ? 3240 : 2409}};
  return j;
}

std::string format_runtime_bench(const nlohmann::ordered_json& j) {
  const double eval = j["eval_tokens_per_s"], base = j["eval_per_token_baseline_tokens_per_s"],
               gen = j["generate_tokens_per_s"];
  const auto& a = j["anchors"];
  std::string out = fmt::format("runtime benchmark: {} ({} threads, {} kernels), medians\n",
                                j["model"].get<std::string>(), j["threads"].get<int>(), j["isa"].get<std::string>());
  out += fmt::format("  {:<44} {:>10} {:>10}\n", "", "tokens/s", "ratio");
  out += fmt::format("  {:<44} {:>10.0f} {:>9.2f}x\n", "eval, expert-grouped batched prefill", eval, eval / base);
  out += fmt::format("  {:<44} {:>10.0f} {:>9.2f}x\n", "eval, per-token baseline (same run)", base, 1.0);
  const double flops = j["eval_flops_per_token"], gflops = j["eval_gflop_per_s"];
  out += fmt::format("  eval work: {:.2f} MFLOP per token, {:.1f} GFLOP/s\n", flops * 1e-6, gflops);
  out += fmt::format("  {:<44} {:>10.0f}\n", "generation (KV cache, greedy)", gen);
  if (j.contains("sub1_expert_cache")) {
    const auto& c = j["sub1_expert_cache"];
    out += fmt::format("  sub1 expert cache ({} MiB): {:.1f}% hits over the run, {:.1f} MiB held\n",
                       c["capacity_mib"].get<int64_t>(), 100 * c["hit_rate"].get<double>(),
                       double(c["bytes"].get<uint64_t>()) / (1 << 20));
  }
  out += fmt::format("  anchors on the fixture (not measured here; llama.cpp on {}):\n",
                     a["llama_cpp_cpu"].get<std::string>());
  auto anchor = [&](const char* label, const char* key, double ours) {
    const double v = a[key].get<double>();
    out += fmt::format("  {:<44} {:>10.0f} {:>9.2f}x\n", label, v, ours / v);
  };
  anchor("PyTorch 1.13 eval", "pytorch_eval", eval);
  anchor("llama.cpp bf16 prompt processing (256)", "llama_cpp_bf16_pp256", eval);
  anchor("llama.cpp bf16 generation", "llama_cpp_bf16_tg", gen);
  anchor("llama.cpp IQ1_S generation", "llama_cpp_iq1_s_tg", gen);
  anchor("llama.cpp TQ1_0 generation", "llama_cpp_tq1_0_tg", gen);
  return out;
}

}  // namespace moec
