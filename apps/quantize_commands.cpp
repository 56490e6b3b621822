// moec quantize: GPTQ / RTN quantization of every expert into a container.
#include <unistd.h>

#include <fmt/format.h>

#include "apps/commands.h"
#include "io/checkpoint.h"
#include "io/error.h"
#include "io/mpi_world.h"
#include "model/thread_pool.h"
#include "quantize/pipeline.h"

namespace moec::cli {
namespace {

struct QuantizeFlags {
  std::string model, out, bits = "4", method = "gptq", ternary = "qmoe", code = "packed";
  int64_t group = 128;
  double damp = 0.01;
  bool act_order = true;
  double rate_lambda = 0, target_bits = 0;
  int fit_levels = 0;
  std::string non_expert = "keep";
  bool keep_shared = false;
  bool dry_run = false;
  CalibrationFlags calibration{.calib = {}, .windows = 128};
};

QuantFormat format_from_flags(const QuantizeFlags& f) {
  if (f.code == "sub1") {
    if (f.bits != "ternary" || f.ternary != "qmoe")
      fail("--code sub1 codes ternary weights on the qmoe grid: use --bits ternary (--ternary qmoe)");
    return QuantFormat::parse("sub1");
  }
  if (f.bits == "ternary") return QuantFormat::parse("ternary-" + f.ternary);
  return QuantFormat::parse("q" + f.bits + "g" + std::to_string(f.group));
}

void run_quantize(const QuantizeFlags& f) {
  QuantizeOptions o;
  o.format = format_from_flags(f);
  o.gptq = f.method == "gptq";
  o.gptq_options.damp = f.damp;
  o.gptq_options.act_order = f.act_order;
  o.gptq_options.rate.lambda = f.rate_lambda;
  o.gptq_options.level_fits = f.fit_levels;
  o.target_bits = f.target_bits;
  o.non_expert = parse_non_expert(f.non_expert);
  if (f.rate_lambda > 0 && f.target_bits > 0) fail("--rate-lambda and --target-bits exclude each other: give one");
  if (f.fit_levels > 0 && f.bits != "ternary") fail("--fit-levels fits ternary levels: use --bits ternary");
  const CalibrationFlags& c = f.calibration;
  apply_calibration_flags(c, o);
  o.keep_shared = f.keep_shared;
  o.dry_run = f.dry_run;
  const bool root = MpiWorld::get().root();  // under mpirun, rank 0 writes and reports
  if (root && ::isatty(STDERR_FILENO))
    o.progress = [](int64_t layer, int64_t expert, int64_t experts) {
      fmt::print(stderr, "\rquantize: layer {} expert {}/{}   ", layer, expert + 1, experts);
      if (expert + 1 == experts) fmt::print(stderr, "\n");
    };
  auto source = open_checkpoint(f.model);
  ThreadPool pool(c.threads);
  QuantizeReport report = quantize_model(*source, f.out, o, pool);
  if (!root) return;
  if (f.dry_run && !c.json)
    fmt::print("{}", to_text(report));  // nothing was written
  else
    print_report(f.out, c.json, to_json(report).dump(2), to_text(report));
}

}  // namespace

void add_quantize_commands(CLI::App& app) {
  auto f = std::make_shared<QuantizeFlags>();
  auto* q = app.add_subcommand("quantize", "Quantize every expert (GPTQ or RTN) into a moec container");
  q->add_option("model", f->model, "Model folder or dense .h5 container")->required();
  q->add_option("-o,--output", f->out, "Output .h5 file")->required();
  q->add_option("--bits", f->bits, "Bits per expert weight")
      ->check(CLI::IsMember({"8", "4", "3", "2", "ternary"}))
      ->capture_default_str();
  q->add_option("--group", f->group, "Columns per scale/zero (0: one group per row)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  q->add_option("--method", f->method, "gptq or rtn")->check(CLI::IsMember({"gptq", "rtn"}))->capture_default_str();
  q->add_option("--ternary", f->ternary, "Ternary grid: qmoe {min,0,max} or sym {-a,0,a}")
      ->check(CLI::IsMember({"qmoe", "sym"}))
      ->capture_default_str();
  q->add_option("--code", f->code,
                "How ternary codes are stored: packed (base 3, 1.6 bits) or sub1 (Tunstall-coded, below 1 bit)")
      ->check(CLI::IsMember({"packed", "sub1"}))
      ->capture_default_str();
  add_calibration_flags(q, f->calibration);
  q->add_flag("--keep-shared", f->keep_shared,
              "Keep shared experts (Qwen2-MoE) at their stored precision instead of quantizing them like experts");
  q->add_option("--damp", f->damp, "GPTQ dampening, relative to the mean Hessian diagonal")
      ->check(CLI::Range(0.0, 10.0))
      ->capture_default_str();
  q->add_flag("--act-order,!--no-act-order", f->act_order,
             "GPTQ: quantize columns by descending Hessian diagonal (default on)");
  q->add_option("--rate-lambda", f->rate_lambda,
                "sub1: rate-aware GPTQ, each trit chosen by error + lambda x its code length (0: nearest level)")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  q->add_option("--target-bits", f->target_bits,
                "sub1: search the model's --rate-lambda (on layer 0, steered after) so the experts take about this many bits per weight")
      ->check(CLI::Range(0.0, 2.0));
  q->add_option("--fit-levels", f->fit_levels,
                "Ternary: refit each row's levels to its trits (least squares on the Hessian) this many times, "
                "re-running GPTQ between fits")
      ->check(CLI::Range(0, 8))
      ->capture_default_str();
  q->add_option("--non-expert", f->non_expert,
                "Attention and lm_head (GPTQ, act-order, damp 0.01), the embedding (round-to-nearest): keep as "
                "stored, or q8 / q4 / q3 / q2 in groups of 128, or q<bits>g<group>; per kind after a comma: "
                "attn=, embed=, head= (e.g. q3,attn=q2g32,head=q4)")
      ->capture_default_str();
  q->add_flag("--dry-run", f->dry_run,
              "Quantize the first layer only, write nothing, and project the whole model's time, peak memory and "
              "file size on this machine");
  q->callback([f] { run_quantize(*f); });
}

}  // namespace moec::cli
