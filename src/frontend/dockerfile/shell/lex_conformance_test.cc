// BuildKit's lexer tables (envVarTest, wordsTest), read from the in-repo
// conformance data (tests/conformance/data) and checked row by row, in Unix
// and Windows mode.
// A missing or malformed table fails the test; nothing is skipped.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "frontend/dockerfile/shell/lex.h"

namespace kiln::dockerfile {
namespace {

const std::string kDir = KILN_SHELL_CONFORMANCE_DIR;

// The file's lines, as Go's bufio.Scanner yields them (a trailing "\r" is
// dropped). Fails the calling test, naming the path, when it cannot be read.
std::vector<std::string> ReadLines(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::vector<std::string> lines;
  if (!*ok) {
    ADD_FAILURE() << "conformance table missing or unreadable: " << path
                  << " (the in-repo copy under tests/conformance/data)";
    return lines;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  if (lines.empty()) ADD_FAILURE() << "conformance table is empty: " << path;
  return lines;
}

bool IsSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view TrimLeftBlanks(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (;;) {
    const size_t i = s.find(sep);
    out.emplace_back(s.substr(0, i));
    if (i == std::string_view::npos) return out;
    s.remove_prefix(i + 1);
  }
}

std::string Join(const std::vector<std::string>& words) {
  std::string s = "[";
  for (size_t i = 0; i < words.size(); ++i) s += (i ? ", \"" : "\"") + words[i] + "\"";
  return s + "]";
}

// envVarTest rows are `P|input|expected`: P is A (all platforms), U (Unix) or
// W (Windows); `error` means the expansion must fail. The variables are those
// of BuildKit's TestShellParser4EnvVars, as the rows show: PWD=/home
// (`he$PWD`), SHELL=bash (`${PWD:+${SHELL}}`), KOREAN=한국어 and NULL set but
// empty (`he${NULL?}` passes, `he${NULL:?}` fails).
void RunEnvVarTable(bool windows) {
  const std::string path = kDir + "/envVarTest";
  bool ok = false;
  const std::vector<std::string> lines = ReadLines(path, &ok);
  if (!ok) return;

  const EnvList env = {{"PWD", "/home"}, {"SHELL", "bash"}, {"KOREAN", "한국어"}, {"NULL", ""}};
  LexOptions options;
  options.windows = windows;
  const Lexer lexer(options);

  int run = 0, passed = 0, other_platform = 0;
  for (size_t n = 0; n < lines.size(); ++n) {
    if (lines[n].starts_with("#")) continue;
    const std::string_view line = TrimSpace(lines[n]);
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(n + 1);
    const std::vector<std::string> fields = Split(line, '|');
    if (fields.size() != 3) {
      ADD_FAILURE() << where << ": want 3 fields separated by '|', got " << fields.size();
      continue;
    }
    const std::string_view platform = TrimSpace(fields[0]);
    const std::string input(TrimSpace(fields[1]));
    const std::string expected(TrimSpace(fields[2]));
    if (platform != "A" && platform != "U" && platform != "W") {
      ADD_FAILURE() << where << ": platform must be A, U or W, got '" << platform << "'";
      continue;
    }
    if ((platform == "U" && windows) || (platform == "W" && !windows)) {
      ++other_platform;
      continue;
    }
    ++run;
    Result<std::string> got = lexer.ProcessWord(input, env);
    if (expected == "error") {
      if (got.ok()) {
        ADD_FAILURE() << where << ": " << input << " should fail, got \"" << *got << "\"";
        continue;
      }
    } else {
      if (!got.ok()) {
        ADD_FAILURE() << where << ": " << input << ": " << got.status().ToString();
        continue;
      }
      if (*got != expected) {
        ADD_FAILURE() << where << ": " << input << ": want \"" << expected << "\", got \"" << *got
                      << "\"";
        continue;
      }
    }
    ++passed;
  }
  std::cout << "envVarTest (" << (windows ? "windows" : "unix") << "): " << passed << "/" << run
            << " rows passed, " << other_platform << " rows for the other platform\n";
  EXPECT_GT(run, 0) << path << " has no rows";
  EXPECT_EQ(passed, run);
}

// wordsTest rows are `input|w1,w2,...` (ProcessWords; `error` when it must
// fail); `ENV name=value` lines add to the variables for the rows below, the
// value kept to the end of the line, trailing spaces included.
void RunWordsTable(bool windows) {
  const std::string path = kDir + "/wordsTest";
  bool ok = false;
  const std::vector<std::string> lines = ReadLines(path, &ok);
  if (!ok) return;

  LexOptions options;
  options.windows = windows;
  const Lexer lexer(options);
  EnvList env;

  int run = 0, passed = 0;
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::string_view line = lines[n];
    const std::string where = path + ":" + std::to_string(n + 1);
    if (line.starts_with("#")) continue;
    if (line.starts_with("ENV ")) {
      const std::string_view kv = TrimLeftBlanks(line.substr(3));
      const size_t eq = kv.find('=');
      if (eq == std::string_view::npos) {
        env.emplace_back(std::string(kv), "");
      } else {
        env.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
      }
      continue;
    }
    const std::vector<std::string> fields = Split(line, '|');
    if (fields.size() != 2) {
      ADD_FAILURE() << where << ": want exactly one '|' in: " << line;
      continue;
    }
    ++run;
    const std::string input(TrimSpace(fields[0]));
    const std::vector<std::string> expected = Split(TrimLeftBlanks(fields[1]), ',');
    Result<std::vector<std::string>> got = lexer.ProcessWords(input, env);
    const std::vector<std::string> words = got.ok() ? *got : std::vector<std::string>{"error"};
    if (words != expected) {
      ADD_FAILURE() << where << ": " << input << ": want " << Join(expected) << ", got "
                    << Join(words)
                    << (got.ok() ? std::string() : " (" + got.status().ToString() + ")");
      continue;
    }
    ++passed;
  }
  std::cout << "wordsTest (" << (windows ? "windows" : "unix") << "): " << passed << "/" << run
            << " rows passed\n";
  EXPECT_GT(run, 0) << path << " has no rows";
  EXPECT_EQ(passed, run);
}

TEST(Conformance, EnvVarTestUnix) { RunEnvVarTable(false); }
TEST(Conformance, EnvVarTestWindows) { RunEnvVarTable(true); }
TEST(Conformance, WordsTestUnix) { RunWordsTable(false); }
TEST(Conformance, WordsTestWindows) { RunWordsTable(true); }

}  // namespace
}  // namespace kiln::dockerfile
