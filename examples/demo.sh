#!/usr/bin/env bash
# `make demo`: builds examples/Dockerfile with `kiln build` and shows the
# record of its build sources. The base image comes from Debian's
# docker-registry and the ADDed files from an HTTP server, both started on
# 127.0.0.1 by the loopback fixture (tests/fixture/kiln_fixture.py) and
# stopped by their PIDs when the demo ends. RUN steps run in crun.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
kiln="$(pwd)/$BUILD_DIR/src/cli/kiln"
work="$(pwd)/$BUILD_DIR/examples"
state="$work/fixture"
mkdir -p "$work"

echo "== starting the loopback fixture (registry, HTTP server, git daemon)"
python3 tests/fixture/kiln_fixture.py start --state "$state" --replace --owner-pid $$ \
  >"$state.env" 2>"$state.err" || { cat "$state.err" >&2; exit 1; }
root=$(mktemp -d)
trap 'python3 tests/fixture/kiln_fixture.py stop --state "$state" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT
# shellcheck disable=SC1090
. "$state.env"
echo "   registry $KILN_FIXTURE_REGISTRY, HTTP $KILN_FIXTURE_HTTP"
echo

echo "== kiln build examples/ (cold)"
"$kiln" --root "$root" build --progress plain \
  --build-arg "REGISTRY=$KILN_FIXTURE_REGISTRY" --build-arg "HTTP=$KILN_FIXTURE_HTTP" \
  -t demo/hello:latest -o "type=oci,dest=$work/demo.tar" \
  --metadata-file "$work/metadata.json" examples
echo

echo "== kiln build examples/ again (everything comes from the cache)"
start=$(date +%s%N)
digest=$("$kiln" --root "$root" build --progress quiet \
  --build-arg "REGISTRY=$KILN_FIXTURE_REGISTRY" --build-arg "HTTP=$KILN_FIXTURE_HTTP" \
  -t demo/hello:latest -o "type=oci,dest=$work/demo.tar" examples)
echo "   image $digest in $(( ($(date +%s%N) - start) / 1000000 )) ms"
echo

echo "== the same build pushed to the loopback registry (--push), read back with kiln inspect"
"$kiln" --root "$root" build --progress quiet --push \
  --build-arg "REGISTRY=$KILN_FIXTURE_REGISTRY" --build-arg "HTTP=$KILN_FIXTURE_HTTP" \
  -t "$KILN_FIXTURE_REGISTRY/demo/hello:latest" examples >/dev/null
"$kiln" --root "$root" inspect "$KILN_FIXTURE_REGISTRY/demo/hello:latest" | head -n 12
echo

echo "== the build sources embedded in the image (kiln buildinfo inspect $BUILD_DIR/examples/demo.tar)"
"$kiln" buildinfo inspect "$work/demo.tar"
echo

echo "== --metadata-file $BUILD_DIR/examples/metadata.json (the exporter response, decoded)"
cat "$work/metadata.json"
echo
