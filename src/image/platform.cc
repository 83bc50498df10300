#include "image/platform.h"

#include <sys/utsname.h>

#include <algorithm>
#include <array>

#include "util/json.h"
#include "util/strings.h"

namespace kiln::image {
namespace {

constexpr std::array<std::string_view, 16> kKnownOS = {
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd",  "illumos", "ios",
    "js",  "linux",   "nacl",   "netbsd",    "openbsd", "plan9", "solaris", "windows"};
constexpr std::array<std::string_view, 24> kKnownArch = {
    "386",     "amd64",   "amd64p32", "arm",    "armbe",  "arm64",    "arm64be",   "ppc64",
    "ppc64le", "loong64", "mips",     "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le",
    "ppc",     "riscv",   "riscv64",  "s390",   "s390x",  "sparc",    "sparc64",   "wasm"};

template <size_t N>
bool Contains(const std::array<std::string_view, N>& list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

std::string NormalizeOS(std::string_view os) {
  if (os.empty()) return "linux";  // containerd: runtime.GOOS; kiln runs on Linux
  std::string out = util::AsciiLower(os);
  if (out == "macos") out = "darwin";
  return out;
}

void NormalizeArch(std::string* arch, std::string* variant) {
  *arch = util::AsciiLower(*arch);
  *variant = util::AsciiLower(*variant);
  if (*arch == "i386") {
    *arch = "386";
    variant->clear();
  } else if (*arch == "x86_64" || *arch == "x86-64") {
    *arch = "amd64";
    variant->clear();
  } else if (*arch == "aarch64" || *arch == "arm64") {
    *arch = "arm64";
    if (*variant == "8" || *variant == "v8") variant->clear();
  } else if (*arch == "armhf") {
    *arch = "arm";
    *variant = "v7";
  } else if (*arch == "armel") {
    *arch = "arm";
    *variant = "v6";
  } else if (*arch == "arm") {
    if (variant->empty() || *variant == "7") {
      *variant = "v7";
    } else if (*variant == "5" || *variant == "6" || *variant == "8") {
      *variant = "v" + *variant;
    }
  }
}

bool IsSpecifierComponent(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

Status Invalid(std::string_view spec, std::string_view why) {
  return Status::InvalidArgument("invalid platform " + util::GoString(spec) + ": " +
                                 std::string(why));
}

Platform HostPlatform() {
  struct utsname u {};
  std::string machine = uname(&u) == 0 ? u.machine : "";
  Platform p;
  p.os = "linux";
  if (machine.starts_with("armv")) {  // armv7l, armv6l, armv8l ...
    p.architecture = "arm";
    p.variant = machine.substr(3, 2);
  } else if (machine.size() == 4 && machine[0] == 'i' && machine.substr(2) == "86") {
    p.architecture = "386";  // i386 ... i686
  } else if (machine == "loongarch64") {
    p.architecture = "loong64";
  } else if (machine.empty()) {
    p.architecture = "amd64";
  } else {
    p.architecture = machine;
  }
  return Normalize(std::move(p));
}

}  // namespace

Result<Platform> ParsePlatform(std::string_view spec) {
  if (spec.empty()) return Invalid(spec, "empty platform specifier");
  if (spec.find('*') != std::string_view::npos) return Invalid(spec, "wildcards are not supported");
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t slash = spec.find('/', start);
    parts.push_back(spec.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() > 3) return Invalid(spec, "expected \"os/arch[/variant]\"");
  for (std::string_view part : parts) {
    if (!IsSpecifierComponent(part)) {
      return Invalid(spec,
                     "component " + util::GoString(part) + " must be letters, digits, '_' or '-'");
    }
  }
  Platform p;
  switch (parts.size()) {
    case 1: {
      p.os = NormalizeOS(parts[0]);
      if (Contains(kKnownOS, p.os)) {
        const Platform host = DefaultPlatform();
        p.architecture = host.architecture;
        if (host.architecture == "arm" && host.variant != "v7") p.variant = host.variant;
        return p;
      }
      p.os = "linux";
      p.architecture = std::string(parts[0]);
      NormalizeArch(&p.architecture, &p.variant);
      if (p.architecture == "arm" && p.variant == "v7") p.variant.clear();
      if (!Contains(kKnownArch, p.architecture)) {
        return Invalid(spec, "unknown operating system or architecture");
      }
      return p;
    }
    case 2:
      p.os = NormalizeOS(parts[0]);
      p.architecture = std::string(parts[1]);
      NormalizeArch(&p.architecture, &p.variant);
      if (p.architecture == "arm" && p.variant == "v7") p.variant.clear();
      return p;
    default:
      p.os = NormalizeOS(parts[0]);
      p.architecture = std::string(parts[1]);
      p.variant = std::string(parts[2]);
      NormalizeArch(&p.architecture, &p.variant);
      if (p.architecture == "arm64" && p.variant.empty()) p.variant = "v8";
      return p;
  }
}

Platform Normalize(Platform p) {
  p.os = NormalizeOS(p.os);
  NormalizeArch(&p.architecture, &p.variant);
  return p;
}

std::string Format(const Platform& p) {
  if (p.os.empty()) return "unknown";
  std::string s = p.os;
  if (!p.architecture.empty()) s += "/" + p.architecture;
  if (!p.variant.empty()) s += "/" + p.variant;
  return s;
}

Platform DefaultPlatform() {
  static const Platform host = HostPlatform();
  return host;
}

bool Matches(const Platform& want, const Platform& have) {
  const Platform w = Normalize(want);
  const Platform h = Normalize(have);
  if (w.os != h.os || w.architecture != h.architecture || w.variant != h.variant) return false;
  return w.os_version.empty() || w.os_version == h.os_version;
}

}  // namespace kiln::image
