"""oci_storage.unpack and ``python -m oci_storage unpack``: an image's layers applied onto
one plain directory, as ``umoci unpack`` makes its rootfs and as a vfs store's top layer
holds it; index instances chosen by platform; every failure typed, with nothing left
behind (the directory removed, or emptied when it existed) and nothing written outside.
"""

from __future__ import annotations

import gc
import gzip
import io
import json
import os
import random
import stat
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import attrs
import pytest

from benchmarks.copy_bench import build_layer
from oci_image.build import BuiltImage, ImageBuilder, build_index
from oci_image.copy import CopyOptions, MultiArch, copy_image
from oci_image.errors import (
    BlobNotFoundError,
    DiffIDMismatchError,
    DigestMismatchError,
    NoMatchingPlatformError,
    OCIError,
    SizeMismatchError,
    TransportError,
)
from oci_image.spec import (
    Compression,
    Digest,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    host_platform,
    manifest_digest,
)
from oci_image.testing.random import random_image
from oci_image.transports import parse_image_name
from oci_storage.apply import ApplyLimits
from oci_storage.errors import LayerLimitError, StorageError, UnsafeArchiveError
from oci_storage.store import Store
from oci_storage.unpack import UnpackedImage, unpack_image

from .hostile_layers import corpus, make_sentinel, snapshot
from .peers import require, require_root, run_tool

ROOT = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (chown, setuid, owners)")
EPOCH = 946684800


# --------------------------------------------------------------------------- helpers


def _tree(root: Path, *, with_root: bool = False) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root``: type, mode, owner, link target, link count and
    content (regular files), device numbers, and the xattrs (not of symlinks)."""
    out: dict[str, tuple[object, ...]] = {}
    paths = [root] if with_root else []
    for dirpath, dirnames, filenames in os.walk(root):
        paths.extend(Path(dirpath) / name for name in dirnames + filenames)
    for p in paths:
        st = os.lstat(p)
        info: tuple[object, ...] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                    st.st_uid, st.st_gid)
        if stat.S_ISLNK(st.st_mode):
            info += (os.readlink(p),)
        else:
            info += (tuple(sorted((x, os.getxattr(p, x, follow_symlinks=False))
                                  for x in os.listxattr(p, follow_symlinks=False))),)
        if stat.S_ISREG(st.st_mode):
            info += (st.st_nlink, p.read_bytes())
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info += (st.st_rdev,)
        out[str(p.relative_to(root))] = info
    return out


def _outside(top: Path, root: Path) -> dict[str, tuple[object, ...]]:
    """:func:`snapshot` of ``top`` without ``root``, and without the mtime of root's
    parent (making and removing ``root`` changes it)."""
    shot = snapshot(top, root)
    if root.parent != top and top in root.parents:
        key = str(root.parent.relative_to(top))
        shot[key] = shot[key][:5] + shot[key][6:]
    else:
        shot["."] = shot["."][:5] + shot["."][6:]
    return shot


class _Tar:
    """A layer tar in PAX format with the metadata umoci and we both apply."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w",  # noqa: SIM115
                                format=tarfile.PAX_FORMAT)

    def add(self, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", *,
            mode: int = 0o644, uid: int = 0, gid: int = 0, linkname: str = "",
            xattrs: dict[str, str] | None = None) -> _Tar:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = EPOCH
        ti.linkname = linkname
        if xattrs:
            ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        self.tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        return self

    def build(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def _bench_files(tar: _Tar, rng: random.Random, prefix: str, count: int) -> list[str]:
    """``count`` bench-style files (copy_bench's mix: text-like and random, small) with
    varied modes, owners and a few user.* xattrs; their names."""
    words = [rng.randbytes(rng.randrange(3, 9)).hex() for _ in range(500)]
    names = []
    for i in range(count):
        if rng.random() < 0.55:
            size = rng.randrange(200, 16 << 10)
            data = " ".join(rng.choice(words) for _ in range(size // 8)).encode()[:size]
        else:
            data = rng.randbytes(rng.randrange(100, 32 << 10))
        name = f"{prefix}/d{i % 7}/f{i}"
        owner = rng.choice([(0, 0), (1000, 1000), (65534, 65534), (0, 50)])
        mode = rng.choice([0o644, 0o600, 0o755, 0o444, 0o640])
        xattrs = {"user.bench": f"file {i}"} if rng.random() < 0.15 else None
        tar.add(name, data=data, mode=mode, uid=owner[0], gid=owner[1], xattrs=xattrs)
        names.append(name)
    return names


def _bench_image(base: Path) -> BuiltImage:
    """A small (about 3 MB) bench-style image: a layer made by the benchmark's own
    generator, and three with many small files and every kind of entry and change --
    symlinks, hardlinks (in a layer and to a lower layer), whiteouts, opaque dirs,
    setuid/setgid/sticky modes, owners, user.* xattrs, type changes, a fifo."""
    rng = random.Random(20240611)
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    # layer 0: the benchmark's generator as it is (implicit parent directories)
    diff_id, _ = build_layer(rng, 600 << 10, base / "bench0.tar.gz")
    builder.add_layer_file(base / "bench0.tar.gz", media_type=MediaType.OCI_LAYER_GZIP,
                           diff_id=diff_id)

    t = _Tar().add("./", tarfile.DIRTYPE, mode=0o755)
    for d in ("usr", "usr/bin", "usr/lib", "etc", "opt", "opt/app", "var", "srv"):
        t.add(d, tarfile.DIRTYPE, mode=0o755)
    t.add("home", tarfile.DIRTYPE, mode=0o755)
    t.add("home/user", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000,
          xattrs={"user.owner": "user"})
    t.add("tmp", tarfile.DIRTYPE, mode=0o1777)
    t.add("srv/shared", tarfile.DIRTYPE, mode=0o2775, gid=50)
    for n in range(7):
        t.add(f"opt/app/d{n}", tarfile.DIRTYPE, mode=rng.choice([0o755, 0o750, 0o711]),
              uid=rng.choice([0, 1000]), gid=rng.choice([0, 1000]))
    files0 = _bench_files(t, rng, "opt/app", 90)
    t.add("usr/bin/su", data=b"\x7fELF su" * 100, mode=0o4755,
          xattrs={"user.cap": "none"})
    t.add("usr/bin/wall", data=b"\x7fELF wall" * 50, mode=0o2755, gid=5)
    # hardlink headers repeat the file's metadata, as tar writers make them
    t.add("usr/bin/su-hard", tarfile.LNKTYPE, mode=0o4755, linkname="usr/bin/su")
    t.add("usr/lib/libx.so.1", data=rng.randbytes(20000), mode=0o755)
    t.add("usr/lib/libx.so", tarfile.SYMTYPE, mode=0o777, linkname="libx.so.1")
    t.add("bin", tarfile.SYMTYPE, mode=0o777, linkname="usr/bin")
    t.add("etc/abs-link", tarfile.SYMTYPE, mode=0o777, linkname="/usr/bin/su")
    t.add("etc/dangling", tarfile.SYMTYPE, mode=0o777, linkname="../nowhere/at/all")
    t.add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    t.add("etc/group", data=b"root:x:0:\n")
    t.add("tmp/fifo", tarfile.FIFOTYPE, mode=0o600)
    t.add("opaque", tarfile.DIRTYPE, mode=0o755, xattrs={"user.dir": "lower"})
    t.add("opaque/old", data=b"old")
    t.add("opaque/sub", tarfile.DIRTYPE, mode=0o700)
    t.add("opaque/sub/deep", data=b"deep")
    t.add("gone-dir", tarfile.DIRTYPE)
    t.add("gone-dir/a", data=b"a")
    t.add("gone-file", data=b"gone")
    t.add("file-to-dir", data=b"a file")
    t.add("dir-to-file", tarfile.DIRTYPE)
    t.add("dir-to-file/x", data=b"x")
    t.add("link-to-file", tarfile.SYMTYPE, linkname="etc/passwd")
    t.add("changes", data=b"v1", mode=0o644, uid=1000, gid=1000)
    builder.add_layer(t.build(), compression=Compression.GZIP)

    t = _Tar()
    _bench_files(t, rng, "srv/data", 60)
    for name in rng.sample(files0, 10):
        d, f = name.rsplit("/", 1)
        t.add(f"{d}/.wh.{f}")
    t.add(".wh.gone-dir").add(".wh.gone-file")
    t.add("opaque/.wh..wh..opq").add("opaque/new", data=b"new", uid=1000)
    t.add("file-to-dir", tarfile.DIRTYPE, mode=0o750)
    t.add("file-to-dir/in", data=b"in")
    t.add("dir-to-file", data=b"now a file", mode=0o600)
    t.add("link-to-file", data=b"a file now")
    t.add("changes", data=b"v2 longer", mode=0o600, uid=65534, gid=65534,
          xattrs={"user.v": "2"})
    t.add("home/user/su-copy", tarfile.LNKTYPE, mode=0o4755, linkname="usr/bin/su")
    t.add("bin/via-link", data=b"written through bin -> usr/bin")
    t.add("srv/shared/x", data=b"x", gid=50, mode=0o664)
    builder.add_layer(t.build(), compression=Compression.GZIP)

    t = _Tar()
    _bench_files(t, rng, "var/cache", 40)
    t.add("usr/bin/.wh.su-hard")
    t.add("srv/data/.wh..wh..opq")
    t.add("srv/data/only", data=b"only this", xattrs={"user.only": "1"})
    t.add("etc/.wh.dangling")
    builder.add_layer(t.build(), compression=Compression.GZIP)  # umoci 0.4.7: no zstd
    builder.config(cmd=["/bin/sh"], user="0:0")
    return builder.build()


def _unpack_cli(image: str, rootfs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "oci_storage", "unpack", image,
                           str(rootfs), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def _layout(tmp_path: Path, image: BuiltImage, tag: str = "t") -> Path:
    layout = tmp_path / "layout"
    copy_image(image.reference, f"oci:{layout}:{tag}")
    return layout


def _blob_path(layout: Path, digest: Digest) -> Path:
    return layout / "blobs" / digest.algorithm / digest.hex


def _manifest_of(image: BuiltImage) -> ImageManifest:
    return ImageManifest.from_json(image.manifest, image.media_type)


def _config_of(image: BuiltImage) -> ImageConfig:
    blob = image.blobs[_manifest_of(image).config.digest]
    return ImageConfig.from_json(blob if isinstance(blob, bytes) else blob.read_bytes())


def _open(image: str):  # type: ignore[no-untyped-def]
    return parse_image_name(image).open_source()


# --------------------------------------------------------------------------- umoci oracle


@pytest.mark.peers
def test_bench_image_rootfs_equals_umoci(tmp_path: Path) -> None:
    """The issue's requirement: our rootfs (the CLI's and a vfs store's top layer) of the
    bench-style image equals umoci unpack's: same paths, types, modes, owners, link
    targets, xattrs and file contents."""
    umoci = require("umoci")
    require_root("umoci and we apply owners, setuid bits and devices only as root")
    image = _bench_image(tmp_path)
    layout = _layout(tmp_path, image)
    bundle = tmp_path / "bundle"
    run_tool([umoci, "unpack", "--image", f"{layout}:t", str(bundle)])
    expected = _tree(bundle / "rootfs")
    # the image is what the test says it is
    contents = [v[-1] for v in expected.values() if v[0] == stat.S_IFREG]
    assert 2 << 20 < sum(len(c) for c in contents if isinstance(c, bytes)) < 8 << 20
    kinds = {v[0] for v in expected.values()}
    assert {stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO} <= kinds
    assert expected["usr/bin/su"][1] == 0o4755
    assert expected["usr/bin/su"][-2] == 2  # su and home/user/su-copy
    assert expected["opaque/new"]
    assert "opaque/old" not in expected
    assert "gone-dir" not in expected
    assert "gone-file" not in expected
    assert list(p for p in expected if p.startswith("srv/data/")) == ["srv/data/only"]
    assert any(v[-3] for v in expected.values() if v[0] == stat.S_IFREG)  # xattrs
    assert {v[2] for v in expected.values()} >= {0, 1000, 65534}

    ours = tmp_path / "ours"
    result = _unpack_cli(f"oci:{layout}:t", ours)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{image.digest}\n"
    assert _tree(ours) == expected
    # the root came from the layer's ./ entry in both
    assert _tree(ours, with_root=True)["."] == _tree(bundle / "rootfs", with_root=True)["."]

    graph, run = tmp_path / "graph", tmp_path / "run"
    copy_image(f"oci:{layout}:t", f"containers-storage:[vfs@{graph}+{run}]localhost/bench:1")
    with Store.open(graph, run) as store:
        top = store.image("localhost/bench:1").top_layer
        assert _tree(store.layer_path(top)) == expected


# --------------------------------------------------------------------------- the API


@needs_root
@pytest.mark.parametrize("existing", [False, True])
def test_unpacked_image_fields(tmp_path: Path, existing: bool) -> None:
    image = random_image(seed=3, layers=3, files_per_layer=10)
    layout = _layout(tmp_path, image)
    manifest, config = _manifest_of(image), _config_of(image)
    root = tmp_path / "some" / "rootfs"
    if existing:
        root.mkdir(parents=True)
    with _open(f"oci:{layout}:t") as source:
        unpacked = unpack_image(source, root)
    assert isinstance(unpacked, UnpackedImage)
    assert unpacked.rootfs == root
    index = json.loads((layout / "index.json").read_text())
    assert unpacked.manifest_digest == image.digest == Digest.parse(
        index["manifests"][0]["digest"])
    assert unpacked.config == config
    assert len(unpacked.layers) == len(manifest.layers) == 3
    assert [a.diff_id for a in unpacked.layers] == list(config.rootfs.diff_ids)
    assert [(a.compressed_digest, a.compressed_size) for a in unpacked.layers] == [
        (d.digest, d.size) for d in manifest.layers]
    assert {a.compression for a in unpacked.layers} == {"gzip"}
    # the tree is the layers applied in order (as the store's vfs driver makes it)
    graph, run = tmp_path / "graph", tmp_path / "run"
    copy_image(f"oci:{layout}:t", f"containers-storage:[vfs@{graph}+{run}]localhost/r:1")
    with Store.open(graph, run) as store:
        assert _tree(root) == _tree(store.layer_path(store.image("localhost/r:1").top_layer))
    assert _tree(root)  # not empty


def _platform_image(platform: Platform) -> BuiltImage:
    builder = ImageBuilder(platform=platform)
    builder.add_layer(_Tar().add("arch", data=str(platform).encode()).build())
    return builder.build()


_PLATFORMS = [Platform("linux", "amd64"), Platform("linux", "arm64", "v8"),
              Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6")]


@pytest.fixture
def index_layout(tmp_path: Path) -> tuple[Path, dict[str, BuiltImage]]:
    images = {str(p): _platform_image(p) for p in _PLATFORMS}
    index = build_index(images.values())
    layout = tmp_path / "index-layout"
    copy_image(index.reference, f"oci:{layout}:multi", _all_instances())
    raw = json.loads((layout / "index.json").read_text())
    assert raw["manifests"][0]["digest"] == str(index.digest)  # the layout holds the index
    return layout, images


def _all_instances() -> CopyOptions:
    return CopyOptions(multi_arch=MultiArch.ALL)


@pytest.mark.parametrize(("flags", "wanted"), [
    (["--override-arch", "arm64"], "linux/arm64/v8"),
    (["--override-arch", "amd64"], "linux/amd64"),
    (["--override-arch", "arm", "--override-variant", "v6"], "linux/arm/v6"),
    (["--override-arch", "arm", "--override-variant", "v7"], "linux/arm/v7"),
    (["--override-os", "linux", "--override-arch", "aarch64"], "linux/arm64/v8"),
])
def test_index_instance_chosen_by_platform(
        index_layout: tuple[Path, dict[str, BuiltImage]], tmp_path: Path,
        flags: list[str], wanted: str) -> None:
    layout, images = index_layout
    rootfs = tmp_path / "rootfs"
    result = _unpack_cli(f"oci:{layout}:multi", rootfs, *flags)
    assert result.returncode == 0, result.stderr
    # the instance's manifest digest, not the index's
    assert result.stdout == f"{images[wanted].digest}\n"
    assert (rootfs / "arch").read_text() == wanted
    assert os.listdir(rootfs) == ["arch"]


def test_index_default_is_the_host_platform(
        index_layout: tuple[Path, dict[str, BuiltImage]], tmp_path: Path) -> None:
    layout, images = index_layout
    host = host_platform()
    wanted = next((k for k, im in images.items() if im.platform is not None
                   and im.platform.os == host.os
                   and im.platform.architecture == host.architecture), None)
    if wanted is None:
        pytest.skip(f"no instance for this host ({host})")
    with _open(f"oci:{layout}:multi") as source:
        unpacked = unpack_image(source, tmp_path / "host")
    assert unpacked.manifest_digest == images[wanted].digest
    assert (tmp_path / "host" / "arch").read_text() == wanted
    # the API's platform argument
    with _open(f"oci:{layout}:multi") as source:
        unpacked = unpack_image(source, tmp_path / "arm",
                                platform=Platform("linux", "arm", "v7"))
    assert unpacked.manifest_digest == images["linux/arm/v7"].digest
    assert unpacked.config.architecture == "arm"
    assert (tmp_path / "arm" / "arch").read_text() == "linux/arm/v7"


def test_no_matching_instance(index_layout: tuple[Path, dict[str, BuiltImage]],
                              tmp_path: Path) -> None:
    layout, _ = index_layout
    rootfs = tmp_path / "rootfs"
    with _open(f"oci:{layout}:multi") as source, pytest.raises(NoMatchingPlatformError):
        unpack_image(source, rootfs, platform=Platform("linux", "s390x"))
    assert not rootfs.exists()
    result = _unpack_cli(f"oci:{layout}:multi", rootfs, "--override-arch", "s390x")
    _assert_cli_error(result, "s390x")
    assert not rootfs.exists()


def _assert_cli_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@needs_root
def test_non_empty_target_is_refused_and_untouched(tmp_path: Path) -> None:
    image = random_image(seed=4)
    layout = _layout(tmp_path, image)
    root = tmp_path / "rootfs"
    root.mkdir(mode=0o750)
    (root / "keep").write_bytes(b"mine")
    (root / "sub").mkdir()
    before = snapshot(tmp_path, tmp_path / "none")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _open(f"oci:{layout}:t") as source, \
                pytest.raises(StorageError, match="not empty"):
            unpack_image(source, root)
        gc.collect()
    # (the emptiness check once left a scandir iterator open)
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert snapshot(tmp_path, tmp_path / "none") == before
    _assert_cli_error(_unpack_cli(f"oci:{layout}:t", root), "not empty")
    assert snapshot(tmp_path, tmp_path / "none") == before
    # an empty directory is fine, and keeps its place
    (root / "keep").unlink()
    (root / "sub").rmdir()
    result = _unpack_cli(f"oci:{layout}:t", root)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{image.digest}\n"
    assert os.listdir(root)


def _three_layers(plain_middle: bool) -> BuiltImage:
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    rng = random.Random(7)
    for i in range(3):
        t = _Tar()
        _bench_files(t, rng, f"layer{i}", 12)
        builder.add_layer(t.build(), compression=Compression.NONE if plain_middle and i == 1
                          else Compression.GZIP)
    return builder.build()


def _damage(blob: Path, how: str) -> None:
    data = bytearray(blob.read_bytes())
    os.chmod(blob, 0o644)
    if how == "flip":  # inside a file's content: a valid tar, other bytes
        data[len(data) // 2] ^= 0x01
    elif how == "flip-trailer":
        data[-3] ^= 0x40
    elif how == "truncate":
        del data[len(data) * 2 // 3:]
    elif how == "missing":
        blob.unlink()
        return
    blob.write_bytes(bytes(data))


@needs_root
@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("how", ["flip-plain", "flip-gzip", "flip-trailer", "truncate",
                                 "missing"])
def test_corrupted_layer_blob(tmp_path: Path, how: str, existing: bool) -> None:
    """A damaged middle layer: a typed error, and the first layer's files gone again."""
    image = _three_layers(plain_middle=how == "flip-plain")
    area = tmp_path / "area"
    area.mkdir()
    (area / "neighbour").write_bytes(b"n")
    root = area / "rootfs"
    if existing:
        root.mkdir()
    outside = _outside(area, root)
    middle = _manifest_of(image).layers[1]
    blobs = dict(image.blobs)
    if how == "missing":
        del blobs[middle.digest]
    else:
        path = tmp_path / "middle"
        raw = blobs[middle.digest]
        path.write_bytes(raw if isinstance(raw, bytes) else raw.read_bytes())
        _damage(path, how.removesuffix("-plain").removesuffix("-gzip"))
        blobs[middle.digest] = path.read_bytes()
        path.unlink()
    damaged = attrs.evolve(image, blobs=blobs)
    with damaged.reference.open_source() as source, pytest.raises(OCIError) as info:
        unpack_image(source, root)
    assert isinstance(info.value, _DAMAGE_ERRORS[how]), repr(info.value)
    if how != "flip-gzip" and how != "flip-trailer":
        assert str(middle.digest) in str(info.value)
    if existing:
        assert root.is_dir()
        assert os.listdir(root) == []
    else:
        assert not root.exists()
    assert _outside(area, root) == outside

    # the same through an oci: layout and the CLI
    layout = _layout(tmp_path, image)
    stored = ImageManifest.from_json(_read_manifest(layout)).layers[1]
    _damage(_blob_path(layout, stored.digest),
            how.removesuffix("-plain").removesuffix("-gzip"))
    _assert_cli_error(_unpack_cli(f"oci:{layout}:t", root))
    if existing:
        assert root.is_dir()
        assert os.listdir(root) == []
    else:
        assert not root.exists()


#: what each damage gives: only the digest can tell a flipped byte in a plain tar; gzip
#: notices its own check values first
_DAMAGE_ERRORS: dict[str, type[OCIError]] = {
    "flip-plain": DigestMismatchError, "flip-gzip": TransportError,
    "flip-trailer": TransportError, "truncate": SizeMismatchError,
    "missing": BlobNotFoundError}


def _read_manifest(layout: Path, tag: str = "t") -> bytes:
    index = json.loads((layout / "index.json").read_text())
    entry = next(m for m in index["manifests"]
                 if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    return _blob_path(layout, Digest.parse(entry["digest"])).read_bytes()


def _with_config(layout: Path, config: bytes) -> None:
    """Give the layout's image (tag ``t``) another config, written by hand (a copy
    would check the diff_ids)."""
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    manifest = json.loads(_read_manifest(layout))
    digest = Digest.from_bytes(config)
    _blob_path(layout, digest).write_bytes(config)
    manifest["config"].update(digest=str(digest), size=len(config))
    raw = json.dumps(manifest).encode()
    _blob_path(layout, manifest_digest(raw)).write_bytes(raw)
    index["manifests"][0].update(digest=str(manifest_digest(raw)), size=len(raw))
    index_path.write_text(json.dumps(index))


@needs_root
def test_config_lying_about_a_diff_id(tmp_path: Path) -> None:
    image = _three_layers(plain_middle=False)
    manifest, config = _manifest_of(image), _config_of(image)
    lie = Digest.from_bytes(b"not this layer")
    lying = attrs.evolve(config, rootfs=attrs.evolve(
        config.rootfs, diff_ids=(*config.rootfs.diff_ids[:2], lie))).to_json()
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    for desc in manifest.layers:
        blob = image.blobs[desc.digest]
        builder.add_layer(gzip.decompress(blob if isinstance(blob, bytes)
                                          else blob.read_bytes()))
    builder.artifact(artifact_type=None, config_media_type=MediaType.OCI_CONFIG,
                     config=lying)
    area = tmp_path / "area"
    area.mkdir()
    root = area / "rootfs"
    before = _outside(area, root)
    with builder.build().reference.open_source() as source, \
            pytest.raises(DiffIDMismatchError) as info:
        unpack_image(source, root)
    assert str(lie) in str(info.value)
    assert not root.exists()
    assert _outside(area, root) == before

    layout = _layout(tmp_path, image)
    _with_config(layout, lying)
    _assert_cli_error(_unpack_cli(f"oci:{layout}:t", root), str(lie))
    assert not root.exists()


def test_config_with_too_few_diff_ids(tmp_path: Path) -> None:
    good = _three_layers(plain_middle=False)
    manifest, config = _manifest_of(good), _config_of(good)
    raw = json.loads(config.to_json())
    raw["rootfs"]["diff_ids"] = raw["rootfs"]["diff_ids"][:2]
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    for i, desc in enumerate(manifest.layers):
        blob = good.blobs[desc.digest]
        path = tmp_path / f"layer{i}"
        path.write_bytes(blob if isinstance(blob, bytes) else blob.read_bytes())
        builder.add_layer_file(path, media_type=desc.media_type,
                               diff_id=config.rootfs.diff_ids[i])
    builder.artifact(artifact_type=None, config_media_type=MediaType.OCI_CONFIG,
                     config=json.dumps(raw).encode())
    image = builder.build()
    root = tmp_path / "rootfs"
    with image.reference.open_source() as source, pytest.raises(StorageError, match="diff_ids"):
        unpack_image(source, root)
    assert not root.exists()


def test_an_index_inside_an_index_is_refused(tmp_path: Path) -> None:
    inner = build_index([_platform_image(Platform("linux", "amd64"))])
    outer = ImageIndex(media_type=MediaType.OCI_INDEX, manifests=(
        attrs.evolve(inner.descriptor, platform=Platform("linux", "amd64")),))
    image = BuiltImage(manifest=outer.to_json(), media_type=MediaType.OCI_INDEX,
                       blobs=dict(inner.blobs),
                       instances={inner.digest: (inner.manifest, inner.media_type)})
    root = tmp_path / "rootfs"
    with image.reference.open_source() as source, pytest.raises(OCIError):
        unpack_image(source, root, platform=Platform("linux", "amd64"))
    assert not root.exists()


# --------------------------------------------------------------------------- hostile


HOSTILE = sorted(corpus(Path("/nonexistent/outside")))


@needs_root
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_layers(tmp_path: Path, name: str) -> None:
    """Every case of the hostile corpus, as an image: refused with the typed error (the
    directory removed) or contained; nothing outside the root changes either way."""
    outside = tmp_path / "outside"
    make_sentinel(outside)
    (tmp_path / "base").mkdir()
    root = tmp_path / "base" / "root"
    case = corpus(outside)[name]
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    for layer in case.layers:
        builder.add_layer(layer, compression=Compression.NONE)
    image = builder.build()
    if case.expect == "contained":  # the root stays: made first, so "base" keeps its list
        root.mkdir()
    before = _outside(tmp_path, root)
    etc_passwd = Path("/etc/passwd").read_bytes()
    limits = ApplyLimits(**case.limits)
    with image.reference.open_source() as source:
        if case.expect == "contained":
            unpack_image(source, root, limits=limits)
            if case.check is not None:
                case.check(root)
        else:
            error = UnsafeArchiveError if case.expect == "unsafe" else LayerLimitError
            with pytest.raises(error) as info:
                unpack_image(source, root, limits=limits)
            if case.entry is not None:
                assert getattr(info.value, "entry", None) == case.entry
            assert not root.exists()
    assert _outside(tmp_path, root) == before
    assert Path("/etc/passwd").read_bytes() == etc_passwd


@needs_root
def test_hostile_layer_into_an_existing_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make_sentinel(outside)
    root = tmp_path / "base" / "root"
    root.mkdir(parents=True)
    case = corpus(outside)["symlink-loop"]
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    builder.add_layer(_Tar().add("ok", tarfile.DIRTYPE).add("ok/f", data=b"f").build())
    for layer in case.layers:
        builder.add_layer(layer, compression=Compression.NONE)
    before = _outside(tmp_path, root)
    with builder.build().reference.open_source() as source, \
            pytest.raises(UnsafeArchiveError):
        unpack_image(source, root)
    assert root.is_dir()
    assert os.listdir(root) == []
    assert _outside(tmp_path, root) == before


@needs_root
def test_hostile_image_through_the_cli(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    make_sentinel(outside)
    root = tmp_path / "base" / "root"
    (tmp_path / "base").mkdir()
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    builder.add_layer(corpus(outside)["traversal"].layers[0])
    layout = _layout(tmp_path, builder.build())
    before = _outside(tmp_path, root)
    _assert_cli_error(_unpack_cli(f"oci:{layout}:t", root), "../../outside/x")
    assert not root.exists()
    assert _outside(tmp_path, root) == before


def test_cli_unknown_image(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    _assert_cli_error(_unpack_cli(f"oci:{tmp_path / 'none'}:t", root))
    assert not root.exists()
    _assert_cli_error(_unpack_cli("nosuchtransport:x", root))
    assert not root.exists()
