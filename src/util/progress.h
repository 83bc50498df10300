// Progress of work that is not a solver vertex: exporting layers, writing
// an output, pushing blobs. The producer (exporter/) reports tasks by a
// stable id; the progress display (cli/progress.h) shows them beside the
// build steps, buildx-style ("=> => pushing sha256:ab12 12.3MB / 50.0MB").
//
// A task is reported kRunning any number of times (current/total updated),
// then once kDone or kError. A sub-task names its parent (e.g. each blob of
// a push under the push itself); the display indents it.
//
// Thread-safety: a TaskReporter may be called from several threads at once;
// the display serializes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace kiln::util {

struct TaskUpdate {
  enum class State { kRunning, kDone, kError };
  std::string id;  // stable key, unique per build ("export", "push:<ref>", "push:<ref>:<digest>")
  std::string parent;  // "" = top level
  std::string name;    // what the user reads: "exporting layers", "pushing localhost:5000/app:1"
  State state = State::kRunning;
  uint64_t current = 0;  // bytes (or items) done so far
  uint64_t total = 0;    // 0 = unknown
  std::string error;     // kError: the message (already redacted)
};

// Null is allowed wherever a TaskReporter is taken: nothing is reported.
using TaskReporter = std::function<void(const TaskUpdate&)>;

// Calls `report` when it is set.
inline void Report(const TaskReporter& report, const TaskUpdate& update) {
  if (report) report(update);
}

}  // namespace kiln::util
