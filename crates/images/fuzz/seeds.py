#!/usr/bin/env python3
"""Writes the seed corpora of the berth-images fuzz targets into seeds/<target>/.

Seeds are small hand-made documents and tars (every tar feature the applier handles, and
the attacks it must refuse) plus pieces of the fixtures when they exist
($BERTH_FIXTURES, default /var/cache/berth-fixtures; built by tests/fixtures/build-images.sh).
Deterministic: the same inputs give the same files. Usage: seeds.py [out-dir]
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "seeds")
FIXTURES = os.environ.get("BERTH_FIXTURES", "/var/cache/berth-fixtures")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# Selector bytes of manifest_parse (index into its CONTENT_TYPES).
SEL_NONE, SEL_OCI_MANIFEST, SEL_OCI_INDEX, SEL_DOCKER_MANIFEST, SEL_DOCKER_LIST, SEL_SCHEMA1 = range(6)


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- layer_apply


def tar_bytes(build, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        build(t)
    # Drop the record padding after the end-of-archive marker (small seeds fuzz faster).
    data = buf.getvalue().rstrip(b"\0")
    end = -(-len(data) // 512) * 512
    return data.ljust(end, b"\0") + b"\0" * 1024


def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, **kw):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 1700000000
    info.uid = kw.pop("uid", 0)
    info.gid = kw.pop("gid", 0)
    for k, v in kw.items():
        setattr(info, k, v)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, io.BytesIO(data)
    return info, None


def add(t, *args, **kw):
    info, f = member(*args, **kw)
    t.addfile(info, f)


def layers():
    def basic(t):
        add(t, "etc", tarfile.DIRTYPE, mode=0o755)
        add(t, "etc/hostname", data=b"berth\n")
        add(t, "etc/passwd", data=b"root:x:0:0::/root:/bin/sh\n", uid=0, gid=0)
        add(t, "bin", tarfile.DIRTYPE, mode=0o755)
        add(t, "bin/sh", data=b"\x7fELF" + b"\0" * 60, mode=0o755)
        add(t, "bin/ash", tarfile.LNKTYPE, linkname="bin/sh")
        add(t, "bin/busybox", tarfile.SYMTYPE, linkname="sh")
        add(t, "home/user", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000)
        add(t, "tmp", tarfile.DIRTYPE, mode=0o1777)

    def whiteouts(t):
        add(t, "etc", tarfile.DIRTYPE, mode=0o755)
        add(t, "etc/.wh.hostname")
        add(t, "var/cache", tarfile.DIRTYPE, mode=0o755)
        add(t, "var/cache/.wh..wh..opq")
        add(t, "var/cache/new", data=b"x")
        add(t, ".wh..wh.plnk", tarfile.DIRTYPE)

    def special(t):
        add(t, "dev", tarfile.DIRTYPE, mode=0o755)
        add(t, "dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        add(t, "dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0)
        add(t, "run/fifo", tarfile.FIFOTYPE, mode=0o600)
        add(t, "dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)

    def xattrs(t):
        info, f = member("bin/ping", data=b"ping", mode=0o4755)
        info.pax_headers = {
            "SCHILY.xattr.user.comment": "hello",
            "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00",
            "SCHILY.xattr.trusted.overlay.opaque": "y",
            "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0",
        }
        t.addfile(info, f)
        info, f = member("long/" + "d" * 120 + "/" + "f" * 150, data=b"long")
        t.addfile(info, f)
        info, f = member("paxname", data=b"p")
        info.pax_headers = {"path": "renamed/by/pax", "mtime": "1700000000.5"}
        t.addfile(info, f)

    def attacks(t):
        add(t, "../escape", data=b"x")
        add(t, "/abs/file", data=b"x")
        add(t, "a/../../b", data=b"x")
        add(t, "link", tarfile.SYMTYPE, linkname="/")
        add(t, "link/etc/shadow", data=b"x")
        add(t, "up", tarfile.SYMTYPE, linkname="../../../..")
        add(t, "up/x", data=b"x")
        add(t, "hard", tarfile.LNKTYPE, linkname="../../etc/passwd")
        add(t, "hard2", tarfile.LNKTYPE, linkname="link")
        add(t, "dir", tarfile.DIRTYPE)
        add(t, "dir", data=b"now a file")
        add(t, "dir", tarfile.DIRTYPE)
        add(t, "", data=b"empty name")
        add(t, ".", tarfile.DIRTYPE, mode=0o700)

    def sparse_gnu(t):
        add(t, "gnu/" + "n" * 200, data=b"gnu long name")
        add(t, "gnu/link", tarfile.SYMTYPE, linkname="t" * 300)

    seeds = {
        "basic": tar_bytes(basic),
        "whiteouts": tar_bytes(whiteouts),
        "special": tar_bytes(special),
        "xattrs": tar_bytes(xattrs),
        "attacks": tar_bytes(attacks),
        "gnu": tar_bytes(sparse_gnu, tarfile.GNU_FORMAT),
        "ustar": tar_bytes(basic, tarfile.USTAR_FORMAT),
        "empty": b"\0" * 1024,
        "trailing": tar_bytes(basic) + b"trailing garbage",
    }
    # A few small entries of the busybox fixture layer.
    layer = os.path.join(FIXTURES, "busybox/oci/blobs/sha256")
    if os.path.isdir(layer):
        big = max((os.path.join(layer, n) for n in os.listdir(layer)), key=os.path.getsize)
        try:
            with tarfile.open(big, "r:*") as src:
                picked = []
                for m in src:
                    if m.size <= 512 and len(picked) < 24:
                        picked.append((m, src.extractfile(m).read() if m.isfile() else None))

                def fixture(t):
                    for m, data in picked:
                        t.addfile(m, io.BytesIO(data) if data is not None else None)

                seeds["busybox-part"] = tar_bytes(fixture)
        except tarfile.TarError:
            pass
    for name, data in seeds.items():
        write("layer_apply", name, b"\0" + data)
    write("layer_apply", "basic.gz", b"\x06" + gzip.compress(seeds["basic"], mtime=0))
    if shutil.which("zstd"):
        z = subprocess.run(["zstd", "-q", "-c"], input=seeds["whiteouts"], stdout=subprocess.PIPE, check=True)
        write("layer_apply", "whiteouts.zst", b"\x07" + z.stdout)


# ------------------------------------------------------------- manifest_parse


def manifests():
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = b"layer"
    desc = lambda mt, blob, **kw: dict({"mediaType": mt, "digest": digest(blob), "size": len(blob)}, **kw)
    oci = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", layer),
                   desc("application/vnd.oci.image.layer.v1.tar+zstd", layer + b"z", annotations={"a": "b"})],
        "annotations": {"org.opencontainers.image.created": "2023-11-14T22:13:20Z"},
    }
    docker = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc("application/vnd.docker.container.image.v1+json", config),
        "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", layer),
                   desc("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", b"f",
                        urls=["https://example.com/f"])],
    }
    artifact = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example+type",
        "config": desc("application/vnd.oci.empty.v1+json", b"{}", data="e30="),
        "layers": [desc("application/octet-stream", b"blob")],
        "subject": desc(OCI_MANIFEST, b"subject"),
    }
    plat = lambda arch, variant=None: dict({"os": "linux", "architecture": arch},
                                           **({"variant": variant} if variant else {}))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            desc(OCI_MANIFEST, json.dumps(oci).encode(), platform=plat("amd64")),
            desc(OCI_MANIFEST, b"arm", platform=plat("arm64", "v8")),
            desc(OCI_MANIFEST, b"arm7", platform=plat("arm", "v7")),
            desc(OCI_MANIFEST, b"att", platform={"os": "unknown", "architecture": "unknown"},
                 annotations={"vnd.docker.reference.type": "attestation-manifest"}),
        ],
    }
    docker_list = dict(index, mediaType=DOCKER_LIST,
                       manifests=[dict(m, mediaType=DOCKER_MANIFEST) for m in index["manifests"][:3]])
    schema1 = {"schemaVersion": 1, "name": "library/busybox", "tag": "latest", "architecture": "amd64",
               "fsLayers": [{"blobSum": digest(layer)}], "history": [{"v1Compatibility": "{}"}],
               "signatures": []}
    no_media_type = {k: v for k, v in oci.items() if k != "mediaType"}
    seeds = [
        ("oci", SEL_NONE, oci), ("oci-ct", SEL_OCI_MANIFEST, oci), ("docker", SEL_DOCKER_MANIFEST, docker),
        ("artifact", SEL_NONE, artifact), ("index", SEL_OCI_INDEX, index), ("list", SEL_DOCKER_LIST, docker_list),
        ("schema1", SEL_SCHEMA1, schema1), ("bare", SEL_OCI_MANIFEST, no_media_type),
        ("bare-index", SEL_NONE, {k: v for k, v in index.items() if k != "mediaType"}),
        ("mismatch", SEL_OCI_INDEX, oci),
    ]
    for name, sel, doc in seeds:
        write("manifest_parse", name, bytes([sel]) + json.dumps(doc).encode())
    write("manifest_parse", "dupkey", bytes([SEL_NONE]) + b'{"schemaVersion":2,"schemaVersion":2,"layers":[]}')
    oci_dir = os.path.join(FIXTURES, "busybox/oci")
    if os.path.isdir(oci_dir):
        with open(os.path.join(oci_dir, "index.json"), "rb") as f:
            write("manifest_parse", "fixture-index", bytes([SEL_NONE]) + f.read())
        blobs = os.path.join(oci_dir, "blobs/sha256")
        for n in sorted(os.listdir(blobs)):
            p = os.path.join(blobs, n)
            if os.path.getsize(p) < 64 * 1024:
                with open(p, "rb") as f:
                    data = f.read()
                target = "manifest_parse" if b"schemaVersion" in data else "image_config"
                prefix = bytes([SEL_NONE]) if target == "manifest_parse" else b""
                write(target, "fixture-" + n[:12], prefix + data)
    archive = os.path.join(FIXTURES, "busybox/docker-archive.tar")
    if os.path.isfile(archive):
        with tarfile.open(archive) as t:
            for m in t:
                if m.isfile() and m.size < 64 * 1024 and (m.name.endswith(".json") or m.name.endswith("/json")):
                    data = t.extractfile(m).read()
                    write("image_config", "archive-" + m.name.replace("/", "_")[:40], data)


# ---------------------------------------------------------------- image_config


def configs():
    full = {
        "created": "2023-11-14T22:13:20.123456789Z",
        "author": "berth",
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "os.version": "10.0",
        "os.features": ["x"],
        "config": {
            "User": "1000:1000", "ExposedPorts": {"80/tcp": {}}, "Env": ["PATH=/bin", "A=b=c"],
            "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "Volumes": {"/data": {}},
            "WorkingDir": "/srv", "Labels": {"a": "b"}, "StopSignal": "SIGTERM",
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000, "Retries": 3},
            "OnBuild": ["RUN x"], "Shell": ["/bin/sh", "-c"], "ArgsEscaped": True,
        },
        "rootfs": {"type": "layers", "diff_ids": [digest(b"a"), digest(b"b")]},
        "history": [{"created_by": "ADD a"}, {"created_by": "ENV x", "empty_layer": True},
                    {"created_by": "ADD b", "comment": "c"}],
    }
    write("image_config", "full", json.dumps(full))
    write("image_config", "minimal", '{"rootfs":{"type":"layers","diff_ids":[]}}')
    write("image_config", "nulls", '{"config":null,"history":null,"rootfs":{"type":"layers","diff_ids":null}}')
    write("image_config", "badtype", '{"rootfs":{"type":"zfs","diff_ids":[]}}')


# ------------------------------------------------------------------- reference


def references():
    for i, s in enumerate([
        "busybox", "busybox:1.36", "library/busybox:latest", "docker.io/library/busybox",
        "index.docker.io/busybox", "localhost/app", "localhost:5000/team/app:1.2",
        "127.0.0.1:5000/x/y@sha256:" + "a" * 64, "ghcr.io/x/y:t@sha256:" + "b" * 64,
        "[::1]:5000/a/b", "Example.COM/a", "a__b/c--d.e_f", "sha256:" + "c" * 64, "c" * 64,
        "busybox@sha512:" + "d" * 128, "UPPER/case", "a/b/c/d/e/f:" + "t" * 128, "x:99999/y",
    ]):
        write("reference", "r%02d" % i, s)


# ------------------------------------------------------------------ challenges


def challenges():
    for i, s in enumerate([
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
        'Basic realm="Registry Realm"',
        'Basic realm="a", Bearer realm="b",service="c"',
        'Bearer realm="x\\"y", error="invalid_token"',
        "Negotiate abc123==, Basic realm=x",
        'Bearer realm=unquoted,service=s , , Basic',
        "",
    ]):
        write("challenges", "c%02d" % i, s)


# --------------------------------------------------------------- docker_config


def docker_configs():
    import base64
    auth = base64.b64encode(b"user:pass").decode()
    for i, c in enumerate([
        {"auths": {"https://index.docker.io/v1/": {"auth": auth}, "127.0.0.1:5000": {"auth": auth}}},
        {"auths": {"http://ghcr.io/v2/": {"username": "u", "password": "p"}}},
        {"auths": {"127.0.0.1:5000": {"identitytoken": "tok"}}},
        {"auths": {"127.0.0.1:5000": {}}, "credsStore": "desktop"},
        {"credHelpers": {"ghcr.io": "gcloud", "127.0.0.1:5000": ""}, "auths": None},
        {"auths": {"127.0.0.1:5000": {"auth": "!!notbase64"}}},
        {"auths": {"registry-1.docker.io": {"auth": base64.b64encode(b"nocolon").decode()}}},
        {"auths": [], "psFormat": "table"},
    ]):
        write("docker_config", "d%02d" % i, json.dumps(c))
    write("docker_config", "empty", "")
    write("docker_config", "spaces", " \n")


# ---------------------------------------------------------------- archive_load

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def archive(entries, end=True):
    """A tar of (name, bytes) regular files and ready TarInfo tuples (info, data-or-None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            if isinstance(e[0], tarfile.TarInfo):
                info, data = e
                t.addfile(info, io.BytesIO(data) if data is not None else None)
            else:
                name, data = e
                info, f = member(name, data=data if isinstance(data, bytes) else data.encode())
                t.addfile(info, f)
    data = buf.getvalue().rstrip(b"\0")
    data = data.ljust(-(-len(data) // 512) * 512, b"\0")
    return data + (b"\0" * 1024 if end else b"")


def link(name, target, kind=tarfile.SYMTYPE):
    return member(name, kind, linkname=target)[0], None


def directory(name):
    return member(name, tarfile.DIRTYPE, mode=0o755)[0], None


def fix_checksum(data, at):
    """Recomputes the checksum of the tar header at byte `at`."""
    block = bytearray(data[at:at + 512])
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return data[:at] + bytes(block) + data[at + 512:]


def header_offsets(data):
    """Offsets of the headers of `data` (a tar without extension headers)."""
    out, at = [], 0
    while at + 512 <= len(data) and data[at:at + 512] != b"\0" * 512:
        out.append(at)
        size = int(data[at + 124:at + 136].rstrip(b"\0 ") or b"0", 8)
        at += 512 + -(-size // 512) * 512
    return out


def image_config(diff_ids, arch="amd64", base=None):
    config = dict(base) if base else {
        "created": "2023-11-14T22:13:20Z", "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
        "history": [{"created_by": "berth seeds.py"}],
    }
    config["architecture"] = arch
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config["history"] = [{"created_by": "layer %d" % i} for i in range(len(diff_ids))]
    return json.dumps(config, separators=(",", ":")).encode()


def small_layers():
    def one(t):
        add(t, "etc/hostname", data=b"berth\n")

    def two(t):
        add(t, "bin", tarfile.DIRTYPE, mode=0o755)
        add(t, "bin/sh", data=b"#!sh\n", mode=0o755)
        add(t, "etc/.wh.hostname")

    return tar_bytes(one), tar_bytes(two)


def docker_archive(layers, tags=("busybox:latest",), symlinked=False, config_base=None,
                   extra=(), manifest_hook=None, legacy_files=False):
    """A `docker save` archive (Docker <= 24 layout). `layers`: (blob as stored, diff tar)."""
    diff_ids = [digest(tar) for _, tar in layers]
    config = image_config(diff_ids, base=config_base)
    config_name = digest(config)[7:] + ".json"
    entries, paths, parent = [(config_name, config)], [], ""
    for i, (blob, tar) in enumerate(layers):
        lid = hashlib.sha256((parent + diff_ids[i]).encode()).hexdigest()
        if legacy_files:
            entries.append(directory(lid))
        if symlinked:
            # skopeo's layout: the layer at the top, linked from <id>/layer.tar.
            entries.append((diff_ids[i][7:] + ".tar", blob))
            entries.append(link(lid + "/layer.tar", "../" + diff_ids[i][7:] + ".tar"))
        else:
            entries.append((lid + "/layer.tar", blob))
        if legacy_files:
            entries.append((lid + "/VERSION", "1.0"))
            v1 = {"id": lid, "created": "2023-11-14T22:13:20Z", "os": "linux"}
            if parent:
                v1["parent"] = parent
            entries.append((lid + "/json", json.dumps(v1)))
        paths.append(lid + "/layer.tar")
        parent = lid
    manifest = [{"Config": config_name, "RepoTags": list(tags), "Layers": paths}]
    if manifest_hook:
        manifest = manifest_hook(manifest)
    entries.append(("manifest.json", json.dumps(manifest)))
    if tags and parent:
        repo, _, tag = tags[0].rpartition(":")
        entries.append(("repositories", json.dumps({repo: {tag: parent}})))
    return archive(list(extra) + entries)


def oci_blobs(layers, arch="amd64", media_type=OCI_LAYER_GZIP):
    """Config, layers and manifest of one OCI image: (manifest bytes, {digest: bytes})."""
    blobs = {}
    config = image_config([digest(tar) for _, tar in layers], arch)
    blobs[digest(config)] = config
    descs = []
    for blob, _ in layers:
        blobs[digest(blob)] = blob
        descs.append({"mediaType": media_type, "digest": digest(blob), "size": len(blob)})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
        "layers": descs,
    }).encode()
    blobs[digest(manifest)] = manifest
    return manifest, blobs


def oci_archive(index_manifests, blobs, layout='{"imageLayoutVersion":"1.0.0"}', extra=()):
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_manifests})
    entries = [("oci-layout", layout), ("index.json", index), directory("blobs/sha256")]
    entries += [("blobs/sha256/" + d[7:], b) for d, b in sorted(blobs.items())]
    return archive(entries + list(extra))


def archives():
    one, two = small_layers()
    gz = lambda b: gzip.compress(b, mtime=0)
    seeds = {}
    # docker-archive: uncompressed layers; a gzip layer; skopeo's symlinked layout; several
    # images sharing a layer (and a name conflict between two of them).
    seeds["docker"] = docker_archive([(one, one), (two, two)], legacy_files=True)
    seeds["docker-gzip"] = docker_archive([(gz(one), one)], tags=("localhost:5000/app:v1",))
    seeds["docker-symlinked"] = docker_archive([(one, one)], symlinked=True, legacy_files=True)
    seeds["docker-untagged"] = docker_archive([(one, one)], tags=())
    seeds["docker-null-tags"] = docker_archive(
        [(one, one)], manifest_hook=lambda m: [dict(m[0], RepoTags=None, Parent="", LayerSources={})])
    seeds["docker-no-layers"] = docker_archive([])

    def two_images(m):
        other = dict(m[0], RepoTags=["busybox:other", "busybox:latest"])
        return m + [other]
    seeds["docker-two-images"] = docker_archive([(one, one)], manifest_hook=two_images)
    arm_config = image_config([digest(one)], arch="arm64")
    seeds["name-conflict"] = docker_archive(
        [(one, one)], extra=[("arm.json", arm_config)],
        manifest_hook=lambda m: m + [dict(m[0], Config="arm.json")])
    # Docker 25+: manifest.json pointing into an OCI layout.
    manifest, blobs = oci_blobs([(gz(one), one)], media_type=OCI_LAYER_GZIP)
    config_digest = json.loads(manifest)["config"]["digest"]
    moby = [{"Config": "blobs/sha256/" + config_digest[7:], "RepoTags": ["busybox:latest"],
             "Layers": ["blobs/sha256/" + digest(gz(one))[7:]]}]
    seeds["docker25"] = oci_archive(
        [{"mediaType": OCI_MANIFEST, "digest": digest(manifest), "size": len(manifest),
          "annotations": {"io.containerd.image.name": "docker.io/library/busybox:latest",
                          "org.opencontainers.image.ref.name": "latest"}}],
        blobs, extra=[("manifest.json", json.dumps(moby))])
    # OCI archives: one image named both ways, a bare tag, an index of two platforms
    # (only the host's blobs present), an unsupported layout version.
    desc = {"mediaType": OCI_MANIFEST, "digest": digest(manifest), "size": len(manifest)}
    seeds["oci"] = oci_archive([dict(desc, annotations={
        "io.containerd.image.name": "docker.io/library/busybox:1.36",
        "org.opencontainers.image.ref.name": "1.36"})], blobs)
    seeds["oci-bare-tag"] = oci_archive([dict(desc, annotations={"org.opencontainers.image.ref.name": "latest"})],
                                        blobs)
    seeds["oci-ref-full"] = oci_archive(
        [dict(desc, annotations={"org.opencontainers.image.ref.name": "localhost/app:v2"})], blobs)
    arm, arm_blobs = oci_blobs([(two, two)], arch="arm64", media_type=OCI_LAYER)
    nested = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        dict(desc, platform={"os": "linux", "architecture": "amd64"}),
        {"mediaType": OCI_MANIFEST, "digest": digest(arm), "size": len(arm),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]}).encode()
    multi = dict(blobs)
    multi[digest(nested)] = nested
    seeds["oci-multiplatform"] = oci_archive(
        [{"mediaType": OCI_INDEX, "digest": digest(nested), "size": len(nested),
          "annotations": {"io.containerd.image.name": "docker.io/library/multi:latest"}}], multi)
    seeds["oci-two-entries"] = oci_archive([
        dict(desc, platform={"os": "linux", "architecture": "amd64"},
             annotations={"io.containerd.image.name": "docker.io/library/multi:latest"}),
        {"mediaType": OCI_MANIFEST, "digest": digest(arm), "size": len(arm),
         "platform": {"os": "linux", "architecture": "arm64"},
         "annotations": {"io.containerd.image.name": "docker.io/library/multi:latest"}},
    ], dict(blobs, **arm_blobs))
    seeds["oci-version2"] = oci_archive([desc], blobs, layout='{"imageLayoutVersion":"2.0.0"}')
    seeds["oci-size-mismatch"] = oci_archive([dict(desc, size=len(manifest) + 1)], blobs)
    seeds["oci-artifact"] = oci_archive(
        [{"mediaType": "application/vnd.example.sbom", "digest": digest(b"x"), "size": 1}, desc], blobs)
    # Docker before 1.10: `repositories` and a chain of <id>/json.
    ids = [hashlib.sha256(b"legacy%d" % i).hexdigest() for i in range(2)]
    legacy = [
        ("repositories", json.dumps({"busybox": {"latest": ids[1], "old": ids[0]}})),
        directory(ids[0]), (ids[0] + "/json", json.dumps({"id": ids[0], "os": "linux", "architecture": "amd64",
                                                           "created": "2016-01-01T00:00:00Z"})),
        (ids[0] + "/layer.tar", one), (ids[0] + "/VERSION", "1.0"),
        directory(ids[1]), (ids[1] + "/json", json.dumps({
            "id": ids[1], "parent": ids[0], "os": "linux", "architecture": "amd64",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file"]}, "throwaway": False})),
        (ids[1] + "/layer.tar", gz(two)), (ids[1] + "/VERSION", "1.0"),
    ]
    seeds["legacy"] = archive(legacy)
    loop = [("repositories", json.dumps({"loop": {"latest": ids[0]}})),
            (ids[0] + "/json", json.dumps({"id": ids[0], "parent": ids[1]})), (ids[0] + "/layer.tar", one),
            (ids[1] + "/json", json.dumps({"id": ids[1], "parent": ids[0]})), (ids[1] + "/layer.tar", one)]
    seeds["legacy-parent-loop"] = archive(loop)
    seeds["legacy-bad-id"] = archive([("repositories", json.dumps({"x": {"latest": "../../etc"}}))])

    # Broken docker-archives.
    def layers_to(paths):
        return lambda m: [dict(m[0], Layers=paths)]
    seeds["missing-layer"] = docker_archive([(one, one)], manifest_hook=layers_to(["nope/layer.tar"]))
    seeds["dotdot-layer"] = docker_archive([(one, one)], manifest_hook=layers_to(["../x"]))
    seeds["absolute-config"] = docker_archive(
        [(one, one)], manifest_hook=lambda m: [dict(m[0], Config="/etc/passwd")])
    seeds["bad-tag"] = docker_archive([(one, one)], tags=("UPPER/Case:x",))
    seeds["diffid-mismatch"] = docker_archive([(two, one)])
    seeds["gzip-diffid-mismatch"] = docker_archive([(gz(two), one)])
    seeds["layer-count"] = docker_archive(
        [(one, one)], manifest_hook=lambda m: [dict(m[0], Layers=m[0]["Layers"] * 2)])
    seeds["dotdot-member"] = archive([("../x", b"1"), ("manifest.json", "[]")])
    seeds["duplicate-manifest"] = docker_archive([(one, one)], extra=[("manifest.json", "[]")])
    seeds["duplicate-layer"] = docker_archive(
        [(one, one)], manifest_hook=layers_to(["dup/layer.tar"]),
        extra=[("dup/layer.tar", one), ("./dup//layer.tar", two)])
    seeds["symlink-loop"] = docker_archive(
        [(one, one)], manifest_hook=layers_to(["a/layer.tar"]),
        extra=[link("a/layer.tar", "../b/layer.tar"), link("b/layer.tar", "../a/layer.tar")])
    seeds["symlink-self"] = docker_archive(
        [(one, one)], manifest_hook=layers_to(["self"]), extra=[link("self", "self")])
    seeds["symlink-out"] = docker_archive(
        [(one, one)], manifest_hook=layers_to(["out/layer.tar"]),
        extra=[link("out/layer.tar", "../../../etc/passwd")])
    seeds["symlink-absolute"] = docker_archive(
        [(one, one)], manifest_hook=layers_to(["abs"]), extra=[link("abs", "/etc/passwd")])
    seeds["hardlink"] = docker_archive(
        [(one, one)], manifest_hook=layers_to(["hard"]),
        extra=[("first", one), link("hard", "first", tarfile.LNKTYPE)])
    seeds["layer-is-dir"] = docker_archive([(one, one)], manifest_hook=layers_to(["somedir"]),
                                           extra=[directory("somedir")])
    seeds["layer-is-fifo"] = docker_archive(
        [(one, one)], manifest_hook=layers_to(["fifo"]), extra=[(member("fifo", tarfile.FIFOTYPE)[0], None)])
    seeds["manifest-not-array"] = archive([("manifest.json", '{"Config":"x"}')])
    seeds["manifest-empty"] = archive([("manifest.json", "[]")])
    seeds["unknown-format"] = archive([("hello", "world")])
    seeds["no-end-marker"] = docker_archive([(one, one)])[:-1024]
    seeds["trailing-garbage"] = docker_archive([(one, one)]) + b"garbage"

    # Huge sizes in headers: octal and base-256 size fields, a PAX size, a GNU long name.
    base = docker_archive([(one, one)])
    at = header_offsets(base)[0]
    octal = bytearray(base)
    octal[at + 124:at + 136] = b"77777777777\0"
    seeds["huge-octal-size"] = fix_checksum(bytes(octal), at)
    b256 = bytearray(base)
    b256[at + 124:at + 136] = b"\x80" + b"\0" * 3 + b"\xff" * 8
    seeds["huge-base256-size"] = fix_checksum(bytes(b256), at)
    neg = bytearray(base)
    neg[at + 124:at + 136] = b"\xff" * 12
    seeds["negative-base256-size"] = fix_checksum(bytes(neg), at)
    info, _ = member("manifest.json", data=b"[]")
    info.pax_headers = {"size": "99999999999999999999"}
    seeds["huge-pax-size"] = archive([(info, b"[]")])
    info, _ = member("paxname", data=b"[]")
    info.pax_headers = {"path": "manifest.json", "linkpath": "x" * 100}
    seeds["pax-path"] = archive([(info, b"[]")])
    longname = member("././@LongLink", tarfile.GNUTYPE_LONGNAME)[0].tobuf(tarfile.GNU_FORMAT)
    longname = bytearray(longname[:512])
    longname[124:136] = b"%011o\0" % (1 << 30)
    seeds["huge-gnu-longname"] = fix_checksum(bytes(longname), 0) + base
    seeds["bad-checksum"] = b"x" + base[1:]

    # The busybox fixture's config (rootfs rewritten) over small entries of its layer.
    fixture = os.path.join(FIXTURES, "busybox/oci/blobs/sha256")
    if os.path.isdir(fixture):
        configs = [os.path.join(fixture, n) for n in sorted(os.listdir(fixture))
                   if os.path.getsize(os.path.join(fixture, n)) < 64 * 1024]
        for p in configs:
            with open(p, "rb") as f:
                doc = json.loads(f.read() or b"null")
            if isinstance(doc, dict) and "rootfs" in doc:
                seeds["fixture-config"] = docker_archive([(gz(one), one)], symlinked=True, config_base=doc)
                break

    for name, data in seeds.items():
        assert len(data) < 16 * 1024, (name, len(data))
        write("archive_load", name, data)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    layers()
    manifests()
    configs()
    references()
    challenges()
    docker_configs()
    archives()
    for target in sorted(os.listdir(OUT)):
        print("%-15s %3d seeds" % (target, len(os.listdir(os.path.join(OUT, target)))))


if __name__ == "__main__":
    main()
