// Dockerfile parsing speed: (a) a generated 10,000-instruction Dockerfile
// (FROM, RUN with continuations, ENV, COPY, heredocs) and (b) every Dockerfile
// of the conformance corpus, parsed one after another.
//
//   parse_perftest [CORPUS_DIR] [RUNS]
//
// CORPUS_DIR defaults to ${KILN_CONFORMANCE_CORPUS} (outside the repository).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/perftest.h"
#include "frontend/dockerfile/parser/parser.h"

namespace {

std::string Generated(int instructions) {
  std::string df = "# syntax=docker/dockerfile:1.4\n";
  int n = 0;
  for (int stage = 0; n < instructions; ++stage) {
    df += "FROM --platform=$BUILDPLATFORM debian:12 AS stage" + std::to_string(stage) + "\n";
    ++n;
    for (int i = 0; i < 24 && n < instructions; ++i, ++n) {
      switch (i % 6) {
        case 0:
          df += "RUN set -eux; \\\n    apt-get update; \\\n    apt-get install -y pkg" +
                std::to_string(i) + " \\\n      && rm -rf /var/lib/apt/lists/*\n";
          break;
        case 1:
          df += "ENV PATH=/opt/bin:$PATH LANG=C.UTF-8 N" + std::to_string(i) + "=\"a b c\"\n";
          break;
        case 2:
          df += "COPY --from=stage0 --chown=1000:1000 /src/file" + std::to_string(i) + " /dst/\n";
          break;
        case 3:
          df += "RUN <<EOF\nset -e\necho line one\necho line two $HOME\nEOF\n";
          break;
        case 4:
          df += "COPY <<-'CONF' /etc/app.conf\n\tkey=value\n\tother=1\n\tCONF\n";
          break;
        default:
          df += "CMD [\"/bin/app\", \"--flag\", \"value with spaces\"]\n";
      }
    }
  }
  return df;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const fs::path corpus = argc > 1 ? fs::path(argv[1]) : fs::path(KILN_PARSE_PERFTEST_CORPUS);
  const int runs = argc > 2 ? std::stoi(argv[2]) : 20;

  const std::string generated = Generated(10000);
  size_t count = 0;
  auto t = kiln::bench::Measure(runs, [&] {
    auto r = kiln::dockerfile::Parse(generated);
    if (!r.ok()) {
      std::fprintf(stderr, "generated Dockerfile: %s\n", r.status().message().c_str());
      std::exit(1);
    }
    count = r->root.children.size();
  });
  kiln::bench::Report("parse 10,000-instruction Dockerfile", t,
                      static_cast<double>(generated.size()));
  std::printf("  %zu instructions, %zu bytes\n", count, generated.size());

  std::vector<std::string> files;
  size_t bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(corpus, ec)) {
    std::ifstream in(e.path() / "Dockerfile", std::ios::binary);
    if (!in) continue;
    std::ostringstream ss;
    ss << in.rdbuf();
    files.push_back(ss.str());
    bytes += files.back().size();
  }
  if (files.empty()) {
    std::fprintf(stderr, "no Dockerfiles under %s\n", corpus.string().c_str());
    return 1;
  }
  size_t parsed = 0;
  t = kiln::bench::Measure(runs, [&] {
    parsed = 0;
    for (const std::string& f : files) parsed += kiln::dockerfile::Parse(f).ok();
  });
  kiln::bench::Report("parse corpus (" + std::to_string(files.size()) + " files)", t,
                      static_cast<double>(bytes));
  std::printf("  %zu parsed, %zu rejected, %zu bytes\n", parsed, files.size() - parsed, bytes);
  t = kiln::bench::Measure(runs, [&] {
    for (const std::string& f : files) {
      auto r = kiln::dockerfile::Parse(f);
      if (r.ok()) (void)kiln::dockerfile::Dump(r->root);
    }
  });
  kiln::bench::Report("parse + dump corpus", t, static_cast<double>(bytes));
  return 0;
}
