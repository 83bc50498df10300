// kiln: builds OCI images from Dockerfiles and records their build sources.
// This file only wires commands to the modules that do the work.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/inspect.h"

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "kiln: builds OCI images from Dockerfiles, with a pinned record of their build "
      "sources"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");

  auto* version = app.add_subcommand("version", "Print kiln's version");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (version->parsed()) {
    std::printf("kiln %s\n", KILN_VERSION);
    return 0;
  }
  if (inspect->parsed()) {
    auto records = kiln::cli::CollectRecords(path);
    if (!records.ok()) return Fail(records.status());
    std::string out =
        format == "json" ? kiln::cli::FormatJson(*records) : kiln::cli::FormatPretty(*records);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  return 0;
}
