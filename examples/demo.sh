#!/usr/bin/env bash
# `make demo`: shows the build-sources record of an image, locally and through a
# real registry. Until `kiln build` lands (issue 5), the image is a sample OCI
# layout shaped like BuildKit v0.10.6's output for a two-platform build
# (examples/make-sample.py); the registry is Debian's docker-registry started on
# 127.0.0.1 by the loopback fixture, and stopped by its PIDs when the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
kiln="$BUILD_DIR/src/cli/kiln"
sample="$BUILD_DIR/examples/sample-oci"
state="$BUILD_DIR/examples/fixture"
rm -rf "$sample"
python3 examples/make-sample.py "$sample" >/dev/null

echo "== kiln buildinfo inspect $sample"
"$kiln" buildinfo inspect "$sample"
echo

echo "== starting the loopback registry (tests/fixture/kiln_fixture.py)"
python3 tests/fixture/kiln_fixture.py start --state "$state" --no-images --replace --owner-pid $$ \
  >"$state.env" 2>"$state.err" || { cat "$state.err" >&2; exit 1; }
trap 'python3 tests/fixture/kiln_fixture.py stop --state "$state" >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1090
. "$state.env"
ref="$KILN_FIXTURE_REGISTRY/demo/sample:latest"
root=$(mktemp -d)
trap 'python3 tests/fixture/kiln_fixture.py stop --state "$state" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT

echo "== kiln copy oci-layout://$sample:latest $ref"
"$kiln" --root "$root" copy "oci-layout://$sample:latest" "$ref"
echo
echo "== kiln inspect $ref"
"$kiln" --root "$root" inspect "$ref"
echo
echo "== the same record as JSON, keyed like the exporter response (--format json)"
"$kiln" buildinfo inspect --format json "$sample"
