#!/usr/bin/env python3
"""Writes examples/sample-oci/: a two-platform OCI image layout shaped like what
BuildKit v0.10.6 exports for `docker buildx build --platform linux/amd64,linux/arm64`,
with a moby.buildkit.buildinfo.v1 member in each config. Deterministic: running it
again gives the same bytes. Used by `make demo` until kiln builds images itself."""
import base64, gzip, hashlib, io, json, os, sys, tarfile

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "sample-oci")
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)

def put(data: bytes) -> dict:
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

def go_json(v) -> bytes:  # compact, with Go's HTML escaping (none needed here)
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()

def layer(text: str):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt"); info.size = len(data); info.mtime = 0; info.mode = 0o644
        t.addfile(info, io.BytesIO(data))
    tar = raw.getvalue()
    gz = gzip.compress(tar, mtime=0)
    return put(gz), "sha256:" + hashlib.sha256(tar).hexdigest()

index_manifests = []
for arch in ("amd64", "arm64"):
    record = {
        "frontend": "dockerfile.v0",
        "sources": [
            {"type": "docker-image", "ref": "docker.io/library/busybox:1.35",
             "pin": "sha256:20246233b52de844fa516f8c51234f1441e55e71ecdd1a1d91ebb252e1fd4603"},
            {"type": "git", "ref": "https://github.com/moby/buildkit.git#v0.10.6",
             "pin": "43a8bf9c351abf64b0865a6a0548a1de1ded40a8"},
            {"type": "http", "ref": "https://raw.githubusercontent.com/moby/moby/master/README.md",
             "pin": "sha256:419455202b0ef97e480d7f8199b26a721a417818bc0e2d106975f74323f25e6c"},
        ],
    }
    ldesc, diff_id = layer("hello from " + arch + "\n")
    config = {
        "architecture": arch,
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "created": "2022-11-01T00:00:00Z",
        "history": [{"created": "2022-11-01T00:00:00Z", "created_by": "COPY hello.txt / # buildkit", "comment": "buildkit.dockerfile.v0"}],
        "moby.buildkit.buildinfo.v1": base64.b64encode(go_json(record)).decode(),
        "os": "linux",
        "rootfs": {"diff_ids": [diff_id], "type": "layers"},
    }
    cdesc = put(go_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cdesc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **ldesc}],
    }
    mdesc = put(go_json(manifest))
    index_manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **mdesc,
                            "platform": {"architecture": arch, "os": "linux"}})

index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index_manifests}
idesc = put(go_json(index))
top = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", **idesc,
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
with open(os.path.join(out, "index.json"), "wb") as f:
    f.write(go_json(top))
with open(os.path.join(out, "oci-layout"), "wb") as f:
    f.write(b'{"imageLayoutVersion":"1.0.0"}')
print(out)
