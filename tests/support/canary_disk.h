// A real loop device backed by a 1 MiB canary file, for tests that check a
// build step cannot read or write a host disk (issue 15, failure 5): the
// file's bytes and the device's request counters must not change. Needs
// root and losetup; ok() is false when the device could not be attached.
// Not thread-safe; detaches the device when destroyed.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>

namespace kiln::testing {

class CanaryDisk {
 public:
  explicit CanaryDisk(const std::filesystem::path& file);
  ~CanaryDisk();
  CanaryDisk(const CanaryDisk&) = delete;
  CanaryDisk& operator=(const CanaryDisk&) = delete;

  bool ok() const { return rdev_ != 0; }
  unsigned major_num() const;
  unsigned minor_num() const;
  // "MAJOR:MINOR" of the device.
  std::string numbers() const;
  // Whether the backing file still holds exactly the canary bytes.
  bool untouched() const;
  // Read and write requests the device has served (/sys/block/loopN/stat).
  std::pair<long, long> Io() const;

 private:
  std::filesystem::path file_;
  std::string device_, content_;
  dev_t rdev_ = 0;
};

}  // namespace kiln::testing
