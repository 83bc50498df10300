#include "cli/progress.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/base64.h"

namespace kiln::cli {
namespace {

using namespace std::chrono_literals;
using Kind = solver::Event::Kind;

solver::Event Ev(Kind kind, size_t vertex, std::string name, std::string data = "",
                 std::chrono::milliseconds elapsed = 0ms) {
  solver::Event e{kind, vertex, std::move(name), std::move(data), {}};
  e.elapsed = elapsed;
  return e;
}

util::TaskUpdate Tu(std::string id, std::string parent, std::string name,
                    util::TaskUpdate::State state, uint64_t current, uint64_t total = 0) {
  util::TaskUpdate u;
  u.id = std::move(id);
  u.parent = std::move(parent);
  u.name = std::move(name);
  u.state = state;
  u.current = current;
  u.total = total;
  return u;
}

// A temporary file the display writes to, read back as text.
class Capture {
 public:
  Capture() : f_(std::tmpfile()) {}
  ~Capture() { std::fclose(f_); }
  FILE* file() const { return f_; }
  // Read through a descriptor of its own, so the display (flushing after
  // every write, maybe from its thread) keeps its file position.
  std::string Text() const {
    std::ifstream in("/proc/self/fd/" + std::to_string(::fileno(f_)), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  FILE* f_;
};

// A build of three steps: a cached FROM, a RUN with output, a COPY, then
// exporting layers and a push of one blob.
void ScriptedBuild(Progress& p) {
  p.Event(Ev(Kind::kCached, 0, "[1/3] FROM docker.io/library/alpine:3.19"));
  p.Event(Ev(Kind::kStarted, 1, "[2/3] RUN make"));
  p.Event(Ev(Kind::kLog, 1, "", "compiling a\ncompil"));
  p.Event(Ev(Kind::kLog, 1, "", "ing b\n"));
  p.Event(Ev(Kind::kCompleted, 1, "[2/3] RUN make", "", 1234ms));
  p.Event(Ev(Kind::kStarted, 2, "[3/3] COPY app /app"));
  p.Event(Ev(Kind::kCompleted, 2, "[3/3] COPY app /app", "", 60ms));
  using S = util::TaskUpdate::State;
  p.Task(Tu("export-layers", "", "exporting layers", S::kRunning, 0));
  p.Task(Tu("export-layers", "", "exporting layers", S::kRunning, 5000000));
  p.Task(Tu("export-layers", "", "exporting layers", S::kDone, 12300000));
  p.Task(Tu("push:r", "", "pushing 127.0.0.1:5000/app:1", S::kRunning, 0));
  p.Task(Tu("push:r:b", "push:r", "pushing sha256:ab12", S::kRunning, 1000, 10000000));
  p.Task(Tu("push:r:b", "push:r", "pushing sha256:ab12", S::kDone, 10000000, 10000000));
  p.Task(Tu("push:r", "", "pushing 127.0.0.1:5000/app:1", S::kDone, 10000000));
}

// Task durations (of #4 and #5) are measured by the display's clock: replaced by "T".
std::string MaskTaskTimes(const std::string& s) {
  static const std::regex secs(R"(( |DONE )[0-9]+\.[0-9]s( done)?$)");
  std::istringstream in(s);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("#4 ", 0) == 0 || line.rfind("#5 ", 0) == 0) {
      line = std::regex_replace(line, secs, "$1T$2");
    }
    out += line + "\n";
  }
  return out;
}

TEST(ProgressMode, ParsesTheFiveModes) {
  EXPECT_EQ(*ParseProgressMode("auto"), ProgressMode::kAuto);
  EXPECT_EQ(*ParseProgressMode("tty"), ProgressMode::kTty);
  EXPECT_EQ(*ParseProgressMode("plain"), ProgressMode::kPlain);
  EXPECT_EQ(*ParseProgressMode("quiet"), ProgressMode::kQuiet);
  EXPECT_EQ(*ParseProgressMode("rawjson"), ProgressMode::kRawJson);
  Result<ProgressMode> bad = ParseProgressMode("fancy");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "--progress fancy: unknown mode (expected auto, tty, plain, quiet or rawjson)");
}

TEST(ProgressPlain, PrintsBuildKitPlainFormat) {
  Capture cap;
  {
    ProgressOptions o;
    o.mode = ProgressMode::kPlain;
    o.out = cap.file();
    Progress p(o);
    EXPECT_EQ(p.mode(), ProgressMode::kPlain);
    ScriptedBuild(p);
    p.Finish("exporting: 2 layers compressed, 1 reused");
    p.Event(Ev(Kind::kStarted, 9, "after the end"));  // ignored
  }
  EXPECT_EQ(MaskTaskTimes(cap.Text()),
            "#1 [1/3] FROM docker.io/library/alpine:3.19\n"
            "#1 CACHED\n"
            "#2 [2/3] RUN make\n"
            "#2 compiling a\n"
            "#2 compiling b\n"
            "#2 DONE 1.2s\n"
            "#3 [3/3] COPY app /app\n"
            "#3 DONE 0.1s\n"
            "#4 exporting layers\n"
            "#4 exporting layers 12.3MB T done\n"
            "#4 DONE T\n"
            "#5 pushing 127.0.0.1:5000/app:1\n"
            "#5 pushing sha256:ab12 10.0MB / 10.0MB T done\n"
            "#5 pushing 127.0.0.1:5000/app:1 10.0MB T done\n"
            "#5 DONE T\n"
            "#- exporting: 2 layers compressed, 1 reused\n");
}

TEST(ProgressPlain, ErrorsAndFailureContext) {
  Capture cap;
  ProgressOptions o;
  o.mode = ProgressMode::kPlain;
  o.out = cap.file();
  Progress p(o);
  p.Event(Ev(Kind::kStarted, 0, "[1/1] RUN false"));
  p.Event(Ev(Kind::kLog, 0, "", "one\ntwo"));
  p.Event(Ev(Kind::kError, 0, "[1/1] RUN false", "exit code 1", 300ms));
  p.Task(Tu("push:r", "", "pushing r", util::TaskUpdate::State::kRunning, 0));
  util::TaskUpdate err = Tu("push:r", "", "pushing r", util::TaskUpdate::State::kError, 0);
  err.error = "unauthorized";
  p.Task(err);
  EXPECT_EQ(cap.Text(),
            "#1 [1/1] RUN false\n"
            "#1 one\n"
            "#1 two\n"
            "#1 ERROR: exit code 1\n"
            "#2 pushing r\n"
            "#2 ERROR: unauthorized\n");

  // Vertex 0's Dockerfile line and its last output (the partial line too).
  graph::SourceOp src;
  src.identifier = "docker-image://docker.io/library/alpine:3.19";
  graph::Constraints c;
  c.description[std::string(graph::kDescriptionLocation)] = "Dockerfile:2";
  graph::Definition def;
  def.vertices.push_back(graph::Source(src, c).vertex);
  EXPECT_EQ(p.FailureContext(def, "FROM alpine\nRUN false\n"),
            "\n  Dockerfile:2\n     2 | RUN false\n  last output:\n  > one\n  > two");
  EXPECT_EQ(p.FailureContext(graph::Definition{}, ""), "") << "a vertex the definition lacks";
}

// Guards issue 15 failure 10a: a RUN whose output ends without a newline
// (`printf done`) lost that last line in --progress plain.
TEST(ProgressPlain, PrintsTheLastLineWithoutANewline) {
  Capture cap;
  ProgressOptions o;
  o.mode = ProgressMode::kPlain;
  o.out = cap.file();
  Progress p(o);
  p.Event(Ev(Kind::kStarted, 0, "[1/2] RUN printf 'a\\nb'"));
  p.Event(Ev(Kind::kLog, 0, "", "a\nb"));
  p.Event(Ev(Kind::kCompleted, 0, "", "", 100ms));
  p.Event(Ev(Kind::kStarted, 1, "[2/2] RUN printf x"));
  p.Event(Ev(Kind::kLog, 1, "", "x"));
  p.Event(Ev(Kind::kCompleted, 1, "", "", 100ms));
  EXPECT_EQ(cap.Text(),
            "#1 [1/2] RUN printf 'a\\nb'\n"
            "#1 a\n"
            "#1 b\n"
            "#1 DONE 0.1s\n"
            "#2 [2/2] RUN printf x\n"
            "#2 x\n"
            "#2 DONE 0.1s\n");
}

TEST(ProgressPlain, FailureContextKeepsTheLastTenLines) {
  Capture cap;
  ProgressOptions o;
  o.mode = ProgressMode::kQuiet;
  o.out = cap.file();
  Progress p(o);
  graph::Definition def;
  graph::SourceOp src;
  src.identifier = "docker-image://docker.io/library/alpine:3.19";
  def.vertices.push_back(graph::Source(src, {}).vertex);
  EXPECT_EQ(p.FailureContext(def, ""), "") << "nothing failed";
  p.Event(Ev(Kind::kStarted, 0, "[1/1] RUN seq 12"));
  std::string out;
  for (int i = 1; i <= 12; ++i) out += std::to_string(i) + "\n";
  p.Event(Ev(Kind::kLog, 0, "", out));
  p.Event(Ev(Kind::kError, 0, "[1/1] RUN seq 12", "exit code 1", 1ms));
  std::string want = "\n  last output:";
  for (int i = 3; i <= 12; ++i) want += "\n  > " + std::to_string(i);
  EXPECT_EQ(p.FailureContext(def, ""), want);
  EXPECT_EQ(cap.Text(), "");
}

TEST(ProgressQuiet, PrintsNothing) {
  Capture cap;
  {
    ProgressOptions o;
    o.mode = ProgressMode::kQuiet;
    o.out = cap.file();
    Progress p(o);
    ScriptedBuild(p);
    p.Event(Ev(Kind::kStarted, 7, "[x] RUN false"));
    p.Event(Ev(Kind::kError, 7, "[x] RUN false", "exit code 2", 10ms));
    p.Finish("exporting: 1 layers compressed, 0 reused");
  }
  EXPECT_EQ(cap.Text(), "");
}

TEST(ProgressRawJson, OneSolveStatusPerLine) {
  Capture cap;
  {
    ProgressOptions o;
    o.mode = ProgressMode::kRawJson;
    o.out = cap.file();
    o.vertex_digests = {"sha256:" + std::string(64, 'a'), "sha256:" + std::string(64, 'b'),
                        "sha256:" + std::string(64, 'c')};
    Progress p(o);
    ScriptedBuild(p);
    p.Finish("exporting: 1 layers compressed, 0 reused");
  }
  std::vector<nlohmann::json> lines;
  std::istringstream in(cap.Text());
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    ASSERT_TRUE(j.is_object()) << line;
    lines.push_back(j);
  }
  // 7 events and 7 task updates; Finish adds nothing.
  ASSERT_EQ(lines.size(), 14u);
  const std::regex go_time(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z)");
  auto is_time = [&](const nlohmann::json& v) {
    return v.is_string() && std::regex_match(v.get<std::string>(), go_time);
  };

  const nlohmann::json& cached = lines[0]["vertexes"][0];
  EXPECT_EQ(cached["digest"], "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(cached["name"], "[1/3] FROM docker.io/library/alpine:3.19");
  EXPECT_EQ(cached["cached"], true);
  EXPECT_TRUE(is_time(cached["started"]));
  EXPECT_TRUE(is_time(cached["completed"]));

  const nlohmann::json& started = lines[1]["vertexes"][0];
  EXPECT_EQ(started["digest"], "sha256:" + std::string(64, 'b'));
  EXPECT_TRUE(is_time(started["started"]));
  EXPECT_FALSE(started.contains("completed"));
  EXPECT_FALSE(started.contains("cached"));

  const nlohmann::json& log = lines[2]["logs"][0];
  EXPECT_EQ(log["vertex"], "sha256:" + std::string(64, 'b'));
  EXPECT_EQ(log["stream"], 1);
  EXPECT_EQ(*util::Base64Decode(log["data"].get<std::string>()), "compiling a\ncompil");
  EXPECT_TRUE(is_time(log["timestamp"]));

  const nlohmann::json& done = lines[4]["vertexes"][0];
  EXPECT_EQ(done["name"], "[2/3] RUN make");
  EXPECT_EQ(done["started"], started["started"]);
  EXPECT_TRUE(is_time(done["completed"]));
  EXPECT_FALSE(done.contains("error"));

  // exporting layers, done: a vertex of its own and its status.
  const nlohmann::json& export_done = lines[9];
  const nlohmann::json& ev = export_done["vertexes"][0];
  const nlohmann::json& es = export_done["statuses"][0];
  EXPECT_EQ(ev["name"], "exporting layers");
  EXPECT_TRUE(is_time(ev["completed"]));
  EXPECT_EQ(es["id"], "export-layers");
  EXPECT_EQ(es["vertex"], ev["digest"]);
  EXPECT_EQ(es["current"], 12300000);
  EXPECT_FALSE(es.contains("total"));
  EXPECT_TRUE(is_time(es["timestamp"]));
  EXPECT_TRUE(is_time(es["started"]));

  // A pushed blob: a status under its push's vertex, with a total.
  const nlohmann::json& push = lines[10]["vertexes"][0];
  const nlohmann::json& blob = lines[12];
  EXPECT_FALSE(blob.contains("vertexes"));
  EXPECT_EQ(blob["statuses"][0]["id"], "push:r:b");
  EXPECT_EQ(blob["statuses"][0]["vertex"], push["digest"]);
  EXPECT_EQ(blob["statuses"][0]["total"], 10000000);
  EXPECT_EQ(blob["statuses"][0]["current"], 10000000);
  EXPECT_TRUE(is_time(blob["statuses"][0]["completed"]));
}

// Applies the display's output to a screen of `width` columns as a terminal
// does (the escapes the display uses: CR, LF, ESC[nA, ESC[K, ESC[J) and
// returns the screen's lines; fails on any other control byte.
std::vector<std::string> Screen(const std::string& out, size_t width) {
  std::vector<std::string> rows(1);
  size_t row = 0, col = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (c == '\r') {
      col = 0;
    } else if (c == '\n') {
      ++row;
      col = 0;
      if (row == rows.size()) rows.emplace_back();
    } else if (c == '\x1b') {
      EXPECT_EQ(out[i + 1], '[') << "at " << i;
      size_t j = i + 2;
      int n = 0;
      while (std::isdigit(static_cast<unsigned char>(out[j]))) n = n * 10 + (out[j++] - '0');
      switch (out[j]) {
        case 'A':
          row -= std::min<size_t>(row, static_cast<size_t>(n == 0 ? 1 : n));
          break;
        case 'K':
          rows[row].resize(std::min(rows[row].size(), col));
          break;
        case 'J':
          rows[row].resize(std::min(rows[row].size(), col));
          rows.resize(row + 1);
          break;
        default:
          ADD_FAILURE() << "unexpected escape " << out.substr(i, j - i + 1);
      }
      i = j;
    } else {
      EXPECT_GE(static_cast<unsigned char>(c), 0x20) << "control byte at " << i;
      EXPECT_LT(col, width) << "a line wider than the screen: " << rows[row];
      if (rows[row].size() <= col) rows[row].resize(col + 1, ' ');
      rows[row][col++] = c;
    }
  }
  while (!rows.empty() && rows.back().empty()) rows.pop_back();
  return rows;
}

std::string Join(const std::vector<std::string>& rows) {
  std::string s;
  for (const std::string& r : rows) s += r + "\n";
  return s;
}

TEST(ProgressTty, FinalFrameFitsTheWidth) {
  Capture cap;
  {
    ProgressOptions o;
    o.mode = ProgressMode::kTty;
    o.out = cap.file();
    o.width = 60;
    o.height = 30;
    o.interval = 1h;  // one live frame at the start, then the final one
    Progress p(o);
    p.Event(Ev(Kind::kStarted, 3,
               "[0/3] RUN a very long command line that cannot fit in sixty columns at all"));
    p.Event(Ev(Kind::kCompleted, 3, "", "", 2000ms));
    ScriptedBuild(p);
    p.Finish("exporting: 2 layers compressed, 1 reused");
  }
  std::vector<std::string> screen = Screen(cap.Text(), 60);
  ASSERT_FALSE(screen.empty());
  EXPECT_TRUE(
      std::regex_match(screen[0], std::regex(R"(\[\+\] Building \d+\.\ds \(6/6\) FINISHED)")))
      << screen[0];
  screen.erase(screen.begin());
  // A task's bytes, rate and duration are right-aligned; the rate and the
  // duration come from the display's clock: masked.
  for (std::string& r : screen) {
    if (r.find("pushing") != std::string::npos || r.find("exporting layers") != std::string::npos) {
      EXPECT_EQ(r.size(), 59u) << r;
      r = std::regex_replace(r, std::regex(R"( [0-9.]+[kMG]?B/s)"), "");
      r = std::regex_replace(r, std::regex(R"(  +([0-9].*B)  [0-9]+\.[0-9]s$)"), " | $1 | T");
    }
  }
  // Lines of 59 columns (the 60th stays empty), durations right-aligned.
  EXPECT_EQ(Join(screen),
            " => [0/3] RUN a very long command line that cannot fit 2.0s\n"
            " => CACHED [1/3] FROM docker.io/library/alpine:3.19    0.0s\n"
            " => [2/3] RUN make                                     1.2s\n"
            " => [3/3] COPY app /app                                0.1s\n"
            " => exporting layers | 12.3MB | T\n"
            " => pushing 127.0.0.1:5000/app:1 | 10.0MB | T\n"
            " => => pushing sha256:ab12 | 10.0MB / 10.0MB | T\n"
            " => exporting: 2 layers compressed, 1 reused\n");
  // Every line of every frame fits: the last column stays empty.
  std::istringstream in(cap.Text());
  for (std::string line; std::getline(in, line);) {
    line = std::regex_replace(line, std::regex("\x1b\\[[0-9]*[AKJ]|\r"), "");
    EXPECT_LE(line.size(), 59u) << line;
  }
}

TEST(ProgressTty, LiveFrameShowsRunningStepOutputTail) {
  Capture cap;
  ProgressOptions o;
  o.mode = ProgressMode::kTty;
  o.out = cap.file();
  o.width = 80;
  o.height = 30;
  o.interval = 10ms;
  Progress p(o);
  p.Event(Ev(Kind::kCached, 0, "[1/2] FROM alpine"));
  p.Event(Ev(Kind::kStarted, 1, "[2/2] RUN make"));
  std::string out;
  for (int i = 1; i <= 8; ++i) out += "line " + std::to_string(i) + "\n";
  out += "\x1b[31mred\x1b[0m\tpartial";
  p.Event(Ev(Kind::kLog, 1, "", out));
  // Wait (bounded) for a frame drawn after the output arrived.
  std::vector<std::string> screen;
  for (int i = 0; i < 1000; ++i) {
    screen = Screen(cap.Text(), 80);
    if (Join(screen).find("partial") != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  const std::string live = Join(screen);
  EXPECT_NE(live.find(" => CACHED [1/2] FROM alpine"), std::string::npos) << live;
  EXPECT_TRUE(std::regex_search(live, std::regex(R"( => \[2/2\] RUN make +\d+\.\ds\n)"))) << live;
  // The last six lines of output, escapes removed; older lines scrolled off.
  EXPECT_NE(live.find(" => => # line 4\n => => # line 5\n => => # line 6\n => => # line 7\n"
                      " => => # line 8\n => => # red partial\n"),
            std::string::npos)
      << live;
  EXPECT_EQ(live.find("line 3"), std::string::npos) << live;
  EXPECT_TRUE(std::regex_search(live, std::regex(R"(^\[\+\] Building \d+\.\ds \(1/2\)\n)")))
      << live;

  p.Event(Ev(Kind::kCompleted, 1, "[2/2] RUN make", "", 500ms));
  p.Finish();
  const std::string final_screen = Join(Screen(cap.Text(), 80));
  EXPECT_EQ(final_screen.find("=> => #"), std::string::npos) << final_screen;
  EXPECT_NE(final_screen.find("(2/2) FINISHED"), std::string::npos) << final_screen;
  EXPECT_TRUE(std::regex_search(final_screen, std::regex(R"( => \[2/2\] RUN make +0\.5s\n$)")))
      << final_screen;
}

TEST(ProgressTty, FailedStepKeepsItsOutputVisible) {
  Capture cap;
  {
    ProgressOptions o;
    o.mode = ProgressMode::kTty;
    o.out = cap.file();
    o.width = 50;
    o.height = 20;
    o.interval = 1h;
    Progress p(o);
    p.Event(Ev(Kind::kStarted, 0, "[1/2] RUN ./configure"));
    p.Event(Ev(Kind::kStarted, 1, "[1/2] RUN make"));
    p.Event(Ev(Kind::kLog, 1, "", "cc -c a.c\na.c:1: error: oops\n"));
    p.Event(Ev(Kind::kError, 1, "[1/2] RUN make", "exit code 2", 700ms));
  }  // destroyed without Finish: the build failed
  std::vector<std::string> screen = Screen(cap.Text(), 50);
  ASSERT_EQ(screen.size(), 5u) << Join(screen);
  EXPECT_TRUE(std::regex_match(screen[0], std::regex(R"(\[\+\] Building \d+\.\ds \(1/2\))")))
      << screen[0];
  EXPECT_TRUE(
      std::regex_match(screen[1], std::regex(R"( => CANCELED \[1/2\] RUN \./configure +\d+\.\ds)")))
      << screen[1];
  EXPECT_EQ(screen[2], " => ERROR [1/2] RUN make                     0.7s");
  EXPECT_EQ(screen[3], " => => # cc -c a.c");
  EXPECT_EQ(screen[4], " => => # a.c:1: error: oops");
}

TEST(ProgressTty, LiveFrameIsCutToTheScreenHeight) {
  Capture cap;
  ProgressOptions o;
  o.mode = ProgressMode::kTty;
  o.out = cap.file();
  o.width = 40;
  o.height = 6;
  o.interval = 10ms;
  Progress p(o);
  for (size_t v = 0; v < 10; ++v) p.Event(Ev(Kind::kCached, v, "step " + std::to_string(v)));
  std::vector<std::string> screen;
  for (int i = 0; i < 1000; ++i) {
    screen = Screen(cap.Text(), 40);
    if (Join(screen).find("step 9") != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  // Header plus the newest four lines: five rows, so the frame can be redrawn in place.
  ASSERT_EQ(screen.size(), 5u) << Join(screen);
  EXPECT_EQ(screen[1].substr(0, 18), " => CACHED step 6 ");
  EXPECT_EQ(screen[4].substr(0, 18), " => CACHED step 9 ");
  p.Finish();
  screen = Screen(cap.Text(), 40);
  ASSERT_EQ(screen.size(), 11u) << Join(screen);  // the final frame shows every step
  EXPECT_EQ(screen[1].substr(0, 18), " => CACHED step 0 ");
}

// auto: tty on a terminal unless TERM=dumb, plain on anything else.
TEST(ProgressAuto, PicksTtyOnATerminalOnly) {
  Capture cap;
  ProgressOptions file_opts;
  file_opts.out = cap.file();
  EXPECT_EQ(Progress(file_opts).mode(), ProgressMode::kPlain);

  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  FILE* tty = std::fopen(::ptsname(master), "w");
  ASSERT_NE(tty, nullptr);
  const char* old_term = std::getenv("TERM");
  const std::string saved = old_term ? old_term : "";
  ProgressOptions tty_opts;
  tty_opts.out = tty;
  tty_opts.interval = 1h;
  ::setenv("TERM", "xterm", 1);
  EXPECT_EQ(Progress(tty_opts).mode(), ProgressMode::kTty);
  ::setenv("TERM", "dumb", 1);
  EXPECT_EQ(Progress(tty_opts).mode(), ProgressMode::kPlain);
  if (old_term) {
    ::setenv("TERM", saved.c_str(), 1);
  } else {
    ::unsetenv("TERM");
  }
  std::fclose(tty);
  ::close(master);
}

}  // namespace
}  // namespace kiln::cli
