#!/usr/bin/env bash
# `make demo`: shows the build-sources record of an image.
# Until `kiln build` lands (issue 5), the image is a sample OCI layout shaped like
# BuildKit v0.10.6's output for a two-platform build (examples/make-sample.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
sample="$BUILD_DIR/examples/sample-oci"
rm -rf "$sample"
python3 examples/make-sample.py "$sample" >/dev/null
echo "== kiln buildinfo inspect $sample"
"$BUILD_DIR/src/cli/kiln" buildinfo inspect "$sample"
echo
echo "== the same, as JSON keyed like the exporter response (--format json)"
"$BUILD_DIR/src/cli/kiln" buildinfo inspect --format json "$sample"
