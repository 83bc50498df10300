#include "util/cancel.h"

#include <thread>
#include <vector>

namespace kiln::util {

void Canceller::Cancel(std::string why) {
  std::map<int, std::function<void()>> run;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.load()) return;
    why_ = std::move(why);
    cancelled_.store(true, std::memory_order_release);
    run.swap(callbacks_);
    for (const auto& [id, fn] : run) running_.insert(id);
    runner_ = std::this_thread::get_id();
  }
  cv_.notify_all();
  for (auto& [id, fn] : run) {
    fn();
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.erase(id);
    }
    cv_.notify_all();  // a Remove() may wait for this one
  }
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
  std::unique_lock<std::mutex> lock(mu_);
  callbacks_.erase(handle);
  if (std::this_thread::get_id() == runner_) return;  // from a callback: never wait on itself
  cv_.wait(lock, [&] { return running_.count(handle) == 0; });
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
