// moec bench: benchmarks, each figure beside a same-run baseline.
#include <fmt/format.h>

#include "apps/commands.h"
#include "bench/kernel_bench.h"
#include "bench/runtime_bench.h"
#include "bench/serve_bench.h"
#include "bench/sub1_bench.h"

namespace moec::cli {

void add_bench_commands(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (figures next to a baseline measured in the same run)");
  bench->require_subcommand(1);
  auto o = std::make_shared<RuntimeBenchOptions>();
  auto json = std::make_shared<bool>(false);
  auto* runtime = bench->add_subcommand("runtime", "Eval and generation throughput of the runtime");
  runtime->add_option("model", o->model, "Model folder or .h5 container")->required();
  runtime->add_option("--text", o->text, "Text for the eval windows")->required();
  runtime->add_option("--threads", o->threads, "Worker threads")->check(CLI::Range(1, 1024))->capture_default_str();
  runtime->add_option("--windows", o->windows, "Eval windows")->check(CLI::PositiveNumber)->capture_default_str();
  runtime->add_option("--gen-tokens", o->gen_tokens, "Generated tokens")->check(CLI::PositiveNumber)->capture_default_str();
  runtime->add_option("--repeats", o->repeats, "Runs per figure (median)")->check(CLI::PositiveNumber)->capture_default_str();
  runtime->add_option("--expert-cache", o->expert_cache_mib, "MiB of sub1 experts kept decoded (0: none)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30))
      ->capture_default_str();
  runtime->add_flag("--json", *json, "Machine-readable output");
  runtime->callback([o, json] {
    auto result = run_runtime_bench(*o);
    fmt::print("{}", *json ? result.dump(2) + "\n" : format_runtime_bench(result));
  });

  auto so = std::make_shared<ServeBenchOptions>();
  auto* serve = bench->add_subcommand("serve", "moec serve driven by 1..16 concurrent streaming clients over loopback");
  serve->add_option("model", so->model, "Model folder or .h5 container")->required();
  serve->add_option("--text", so->text, "Text the prompts are cut from")->required();
  serve->add_option("--threads", so->threads, "Worker threads")->check(CLI::Range(1, 1024))->capture_default_str();
  serve->add_option("--clients", so->clients, "Concurrent clients per level")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  serve->add_option("--requests", so->requests, "Requests per level")->check(CLI::Range(int64_t(1), int64_t(100000)))->capture_default_str();
  serve->add_option("--max-tokens", so->max_tokens, "Tokens per completion")->check(CLI::Range(int64_t(1), int64_t(100000)))->capture_default_str();
  serve->add_option("--prompt-chars", so->prompt_chars, "Prompt length in characters")->check(CLI::Range(int64_t(1), int64_t(1) << 20))->capture_default_str();
  serve->add_option("--repeats", so->repeats, "Runs per level (median)")->check(CLI::Range(1, 100))->capture_default_str();
  serve->add_flag("--json", *json, "Machine-readable output");
  serve->callback([so, json] {
    auto result = run_serve_bench(*so);
    fmt::print("{}", *json ? result.dump(2) + "\n" : format_serve_bench(result));
  });

  auto path = std::make_shared<std::string>();
  auto* sub1 = bench->add_subcommand("sub1", "Bits per weight of the sub-1-bit code on a container's ternary experts");
  sub1->add_option("model", *path, ".h5 container with ternary experts")->required();
  sub1->add_flag("--json", *json, "Machine-readable output");
  sub1->callback([path, json] {
    auto result = run_sub1_bench(*path);
    fmt::print("{}", *json ? result.dump(2) + "\n" : format_sub1_bench(result));
  });

  auto k = std::make_shared<KernelBenchOptions>();
  auto* kernels = bench->add_subcommand("kernels", "sub1 fused kernels vs dense bf16/f32 products of the same shapes");
  kernels->add_option("--model", k->model, "A sub1 container whose experts to measure too");
  kernels->add_option("--threads", k->threads, "Worker threads")->check(CLI::Range(1, 1024))->capture_default_str();
  kernels->add_flag("!--no-synthetic", k->synthetic, "Skip the synthetic Mixtral-shape matrices");
  kernels->add_option("--min-seconds", k->min_seconds, "Measuring time per figure")
      ->check(CLI::Range(0.001, 60.0))
      ->capture_default_str();
  kernels->add_option("--isa", k->isa, "Instruction set: all (every one this CPU runs), portable, avx2, avx512")
      ->capture_default_str();
  kernels->add_flag("--json", *json, "Machine-readable output");
  kernels->callback([k, json] {
    auto result = run_kernel_bench(*k);
    fmt::print("{}", *json ? result.dump(2) + "\n" : format_kernel_bench(result));
  });
}

}  // namespace moec::cli
