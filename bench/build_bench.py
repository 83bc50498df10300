#!/usr/bin/env python3
"""End-to-end `kiln build` against `buildah build`, same Dockerfiles, one run.

Usage: bench/build_bench.py [BUILD_DIR] [options]      (bench/run.sh calls it)
  BUILD_DIR          kiln's build directory (default: build); the binary is
                     BUILD_DIR/src/cli/kiln unless --kiln is given
  --kiln PATH        the kiln binary to measure
  --cases LIST       comma-separated subset of: small,multistage,steps30,large,
                     twoplatforms
  --cold N --warm N --incr N
                     timed runs per phase and side (default 3, 5, 5)
  --large-mb MB      size of the large case (default 200)
  --push             build and push to the fixture registry instead of writing
                     an archive: kiln `build --push -t REG/REPO`; buildah
                     `build` then `push docker://REG/REPO` (a fresh
                     repository per cold run; warm and incremental runs push
                     again to the last cold run's repository)
  --markdown FILE    also write the results table (markdown) to FILE
  --keep             keep the work directory (printed) instead of deleting it

Cases (every Dockerfile starts FROM the fixture registry's busybox:latest,
named through `ARG REGISTRY`):
  small       COPY a file, RUN a command, CMD
  multistage  a build stage that generates 200 files with RUN, a final stage
              that takes them with COPY --from, then COPY of a context file
  steps30     30 steps: 10 x (ENV, COPY a context file, RUN)
  twoplatforms  the small case on the two-platform base image, built for
              linux/amd64 and linux/arm64 in one build (arm64 RUN under QEMU);
              buildah: `build --platform ... --manifest NAME`, then
              `manifest push --all NAME oci-archive:OUT.tar:latest`
  large       COPY of a generated context of 1,000 files / 180 MB (half
              pseudo-random, half text), then a RUN that writes 100 more files
              / 20 MB: ~200 MB in ~1,100 files

Phases, per case and side:
  cold   an empty state every run: a fresh `kiln --root`, a fresh buildah
         storage (`--storage-driver overlay --root R --runroot R`); the base
         image is pulled from the fixture registry each time
  warm   the same build again on the state the last cold run left (unchanged
         context): everything cached
  incr   one context file that a late step uses gets new content before each
         run (new content every time, so it is never a cache hit)
The two sides alternate run by run, and `sync` runs (untimed) before every
kiln run and every buildah build. Each figure is the wall time of the whole
process(es): kiln `build -o type=oci,dest=FILE.tar`; buildah `build
--isolation chroot --layers --tls-verify=false -t NAME CONTEXT` plus `push
NAME oci-archive:FILE.tar:latest` (buildah 1.28's --output has no OCI archive
type), so both sides end with an OCI archive on disk.

Checks: every run must exit 0 and leave an archive with an index.json; kiln's
digest must be the same in every warm rebuild of a case and equal to that of
the cold build whose cache they use; an incremental build must give a new
digest. (Cold builds differ from each other: build timestamps.)

Large case, where kiln's cold time goes: kiln's `--progress plain` lines are
timestamped as they arrive, which splits the cold build into steps and the
export (layer diff + gzip + archive; reported for every cold run); the
layers kiln built are then taken back out of its archive and compressed again
with `igzip -1` and `igzip -3` (isa-l, the library kiln uses; Debian package
isal, optional) and `gzip -1` (zlib) as references, and the context's data is
copied with `cp -a` as the copying reference. Then the same layers are
exported again, as new variants (a fresh SOURCE_DATE_EPOCH build arg per run:
the steps stay cached, every new layer is diffed, compressed and written
anew), at gzip level 1, gzip level 3 and uncompressed, timed by kiln's
`--debug stats`: whether the export's time follows the compressor's.

Everything lives in a temp dir under /tmp (deleted at the end, also on
errors and SIGTERM/SIGHUP, after a running child is ended; the loopback
fixture, tests/fixture/kiln_fixture.py, is stopped by its state dir).
Figures and results: docs/benchmarks.md. Nothing is written into the repository unless --markdown says so.
Needs root (kiln runs steps with crun; buildah mounts overlay).
"""

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "tests", "fixture", "kiln_fixture.py")
CASES = ["small", "multistage", "steps30", "large", "twoplatforms"]
# Cases built for several platforms (one index per build on both sides).
PLATFORMS = {"twoplatforms": "linux/amd64,linux/arm64"}


class BenchError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


# --- Contexts -----------------------------------------------------------------

HEADER = "ARG REGISTRY\nFROM ${REGISTRY}/busybox:latest"


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def make_small(ctx, _args):
    write(os.path.join(ctx, "Dockerfile"), HEADER + """
COPY app.txt /app/app.txt
RUN sha256sum /app/app.txt > /app/app.sum && wc -c /app/app.txt
CMD ["cat", "/app/app.txt"]
""")
    write(os.path.join(ctx, "app.txt"), "hello from the small case\n")
    return "app.txt"


def make_multistage(ctx, _args):
    write(os.path.join(ctx, "Dockerfile"), HEADER + """ AS build
COPY gen.sh /src/gen.sh
RUN sh /src/gen.sh /out
RUN tar -C /out -cf /bundle.tar . && sha256sum /bundle.tar > /bundle.sum

FROM ${REGISTRY}/busybox:latest
COPY --from=build /out /app/files
COPY --from=build /bundle.tar /bundle.sum /app/
COPY config.txt /app/config.txt
CMD ["ls", "/app"]
""")
    write(os.path.join(ctx, "gen.sh"), """set -e
mkdir -p "$1"
i=0
while [ $i -lt 200 ]; do
  seq $((i * 1000)) $((i * 1000 + 400)) > "$1/file$i.txt"
  i=$((i + 1))
done
""")
    write(os.path.join(ctx, "config.txt"), "mode=release\n")
    return "config.txt"


def make_steps30(ctx, _args):
    lines = [HEADER]
    for i in range(1, 11):
        lines.append("ENV STEP%d=value%d" % (i, i))
        lines.append("COPY f%02d.txt /steps/f%02d.txt" % (i, i))
        lines.append("RUN echo \"$STEP%d\" >> /steps/log && cat /steps/f%02d.txt >> /steps/log" % (i, i))
        write(os.path.join(ctx, "f%02d.txt" % i), "file %d\n" % i)
    write(os.path.join(ctx, "Dockerfile"), "\n".join(lines) + "\n")
    return "f10.txt"


def make_large(ctx, args):
    """1,000 files / 90% of --large-mb (half pseudo-random, half text) in data/;
    the RUN writes 100 files / the other 10% (half random, half `seq`)."""
    total = args.large_mb * 1000 * 1000
    ctx_bytes = total * 9 // 10
    run_bytes = total - ctx_bytes
    rng = random.Random(20261123)
    # A 1 MiB pool of text (words from a small vocabulary): text files are
    # slices of it, so they compress like text (~3:1 with gzip -1), not like
    # repeats (the pool is longer than deflate's 32 KiB window).
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(512)]
    words = []
    n = 0
    while n < (1 << 20):
        w = rng.choice(vocab) + (" " if rng.random() < 0.9 else "\n")
        words.append(w)
        n += len(w)
    pool = "".join(words).encode()
    weights = [rng.uniform(0.2, 1.8) for _ in range(1000)]
    scale = ctx_bytes / sum(weights)
    for i, w in enumerate(weights):
        size = int(w * scale)
        path = os.path.join(ctx, "data", "d%02d" % (i % 20), "f%04d.%s" % (i, "bin" if i % 2 else "txt"))
        if i % 2:
            data = rng.randbytes(size)
        else:
            parts, have = [], 0
            while have < size:
                off = rng.randrange(0, len(pool) - 4096)
                take = min(size - have, rng.randint(4096, 65536), len(pool) - off)
                parts.append(pool[off:off + take])
                have += take
            data = b"".join(parts)
        write(path, data)
    each = run_bytes // 100  # bytes per generated file
    numbers = max(1, each // 7)  # `seq` writes ~7 bytes per number here
    write(os.path.join(ctx, "Dockerfile"), HEADER + """
COPY data/ /data/
RUN mkdir /gen && i=0 && while [ $i -lt 50 ]; do \\
      head -c %d /dev/urandom > /gen/r$i.bin && \\
      seq $((1000000 + i * %d)) $((1000000 + i * %d + %d)) > /gen/s$i.txt && \\
      i=$((i + 1)); done && du -s /data /gen > /sizes.txt
COPY version.txt /version.txt
CMD ["cat", "/version.txt"]
""" % (each, numbers, numbers, numbers - 1))
    write(os.path.join(ctx, "version.txt"), "version 1\n")
    return "version.txt"


def make_twoplatforms(ctx, _args):
    """The small case on the two-platform base image, for linux/amd64 and
    linux/arm64 (the arm64 RUN under QEMU user emulation)."""
    write(os.path.join(ctx, "Dockerfile"), """ARG REGISTRY
FROM ${REGISTRY}/busybox-multi:latest
COPY app.txt /app/app.txt
RUN sha256sum /app/app.txt > /app/app.sum && uname -m > /app/arch
CMD ["cat", "/app/app.txt"]
""")
    write(os.path.join(ctx, "app.txt"), "hello from the two-platform case\n")
    return "app.txt"


MAKERS = {"small": make_small, "multistage": make_multistage, "steps30": make_steps30,
          "large": make_large, "twoplatforms": make_twoplatforms}


def context_stats(ctx):
    files = size = 0
    for d, _, names in os.walk(ctx):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(d, n))
    return files, size


# --- Running and timing ------------------------------------------------------

class Run:
    def __init__(self, elapsed, out, lines, start):
        self.elapsed = elapsed  # seconds, wall clock
        self.out = out  # stdout text
        self.lines = lines  # [(seconds since start, stderr line)]
        self.start = start


def run_timed(cmd, env=None, merge=False, sync=True):
    """Runs cmd, timestamps each stderr line as it arrives; raises on failure.
    Dirty pages are written back first (outside the timing), so one side's
    writeback (e.g. buildah's storage, or a deleted store) does not land in
    the other side's fsync calls."""
    if sync:
        os.sync()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT if merge else subprocess.PIPE, env=env)
    lines, out = [], []

    def read_err():
        for raw in p.stderr:
            lines.append((time.perf_counter() - t0, raw.decode(errors="replace").rstrip("\n")))

    t = None
    try:
        if not merge:
            t = threading.Thread(target=read_err, daemon=True)
            t.start()
            out.append(p.stdout.read().decode(errors="replace"))
        else:
            for raw in p.stdout:
                lines.append((time.perf_counter() - t0, raw.decode(errors="replace").rstrip("\n")))
        rc = p.wait()
    except BaseException:
        # Interrupted: the child ends too (kiln and buildah cancel on SIGTERM)
        # before the caller deletes the directories it works in.
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        raise
    if t:
        t.join()
    elapsed = time.perf_counter() - t0
    if rc != 0:
        tail = "\n".join(l for _, l in lines[-25:])
        raise BenchError("command failed (exit %d): %s\n%s\n%s" % (rc, " ".join(cmd), "".join(out), tail))
    return Run(elapsed, "".join(out), lines, t0)


def check_archive(path, who):
    try:
        with tarfile.open(path) as tar:
            names = tar.getnames()
            if "index.json" not in names and "./index.json" not in names:
                raise BenchError("%s: %s has no index.json" % (who, path))
    except (OSError, tarfile.TarError) as e:
        raise BenchError("%s: %s is not a readable tar: %s" % (who, path, e))


class Sides:
    def __init__(self, args, work, registry):
        self.args = args
        self.work = work
        self.registry = registry

    # kiln ---------------------------------------------------------------
    def kiln(self, root, ctx, out, repo=None, platforms=None):
        """Builds into an OCI archive, or with --push pushes to REGISTRY/repo."""
        cmd = [self.args.kiln, "--root", root, "build", "--progress", "plain",
               "--build-arg", "REGISTRY=" + self.registry]
        if platforms:
            cmd += ["--platform", platforms]
        if self.args.push:
            cmd += ["--push", "-t", "%s/%s:latest" % (self.registry, repo)]
        else:
            cmd += ["-o", "type=oci,dest=" + out]
        r = run_timed(cmd + [ctx])
        digest = r.out.strip().splitlines()[-1] if r.out.strip() else ""
        if not digest.startswith("sha256:"):
            raise BenchError("kiln printed no digest on stdout: %r" % r.out)
        if self.args.push:
            check_pushed(self.registry, repo, digest, "kiln")
        else:
            check_archive(out, "kiln")
        r.digest = digest
        return r

    # buildah --------------------------------------------------------------
    def buildah_base(self, store):
        return ["buildah", "--storage-driver", "overlay", "--root", os.path.join(store, "root"),
                "--runroot", os.path.join(store, "run")]

    def buildah(self, store, ctx, out, name, repo=None, platforms=None):
        base = self.buildah_base(store)
        if os.path.exists(out):
            os.unlink(out)  # outside the timing: each push writes a new archive
        if platforms:
            # One manifest list per build: drop the last one (untimed).
            subprocess.run(base + ["manifest", "rm", name], capture_output=True)
            b = run_timed(base + ["build", "--isolation", "chroot", "--layers",
                                  "--tls-verify=false", "--build-arg", "REGISTRY=" + self.registry,
                                  "--platform", platforms, "--manifest", name, ctx], merge=True)
            p = run_timed(base + ["manifest", "push", "--all", "--quiet", name,
                                  "oci-archive:" + out + ":latest"], merge=True, sync=False)
            check_archive(out, "buildah")
            r = Run(b.elapsed + p.elapsed, "", b.lines, b.start)
            r.build_s, r.push_s = b.elapsed, p.elapsed
            return r
        b = run_timed(base + ["build", "--isolation", "chroot", "--layers", "--tls-verify=false",
                              "--build-arg", "REGISTRY=" + self.registry, "-t", name, ctx],
                      merge=True)
        # No sync between build and push: one sequence, as kiln's one process.
        if self.args.push:
            dest = "docker://%s/%s:latest" % (self.registry, repo)
            p = run_timed(base + ["push", "--quiet", "--tls-verify=false", name, dest],
                          merge=True, sync=False)
            check_pushed(self.registry, repo, None, "buildah")
        else:
            p = run_timed(base + ["push", "--quiet", name, "oci-archive:" + out + ":latest"],
                          merge=True, sync=False)
            check_archive(out, "buildah")
        r = Run(b.elapsed + p.elapsed, "", b.lines, b.start)
        r.build_s, r.push_s = b.elapsed, p.elapsed
        return r

    def buildah_reset(self, store):
        remove_tree(store)


def check_pushed(registry, repo, digest, who):
    """The registry has REPO:latest (with `digest` when given)."""
    import urllib.request
    req = urllib.request.Request(
        "http://%s/v2/%s/manifests/latest" % (registry, repo), method="HEAD",
        headers={"Accept": ", ".join([
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json"])})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            got = resp.headers.get("Docker-Content-Digest", "")
    except OSError as e:
        raise BenchError("%s: %s/%s:latest is not in the registry: %s" % (who, registry, repo, e))
    if digest and got != digest:
        raise BenchError("%s: the registry has %s for %s:latest, kiln printed %s" %
                         (who, got, repo, digest))


def unmount_under(path):
    """Unmounts (lazily) whatever is still mounted under path: only our own."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == path or mp.startswith(path.rstrip("/") + "/"):
                mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def remove_tree(path):
    if os.path.lexists(path):
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
        if os.path.lexists(path):
            subprocess.run(["rm", "-rf", "--one-file-system", path], capture_output=True)


# --- Statistics and tables -------------------------------------------------

def stats(xs):
    return min(xs), statistics.median(xs), max(xs)


def fmt_s(x):
    return "%.3f" % x


def kiln_phases(run):
    """Splits a kiln --progress plain run by line arrival: returns the
    [(step, its DONE/CACHED line)] and the arrival time of the last of them."""
    out, last_done, names = [], 0.0, {}
    for t, line in run.lines:
        if line.startswith("#") and " " in line:
            tag, rest = line.split(" ", 1)
            if rest.startswith("[") or (tag not in names and not rest.startswith(("DONE", "CACHED"))):
                names.setdefault(tag, rest)  # a step's or a task's first line names it
            elif rest.startswith("DONE") or rest.startswith("CACHED"):
                out.append((names.get(tag, tag), rest))
                # The export starts when the last build step is done; the
                # exporter's own tasks ("exporting layers", ...) are part of it.
                if names.get(tag, "").startswith("["):
                    last_done = t
            elif tag == "#-":
                out.append(("(at %.3f s)" % t, rest))
    return out, last_done


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Details: the top of this file; figures: docs/benchmarks.md")
    ap.add_argument("build_dir", nargs="?", default="build",
                    help="kiln's build directory (default: build)")
    ap.add_argument("--kiln", help="the kiln binary (default: BUILD_DIR/src/cli/kiln)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, default: all")
    ap.add_argument("--cold", type=int, default=3, help="cold runs per side (default 3)")
    ap.add_argument("--warm", type=int, default=5, help="warm runs per side (default 5)")
    ap.add_argument("--incr", type=int, default=5,
                    help="incremental runs per side (default 5)")
    ap.add_argument("--large-mb", type=int, default=200,
                    help="size of the large case in MB (default 200)")
    ap.add_argument("--push", action="store_true",
                    help="build and push to the fixture registry instead of writing archives")
    ap.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.kiln = os.path.abspath(args.kiln or os.path.join(args.build_dir, "src", "cli", "kiln"))
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in MAKERS:
            ap.error("unknown case %r; the cases are %s" % (c, ", ".join(CASES)))
    if args.large_mb < 1:
        ap.error("--large-mb must be at least 1")
    if args.push and any(c in PLATFORMS for c in cases):
        ap.error("--push measures single-platform cases only (leave out %s)" %
                 ", ".join(c for c in cases if c in PLATFORMS))
    for n in ("cold", "warm", "incr"):
        if getattr(args, n) < 1:
            ap.error("--%s must be at least 1" % n)
    if not os.access(args.kiln, os.X_OK):
        ap.error("no kiln binary at %s (build the kiln target, or pass --kiln)" % args.kiln)
    if shutil.which("buildah") is None:
        ap.error("buildah is not installed (apt-get install buildah)")
    if os.geteuid() != 0:
        ap.error("run as root: kiln runs steps with crun and buildah mounts overlay")

    work = tempfile.mkdtemp(prefix="kiln-build-bench.", dir="/tmp")
    state = os.path.join(work, "fixture")
    # SIGTERM/SIGHUP end the run through the same cleanup as errors.
    def interrupt(_sig, _frame):
        raise KeyboardInterrupt()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    try:
        return bench(args, cases, work, state)
    except BenchError as e:
        print("build_bench: " + str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("build_bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if os.path.exists(os.path.join(state, "pids")):
            r = subprocess.run([sys.executable, FIXTURE, "stop", "--state", state],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print("build_bench: could not stop the fixture in %s: %s" % (state, r.stderr),
                      file=sys.stderr)
        if args.keep:
            print("build_bench: kept " + work, file=sys.stderr)
        else:
            remove_tree(work)


def versions(args):
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "machine": "%d cores, %s, kernel %s" % (os.cpu_count(), cpu, os.uname().release),
        "kiln": first([args.kiln, "version"]) + " (" + args.kiln + ")",
        "buildah": first(["buildah", "--version"]),
        "crun": first(["crun", "--version"]),
    }


def bench(args, cases, work, state):
    info = versions(args)
    for k, v in info.items():
        log("== %s: %s" % (k, v))
    log("== starting the loopback fixture in %s" % state)
    r = subprocess.run([sys.executable, FIXTURE, "start", "--state", state, "--replace",
                        "--owner-pid", str(os.getpid())], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError("the fixture did not start: " + r.stdout + r.stderr)
    env = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    registry = env["KILN_FIXTURE_REGISTRY"]
    sides = Sides(args, work, registry)
    results = []  # (case, phase, kiln[], buildah[])
    notes = []
    t_start = time.perf_counter()
    for case in cases:
        ctx = os.path.join(work, "ctx-" + case)
        os.makedirs(ctx)
        changed = MAKERS[case](ctx, args)
        files, size = context_stats(ctx)
        log("== case %s: context %d files, %.1f MB; incremental changes %s" %
            (case, files, size / 1e6, changed))
        kroot = os.path.join(work, "kiln-" + case)
        bstore = os.path.join(work, "buildah-" + case)
        kout = os.path.join(work, "kiln-%s.tar" % case)
        bout = os.path.join(work, "buildah-%s.tar" % case)
        name = "localhost/bench-" + case
        times = {p: ([], []) for p in ("cold", "warm", "incr")}
        cold_digests = []
        colds = []
        for i in range(args.cold):
            remove_tree(kroot)
            sides.buildah_reset(bstore)
            k = sides.kiln(kroot, ctx, kout, "bench/kiln-%s-%d" % (case, i), PLATFORMS.get(case))
            b = sides.buildah(bstore, ctx, bout, name, "bench/buildah-%s-%d" % (case, i),
                              PLATFORMS.get(case))
            times["cold"][0].append(k.elapsed)
            times["cold"][1].append(b.elapsed)
            cold_digests.append(k.digest)
            colds.append(k)
            log("   cold %d: kiln %.3f s  buildah %.3f s (build %.3f + push %.3f)" %
                (i + 1, k.elapsed, b.elapsed, b.build_s, b.push_s))
        warm_digests = []
        for i in range(args.warm):
            k = sides.kiln(kroot, ctx, kout, "bench/kiln-%s-%d" % (case, args.cold - 1), PLATFORMS.get(case))
            b = sides.buildah(bstore, ctx, bout, name, "bench/buildah-%s-%d" % (case, args.cold - 1),
                              PLATFORMS.get(case))
            times["warm"][0].append(k.elapsed)
            times["warm"][1].append(b.elapsed)
            warm_digests.append(k.digest)
            log("   warm %d: kiln %.3f s  buildah %.3f s (build %.3f + push %.3f)  %s" %
                (i + 1, k.elapsed, b.elapsed, b.build_s, b.push_s, k.digest[:19]))
        if len(set(warm_digests)) != 1:
            raise BenchError("%s: kiln's warm rebuilds gave different digests: %s" %
                             (case, ", ".join(warm_digests)))
        if warm_digests[0] != cold_digests[-1]:
            raise BenchError("%s: kiln's warm digest %s differs from the digest %s of the cold "
                             "build whose cache it used" % (case, warm_digests[0], cold_digests[-1]))
        if len(set(cold_digests)) > 1:
            # Expected: without SOURCE_DATE_EPOCH the config's `created` and
            # the mtimes of directories a step creates are the build's time.
            notes.append("%s: %d cold builds gave %d different kiln digests (build timestamps)" %
                         (case, len(cold_digests), len(set(cold_digests))))
        prev = warm_digests[0]
        for i in range(args.incr):
            with open(os.path.join(ctx, changed), "a") as f:
                f.write("change %d\n" % (i + 1))
            k = sides.kiln(kroot, ctx, kout, "bench/kiln-%s-%d" % (case, args.cold - 1), PLATFORMS.get(case))
            b = sides.buildah(bstore, ctx, bout, name, "bench/buildah-%s-%d" % (case, args.cold - 1),
                              PLATFORMS.get(case))
            if k.digest == prev:
                raise BenchError("%s: kiln gave the same digest %s after %s changed" %
                                 (case, prev, changed))
            prev = k.digest
            times["incr"][0].append(k.elapsed)
            times["incr"][1].append(b.elapsed)
            log("   incr %d: kiln %.3f s  buildah %.3f s (build %.3f + push %.3f)" %
                (i + 1, k.elapsed, b.elapsed, b.build_s, b.push_s))
        for p in ("cold", "warm", "incr"):
            results.append((case, p, times[p][0], times[p][1]))
        if case == "large" and not args.push:
            notes.extend(large_analysis(args, work, ctx, kout, colds))
            notes.extend(reexport_analysis(args, sides, kroot, ctx, kout))
        remove_tree(kroot)
        sides.buildah_reset(bstore)
        remove_tree(ctx)
        for f in (kout, bout):
            if os.path.exists(f):
                os.unlink(f)
    total = time.perf_counter() - t_start
    table = make_table(results)
    log("")
    log(table)
    for n in notes:
        log("note: " + n)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    log("== %d cold / %d warm / %d incremental runs per side; benchmark time %.0f s; "
        "load average %s" % (args.cold, args.warm, args.incr, total, load))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("Machine: %s; %s; %s; %s\n\n" % (info["machine"], info["kiln"], info["buildah"],
                                                   info["crun"]))
            f.write("Output: %s\n\n" % ("pushed to the loopback registry" if args.push
                                         else "an OCI archive"))
            f.write(table + "\n")
            for n in notes:
                f.write("\n- " + n)
            f.write("\n")
    return 0


def make_table(results):
    rows = ["| case | phase | kiln min / median / max (s) | buildah min / median / max (s) "
            "| kiln / buildah (medians) |", "|---|---|---|---|---|"]
    for case, phase, k, b in results:
        ks, bs = stats(k), stats(b)
        rows.append("| %s | %s | %s / **%s** / %s | %s / **%s** / %s | %.2f |" % (
            case, phase, fmt_s(ks[0]), fmt_s(ks[1]), fmt_s(ks[2]),
            fmt_s(bs[0]), fmt_s(bs[1]), fmt_s(bs[2]), ks[1] / bs[1]))
    return "\n".join(rows)


def built_layers_tar(archive, dest):
    """Writes the layers an OCI archive adds to its base image (every layer but
    the first), uncompressed and concatenated, to dest: the bytes kiln's export
    diffed and compressed. Returns (compressed bytes, uncompressed bytes)."""
    with tarfile.open(archive) as tar:
        def blob(d):
            return tar.extractfile("blobs/sha256/" + d.split(":", 1)[1])
        idx = json.load(tar.extractfile("index.json"))
        man = json.load(blob(idx["manifests"][0]["digest"]))
        gz = 0
        with open(dest, "wb") as out:
            for layer in man["layers"][1:]:
                gz += layer["size"]
                with gzip.GzipFile(fileobj=blob(layer["digest"])) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        return gz, os.path.getsize(dest)


def large_analysis(args, work, ctx, kout, colds):
    """Where kiln's cold time goes in the large case; returns note lines."""
    notes = []
    exports = []
    for k in colds:
        _, done = kiln_phases(k)
        exports.append(k.elapsed - done)
    log("   export (last step done -> exit) of each cold run: %s s" %
        ", ".join("%.3f" % e for e in exports))
    cold = colds[-1]
    steps, last_done = kiln_phases(cold)
    log("== large case, kiln's last cold run by phase (line arrival times):")
    for label, rest in steps:
        log("   %-70.70s %s" % (label, rest))
    export_s = statistics.median(exports)
    log("   export (last step done -> exit), median of the cold runs: %.3f s" % export_s)
    tar_path = os.path.join(work, "layer.tar")
    gz_size, raw = built_layers_tar(kout, tar_path)
    log("   the built layers: %.1f MB of tar, %.1f MB gzip (ratio %.3f)" %
        (raw / 1e6, gz_size / 1e6, gz_size / raw))
    refs = {}
    for name, cmd in (("igzip -1 (isa-l)", ["igzip", "-1", "-c", tar_path]),
                      ("igzip -3 (isa-l)", ["igzip", "-3", "-c", tar_path]),
                      ("gzip -1 (zlib)", ["gzip", "-1", "-c", tar_path])):
        if shutil.which(cmd[0]) is None:
            log("   %s: not installed" % cmd[0])
            continue
        best = None
        for _ in range(2):
            t0 = time.perf_counter()
            with open(os.devnull, "wb") as dn:
                subprocess.run(cmd, stdout=dn, check=True)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        refs[name] = best
        log("   %s of those tars: %.3f s (%.0f MB/s)" % (name, best, raw / 1e6 / best))
    copy_dst = os.path.join(work, "copy-ref")
    t0 = time.perf_counter()
    subprocess.run(["cp", "-a", os.path.join(ctx, "data"), copy_dst], check=True)
    copy_s = time.perf_counter() - t0
    remove_tree(copy_dst)
    os.unlink(tar_path)
    log("   cp -a of the context's data/ (%.0f MB): %.3f s" % (context_stats(os.path.join(ctx, "data"))[1] / 1e6, copy_s))
    notes.append("large: kiln cold %.3f s (last run), export (diff + gzip + archive; median of "
                 "the cold runs) %.3f s = "
                 "%.0f MB/s of layer tar; igzip -1 alone %s; gzip -1 alone %s; cp -a of the "
                 "context %.3f s" % (
                     cold.elapsed, export_s, raw / 1e6 / export_s,
                     ("%.3f s" % refs["igzip -1 (isa-l)"]) if "igzip -1 (isa-l)" in refs else "n/a",
                     ("%.3f s" % refs["gzip -1 (zlib)"]) if "gzip -1 (zlib)" in refs else "n/a",
                     copy_s))
    return notes



def reexport_analysis(args, sides, kroot, ctx, kout):
    """Exports the large case's layers again as new variants: a fresh
    SOURCE_DATE_EPOCH build arg each run (the Dockerfile declares no such
    ARG, so every step stays cached) makes every new layer be diffed,
    compressed, stored and put in the archive anew. Run at gzip level 1 (the
    default), gzip level 3 (isa-l's slower level) and uncompressed; the times
    are kiln's `--debug stats` phases. Returns note lines."""
    notes = []
    rng = random.Random()
    log("== large case, the same layers exported again (--debug stats; %d runs each):" % args.cold)
    for label, opts in (("gzip level 1 (default)", ""),
                        ("gzip level 3", ",compression-level=3"),
                        ("uncompressed", ",compression=uncompressed")):
        exports, layers = [], []
        for _ in range(args.cold):
            subprocess.run(["sync"], check=True)
            cmd = [args.kiln, "--root", kroot, "build", "--debug", "stats", "--progress", "quiet",
                   "--build-arg", "REGISTRY=" + sides.registry,
                   "--build-arg", "SOURCE_DATE_EPOCH=%d" % rng.randrange(10 ** 8, 10 ** 9),
                   "-o", "type=oci,dest=" + kout + opts, ctx]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                raise BenchError("kiln re-export (%s) failed: %s" % (label, r.stderr[-2000:]))
            m = re.search(r"^export \(layers\+image\+outputs\)\s+\d+\s+([\d.]+)", r.stderr, re.M)
            n = re.search(r"^  layers \(diff, compress, store\)\s+\d+\s+([\d.]+)", r.stderr, re.M)
            if not m or not n:
                raise BenchError("kiln --debug stats printed no export phase: %s" % r.stderr[-2000:])
            exports.append(float(m.group(1)) / 1000)
            layers.append(float(n.group(1)) / 1000)
        e, l = statistics.median(exports), statistics.median(layers)
        log("   %-24s export %.3f s (min %.3f, max %.3f), of which layers %.3f s" %
            (label, e, min(exports), max(exports), l))
        notes.append("large, layers exported again, %s: export %.3f s, of which layers %.3f s "
                     "(medians of %d)" % (label, e, l, args.cold))
    check_archive(kout, "kiln")
    return notes

if __name__ == "__main__":
    sys.exit(main())
