// moec distill: an MoE teacher into a dense Mistral student.
#include <fmt/format.h>

#include "apps/commands.h"
#include "distill/pipeline.h"
#include "io/checkpoint.h"
#include "model/thread_pool.h"

namespace moec::cli {
namespace {

struct DistillFlags {
  std::string model, out, init = "neurons";
  distill::DistillOptions options;
  CalibrationFlags calibration{.calib = {}, .windows = 1000};
  bool quiet = false;
};

void run_distill(DistillFlags& f) {
  distill::DistillOptions& o = f.options;
  const CalibrationFlags& c = f.calibration;
  o.init = distill::parse_mlp_init(f.init);
  apply_calibration_flags(c, o);
  if (!f.quiet) o.progress = [](const std::string& line) { fmt::print(stderr, "{}\n", line); };
  auto source = open_checkpoint(f.model);
  ThreadPool pool(c.threads);
  const distill::DistillReport report = distill::distill_model(*source, f.out, o, pool);
  print_report(f.out, c.json, to_json(report).dump(2), to_text(report));
}

}  // namespace

void add_distill_commands(CLI::App& app) {
  auto f = std::make_shared<DistillFlags>();
  distill::DistillOptions& o = f->options;
  auto* d = app.add_subcommand("distill", "Distill an MoE teacher into a dense Mistral student (HF folder, or .h5 output)");
  d->add_option("model", f->model, "Teacher: MoE model folder or dense .h5 container")->required();
  d->add_option("-o,--output", f->out, "Output folder (or .h5 file)")->required();
  d->add_option("--width", o.width, "The student's MLP width")->required();
  d->add_option("--init", f->init, "MLP initialization: neurons (from the experts) or random")->capture_default_str();
  add_calibration_flags(d, f->calibration);
  d->add_option("--validation-windows", o.validation_windows, "Held-out windows of the calibration text")
      ->capture_default_str();
  d->add_option("--layer-windows", o.layer_windows, "Windows whose activations fit each layer (stage 1)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  d->add_option("--layer-epochs", o.layer_epochs, "Adam epochs per layer (stage 1)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  d->add_option("--steps", o.steps, "End-to-end steps (stage 2; 0 skips it; default one pass over the windows)");
  d->add_option("--batch-windows", o.batch_windows, "Windows per end-to-end step")->capture_default_str();
  d->add_option("--lr", o.lr, "Peak learning rate of stage 2 (warmup, then cosine)")->check(positive_number())
      ->capture_default_str();
  d->add_option("--alpha", o.alpha, "Weight of the teacher's soft targets (the rest: true next tokens)")
      ->capture_default_str();
  d->add_option("--temperature", o.temperature, "Distillation temperature T")->capture_default_str();
  d->add_option("--curve-points", o.curve_points, "Validation perplexities measured during stage 2")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  d->add_flag("-q,--quiet", f->quiet, "No progress lines on stderr");
  d->callback([f] { run_distill(*f); });
}

}  // namespace moec::cli
