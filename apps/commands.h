// Each moec subcommand registers its flags and the library call it makes.
#pragma once
#include <string>

#include <CLI/CLI.hpp>

namespace moec::cli {

// The command line as typed, shell-quoted (recorded in outputs' provenance).
const std::string& command_line();
void set_command_line(int argc, char** argv);

void add_io_commands(CLI::App& app);       // inspect, convert, export
void add_runtime_commands(CLI::App& app);  // eval, generate
void add_bench_commands(CLI::App& app);    // bench
void add_quantize_commands(CLI::App& app); // quantize
void add_merge_commands(CLI::App& app);    // merge
void add_distill_commands(CLI::App& app);  // distill
void add_serve_commands(CLI::App& app);    // serve

// The flags every calibrating stage (quantize, merge, distill) shares.
struct CalibrationFlags {
  std::string calib;
  int64_t windows = 0;
  int64_t ctx = 256;
  uint64_t seed = 0;
  int threads = 0;
  bool force = false;
  bool json = false;
};
void add_calibration_flags(CLI::App* command, CalibrationFlags& flags);
// Copies them into a stage's options (calib, calib_windows, ctx, seed,
// overwrite), with the command line for the output's provenance.
template <typename StageOptions>
void apply_calibration_flags(const CalibrationFlags& c, StageOptions& o) {
  o.calib = c.calib;
  o.calib_windows = c.windows;
  o.ctx = c.ctx;
  o.seed = c.seed;
  o.overwrite = c.force;
  o.command_line = command_line();
}
// A stage's closing report: JSON, or "wrote OUT" and the text table.
void print_report(const std::string& out, bool json, const std::string& json_text, const std::string& text);

// Prints "time X s, peak memory Y MiB" to stderr.
void print_cost(double seconds);
// A CLI11 validator for numbers > 0.
CLI::Validator positive_number();

}  // namespace moec::cli
