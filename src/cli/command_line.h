// The kiln command line: every subcommand, its flags and where each lands,
// defined once so main.cc only dispatches and tests parse exactly what the
// binary parses.
//
// The global flags (--root, --config) are accepted before the subcommand
// (`kiln --root X du`) and after it, at any depth (`kiln du --root X`,
// `kiln buildinfo inspect --root X PATH`).
//
// Thread-safety: a CommandLine is built, parsed and read by one thread. It
// holds the CLI11 app whose options point into its own members, so it never
// moves.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/build.h"
#include "cli/debug_commands.h"
#include "cli/registry_commands.h"

namespace kiln::cli {

struct CommandLine {
  CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;

  // Parses `argv` (argv[0] is the program); throws CLI::ParseError as
  // CLI::App::parse does. Afterwards `global.root` holds --root.
  void Parse(int argc, const char* const* argv);
  // The same for tests: `args` without the program name.
  void Parse(const std::vector<std::string>& args);

  CLI::App app;

  GlobalOptions global;
  std::string root;
  std::string config_path;  // --config; empty when not given

  CLI::App* version = nullptr;
  CLI::App* pull = nullptr;
  PullOptions pull_opts;
  CLI::App* image_inspect = nullptr;
  InspectOptions inspect_opts;
  CLI::App* copy = nullptr;
  CopyOptions copy_opts;
  bool copy_all = false;
  CLI::App* build = nullptr;
  BuildOptions build_opts;
  CLI::App* du = nullptr;
  CLI::App* prune = nullptr;
  PruneOptions prune_opts;
  CLI::App* buildinfo = nullptr;
  CLI::App* buildinfo_inspect = nullptr;
  std::string buildinfo_path;
  std::string buildinfo_format = "pretty";
  CLI::App* debug = nullptr;
  CLI::App* debug_parse = nullptr;
  std::string parse_path;
  CLI::App* debug_graph = nullptr;
  DebugGraphOptions graph_opts;
};

}  // namespace kiln::cli
