// Cancellation shared by one build: the CLI cancels it on SIGINT/SIGTERM;
// the solver stops scheduling, running work checks it and the executor
// kills its container through an OnCancel callback.
//
// Thread-safety: every method may be called from any thread. Callbacks run
// on the thread that calls Cancel() (or, when already cancelled, on the
// thread that registers them), outside the internal lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "util/status.h"

namespace kiln::util {

class Canceller {
 public:
  // Cancels; later calls do nothing. `why` becomes the kCancelled message.
  void Cancel(std::string why = "build cancelled");
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // OK, or kCancelled with the reason.
  Status Check() const;

  // Runs `fn` when cancelled (at once if already cancelled). Returns a
  // handle for Remove(); callbacks not removed run at most once.
  int OnCancel(std::function<void()> fn);
  // Unregisters. When Cancel() has already taken the callback, waits until
  // it has run, so that what it captured may be destroyed right after
  // (unless called from that callback itself).
  void Remove(int handle);

  // Sleeps for `d` or until cancelled, whichever comes first (backoff
  // between retries). Returns whether the build is cancelled.
  bool WaitFor(std::chrono::milliseconds d) const;

 private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // notified by Cancel()
  std::string why_;
  int next_ = 0;
  std::map<int, std::function<void()>> callbacks_;
  std::set<int> running_;   // taken by Cancel(), not yet finished
  std::thread::id runner_;  // the thread running them
};

// Canceller::WaitFor, or a plain sleep when `canceller` is null.
bool SleepUnlessCancelled(const Canceller* canceller, std::chrono::milliseconds d);

// Registers a callback for the lifetime of this object (nothing when
// `canceller` is null).
class CancelScope {
 public:
  CancelScope(Canceller* canceller, std::function<void()> fn)
      : canceller_(canceller), handle_(canceller ? canceller->OnCancel(std::move(fn)) : -1) {}
  ~CancelScope() {
    if (canceller_) canceller_->Remove(handle_);
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  Canceller* canceller_;
  int handle_;
};

}  // namespace kiln::util
