// The build progress display of `kiln build --progress=MODE`, buildx-style.
// It shows the solver's steps (solver::Event) and the exporter's tasks
// (util::TaskUpdate: exporting layers, pushing) on stderr:
//
//   tty      a live frame redrawn about ten times a second: a header
//            "[+] Building 3.2s (5/7)", one line per step with its cache state
//            and duration, the last lines of each running step's output, and
//            a line per task with bytes and rate; lines fit the terminal's
//            width. Finish() draws the final frame and leaves the cursor
//            below it; a failed step's output tail stays visible.
//   plain    BuildKit's plain format: "#N name", "#N <output line>",
//            "#N DONE 0.3s", "#N CACHED", "#N ERROR: msg"; tasks as numbered
//            blocks too ("#N exporting layers", "#N DONE 0.4s").
//   quiet    nothing (errors are printed by the caller).
//   rawjson  one JSON object per line for each event, shaped like BuildKit's
//            SolveStatus: {"vertexes":[...],"statuses":[...],"logs":[...]}.
//   auto     tty when the output is a terminal and TERM is not "dumb", else
//            plain (decided when the Progress is made).
//
// Whatever the mode, it remembers the last output lines of every step so
// FailureContext can name the failing step's Dockerfile line and output.
//
// Thread-safety: Event and Task may be called from any thread, concurrently;
// the display serializes them. In tty mode a thread of its own redraws until
// Finish (or the destructor) stops it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "graph/graph.h"
#include "solver/solver.h"
#include "util/progress.h"
#include "util/status.h"

namespace kiln::cli {

enum class ProgressMode { kAuto, kTty, kPlain, kQuiet, kRawJson };

// "auto", "tty", "plain", "quiet", "rawjson"; kInvalidArgument otherwise.
Result<ProgressMode> ParseProgressMode(std::string_view text);

struct ProgressOptions {
  ProgressMode mode = ProgressMode::kAuto;
  FILE* out = stderr;  // not owned; written by the display only
  // tty: columns per line; 0 = the terminal's (TIOCGWINSZ on `out`), 80 when
  // it has none. rows: the live frame's height limit, same rules (24).
  int width = 0;
  int height = 0;
  std::chrono::milliseconds interval{100};  // tty redraw period
  // rawjson: the digest of each solver vertex, by its index in the Solve
  // list (e.g. the plan's vertex digests). A vertex without one gets a
  // digest derived from its index.
  std::vector<std::string> vertex_digests;
};

class Progress {
 public:
  explicit Progress(ProgressOptions options);
  // Stops the display as Finish does, without claiming success.
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // The mode in effect (auto resolved to tty or plain).
  ProgressMode mode() const { return mode_; }

  void Event(const solver::Event& e);
  void Task(const util::TaskUpdate& u);

  // Where the failing step is and what it printed last, for the error
  // message: "\n  Dockerfile:4\n     4 | RUN make\n  last output:\n  > ...".
  // "" when no step failed.
  std::string FailureContext(const graph::Definition& def, const std::string& dockerfile);

  // The build succeeded: prints `export_summary` (e.g. "2 layers compressed,
  // 1 reused"; "" = none) and, in tty mode, the final frame. Later events
  // are ignored. Idempotent.
  void Finish(const std::string& export_summary = "");

 private:
  enum class State { kRunning, kCached, kDone, kError };
  struct Step {
    size_t vertex = 0;
    int number = 0;  // plain: "#N"
    std::string name;
    State state = State::kRunning;
    bool started = false;
    std::chrono::steady_clock::time_point start;
    std::chrono::steady_clock::duration elapsed{};  // when not running
    std::string partial;                            // output after the last '\n'
    std::deque<std::string> tail;                   // last output lines
    std::string error;
  };
  struct TaskEntry {
    std::string id;
    std::string parent;
    std::string name;
    int number = 0;  // plain: "#N" of the top-level task
    State state = State::kRunning;
    uint64_t current = 0;
    uint64_t total = 0;
    std::chrono::steady_clock::time_point start;
    std::chrono::system_clock::time_point wall_start;
    std::chrono::steady_clock::duration elapsed{};  // when not running
    std::string error;
  };

  Step& StepOf(size_t vertex, const std::string& name);
  void Emit(const std::string& text);  // writes and flushes (caller holds mu_)
  void PlainEvent(const solver::Event& e, Step& step, const std::vector<std::string>& lines);
  void PlainTask(const util::TaskUpdate& u, TaskEntry& task, bool fresh);
  void JsonEvent(const solver::Event& e, const Step& step);
  void JsonTask(const TaskEntry& task);
  std::string VertexDigest(size_t vertex) const;
  std::string TaskDigest(const std::string& id) const;

  // tty
  std::vector<std::string> Frame(bool final, int width, int height);
  void Draw(bool final);  // caller holds mu_
  void Loop();
  void Stop(bool success, const std::string& summary);

  const ProgressOptions options_;
  const ProgressMode mode_;
  const std::chrono::steady_clock::time_point begin_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Step> steps_;              // in order of first appearance
  std::map<size_t, size_t> step_index_;  // vertex -> index in steps_
  std::vector<TaskEntry> tasks_;         // in order of first appearance
  std::map<std::string, size_t> task_index_;
  std::map<size_t, std::chrono::system_clock::time_point> wall_start_;  // rawjson
  int next_number_ = 1;
  std::optional<size_t> failed_;  // vertex of the first failed step
  std::string summary_;
  bool stopped_ = false;
  bool succeeded_ = false;
  int drawn_lines_ = 0;  // tty: lines of the last frame, the cursor below them
  std::thread thread_;
};

}  // namespace kiln::cli
