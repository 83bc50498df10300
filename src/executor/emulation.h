// Emulation: whether programs built for another architecture can run here,
// and through which binfmt_misc handler (QEMU user emulation).
//
// The kernel runs a foreign ELF binary through the interpreter of the first
// enabled binfmt_misc entry whose magic, under its mask, matches the file's
// first bytes. FindEmulator() asks the same question for an architecture: it
// builds the ELF header such a program starts with (class, byte order, type
// ET_EXEC, machine) and matches it against every entry under
// /proc/sys/fs/binfmt_misc. An entry registered with the F flag (as
// Debian's qemu-user-static registers its handlers) has its interpreter
// opened by the kernel at registration, so it works inside a container's
// root; without F, the interpreter must be visible at its path inside the
// container (the executor bind-mounts it there).
//
// Architectures use Go's names, as image platforms do: amd64, 386, arm64,
// arm, ppc64le, s390x, riscv64, mips64le.
//
// Thread-safety: stateless functions.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "util/status.h"

namespace kiln::executor {

// The machine kiln runs on, as a Go architecture name ("amd64", "arm64", ...).
std::string_view HostArchitecture();

struct Emulator {
  std::string name;                   // the binfmt_misc entry, e.g. "qemu-aarch64"
  std::filesystem::path interpreter;  // e.g. /usr/libexec/qemu-binfmt/aarch64-binfmt-P
  bool fix_binary = false;            // the F flag: usable inside any root
};

// nullopt when `arch` runs natively (the host's, and 386 on amd64); the
// registered emulator otherwise. kFailedPrecondition when none is
// registered, saying how to install one; kInvalidArgument for an
// architecture kiln does not know.
Result<std::optional<Emulator>> FindEmulator(
    std::string_view arch, const std::filesystem::path& binfmt_dir = "/proc/sys/fs/binfmt_misc");

}  // namespace kiln::executor
