// moec inspect / convert / export.
#include <unistd.h>

#include <fmt/format.h>

#include "apps/commands.h"
#include "io/checkpoint.h"
#include "io/convert.h"
#include "io/hf_writer.h"
#include "io/process_stats.h"
#include "io/summary.h"
#include "io/synthetic_checkpoint.h"
#include "model/dequantized_export.h"
#include "model/tensor_check.h"

namespace moec::cli {
namespace {

struct IoFlags {
  std::string path, in, out;
  bool json = false;
  bool force = false;
  bool dequantize = false;
  bool verify = false;
  double max_shard_gb = 5.0;
  SyntheticOptions synth;
};

void run_inspect(const IoFlags& f) {
  auto source = open_checkpoint(f.path);
  check_encoded_tensors(*source);  // a lying quantized tensor is an error, not a summary
  if (f.verify) {
    Stopwatch clock;
    const uint64_t values = verify_all_tensors(*source);
    fmt::print(stderr, "verified: {} values of {} tensors decode to finite numbers ({:.2f} s)\n", values,
               source->tensors().size(), clock.seconds());
  }
  auto summary = summarize(*source);
  if (f.json)
    fmt::print("{}\n", to_json(summary).dump(2));
  else
    fmt::print("{}", to_text(summary));
}

void run_convert(const IoFlags& f) {
  Stopwatch clock;
  auto source = open_checkpoint(f.in);
  bool tty = ::isatty(STDERR_FILENO);
  auto progress = [&](int layer, int layers) {
    if (tty) fmt::print(stderr, "\rconvert: layer {}/{}", std::min(layer + 1, layers), layers);
  };
  auto result = convert_to_container(*source, f.out, f.force, command_line(), progress);
  if (tty) fmt::print(stderr, "\n");
  fmt::print("wrote {}: {} tensors, {} bytes of tensor data, {} bytes on disk\n", f.out, result.tensors,
             result.tensor_bytes, result.file_bytes);
  print_cost(clock.seconds());
}

void run_export(const IoFlags& f) {
  Stopwatch clock;
  auto source = open_checkpoint(f.in);
  HfWriteOptions options;
  options.overwrite = f.force;
  options.max_shard_bytes = f.max_shard_gb >= 1.8e10 ? UINT64_MAX : static_cast<uint64_t>(f.max_shard_gb * 1e9);
  auto result = f.dequantize ? write_dequantized_hf(*source, f.out, options) : write_hf_checkpoint(*source, f.out, options);
  fmt::print("wrote {}: {} tensors in {} shard{}, {} bytes\n", f.out, result.tensors, result.shards,
             result.shards == 1 ? "" : "s", result.bytes);
  print_cost(clock.seconds());
}

void run_synth(IoFlags& f) {
  Stopwatch clock;
  f.synth.write.overwrite = f.force;
  f.synth.write.max_shard_bytes = static_cast<uint64_t>(f.max_shard_gb * 1e9);
  auto result = write_synthetic_checkpoint(f.out, f.synth);
  fmt::print("wrote {}: {} ({} layers), {} tensors in {} shards, {} bytes\n", f.out, f.synth.shape,
             synthetic_config(f.synth.shape, f.synth.layers)["num_hidden_layers"].get<int>(), result.tensors,
             result.shards, result.bytes);
  print_cost(clock.seconds());
}

}  // namespace

void add_io_commands(CLI::App& app) {
  auto flags = std::make_shared<IoFlags>();

  auto* inspect = app.add_subcommand("inspect", "Summarize a checkpoint (HF folder or .h5 container)");
  inspect->add_option("path", flags->path, "Model folder or .h5 container")->required();
  inspect->add_flag("--json", flags->json, "Machine-readable output");
  inspect->add_flag("--verify", flags->verify,
                    "Also decode every tensor once and report the first value that is not a finite number");
  inspect->callback([flags] { run_inspect(*flags); });

  auto* convert = app.add_subcommand("convert", "Convert a Hugging Face folder to a moec .h5 container (lossless)");
  convert->add_option("input", flags->in, "Hugging Face model folder")->required();
  convert->add_option("-o,--output", flags->out, "Output .h5 file")->required();
  convert->add_flag("-f,--force", flags->force, "Replace an existing output");
  convert->callback([flags] { run_convert(*flags); });

  auto* exporter = app.add_subcommand("export", "Write a checkpoint with dense tensors as a Hugging Face folder");
  exporter->add_option("input", flags->in, ".h5 container (or model folder)")->required();
  exporter->add_option("-o,--output", flags->out, "Output folder")->required();
  exporter->add_option("--max-shard-size", flags->max_shard_gb, "Largest shard in GB (10^9 bytes)")
      ->check(positive_number())
      ->capture_default_str();
  exporter->add_flag("-f,--force", flags->force, "Replace an existing output");
  exporter->add_flag("--dequantize", flags->dequantize,
                     "Decode quantized tensors (packed, ternary, sub1) to bf16: a plain Hugging Face folder");
  exporter->callback([flags] { run_export(*flags); });

  auto* synth = app.add_subcommand(
      "synth", "Write a checkpoint of a real model's shapes with seeded random bf16 weights (for scale tests)");
  synth->add_option("-o,--output", flags->out, "Output folder")->required();
  synth->add_option("--shape", flags->synth.shape, "mixtral-8x7b, mixtral-8x22b or mini")
      ->capture_default_str();
  synth->add_option("--layers", flags->synth.layers, "Layers (0: as many as the real model)")->capture_default_str();
  synth->add_option("--seed", flags->synth.seed, "Seed of the weights")->capture_default_str();
  synth->add_option("--tokenizer", flags->synth.tokenizer, "tokenizer.model or tokenizer.json to include")
      ->check(CLI::ExistingFile);
  synth->add_option("--max-shard-size", flags->max_shard_gb, "Largest shard in GB (10^9 bytes)")
      ->capture_default_str()->check(CLI::Range(0.001, 1e6));
  synth->add_option("--threads", flags->synth.threads, "Threads (0: all)");
  synth->add_flag("-f,--force", flags->force, "Replace an existing output");
  synth->callback([flags] { run_synth(*flags); });
}

}  // namespace moec::cli
