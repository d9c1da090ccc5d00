"""Interoperability with the real peers (skopeo 1.9, umoci 0.4.7, podman 4.3) as oracles.

* What umoci builds and skopeo writes (oci-archive:, docker-archive:, dir:, zstd oci:,
  schema1 dir:) we read byte for byte as skopeo does.
* What we copy onward from those images, skopeo copies to the same digests -- or, where
  two gzip encoders are involved, to the same config and the same layer contents.
* What we write (random images, indexes, zstd, docker-archive, multi-arch) skopeo reads,
  umoci unpacks and podman loads.

Nothing here touches global container state: skopeo runs with a private policy and an
empty tmpfs blob cache (tests/peers.py), podman with a private store, umoci only on
paths under the test's temporary directories.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from oci_image.build import BuiltImage, FileEntry, ImageBuilder
from oci_image.cli import main as cli_main
from oci_image.copy import CopyOptions, MultiArch, copy_image
from oci_image.image import inspect_image, open_image
from oci_image.interfaces import ImageSource
from oci_image.spec import (
    Compression,
    Descriptor,
    Digest,
    ImageManifest,
    MediaType,
    Platform,
    manifest_digest,
)
from oci_image.testing.random import random_image, random_index
from oci_image.transports.docker_archive import DockerArchiveWriter
from oci_image.validate import validate_image
from tests.peers import Podman, Skopeo, require, run_tool

pytestmark = pytest.mark.peers

REPO = Path(__file__).resolve().parent.parent
ZSTD_DOCKER_ERROR = "zstd compression is not supported for docker images"
UMOCI_ZSTD_ERROR = "blob is not correct mediatype: application/vnd.oci.image.layer.v1.tar+zstd"


# --- helpers ---------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ours(*argv: str) -> tuple[int, bytes, str]:
    """Our skopeo-compatible CLI, in process: (exit status, stdout bytes, stderr)."""
    out = io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    err = io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, err
    try:
        rc = cli_main(list(argv))
    finally:
        stdout.flush()
        sys.stdout, sys.stderr = saved
        stdout.detach()
    return rc, out.getvalue(), err.getvalue()


def ours_ok(*argv: str) -> bytes:
    rc, out, err = ours(*argv)
    assert rc == 0, f"oci-image {' '.join(argv)} failed ({rc}): {err}"
    return out


def decompress(blob: bytes) -> bytes:
    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)).read()
    return blob


def read_blob(source: ImageSource, desc: Descriptor) -> bytes:
    """A whole blob (streams may return short reads)."""
    stream = source.get_blob(desc)
    try:
        parts = []
        while chunk := stream.read(1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        stream.close()


def layer_diff_ids(ref: str, manifest: dict[str, Any]) -> list[str]:
    """The sha256 of each layer's uncompressed content, read from ``ref``'s blobs and
    decompressed here (gzip/zstd by their magic bytes), not by the library's readers."""
    out = []
    with open_image(ref) as img:
        for layer in manifest["layers"]:
            desc = Descriptor(layer["mediaType"], Digest.parse(layer["digest"]), layer["size"])
            blob = read_blob(img.source, desc)
            assert sha256(blob) == layer["digest"]
            out.append(sha256(decompress(blob)))
    return out


def private_skopeo(home: Path) -> Skopeo:
    """The same private setup as the ``skopeo`` fixture, for module-scoped fixtures."""
    require("skopeo")
    for d in ("tmp", "run"):
        (home / d).mkdir(parents=True, exist_ok=True)
    (home / "policy.json").write_text(
        json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (home / "registries.conf").write_text("unqualified-search-registries = []\n")
    return Skopeo(home)


def layout_reader(ref: str) -> Callable[[str], bytes]:
    """Reads files of an ``oci:`` layout or ``oci-archive:`` tarball directly."""
    transport, rest = ref.split(":", 1)
    path = Path(rest.rsplit(":", 1)[0])
    if transport == "oci":
        return lambda name: (path / name).read_bytes()
    assert transport == "oci-archive"

    def read(name: str) -> bytes:
        with tarfile.open(path) as tar:
            member = tar.extractfile(name)
            assert member is not None
            return member.read()
    return read


def layout_image(ref: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(index descriptor, manifest, config) of the image tagged in a layout, read as files."""
    read = layout_reader(ref)
    tag = ref.rsplit(":", 1)[1]
    index = json.loads(read("index.json"))
    [desc] = [d for d in index["manifests"]
              if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    raw = read("blobs/sha256/" + desc["digest"].split(":", 1)[1])
    assert sha256(raw) == desc["digest"]
    config_digest = json.loads(raw)["config"]["digest"]
    config = read("blobs/sha256/" + config_digest.split(":", 1)[1])
    assert sha256(config) == config_digest
    return desc, raw, config


# --- 1. images built by umoci, written by skopeo ---------------------------------------

SOURCE_NAMES = ["umoci", "oci-archive", "docker-archive", "dir", "oci-zstd", "dir-v2s1"]
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An image made with umoci (busybox + /etc/passwd, cmd and env set by umoci config),
    then written by skopeo into each transport and format."""
    umoci = require("umoci")
    busybox = require("busybox")
    sk = private_skopeo(tmp_path_factory.mktemp("skopeo-sources-home"))
    base = tmp_path_factory.mktemp("sources")
    layout, bundle = base / "umoci-layout", base / "bundle"
    run_tool([umoci, "init", "--layout", str(layout)])
    run_tool([umoci, "new", "--image", f"{layout}:base"])
    run_tool([umoci, "unpack", "--image", f"{layout}:base", str(bundle)])
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    (rootfs / "etc").mkdir(exist_ok=True)
    shutil.copyfile(busybox, rootfs / "bin" / "busybox")
    os.chmod(rootfs / "bin" / "busybox", 0o755)
    (rootfs / "etc" / "passwd").write_bytes(PASSWD)
    run_tool([umoci, "repack", "--image", f"{layout}:base", str(bundle)])
    run_tool([umoci, "config", "--image", f"{layout}:base", "--config.cmd", "/bin/sh",
              "--config.env", "A=1"])
    refs = {
        "umoci": f"oci:{layout}:base",
        "oci-archive": f"oci-archive:{base / 'skopeo.tar'}:base",
        "docker-archive": f"docker-archive:{base / 'skopeo-docker.tar'}",
        "dir": f"dir:{base / 'skopeo-dir'}",
        "oci-zstd": f"oci:{base / 'skopeo-zstd'}:base",
        "dir-v2s1": f"dir:{base / 'skopeo-v2s1'}",
    }
    src = refs["umoci"]
    for name in ("oci-archive", "docker-archive", "dir"):
        sk.copy(src, refs[name])
    sk.copy(src, refs["oci-zstd"], "--dest-compress-format", "zstd")
    sk.copy(src, refs["dir-v2s1"], "--format", "v2s1")
    return refs


def test_sources_have_the_formats_the_matrix_relies_on(sources: dict[str, str]) -> None:
    """Guards against a vacuous matrix: each source really is what its name says."""
    def top(ref: str) -> dict[str, Any]:
        with open_image(ref) as img:
            parsed: dict[str, Any] = json.loads(img.raw)
            return parsed

    assert top(sources["umoci"])["layers"][0]["mediaType"] == MediaType.OCI_LAYER_GZIP
    assert top(sources["oci-zstd"])["layers"][0]["mediaType"] == \
        "application/vnd.oci.image.layer.v1.tar+zstd"
    docker = top(sources["docker-archive"])
    assert docker["mediaType"] == MediaType.DOCKER_MANIFEST
    with open_image(sources["docker-archive"]) as img:
        head = read_blob(img.source, img.layers()[0])[:512]
        assert head[257:262] == b"ustar"  # docker-archive keeps layers as plain tar
    s1 = top(sources["dir-v2s1"])
    assert s1["schemaVersion"] == 1
    assert "signatures" in s1
    with open_image(sources["umoci"]) as img:
        config = img.config()
        assert config is not None
        assert config.config.cmd == ("/bin/sh",)
        assert "A=1" in config.config.env


# --- 2. what skopeo writes, we read ----------------------------------------------------


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_manifest_bytes_equal_skopeo(name: str, sources: dict[str, str],
                                     skopeo: Skopeo) -> None:
    ref = sources[name]
    theirs = skopeo.inspect_raw(ref)
    assert ours_ok("inspect", "--raw", ref) == theirs
    with open_image(ref) as img:
        assert img.top_raw == theirs
        assert img.raw == theirs
    validate_image(ref)


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_config_bytes_equal_skopeo(name: str, sources: dict[str, str],
                                   skopeo: Skopeo) -> None:
    ref = sources[name]
    theirs = skopeo.run("inspect", "--raw", "--config", ref)
    rc, out, err = ours("inspect", "--raw", "--config", ref)
    assert (rc, out) == (theirs.returncode, theirs.stdout), err
    if theirs.stdout:
        with open_image(ref) as img:
            assert img.config_raw() == theirs.stdout


INSPECT_KEYS = ("Digest", "Architecture", "Os", "Env", "Layers")


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_inspect_agrees_with_skopeo(name: str, sources: dict[str, str],
                                    skopeo: Skopeo) -> None:
    ref = sources[name]
    theirs = skopeo.inspect(ref)
    mine = inspect_image(ref)
    cli = json.loads(ours_ok("inspect", ref))
    for key in INSPECT_KEYS:
        assert mine[key] == theirs[key], key
        assert cli[key] == theirs[key], key


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_inspect_config_equals_skopeo(name: str, sources: dict[str, str],
                                      skopeo: Skopeo) -> None:
    """`inspect --config` shows the config as an OCI config, converted like skopeo does
    (Docker-only fields dropped, schema1 history converted)."""
    ref = sources[name]
    theirs = json.loads(skopeo.run("inspect", "--config", ref).stdout)
    assert json.loads(ours_ok("inspect", "--config", ref)) == theirs


# --- 3. what we write, skopeo copies onward with identical digests ---------------------

DESTS = {
    "oci": "oci:{}:t",
    "oci-archive": "oci-archive:{}.tar:t",
    "docker-archive": "docker-archive:{}.tar",
    "dir": "dir:{}",
}
FLAGS = {
    "none": (),
    "v2s2": ("--format", "v2s2"),
    "accept-uncompressed": ("--dest-oci-accept-uncompressed-layers",),
}


def raw_digests(skopeo: Skopeo, ref: str) -> tuple[bytes, str, str]:
    """(manifest, manifest digest, config digest) as skopeo reads them."""
    raw = skopeo.inspect_raw(ref)
    return raw, sha256(raw), sha256(skopeo.inspect_raw(ref, "--config"))


def assert_same_but_recompressed(ours_ref: str, ours_raw: bytes, ours_config: bytes,
                                 sk_ref: str, sk_raw: bytes, sk_config: bytes) -> None:
    """Manifests equal except for the layer blobs' digests and sizes; same config; each
    layer decompresses to its diff_id on both sides."""
    assert sha256(ours_config) == sha256(sk_config)
    mine, theirs = json.loads(ours_raw), json.loads(sk_raw)

    def shape(m: dict[str, Any]) -> dict[str, Any]:
        return {**m, "layers": [{k: v for k, v in layer.items()
                                 if k not in ("digest", "size")} for layer in m["layers"]]}

    assert shape(mine) == shape(theirs)
    assert all(layer["mediaType"].endswith("gzip") for layer in mine["layers"])
    diff_ids = json.loads(ours_config)["rootfs"]["diff_ids"]
    assert layer_diff_ids(ours_ref, mine) == diff_ids
    assert layer_diff_ids(sk_ref, theirs) == diff_ids


def _matrix() -> Iterator[Any]:
    for src in SOURCE_NAMES:
        for dst in DESTS:
            for flag in FLAGS:
                yield pytest.param(src, dst, flag, id=f"{src}->{dst}-{flag}")


@pytest.mark.parametrize(("src", "dst", "flag"), list(_matrix()))
def test_copy_onward_matches_skopeo(src: str, dst: str, flag: str, sources: dict[str, str],
                                    skopeo: Skopeo, tmp_path: Path) -> None:
    source = sources[src]
    ours_ref = DESTS[dst].format(tmp_path / "ours")
    sk_ref = DESTS[dst].format(tmp_path / "skopeo")
    flags = FLAGS[flag]
    rc, _, err = ours("copy", "-q", *flags, source, ours_ref)
    sk = skopeo.run("copy", "--quiet", *flags, source, sk_ref, check=False)

    if src == "oci-zstd" and dst == "docker-archive":
        # (a) Deliberate: skopeo 1.9 (c/image 5.23) refuses to put zstd layers into a
        # Docker image even though docker-archive stores layers uncompressed (skopeo#1286);
        # we decompress them. skopeo must still read what we wrote.
        assert sk.returncode != 0
        assert ZSTD_DOCKER_ERROR in sk.stderr.decode()
        assert rc == 0, err
        validate_image(ours_ref)
        raw, _, config_digest = raw_digests(skopeo, ours_ref)
        with open_image(source) as img:
            source_config = img.config_raw()
            assert source_config is not None
        assert config_digest == sha256(source_config)
        manifest = json.loads(raw)
        diff_ids = json.loads(source_config)["rootfs"]["diff_ids"]
        assert [layer["digest"] for layer in manifest["layers"]] == diff_ids
        assert layer_diff_ids(ours_ref, manifest) == diff_ids
        skopeo.copy(ours_ref, f"dir:{tmp_path / 'onward'}")
        validate_image(f"dir:{tmp_path / 'onward'}")
        return

    if src == "oci-zstd" and flag == "v2s2":
        # Both refuse: a Docker schema2 manifest cannot describe zstd layers, and a
        # forced format does not recompress. Ours leaves no destination behind.
        assert sk.returncode != 0
        assert ZSTD_DOCKER_ERROR in sk.stderr.decode()
        assert rc == 1
        assert "zstd" in err
        assert not (tmp_path / "ours").exists()
        assert not (tmp_path / "ours.tar").exists()
        return

    assert rc == 0, err
    assert sk.returncode == 0, sk.stderr.decode()
    validate_image(ours_ref)
    # Layers are gzip-compressed by the copy itself (docker-archive holds plain tar
    # layers, oci: wants them compressed unless told otherwise): Go's compress/gzip and
    # Python's zlib produce different bytes for the same tar, so layer digests (and so
    # the manifest digest) legitimately differ. Config and diff_ids must not.
    recompressed = src == "docker-archive" and dst in ("oci", "oci-archive") \
        and flag != "accept-uncompressed"

    if flag == "v2s2" and dst in ("oci", "oci-archive"):
        # (b) Both tools put a Docker schema2 manifest into the OCI layout. skopeo 1.9
        # cannot read such an entry back ("no descriptor found for reference": its oci:
        # reader skips non-OCI media types), so compare the layouts' files directly.
        for ref in (ours_ref, sk_ref):
            failed = skopeo.run("inspect", "--raw", ref, check=False)
            assert failed.returncode != 0
            assert "no descriptor found for reference" in failed.stderr.decode()
        ours_desc, ours_raw, ours_config = layout_image(ours_ref)
        sk_desc, sk_raw, sk_config = layout_image(sk_ref)
        assert ours_desc["mediaType"] == sk_desc["mediaType"] == MediaType.DOCKER_MANIFEST
        assert json.loads(ours_raw)["mediaType"] == MediaType.DOCKER_MANIFEST
        with open_image(sk_ref) as img:  # we read skopeo's Docker-in-layout entry
            assert img.raw == sk_raw
    else:
        ours_raw = skopeo.inspect_raw(ours_ref)
        sk_raw = skopeo.inspect_raw(sk_ref)
        ours_config = skopeo.inspect_raw(ours_ref, "--config")
        sk_config = skopeo.inspect_raw(sk_ref, "--config")

    if recompressed:
        assert_same_but_recompressed(ours_ref, ours_raw, ours_config,
                                     sk_ref, sk_raw, sk_config)
    else:
        assert sha256(ours_raw) == sha256(sk_raw)
        assert sha256(ours_config) == sha256(sk_config)
        # schema1 kept as is into dir: has no config; both print nothing
        if not ours_config:
            assert json.loads(ours_raw)["schemaVersion"] == 1


# --- 4. we write, skopeo reads ---------------------------------------------------------

BUILT = {
    "image": lambda: random_image(11),
    "index": lambda: random_index(12),
    "zstd": lambda: random_image(13, compression=Compression.ZSTD),
}


@pytest.mark.parametrize("dst", list(DESTS))
@pytest.mark.parametrize("kind", list(BUILT))
def test_skopeo_reads_what_we_write(kind: str, dst: str, skopeo: Skopeo,
                                    tmp_path: Path) -> None:
    built = BUILT[kind]()
    ref = DESTS[dst].format(tmp_path / "ours")
    result = copy_image(built.reference, ref)
    validate_image(ref)
    theirs = skopeo.inspect_raw(ref)
    with open_image(ref) as img:
        assert img.raw == theirs
    onward = tmp_path / "skopeo-dir"
    skopeo.copy(ref, f"dir:{onward}")
    onward_digest = manifest_digest((onward / "manifest.json").read_bytes())
    assert onward_digest == manifest_digest(theirs)
    if dst == "docker-archive":
        # docker-archive stores no manifest: readers (skopeo and ours alike) synthesize
        # one, labelling every layer gzip, so the bytes read differ from the manifest the
        # copy reports (layers described as the plain tars they are, as c/image's copy
        # does). Apart from that label they describe the same blobs.
        written, read = json.loads(result.manifest), json.loads(theirs)
        assert {layer["mediaType"] for layer in written["layers"]} == \
            {MediaType.DOCKER_LAYER}
        assert {layer["mediaType"] for layer in read["layers"]} == \
            {MediaType.DOCKER_LAYER_GZIP}
        for layer in (*written["layers"], *read["layers"]):
            del layer["mediaType"]
        assert written == read
        # The digest the copy reports is the one skopeo reports (--digestfile) for the
        # same copy -- except from zstd, which skopeo 1.9 refuses (see (a) in
        # test_copy_onward_matches_skopeo).
        layout = f"oci:{tmp_path / 'layout'}:t"
        copy_image(built.reference, layout)
        sk = skopeo.run("copy", "--quiet", "--digestfile", str(tmp_path / "digest"), layout,
                        f"docker-archive:{tmp_path / 'skopeo.tar'}", check=False)
        if kind == "zstd":
            assert sk.returncode != 0
            assert ZSTD_DOCKER_ERROR in sk.stderr.decode()
        else:
            assert sk.returncode == 0, sk.stderr.decode()
            assert (tmp_path / "digest").read_text() == str(result.manifest_digest)
            assert theirs == skopeo.inspect_raw(f"docker-archive:{tmp_path / 'skopeo.tar'}")
    else:
        assert theirs == result.manifest
        assert onward_digest == result.manifest_digest
        if kind != "index":
            assert result.manifest_digest == built.digest


# --- 5. multi-arch with --all ----------------------------------------------------------


def test_all_preserves_the_index_like_skopeo(skopeo: Skopeo, tmp_path: Path) -> None:
    index = random_index(21)
    all_ = CopyOptions(multi_arch=MultiArch.ALL)
    layout = f"oci:{tmp_path / 'layout'}:idx"
    result = copy_image(index.reference, layout, all_)
    assert result.manifest_digest == index.digest
    assert len(result.instances) == 3
    assert skopeo.inspect_raw(layout) == index.manifest
    refs = {"oci-archive": "oci-archive:{}.tar:idx", "dir": "dir:{}"}
    for dst, template in refs.items():
        sk_ref = template.format(tmp_path / f"skopeo-{dst}")
        ours_ref = template.format(tmp_path / f"ours-{dst}")
        skopeo.copy(layout, sk_ref, "--all")
        ours_ok("copy", "-q", "--all", layout, ours_ref)
        validate_image(ours_ref)
        assert skopeo.inspect_raw(sk_ref) == index.manifest
        assert skopeo.inspect_raw(ours_ref) == index.manifest
        # every instance and blob is there, under the same names, on both sides
        if dst == "dir":
            names = sorted(os.listdir(tmp_path / "ours-dir"))
            assert names == sorted(os.listdir(tmp_path / "skopeo-dir"))
            assert {f"{d.hex}.manifest.json" for d in result.instances} <= set(names)
        else:
            with tarfile.open(tmp_path / "ours-oci-archive.tar") as ours_tar, \
                    tarfile.open(tmp_path / "skopeo-oci-archive.tar") as sk_tar:
                blobs = sorted(n for n in ours_tar.getnames() if n.startswith("blobs/sha256/"))
                assert blobs == sorted(n for n in sk_tar.getnames()
                                       if n.startswith("blobs/sha256/"))
            assert {f"blobs/sha256/{d.hex}" for d in result.instances} <= set(blobs)
        # and each platform's image resolves to the same instance through both copies
        for platform in (Platform("linux", "arm64", "v8"), Platform("linux", "arm", "v7")):
            with open_image(ours_ref, platform=platform) as a, \
                    open_image(sk_ref, platform=platform) as b:
                assert a.digest == b.digest
                assert a.digest in result.instances
            # skopeo picks the same instance from our copy
            picked = skopeo.inspect(ours_ref, "--override-arch", platform.architecture,
                                    "--override-variant", platform.variant)
            assert picked["Architecture"] == platform.architecture
            assert picked["Layers"] == [str(d.digest) for d in a.layers()]


@pytest.mark.parametrize("platform", [None, Platform("linux", "arm64", "v8")],
                         ids=["host", "arm64"])
def test_inspect_of_an_index_agrees_with_skopeo(platform: Platform | None, skopeo: Skopeo,
                                                tmp_path: Path) -> None:
    index = random_index(22)
    layout = f"oci:{tmp_path / 'layout'}:idx"
    copy_image(index.reference, layout, CopyOptions(multi_arch=MultiArch.ALL))
    flags = ("--override-arch", platform.architecture, "--override-variant",
             platform.variant) if platform else ()
    theirs = skopeo.inspect(layout, *flags)
    mine = inspect_image(layout, platform=platform)
    cli = json.loads(ours_ok(*flags, "inspect", layout))
    for key in ("Architecture", "Os", "Env", "Layers", "Digest"):
        assert mine[key] == theirs[key], key
        assert cli[key] == theirs[key], key


# --- 6. umoci accepts our output -------------------------------------------------------

MOTD = b"written by ocistack, layer 2\n"


def busybox_image(tmp_path: Path, compression: Compression) -> BuiltImage:
    busybox = Path(require("busybox"))
    root = tmp_path / "rootfs-src"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copyfile(busybox, root / "bin" / "busybox")
    os.chmod(root / "bin" / "busybox", 0o755)
    (root / "etc" / "passwd").write_bytes(PASSWD)
    os.chmod(root / "etc" / "passwd", 0o644)
    builder = ImageBuilder()
    builder.add_layer_from_dir(root, compression=compression, created_by="busybox")
    builder.add_layer_from_files({"etc/motd": FileEntry(data=MOTD, mode=0o600)},
                                 compression=compression, created_by="motd")
    builder.config(cmd=["/bin/sh"], env=["PATH=/bin"])
    return builder.build()


def test_umoci_unpacks_our_layout(tmp_path: Path) -> None:
    umoci = require("umoci")
    image = busybox_image(tmp_path, Compression.GZIP)
    layout = tmp_path / "layout"
    copy_image(image.reference, f"oci:{layout}:busybox")
    copy_image(random_image(31).reference, f"oci:{layout}:other")
    bundle = tmp_path / "bundle"
    run_tool([umoci, "unpack", "--image", f"{layout}:busybox", str(bundle)])
    rootfs = bundle / "rootfs"
    busybox = Path(require("busybox")).read_bytes()
    assert (rootfs / "bin" / "busybox").read_bytes() == busybox
    assert stat.S_IMODE((rootfs / "bin" / "busybox").stat().st_mode) == 0o755
    assert (rootfs / "etc" / "passwd").read_bytes() == PASSWD
    assert stat.S_IMODE((rootfs / "etc" / "passwd").stat().st_mode) == 0o644
    assert (rootfs / "etc" / "motd").read_bytes() == MOTD
    assert stat.S_IMODE((rootfs / "etc" / "motd").stat().st_mode) == 0o600
    # the unpacked (static) busybox runs
    echo = run_tool([str(rootfs / "bin" / "busybox"), "echo", "unpacked"])
    assert echo.stdout == b"unpacked\n"

    tags = run_tool([umoci, "ls", "--layout", str(layout)]).stdout.decode().split()
    assert sorted(tags) == ["busybox", "other"]
    history = json.loads(run_tool([umoci, "stat", "--json", "--image",
                                   f"{layout}:busybox"]).stdout)["history"]
    manifest = json.loads(image.manifest)
    config_blob = image.blobs[Digest.parse(manifest["config"]["digest"])]
    assert isinstance(config_blob, bytes)
    config = json.loads(config_blob)
    assert [h["created_by"] for h in history] == ["busybox", "motd"]
    assert [h["layer"]["digest"] for h in history] == \
        [layer["digest"] for layer in manifest["layers"]]
    assert [h["diff_id"] for h in history] == config["rootfs"]["diff_ids"]


def test_umoci_047_cannot_unpack_zstd(tmp_path: Path, sources: dict[str, str]) -> None:
    """umoci 0.4.7 predates zstd layers: it refuses ours, and skopeo's zstd layout alike
    (so the refusal is umoci's limitation, not our layout)."""
    umoci = require("umoci")
    image = busybox_image(tmp_path, Compression.ZSTD)
    layout = tmp_path / "layout"
    copy_image(image.reference, f"oci:{layout}:busybox")
    validate_image(f"oci:{layout}:busybox")
    assert run_tool([umoci, "ls", "--layout", str(layout)]).stdout.decode().split() == \
        ["busybox"]
    skopeo_zstd = sources["oci-zstd"].removeprefix("oci:")
    for i, image_ref in enumerate((f"{layout}:busybox", skopeo_zstd)):
        failed = subprocess.run([umoci, "unpack", "--image", image_ref,
                                 str(tmp_path / f"bundle{i}")],
                                capture_output=True, timeout=120, check=False)
        assert failed.returncode != 0
        assert UMOCI_ZSTD_ERROR in failed.stderr.decode()


# --- 7. podman loads our docker-archive ------------------------------------------------


def podman_images(podman: Podman) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = json.loads(podman.run("images", "--format", "json").stdout)
    return images


def test_podman_loads_our_docker_archive(podman: Podman, tmp_path: Path) -> None:
    layout = f"oci:{tmp_path / 'layout'}:t"
    image = random_image(41)
    copy_image(image.reference, layout)
    archive = tmp_path / "two-tags.tar"
    # the real command line, as a user runs it
    subprocess.run([sys.executable, "-m", "oci_image", "copy", "-q",
                    "--additional-tag", "example.com/two:2", layout,
                    f"docker-archive:{archive}:example.com/one:1"],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    validate_image(f"docker-archive:{archive}")
    with open_image(f"docker-archive:{archive}") as img:
        assert isinstance(img.manifest, ImageManifest)
        config_hex = img.manifest.config.digest.hex
        read_digest = img.digest
    assert f"sha256:{config_hex}" == json.loads(image.manifest)["config"]["digest"]
    out = podman.run("load", "-i", str(archive)).stdout.decode()
    assert "Loaded image: example.com/one:1" in out
    assert "Loaded image: example.com/two:2" in out
    # podman lists an image once per name: every entry must be the one image
    listed = podman_images(podman)
    assert {i["Id"] for i in listed} == {config_hex}
    assert {n for i in listed for n in i["Names"]} == {"example.com/one:1",
                                                        "example.com/two:2"}
    # the manifest podman records is the one c/image synthesizes from the archive,
    # which is what our reader synthesizes too
    assert {i["Digest"] for i in listed} == {str(read_digest)}


def test_podman_loads_our_multi_image_archive(podman: Podman, tmp_path: Path) -> None:
    archive = tmp_path / "multi.tar"
    images = {"example.com/first:1": random_image(51), "example.com/second:2":
              random_image(52, compression=Compression.ZSTD)}
    with DockerArchiveWriter(archive) as writer:
        for name, image in images.items():
            copy_image(image.reference, writer.reference(name))
    for i in (0, 1):
        validate_image(f"docker-archive:{archive}:@{i}")
    expected = {}
    for name, image in images.items():
        config_digest = json.loads(image.manifest)["config"]["digest"]
        expected[name] = config_digest.split(":", 1)[1]
    podman.run("load", "-i", str(archive))
    loaded = {name: i["Id"] for i in podman_images(podman) for name in i.get("Names") or []}
    assert loaded == expected


# --- 8. schema1 ------------------------------------------------------------------------


@pytest.mark.parametrize("dst", ["oci", "docker-archive"])
def test_schema1_conversion_matches_skopeo(dst: str, sources: dict[str, str],
                                           skopeo: Skopeo, tmp_path: Path) -> None:
    source = sources["dir-v2s1"]
    ours_ref = DESTS[dst].format(tmp_path / "ours")
    sk_ref = DESTS[dst].format(tmp_path / "skopeo")
    ours_ok("copy", "-q", source, ours_ref)
    skopeo.copy(source, sk_ref)
    validate_image(ours_ref)
    ours_raw, ours_digest, ours_config = raw_digests(skopeo, ours_ref)
    _, sk_digest, sk_config = raw_digests(skopeo, sk_ref)
    assert (ours_digest, ours_config) == (sk_digest, sk_config)
    # the empty (throwaway) schema1 layer is dropped, its history kept as empty_layer
    config = json.loads(skopeo.inspect_raw(ours_ref, "--config"))
    assert len(json.loads(ours_raw)["layers"]) == len(config["rootfs"]["diff_ids"]) == 1
    assert any(h.get("empty_layer") for h in config["history"])
