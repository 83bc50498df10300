// kiln: builds OCI images from Dockerfiles and records their build sources.
// This file only wires commands to the modules that do the work.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include "cli/build.h"
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
  CLI::App app{
      "kiln: builds OCI images from Dockerfiles, with a pinned record of their build "
      "sources"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");

  kiln::cli::GlobalOptions global;
  global.root = kiln::cli::DefaultRoot();
  std::string root = global.root.string();
  app.add_option("--root", root,
                 "State directory; the content store is ROOT/content (default: $KILN_ROOT, else "
                 "/var/lib/kiln for root, else $XDG_DATA_HOME/kiln or ~/.local/share/kiln)")
      ->capture_default_str();

  std::string config_path;
  app.add_option("--config", config_path,
                 "kiln config file (default: $KILN_CONFIG, else /etc/kiln/config.json for root, "
                 "else ~/.config/kiln/config.json)");

  auto* version = app.add_subcommand("version", "Print kiln's version");

  kiln::cli::PullOptions pull_opts;
  auto* pull = app.add_subcommand("pull", "Pull an image from a registry into the content store");
  pull->fallthrough();
  pull->add_option("--platform", pull_opts.platform,
                   "Platform to pull from a multi-platform image: os/arch[/variant] "
                   "(default: the host's)");
  pull->add_option("REF", pull_opts.reference, "Image reference (docker://REF or REF)")->required();

  kiln::cli::InspectOptions inspect_opts;
  auto* image_inspect = app.add_subcommand(
      "inspect",
      "Show an image's manifest tree and the build sources of each platform: a registry "
      "reference (docker://REF or REF), oci-layout://PATH[:TAG] or oci-archive://FILE[:TAG]");
  image_inspect->fallthrough();
  image_inspect->add_flag("--raw", inspect_opts.raw,
                          "Print the top manifest or index bytes exactly as stored");
  image_inspect->add_option("--format", inspect_opts.format, "Output format: pretty or json")
      ->check(CLI::IsMember({"pretty", "json"}));
  image_inspect->add_option("REF", inspect_opts.location, "Image to inspect")->required();

  kiln::cli::CopyOptions copy_opts;
  bool copy_all = false;
  auto* copy = app.add_subcommand(
      "copy",
      "Copy an image between registries (docker://REF or REF), OCI layouts "
      "(oci-layout://PATH[:TAG]) and OCI archives (oci-archive://FILE[:TAG]), bytes unchanged");
  copy->fallthrough();
  auto* copy_platform = copy->add_option(
      "--platform", copy_opts.platform,
      "Copy only this platform's manifest of a multi-platform image: os/arch[/variant]");
  copy->add_flag("--all", copy_all, "Copy every platform of a multi-platform image (default)")
      ->excludes(copy_platform);
  copy->add_option("SRC", copy_opts.source, "Source image")->required();
  copy->add_option("DST", copy_opts.destination, "Destination")->required();

  kiln::cli::BuildOptions build_opts;
  auto* build = app.add_subcommand(
      "build", "Build an image from a Dockerfile; the image records its build sources");
  build->fallthrough();
  build->add_option("-f,--file", build_opts.file, "Dockerfile (default: CONTEXT/Dockerfile)");
  build->add_option("-t,--tag", build_opts.tags, "Name the image NAME[:TAG]")
      ->allow_extra_args(false);
  build->add_option("--build-arg", build_opts.build_args, "Build argument NAME=VALUE")
      ->allow_extra_args(false);
  build->add_option("--target", build_opts.target, "Stage to build (default: the last)");
  build->add_option("--platform", build_opts.platform,
                    "Target platforms os/arch[/variant], comma-separated: several make an index "
                    "with one image per platform (default: the host's)");
  build
      ->add_option("--secret", build_opts.secrets,
                   "Secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR")
      ->allow_extra_args(false);
  build->add_flag("--no-cache", build_opts.no_cache, "Run every step, ignoring the build cache");
  build
      ->add_option("--no-cache-filter", build_opts.no_cache_filter,
                   "Run this stage's steps ignoring the build cache")
      ->allow_extra_args(false);
  build
      ->add_option("--build-context", build_opts.build_contexts,
                   "Named context NAME=VALUE (docker-image://REF, a URL)")
      ->allow_extra_args(false);
  build
      ->add_option("-o,--output", build_opts.outputs,
                   "Output: type=image,name=REF[,push=true], type=oci|docker,dest=FILE, "
                   "type=local,dest=DIR, type=tar,dest=FILE|-")
      ->allow_extra_args(false);
  build->add_flag("--push", build_opts.push, "Push the image (type=image,push=true)");
  build->add_option("--metadata-file", build_opts.metadata_file,
                    "Write the exporter response (digests, build sources) to this JSON file");
  build
      ->add_option("--progress", build_opts.progress,
                   "Progress output: auto (tty on a terminal, else plain), tty (live steps), "
                   "plain (step logs), quiet (only the image digest) or rawjson (JSON lines)")
      ->check(CLI::IsMember({"auto", "tty", "plain", "quiet", "rawjson"}));
  build->add_option("--debug", build_opts.debug, "Debug output: stats (time per phase)")
      ->check(CLI::IsMember({"stats"}));
  build->add_option("CONTEXT", build_opts.context, "Build context directory (default: .)");

  auto* du = app.add_subcommand("du", "Show the disk space kiln's state uses");
  kiln::cli::PruneOptions prune_opts;
  auto* prune = app.add_subcommand("prune", "Remove the build cache and build snapshots");

  auto* bi = app.add_subcommand("buildinfo", "Work with build-sources records");
  bi->require_subcommand(1);
  auto* inspect = bi->add_subcommand(
      "inspect",
      "Print the build sources recorded in an image: an OCI layout directory, an OCI or Docker "
      "image archive, or an image-config JSON file");
  std::string path;
  std::string format = "pretty";
  inspect->add_option("PATH", path, "Image layout directory, archive, or config file")->required();
  inspect->add_option("--format", format, "Output format: pretty or json")
      ->check(CLI::IsMember({"pretty", "json"}));

  auto* debug = app.add_subcommand("debug", "Show the Dockerfile frontend's intermediate forms");
  debug->require_subcommand(1);
  auto* debug_parse =
      debug->add_subcommand("parse", "Print a Dockerfile's syntax tree in BuildKit's dump format");
  std::string parse_path;
  debug_parse->add_option("FILE", parse_path, "Dockerfile")->required();
  kiln::cli::DebugGraphOptions graph_opts;
  auto* debug_graph = debug->add_subcommand(
      "graph", "Convert a Dockerfile and print its build graph (base images are resolved)");
  debug_graph->fallthrough();
  debug_graph->add_option("-f,--file", graph_opts.file, "Dockerfile (default: CONTEXT/Dockerfile)");
  debug_graph->add_option("--target", graph_opts.target, "Stage to build (default: the last)");
  debug_graph->add_option("--platform", graph_opts.platform,
                          "Target platform os/arch[/variant] (default: the host's)");
  debug_graph->add_option("--build-arg", graph_opts.build_args, "Build argument NAME=VALUE")
      ->allow_extra_args(false);  // one value per flag: CONTEXT stays positional
  debug_graph
      ->add_option("--build-context", graph_opts.build_contexts,
                   "Named context NAME=VALUE (docker-image://REF, local:NAME, a URL)")
      ->allow_extra_args(false);
  debug_graph->add_option("--format", graph_opts.format, "Output format: json or dot")
      ->check(CLI::IsMember({"json", "dot"}));
  debug_graph->add_option("CONTEXT", graph_opts.context, "Build context (default: .)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --help-all
    return Fail(kiln::Status::InvalidArgument(std::string(e.what()) + " (see kiln --help)"));
  }

  global.root = root;
  if (version->parsed()) {
    std::printf("kiln %s\n", KILN_VERSION);
    return 0;
  }
  if (inspect->parsed()) {
    auto records = kiln::cli::CollectRecords(path);
    if (!records.ok()) return Fail(records.status());
    std::string out =
        format == "json" ? kiln::cli::FormatJson(*records) : kiln::cli::FormatPretty(*records);
    return Print(out);
  }
  if (debug_parse->parsed()) {
    auto out = kiln::cli::DebugParse(parse_path);
    if (!out.ok()) {
      std::fprintf(stderr, "kiln: error: %s\n", out.status().message().c_str());
      return 1;
    }
    for (const std::string& w : out->warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    return Print(out->dump);
  }
  if (build->parsed()) {
    // Before any thread: mounts made by the build stay private to it.
    if (auto st = kiln::cli::PrepareBuildProcess(); !st.ok()) return Fail(st);
  }
  if (du->parsed()) return PrintOrFail(kiln::cli::RunDu(global));
  if (prune->parsed()) return PrintOrFail(kiln::cli::RunPrune(global, prune_opts));
  // The registry commands read the kiln config (a named file must exist).
  const bool named = !config_path.empty();
  auto config = kiln::cli::LoadConfig(
      named ? std::filesystem::path(config_path) : kiln::cli::DefaultConfigPath(),
      named || std::getenv("KILN_CONFIG") != nullptr);
  if (!config.ok()) return Fail(config.status());
  global.insecure_registries = config->insecure_registries;
  global.network = config->network;
  if (debug_graph->parsed()) {
    auto out = kiln::cli::DebugGraph(global, graph_opts);
    if (!out.ok()) {  // Dockerfile errors span lines: the line and a caret
      std::fprintf(stderr, "kiln: error: %s\n", out.status().message().c_str());
      return 1;
    }
    return Print(*out);
  }
  if (build->parsed()) {
    auto out = kiln::cli::RunBuild(global, build_opts);
    if (!out.ok()) {  // build errors span lines: the step, its line, its last output
      std::fprintf(stderr, "kiln: error: %s\n", out.status().message().c_str());
      return out.status().code() == kiln::StatusCode::kCancelled ? 130 : 1;
    }
    return Print(*out);
  }
  if (pull->parsed()) return PrintOrFail(kiln::cli::RunPull(global, pull_opts));
  if (image_inspect->parsed()) return PrintOrFail(kiln::cli::RunInspect(global, inspect_opts));
  if (copy->parsed()) return PrintOrFail(kiln::cli::RunCopy(global, copy_opts));
  return 0;
}
