#include "util/cancel.h"

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

}  // namespace kiln::util
