// convert_perftest: the Dockerfile frontend end to end on a generated
// 10,000-instruction Dockerfile: parse + typed instructions + conversion to
// the graph (with a table resolver, so no network), then Marshal of the
// result. Prints min/median/max over several runs.
//
//   convert_perftest [INSTRUCTIONS] [RUNS]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/perftest.h"
#include "frontend/dockerfile/convert.h"
#include "frontend/dockerfile/parser/parser.h"

namespace {

class TableResolver : public kiln::dockerfile::ImageResolver {
 public:
  kiln::Result<kiln::dockerfile::ResolvedImage> ResolveImage(
      const std::string&, const kiln::image::Platform& p) override {
    kiln::dockerfile::ResolvedImage r;
    r.digest = "sha256:" + std::string(64, 'b');
    r.config.architecture = p.architecture;
    r.config.os = p.os;
    r.config.config.env = {"PATH=/usr/bin:/bin"};
    return r;
  }
};

// Ten stages; each gets ARG/ENV/RUN (with a continuation)/COPY/WORKDIR/LABEL
// and a heredoc RUN in rotation, and copies from the previous stage.
std::string Generate(int instructions) {
  std::string df = "ARG BASE=busybox:1.36\n";
  const int stages = 10;
  const int per_stage = instructions / stages;
  int n = 1;
  for (int s = 0; s < stages; ++s) {
    df += "FROM ${BASE} AS s" + std::to_string(s) + "\n";
    ++n;
    for (int i = 1; i < per_stage && n < instructions; ++i, ++n) {
      const std::string k = std::to_string(s) + "_" + std::to_string(i);
      switch (i % 7) {
        case 0:
          df += "ARG A" + k + "=v" + k + "\n";
          break;
        case 1:
          df += "ENV E" + k + "=\"$A" + k + " value\" F" + k + "=x\n";
          break;
        case 2:
          df += "RUN echo " + k + " && \\\n    test -n \"$E" + k + "\"\n";
          break;
        case 3:
          df += s > 0 ? "COPY --from=s" + std::to_string(s - 1) + " /f" + k + " /g" + k + "\n"
                      : "COPY f" + k + " /g" + k + "\n";
          break;
        case 4:
          df += "WORKDIR /w/" + k + "\n";
          break;
        case 5:
          df += "LABEL l" + k + "=\"" + k + "\"\n";
          break;
        default:
          df += "RUN <<EOF\necho " + k + "\nEOF\n";
          break;
      }
    }
  }
  return df;
}

}  // namespace

int main(int argc, char** argv) {
  const int instructions = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 7;
  const std::string df = Generate(instructions);
  TableResolver resolver;
  kiln::dockerfile::ConvertOptions opt;
  opt.resolver = &resolver;
  opt.target_platform = kiln::image::Platform{"linux", "amd64", "", "", {}};
  opt.build_platform = opt.target_platform;

  size_t vertices = 0;
  auto parse = kiln::bench::Measure(runs, [&] {
    auto r = kiln::dockerfile::Parse(df);
    if (!r.ok()) std::abort();
  });
  auto convert = kiln::bench::Measure(runs, [&] {
    auto r = kiln::dockerfile::ConvertToGraph(df, opt);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      std::abort();
    }
    vertices = kiln::graph::Marshal(r->root).vertices.size();
  });
  std::printf("generated Dockerfile: %d instructions, %zu bytes; graph: %zu vertices\n",
              instructions, df.size(), vertices);
  kiln::bench::Report("parse", parse, static_cast<double>(df.size()));
  kiln::bench::Report("parse+convert+marshal", convert, static_cast<double>(df.size()));
  return 0;
}
