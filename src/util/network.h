// Limits on network waits, shared by every module that talks to the network
// (registry client, HTTP source, git source): what the kiln config's
// "network" settings hold (cli/config.h, docs/network.md), and the Deadline
// one network operation runs under.
//
// A network operation is what a message names: "fetching manifest
// busybox:latest", "fetching blob sha256:...", "pushing blob ...", "listing
// the refs of a git remote". It may take several requests (attempts after
// transient failures, redirects, a token fetch) and backoff sleeps between
// them; its Deadline covers all of them.
//
// Thread-safety: NetworkOptions is a plain value; a Deadline may be read and
// advanced (Moved) from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace kiln::util {

struct NetworkOptions {
  // Establishing one connection (TCP and TLS).
  std::chrono::milliseconds connect_timeout{30'000};
  // A transfer that moves less than 1 byte/s for this long (including a
  // server that accepts the request and never answers) is abandoned, and
  // retried when the operation allows it.
  std::chrono::milliseconds stall_timeout{30'000};
  // Overall deadline of one operation, attempts and backoff included, ...
  std::chrono::milliseconds timeout{300'000};
  // ... extended by one second for every `min_rate` bytes it moves, so a
  // 2 GB layer arriving at a healthy rate is never cut while a trickle is
  // (0: no extension).
  uint64_t min_rate = 64 << 10;
  // The kiln config file these came from (or would come from), named by
  // timeout errors as the place to raise them; empty: errors name none.
  std::string config_file;
};

// "raise it with {"network": {"KEY": SECONDS}} in the kiln config FILE", or
// "" without a config file.
inline std::string RaiseHint(const NetworkOptions& o, const std::string& key) {
  if (o.config_file.empty()) return "";
  return "raise it with {\"network\": {\"" + key + "\": SECONDS}} in the kiln config " +
         o.config_file;
}

// When one operation must end: `timeout` after it started, plus one second
// per `min_rate` bytes moved so far. The default Deadline never expires.
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  Deadline() = default;
  Deadline(std::chrono::milliseconds timeout, uint64_t min_rate)
      : limited_(timeout.count() > 0), timeout_(timeout), min_rate_(min_rate) {}
  explicit Deadline(const NetworkOptions& o) : Deadline(o.timeout, o.min_rate) {}

  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Records `bytes` moved (received or sent) by the operation.
  void Moved(uint64_t bytes) { moved_.fetch_add(bytes, std::memory_order_relaxed); }
  uint64_t moved() const { return moved_.load(std::memory_order_relaxed); }

  bool limited() const { return limited_; }
  // The base timeout, for messages.
  std::chrono::milliseconds timeout() const { return timeout_; }
  // Now past the deadline?
  bool Expired() const { return limited_ && Clock::now() >= When(); }
  // Time left (zero once expired; a day when unlimited).
  std::chrono::milliseconds Remaining() const {
    if (!limited_) return std::chrono::hours(24);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(When() - Clock::now());
    return std::max(left, std::chrono::milliseconds(0));
  }
  Clock::time_point When() const {
    auto extra = std::chrono::milliseconds(0);
    if (min_rate_ > 0) extra = std::chrono::milliseconds(moved() * 1000 / min_rate_);
    return start_ + timeout_ + extra;
  }

 private:
  bool limited_ = false;
  Clock::time_point start_ = Clock::now();
  std::chrono::milliseconds timeout_{0};
  uint64_t min_rate_ = 0;
  std::atomic<uint64_t> moved_{0};
};

// "300 s", "2.5 s": a duration as timeout messages show it.
inline std::string FormatSeconds(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  std::string frac = std::to_string(ms % 1000);
  frac.insert(0, 3 - frac.size(), '0');
  while (frac.back() == '0') frac.pop_back();
  return std::to_string(ms / 1000) + "." + frac + " s";
}

// The message of an operation that ran out of time: "<what>: no complete
// response in 300 s (slow or stalled server); <hint>".
inline std::string DeadlineMessage(const std::string& what, const Deadline& d,
                                   const std::string& hint) {
  std::string msg = what + ": no complete response in " + FormatSeconds(d.timeout()) +
                    " (slow or stalled server)";
  if (!hint.empty()) msg += "; " + hint;
  return msg;
}

}  // namespace kiln::util
