// A tiny timing harness for *_perftest programs (in the manner of ninja's):
// runs a body several times and prints min/median/max wall time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace kiln::bench {

struct Timing {
  double min_s, median_s, max_s;
};

inline Timing Measure(int runs, const std::function<void()>& body) {
  std::vector<double> s;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    body();
    s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(s.begin(), s.end());
  return {s.front(), s[s.size() / 2], s.back()};
}

// Prints "name: min/median/max ms" and, when bytes > 0, the median throughput.
inline void Report(const std::string& name, const Timing& t, double bytes = 0) {
  std::printf("%-40s min %9.2f ms  median %9.2f ms  max %9.2f ms", name.c_str(), t.min_s * 1e3,
              t.median_s * 1e3, t.max_s * 1e3);
  if (bytes > 0) std::printf("  %8.1f MiB/s", bytes / t.median_s / (1 << 20));
  std::printf("\n");
}

}  // namespace kiln::bench
