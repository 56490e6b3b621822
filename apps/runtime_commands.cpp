// moec eval / generate: run a model with moec's runtime.
#include <unistd.h>

#include <optional>
#include <span>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "io/checkpoint.h"
#include "io/cpu_isa.h"
#include "io/process_stats.h"
#include "io/text_file.h"
#include "model/forward_cost.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/perplexity.h"
#include "model/text_stream.h"
#include "model/thread_pool.h"
#include "model/tokenizer.h"

namespace moec::cli {
namespace {

struct RuntimeFlags {
  std::string model, text;
  int64_t ctx = 256;
  int64_t max_windows = 0;
  int64_t batch_windows = 8;
  int threads = 0;
  bool json = false;
  bool routing = false;
  std::string prompt;
  int64_t new_tokens = 64;
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int64_t expert_cache_mib = int64_t(Model::kDefaultExpertCacheBytes >> 20);
};

void print_progress(int64_t done, int64_t total) {
  const int width = 40;
  int filled = int(width * done / std::max<int64_t>(total, 1));
  fmt::print(stderr, "\r[{:<{}}] {}/{} windows", std::string(size_t(filled), '#'), width, done, total);
  if (done == total) fmt::print(stderr, "\n");
}

void run_eval(const RuntimeFlags& f) {
  Stopwatch clock;
  auto source = open_checkpoint(f.model);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
  std::string text = read_text_file(f.text);
  std::vector<int32_t> ids = tokenizer.encode(text);
  ThreadPool pool(f.threads);
  Model model(*source, pool);
  PerplexityOptions options;
  options.ctx = f.ctx;
  options.max_windows = f.max_windows;
  options.batch_windows = f.batch_windows;
  options.routing = f.routing;
  if (::isatty(STDERR_FILENO) && !f.json) options.progress = print_progress;
  PerplexityResult r = evaluate_perplexity(model, ids, options);
  const double peak_mib = double(peak_rss_bytes()) / (1 << 20);
  // Work per second, comparable across model shapes (model/forward_cost.h).
  const double flops_per_token = forward_cost(model.config(), f.ctx).flops();
  const double gflops = r.tokens_per_second * flops_per_token * 1e-9;
  if (f.json) {
    nlohmann::ordered_json j{{"model", f.model},          {"text", f.text},
                             {"ctx", f.ctx},              {"tokens_in_text", r.tokens_in_text},
                             {"windows", r.windows},      {"scored_tokens", r.scored},
                             {"ppl", r.ppl},              {"mean_nll", r.mean_nll},
                             {"seconds", r.seconds},      {"tokens_per_second", r.tokens_per_second},
                             {"flops_per_token", flops_per_token},
                             {"gflop_per_second", gflops},
                             {"threads", pool.size()},    {"isa", isa_name(active_isa())},
                             {"peak_rss_bytes", peak_rss_bytes()}};
    if (f.routing) j["expert_load"] = r.expert_load;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("perplexity {:.4f} over {} scored tokens ({} windows of {}, {} tokens in the text)\n", r.ppl, r.scored,
             r.windows, f.ctx, r.tokens_in_text);
  fmt::print("{:.0f} tokens/s ({:.1f} GFLOP/s) with {} threads ({} kernels), eval {:.2f} s, peak memory {:.1f} MiB\n",
             r.tokens_per_second, gflops, pool.size(), isa_name(active_isa()), r.seconds, peak_mib);
  if (f.routing) {
    for (size_t l = 0; l < r.expert_load.size(); ++l) {
      uint64_t total = 0;
      for (auto v : r.expert_load[l]) total += v;
      std::string row;
      for (auto v : r.expert_load[l]) row += fmt::format(" {:5.3f}", double(v) / double(total));
      fmt::print("layer {:>2} expert load:{}\n", l, row);
    }
  }
  print_cost(clock.seconds());
}

void run_generate(const RuntimeFlags& f) {
  auto source = open_checkpoint(f.model);
  Tokenizer tokenizer = Tokenizer::from_checkpoint(*source);
  ThreadPool pool(f.threads);
  Model model(*source, pool);
  model.expert_cache().set_capacity(uint64_t(f.expert_cache_mib) << 20);
  const std::vector<int32_t> prompt = tokenizer.encode_prompt(f.prompt, model.config().bos_token_id);
  GenerateOptions options;
  options.max_new_tokens = f.new_tokens;
  options.sampling = {f.temperature, f.top_p, f.seed, tokenizer.vocab_size()};
  options.stop_tokens = eos_tokens(model.config());
  fmt::print("{}", tokenizer.decode(prompt));  // a BOS decodes to nothing
  TextStream stream(tokenizer, prompt);
  GenerateResult r = generate(model, prompt, options, [&](int32_t id) {
    fmt::print("{}", stream.push(id));
    std::fflush(stdout);
  });
  fmt::print("\n");
  fmt::print(stderr, "{} prompt tokens in {:.3f} s; {} tokens generated, {:.0f} tokens/s ({} threads, {} kernels){}\n",
             r.prompt_tokens, r.prefill_seconds, r.tokens.size(), r.decode_tokens_per_second(), pool.size(),
             isa_name(active_isa()), r.truncated ? "; stopped at max_position_embeddings" : "");
  const Sub1PlaneCache::Stats cache = model.expert_cache().stats();
  if (cache.hits + cache.misses > 0)
    fmt::print(stderr, "sub1 expert cache: {:.1f}% hits ({} of {} products), {:.1f} of {} MiB, {} evictions\n",
               100 * cache.hit_rate(), cache.hits, cache.hits + cache.misses, double(cache.bytes) / (1 << 20),
               cache.capacity >> 20, cache.evictions);
}

}  // namespace

void add_runtime_commands(CLI::App& app) {
  auto f = std::make_shared<RuntimeFlags>();
  auto* eval = app.add_subcommand("eval", "Perplexity of a model on a text file (protocol in README)");
  eval->add_option("model", f->model, "Model folder or .h5 container")->required();
  eval->add_option("--text", f->text, "Plain text file")->required();
  eval->add_option("--ctx", f->ctx, "Window length in tokens")->capture_default_str();
  eval->add_option("--max-windows", f->max_windows, "Evaluate at most this many windows (0: all)")
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--batch-windows", f->batch_windows, "Windows run together")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  eval->add_option("--threads", f->threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  eval->add_flag("--json", f->json, "Machine-readable output");
  eval->add_flag("--routing", f->routing, "Report per-layer expert load");
  eval->callback([f] { run_eval(*f); });

  auto* gen = app.add_subcommand("generate", "Generate text from a prompt (streams to stdout)");
  gen->add_option("model", f->model, "Model folder or .h5 container")->required();
  gen->add_option("--prompt", f->prompt, "Prompt text (BOS is prepended when the tokenizer defines one)")->required();
  gen->add_option("-n,--tokens", f->new_tokens, "Tokens to generate")->check(CLI::NonNegativeNumber)->capture_default_str();
  gen->add_option("--temperature", f->temperature, "0: greedy")->check(CLI::NonNegativeNumber)->capture_default_str();
  gen->add_option("--top-p", f->top_p, "Nucleus sampling mass")->check(CLI::Range(0.0f, 1.0f))->capture_default_str();
  gen->add_option("--seed", f->seed, "Random seed for sampling")->capture_default_str();
  gen->add_option("--threads", f->threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  gen->add_option("--expert-cache", f->expert_cache_mib,
                  "MiB of sub1 experts kept decoded for reuse between tokens (0: decode every time)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30))
      ->capture_default_str();
  gen->callback([f] { run_generate(*f); });
}

}  // namespace moec::cli
