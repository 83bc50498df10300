#include "cli/debug_commands.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/config.h"
#include "cli/resolver.h"
#include "content/store.h"
#include "frontend/dockerfile/convert.h"
#include "frontend/dockerfile/parser/parser.h"
#include "graph/graph.h"
#include "image/platform.h"
#include "image/reference.h"
#include "registry/client.h"

namespace kiln::cli {
namespace {

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::NotFound("cannot read Dockerfile " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

Result<DebugParseOutput> DebugParse(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  dockerfile::SourceRange where;
  Result<dockerfile::ParseResult> parsed = dockerfile::Parse(text, &where);
  if (!parsed.ok()) return dockerfile::FormatSourceError(parsed.status(), where, path, text);
  DebugParseOutput out;
  out.dump = dockerfile::Dump(parsed->root);
  for (const dockerfile::Warning& w : parsed->warnings) {
    out.warnings.push_back(path + ":" + std::to_string(w.line) + ": " + w.message);
  }
  return out;
}

Result<std::string> DebugGraph(const GlobalOptions& global, const DebugGraphOptions& options) {
  const std::string file = options.file.empty() ? options.context + "/Dockerfile" : options.file;
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(file));

  dockerfile::ConvertOptions opt;
  opt.filename = file;
  opt.target = options.target;
  KILN_RETURN_IF_ERROR(
      ApplyFrontendFlags(options.platform, options.build_args, options.build_contexts, &opt));
  if (dockerfile::IsGitContext(options.context) || options.context.rfind("http://", 0) == 0 ||
      options.context.rfind("https://", 0) == 0) {
    opt.context = options.context;
  }

  registry::RegistryOptions ropt;
  ropt.insecure_registries = global.insecure_registries;
  ApplyNetworkOptions(global.network, &ropt);
  KILN_ASSIGN_OR_RETURN(registry::Client client, registry::Client::Create(ropt));
  KILN_RETURN_IF_ERROR(PrepareRoot(global.root));  // 0700
  KILN_ASSIGN_OR_RETURN(content::Store store, content::Store::Open(global.root / "content"));
  RegistryImageResolver resolver(&client, &store);
  opt.resolver = &resolver;

  KILN_ASSIGN_OR_RETURN(dockerfile::ConvertResult converted, dockerfile::ConvertToGraph(text, opt));
  const graph::Definition def = graph::Marshal(converted.root);
  return options.format == "dot" ? graph::ToDot(def) : graph::ToJson(def);
}

}  // namespace kiln::cli
