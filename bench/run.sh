#!/usr/bin/env bash
# Runs kiln's perftests and the reference figures they are compared with.
# Usage: bench/run.sh [--no-pull] [--no-build] [BUILD_DIR]   (make bench)
#   --no-pull   skip the registry pull benchmark (bench/pull_bench.sh, about a
#               minute: loopback fixture, 210 MB image, kiln vs skopeo)
#   --no-build  skip the end-to-end build benchmark (bench/build_bench.py,
#               10-15 minutes: kiln build vs buildah build, four Dockerfiles)
set -euo pipefail
PULL=1
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --no-pull) PULL=0; shift ;;
    --no-build) BUILD=0; shift ;;
    *) break ;;
  esac
done
BUILD_DIR=${1:-build}
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "sha_ni: $(grep -q sha_ni /proc/cpuinfo && echo yes || echo no)"
echo "== kiln sha256 (util::Sha256, OpenSSL EVP), 1 GiB in 1 MiB chunks"
"$BUILD_DIR/bench/sha256_perftest" 1024
echo "== reference: openssl speed -evp sha256, 1 MiB blocks (k = 1000 bytes/s)"
openssl speed -evp sha256 -bytes 1048576 -seconds 3 2>/dev/null | tail -1
echo "== reference: sha256sum of the same 1 GiB from a pipe"
/usr/bin/time -f "sha256sum: %e s" sh -c \
  "head -c 1073741824 /dev/zero | sha256sum >/dev/null"
echo "== kiln build-sources record, 10,000 sources"
"$BUILD_DIR/bench/buildinfo_perftest" 10000
echo "== kiln Dockerfile parser: the conformance corpus and a 10,000-instruction file"
"$BUILD_DIR/bench/parse_perftest"
echo "== kiln Dockerfile frontend: parse + convert + marshal, 10,000 instructions"
"$BUILD_DIR/bench/convert_perftest" 10000 7
if [ "$PULL" = 1 ]; then
  echo "== kiln pull vs skopeo copy, ~200 MB image from the loopback registry"
  "$(dirname "$0")/pull_bench.sh" "$BUILD_DIR"
fi
if [ "$BUILD" = 1 ]; then
  echo "== kiln build vs buildah build: cold, warm, incremental; four Dockerfiles"
  python3 "$(dirname "$0")/build_bench.py" "$BUILD_DIR"
fi
