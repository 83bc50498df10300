#include "cli/command_line.h"

#include "cli/config.h"

namespace kiln::cli {
namespace {

// Global flags work after a subcommand too: CLI11 hands an option a
// subcommand does not know to its parent (fallthrough), at every depth.
void PassUnknownOptionsUp(CLI::App* app) {
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    sub->fallthrough();
    PassUnknownOptionsUp(sub);
  }
}

}  // namespace

CommandLine::CommandLine()
    : app("kiln: builds OCI images from Dockerfiles, with a pinned record of their build "
          "sources") {
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");

  global.root = DefaultRoot();
  root = global.root.string();
  app.add_option("--root", root,
                 "State directory; the content store is ROOT/content (default: $KILN_ROOT, else "
                 "/var/lib/kiln for root, else $XDG_DATA_HOME/kiln or ~/.local/share/kiln)")
      ->capture_default_str();

  app.add_option("--config", config_path,
                 "kiln config file (default: $KILN_CONFIG, else /etc/kiln/config.json for root, "
                 "else ~/.config/kiln/config.json)");

  version = app.add_subcommand("version", "Print kiln's version");

  pull = app.add_subcommand("pull", "Pull an image from a registry into the content store");
  pull->fallthrough();
  pull->add_option("--platform", pull_opts.platform,
                   "Platform to pull from a multi-platform image: os/arch[/variant] "
                   "(default: the host's)");
  pull->add_option("REF", pull_opts.reference, "Image reference (docker://REF or REF)")->required();

  image_inspect = app.add_subcommand(
      "inspect",
      "Show an image's manifest tree and the build sources of each platform: a registry "
      "reference (docker://REF or REF), oci-layout://PATH[:TAG] or oci-archive://FILE[:TAG]");
  image_inspect->fallthrough();
  image_inspect->add_flag("--raw", inspect_opts.raw,
                          "Print the top manifest or index bytes exactly as stored");
  image_inspect->add_option("--format", inspect_opts.format, "Output format: pretty or json")
      ->check(CLI::IsMember({"pretty", "json"}));
  image_inspect->add_option("REF", inspect_opts.location, "Image to inspect")->required();

  copy = app.add_subcommand(
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

  build = app.add_subcommand(
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

  du = app.add_subcommand("du", "Show the disk space kiln's state uses");
  prune = app.add_subcommand("prune", "Remove the build cache and build snapshots");

  buildinfo = app.add_subcommand("buildinfo", "Work with build-sources records");
  buildinfo->require_subcommand(1);
  buildinfo_inspect = buildinfo->add_subcommand(
      "inspect",
      "Print the build sources recorded in an image: an OCI layout directory, an OCI or Docker "
      "image archive, or an image-config JSON file");
  buildinfo_inspect
      ->add_option("PATH", buildinfo_path, "Image layout directory, archive, or config file")
      ->required();
  buildinfo_inspect->add_option("--format", buildinfo_format, "Output format: pretty or json")
      ->check(CLI::IsMember({"pretty", "json"}));

  debug = app.add_subcommand("debug", "Show the Dockerfile frontend's intermediate forms");
  debug->require_subcommand(1);
  debug_parse =
      debug->add_subcommand("parse", "Print a Dockerfile's syntax tree in BuildKit's dump format");
  debug_parse->add_option("FILE", parse_path, "Dockerfile")->required();
  debug_graph = debug->add_subcommand(
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

  PassUnknownOptionsUp(&app);
}

void CommandLine::Parse(int argc, const char* const* argv) {
  app.parse(argc, argv);
  global.root = root;
}

void CommandLine::Parse(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"kiln"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  Parse(static_cast<int>(argv.size()), argv.data());
}

}  // namespace kiln::cli
