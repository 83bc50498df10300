#include "canary_disk.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kiln::testing {
namespace {

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

CanaryDisk::CanaryDisk(const std::filesystem::path& file) : file_(file) {
  for (int i = 0; content_.size() < (1 << 20); ++i) {
    content_ += "CANARY-" + std::to_string(i) + "\n";
  }
  content_.resize(1 << 20);
  std::ofstream(file_, std::ios::binary | std::ios::trunc) << content_;
  FILE* p = ::popen(("losetup -f --show " + file_.string()).c_str(), "r");
  char buf[256] = {};
  if (p && std::fgets(buf, sizeof buf, p)) device_ = buf;
  if (p) ::pclose(p);
  while (!device_.empty() && device_.back() == '\n') device_.pop_back();
  struct stat st;
  if (!device_.empty() && ::stat(device_.c_str(), &st) == 0) rdev_ = st.st_rdev;
  // Attaching makes the kernel (and udev, if any) read the device: wait
  // until its counters settle before a test takes them.
  for (int i = 0; rdev_ != 0 && i < 40; ++i) {
    auto before = Io();
    usleep(50000);
    if (Io() == before) break;
  }
}

CanaryDisk::~CanaryDisk() {
  if (!device_.empty()) (void)std::system(("losetup -d " + device_).c_str());
}

unsigned CanaryDisk::major_num() const { return major(rdev_); }
unsigned CanaryDisk::minor_num() const { return minor(rdev_); }

std::string CanaryDisk::numbers() const {
  return std::to_string(major_num()) + ":" + std::to_string(minor_num());
}

bool CanaryDisk::untouched() const { return ReadAll(file_) == content_; }

std::pair<long, long> CanaryDisk::Io() const {
  std::istringstream in(
      ReadAll("/sys/block/" + std::filesystem::path(device_).filename().string() + "/stat"));
  long f[8] = {};
  for (long& v : f) in >> v;
  return {f[0], f[4]};
}

}  // namespace kiln::testing
