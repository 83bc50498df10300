#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ (committed; run
again after changing it: `python3 tests/fuzz/make_seeds.py`). Seeds are
small: real document shapes, real header forms, typical flag values and
layer tars with hostile shapes. The Dockerfile seeds of fuzz_parser and
fuzz_shell come from the conformance corpus instead (see the Makefile)."""
import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def sha(c):
    return "sha256:" + hashlib.sha256(c.encode()).hexdigest()


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------- layers
def tar(entries, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            ti = tarfile.TarInfo(e["name"])
            ti.type = e.get("type", tarfile.REGTYPE)
            ti.mode = e.get("mode", 0o644)
            ti.mtime = e.get("mtime", 1600000000)
            ti.uid = e.get("uid", 0)
            ti.gid = e.get("gid", 0)
            ti.linkname = e.get("link", "")
            ti.devmajor = e.get("major", 0)
            ti.devminor = e.get("minor", 0)
            if "pax" in e:
                ti.pax_headers = e["pax"]
            data = e.get("data", b"")
            if isinstance(data, str):
                data = data.encode()
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            t.addfile(ti, io.BytesIO(data) if ti.size else None)
    # Drop the padding to a 10 KiB record: the two end blocks are enough.
    body = buf.getvalue().rstrip(b"\0")
    return body + b"\0" * (-len(body) % 512 + 1024)


def D(name, **kw):
    return dict(dict(name=name, type=tarfile.DIRTYPE, mode=0o755), **kw)


def F(name, data="x\n", **kw):
    return dict(name=name, data=data, **kw)


def L(name, link):
    return dict(name=name, type=tarfile.SYMTYPE, link=link, mode=0o777)


def H(name, link):
    return dict(name=name, type=tarfile.LNKTYPE, link=link)


def raw_header(name, typeflag, size_field, link=b"", extra=b"", at=345):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field
    h[136:148] = b"13740000000\0"
    h[148:156] = b"        "
    h[156:157] = typeflag
    h[157:157 + len(link)] = link
    h[257:265] = b"ustar\x0000"
    h[at:at + len(extra)] = extra
    s = sum(h)
    h[148:156] = b"%06o\0 " % s
    return bytes(h)


def layers():
    seeds = {
        "plain": tar([D("etc/"), F("etc/hostname", "kiln\n"), D("usr/"), D("usr/bin/"),
                      F("usr/bin/tool", "#!/bin/sh\n", mode=0o755), L("usr/bin/alias", "tool"),
                      H("usr/bin/tool2", "usr/bin/tool"), F("etc/shadow", "", mode=0o600)]),
        "dotdot": tar([F("../escape"), F("a/../../escape2"), F("./a/./b/../c"), F("..")]),
        "absolute-names": tar([F("/etc/kiln-escape"), D("/abs/"), F("//double")]),
        # Through the parent's symlinks (fuzz_layer_apply's parent has abs ->
        # the canary, rel5 -> ../../../../../canary, root -> /, o/sub/up).
        "through-parent-symlinks": tar([F("abs/pwned"), F("rel5/pwned"), F("rel4/pwned"),
                                        F("root/dev/shm/pwned"), F("o/sub/up/pwned"),
                                        F("absfile", "overwritten\n"), F("relfile/x"),
                                        F("dot/dot/dot/x"), F("loop/x")]),
        "symlink-then-write": tar([L("evil", "/"), F("evil/tmp/kiln-pwned"),
                                   L("up", "../../../../../../.."), F("up/kiln-pwned"),
                                   L("d2", "abs"), D("d2/sub/"), F("d2/sub/x")]),
        "symlink-replaced-by-dir": tar([L("x", "/etc"), D("x/"), F("x/passwd")]),
        "hardlink-outside": tar([H("h1", "../../canary/secret"), H("h2", "/etc/passwd"),
                                 H("h3", "abs/secret"), H("h4", "absfile"), H("h5", "relfile"),
                                 H("h6", "rel5/secret"), H("h7", "etc"), H("h8", "h8")]),
        "hardlink-inside": tar([F("a", "data\n"), H("b", "a"), H("c", "b"), F("a", "new\n"),
                                H("etc/passwd", "a"), H("d/h", "d/f")]),
        "whiteouts": tar([F(".wh.etc"), F("d/.wh.f"), F("o/.wh..wh..opq"), F("o/new"),
                          F(".wh.nonexistent"), F("deep/.wh.x")]),
        "whiteout-through-symlink": tar([F("abs/.wh.secret"), F("rel5/.wh.dir"),
                                         F("abs/.wh..wh..opq"), F("root/.wh.etc"),
                                         F("o/sub/up/.wh.link"), F(".wh.abs")]),
        "whiteout-names": tar([F(".wh."), F(".wh.."), F(".wh..."), F("a/.wh.."),
                               F(".wh..wh..opq"), F(".wh..wh..opq/x")]),
        "opaque-dirs": tar([D("o/"), F("o/.wh..wh..opq"), F("o/kept"), D("o/sub/"),
                            F("o/sub/.wh..wh..opq"), F("etc/.wh..wh..opq")]),
        "devices": tar([dict(name="dev/null", type=tarfile.CHRTYPE, major=1, minor=3),
                        dict(name="dev/sda", type=tarfile.BLKTYPE, major=8, minor=0),
                        dict(name="dev/fifo", type=tarfile.FIFOTYPE),
                        dict(name="dev/wh", type=tarfile.CHRTYPE, major=0, minor=0),
                        dict(name="abs/dev", type=tarfile.CHRTYPE, major=1, minor=5)]),
        "type-changes": tar([D("x/"), F("x/a"), F("x"), D("x/"), L("x", "y"), F("x"),
                             D("etc/passwd/"), F("d", "file over dir\n"), D("d/")]),
        "modes-owners": tar([F("suid", mode=0o4755), F("sgid", mode=0o2755, uid=1000, gid=1000),
                             F("sticky", mode=0o1777, uid=65534), D("ro/", mode=0o555), F("ro/x"),
                             F("big-uid", uid=2**21 - 1, gid=2**21 - 1),
                             F("old", mtime=0), F("future", mtime=2**33)]),
        "xattrs": tar([F("cap", pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
                                     "SCHILY.xattr.user.note": "hi"}),
                       D("opq/", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
                       F("opq/x", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"}),
                       F("sec", pax={"SCHILY.xattr.security.selinux": "x"})]),
        "long-names": tar([F("a" * 99 + "/" + "b" * 150), L("l" * 200, "t" * 300),
                           F("/".join(["d"] * 120) + "/f")]),
        "gnu-longname": tar([F("g" * 120), L("s" * 110, "../" * 60)], fmt=tarfile.GNU_FORMAT),
        "pax-overrides": tar([F("p", pax={"path": "../pax-escape", "size": "5"}),
                              F("q", pax={"linkpath": "/etc", "uid": "-1", "mtime": "-1.5"})]),
        "same-path-twice": tar([F("x", "one\n"), F("x", "two\n"), D("y/"), D("y/"), L("z", "x"),
                                L("z", "y")]),
        "empty": b"\0" * 1024,
    }
    # Hand-made headers libarchive must refuse or bound.
    seeds["huge-size-truncated"] = raw_header(b"huge", b"0", b"77777777777\0") + b"x" * 512
    seeds["huge-size-base256"] = (raw_header(b"b256", b"0", b"\x80" + b"\0" * 3 + b"\x7f" + b"\xff" * 7)
                                  + b"\0" * 1024)
    seeds["negative-size-base256"] = raw_header(b"neg", b"0", b"\xff" * 12) + b"\0" * 1024
    # Old GNU sparse: one 512-byte chunk at offset 0 of a 2^40-byte file
    # (sparse map at 386, real size at 483).
    seeds["sparse-gnu"] = (raw_header(b"sparse", b"S", b"00000001000\0",
                                      extra=b"00000000000\0" + b"00000001000\0" + b"\0" * 73 +
                                      b"20000000000000\0", at=386) + b"x" * 512 + b"\0" * 1024)
    seeds["pax-sparse-huge"] = tar([F("ps", "y" * 16, pax={
        "GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "ps",
        "GNU.sparse.realsize": "1099511627776"})])
    seeds["truncated-header"] = tar([F("a")])[:700]
    seeds["bad-checksum"] = bytes(b ^ 1 if i == 150 else b for i, b in enumerate(tar([F("a")])))
    # Each hostile entry alone too, so that the first refusal does not hide
    # the others from the fuzzer.
    singles = {
        "through-parent-symlinks": [F("abs/pwned"), F("rel5/pwned"), F("rel4/pwned"),
                                    F("root/dev/shm/pwned"), F("o/sub/up/pwned"),
                                    F("absfile", "overwritten\n"), F("relfile/x")],
        "hardlink-outside": [H("h2", "/etc/passwd"), H("h3", "abs/secret"), H("h4", "absfile"),
                             H("h6", "rel5/secret"), H("h7", "etc"), H("h8", "d/f")],
        "whiteout-through-symlink": [F("abs/.wh.secret"), F("rel5/.wh.dir"),
                                     F("abs/.wh..wh..opq"), F("root/.wh.etc"),
                                     F("o/sub/up/.wh.link"), F(".wh.abs"), F("o/.wh..wh..opq")],
        "devices": [dict(name="dev/sda", type=tarfile.BLKTYPE, major=8, minor=0),
                    dict(name="abs/dev", type=tarfile.CHRTYPE, major=1, minor=5)],
        "symlink-then-write": [L("evil", "/"), L("up", "../../../../../../..")],
    }
    for group, entries in singles.items():
        for i, e in enumerate(entries):
            seeds["%s-%d" % (group, i)] = tar([e])
    seeds["symlink-then-write-evil"] = tar([L("evil", "/"), F("evil/tmp/kiln-pwned")])
    seeds["symlink-then-write-up"] = tar([L("up", "../../../../../../.."), F("up/kiln-pwned")])
    seeds["symlink-chain"] = tar([L("a", "b"), L("b", "abs"), F("a/x")])
    for name, data in seeds.items():
        write("fuzz_layer_apply", name + ".tar", data)
    for name in ["plain", "through-parent-symlinks", "hardlink-outside", "whiteouts", "devices"]:
        write("fuzz_layer_apply", name + ".tar.gz", gzip.compress(seeds[name], mtime=0))
    if shutil.which("zstd"):
        z = subprocess.run(["zstd", "-q", "-c"], input=seeds["symlink-then-write"],
                           stdout=subprocess.PIPE, check=True).stdout
        write("fuzz_layer_apply", "symlink-then-write.tar.zst", z)
    write("fuzz_layer_apply", "gzip-truncated.tar.gz", gzip.compress(seeds["plain"], mtime=0)[:90])


# ---------------------------------------------------------------- image
def images():
    cfg_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha("c"),
                "size": 1469}
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha("l"),
             "size": 3370706}
    write("fuzz_image", "oci-manifest.json", compact(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": cfg_desc, "layers": [layer]}))
    write("fuzz_image", "docker-manifest.json", json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": sha("c2"), "size": 1472},
         "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                     "digest": sha("l2"), "size": 2818413}]}, indent=3))
    write("fuzz_image", "artifact-manifest.json", compact(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "artifactType": "application/vnd.example.sbom",
         "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha("{}"),
                    "size": 2, "data": "e30="},
         "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
                     "digest": sha("z"), "size": 9,
                     "annotations": {"org.opencontainers.image.title": "a.txt"}}],
         "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                     "digest": sha("s"), "size": 10},
         "annotations": {"a": "b"}, "x-unknown": [True, None]}))
    plat = lambda a, v=None: dict({"architecture": a, "os": "linux"}, **({"variant": v} if v else {}))
    write("fuzz_image", "oci-index.json", compact(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [
             {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha("m1"),
              "size": 480, "platform": plat("amd64")},
             {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha("m2"),
              "size": 480, "platform": plat("arm64", "v8")},
             {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha("m3"),
              "size": 480, "platform": plat("arm", "v7")},
             {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha("att"),
              "size": 566, "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                                           "vnd.docker.reference.digest": sha("m1")},
              "platform": {"architecture": "unknown", "os": "unknown"}}]}))
    write("fuzz_image", "docker-list.json", compact(
        {"schemaVersion": 2,
         "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
         "manifests": [
             {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
              "digest": sha("d1"), "size": 528,
              "platform": {"architecture": "amd64", "os": "linux"}},
             {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
              "digest": sha("d2"), "size": 528,
              "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1",
                           "os.features": ["win32k"]}}]}))
    write("fuzz_image", "nested-index.json", compact(
        {"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha("i"),
             "size": 300}]}))
    config = {
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00.123456789Z",
        "config": {"User": "1000:1000", "ExposedPorts": {"80/tcp": {}},
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
                   "Volumes": {"/data": {}}, "WorkingDir": "/app", "Labels": {"a": "b"},
                   "StopSignal": "SIGQUIT",
                   "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 30000000000,
                                   "Timeout": 5000000000, "Retries": 3},
                   "ArgsEscaped": True, "OnBuild": None, "Shell": ["/bin/sh", "-c"]},
        "rootfs": {"type": "layers", "diff_ids": [sha("d1"), sha("d2")]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "ADD file:x in /",
                     "comment": "buildkit.dockerfile.v0"},
                    {"created_by": "CMD [\"sh\"]", "empty_layer": True}],
        "moby.buildkit.buildinfo.v1": "e30=",
    }
    write("fuzz_image", "config.json", compact(config))
    write("fuzz_image", "config-docker-daemon.json", compact(dict(
        config, container_config={"Hostname": "abc", "Cmd": ["/bin/sh"]}, docker_version="20.10.7",
        variant="v8", **{"os.version": "", "os.features": []})))
    write("fuzz_image", "config-minimal.json", '{"architecture":"arm","os":"linux","variant":"v7",'
          '"rootfs":{"type":"layers","diff_ids":null},"config":{}}')
    write("fuzz_image", "descriptor.json", compact(dict(cfg_desc, urls=["https://example.com/x"],
                                                        platform=plat("s390x"))))
    write("fuzz_image", "platform.txt", "linux/arm64/v8\n")
    write("fuzz_image", "schema1.json", '{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}')
    write("fuzz_image", "escapes.json", '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.'
          'manifest.v1+json","config":{"mediaType":"a","digest":"' + sha("e") + '","size":1},'
          '"layers":[],"annotations":{"\\u003c\\ud83d\\ude00":"\\u0000\\ufffd"}}')


# ---------------------------------------------------------------- registry
def registry():
    r = "fuzz_registry"
    write(r, "www-auth-bearer.txt", 'Bearer realm="https://auth.example.com/token",'
          'service="registry.example.com",scope="repository:library/alpine:pull"')
    write(r, "www-auth-fixture.txt", 'Bearer realm="http://127.0.0.1:5001/token",'
          'service="kiln-fixture",scope="repository:kiln/base:pull,push"')
    write(r, "www-auth-basic.txt", 'Basic realm="Registry Realm"')
    write(r, "www-auth-error.txt", 'Bearer realm="https://auth.example.com/token",service="reg",'
          'scope="repository:a/b:pull repository:a/c:pull,push",error="insufficient_scope"')
    write(r, "www-auth-multi.txt", 'Negotiate abc/+==, Basic realm="x", Bearer realm=x,service=y')
    write(r, "www-auth-escapes.txt", 'Bearer realm="a\\"b\\\\c", Service = "s" , , scope=')
    write(r, "token.json", '{"token":"eyJhbGciOiJSUzI1NiJ9.e30.sig","access_token":"eyJ",'
          '"expires_in":300,"issued_at":"2026-01-01T00:00:00Z"}')
    write(r, "token-access.json", '{"access_token":"tok","expires_in":60,"refresh_token":"r"}')
    write(r, "token-bad.json", '{"token":"","expires_in":-5}')
    write(r, "error-manifest-unknown.json", '{"errors":[{"code":"MANIFEST_UNKNOWN","message":'
          '"manifest unknown","detail":{"Tag":"nope"}}]}')
    write(r, "error-unauthorized.json", '{"errors":[{"code":"UNAUTHORIZED","message":'
          '"authentication required","detail":[{"Type":"repository","Class":"",'
          '"Name":"library/x","Action":"pull"}]}]}')
    write(r, "error-toomany.json", '{"errors":[{"code":"TOOMANYREQUESTS","message":"' + "m" * 400 +
          '"}]}')
    write(r, "retry-after.txt", "120\n" + "Wed, 21 Oct 2015 07:28:00 GMT")
    write(r, "retry-after-date.txt", "Sun, 06 Nov 2094 08:49:37 GMT")
    write(r, "content-range.txt", "bytes 1024-4095/4096\n")
    write(r, "content-type-manifest.txt", "application/vnd.docker.distribution.manifest.v2+json; "
          'charset=utf-8\n{"schemaVersion":2,"config":{}}')
    write(r, "location.txt", "https://user:pw@registry.example.com:5000/v2/x/blobs/uploads/u?s=1\n"
          "/v2/x/blobs/uploads/abc?_state=xyz")
    write(r, "loopback.txt", "[::1]:5000\nlocalhost:5000")


# ---------------------------------------------------------------- buildinfo
def buildinfos():
    b = "fuzz_buildinfo"
    rec = {"frontend": "dockerfile.v0",
           "attrs": {"build-arg:FOO": "bar", "context": None, "filename": "Dockerfile",
                     "source": "docker/dockerfile:1"},
           "sources": [{"type": "docker-image",
                        "ref": "docker.io/library/alpine:3.15",
                        "pin": "sha256:" + "a" * 64},
                       {"type": "git", "ref": "https://example.com/r.git#main",
                        "pin": "259a5aa5aa5bb3562d12cc631fe399f4788642c1"},
                       {"type": "http", "ref": "https://example.com/f.tar",
                        "pin": "sha256:" + "b" * 64}],
           "deps": {"base": {"frontend": "dockerfile.v0", "attrs": {"filename": "Dockerfile"},
                             "sources": [{"type": "docker-image", "ref": "docker.io/library/busybox:latest",
                                          "pin": "sha256:" + "c" * 64}]}}}
    write(b, "record.json", compact(rec))
    write(b, "record.b64", base64.b64encode(compact(rec).encode()))
    write(b, "empty.b64", "e30=")
    write(b, "null-attrs.json", '{"attrs":{"a":null,"b":""}}')
    write(b, "case-insensitive.json",
          '{"Frontend":"x","unknown":[1,2],"sources":[{"TYPE":"git","Pin":"p","extra":1},null],'
          '"deps":null}')
    write(b, "config-v1.json", compact({"architecture": "amd64", "os": "linux",
                                        "moby.buildkit.buildinfo.v1":
                                            base64.b64encode(compact(rec).encode()).decode()}))
    write(b, "config-v0.json", '{"os":"linux", "architecture":"amd64","moby.buildkit.buildinfo.v0":'
          '"e30=","moby.buildkit.cache.v0":"e30="}')
    nested = {}
    for _ in range(40):
        nested = {"deps": {"d": nested}}
    write(b, "nested-deps.json", compact(nested))
    write(b, "invalid-utf8.json", b'{"frontend":"\xff\xfe","attrs":{"\xc3":"\xed\xa0\x80"}}')


# ---------------------------------------------------------------- dockerignore
def dockerignore():
    d = "fuzz_dockerignore"
    write(d, "typical.txt", "# comment\n.git\nnode_modules\n**/*.log\n!important.log\n"
          "build/\n*.md\n!README.md\n\0.git/config\nsrc/a.log\nimportant.log\nbuild/x/y\n"
          "README.md\ndocs/guide.md\n")
    write(d, "classes.txt", "[a-c]*\n[^x]?\n\\*literal\n[\\]]\n**/[0-9][0-9]/**\n\0"
          "abc\nzz\n*literal\n]\na/12/b\n")
    write(d, "reinclude-dirs.txt", "*\n!dir/sub/keep\n!**/*.go\n\0dir/sub/keep/x\ndir/other\n"
          "a/b/c.go\n")
    write(d, "bad.txt", "[\n\0a\n")
    write(d, "stars.txt", "*a*a*a*b\n**/a/**/a/**/b\n\0aaaaaaaaaaaaaaaaaaaaaaaaaaaac\n"
          "a/a/a/a/a/a/a/a/c\n")
    write(d, "clean.txt", "/dir/../other\n./x//y/\n\0other/z\n/x/y/z\n../up\n")
    write(d, "utf8.txt", "\xc3\xa9?\n?\n\0\xc3\xa9x\n\xff\n")


# ---------------------------------------------------------------- references
def references():
    r = "fuzz_reference"
    write(r, "images.txt", "alpine\nalpine:3.15\nlibrary/alpine:latest\nuser/app\n"
          "localhost:5000/a/b:c\n127.0.0.1:5000/kiln/base@sha256:" + "a" * 64 + "\n"
          "ghcr.example/org/app:1.0@sha256:" + "b" * 64 + "\nindex.docker.io/x\n"
          "a_b.c/x\n[::1]:5000/x\n" + "a" * 64 + "\nUPPER/x\n")
    write(r, "git.txt", "https://example.com/org/repo.git\nhttps://example.com/org/repo.git#main\n"
          "https://user:secret@example.com/r.git#v1.0:sub/dir\ngit://example.com/r#abc123\n"
          "ssh://git@example.com:2222/org/r.git#refs/heads/x\ngit@example.com:org/r.git#:docs\n"
          "github.com/moby/buildkit#v0.10.0\nhttp://127.0.0.1:8080/r.git#-x\n"
          "https://example.com/r.git#main:../..\nhttps://%41:%zz@example.com/r.git\n")


# ---------------------------------------------------------------- cli options
def cli_options():
    c = "fuzz_cli_options"
    write(c, "outputs.txt", "type=image,name=example/app:1,push=true\ntype=registry,name=a,b\n"
          "type=oci,dest=out.tar,tar=false\ntype=docker,dest=-,name=\"a,b\"\n"
          "type=local,dest=out\ntype=tar,dest=-\nout\n-\n"
          "type=image,name=x,compression=zstd,compression-level=3,force-compression=true,"
          "oci-mediatypes=true,buildinfo=false,buildinfo-attrs=1\n\"type=oci\",\"dest=a\"\"b\"\n")
    write(c, "secrets.txt", "id=token,src=/run/secrets/token\nid=aws,env=AWS_KEY\n"
          "src=./key.pem\nenv=HOME\nid=a,source=b,src=c\nid=\nnovalue\n")
    write(c, "contexts.txt", "base=docker-image://alpine:3.15\nsrc=../src\n"
          "git=https://example.com/r.git#main\nlayout=oci-layout://./layout@sha256:" + "a" * 64 +
          "\n=x\nnoeq\nweb=https://example.com/ctx.tar\n")
    write(c, "platforms.txt", "linux/amd64,linux/arm64\nlinux/arm/v7,linux/arm\nlinux/amd64,\n")


if __name__ == "__main__":
    layers()
    images()
    registry()
    buildinfos()
    dockerignore()
    references()
    cli_options()
