#include "util/metrics.h"

#include <cstdio>
#include <mutex>
#include <vector>

namespace kiln::util {
namespace {

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::vector<Metric*>& Registry() {
  static std::vector<Metric*> all;
  return all;
}

}  // namespace

Metric::Metric(const char* name) : name_(name) {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  Registry().push_back(this);
}

std::string MetricsReport() {
  std::lock_guard<std::mutex> lock(RegistryMutex());
  std::string out = "metric                          count   total ms     avg ms\n";
  for (const Metric* m : Registry()) {
    if (m->count() == 0) continue;
    char line[160];
    const double total = static_cast<double>(m->nanos()) / 1e6;
    std::snprintf(line, sizeof line, "%-30s %6lld %10.1f %10.2f\n", m->name(),
                  static_cast<long long>(m->count()), total,
                  total / static_cast<double>(m->count()));
    out += line;
  }
  return out;
}

}  // namespace kiln::util
