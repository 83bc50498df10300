#include "util/cancel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace kiln::util {
namespace {

// A scope destroyed while Cancel() runs its callback on another thread
// waits for the callback, so the callback never touches what the scope's
// owner destroys next (the registry client's and git's cancel callbacks
// capture such state).
TEST(CancellerTest, RemoveWaitsForACallbackThatIsRunning) {
  Canceller cancel;
  std::atomic<bool> started{false};
  auto finished = std::make_shared<std::atomic<bool>>(false);
  auto scope = std::make_unique<CancelScope>(&cancel, [&started, finished] {
    started = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    *finished = true;
  });
  std::thread canceller([&cancel] { cancel.Cancel("stop"); });
  while (!started) std::this_thread::yield();
  scope.reset();  // Remove() while the callback sleeps
  EXPECT_TRUE(*finished);
  canceller.join();
}

TEST(CancellerTest, RemoveFromItsOwnCallbackDoesNotWait) {
  Canceller cancel;
  int handle = -1;
  bool ran = false;
  handle = cancel.OnCancel([&] {
    cancel.Remove(handle);
    ran = true;
  });
  cancel.Cancel();
  EXPECT_TRUE(ran);
  EXPECT_EQ(cancel.Check().code(), StatusCode::kCancelled);
}

TEST(CancellerTest, CallbackRegisteredAfterCancelRunsAtOnce) {
  Canceller cancel;
  cancel.Cancel("why");
  bool ran = false;
  CancelScope scope(&cancel, [&] { ran = true; });
  EXPECT_TRUE(ran);
  EXPECT_EQ(cancel.Check().message(), "why");
}

}  // namespace
}  // namespace kiln::util
