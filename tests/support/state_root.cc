#include "state_root.h"

#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "util/digest.h"

namespace kiln::testing {

namespace fs = std::filesystem;

namespace {

std::string Slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Whether `p` is `root` or below it, comparing whole path components.
bool IsUnder(const std::string& p, const std::string& root) {
  if (p.compare(0, root.size(), root) != 0) return false;
  return p.size() == root.size() || p[root.size()] == '/';
}

// From /proc/PID/stat: the state letter ('Z' for a zombie, 'K' for a
// kernel thread, '?' when unreadable), comm and the start time (clock
// ticks after boot, field 22).
char ProcState(const std::string& pid, std::string* comm, std::string* start_time) {
  const std::string stat = Slurp("/proc/" + pid + "/stat");
  const size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) {
    return '?';
  }
  *comm = stat.substr(open + 1, close - open - 1);
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  unsigned long flags = 0;
  for (int i = 3; i <= 22 && fields >> f; ++i) {
    if (i == 9) flags = std::stoul(f);
    if (i == 22) *start_time = f;
  }
  constexpr unsigned long kKernelThread = 0x00200000;  // PF_KTHREAD
  return (flags & kKernelThread) != 0 ? 'K' : stat[close + 2];
}

bool IsHex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

std::vector<std::string> CorruptBlobs(const fs::path& root) {
  std::vector<std::string> out;
  const fs::path blobs = root / "content" / "blobs";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(blobs, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory()) continue;
    const fs::path rel = fs::relative(it->path(), blobs);
    const std::string name = "blobs/" + rel.string();
    const std::string algorithm = rel.begin()->string();
    const std::string hex = it->path().filename().string();
    if (algorithm != "sha256" || std::distance(rel.begin(), rel.end()) != 2) {
      out.push_back(name + ": not a sha256 blob");
      continue;
    }
    if (!it->is_regular_file()) {
      out.push_back(name + ": not a regular file");
      continue;
    }
    if (hex.size() != 64 || !IsHex(hex)) {
      out.push_back(name + ": the name is not a sha256 digest");
      continue;
    }
    Result<util::Digest> d = util::Sha256OfFile(it->path());
    if (!d.ok()) {
      out.push_back(name + ": " + d.status().ToString());
    } else if (d->str() != "sha256:" + hex) {
      out.push_back(name + ": its " + std::to_string(fs::file_size(it->path(), ec)) +
                    " bytes hash to " + d->str());
    }
  }
  return out;
}

size_t CountBlobs(const fs::path& root) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root / "content" / "blobs", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory()) ++n;
  }
  return n;
}

std::vector<std::string> ProcessesUsing(const fs::path& root, const std::string& marker) {
  const std::string r = fs::absolute(root).lexically_normal().string();
  // Container processes the runtime's state records: its pid and, when
  // recorded, the process's start time (a pid seen from another pid
  // namespace, or reused, names another process).
  struct Recorded {
    std::string id;
    std::string start_time;
  };
  std::map<std::string, Recorded> recorded;  // by pid
  std::error_code ec;
  static const std::regex pid_re("\"pid\"\\s*:\\s*([0-9]+)");
  static const std::regex start_re("\"process-start-time\"\\s*:\\s*([0-9]+)");
  for (const auto& e : fs::directory_iterator(root / "executor" / "runtime", ec)) {
    const std::string status = Slurp(e.path() / "status");
    std::smatch m, t;
    if (!std::regex_search(status, m, pid_re)) continue;
    Recorded r{e.path().filename().string(), ""};
    if (std::regex_search(status, t, start_re)) r.start_time = t[1];
    recorded[m[1]] = r;
  }
  std::vector<std::string> out;
  const std::string self = std::to_string(::getpid());
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid == self) {
      continue;
    }
    std::string comm, start_time;
    const char state = ProcState(pid, &comm, &start_time);
    if (state == '?' || state == 'Z' || state == 'X' || state == 'K') continue;
    std::vector<std::string> why;
    if (auto it = recorded.find(pid);
        it != recorded.end() &&
        (it->second.start_time.empty() || it->second.start_time == start_time)) {
      why.push_back("the process of container " + it->second.id);
    }
    std::string cmdline = Slurp("/proc/" + pid + "/cmdline");
    for (char& c : cmdline) c = c == '\0' ? ' ' : c;
    if (cmdline.find(r + "/") != std::string::npos || cmdline.find(r + " ") != std::string::npos) {
      why.push_back("its command line names the root: " + cmdline.substr(0, 300));
    } else if (!marker.empty() && cmdline.find(marker) != std::string::npos) {
      why.push_back("a RUN step's process: " + cmdline.substr(0, 300));
    }
    for (const char* link : {"cwd", "root"}) {
      const fs::path target = fs::read_symlink(e.path() / link, ec);
      if (!ec && IsUnder(target.string(), r)) {
        why.push_back(std::string(link) + " " + target.string());
      }
    }
    if (why.empty()) continue;
    std::string line = "pid " + pid + " (" + comm + "):";
    for (const std::string& w : why) line += " " + w + ";";
    line.pop_back();
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> MountsUnder(const fs::path& root) {
  const std::string r = fs::absolute(root).lexically_normal().string();
  std::vector<std::string> out;
  std::istringstream in(Slurp("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    std::istringstream f(line);
    std::string id, parent, dev, mroot, point;
    f >> id >> parent >> dev >> mroot >> point;
    std::string word, fstype;
    while (f >> word && word != "-") {
    }
    f >> fstype;
    // Octal escapes (\040 for a space) as the kernel writes them.
    std::string unescaped;
    for (size_t i = 0; i < point.size(); ++i) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        unescaped += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        unescaped += point[i];
      }
    }
    if (IsUnder(unescaped, r)) out.push_back(unescaped + " (" + fstype + ")");
  }
  return out;
}

std::vector<std::string> TempEntries(const fs::path& root) {
  std::vector<std::string> out;
  for (const char* dir : {"content/ingest", "snapshots/.tmp", "snapshots/.mounts",
                          "executor/bundles", "executor/runtime", "git/tmp", "tmp"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root / dir, ec)) {
      out.push_back(fs::relative(e.path(), root).string());
    }
  }
  return out;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  if (lines.empty()) return "  (none)";
  std::string out;
  for (const std::string& l : lines) out += (out.empty() ? "  " : "\n  ") + l;
  return out;
}

}  // namespace kiln::testing
