// libFuzzer entry point for shell-word expansion (shell/lex.h): ProcessWord
// and ProcessWords on arbitrary bytes under every lexer option. The first
// byte picks the options; the rest is the word.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "frontend/dockerfile/shell/lex.h"

namespace df = kiln::dockerfile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t bits = data[0];
  const std::string_view word(reinterpret_cast<const char*>(data + 1), size - 1);

  df::LexOptions options;
  options.escape = (bits & 1) ? '`' : '\\';
  options.windows = bits & 2;
  options.raw_quotes = bits & 4;
  options.raw_escapes = bits & 8;
  options.skip_unset = bits & 16;
  const df::Lexer lexer(options);

  const df::EnvList env = {
      {"A", "a"}, {"EMPTY", ""}, {"SPACES", " x  y "}, {"a", "lower"}, {"PATH", "/usr/bin:/bin"}};
  std::set<std::string> used;
  (void)lexer.ProcessWord(word, env, &used);
  (void)lexer.ProcessWords(word, env, &used);
  (void)lexer.ProcessWord(word, {}, nullptr);
  (void)df::LookupEnv(env, word, options.windows);
  return 0;
}
