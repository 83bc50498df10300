// kiln: builds OCI images from Dockerfiles and records their build sources.
// This file only wires commands to the modules that do the work.
#include <CLI/CLI.hpp>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "cli/build.h"
#include "cli/command_line.h"
#include "cli/config.h"
#include "cli/debug_commands.h"
#include "cli/inspect.h"
#include "cli/registry_commands.h"

#ifndef KILN_VERSION
#define KILN_VERSION "dev"
#endif

namespace {

// Errors are one line on stderr, and a non-zero exit.
int Fail(const kiln::Status& status) {
  std::string msg = status.message();
  for (char& c : msg) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "kiln: error: %s\n", msg.c_str());
  return 1;
}

// Writes `out` to stdout; a failed write (a closed pipe, a full disk) fails
// the command.
int Print(const std::string& out) {
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0) {
    return Fail(kiln::Status::IOError("cannot write to standard output"));
  }
  return 0;
}

int PrintOrFail(const kiln::Result<std::string>& out) {
  if (!out.ok()) return Fail(out.status());
  return Print(*out);
}

}  // namespace

int main(int argc, char** argv) {
  // Character classes only (no messages, numbers or collation): libarchive
  // converts names through the locale's charset, and in "C" (ASCII) it
  // cannot write a UTF-8 file name as the pax `path` record Go's
  // archive/tar (BuildKit) writes; it would mark it hdrcharset=BINARY.
  // Names that are not UTF-8 are kept as bytes either way (layer_diff.cc).
  std::setlocale(LC_CTYPE, "C.UTF-8");
  // Heap-allocated: it is large, and its options point into it.
  auto cl = std::make_unique<kiln::cli::CommandLine>();
  try {
    cl->Parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return cl->app.exit(e);  // --help, --help-all
    return Fail(kiln::Status::InvalidArgument(std::string(e.what()) + " (see kiln --help)"));
  }
  kiln::cli::GlobalOptions& global = cl->global;
  if (cl->version->parsed()) {
    std::printf("kiln %s\n", KILN_VERSION);
    return 0;
  }
  if (cl->buildinfo_inspect->parsed()) {
    auto records = kiln::cli::CollectRecords(cl->buildinfo_path);
    if (!records.ok()) return Fail(records.status());
    std::string out = cl->buildinfo_format == "json" ? kiln::cli::FormatJson(*records)
                                                     : kiln::cli::FormatPretty(*records);
    return Print(out);
  }
  if (cl->debug_parse->parsed()) {
    auto out = kiln::cli::DebugParse(cl->parse_path);
    if (!out.ok()) {
      std::fprintf(stderr, "kiln: error: %s\n", out.status().message().c_str());
      return 1;
    }
    for (const std::string& w : out->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    return Print(out->dump);
  }
  if (cl->build->parsed()) {
    // Before any thread: mounts made by the build stay private to it.
    if (auto st = kiln::cli::PrepareBuildProcess(); !st.ok()) return Fail(st);
  }
  if (cl->du->parsed()) return PrintOrFail(kiln::cli::RunDu(global));
  if (cl->prune->parsed()) return PrintOrFail(kiln::cli::RunPrune(global, cl->prune_opts));
  // The registry commands read the kiln config (a named file must exist).
  const bool named = !cl->config_path.empty();
  auto config = kiln::cli::LoadConfig(
      named ? std::filesystem::path(cl->config_path) : kiln::cli::DefaultConfigPath(),
      named || std::getenv("KILN_CONFIG") != nullptr);
  if (!config.ok()) return Fail(config.status());
  global.insecure_registries = config->insecure_registries;
  global.network = config->network;
  if (cl->debug_graph->parsed()) {
    auto out = kiln::cli::DebugGraph(global, cl->graph_opts);
    if (!out.ok()) {  // Dockerfile errors span lines: the line and a caret
      std::fprintf(stderr, "kiln: error: %s\n", out.status().message().c_str());
      return 1;
    }
    return Print(*out);
  }
  if (cl->build->parsed()) {
    auto out = kiln::cli::RunBuild(global, cl->build_opts);
    if (!out.ok()) {  // build errors span lines: the step, its line, its last output
      std::fprintf(stderr, "kiln: error: %s\n", out.status().message().c_str());
      return out.status().code() == kiln::StatusCode::kCancelled ? 130 : 1;
    }
    return Print(*out);
  }
  if (cl->pull->parsed()) return PrintOrFail(kiln::cli::RunPull(global, cl->pull_opts));
  if (cl->image_inspect->parsed())
    return PrintOrFail(kiln::cli::RunInspect(global, cl->inspect_opts));
  if (cl->copy->parsed()) return PrintOrFail(kiln::cli::RunCopy(global, cl->copy_opts));
  return 0;
}
