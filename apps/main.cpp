// The moec command line. apps/ only parses flags and calls library code;
// every error reaches the user as one line "moec: error: ..." and exit 1.
#include <algorithm>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "apps/commands.h"
#include "io/cpu_isa.h"
#include "io/error.h"
#include "io/mpi_world.h"
#include "io/process_stats.h"

namespace moec::cli {
namespace {

std::string g_command_line;

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

}  // namespace

const std::string& command_line() { return g_command_line; }

void set_command_line(int argc, char** argv) {
  g_command_line.clear();
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$`*?;&|<>()") == std::string::npos;
    if (!g_command_line.empty()) g_command_line += ' ';
    g_command_line += plain ? arg : "'" + arg + "'";
  }
}

void print_cost(double seconds) {
  fmt::print(stderr, "time {:.2f} s, peak memory {:.1f} MiB\n", seconds, double(peak_rss_bytes()) / (1 << 20));
}

void add_calibration_flags(CLI::App* command, CalibrationFlags& f) {
  command->add_option("--calib", f.calib, "Calibration text")->required();
  command->add_option("--calib-windows", f.windows, "Calibration windows")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--ctx", f.ctx, "Tokens per calibration window")->check(CLI::Range(2, 1 << 20))->capture_default_str();
  command->add_option("--seed", f.seed, "Seed for drawing calibration windows")->capture_default_str();
  command->add_option("--threads", f.threads, "Worker threads (default: all cores)")->check(CLI::Range(0, 1024));
  command->add_flag("-f,--force", f.force, "Replace an existing output");
  command->add_flag("--json", f.json, "Machine-readable report");
}

void print_report(const std::string& out, bool json, const std::string& json_text, const std::string& text) {
  if (json)
    fmt::print("{}\n", json_text);
  else
    fmt::print("wrote {}\n{}", out, text);
}

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

}  // namespace moec::cli

int main(int argc, char** argv) {
  CLI::App app{"moec: compress Mixture-of-Experts language models"};
  app.failure_message(CLI::FailureMessage::simple);
  app.require_subcommand(1);
  app.set_version_flag("--version", "moec " MOEC_VERSION);
  moec::cli::set_command_line(argc, argv);
  moec::cli::add_io_commands(app);
  moec::cli::add_runtime_commands(app);
  moec::cli::add_quantize_commands(app);
  moec::cli::add_merge_commands(app);
  moec::cli::add_distill_commands(app);
  moec::cli::add_serve_commands(app);
  moec::cli::add_bench_commands(app);
  try {
    moec::active_isa();  // a bad MOEC_ISA is reported before any work
    // Under mpirun only quantize splits its work; any other command would
    // run R times over (and write the same output R times).
    if (moec::launcher_world_size() > 1 && !(argc > 1 && std::string(argv[1]) == "quantize"))
      throw moec::Error(fmt::format("'{}' runs in one process; of moec's commands only quantize runs under mpirun",
                                    argc > 1 ? argv[1] : ""));
    app.parse(argc, argv);  // subcommands run in their callbacks
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "moec: error: {} (see moec --help)\n", moec::cli::parse_error_message(app, argc, argv, e));
    return e.get_exit_code();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "moec: error: {}\n", e.what());
    if (moec::launcher_world_size() > 1 && moec::MpiWorld::built_with_mpi()) moec::MpiWorld::get().abort(1);
    return 1;
  }
  return 0;
}
