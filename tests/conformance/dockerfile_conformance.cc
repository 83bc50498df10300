// kiln-dockerfile-conformance: checks kiln's Dockerfile parser against the
// outputs BuildKit v0.10.6's parser produced (tests/conformance/data/
// dockerfile, the in-repo copy; the third-party corpus is read in place from
// outside the repository; see data/README.md).
//
//   kiln-dockerfile-conformance parser  DIR        parser/*, parser-negative/*,
//                                                   testfile-line.Dockerfile
//   kiln-dockerfile-conformance heredoc FILE.json  heredoc-cases.json
//   kiln-dockerfile-conformance corpus  DIR        corpus/NNNN-*/
//
// Every fact the data records is compared (a field the driver does not know
// fails the case rather than being skipped). Prints the failures with a short
// diff, a summary per kind and a closing "N passed, M failed" line; exits 1
// on any failure or when no case was found, 77 (skipped) when the optional
// corpus directory does not exist.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "frontend/dockerfile/parser/go_text.h"
#include "frontend/dockerfile/parser/parser.h"
#include "frontend/dockerfile/parser/parser_internal.h"

namespace fs = std::filesystem;
using nlohmann::json;
namespace df = kiln::dockerfile;
namespace pi = kiln::dockerfile::parser_internal;

namespace {

struct Tally {
  int passed = 0;
  int failed = 0;
};

class Report {
 public:
  void Pass(const std::string& kind) { ++kinds_[kind].passed; }
  void Fail(const std::string& kind, const std::string& name, const std::string& diff) {
    ++kinds_[kind].failed;
    std::printf("FAIL [%s] %s\n  %s\n", kind.c_str(), name.c_str(), diff.c_str());
  }
  void Check(const std::string& kind, const std::string& name, const std::string& diff) {
    if (diff.empty()) {
      Pass(kind);
    } else {
      Fail(kind, name, diff);
    }
  }
  // Prints the summary; returns the process exit code.
  int Finish() const {
    Tally total;
    for (const auto& [kind, t] : kinds_) {
      std::printf("%s: %d passed, %d failed\n", kind.c_str(), t.passed, t.failed);
      total.passed += t.passed;
      total.failed += t.failed;
    }
    std::printf("%d passed, %d failed\n", total.passed, total.failed);
    if (total.passed + total.failed == 0) {
      std::printf("no cases found\n");
      return 1;
    }
    return total.failed == 0 ? 0 : 1;
  }

 private:
  std::map<std::string, Tally> kinds_;
};

bool ReadFile(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::string Shorten(std::string s, size_t max = 200) {
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

// Go's encoding/json coerces strings to valid UTF-8; so must the facts we
// compare with its output.
std::string GoJsonString(std::string_view s) {
  std::string out;
  while (!s.empty()) {
    pi::DecodedRune r = pi::DecodeRune(s);
    pi::AppendRune(out, r.rune);
    s.remove_prefix(r.width);
  }
  return out;
}

json Strings(const std::vector<std::string>& v) {
  json a = json::array();
  for (const std::string& s : v) a.push_back(GoJsonString(s));
  return a;
}

std::string Dumped(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The first difference between two JSON values, as "path: expected X, got Y".
std::string JsonDiff(const json& want, const json& got, const std::string& path = "") {
  if (want.type() != got.type() && !(want.is_number() && got.is_number())) {
    return path + ": expected " + Shorten(Dumped(want)) + ", got " + Shorten(Dumped(got));
  }
  if (want.is_object()) {
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (!got.contains(it.key())) return path + "." + it.key() + ": missing (field not checked)";
      std::string d = JsonDiff(it.value(), got.at(it.key()), path + "." + it.key());
      if (!d.empty()) return d;
    }
    for (auto it = got.begin(); it != got.end(); ++it) {
      if (!want.contains(it.key())) {
        return path + "." + it.key() + ": unexpected " + Shorten(Dumped(it.value()));
      }
    }
    return "";
  }
  if (want.is_array()) {
    for (size_t i = 0; i < std::min(want.size(), got.size()); ++i) {
      std::string d = JsonDiff(want[i], got[i], path + "[" + std::to_string(i) + "]");
      if (!d.empty()) return d;
    }
    if (want.size() != got.size()) {
      return path + ": expected " + std::to_string(want.size()) + " items, got " +
             std::to_string(got.size());
    }
    return "";
  }
  if (want != got) {
    return path + ": expected " + Shorten(Dumped(want)) + ", got " + Shorten(Dumped(got));
  }
  return "";
}

// The first differing line of two dumps.
std::string TextDiff(const std::string& want, const std::string& got) {
  if (want == got) return "";
  size_t line = 1, i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) {
    if (want[i] == '\n') ++line;
    ++i;
  }
  auto line_at = [](const std::string& s, size_t pos) {
    const size_t b = pos == 0 ? 0 : s.rfind('\n', pos - 1) + 1;  // npos + 1 == 0
    const size_t e = s.find('\n', b);
    return s.substr(b, e == std::string::npos ? std::string::npos : e - b);
  };
  return "dump line " + std::to_string(line) + ": expected " +
         Shorten(df::GoQuote(line_at(want, i))) + ", got " + Shorten(df::GoQuote(line_at(got, i)));
}

json ErrorLines(const df::SourceRange& where) {
  json a = json::array();
  for (int n = where.start_line; n <= std::max(where.start_line, where.end_line); ++n) {
    a.push_back(n);
  }
  return a;
}

// The keyword as spelled in the source: BuildKit keeps it in Node.Value;
// kiln keeps it lower-cased, so it is read back from the original line.
std::string SourceKeyword(const std::string& original) {
  return std::string(pi::SplitWhitespace(pi::TrimSpace(original), 2)[0]);
}

json HeredocJson(const df::Heredoc& h) {
  return json{{"name", GoJsonString(h.name)},
              {"file_descriptor", h.file_descriptor},
              {"expand", h.expand},
              {"chomp", h.chomp},
              {"content", GoJsonString(h.content)}};
}

std::string InstructionDump(const df::Node& node) {
  df::Node root;
  root.children.push_back(node);
  std::string d = df::Dump(root);
  if (!d.empty() && d.back() == '\n') d.pop_back();
  return d;
}

// ---- corpus: parse.json's shape (empty/false fields left out) ----

json CorpusInstruction(const df::Node& n) {
  json j;
  j["value"] = GoJsonString(SourceKeyword(n.original));
  j["original"] = GoJsonString(n.original);
  j["start_line"] = n.start_line;
  j["end_line"] = n.end_line;
  json next = json::array();
  for (const df::Node& arg : n.args) {
    if (arg.children.empty()) {
      next.push_back(GoJsonString(arg.value));
    } else {
      json children = json::array();
      for (const df::Node& c : arg.children) children.push_back(CorpusInstruction(c));
      next.push_back(json{{"children", children}});
    }
  }
  j["next"] = next;
  if (!n.flags.empty()) j["flags"] = Strings(n.flags);
  if (n.json_form) j["json_form"] = true;
  if (!n.heredocs.empty()) {
    json docs = json::array();
    for (const df::Heredoc& h : n.heredocs) docs.push_back(HeredocJson(h));
    j["heredocs"] = docs;
  }
  if (!n.prev_comment.empty()) j["prev_comment"] = Strings(n.prev_comment);
  return j;
}

json CorpusFacts(const kiln::Result<df::ParseResult>& r, const df::SourceRange& where) {
  if (!r.ok()) return json{{"error", r.status().message()}, {"error_lines", ErrorLines(where)}};
  json j;
  j["escape_token"] = std::string(1, r->directives.escape);
  j["start_line"] = r->root.start_line;
  j["end_line"] = r->root.end_line;
  json insts = json::array();
  for (const df::Node& n : r->root.children) insts.push_back(CorpusInstruction(n));
  j["instructions"] = insts;
  if (!r->warnings.empty()) {
    json w = json::array();
    for (const df::Warning& warning : r->warnings) w.push_back(GoJsonString(warning.message));
    j["warnings"] = w;
  }
  return j;
}

int RunCorpus(const fs::path& dir) {
  Report report;
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) cases.push_back(e.path());
  }
  std::sort(cases.begin(), cases.end());
  for (const fs::path& c : cases) {
    const std::string name = c.filename().string();
    std::string text, want_dump, want_error, facts_text;
    if (!ReadFile(c / "Dockerfile", &text)) {
      report.Fail("corpus", name, "no Dockerfile");
      continue;
    }
    const bool negative = ReadFile(c / "error", &want_error);
    const std::string kind = negative ? "corpus-error" : "corpus";
    if (!negative && !ReadFile(c / "result", &want_dump)) {
      report.Fail(kind, name, "neither result nor error");
      continue;
    }
    if (!ReadFile(c / "parse.json", &facts_text)) {
      report.Fail(kind, name, "no parse.json");
      continue;
    }
    df::SourceRange where;
    kiln::Result<df::ParseResult> r = df::Parse(text, &where);
    std::string diff;
    if (negative) {
      if (!want_error.empty() && want_error.back() == '\n') want_error.pop_back();
      if (r.ok()) {
        diff = "parsed, expected error " + df::GoQuote(want_error);
      } else if (r.status().message() != want_error) {
        diff = "error: expected " + df::GoQuote(want_error) + ", got " +
               df::GoQuote(r.status().message());
      }
    } else if (!r.ok()) {
      diff = "error: " + r.status().message();
    } else {
      diff = TextDiff(want_dump, df::Dump(r->root));
    }
    if (diff.empty()) {
      json want = json::parse(facts_text, nullptr, false);
      if (want.is_discarded()) {
        diff = "parse.json is not JSON";
      } else {
        diff = JsonDiff(want, CorpusFacts(r, where), "parse.json");
      }
    }
    report.Check(kind, name, diff);
  }
  return report.Finish();
}

// ---- heredoc-cases.json ----

json CaseInstruction(const df::Node& n, size_t index) {
  json args = json::array();
  for (const df::Node& arg : n.args) {
    if (arg.children.empty()) {
      args.push_back(GoJsonString(arg.value));
    } else {
      json children = json::array();
      for (const df::Node& c : arg.children) children.push_back(CaseInstruction(c, 0));
      args.push_back(json{{"children", children}});
    }
  }
  json docs = json::array();
  for (const df::Heredoc& h : n.heredocs) docs.push_back(HeredocJson(h));
  return json{{"index", index},
              {"instruction", GoJsonString(n.value)},
              {"original", GoJsonString(n.original)},
              {"start_line", n.start_line},
              {"end_line", n.end_line},
              {"flags", Strings(n.flags)},
              {"json_form", n.json_form},
              {"args", args},
              {"dump", GoJsonString(InstructionDump(n))},
              {"heredocs", docs}};
}

json ParseCaseFacts(const std::string& text) {
  df::SourceRange where;
  kiln::Result<df::ParseResult> r = df::Parse(text, &where);
  if (!r.ok()) return json{{"error", r.status().message()}, {"error_lines", ErrorLines(where)}};
  json j;
  j["error"] = nullptr;
  j["escape_token"] = std::string(1, r->directives.escape);
  j["start_line"] = r->root.start_line;
  j["end_line"] = r->root.end_line;
  j["dump"] = GoJsonString(df::Dump(r->root));
  json insts = json::array();
  for (size_t i = 0; i < r->root.children.size(); ++i) {
    insts.push_back(CaseInstruction(r->root.children[i], i));
  }
  j["instructions"] = insts;
  if (!r->warnings.empty()) {
    json w = json::array();
    for (const df::Warning& warning : r->warnings) w.push_back(GoJsonString(warning.message));
    j["warnings"] = w;
  }
  return j;
}

json OptionalHeredoc(const kiln::Result<std::optional<df::Heredoc>>& r) {
  if (!r.ok()) return json{{"error", r.status().message()}, {"heredoc", nullptr}};
  return json{{"error", nullptr}, {"heredoc", *r ? HeredocJson(**r) : json(nullptr)}};
}

int RunHeredocCases(const fs::path& file) {
  Report report;
  std::string text;
  if (!ReadFile(file, &text)) {
    std::printf("cannot read %s\n", file.string().c_str());
    return 1;
  }
  json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.contains("cases")) {
    std::printf("%s: not a case file\n", file.string().c_str());
    return 1;
  }
  for (const json& c : doc["cases"]) {
    const std::string kind = c.value("kind", "");
    const std::string id = c.value("id", "?");
    const json& want = c.at("expect");
    json got;
    if (kind == "parse") {
      got = ParseCaseFacts(c.at("dockerfile").get<std::string>());
    } else if (kind == "parse_heredoc_word") {
      got = OptionalHeredoc(pi::ParseHeredocWord(c.at("input").get<std::string>()));
    } else if (kind == "heredocs_from_line") {
      auto r = pi::HeredocsFromLine(c.at("input").get<std::string>());
      if (!r.ok()) {
        got = json{{"error", r.status().message()}};
      } else {
        json docs = json::array(), names = json::array();
        for (const df::Heredoc& h : *r) {
          docs.push_back(HeredocJson(h));
          names.push_back(GoJsonString(h.name));
        }
        got = json{{"heredocs", docs}, {"names", names}};
      }
    } else if (kind == "parse_words") {
      got = json{{"words", Strings(pi::ParseWords(c.at("input").get<std::string>(), '\\'))}};
    } else if (kind == "parse_name_val") {
      const json& in = c.at("input");
      auto r =
          pi::ParseNameVal(in.at("rest").get<std::string>(), in.at("key").get<std::string>(), '\\');
      got = r.ok() ? json{{"error", nullptr}, {"values", Strings(*r)}}
                   : json{{"error", r.status().message()}};
    } else if (kind == "chomp_heredoc_content") {
      got = json{{"output", df::ChompHeredocContent(c.at("input").get<std::string>())}};
    } else if (kind == "reference") {
      // A pointer to the directory-driven tests (the `parser` mode), not data.
      if (want.empty() && c.contains("note")) {
        report.Pass("reference (no data; see parser mode)");
      } else {
        report.Fail(kind, id, "reference case carries data the driver does not check");
      }
      continue;
    } else {
      report.Fail(kind.empty() ? "?" : kind, id, "unknown kind");
      continue;
    }
    report.Check(kind, id, JsonDiff(want, got, "expect"));
  }
  return report.Finish();
}

// ---- parser/, parser-negative/, testfile-line.Dockerfile ----

std::vector<fs::path> SubDirs(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int RunParserDir(const fs::path& dir) {
  Report report;
  for (const fs::path& c : SubDirs(dir / "parser")) {
    const std::string name = c.filename().string();
    std::string text, want;
    if (!ReadFile(c / "Dockerfile", &text) || !ReadFile(c / "result", &want)) {
      report.Fail("parser", name, "missing Dockerfile or result");
      continue;
    }
    auto r = df::Parse(text);
    report.Check("parser", name,
                 r.ok() ? TextDiff(want, df::Dump(r->root)) : "error: " + r.status().message());
  }
  for (const fs::path& c : SubDirs(dir / "parser-negative")) {
    const std::string name = c.filename().string();
    std::string text;
    if (!ReadFile(c / "Dockerfile", &text)) {
      report.Fail("parser-negative", name, "missing Dockerfile");
      continue;
    }
    auto r = df::Parse(text);
    report.Check("parser-negative", name, r.ok() ? "parsed, expected an error" : "");
  }
  // BuildKit's TestParseLineNumbers: the instructions' line ranges.
  std::string text;
  if (!ReadFile(dir / "testfile-line.Dockerfile", &text)) {
    report.Fail("testfile-line", "testfile-line.Dockerfile", "missing");
  } else {
    auto r = df::Parse(text);
    json got;
    if (r.ok()) {
      got["ast"] = {r->root.start_line, r->root.end_line};
      for (const df::Node& n : r->root.children)
        got["children"].push_back({n.start_line, n.end_line});
    } else {
      got["error"] = r.status().message();
    }
    const json want = {{"ast", {5, 31}}, {"children", {{5, 5}, {11, 12}, {17, 31}}}};
    report.Check("testfile-line", "testfile-line.Dockerfile", JsonDiff(want, got, "lines"));
  }
  return report.Finish();
}

}  // namespace

// The exit code ctest's SKIP_RETURN_CODE maps to "skipped" (dockerfile.cmake).
constexpr int kExitSkipped = 77;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s parser DIR | heredoc FILE.json | corpus DIR\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const fs::path path = argv[2];
  if (!fs::exists(path)) {
    if (mode == "corpus") {
      // The corpus is optional (it stays outside the repository): say so,
      // with the path, and exit with the code ctest reports as skipped.
      std::printf("SKIPPED: the Dockerfile corpus is not at %s (set KILN_CONFORMANCE_CORPUS)\n",
                  path.string().c_str());
      return kExitSkipped;
    }
    std::fprintf(stderr, "%s: no such file or directory\n", path.string().c_str());
    return 1;
  }
  if (mode == "parser") return RunParserDir(path);
  if (mode == "heredoc") return RunHeredocCases(path);
  if (mode == "corpus") return RunCorpus(path);
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
