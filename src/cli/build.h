// `kiln build`: runs a Dockerfile and writes the image, buildx-style.
//
//   build [-f FILE] [-t NAME]... [--build-arg K=V]... [--target T]
//         [--platform P[,P...]] [--secret id=ID,src=FILE|env=VAR]... [--no-cache]
//         [--no-cache-filter STAGE]... [--build-context NAME=VALUE]...
//         [-o TYPE,OPTIONS...]... [--push] [--metadata-file F]
//         [--progress auto|tty|plain|quiet|rawjson] CONTEXT
//
// One process, no daemon: state under ROOT (content store, snapshots,
// cache.db, contexts/, http-cache.db, cache-mounts/, executor/). A build
// holds ROOT/lock shared, `kiln prune` exclusive. Mounts live in a private
// mount namespace entered first, so an interrupted build leaves none.
// SIGINT/SIGTERM cancel the build: running containers are killed, nothing
// half-made is committed, and the next build starts clean.
//
// Progress goes to stderr (cli/progress.h: a live display on a terminal,
// BuildKit's plain format otherwise: "#N name", output lines, "#N DONE
// 0.3s" / "#N CACHED"). The image's digest is printed on stdout (the
// index's, for several platforms: docs/platforms.md). A failing step's error names the
// step, its Dockerfile line and the last lines of its output.
//
// Called by main.cc only.
#pragma once

#include <string>
#include <vector>

#include "cli/registry_commands.h"
#include "util/status.h"

namespace kiln::cli {

struct BuildOptions {
  std::string context = ".";
  std::string file;  // "" = CONTEXT/Dockerfile
  std::vector<std::string> tags;
  std::vector<std::string> build_args;  // K=V, or K (value from the environment)
  std::string target;
  std::string platform;  // "" = the host's; "a,b": one image per platform, in an index
  std::vector<std::string> secrets;
  bool no_cache = false;
  std::vector<std::string> no_cache_filter;
  std::vector<std::string> build_contexts;  // NAME=VALUE
  std::vector<std::string> outputs;         // -o specs
  bool push = false;                        // --push: type=image,push=true
  std::string metadata_file;
  std::string progress = "auto";  // auto, tty, plain, quiet, rawjson
  std::string debug;              // "stats": print where the time went
};

// Enters a private mount namespace; main calls it before any thread starts.
Status PrepareBuildProcess();

// Returns the text for stdout (the image digest line).
Result<std::string> RunBuild(const GlobalOptions& global, const BuildOptions& options);

struct PruneOptions {
  bool all = true;
};
// `kiln du`: disk usage per kind; `kiln prune`: drops the build cache
// (records, built snapshots and unreferenced layers).
Result<std::string> RunDu(const GlobalOptions& global);
Result<std::string> RunPrune(const GlobalOptions& global, const PruneOptions& options);

}  // namespace kiln::cli
