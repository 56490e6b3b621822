// The moec command line. This file only parses flags and calls library code;
// every error reaches the user as one line "moec: error: ..." and exit 1.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "io/checkpoint.h"
#include "io/convert.h"
#include "io/error.h"
#include "io/hf_writer.h"
#include "io/process_stats.h"
#include "io/summary.h"

namespace {

std::string quoted_command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$`*?;&|<>()") == std::string::npos;
    if (!line.empty()) line += ' ';
    line += plain ? arg : "'" + arg + "'";
  }
  return line;
}

// CLI11's messages, kept to one line; an unknown first word is named as an
// unknown command rather than CLI11's "A subcommand is required".
std::string parse_error_message(const CLI::App& app, int argc, char** argv, const CLI::ParseError& e) {
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands({})) known |= sub->get_name() == argv[1];
    if (!known) return fmt::format("unknown command '{}'", argv[1]);
  }
  std::string message = e.what();
  std::replace(message.begin(), message.end(), '\n', ' ');
  return message;
}

// A CLI11 validator for numbers > 0.
CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        try {
          if (std::stod(text) > 0) return {};
        } catch (const std::exception&) {
        }
        return "must be a positive number, got '" + text + "'";
      },
      "POSITIVE");
}

void print_cost(const moec::Stopwatch& clock) {
  fmt::print(stderr, "time {:.2f} s, peak memory {:.1f} MiB\n", clock.seconds(),
             double(moec::peak_rss_bytes()) / (1 << 20));
}

void run_inspect(const std::string& path, bool json) {
  auto source = moec::open_checkpoint(path);
  auto summary = moec::summarize(*source);
  if (json)
    fmt::print("{}\n", moec::to_json(summary).dump(2));
  else
    fmt::print("{}", moec::to_text(summary));
}

void run_convert(const std::string& in, const std::string& out, bool force, const std::string& command_line) {
  moec::Stopwatch clock;
  auto source = moec::open_checkpoint(in);
  bool tty = ::isatty(STDERR_FILENO);
  auto progress = [&](int layer, int layers) {
    if (tty) fmt::print(stderr, "\rconvert: layer {}/{}", std::min(layer + 1, layers), layers);
  };
  auto result = moec::convert_to_container(*source, out, force, command_line, progress);
  if (tty) fmt::print(stderr, "\n");
  fmt::print("wrote {}: {} tensors, {} bytes of tensor data, {} bytes on disk\n", out, result.tensors,
             result.tensor_bytes, result.file_bytes);
  print_cost(clock);
}

void run_export(const std::string& in, const std::string& out, bool force, double max_shard_gb) {
  moec::Stopwatch clock;
  auto source = moec::open_checkpoint(in);
  moec::HfWriteOptions options;
  options.overwrite = force;
  options.max_shard_bytes = static_cast<uint64_t>(max_shard_gb * 1e9);
  auto result = moec::write_hf_checkpoint(*source, out, options);
  fmt::print("wrote {}: {} tensors in {} shard{}, {} bytes\n", out, result.tensors, result.shards,
             result.shards == 1 ? "" : "s", result.bytes);
  print_cost(clock);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moec: compress Mixture-of-Experts language models"};
  app.failure_message(CLI::FailureMessage::simple);
  app.require_subcommand(1);
  app.set_version_flag("--version", "moec " MOEC_VERSION);

  std::string path, in, out;
  bool json = false, force = false;
  double max_shard_gb = 5.0;

  auto* inspect = app.add_subcommand("inspect", "Summarize a checkpoint (HF folder or .h5 container)");
  inspect->add_option("path", path, "Model folder or .h5 container")->required();
  inspect->add_flag("--json", json, "Machine-readable output");

  auto* convert = app.add_subcommand("convert", "Convert a Hugging Face folder to a moec .h5 container (lossless)");
  convert->add_option("input", in, "Hugging Face model folder")->required();
  convert->add_option("-o,--output", out, "Output .h5 file")->required();
  convert->add_flag("-f,--force", force, "Replace an existing output");

  auto* exporter = app.add_subcommand("export", "Write a checkpoint with dense tensors as a Hugging Face folder");
  exporter->add_option("input", in, ".h5 container (or model folder)")->required();
  exporter->add_option("-o,--output", out, "Output folder")->required();
  exporter->add_option("--max-shard-size", max_shard_gb, "Largest shard in GB (10^9 bytes)")
      ->check(positive_number())
      ->capture_default_str();
  exporter->add_flag("-f,--force", force, "Replace an existing output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "moec: error: {} (see moec --help)\n", parse_error_message(app, argc, argv, e));
    return e.get_exit_code();
  }
  try {
    if (*inspect) run_inspect(path, json);
    if (*convert) run_convert(in, out, force, quoted_command_line(argc, argv));
    if (*exporter) run_export(in, out, force, max_shard_gb);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "moec: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
