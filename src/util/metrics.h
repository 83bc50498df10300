// Where a build spends its time: named scoped timers (ninja's
// METRIC_RECORD), summed per name and printed by `kiln build
// --debug=stats`. Recording is cheap (a steady_clock read and an atomic add
// per scope) and always on.
//
// Thread-safety: Metric and ScopedMetric may be used from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace kiln::util {

class Metric {
 public:
  // Registers a metric; `name` must outlive the program (a string literal).
  explicit Metric(const char* name);
  void Add(std::chrono::nanoseconds d) {
    count_.fetch_add(1, std::memory_order_relaxed);
    nanos_.fetch_add(d.count(), std::memory_order_relaxed);
  }
  const char* name() const { return name_; }
  int64_t count() const { return count_.load(); }
  int64_t nanos() const { return nanos_.load(); }

 private:
  const char* name_;
  std::atomic<int64_t> count_{0};
  std::atomic<int64_t> nanos_{0};
};

class ScopedMetric {
 public:
  explicit ScopedMetric(Metric* m) : m_(m), start_(std::chrono::steady_clock::now()) {}
  ~ScopedMetric() { m_->Add(std::chrono::steady_clock::now() - start_); }
  ScopedMetric(const ScopedMetric&) = delete;
  ScopedMetric& operator=(const ScopedMetric&) = delete;

 private:
  Metric* m_;
  std::chrono::steady_clock::time_point start_;
};

// A table of every metric with a count > 0: name, count, total ms, avg ms.
std::string MetricsReport();

}  // namespace kiln::util

#define KILN_METRIC_CONCAT_(a, b) a##b
#define KILN_METRIC_NAME_(a, b) KILN_METRIC_CONCAT_(a, b)
// Times the rest of the enclosing scope under `name` (a string literal).
#define KILN_METRIC(name)                                                      \
  static ::kiln::util::Metric KILN_METRIC_NAME_(kiln_metric_, __LINE__)(name); \
  ::kiln::util::ScopedMetric KILN_METRIC_NAME_(                                \
      kiln_metric_scope_, __LINE__)(&KILN_METRIC_NAME_(kiln_metric_, __LINE__))
