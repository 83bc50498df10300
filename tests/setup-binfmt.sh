#!/bin/sh
# Makes foreign-architecture programs runnable for the tests (QEMU user
# emulation through binfmt_misc): mounts binfmt_misc when it is not mounted
# and enables the handlers Debian's qemu-user-static installed (binfmt-support
# registers them with the F flag, so they work inside containers). Idempotent;
# `make test` runs it. Needs root.
set -eu
dir=/proc/sys/fs/binfmt_misc
if [ ! -e "$dir/register" ]; then
  mount -t binfmt_misc binfmt_misc "$dir"
fi
if [ ! -e "$dir/qemu-aarch64" ] || [ ! -e "$dir/qemu-arm" ]; then
  update-binfmts --enable qemu-aarch64 || true
  update-binfmts --enable qemu-arm || true
fi
if [ ! -e "$dir/qemu-aarch64" ]; then
  echo "setup-binfmt: qemu-aarch64 is not registered; is qemu-user-static installed?" >&2
  exit 1
fi
