"""Layer application (oci_storage.apply): the hostile corpus, whiteouts in both modes,
metadata, digests and limits. Everything happens under tmp_path; the sentinel directory
next to the root must come out byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oci_image.build import BuiltImage, ImageBuilder
from oci_image.copy import copy_image
from oci_image.errors import DiffIDMismatchError, TransportError
from oci_image.spec import Compression, Digest, Platform
from oci_image.testing.random import random_image
from oci_storage.apply import (
    ApplyLimits,
    ApplyOptions,
    DevicePolicy,
    WhiteoutMode,
    apply_layer,
    clean_name,
)
from oci_storage.errors import LayerLimitError, UnsafeArchiveError

from .hostile_layers import TarBuilder, corpus, gz, make_sentinel, snapshot, zst
from .peers import require, run_tool

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (chown, mknod, trusted.*)")
CASE_NAMES = sorted(corpus(Path("/nonexistent/outside")))


def _apply(data: bytes, root: Path, **kw: object):  # type: ignore[no-untyped-def]
    return apply_layer(io.BytesIO(data), root, **kw)  # type: ignore[arg-type]


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(tmp, sentinel dir, root): the root is ``tmp/base/root`` so that ``../../outside``
    from the root names the sentinel."""
    outside = tmp_path / "outside"
    make_sentinel(outside)
    root = tmp_path / "base" / "root"
    root.mkdir(parents=True)
    return tmp_path, outside, root


# --------------------------------------------------------------------------- hostile


@pytest.mark.parametrize("mode", list(WhiteoutMode))
@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_layer_refused_or_contained(name: str, mode: WhiteoutMode,
                                            layout: tuple[Path, Path, Path]) -> None:
    tmp, outside, root = layout
    case = corpus(outside)[name]
    before = snapshot(tmp, root)
    etc_passwd = Path("/etc/passwd").read_bytes()
    limits = ApplyLimits(**case.limits)
    for layer in case.layers[:-1]:
        _apply(layer, root, mode=mode, limits=limits)
    hostile = case.layers[-1]
    if case.expect == "unsafe":
        with pytest.raises(UnsafeArchiveError) as info:
            _apply(hostile, root, mode=mode, limits=limits)
        if case.entry is not None:
            assert info.value.entry == case.entry, info.value
    elif case.expect == "limit":
        with pytest.raises(LayerLimitError):
            _apply(hostile, root, mode=mode, limits=limits)
    else:
        _apply(hostile, root, mode=mode, limits=limits)
        if case.check is not None:
            case.check(root)
    assert snapshot(tmp, root) == before
    assert Path("/etc/passwd").read_bytes() == etc_passwd


def test_hostile_corpus_covers_the_issue_list() -> None:
    required = ["traversal", "absolute", "symlink-then-write", "symlink-dotdot-chain",
                "symlink-relative-escape", "symlink-loop", "hardlink-escape",
                "hardlink-via-symlink", "hardlink-forward", "root-symlink-dot",
                "whiteout-through-symlink", "decompression-bomb", "huge-pax-header",
                "negative-size", "lying-size-short"]
    assert set(required) <= set(CASE_NAMES)


def test_contained_writes_land_inside(layout: tuple[Path, Path, Path]) -> None:
    _, outside, root = layout
    _apply(TarBuilder().symlink("link", "/").file("link/etc/passwd", b"mine")
           .file(str(outside) + "/secret", b"mine too").build(), root)
    assert (root / "etc" / "passwd").read_bytes() == b"mine"
    assert (root / str(outside).lstrip("/") / "secret").read_bytes() == b"mine too"
    assert os.readlink(root / "link") == "/"


def test_whiteout_through_symlink_deletes_inside_only(
        layout: tuple[Path, Path, Path]) -> None:
    tmp, outside, root = layout
    rel = str(outside).lstrip("/")
    _apply(TarBuilder().file(rel + "/secret", b"in-root copy").symlink("link", str(outside))
           .build(), root)
    before = snapshot(tmp, root)
    _apply(TarBuilder().whiteout("link/.wh.secret").build(), root)
    assert not (root / rel / "secret").exists()  # the in-root target went
    assert snapshot(tmp, root) == before


@pytest.mark.parametrize("name", ["../x", "a/../../x", "..", "/../x"])
def test_clean_name_refuses_escapes(name: str) -> None:
    with pytest.raises(UnsafeArchiveError):
        clean_name(name)


@pytest.mark.parametrize(("name", "cleaned"), [("/etc/x", "etc/x"), ("./a//b/", "a/b"),
                                               ("a/../b", "b"), ("/", "."), ("", "."),
                                               ("./", ".")])
def test_clean_name(name: str, cleaned: str) -> None:
    assert clean_name(name) == cleaned


# --------------------------------------------------------------------------- contents


@needs_root
def test_metadata_is_applied(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = (TarBuilder()
             .dir("bin", mode=0o755, mtime=1000)
             .file("bin/su", b"#!", mode=0o4755, uid=0, gid=0, mtime=2000)
             .file("bin/sg", b"#!", mode=0o2711, uid=12, gid=34)
             .dir("tmp", mode=0o1777, mtime=3000)
             .file("tmp/owned", b"o", mode=0o640, uid=1234, gid=5678)
             .symlink("bin/sh", "/bin/su", uid=7, gid=8, mtime=4000)
             # as tar writers do: the link's header repeats the file's metadata
             .hardlink("bin/su2", "bin/su", mode=0o4755, mtime=2000)
             .fifo("tmp/fifo", mode=0o620)
             .device("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666)
             .device("dev/sda", tarfile.BLKTYPE, 8, 0, mode=0o660)
             .build())
    result = _apply(layer, root, options=ApplyOptions(devices=DevicePolicy.CREATE))
    assert result.entries == 10
    assert result.uids == {0, 12, 1234, 7}
    assert result.gids == {0, 34, 5678, 8}
    st = os.lstat(root / "bin/su")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert st.st_mtime == 2000
    assert os.lstat(root / "bin/su2").st_ino == st.st_ino
    assert st.st_nlink == 2
    st = os.lstat(root / "bin/sg")
    assert stat.S_IMODE(st.st_mode) == 0o2711
    assert (st.st_uid, st.st_gid) == (12, 34)
    st = os.lstat(root / "tmp")
    assert stat.S_IMODE(st.st_mode) == 0o1777
    assert st.st_mtime == 3000
    assert os.lstat(root / "bin").st_mtime == 1000
    st = os.lstat(root / "tmp/owned")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)
    st = os.lstat(root / "bin/sh")
    assert stat.S_ISLNK(st.st_mode)
    assert (st.st_uid, st.st_gid) == (7, 8)
    assert st.st_mtime == 4000
    assert os.readlink(root / "bin/sh") == "/bin/su"
    st = os.lstat(root / "tmp/fifo")
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o620
    st = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(st.st_mode)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    st = os.lstat(root / "dev/sda")
    assert stat.S_ISBLK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_hardlink_header_metadata_goes_to_the_shared_inode(tmp_path: Path) -> None:
    """As containers/storage (and so podman) applies it: the last header wins."""
    root = tmp_path / "root"
    root.mkdir()
    _apply(TarBuilder().file("a", b"data", mode=0o644, mtime=1000)
           .symlink("s", "a", uid=3, gid=4)
           .hardlink("b", "a", mode=0o600, uid=1000, gid=1001, mtime=5000)
           .hardlink("t", "s", mode=0o777, uid=5, gid=6, mtime=6000)
           .build(), root)
    st = os.lstat(root / "a")
    assert os.lstat(root / "b").st_ino == st.st_ino
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime) == (
        0o600, 1000, 1001, 5000)
    # a link to a symlink: the owner changes, its mode and mtime are left alone
    st = os.lstat(root / "s")
    assert os.lstat(root / "t").st_ino == st.st_ino
    assert stat.S_ISLNK(st.st_mode)
    assert (st.st_uid, st.st_gid) == (5, 6)
    assert st.st_mtime != 6000


def test_ignore_ownership(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _apply(TarBuilder().file("f", b"x", uid=4242, gid=4343, mode=0o4755).build(), root,
           options=ApplyOptions(ignore_ownership=True))
    st = os.lstat(root / "f")
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    assert stat.S_IMODE(st.st_mode) == 0o4755


@pytest.mark.parametrize("policy", list(DevicePolicy))
def test_device_policy(policy: DevicePolicy, tmp_path: Path) -> None:
    if policy is DevicePolicy.CREATE and not IS_ROOT:
        pytest.skip("mknod of devices needs root")
    root = tmp_path / "root"
    root.mkdir()
    layer = TarBuilder().dir("dev").device("dev/sda", tarfile.BLKTYPE, 8, 0).build()
    options = ApplyOptions(devices=policy)
    if policy is DevicePolicy.REFUSE:
        with pytest.raises(UnsafeArchiveError) as info:
            _apply(layer, root, options=options)
        assert info.value.entry == "dev/sda"
        return
    _apply(layer, root, options=options)
    assert os.path.lexists(root / "dev/sda") == (policy is DevicePolicy.CREATE)


def test_duplicate_entries_last_wins(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = (TarBuilder()
             .file("a", b"file").dir("a").file("a/in", b"1")
             .dir("b").file("b/child", b"c").symlink("b", "a")
             .file("c", b"1").file("c", b"2")
             .symlink("d", "nowhere").file("d", b"file over symlink")
             .dir("e").dir("e", mode=0o700)
             .file("f", b"orig").hardlink("g", "f").file("g", b"new g")
             .build())
    _apply(layer, root)
    assert (root / "a").is_dir()
    assert (root / "a/in").read_bytes() == b"1"
    assert os.readlink(root / "b") == "a"
    assert (root / "c").read_bytes() == b"2"
    assert not (root / "d").is_symlink()
    assert (root / "d").read_bytes() == b"file over symlink"
    assert stat.S_IMODE(os.lstat(root / "e").st_mode) == 0o700
    assert (root / "f").read_bytes() == b"orig"
    assert (root / "g").read_bytes() == b"new g"


def test_hardlink_replaces_existing_name(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _apply(TarBuilder().file("t", b"target").dir("h").file("h/x").build(), root)
    _apply(TarBuilder().hardlink("h", "t").build(), root)
    assert os.lstat(root / "h").st_ino == os.lstat(root / "t").st_ino


@needs_root
def test_xattrs_filtered(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    pax = {"SCHILY.xattr.trusted.overlay.opaque": "y",
           "SCHILY.xattr.trusted.overlay.redirect": "/etc",
           "SCHILY.xattr.trusted.other": "t",
           "SCHILY.xattr.security.selinux": "system_u:object_r:shadow_t:s0",
           "SCHILY.xattr.user.overlay.opaque": "y",
           "SCHILY.xattr.user.keep": "kept"}
    _apply(TarBuilder().dir("d", pax=pax).file("d/f", b"x", pax=pax).build(), root)
    for p in (root / "d", root / "d/f"):
        names = set(os.listxattr(p, follow_symlinks=False))
        assert not any(n.startswith(("trusted.", "user.overlay.")) for n in names), names
        assert "security.selinux" not in names or os.getxattr(p, "security.selinux") != \
            b"system_u:object_r:shadow_t:s0"
        try:
            assert os.getxattr(p, "user.keep") == b"kept"
        except OSError as exc:  # a filesystem without user xattrs
            pytest.skip(f"no user xattrs here: {exc}")


@needs_root
def test_security_capability_survives_chown(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # VFS_CAP_REVISION_2, cap_net_bind_service permitted+effective
    cap = bytes([0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    pax = {"SCHILY.xattr.security.capability": cap.decode("latin-1")}
    # tarfile encodes PAX values as UTF-8: use only ASCII-safe bytes here
    assert all(b < 0x80 for b in cap)
    _apply(TarBuilder().file("ping", b"x", mode=0o755, uid=5, pax=pax).build(), root)
    assert os.getxattr(root / "ping", "security.capability") == cap


# --------------------------------------------------------------------------- whiteouts


def _tree(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISCHR(st.st_mode):
                out[rel] = f"chr {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                out[rel] = p.read_bytes().decode()
    return out


def test_delete_whiteouts_and_opaque(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _apply(TarBuilder().dir("a").file("a/x", b"x").file("a/y", b"y").dir("b").file("b/z")
           .dir("d").file("d/old", b"old").dir("d/sub").file("d/sub/old2", b"o2")
           .dir("e").file("e/f", b"lower").file("keep", b"k").build(), root)
    _apply(TarBuilder()
           .whiteout("a/.wh.x").whiteout(".wh.b").whiteout(".wh.missing")
           .file("d/new", b"new").dir("d/sub").whiteout("d/.wh..wh..opq")
           .file("d/later", b"later")
           .whiteout("e/.wh.f").file("e/f", b"again")
           .build(), root)
    assert _tree(root) == {
        "a": "dir", "a/y": "y", "d": "dir", "d/new": "new", "d/later": "later",
        "d/sub": "dir", "e": "dir", "e/f": "again", "keep": "k"}


def test_opaque_keeps_nested_entries_of_the_same_layer(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _apply(TarBuilder().dir("d").dir("d/s").file("d/s/old").file("d/s/t").dir("d/gone")
           .build(), root)
    # no entry for d/s itself: its ancestors of new entries must survive the opaque
    _apply(TarBuilder().file("d/s/new", b"n").whiteout("d/.wh..wh..opq").build(), root)
    assert _tree(root) == {"d": "dir", "d/s": "dir", "d/s/new": "n"}


@needs_root
def test_overlay_whiteouts(tmp_path: Path) -> None:
    diff = tmp_path / "diff"
    diff.mkdir()
    _apply(TarBuilder().dir("d").file("d/new", b"n").whiteout("d/.wh..wh..opq")
           .whiteout("d/.wh.gone").whiteout(".wh.top").whiteout("x/y/.wh.deep")
           .build(), diff, mode=WhiteoutMode.OVERLAY)
    assert _tree(diff) == {"d": "dir", "d/new": "n", "d/gone": "chr 0:0", "top": "chr 0:0",
                           "x": "dir", "x/y": "dir", "x/y/deep": "chr 0:0"}
    assert os.getxattr(diff / "d", "trusted.overlay.opaque") == b"y"
    with pytest.raises(OSError):  # x is not opaque
        os.getxattr(diff / "x", "trusted.overlay.opaque")


@needs_root
def test_overlay_whiteout_under_whited_out_dir_is_tolerated(tmp_path: Path) -> None:
    diff = tmp_path / "diff"
    diff.mkdir()
    _apply(TarBuilder().whiteout(".wh.foo").whiteout("foo/.wh.bar").build(), diff,
           mode=WhiteoutMode.OVERLAY)
    assert _tree(diff) == {"foo": "chr 0:0"}


def test_multi_layer_sequence(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layers = [
        TarBuilder().dir("etc").file("etc/os", b"v1").dir("usr").dir("usr/lib")
        .file("usr/lib/a.so", b"a").symlink("lib", "usr/lib").file("tmp1", b"t").build(),
        TarBuilder().file("etc/os", b"v2").file("lib/b.so", b"b").whiteout(".wh.tmp1")
        .hardlink("usr/lib/a2.so", "usr/lib/a.so").build(),
        TarBuilder().whiteout("usr/.wh..wh..opq").dir("usr/lib").file("usr/lib/c.so", b"c")
        .whiteout("etc/.wh.os").file("etc/hosts", b"h").build(),
    ]
    for layer in layers:
        _apply(gz(layer), root)
    assert _tree(root) == {"etc": "dir", "etc/hosts": "h", "usr": "dir", "usr/lib": "dir",
                           "usr/lib/c.so": "c", "lib": "-> usr/lib"}


# --------------------------------------------------------------------------- digests


@pytest.mark.parametrize("compress", ["none", "gzip", "zstd"])
def test_digests_and_sizes(compress: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    tar = TarBuilder().file("a", b"hello" * 1000).dir("d").build() + b"\0" * 4096
    blob = {"none": tar, "gzip": gz(tar), "zstd": zst(tar)}[compress]
    diff_id = Digest("sha256", hashlib.sha256(tar).hexdigest())
    result = _apply(blob, root, expected_diff_id=diff_id)
    assert result.diff_id == diff_id
    assert result.uncompressed_size == len(tar)
    assert result.compressed_digest == Digest("sha256", hashlib.sha256(blob).hexdigest())
    assert result.compressed_size == len(blob)
    assert result.compression == compress
    assert result.entries == 2


def test_diff_id_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DiffIDMismatchError):
        _apply(gz(TarBuilder().file("a", b"x").build()), root,
               expected_diff_id=Digest("sha256", "0" * 64))


def test_empty_layers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert _apply(b"", root).entries == 0
    assert _apply(b"\0" * 1024, root).entries == 0
    assert _apply(gz(TarBuilder().build()), root).entries == 0
    assert os.listdir(root) == []


def test_corrupt_compression_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    blob = gz(TarBuilder().file("a", b"x" * 10000).build())
    with pytest.raises(TransportError) as info:
        _apply(blob[: len(blob) // 2], root)
    assert "gzip" in str(info.value)


def test_limits_have_sane_defaults() -> None:
    limits = ApplyLimits()
    assert limits.max_bytes >= 1 << 30
    assert limits.max_entries >= 100_000
    assert limits.max_header_size <= 16 << 20


# --------------------------------------------------------------------------- umoci oracle


def _full_tree(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            info: tuple[object, ...] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                        st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                info += (os.readlink(p),)
            elif stat.S_ISREG(st.st_mode):
                info += (st.st_nlink, p.read_bytes())
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info += (st.st_rdev,)
            out[str(p.relative_to(root))] = info
    return out


def _oracle_image() -> BuiltImage:
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    builder.add_layer(TarBuilder()
                      .dir("usr").dir("usr/bin").file("usr/bin/su", b"su", mode=0o4755)
                      # hardlink headers repeat their file's metadata, as tar
                      # writers make them: where they differ, umoci keeps the file's
                      # and containers/storage (and we) apply the link's
                      .hardlink("usr/bin/su2", "usr/bin/su", mode=0o4755)
                      .symlink("bin", "usr/bin")
                      .symlink("abs", "/usr/bin/su").dir("home", mode=0o755)
                      .dir("home/user", mode=0o700, uid=1000, gid=1000)
                      .file("home/user/f", b"f", mode=0o600, uid=1000, gid=1000)
                      .dir("tmp", mode=0o1777).fifo("tmp/fifo")
                      .dir("d").file("d/old", b"old").dir("d/sub").file("d/sub/o2", b"o2")
                      .file("gone", b"gone").dir("e").file("e/f", b"lower")
                      .file("f2d", b"file").dir("d2f").file("d2f/x", b"x")
                      .dir("sgid", mode=0o2775, gid=50).build(), compression=Compression.GZIP)
    builder.add_layer(TarBuilder()
                      .whiteout(".wh.gone").file("d/new", b"new").whiteout("d/.wh..wh..opq")
                      .whiteout("e/.wh.f").file("e/f", b"upper")
                      .dir("f2d").file("f2d/in", b"in").file("d2f", b"now a file")
                      .file("bin/via-link", b"written through bin -> usr/bin")
                      .hardlink("home/user/h", "usr/bin/su", mode=0o4755).build(),
                      compression=Compression.GZIP)  # umoci 0.4.7 has no zstd
    builder.add_layer(TarBuilder().whiteout("usr/bin/.wh.su2").build(),
                      compression=Compression.GZIP)
    builder.config(cmd=["/bin/sh"])
    return builder.build()


def _layers_of(image: BuiltImage) -> list[bytes]:
    manifest = json.loads(image.manifest)
    out = []
    for layer in manifest["layers"]:
        blob = image.blobs[Digest.parse(layer["digest"])]
        out.append(blob if isinstance(blob, bytes) else Path(blob).read_bytes())
    return out


@pytest.mark.peers
@needs_root
@pytest.mark.parametrize("which", ["handmade", "random-1", "random-3", "random-4", "random-6"])
def test_same_tree_as_umoci(which: str, tmp_path: Path) -> None:
    umoci = require("umoci")
    if which == "handmade":
        image = _oracle_image()
    else:
        # (seeds whose config user needs no /etc/passwd in the image: umoci looks it up)
        image = random_image(int(which.split("-")[1]), layers=3, files_per_layer=12)
    layout = tmp_path / "layout"
    copy_image(image.reference, f"oci:{layout}:t")
    bundle = tmp_path / "bundle"
    run_tool([umoci, "unpack", "--image", f"{layout}:t", str(bundle)])
    ours = tmp_path / "ours"
    ours.mkdir()
    config_diff_ids = json.loads(image.blobs[Digest.parse(
        json.loads(image.manifest)["config"]["digest"])])["rootfs"]["diff_ids"]  # type: ignore[arg-type]
    for blob, diff_id in zip(_layers_of(image), config_diff_ids, strict=True):
        _apply(blob, ours, expected_diff_id=Digest.parse(diff_id))
    expected = _full_tree(bundle / "rootfs")
    assert _full_tree(ours) == expected
    if which == "handmade":
        assert (ours / "usr/bin/via-link").read_bytes() == b"written through bin -> usr/bin"
        assert "d/old" not in expected
        assert "d/new" in expected


# --------------------------------------------------------------------------- model


_NAMES = ["a", "b", "c"]
_PATHS = [*_NAMES, *(f"{x}/{y}" for x in _NAMES for y in _NAMES)]
_op = st.tuples(st.sampled_from(["file", "dir", "whiteout", "opaque", "hardlink"]),
                st.sampled_from(_PATHS), st.sampled_from(_PATHS), st.binary(max_size=4))


def _model_apply(state: dict[str, bytes | None], ops: list[tuple[str, str, str, bytes]],
                 builder: TarBuilder, *, as_diffs: bool = False) -> None:
    """Apply one layer to the model (path -> file content, or None for a directory) and
    write the entries that are valid to ``builder``; the same OCI semantics as
    containers/storage's naive apply. ``as_diffs``: only layers as diffs of two trees
    are (what image builders write, and what an overlay layer, holding only its own
    files, can represent): hardlinks to files of the same layer, whiteouts only of what
    lower layers have and this layer has not touched, nothing made again under a path
    this layer whited out, each path named once, an opaque directory's own entry before
    its marker. (Without that entry, a naive apply and an overlay diff disagree on
    ``[dir a/a]`` then ``[a/a/.wh..wh..opq, a/.wh..wh..opq]``: the naive apply treats
    a/a as lower content that ``a``'s marker removes, the overlay diff keeps the
    directory it made for a/a's marker. Tree diffs never write that.)"""
    added: set[str] = set()
    before = set(state)
    whited: set[str] = set()
    opaqued: set[str] = set()
    touched: set[str] = set()

    def under(path: str, roots: set[str]) -> bool:
        return any(path == r or path.startswith(r + "/") for r in roots)

    def parents_ok(path: str) -> bool:
        parts = path.split("/")
        return all(state.get("/".join(parts[:i])) is None
                   for i in range(1, len(parts)))

    def remove(path: str) -> None:
        for p in [p for p in state if p == path or p.startswith(path + "/")]:
            del state[p]

    def mark(path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            added.add("/".join(parts[:i]))
            if i < len(parts):
                state.setdefault("/".join(parts[:i]), None)

    for kind, path, other, data in ops:
        if not parents_ok(path):
            continue
        if as_diffs and (under(path, whited) or path in touched):
            continue  # a diff names a path once
        touched.add(path)
        parent, _, base = path.rpartition("/")
        if kind == "file":
            remove(path)
            state[path] = data
            mark(path)
            builder.file(path, data)
        elif kind == "dir":
            if path not in state or state[path] is not None:
                remove(path)
                state[path] = None
            mark(path)
            builder.dir(path)
        elif kind == "hardlink":
            target = state.get(other)
            if other not in state or target is None or other == path \
                    or other.startswith(path + "/"):  # refused: see the test below
                continue
            if as_diffs and other not in added:
                continue
            remove(path)
            state[path] = target
            mark(path)
            builder.hardlink(path, other)
        elif kind == "whiteout":
            if as_diffs and (path not in before or under(path, added)
                             or any(path.startswith(a + "/") for a in added | opaqued)):
                continue
            whited.add(path)
            remove(path)
            added.difference_update({p for p in added if p == path or p.startswith(path + "/")})
            builder.whiteout(f"{parent}/.wh.{base}".lstrip("/"))
        else:  # opaque: ``path`` names the directory
            if path not in state or state[path] is not None:
                continue
            if as_diffs and any(w.startswith(path + "/") for w in whited):
                continue  # a diff says either "opaque" or "these were removed"
            opaqued.add(path)
            for p in [p for p in state if p.startswith(path + "/") and p not in added]:
                state.pop(p, None)
            if as_diffs:  # a diff's opaque directory is one of its own entries
                mark(path)
                builder.dir(path)
            builder.whiteout(f"{path}/.wh..wh..opq")


@settings(max_examples=40)
@given(st.lists(st.lists(_op, max_size=12), min_size=1, max_size=4))
def test_layer_sequences_match_the_model(
        layers: list[list[tuple[str, str, str, bytes]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        state: dict[str, bytes | None] = {}
        for ops in layers:
            builder = TarBuilder()
            _model_apply(state, ops, builder)
            _apply(builder.build(), root)
        expected = {p: "<dir>" if v is None else v.decode("latin-1")
                    for p, v in state.items()}
        assert _tree_latin1(root) == expected


def _tree_latin1(root: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = "<dir>" if p.is_dir() else \
                p.read_bytes().decode("latin-1")
    return out


def test_hardlink_replacing_the_directory_holding_its_target_is_refused(
        tmp_path: Path) -> None:
    """``a/a`` then a hardlink ``a`` -> ``a/a``: replacing the directory ``a`` would
    delete the target first (found by the model test)."""
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(UnsafeArchiveError) as info:
        _apply(TarBuilder().file("a/a", b"x").hardlink("a", "a/a").build(), root)
    assert info.value.entry == "a"
    assert (root / "a" / "a").read_bytes() == b"x"


def test_replaced_directories_are_resolved_again(tmp_path: Path) -> None:
    """Directories resolved for one entry are kept open for the next ones; replacing a
    directory (or a symlink on the way) must be seen by the entries that follow."""
    root = tmp_path / "root"
    root.mkdir()
    _apply(TarBuilder().dir("a").file("a/one", b"1").dir("b").file("b/two", b"2")
           .symlink("s", "a").file("s/three", b"3")  # through s -> a
           .symlink("a", "b")  # the directory a replaced by a symlink to b
           .file("a/four", b"4")  # so this lands in b
           .symlink("s", "b").file("s/five", b"5")  # s re-pointed: into b as well
           .build(), root)
    assert _tree(root) == {"a": "-> b", "b": "dir", "b/two": "2", "b/four": "4",
                           "b/five": "5", "s": "-> b"}
    # and across layers, a whiteout of a directory then a file of that name
    _apply(TarBuilder().file("b/six", b"6").whiteout(".wh.b").file("b", b"file").build(),
           root)
    assert _tree(root) == {"a": "-> b", "b": "file", "s": "-> b"}
