// Unit tests of the kiln command line (cli/command_line.h): every
// subcommand takes the global flags before and after its name.
//
// Guards issue 15 (smaller): `kiln du --root X` and `kiln prune --root X`
// were refused ("The following arguments were not expected: --root X")
// because only some subcommands passed unknown options up to kiln's.
#include "cli/command_line.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kiln::cli {
namespace {

struct Case {
  std::vector<std::string> args;   // the subcommand and its own arguments
  CLI::App* CommandLine::*parsed;  // the (innermost) subcommand they select
};

std::vector<Case> Cases() {
  return {
      {{"version"}, &CommandLine::version},
      {{"pull", "busybox"}, &CommandLine::pull},
      {{"inspect", "--format", "json", "busybox"}, &CommandLine::image_inspect},
      {{"copy", "a", "oci-layout:///tmp/b"}, &CommandLine::copy},
      {{"build", "--progress", "plain", "-t", "x", "ctx"}, &CommandLine::build},
      {{"du"}, &CommandLine::du},
      {{"prune"}, &CommandLine::prune},
      {{"buildinfo", "inspect", "image.tar"}, &CommandLine::buildinfo_inspect},
      {{"debug", "parse", "Dockerfile"}, &CommandLine::debug_parse},
      {{"debug", "graph", "--format", "dot", "ctx"}, &CommandLine::debug_graph},
  };
}

std::string Join(const std::vector<std::string>& args) {
  std::string out;
  for (const std::string& a : args) out += (out.empty() ? "" : " ") + a;
  return out;
}

// Parses `args`; "" or the parse error.
std::string ParseError(CommandLine& cl, const std::vector<std::string>& args) {
  try {
    cl.Parse(args);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

TEST(CommandLineTest, GlobalFlagsBeforeTheSubcommand) {
  for (const Case& c : Cases()) {
    std::vector<std::string> args = {"--root", "/tmp/r1", "--config", "/tmp/c.json"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CommandLine cl;
    ASSERT_EQ(ParseError(cl, args), "") << Join(args);
    EXPECT_TRUE((cl.*c.parsed)->parsed()) << Join(args);
    EXPECT_EQ(cl.global.root, "/tmp/r1") << Join(args);
    EXPECT_EQ(cl.config_path, "/tmp/c.json") << Join(args);
  }
}

TEST(CommandLineTest, GlobalFlagsAfterTheSubcommand) {
  for (const Case& c : Cases()) {
    for (const std::vector<std::string>& flags :
         {std::vector<std::string>{"--root", "/tmp/r2", "--config", "/tmp/c.json"},
          std::vector<std::string>{"--root=/tmp/r2", "--config=/tmp/c.json"}}) {
      std::vector<std::string> args = c.args;
      args.insert(args.end(), flags.begin(), flags.end());
      CommandLine cl;
      ASSERT_EQ(ParseError(cl, args), "") << Join(args);
      EXPECT_TRUE((cl.*c.parsed)->parsed()) << Join(args);
      EXPECT_EQ(cl.global.root, "/tmp/r2") << Join(args);
      EXPECT_EQ(cl.config_path, "/tmp/c.json") << Join(args);
    }
  }
}

TEST(CommandLineTest, GlobalFlagsBetweenASubcommandsArguments) {
  CommandLine cl;
  ASSERT_EQ(ParseError(cl, {"buildinfo", "inspect", "--root", "/tmp/r3", "image.tar"}), "");
  EXPECT_EQ(cl.global.root, "/tmp/r3");
  EXPECT_EQ(cl.buildinfo_path, "image.tar");

  CommandLine build;
  ASSERT_EQ(ParseError(build, {"build", "--root", "/tmp/r4", "-t", "x", "ctx"}), "");
  EXPECT_EQ(build.global.root, "/tmp/r4");
  EXPECT_EQ(build.build_opts.context, "ctx");
}

TEST(CommandLineTest, UnknownFlagsAreStillRefused) {
  CommandLine cl;
  EXPECT_NE(ParseError(cl, {"du", "--no-such-flag"}), "");
  CommandLine build;
  EXPECT_NE(ParseError(build, {"build", "--no-such-flag", "ctx"}), "");
}

}  // namespace
}  // namespace kiln::cli
