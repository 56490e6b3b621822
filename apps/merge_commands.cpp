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
  std::string model, out, method = "merge-aligned";
  int64_t experts = 0;
  CalibrationFlags calibration{.calib = {}, .windows = 32};
};

void run_merge(const MergeFlags& f) {
  MergeOptions o;
  o.method = parse_merge_method(f.method);
  o.experts = f.experts;
  const CalibrationFlags& c = f.calibration;
  apply_calibration_flags(c, o);
  if (::isatty(STDERR_FILENO))
    o.progress = [](int64_t layer, int64_t layers) {
      fmt::print(stderr, "\rmerge: layer {}/{}", layer + 1, layers);
      if (layer + 1 == layers) fmt::print(stderr, "\n");
    };
  auto source = open_checkpoint(f.model);
  ThreadPool pool(c.threads);
  MergeReport report = merge_model(*source, f.out, o, pool);
  print_report(f.out, c.json, to_json(report).dump(2), to_text(report));
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
  add_calibration_flags(m, f->calibration);
  m->callback([f] { run_merge(*f); });
}

}  // namespace moec::cli
