#include "util/cancel.h"

#include <thread>
#include <vector>

namespace kiln::util {

void Canceller::Cancel(std::string why) {
  std::vector<std::function<void()>> run;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.load()) return;
    why_ = std::move(why);
    cancelled_.store(true, std::memory_order_release);
    for (auto& [id, fn] : callbacks_) run.push_back(std::move(fn));
    callbacks_.clear();
  }
  cv_.notify_all();
  for (auto& fn : run) fn();
}

Status Canceller::Check() const {
  if (!cancelled()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  return Status::Cancelled(why_);
}

int Canceller::OnCancel(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!cancelled_.load()) {
      int id = next_++;
      callbacks_.emplace(id, std::move(fn));
      return id;
    }
  }
  fn();
  return -1;
}

void Canceller::Remove(int handle) {
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_.erase(handle);
}

bool Canceller::WaitFor(std::chrono::milliseconds d) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, d, [this] { return cancelled_.load(); });
}

bool SleepUnlessCancelled(const Canceller* canceller, std::chrono::milliseconds d) {
  if (canceller != nullptr) return canceller->WaitFor(d);
  std::this_thread::sleep_for(d);
  return false;
}

}  // namespace kiln::util
