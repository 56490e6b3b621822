// moec merge: fewer experts per layer, written as a smaller checkpoint.
#include <unistd.h>

#include <fmt/format.h>

#include "apps/commands.h"
#include "io/checkpoint.h"
#include "merge/pipeline.h"
#include "model/thread_pool.h"

namespace moec::cli {
namespace {

struct MergeFlags {
  std::string model, out, method = "merge-aligned", calib;
  int64_t experts = 0;
  int64_t calib_windows = 32;
  int64_t ctx = 256;
  uint64_t seed = 0;
  int threads = 0;
  bool force = false;
  bool json = false;
};

void run_merge(const MergeFlags& f) {
  MergeOptions o;
  o.method = parse_merge_method(f.method);
  o.experts = f.experts;
  o.calib = f.calib;
  o.calib_windows = f.calib_windows;
  o.ctx = f.ctx;
  o.seed = f.seed;
  o.overwrite = f.force;
  o.command_line = command_line();
  if (::isatty(STDERR_FILENO))
    o.progress = [](int64_t layer, int64_t layers) {
      fmt::print(stderr, "\rmerge: layer {}/{}", layer + 1, layers);
      if (layer + 1 == layers) fmt::print(stderr, "\n");
    };
  auto source = open_checkpoint(f.model);
  ThreadPool pool(f.threads);
  MergeReport report = merge_model(*source, f.out, o, pool);
  if (f.json)
    fmt::print("{}\n", to_json(report).dump(2));
  else
    fmt::print("wrote {}\n{}", f.out, to_text(report));
}

}  // namespace

void add_merge_commands(CLI::App& app) {
  auto f = std::make_shared<MergeFlags>();
  auto* m = app.add_subcommand("merge", "Merge or prune experts to K per layer (HF folder, or .h5 output)");
  m->add_option("model", f->model, "Model folder or dense .h5 container")->required();
  m->add_option("-o,--output", f->out, "Output folder (or .h5 file)")->required();
  m->add_option("--experts", f->experts, "Experts per layer to keep (K)")->required();
  m->add_option("--method", f->method, "prune-freq, prune-search, merge-freq, merge-aligned, merge-cluster")
      ->capture_default_str();
  m->add_option("--calib", f->calib, "Calibration text")->required();
  m->add_option("--calib-windows", f->calib_windows, "Calibration windows")->check(CLI::PositiveNumber)->capture_default_str();
  m->add_option("--ctx", f->ctx, "Tokens per calibration window")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  m->add_option("--seed", f->seed, "Seed for drawing calibration windows")->capture_default_str();
  m->add_option("--threads", f->threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  m->add_flag("-f,--force", f->force, "Replace an existing output");
  m->add_flag("--json", f->json, "Machine-readable report");
  m->callback([f] { run_merge(*f); });
}

}  // namespace moec::cli
