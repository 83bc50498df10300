// End-to-end tests of `kiln build --progress=MODE`: the tty display in a
// real terminal (a detached tmux session: the command typed by send-keys,
// the screen read back by capture-pane), and the plain, rawjson and quiet
// modes with stderr captured (not a terminal).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "build_harness.h"
#include "kiln_process.h"
#include "util/base64.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kiln::testing::BuildTest;
using kiln::testing::Describe;
using kiln::testing::RunResult;
using kiln::testing::StepState;
using kiln::testing::WriteFile;

// `name` looked up in $PATH ("" when absent).
std::string Which(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

// Single-quoted for sh.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// A tmux server of its own (its socket at `socket`, in the test's
// directory, so nothing is left behind), one session 120x40 running sh;
// killed with its server when destroyed.
class TmuxSession {
 public:
  explicit TmuxSession(fs::path socket) : tmux_(Which("tmux")), socket_(std::move(socket)) {
    KILN_CHECK(!tmux_.empty(), "tmux is not installed (see deps.txt)");
    RunResult r = Tmux(
        {"-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", "/bin/sh"});
    KILN_CHECK(r.exit_code == 0, "tmux new-session: " + Describe(r));
  }
  ~TmuxSession() {
    Tmux({"kill-server"});
    std::error_code ec;
    fs::remove(socket_, ec);
  }

  RunResult Tmux(std::vector<std::string> args) {
    args.insert(args.begin(), {"-S", socket_.string()});
    kiln::testing::RunOptions ro;
    ro.env["TERM"] = "xterm";  // the terminal tmux runs in (none; any will do)
    return kiln::testing::Run(tmux_, args, ro);
  }

  // Types `line` and Enter into the session's shell.
  void Type(const std::string& line) {
    RunResult r = Tmux({"send-keys", "-t", "t", "-l", line});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    Key("Enter");
  }

  // Presses a key ("Enter", "C-c").
  void Key(const std::string& key) {
    RunResult r = Tmux({"send-keys", "-t", "t", key});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }

  // The visible screen, one string per row (trailing blanks trimmed by tmux).
  std::string Screen() {
    RunResult r = Tmux({"capture-pane", "-p", "-t", "t"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return r.out;
  }

  // Polls the screen until it contains `text` (bounded: ten minutes, far
  // more than any build here takes; this is not a timing assertion).
  std::string WaitFor(const std::string& text) {
    std::string screen;
    for (int i = 0; i < 6000; ++i) {
      screen = Screen();
      if (screen.find(text) != std::string::npos) return screen;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "the screen never showed \"" << text << "\":\n" << screen;
    return screen;
  }

 private:
  std::string tmux_;
  fs::path socket_;
};

class ProgressTest : public BuildTest {
 protected:
  void WriteContext() {
    WriteFile(ctx() / "Dockerfile",
              "ARG REGISTRY\n"
              "FROM ${REGISTRY}/busybox:latest\n"
              "COPY a.txt /a.txt\n"
              "RUN echo progress-run-output && cat /a.txt\n");
    WriteFile(ctx() / "a.txt", "from the context\n");
  }

  std::vector<std::string> Args(const std::string& mode) {
    return {"--root",      root().string(),         "build",       "--progress=" + mode,
            "--build-arg", "REGISTRY=" + registry_, ctx().string()};
  }

  // The shell command line that runs kiln with `mode` in the tmux session,
  // then prints its exit code.
  std::string CommandLine(const std::string& mode) {
    std::string cmd = "unset KILN_ROOT DOCKER_CONFIG; " + Quote(kiln::testing::KilnBinary());
    for (const std::string& a : Args(mode)) cmd += " " + Quote(a);
    return cmd + "; echo \"EXIT\"\"=$?\"";
  }
};

// What a finished tty frame must look like on a terminal: the header, the
// steps with their durations, the export line; no escape sequence left
// over, nothing wider than the screen.
void ExpectCleanFinalFrame(const std::string& screen) {
  EXPECT_TRUE(
      std::regex_search(screen, std::regex(R"(\[\+\] Building \d+\.\ds \((\d+)/\1\) FINISHED)")))
      << screen;
  EXPECT_NE(screen.find(" => exporting: "), std::string::npos) << screen;
  EXPECT_NE(screen.find("EXIT=0"), std::string::npos) << screen;
  EXPECT_TRUE(std::regex_search(screen, std::regex(R"(\nsha256:[0-9a-f]{64}\n)"))) << screen;
  EXPECT_EQ(screen.find('\x1b'), std::string::npos) << screen;
  EXPECT_EQ(screen.find("[K"), std::string::npos) << screen;
  EXPECT_FALSE(std::regex_search(screen, std::regex(R"(\[\d*[AJ])"))) << screen;
  EXPECT_EQ(screen.find("=> => #"), std::string::npos) << "no output tail after success\n"
                                                       << screen;
  std::istringstream in(screen);
  for (std::string line; std::getline(in, line);) EXPECT_LE(line.size(), 120u) << line;
}

TEST_F(ProgressTest, TtyShowsStepsInATerminal) {
  WriteContext();
  TmuxSession tmux(dir_.path() / "tmux");
  tmux.Type(CommandLine("tty"));
  std::string screen = tmux.WaitFor("EXIT=");
  ExpectCleanFinalFrame(screen);
  EXPECT_TRUE(std::regex_search(
      screen, std::regex(R"( => \[internal\] load image [^\n]*busybox:latest[^\n]* \d+\.\ds\n)")))
      << screen;
  EXPECT_TRUE(
      std::regex_search(screen, std::regex(R"( => \[2/3\] COPY a\.txt /a\.txt +\d+\.\ds\n)")))
      << screen;
  EXPECT_TRUE(std::regex_search(
      screen, std::regex(R"( => \[3/3\] RUN echo progress-run-output && cat /a\.txt +\d+\.\ds\n)")))
      << screen;
  EXPECT_EQ(screen.find("=> CACHED"), std::string::npos) << screen;

  // Again, on a fresh screen: the last step is cached (so the steps below
  // it are not looked at).
  TmuxSession again(dir_.path() / "tmux-again");
  again.Type(CommandLine("tty"));
  screen = again.WaitFor("EXIT=");
  ExpectCleanFinalFrame(screen);
  EXPECT_TRUE(std::regex_search(
      screen,
      std::regex(R"( => CACHED \[3/3\] RUN echo progress-run-output && cat /a\.txt +0\.0s\n)")))
      << screen;
  EXPECT_EQ(screen.find("COPY a.txt"), std::string::npos) << screen;
}

TEST_F(ProgressTest, AutoIsTtyInATerminal) {
  WriteContext();
  TmuxSession tmux(dir_.path() / "tmux");
  tmux.Type(CommandLine("auto"));
  const std::string screen = tmux.WaitFor("EXIT=");
  ExpectCleanFinalFrame(screen);
  EXPECT_EQ(screen.find("#1 "), std::string::npos) << "not the plain format\n" << screen;
}

TEST_F(ProgressTest, FailedStepOutputStaysOnScreen) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo before-the-failure && exit 3\n");
  TmuxSession tmux(dir_.path() / "tmux");
  tmux.Type(CommandLine("tty"));
  const std::string screen = tmux.WaitFor("EXIT=");
  EXPECT_NE(screen.find("EXIT=1"), std::string::npos) << screen;
  EXPECT_TRUE(
      std::regex_search(screen, std::regex(R"( => ERROR \[[^\]]*\] RUN echo before-the-failure)")))
      << screen;
  EXPECT_NE(screen.find(" => => # before-the-failure"), std::string::npos) << screen;
  EXPECT_NE(screen.find("kiln: error: "), std::string::npos) << screen;
  EXPECT_EQ(screen.find("FINISHED"), std::string::npos) << screen;
  EXPECT_EQ(screen.find('\x1b'), std::string::npos) << screen;
}

// While a step runs, the live frame shows it with its latest output; ^C
// (SIGINT from the terminal) cancels the build and the display still ends
// cleanly.
TEST_F(ProgressTest, TtyShowsRunningOutputAndEndsCleanlyOnInterrupt) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo live-output-1 && echo live-output-2 && sleep 600\n");
  TmuxSession tmux(dir_.path() / "tmux");
  tmux.Type(CommandLine("tty"));
  std::string screen = tmux.WaitFor("=> => # live-output-2");
  EXPECT_TRUE(std::regex_search(screen, std::regex(R"(\[\+\] Building \d+\.\ds \(\d+/\d+\)\n)")))
      << screen;
  EXPECT_TRUE(
      std::regex_search(screen, std::regex(R"( => \[2/2\] RUN echo live-output-1 [^\n]* \d+\.\ds\n)"
                                           R"( => => # live-output-1\n => => # live-output-2\n)")))
      << screen;
  EXPECT_EQ(screen.find("FINISHED"), std::string::npos) << screen;

  tmux.Key("C-c");
  screen = tmux.WaitFor("EXIT=");
  EXPECT_EQ(screen.find("EXIT=0"), std::string::npos) << screen;
  EXPECT_NE(screen.find("kiln: error: "), std::string::npos) << screen;
  EXPECT_NE(screen.find("cancelled"), std::string::npos) << screen;
  EXPECT_EQ(screen.find("FINISHED"), std::string::npos) << screen;
  EXPECT_EQ(screen.find('\x1b'), std::string::npos) << screen;
  EXPECT_EQ(screen.find("[K"), std::string::npos) << screen;
}

TEST_F(ProgressTest, AutoIsPlainWhenStderrIsNotATerminal) {
  WriteContext();
  RunResult r =
      Kiln({"build", "--progress=auto", "--build-arg", "REGISTRY=" + registry_, ctx().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(StepState(r.err, "load image"), "DONE") << r.err;
  EXPECT_EQ(StepState(r.err, "COPY a.txt"), "DONE") << r.err;
  EXPECT_EQ(StepState(r.err, "RUN echo progress-run-output"), "DONE") << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex(R"(\n#\d+ progress-run-output\n)"))) << r.err;
  EXPECT_TRUE(std::regex_search(
      r.err, std::regex(R"(\n#- exporting: \d+ layers compressed, \d+ reused\n$)")))
      << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("[+] Building"), std::string::npos) << r.err;

  // TERM=dumb: plain even for a terminal; with stderr a pipe, plain again.
  kiln::testing::RunOptions ro;
  ro.env["TERM"] = "dumb";
  RunResult again = Kiln({"build", "--build-arg", "REGISTRY=" + registry_, ctx().string()}, ro);
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(StepState(again.err, "RUN echo progress-run-output"), "CACHED") << again.err;
}

TEST_F(ProgressTest, RawJsonLinesAreSolveStatuses) {
  WriteContext();
  RunResult r =
      Kiln({"build", "--progress=rawjson", "--build-arg", "REGISTRY=" + registry_, ctx().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  std::istringstream in(r.err);
  std::map<std::string, std::string> names;  // digest -> name
  std::map<std::string, bool> completed;     // digest -> seen completed
  std::string logs;
  int lines = 0;
  for (std::string line; std::getline(in, line);) {
    ++lines;
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    for (const auto& [key, value] : j.items()) {
      EXPECT_TRUE(key == "vertexes" || key == "statuses" || key == "logs") << line;
      EXPECT_TRUE(value.is_array()) << line;
    }
    for (const json& v : j.value("vertexes", json::array())) {
      ASSERT_TRUE(
          std::regex_match(v["digest"].get<std::string>(), std::regex("sha256:[0-9a-f]{64}")))
          << line;
      names[v["digest"]] = v["name"];
      EXPECT_TRUE(v.contains("started")) << line;
      if (v.contains("completed")) completed[v["digest"]] = true;
      EXPECT_FALSE(v.contains("error")) << line;
    }
    for (const json& s : j.value("statuses", json::array())) {
      EXPECT_TRUE(s["id"].is_string()) << line;
      EXPECT_TRUE(names.count(s["vertex"])) << "a status of a vertex shown before: " << line;
      EXPECT_TRUE(s["current"].is_number_unsigned()) << line;
      EXPECT_TRUE(s.contains("timestamp")) << line;
    }
    for (const json& l : j.value("logs", json::array())) {
      EXPECT_TRUE(names.count(l["vertex"])) << line;
      EXPECT_EQ(l["stream"], 1) << line;
      auto data = kiln::util::Base64Decode(l["data"].get<std::string>());
      ASSERT_TRUE(data.ok()) << line;
      logs += *data;
    }
  }
  EXPECT_GT(lines, 3);
  EXPECT_NE(logs.find("progress-run-output\nfrom the context\n"), std::string::npos) << logs;
  int steps = 0;
  for (const auto& [digest, name] : names) {
    EXPECT_TRUE(completed[digest]) << name << " never completed";
    if (name.find("RUN echo progress-run-output") != std::string::npos ||
        name.find("COPY a.txt") != std::string::npos ||
        name.find("load image") != std::string::npos) {
      ++steps;
    }
  }
  EXPECT_EQ(steps, 3) << r.err;
  EXPECT_EQ(r.out.size(), 72u) << r.out;  // the digest line

  // Again: every step reported cached.
  RunResult again =
      Kiln({"build", "--progress=rawjson", "--build-arg", "REGISTRY=" + registry_, ctx().string()});
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_NE(again.err.find("\"cached\":true"), std::string::npos) << again.err;
  EXPECT_EQ(again.out, r.out);
}

// A Dockerfile warning (an empty continuation line) comes before the
// display: plain text normally, a JSON line with --progress=rawjson, nothing
// with --progress=quiet.
TEST_F(ProgressTest, WarningsFollowTheMode) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\n"
            "FROM ${REGISTRY}/busybox:latest\n"
            "RUN echo one \\\n"
            "\n"
            "  two\n");
  RunResult raw =
      Kiln({"build", "--progress=rawjson", "--build-arg", "REGISTRY=" + registry_, ctx().string()});
  ASSERT_EQ(raw.exit_code, 0) << Describe(raw);
  std::istringstream in(raw.err);
  std::string first;
  std::getline(in, first);
  json j = json::parse(first, nullptr, false);
  ASSERT_TRUE(j.is_object()) << raw.err;
  ASSERT_TRUE(j.contains("warnings")) << first;
  auto text = kiln::util::Base64Decode(j["warnings"][0]["short"].get<std::string>());
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->rfind("Dockerfile:5: Empty continuation line found in: ", 0), 0u) << *text;
  for (std::string line; std::getline(in, line);) {
    EXPECT_TRUE(json::parse(line, nullptr, false).is_object()) << line;
  }
  RunResult plain =
      Kiln({"build", "--progress=plain", "--build-arg", "REGISTRY=" + registry_, ctx().string()});
  ASSERT_EQ(plain.exit_code, 0) << Describe(plain);
  EXPECT_EQ(plain.err.rfind("warning: Dockerfile:5: Empty continuation line found in: ", 0), 0u)
      << plain.err;
  RunResult quiet =
      Kiln({"build", "--progress=quiet", "--build-arg", "REGISTRY=" + registry_, ctx().string()});
  ASSERT_EQ(quiet.exit_code, 0) << Describe(quiet);
  EXPECT_EQ(quiet.err, "");
}

TEST_F(ProgressTest, QuietPrintsOnlyTheDigest) {
  WriteContext();
  RunResult r =
      Kiln({"build", "--progress=quiet", "--build-arg", "REGISTRY=" + registry_, ctx().string()});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(std::regex_match(r.out, std::regex("sha256:[0-9a-f]{64}\n"))) << r.out;
  EXPECT_EQ(r.err, "");
}

TEST_F(ProgressTest, UnknownModeIsRejected) {
  WriteContext();
  RunResult r = Kiln({"build", "--progress=fancy", ctx().string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--progress"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("fancy"), std::string::npos) << r.err;
}

}  // namespace
