// sha256 over a 1 GiB stream fed in 1 MiB chunks through kiln's streaming
// hasher (util::Sha256), the path every blob ingest takes.
#include <cstdio>
#include <string>

#include "bench/perftest.h"
#include "util/digest.h"

int main(int argc, char** argv) {
  const size_t total = (argc > 1 ? std::stoull(argv[1]) : 1024) << 20;  // MiB
  std::string chunk(1 << 20, '\0');
  for (size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>(i * 2654435761u >> 13);
  std::string digest;
  auto t = kiln::bench::Measure(5, [&] {
    kiln::util::Sha256 h;
    for (size_t done = 0; done < total; done += chunk.size()) h.Update(chunk);
    digest = h.Finish().str();
  });
  kiln::bench::Report("sha256 " + std::to_string(total >> 20) + " MiB stream", t,
                      static_cast<double>(total));
  std::printf("digest %s\n", digest.c_str());
  return 0;
}
