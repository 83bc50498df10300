#!/usr/bin/env bash
# Pull of a ~200 MB image from the loopback registry into an empty store:
# `kiln pull` side by side with `skopeo copy` (Debian) to an OCI layout, in
# the same run, alternating (issue 3, "Benchmark in bench/").
#
# Usage: bench/pull_bench.sh [BUILD_DIR]            (bench/run.sh calls it)
#   BUILD_DIR   kiln's build directory (default: build); the kiln binary is
#               BUILD_DIR/src/cli/kiln unless KILN is set
#   RUNS=N      timed runs of each side (default 5), after one untimed warm-up
#   KILN=PATH   the kiln binary to measure
#
# The test image (8 layers of 25 MiB of seeded pseudo-random data, each a
# gzip -1 tar; 210 MB in all) is generated once into an OCI layout at
# BUILD_DIR/bench-pull/image and reused by later runs. Each run starts the
# loopback fixture (tests/fixture/kiln_fixture.py --no-images) in a temp state
# dir, pushes the layout with skopeo (byte-preserving for OCI -> registry; the
# manifest digest is checked), then times, per round:
#   kiln cold   kiln --root EMPTY pull REG/bench/big:latest
#   skopeo      skopeo copy docker://REG/bench/big:latest oci:EMPTY:latest
#   kiln warm   the same kiln pull again into the root just filled (skip path)
# After every kiln run the store must hold every blob of the image with the
# right size and sha256, so a failing pull cannot produce a fast number.
# Page caches are not dropped (that needs root and a quiet machine): the
# registry's files are in the page cache for both sides after the push and
# the warm-up round, so the figures measure client work, not the disk.
set -euo pipefail

BUILD_DIR=${1:-build}
RUNS=${RUNS:-5}
KILN=${KILN:-$BUILD_DIR/src/cli/kiln}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FIXTURE="$HERE/../tests/fixture/kiln_fixture.py"
CACHE="$BUILD_DIR/bench-pull"
IMAGE="$CACHE/image"
REPO=bench/big
TAG=latest

die() { echo "pull_bench: $*" >&2; exit 1; }

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
command -v skopeo >/dev/null || die "skopeo is not installed (apt-get install skopeo)"
command -v python3 >/dev/null || die "python3 is needed to generate the test image"

# The kiln side needs the `pull` command; say so rather than time nothing.
if ! [ -x "$KILN" ]; then
  die "cannot run the kiln side: no kiln binary at $KILN (build it, or set KILN=)"
fi
# (CLI11 prints the top-level help, exit 0, for an unknown subcommand's --help,
# so the usage line must name `pull`.)
if ! help=$("$KILN" pull --help 2>&1) || ! grep -q '^Usage:.* pull' <<<"$help"; then
  die "cannot run the kiln side: this kiln has no pull command ('$KILN pull --help')"
fi

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
STATE="$WORK/fixture"
cleanup() {
  local rc=$?
  if [ -f "$STATE/pids" ]; then
    python3 "$FIXTURE" stop --state "$STATE" >/dev/null 2>&1 ||
      echo "pull_bench: could not stop the fixture in $STATE" >&2
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. The test image (generated once, cached) -----------------------------
if ! [ -f "$IMAGE/index.json" ]; then
  echo "== generating the test image into $IMAGE (once; cached for later runs)"
  rm -rf "$IMAGE.tmp"
  python3 - "$IMAGE.tmp" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile

out = sys.argv[1]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)

def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

LAYERS, LAYER_BYTES = 8, 25 << 20
layers, diff_ids = [], []
for i in range(LAYERS):
    payload = random.Random(1000 + i).randbytes(LAYER_BYTES)  # fixed seed
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("data")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(d)
        f = tarfile.TarInfo("data/layer%d.bin" % i)
        f.size, f.mode, f.mtime = len(payload), 0o644, 0
        tar.addfile(f, io.BytesIO(payload))
    tar_bytes = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(tar_bytes).hexdigest())
    desc = put(gzip.compress(tar_bytes, compresslevel=1, mtime=0))
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **desc}
    layers.append(desc)

def canon(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()

config = {
    "architecture": "amd64", "os": "linux",
    "created": "2026-01-01T00:00:00Z",
    "config": {"Cmd": ["/bin/sh"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids},
    "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "pull_bench layer %d" % i}
                for i in range(LAYERS)],
}
cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", **put(canon(config))}
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cdesc, "layers": layers}
mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **put(canon(manifest))}
mdesc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
with open(os.path.join(out, "index.json"), "wb") as f:
    f.write(canon({"schemaVersion": 2, "manifests": [mdesc]}))
with open(os.path.join(out, "oci-layout"), "wb") as f:
    f.write(canon({"imageLayoutVersion": "1.0.0"}))
PY
  mv "$IMAGE.tmp" "$IMAGE"
fi

# Digest and size of every blob of the image, and the manifest digest.
read -r MANIFEST_DIGEST TOTAL_BYTES BLOB_COUNT < <(python3 - "$IMAGE" <<'PY'
import json, os, sys
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
m = idx["manifests"][0]["digest"]
man = json.load(open(os.path.join(d, "blobs", "sha256", m.split(":")[1])))
blobs = [idx["manifests"][0]] + [man["config"]] + man["layers"]
with open(os.path.join(d, "blobs.txt"), "w") as f:
    for b in blobs:
        f.write("%s %d\n" % (b["digest"].split(":")[1], b["size"]))
print(m, sum(b["size"] for b in blobs), len(blobs))
PY
)

# --- 2. Fixture and push -----------------------------------------------------
echo "== starting the loopback fixture (--no-images)"
python3 "$FIXTURE" start --state "$STATE" --auth none --no-images --owner-pid $$ >/dev/null
set -a
# shellcheck source=/dev/null
. "$STATE/env.sh"
set +a
REG=$KILN_FIXTURE_REGISTRY
REF="$REG/$REPO:$TAG"

echo "== pushing the test image to $REF with skopeo"
skopeo copy -q --dest-tls-verify=false "oci:$IMAGE:$TAG" "docker://$REF" >/dev/null
pushed=$(skopeo inspect --tls-verify=false --raw "docker://$REF" | sha256sum | cut -d' ' -f1)
[ "sha256:$pushed" = "$MANIFEST_DIGEST" ] ||
  die "the registry holds manifest sha256:$pushed, not the layout's $MANIFEST_DIGEST"
echo "   $MANIFEST_DIGEST, $BLOB_COUNT blobs, $TOTAL_BYTES bytes"

# --- 3. Timed runs -----------------------------------------------------------
now_ns() { date +%s%N; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# Every blob of the image is in the store at $1/content with the right size
# and bytes (hashed with OpenSSL through Python's hashlib, outside the timing).
check_store() {
  python3 - "$1/content/blobs/sha256" "$IMAGE/blobs.txt" <<'PY' || return 1
import hashlib, os, sys
store, want = sys.argv[1], sys.argv[2]
bad = []
for line in open(want):
    hexd, size = line.split()
    p = os.path.join(store, hexd)
    if not os.path.isfile(p) or os.path.getsize(p) != int(size):
        bad.append(hexd + " missing or wrong size")
        continue
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != hexd:
        bad.append(hexd + " has the wrong bytes")
for b in bad:
    print("pull_bench: store " + store + ": blob " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

# Same check for skopeo's OCI layout (tag present, every blob there).
check_layout() {
  grep -q "\"$MANIFEST_DIGEST\"" "$1/index.json" || return 1
  while read -r hexd size; do
    [ "$(stat -c %s "$1/blobs/sha256/$hexd" 2>/dev/null)" = "$size" ] || return 1
  done <"$IMAGE/blobs.txt"
}

declare -a T_COLD T_SKOPEO T_WARM
LAST_OUT=""
run_kiln() {  # run_kiln ROOT -> elapsed ns on stdout
  local t0 t1
  t0=$(now_ns)
  if ! LAST_OUT=$("$KILN" --root "$1" pull "$REF" 2>&1); then
    echo "$LAST_OUT" >&2; die "kiln pull failed"
  fi
  t1=$(now_ns)
  check_store "$1" || die "kiln pull exited 0 but the store is incomplete"
  echo $((t1 - t0))
}
run_skopeo() {  # run_skopeo DIR -> elapsed ns on stdout
  local t0 t1
  t0=$(now_ns)
  skopeo copy -q --src-tls-verify=false "docker://$REF" "oci:$1:$TAG" >/dev/null ||
    die "skopeo copy failed"
  t1=$(now_ns)
  check_layout "$1" || die "skopeo copy exited 0 but the layout is incomplete"
  echo $((t1 - t0))
}

echo "== warm-up round (not timed)"
r=$(mktemp -d "$WORK/kiln.XXXXXX"); run_kiln "$r" >/dev/null
echo "   kiln: $LAST_OUT"
LAST_OUT=$("$KILN" --root "$r" pull "$REF" 2>&1) || { echo "$LAST_OUT" >&2; die "kiln warm pull failed"; }
echo "   kiln again, same root: $LAST_OUT"
rm -rf "$r"
o=$(mktemp -d "$WORK/skopeo.XXXXXX"); run_skopeo "$o" >/dev/null; rm -rf "$o"

echo "== $RUNS rounds, alternating: kiln cold, skopeo, kiln warm"
for ((i = 1; i <= RUNS; i++)); do
  r=$(mktemp -d "$WORK/kiln.XXXXXX")
  cold=$(run_kiln "$r")
  warm=$(run_kiln "$r")  # same root, every blob present: the skip path
  rm -rf "$r"
  o=$(mktemp -d "$WORK/skopeo.XXXXXX")
  sk=$(run_skopeo "$o")
  rm -rf "$o"
  T_COLD+=("$cold"); T_WARM+=("$warm"); T_SKOPEO+=("$sk")
  printf '   round %d: kiln cold %.3f s, skopeo %.3f s, kiln warm %.3f s\n' "$i" \
    "$(calc "$cold/1e9")" "$(calc "$sk/1e9")" "$(calc "$warm/1e9")"
done

# --- 4. Report ---------------------------------------------------------------
stats() {  # stats NAME BYTES NS... -> one line; sets MEDIAN_NS
  local name=$1 bytes=$2; shift 2
  local sorted n rate="(nothing transferred)"
  mapfile -t sorted < <(printf '%s\n' "$@" | sort -n)
  n=${#sorted[@]}
  if ((n % 2)); then MEDIAN_NS=${sorted[n / 2]}
  else MEDIAN_NS=$(((sorted[n / 2 - 1] + sorted[n / 2]) / 2)); fi
  ((bytes > 0)) && rate="$(awk "BEGIN { printf \"%.1f\", $bytes / ($MEDIAN_NS / 1e3) }") MB/s (median)"
  printf '%-10s min %8.3f s  median %8.3f s  max %8.3f s  %s\n' "$name" \
    "$(calc "${sorted[0]}/1e9")" "$(calc "$MEDIAN_NS/1e9")" \
    "$(calc "${sorted[n - 1]}/1e9")" "$rate"
}
echo "== $REF: $BLOB_COUNT blobs, $TOTAL_BYTES bytes (MB = 10^6 bytes), $RUNS runs each"
echo "   kiln: $KILN; $(skopeo --version); load average $(cut -d' ' -f1-3 /proc/loadavg)"
stats "kiln cold" "$TOTAL_BYTES" "${T_COLD[@]}"; KILN_MED=$MEDIAN_NS
stats "skopeo" "$TOTAL_BYTES" "${T_SKOPEO[@]}"; SKOPEO_MED=$MEDIAN_NS
stats "kiln warm" 0 "${T_WARM[@]}"
printf 'ratio kiln cold / skopeo (medians): %.2f  (below 1: kiln is faster)\n' \
  "$(calc "$KILN_MED/$SKOPEO_MED")"
