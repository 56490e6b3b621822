// moec eval / generate: run a model with moec's runtime.
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "io/checkpoint.h"
#include "io/process_stats.h"
#include "io/text_file.h"
#include "model/model.h"
#include "model/perplexity.h"
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
  if (f.json) {
    nlohmann::ordered_json j{{"model", f.model},          {"text", f.text},
                             {"ctx", f.ctx},              {"tokens_in_text", r.tokens_in_text},
                             {"windows", r.windows},      {"scored_tokens", r.scored},
                             {"ppl", r.ppl},              {"mean_nll", r.mean_nll},
                             {"seconds", r.seconds},      {"tokens_per_second", r.tokens_per_second},
                             {"threads", pool.size()},    {"peak_rss_bytes", peak_rss_bytes()}};
    if (f.routing) j["expert_load"] = r.expert_load;
    fmt::print("{}\n", j.dump(2));
    return;
  }
  fmt::print("perplexity {:.4f} over {} scored tokens ({} windows of {}, {} tokens in the text)\n", r.ppl, r.scored,
             r.windows, f.ctx, r.tokens_in_text);
  fmt::print("{:.0f} tokens/s with {} threads, eval {:.2f} s, peak memory {:.1f} MiB\n", r.tokens_per_second,
             pool.size(), r.seconds, peak_mib);
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
  eval->add_option("--threads", f->threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  eval->add_flag("--json", f->json, "Machine-readable output");
  eval->add_flag("--routing", f->routing, "Report per-layer expert load");
  eval->callback([f] { run_eval(*f); });
}

}  // namespace moec::cli
