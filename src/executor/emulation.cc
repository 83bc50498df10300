#include "executor/emulation.h"

#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <vector>

namespace kiln::executor {
namespace {

namespace fs = std::filesystem;

struct ElfArch {
  std::string_view arch;
  uint8_t elf_class;      // 1 = 32-bit, 2 = 64-bit
  uint8_t data;           // 1 = little endian, 2 = big endian
  uint16_t machine;       // e_machine
  std::string_view qemu;  // the QEMU name, for messages
};

constexpr std::array<ElfArch, 8> kArches = {{
    {"amd64", 2, 1, 0x3e, "x86_64"},
    {"386", 1, 1, 0x03, "i386"},
    {"arm64", 2, 1, 0xb7, "aarch64"},
    {"arm", 1, 1, 0x28, "arm"},
    {"ppc64le", 2, 1, 0x15, "ppc64le"},
    {"s390x", 2, 2, 0x16, "s390x"},
    {"riscv64", 2, 1, 0xf3, "riscv64"},
    {"mips64le", 2, 1, 0x08, "mips64el"},
}};

const ElfArch* Find(std::string_view arch) {
  for (const ElfArch& a : kArches) {
    if (a.arch == arch) return &a;
  }
  return nullptr;
}

// The first 20 bytes of an executable for `a`: e_ident, e_type, e_machine.
std::vector<uint8_t> ElfHeader(const ElfArch& a) {
  std::vector<uint8_t> h(20, 0);
  h[0] = 0x7f;
  h[1] = 'E';
  h[2] = 'L';
  h[3] = 'F';
  h[4] = a.elf_class;
  h[5] = a.data;
  h[6] = 1;  // EI_VERSION
  const bool le = a.data == 1;
  h[le ? 16 : 17] = 2;  // ET_EXEC
  h[le ? 18 : 19] = static_cast<uint8_t>(a.machine & 0xff);
  h[le ? 19 : 18] = static_cast<uint8_t>(a.machine >> 8);
  return h;
}

std::optional<std::vector<uint8_t>> Hex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::vector<uint8_t> out;
  for (size_t i = 0; i < s.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nibble(s[i]), lo = nibble(s[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<uint8_t>(hi * 16 + lo));
  }
  return out;
}

// One /proc/sys/fs/binfmt_misc/<name> entry, as the kernel prints it:
// "enabled", "interpreter PATH", "flags: PF", "offset 0", "magic HEX",
// "mask HEX" (extension entries have "extension .EXT" instead of magic).
struct Entry {
  bool enabled = false;
  std::string interpreter;
  std::string flags;
  size_t offset = 0;
  std::vector<uint8_t> magic, mask;
};

std::optional<Entry> ReadEntry(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  Entry e;
  std::string line;
  bool has_magic = false;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    words >> key >> value;
    if (key == "enabled") {
      e.enabled = true;
    } else if (key == "interpreter") {
      e.interpreter = value;
    } else if (key == "flags:") {
      e.flags = value;
    } else if (key == "offset") {
      e.offset = static_cast<size_t>(std::strtoul(value.c_str(), nullptr, 10));
    } else if (key == "magic") {
      std::optional<std::vector<uint8_t>> m = Hex(value);
      if (!m) return std::nullopt;
      e.magic = *m;
      has_magic = true;
    } else if (key == "mask") {
      std::optional<std::vector<uint8_t>> m = Hex(value);
      if (!m) return std::nullopt;
      e.mask = *m;
    }
  }
  if (!has_magic) return std::nullopt;
  return e;
}

bool Matches(const Entry& e, const std::vector<uint8_t>& header) {
  if (e.offset + e.magic.size() > header.size() || e.magic.empty()) return false;
  for (size_t i = 0; i < e.magic.size(); ++i) {
    const uint8_t mask = i < e.mask.size() ? e.mask[i] : 0xff;
    if ((header[e.offset + i] & mask) != (e.magic[i] & mask)) return false;
  }
  return true;
}

}  // namespace

std::string_view HostArchitecture() {
  static const std::string arch = [] {
    struct utsname u;
    if (::uname(&u) != 0) return std::string("amd64");
    const std::string m = u.machine;
    if (m == "x86_64") return std::string("amd64");
    if (m == "aarch64" || m == "arm64") return std::string("arm64");
    if (m.rfind("armv", 0) == 0) return std::string("arm");
    if (m == "i386" || m == "i686") return std::string("386");
    if (m == "ppc64le") return std::string("ppc64le");
    if (m == "s390x") return std::string("s390x");
    if (m == "riscv64") return std::string("riscv64");
    return m;
  }();
  return arch;
}

Result<std::optional<Emulator>> FindEmulator(std::string_view arch, const fs::path& binfmt_dir) {
  const ElfArch* target = Find(arch);
  if (target == nullptr) {
    std::string known;
    for (const ElfArch& a : kArches) known += (known.empty() ? "" : ", ") + std::string(a.arch);
    return Status::InvalidArgument("unknown architecture \"" + std::string(arch) +
                                   "\" (kiln knows " + known + ")");
  }
  const std::string_view host = HostArchitecture();
  if (arch == host || (host == "amd64" && arch == "386")) return std::optional<Emulator>();
  const std::vector<uint8_t> header = ElfHeader(*target);
  std::error_code ec;
  const bool mounted = fs::exists(binfmt_dir / "register", ec);
  if (mounted) {
    std::vector<fs::path> entries;
    for (const fs::directory_entry& d : fs::directory_iterator(binfmt_dir, ec)) {
      const std::string name = d.path().filename();
      if (name != "register" && name != "status") entries.push_back(d.path());
    }
    std::sort(entries.begin(), entries.end());
    for (const fs::path& p : entries) {
      std::optional<Entry> e = ReadEntry(p);
      if (!e || !e->enabled || !Matches(*e, header)) continue;
      Emulator em;
      em.name = p.filename();
      em.interpreter = e->interpreter;
      em.fix_binary = e->flags.find('F') != std::string::npos;
      return std::optional<Emulator>(std::move(em));
    }
  }
  std::string msg = "running linux/" + std::string(arch) + " programs on this " +
                    std::string(host) +
                    " machine needs an emulator, and no binfmt_misc handler for " +
                    std::string(target->qemu) + " is registered";
  if (!mounted) {
    msg += " (" + binfmt_dir.string() + " is not mounted: `mount -t binfmt_misc binfmt_misc " +
           binfmt_dir.string() + "`)";
  }
  msg +=
      "; install QEMU's with `apt-get install qemu-user-static binfmt-support`, then check with "
      "`update-binfmts --display qemu-" +
      std::string(target->qemu) + "`";
  return Status::FailedPrecondition(msg);
}

}  // namespace kiln::executor
