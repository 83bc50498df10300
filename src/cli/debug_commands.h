// `kiln debug parse` and `kiln debug graph`: the Dockerfile frontend's
// intermediate forms, for people debugging a Dockerfile or kiln itself.
//
//   debug parse FILE
//       The AST in BuildKit's dumper format (frontend/dockerfile/parser).
//       Parser warnings go to `warnings`, one line each, "FILE:LINE: text".
//   debug graph [-f FILE] [--target T] [--platform P] [--build-arg K=V]...
//               [--build-context NAME=VALUE]... [--format json|dot] [CONTEXT]
//       Converts the Dockerfile as `kiln build` would, resolving base images
//       through the registry client (registry credentials from the docker
//       config), and prints the graph of the target (graph/graph.h ToJson or
//       ToDot). CONTEXT "" or a directory: the local build context; a git or
//       HTTP(S) URL: a remote context.
//
// Called by main.cc only. Thread-safety: plain functions.
#pragma once

#include <string>
#include <vector>

#include "cli/registry_commands.h"
#include "util/status.h"

namespace kiln::cli {

struct DebugParseOutput {
  std::string dump;
  std::vector<std::string> warnings;
};
Result<DebugParseOutput> DebugParse(const std::string& path);

struct DebugGraphOptions {
  std::string file;  // "" = CONTEXT/Dockerfile
  std::string context = ".";
  std::string target;
  std::string platform;                     // "" = the host's
  std::vector<std::string> build_args;      // K=V (a bare K takes $K from the environment)
  std::vector<std::string> build_contexts;  // NAME=VALUE
  std::string format = "json";              // or "dot"
};
Result<std::string> DebugGraph(const GlobalOptions& global, const DebugGraphOptions& options);

}  // namespace kiln::cli
