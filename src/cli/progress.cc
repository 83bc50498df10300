#include "cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/base64.h"
#include "util/digest.h"

namespace kiln::cli {
namespace {

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

constexpr size_t kFailureTailLines = 10;  // kept per step for FailureContext
constexpr size_t kLiveTailLines = 6;      // shown under a running step (tty)

std::string Seconds(Clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", std::chrono::duration<double>(d).count());
  return buf;
}

// Decimal units without a space, as buildx shows sizes: "512B", "3.4kB", "12.3MB".
std::string Bytes(uint64_t n) {
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  size_t u = 0;
  while (v >= 1000 && u + 1 < std::size(kUnits)) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%s", v, kUnits[u]);
  }
  return buf;
}

// "3.4MB / 10.0MB" or "3.4MB" when the total is unknown; "" for nothing.
std::string Amount(uint64_t current, uint64_t total) {
  if (total > 0) return Bytes(current) + " / " + Bytes(total);
  if (current > 0) return Bytes(current);
  return "";
}

// Go's time.Time JSON form (RFC 3339 with nanoseconds, trailing zeros cut), UTC.
std::string GoTime(WallClock::time_point t) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(ns / 1000000000);
  long frac = static_cast<long>(ns % 1000000000);
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  if (frac != 0) {
    char f[16];
    std::snprintf(f, sizeof f, ".%09ld", frac);
    std::string fs = f;
    while (fs.back() == '0') fs.pop_back();
    out += fs;
  }
  return out + "Z";
}

// A line of a step's output made safe for a redrawn terminal frame: escape
// sequences and control characters dropped, only the text after the last
// carriage return (a progress bar's latest state), tabs as spaces.
std::string Printable(std::string_view line) {
  if (size_t cr = line.rfind('\r'); cr != std::string_view::npos) line.remove_prefix(cr + 1);
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if (c == 0x1b) {
      if (i + 1 < line.size() && line[i + 1] == '[') {  // CSI: ends at a byte 0x40-0x7e
        i += 2;
        while (i < line.size() && !(line[i] >= 0x40 && line[i] <= 0x7e)) ++i;
      } else if (i + 1 < line.size() && line[i + 1] == ']') {  // OSC: ends at BEL or ESC '\'
        i += 2;
        while (i < line.size() && line[i] != '\a' && line[i] != 0x1b) ++i;
        if (i < line.size() && line[i] == 0x1b) ++i;
      } else {
        ++i;  // a two-byte sequence
      }
      continue;
    }
    if (c == '\t') {
      out += ' ';
    } else if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Columns of UTF-8 text (one per code point).
size_t Columns(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  return n;
}

// The longest prefix of `s` that takes at most `cols` columns.
std::string CutColumns(std::string_view s, size_t cols) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) {
      if (n == cols) return std::string(s.substr(0, i));
      ++n;
    }
  }
  return std::string(s);
}

// `left` and `right` on one line of `width` columns: right-aligned `right`,
// `left` cut to fit. The last column stays empty so a full line never wraps.
std::string Fit(const std::string& left, const std::string& right, int width) {
  const size_t cols = static_cast<size_t>(std::max(width - 1, 1));
  if (right.empty()) return CutColumns(left, cols);
  const size_t rcols = Columns(right);
  if (rcols + 1 >= cols) return CutColumns(left, cols);
  const size_t lcols_max = cols - rcols - 1;
  std::string l = CutColumns(left, lcols_max);
  const size_t pad = cols - Columns(l) - rcols;
  return l + std::string(pad, ' ') + right;
}

ProgressMode Resolve(ProgressMode mode, FILE* out) {
  if (mode != ProgressMode::kAuto) return mode;
  const char* term = std::getenv("TERM");
  const bool dumb = term != nullptr && std::string_view(term) == "dumb";
  return ::isatty(::fileno(out)) && !dumb ? ProgressMode::kTty : ProgressMode::kPlain;
}

}  // namespace

Result<ProgressMode> ParseProgressMode(std::string_view text) {
  if (text == "auto") return ProgressMode::kAuto;
  if (text == "tty") return ProgressMode::kTty;
  if (text == "plain") return ProgressMode::kPlain;
  if (text == "quiet") return ProgressMode::kQuiet;
  if (text == "rawjson") return ProgressMode::kRawJson;
  return Status::InvalidArgument("--progress " + std::string(text) +
                                 ": unknown mode (expected auto, tty, plain, quiet or rawjson)");
}

Progress::Progress(ProgressOptions options)
    : options_(std::move(options)),
      mode_(Resolve(options_.mode, options_.out)),
      begin_(Clock::now()) {
  if (mode_ == ProgressMode::kTty) thread_ = std::thread([this] { Loop(); });
}

Progress::~Progress() { Stop(false, ""); }

void Progress::Finish(const std::string& export_summary) { Stop(true, export_summary); }

void Progress::Stop(bool success, const std::string& summary) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    succeeded_ = success;
    summary_ = summary;
    if (mode_ == ProgressMode::kTty) {
      Draw(true);
    } else if (mode_ == ProgressMode::kPlain && !summary.empty()) {
      Emit("#- " + summary + "\n");
    }
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Progress::Emit(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), options_.out);
  std::fflush(options_.out);
}

Progress::Step& Progress::StepOf(size_t vertex, const std::string& name) {
  auto [it, fresh] = step_index_.try_emplace(vertex, steps_.size());
  if (fresh) {
    Step s;
    s.vertex = vertex;
    s.number = next_number_++;
    s.name = name;
    s.start = Clock::now();
    steps_.push_back(std::move(s));
  }
  return steps_[it->second];
}

void Progress::Event(const solver::Event& e) {
  std::lock_guard<std::mutex> lock(mu_);
  Step& step = StepOf(e.vertex, e.name);
  if (!e.name.empty()) step.name = e.name;
  std::vector<std::string> lines;  // complete output lines of a kLog
  auto keep = [&step](const std::string& line) {
    step.tail.push_back(line);
    if (step.tail.size() > kFailureTailLines) step.tail.pop_front();
  };
  switch (e.kind) {
    case solver::Event::Kind::kStarted:
      step.started = true;
      step.start = Clock::now();
      step.state = State::kRunning;
      break;
    case solver::Event::Kind::kCached:
      step.state = State::kCached;
      step.elapsed = {};
      break;
    case solver::Event::Kind::kLog: {
      step.partial += e.data;
      size_t nl;
      while ((nl = step.partial.find('\n')) != std::string::npos) {
        lines.push_back(step.partial.substr(0, nl));
        step.partial.erase(0, nl + 1);
        keep(lines.back());
      }
      break;
    }
    case solver::Event::Kind::kCompleted:
      // Output that ended without a newline is still a line.
      if (!step.partial.empty()) {
        lines.push_back(std::move(step.partial));
        step.partial.clear();
        keep(lines.back());
      }
      step.state = State::kDone;
      step.elapsed = e.elapsed;
      break;
    case solver::Event::Kind::kError:
      if (!step.partial.empty()) {
        lines.push_back(std::move(step.partial));
        step.partial.clear();
        keep(lines.back());
      }
      step.state = State::kError;
      step.elapsed = e.elapsed;
      step.error = e.data;
      if (!failed_) failed_ = e.vertex;
      break;
  }
  if (stopped_) return;
  switch (mode_) {
    case ProgressMode::kPlain:
      PlainEvent(e, step, lines);
      break;
    case ProgressMode::kRawJson:
      JsonEvent(e, step);
      break;
    default:
      break;  // tty: the next frame shows it; quiet: nothing
  }
}

void Progress::PlainEvent(const solver::Event& e, Step& step,
                          const std::vector<std::string>& lines) {
  const std::string n = "#" + std::to_string(step.number);
  // Complete lines of a log, or the unterminated last line of a step that
  // ends (kCompleted, kError), come before the event's own line.
  std::string out;
  for (const std::string& l : lines) out += n + " " + l + "\n";
  switch (e.kind) {
    case solver::Event::Kind::kStarted:
      Emit(n + " " + e.name + "\n");
      break;
    case solver::Event::Kind::kCached:
      Emit(n + " " + e.name + "\n" + n + " CACHED\n");
      break;
    case solver::Event::Kind::kLog:
      if (!out.empty()) Emit(out);
      break;
    case solver::Event::Kind::kCompleted:
      Emit(out + n + " DONE " + Seconds(e.elapsed) + "\n");
      break;
    case solver::Event::Kind::kError:
      Emit(out + n + " ERROR: " + e.data + "\n");
      break;
  }
}

std::string Progress::VertexDigest(size_t vertex) const {
  if (vertex < options_.vertex_digests.size() && !options_.vertex_digests[vertex].empty()) {
    return options_.vertex_digests[vertex];
  }
  return util::Sha256Of("kiln-vertex:" + std::to_string(vertex)).str();
}

std::string Progress::TaskDigest(const std::string& id) const {
  return util::Sha256Of("kiln-task:" + id).str();
}

void Progress::JsonEvent(const solver::Event& e, const Step& step) {
  // Fields in the order of BuildKit's client.SolveStatus structs.
  using Json = nlohmann::ordered_json;
  const WallClock::time_point now = WallClock::now();
  const std::string digest = VertexDigest(e.vertex);
  Json status = Json::object();
  if (e.kind == solver::Event::Kind::kLog) {
    Json log = Json::object();
    log["vertex"] = digest;
    log["stream"] = 1;
    log["data"] = util::Base64Encode(e.data);
    log["timestamp"] = GoTime(now);
    status["logs"] = Json::array({log});
  } else {
    Json v = Json::object();
    v["digest"] = digest;
    v["name"] = step.name;
    WallClock::time_point started = now;
    if (e.kind == solver::Event::Kind::kStarted) {
      wall_start_[e.vertex] = now;
    } else if (auto it = wall_start_.find(e.vertex); it != wall_start_.end()) {
      started = it->second;
    } else {
      started = now - std::chrono::duration_cast<WallClock::duration>(e.elapsed);
    }
    v["started"] = GoTime(started);
    if (e.kind != solver::Event::Kind::kStarted) v["completed"] = GoTime(now);
    if (e.kind == solver::Event::Kind::kCached) v["cached"] = true;
    if (e.kind == solver::Event::Kind::kError) v["error"] = e.data;
    status["vertexes"] = Json::array({v});
  }
  Emit(status.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
}

void Progress::Task(const util::TaskUpdate& u) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = task_index_.try_emplace(u.id, tasks_.size());
  if (fresh) {
    TaskEntry t;
    t.id = u.id;
    t.parent = task_index_.count(u.parent) ? u.parent : "";
    t.start = Clock::now();
    t.wall_start = WallClock::now();
    if (t.parent.empty()) t.number = next_number_++;
    tasks_.push_back(std::move(t));
  }
  TaskEntry& task = tasks_[it->second];
  if (!u.name.empty()) task.name = u.name;
  task.current = u.current;
  task.total = u.total;
  if (task.state == State::kRunning) {
    if (u.state == util::TaskUpdate::State::kDone) task.state = State::kDone;
    if (u.state == util::TaskUpdate::State::kError) task.state = State::kError;
    if (task.state != State::kRunning) task.elapsed = Clock::now() - task.start;
  }
  task.error = u.error;
  if (stopped_) return;
  if (mode_ == ProgressMode::kPlain) PlainTask(u, task, fresh);
  if (mode_ == ProgressMode::kRawJson) JsonTask(task);
}

void Progress::PlainTask(const util::TaskUpdate& u, TaskEntry& task, bool fresh) {
  const bool top = task.parent.empty();
  const int number = top ? task.number : tasks_[task_index_.at(task.parent)].number;
  const std::string n = "#" + std::to_string(number);
  if (top && fresh) Emit(n + " " + task.name + "\n");
  if (u.state == util::TaskUpdate::State::kRunning) return;
  const std::string amount = Amount(task.current, task.total);
  if (u.state == util::TaskUpdate::State::kError) {
    Emit(top ? n + " ERROR: " + task.error + "\n"
             : n + " " + task.name + " ERROR: " + task.error + "\n");
    return;
  }
  std::string out;
  if (!top || !amount.empty()) {
    out += n + " " + task.name + (amount.empty() ? "" : " " + amount) + " " +
           Seconds(task.elapsed) + " done\n";
  }
  if (top) out += n + " DONE " + Seconds(task.elapsed) + "\n";
  Emit(out);
}

void Progress::JsonTask(const TaskEntry& task) {
  using Json = nlohmann::ordered_json;
  const WallClock::time_point now = WallClock::now();
  const bool top = task.parent.empty();
  const std::string digest = TaskDigest(top ? task.id : task.parent);
  const bool over = task.state != State::kRunning;
  Json status = Json::object();
  if (top) {
    Json v = Json::object();
    v["digest"] = digest;
    v["name"] = task.name;
    v["started"] = GoTime(task.wall_start);
    if (over) v["completed"] = GoTime(now);
    if (task.state == State::kError) v["error"] = task.error;
    status["vertexes"] = Json::array({v});
  }
  Json s = Json::object();
  s["id"] = task.id;
  s["vertex"] = digest;
  s["name"] = task.name;
  if (task.total > 0) s["total"] = task.total;
  s["current"] = task.current;
  s["timestamp"] = GoTime(now);
  s["started"] = GoTime(task.wall_start);
  if (over) s["completed"] = GoTime(now);
  status["statuses"] = Json::array({s});
  Emit(status.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
}

std::string Progress::FailureContext(const graph::Definition& def, const std::string& dockerfile) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failed_ || *failed_ >= def.vertices.size()) return "";
  std::string out;
  const auto& desc = def.vertices[*failed_]->constraints.description;
  if (auto it = desc.find(std::string(graph::kDescriptionLocation)); it != desc.end()) {
    out += "\n  " + it->second;
    const size_t colon = it->second.rfind(':');
    const int line = std::atoi(it->second.c_str() + colon + 1);
    std::istringstream in(dockerfile);
    std::string text;
    for (int i = 1; std::getline(in, text); ++i) {
      if (i == line) {
        char num[16];
        std::snprintf(num, sizeof num, "%6d", line);
        out += "\n" + std::string(num) + " | " + text;
        break;
      }
    }
  }
  const Step& step = steps_[step_index_.at(*failed_)];
  if (!step.tail.empty()) {
    out += "\n  last output:";
    for (const std::string& l : step.tail) out += "\n  > " + l;
  }
  return out;
}

std::vector<std::string> Progress::Frame(bool final, int width, int height) {
  const Clock::time_point now = Clock::now();
  std::vector<std::string> lines;
  auto tail_lines = [&](const Step& s) {
    std::vector<std::string> shown(s.tail.begin(), s.tail.end());
    if (!s.partial.empty()) shown.push_back(s.partial);
    const size_t from = shown.size() > kLiveTailLines ? shown.size() - kLiveTailLines : 0;
    for (size_t i = from; i < shown.size(); ++i) {
      lines.push_back(Fit(" => => # " + Printable(shown[i]), "", width));
    }
  };
  int finished = 0, total = 0;
  for (const Step& s : steps_) {
    ++total;
    std::string left = " => ";
    std::string right;
    switch (s.state) {
      case State::kCached:
        ++finished;
        left += "CACHED " + s.name;
        right = Seconds(s.elapsed);
        break;
      case State::kDone:
        ++finished;
        left += s.name;
        right = Seconds(s.elapsed);
        break;
      case State::kError:
        ++finished;
        left += "ERROR " + s.name;
        right = Seconds(s.elapsed);
        break;
      case State::kRunning:
        if (final && !succeeded_) left += "CANCELED ";
        left += s.name;
        right = Seconds(now - s.start);
        break;
    }
    lines.push_back(Fit(left, right, width));
    if (s.state == State::kError || (s.state == State::kRunning && !final)) tail_lines(s);
  }
  auto task_line = [&](const TaskEntry& t, const std::string& prefix) {
    const Clock::duration d = t.state == State::kRunning ? now - t.start : t.elapsed;
    std::string left = prefix + (t.state == State::kError ? "ERROR " : "") + t.name;
    if (final && t.state == State::kRunning && !succeeded_) left = prefix + "CANCELED " + t.name;
    std::string right = Amount(t.current, t.total);
    const double secs = std::chrono::duration<double>(d).count();
    if (t.current > 0 && t.total == 0 && secs > 0.05) {
      right += " " + Bytes(static_cast<uint64_t>(static_cast<double>(t.current) / secs)) + "/s";
    }
    right += (right.empty() ? "" : "  ") + Seconds(d);
    lines.push_back(Fit(left, right, width));
    if (t.state == State::kError && !t.error.empty()) {
      lines.push_back(Fit(prefix + "=> # " + Printable(t.error), "", width));
    }
  };
  for (const TaskEntry& t : tasks_) {
    if (!t.parent.empty()) continue;
    ++total;
    if (t.state != State::kRunning) ++finished;
    task_line(t, " => ");
    for (const TaskEntry& c : tasks_) {
      if (c.parent == t.id) task_line(c, " => => ");
    }
  }
  if (final && !summary_.empty()) lines.push_back(Fit(" => " + summary_, "", width));
  char head[96];
  std::snprintf(head, sizeof head, "[+] Building %.1fs (%d/%d)%s",
                std::chrono::duration<double>(now - begin_).count(), finished, total,
                final && succeeded_ ? " FINISHED" : "");
  lines.insert(lines.begin(), Fit(head, "", width));
  // A live frame must fit the screen to be redrawn in place: keep the
  // header and the newest lines.
  const size_t max_lines = static_cast<size_t>(std::max(height - 1, 2));
  if (!final && lines.size() > max_lines) {
    lines.erase(lines.begin() + 1, lines.begin() + 1 + (lines.size() - max_lines));
  }
  return lines;
}

void Progress::Draw(bool final) {
  int width = options_.width, height = options_.height;
  if (width <= 0 || height <= 0) {
    struct winsize ws {};
    const bool known = ::ioctl(::fileno(options_.out), TIOCGWINSZ, &ws) == 0;
    if (width <= 0) width = known && ws.ws_col > 0 ? ws.ws_col : 80;
    if (height <= 0) height = known && ws.ws_row > 0 ? ws.ws_row : 24;
  }
  width = std::max(width, 20);
  const std::vector<std::string> lines = Frame(final, width, height);
  std::string out;
  // The cursor is at the start of the line below the last frame: go back up
  // to its first line, overwrite each line, clear what is left below.
  if (drawn_lines_ > 0) out += "\x1b[" + std::to_string(drawn_lines_) + "A";
  for (const std::string& l : lines) out += "\r" + l + "\x1b[K\n";
  if (static_cast<int>(lines.size()) < drawn_lines_) out += "\x1b[J";
  drawn_lines_ = static_cast<int>(lines.size());
  Emit(out);
}

void Progress::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopped_) {
    Draw(false);
    cv_.wait_for(lock, options_.interval, [this] { return stopped_; });
  }
}

}  // namespace kiln::cli
