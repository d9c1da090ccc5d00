"""Graph drivers (vfs, overlay): one conformance suite over both, the overlay on-disk
layout, and the real containers-storage mounting a layer stack laid out by our overlay
driver.

Everything lives in ``tmp_path``; every mount under it is undone at teardown, even when
a test fails. Overlay skips with the probe's reason when it cannot work here (fails under
``OCI_REQUIRE_PEERS=1``).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oci_storage.apply import WhiteoutMode, apply_layer
from oci_storage.drivers import Driver, select_driver
from oci_storage.drivers.overlay import OverlayDriver, mounted_paths, umount
from oci_storage.drivers.vfs import VfsDriver, copy_tree
from oci_storage.errors import DriverNotSupportedError
from tests.peers import REQUIRE, require_root, run_tool

L1, L2, L3, C = ("1" * 64, "2" * 64, "3" * 64, "c" * 64)

# -- building layers ----------------------------------------------------------------------


def _tar(*entries: tuple[Any, ...]) -> bytes:
    """Entries: (kind, name, extra...) where kind is dir/file/sym/link/chr/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, *rest in entries:
            opts: dict[str, Any] = rest[-1] if rest and isinstance(rest[-1], dict) else {}
            info = tarfile.TarInfo(name)
            info.mtime = opts.get("mtime", 1_600_000_000)
            info.uid, info.gid = opts.get("owner", (0, 0))
            data = b""
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, opts.get("mode", 0o755)
            elif kind == "file":
                info.type, info.mode = tarfile.REGTYPE, opts.get("mode", 0o644)
                data = rest[0]
                info.size = len(data)
            elif kind == "sym":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, rest[0], 0o777
            elif kind == "link":
                # c/s chmods the target to the hardlink header's mode; our apply does not:
                # keep them equal, as real layer tars do
                info.type, info.linkname = tarfile.LNKTYPE, rest[0]
                info.mode = opts.get("mode", 0o644)
            elif kind == "chr":
                info.type, info.mode = tarfile.CHRTYPE, 0o666
                info.devmajor, info.devminor = rest[0]
            elif kind == "fifo":
                info.type, info.mode = tarfile.FIFOTYPE, 0o600
            if "xattrs" in opts:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in opts["xattrs"].items()}
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


LAYERS = [
    _tar(("dir", "etc/"), ("file", "etc/passwd", b"root:x:0:0\n"),
         ("file", "etc/shadow", b"secret\n", {"mode": 0o600}),
         ("dir", "bin/"), ("file", "bin/sh", b"#!sh\n" * 100, {"mode": 0o755}),
         ("sym", "bin/ls", "sh"), ("link", "bin/sh2", "bin/sh", {"mode": 0o755}),
         ("dir", "usr/"), ("dir", "usr/bin/"),
         ("file", "usr/bin/su", b"su", {"mode": 0o4755}),
         ("file", "usr/bin/newgrp", b"ng", {"mode": 0o2755, "owner": (0, 42)}),
         ("dir", "home/"), ("dir", "home/u/", {"owner": (1000, 1000), "mode": 0o700}),
         ("file", "home/u/.profile", b"x", {"owner": (1000, 1000)}),
         ("dir", "opt/"), ("dir", "opt/app/"), ("file", "opt/app/a", b"a"),
         ("file", "opt/app/b", b"b"), ("dir", "opt/app/sub/"), ("file", "opt/app/sub/c", b"c"),
         ("dir", "var/"), ("dir", "var/old/"), ("file", "var/old/x", b"x"),
         ("file", "etc/cap", b"cap", {"xattrs": {"user.note": "hello"}}),
         ("dir", "dev/"), ("chr", "dev/null", (1, 3)), ("fifo", "dev/fifo"),
         ("dir", "tmp/", {"mode": 0o1777})),
    _tar(("dir", "etc/"), ("file", "etc/.wh.passwd", b""),
         ("file", "etc/passwd2", b"new\n", {"owner": (5, 6)}),
         ("file", "bin/sh", b"#!sh v2\n", {"mode": 0o755}),
         ("dir", "opt/"), ("dir", "opt/app/"), ("file", "opt/app/.wh..wh..opq", b""),
         ("file", "opt/app/z", b"z"), ("link", "opt/app/z2", "opt/app/z"),
         ("dir", "home/", {"mode": 0o711})),
    _tar(("dir", "var/"), ("file", "var/.wh.old", b""),
         ("file", "etc/passwd", b"root:x:0:0\nu:x:1000:1000\n"),
         ("file", "bin/ls", b"not a link any more", {"mode": 0o755}),
         ("dir", "srv/"), ("dir", "srv/x/"), ("file", "srv/x/y", b"y"),
         ("sym", "srv/abs", "/etc/passwd")),
]

# -- comparing trees -----------------------------------------------------------------------


def snapshot(root: str | Path) -> dict[str, tuple[Any, ...]]:
    """Everything a rootfs is compared by (dir mtimes and atimes excluded), plus the
    hardlink groups."""
    root = os.fspath(root)
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            xattrs = {}
            for x in os.listxattr(path, follow_symlinks=False):
                if x.startswith("user."):
                    xattrs[x] = os.getxattr(path, x, follow_symlinks=False)
            info: tuple[Any, ...] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                                     st.st_uid, st.st_gid, tuple(sorted(xattrs.items())))
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                info += (digest, st.st_mtime_ns // 10**9)  # layer tars keep seconds
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                info += (os.readlink(path),)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info += (st.st_rdev,)
            out[rel] = info
    out["<hardlinks>"] = tuple(sorted(tuple(sorted(g)) for g in inodes.values() if len(g) > 1))
    return out


def mounts_under(path: Path) -> list[str]:
    prefix = os.fspath(path.resolve())
    return sorted((m for m in mounted_paths() if m == prefix or m.startswith(prefix + "/")),
                  key=len, reverse=True)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(params=["vfs", "overlay"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    require_root("layers with owners, devices and (overlay) mounts")
    home = tmp_path / "graph"
    home.mkdir()
    try:
        drv = select_driver(home, request.param)
    except DriverNotSupportedError as exc:
        if REQUIRE:
            pytest.fail(f"{request.param} driver not usable here: {exc}")
        pytest.skip(f"{request.param} driver not usable here: {exc}")
    try:
        yield drv
    finally:
        for m in mounts_under(tmp_path):
            umount(m)


def build_chain(drv: Driver) -> None:
    parent = None
    for layer_id, data in zip((L1, L2, L3), LAYERS, strict=True):
        drv.create(layer_id, parent)
        applied = drv.apply_diff(layer_id, io.BytesIO(data))
        assert str(applied.diff_id) == "sha256:" + hashlib.sha256(data).hexdigest()
        parent = layer_id


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    """All layers applied in DELETE mode into one plain directory."""
    ref = tmp_path / "reference"
    ref.mkdir()
    for data in LAYERS:
        apply_layer(io.BytesIO(data), ref, mode=WhiteoutMode.DELETE)
    return ref


# -- the conformance suite ---------------------------------------------------------------


def test_chain_mounts_as_the_merged_tree(driver: Driver, reference: Path) -> None:
    build_chain(driver)
    assert all(driver.exists(x) for x in (L1, L2, L3))
    assert not driver.exists(C)
    root = driver.mount(L3)
    assert driver.mount(L3) == root  # mounting again is harmless
    assert snapshot(root) == snapshot(reference)
    # spot checks of what the comparison covers
    assert not os.path.lexists(os.path.join(root, "var/old"))
    assert sorted(os.listdir(os.path.join(root, "opt/app"))) == ["z", "z2"]
    assert os.stat(os.path.join(root, "usr/bin/su")).st_mode & stat.S_ISUID
    assert os.stat(os.path.join(root, "home/u")).st_uid == 1000
    assert os.path.samefile(os.path.join(root, "opt/app/z"), os.path.join(root, "opt/app/z2"))
    assert stat.S_ISCHR(os.lstat(os.path.join(root, "dev/null")).st_mode)
    # a middle layer mounts as its own view
    mid = driver.mount(L2)
    assert os.path.islink(os.path.join(mid, "bin/ls"))
    assert os.path.isdir(os.path.join(mid, "var/old"))
    assert not os.path.exists(os.path.join(mid, "etc/passwd"))
    driver.unmount(L2)
    driver.unmount(L3)


def _container_changes(root: str) -> None:
    r = Path(root)
    (r / "etc/hostname").write_text("box\n")                  # new file
    (r / "bin/sh").write_bytes(b"#!sh v3\n")                  # modified lower file
    (r / "etc/shadow").unlink()                               # deleted lower file
    shutil.rmtree(r / "usr/bin")                              # deleted lower dir
    shutil.rmtree(r / "opt/app")                              # dir replaced: opaque
    (r / "opt/app").mkdir()
    (r / "opt/app/fresh").write_text("fresh")
    os.chmod(r / "etc/passwd2", 0o600)                        # metadata only
    os.chown(r / "home/u/.profile", 1001, 1001)
    (r / "srv/new").mkdir()
    (r / "srv/new/f").write_text("f")
    os.link(r / "srv/new/f", r / "srv/new/g")                 # new hardlink pair
    os.symlink("../etc/hostname", r / "srv/new/link")
    os.setxattr(r / "etc/hostname", "user.k", b"v")
    os.mkfifo(r / "srv/new/pipe")


def test_container_layer_diff_reproduces_the_view(driver: Driver, reference: Path,
                                                   tmp_path: Path) -> None:
    build_chain(driver)
    driver.create(C, L3)
    root = driver.mount(C)
    _container_changes(root)
    view = snapshot(root)
    driver.unmount(C)
    with driver.diff(C, L3) as layer:
        data = layer.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
    assert "etc/.wh.shadow" in names
    assert "usr/.wh.bin" in names
    assert "etc/hostname" in names
    # a dir deleted and made again: opaque in overlay's upper dir, per-child whiteouts
    # from the naive comparison
    expected = "opt/app/.wh..wh..opq" if isinstance(driver, OverlayDriver) else "opt/app/.wh.z"
    assert expected in names
    assert "srv/x/y" not in names  # unchanged lower files are not in the diff
    # applied in DELETE mode onto the image tree
    target = tmp_path / "applied"
    target.mkdir()
    copy_tree(reference, target)
    apply_layer(io.BytesIO(data), target, mode=WhiteoutMode.DELETE)
    assert snapshot(target) == view
    # and as a new layer of the same driver
    driver.create("d" * 64, L3)
    driver.apply_diff("d" * 64, io.BytesIO(data))
    assert snapshot(driver.mount("d" * 64)) == view
    driver.unmount("d" * 64)


def test_diff_of_a_base_layer_is_its_content(driver: Driver, tmp_path: Path) -> None:
    driver.create(L1)
    driver.apply_diff(L1, io.BytesIO(LAYERS[0]))
    with driver.diff(L1, None) as layer:
        data = layer.read()
    target = tmp_path / "t"
    target.mkdir()
    apply_layer(io.BytesIO(data), target)
    ref = tmp_path / "r"
    ref.mkdir()
    apply_layer(io.BytesIO(LAYERS[0]), ref)
    assert snapshot(target) == snapshot(ref)


def test_remove_cleans_everything(driver: Driver, tmp_path: Path) -> None:
    build_chain(driver)
    driver.create(C, L3)
    driver.mount(C)
    driver.mount(L2)
    assert bool(mounts_under(tmp_path)) == isinstance(driver, OverlayDriver)
    for layer_id in (C, L3, L2, L1):
        driver.remove(layer_id)
        assert not driver.exists(layer_id)
    driver.remove(L1)  # removing twice is harmless
    assert mounts_under(tmp_path) == []
    leftovers = [p for p in driver.root.rglob("*") if p.name not in ("dir", "l")]
    assert leftovers == []


def test_create_twice_and_unknown_parent(driver: Driver) -> None:
    from oci_storage.errors import DuplicateIDError, LayerUnknownError

    driver.create(L1)
    with pytest.raises(DuplicateIDError):
        driver.create(L1)
    with pytest.raises(LayerUnknownError):
        driver.create(L2, "9" * 64)
    assert not driver.exists(L2)


# -- vfs specifics -------------------------------------------------------------------------


def test_vfs_copy_keeps_owners_modes_xattrs_hardlinks_devices(tmp_path: Path) -> None:
    require_root("owners and devices")
    drv = VfsDriver(tmp_path)
    drv.create(L1)
    drv.apply_diff(L1, io.BytesIO(LAYERS[0]))
    os.setxattr(drv.dir(L1) + "/etc/cap", "trusted.t", b"1")
    drv.create(L2, L1)
    assert snapshot(drv.dir(L2)) == snapshot(drv.dir(L1))
    a, b = drv.dir(L1), drv.dir(L2)
    assert os.stat(a).st_mode == os.stat(b).st_mode
    assert os.getxattr(b + "/etc/cap", "trusted.t") == b"1"
    assert os.path.samefile(b + "/bin/sh", b + "/bin/sh2")
    assert not os.path.samefile(a + "/bin/sh", b + "/bin/sh")
    assert os.stat(b + "/dev/null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(b + "/dev/fifo").st_mode)


# -- overlay specifics ---------------------------------------------------------------------


@pytest.fixture
def overlay(driver: Driver) -> OverlayDriver:
    if not isinstance(driver, OverlayDriver):
        pytest.skip("overlay only")
    return driver


@pytest.mark.parametrize("driver", ["overlay"], indirect=True)
def test_overlay_layout_matches_containers_storage(overlay: OverlayDriver) -> None:
    build_chain(overlay)
    home = overlay.root
    links = {}
    for layer_id in (L1, L2, L3):
        d = home / layer_id
        assert sorted(p.name for p in d.iterdir()) == sorted(
            ["diff", "link", "merged", "work"] + (["empty"] if layer_id == L1 else ["lower"]))
        short = (d / "link").read_text()
        assert re.fullmatch(r"[A-Z2-7]{26}", short)
        assert os.readlink(home / "l" / short) == f"../{layer_id}/diff"
        links[layer_id] = short
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert (home / L2 / "lower").read_text() == f"l/{links[L1]}"
    assert (home / L3 / "lower").read_text() == f"l/{links[L2]}:l/{links[L1]}"
    # whiteouts and opaque dirs are stored the overlay way
    wh = os.lstat(home / L2 / "diff/etc/passwd")
    assert stat.S_ISCHR(wh.st_mode)
    assert wh.st_rdev == 0
    assert os.getxattr(home / L2 / "diff/opt/app", "trusted.overlay.opaque") == b"y"
    # mount options are relative to the driver home
    assert overlay.mount_options(L3) == (
        f"lowerdir=l/{links[L2]}:l/{links[L1]},upperdir={L3}/diff,workdir={L3}/work")
    assert overlay.mount_options(L1) == f"lowerdir={L1}/empty,upperdir={L1}/diff," \
        f"workdir={L1}/work"
    assert overlay.mount_options(L1, read_only=True) == f"lowerdir={L1}/diff:{L1}/empty"


@pytest.mark.parametrize("driver", ["overlay"], indirect=True)
def test_overlay_read_only_mount(overlay: OverlayDriver, reference: Path) -> None:
    build_chain(overlay)
    root = overlay.mount(L3, read_only=True)
    assert snapshot(root) == snapshot(reference)
    with pytest.raises(OSError):
        Path(root, "etc/new").write_text("x")
    overlay.unmount(L3)
    assert not os.path.ismount(root)


def test_select_driver_automatic(tmp_path: Path) -> None:
    drv = select_driver(tmp_path)
    try:
        OverlayDriver.supported(tmp_path)
    except DriverNotSupportedError:
        assert drv.name == "vfs"
    else:
        assert drv.name == "overlay"
    with pytest.raises(DriverNotSupportedError, match="unknown storage driver"):
        select_driver(tmp_path, "btrfs2")
    assert mounts_under(tmp_path) == []
    if (tmp_path / "overlay").exists():  # the probe left nothing behind
        assert list((tmp_path / "overlay").iterdir()) == []


# -- the real containers-storage on our layout --------------------------------------------


def _cs(graph: Path, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment of containers-storage on the graph root ``graph``."""
    runroot = tmp_path / "runroot"
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\nrunroot = "{runroot}"\n'
                    f'graphroot = "{graph}"\n')
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(conf))
    return ["containers-storage", "-g", str(graph), "-R", str(runroot), "-s", "overlay"], env


def _register_chain(graph: Path) -> None:
    """Layer records for L1..L3 (laid out by our driver) in ``overlay-layers/``."""
    from oci_storage.records import Layer, LayerRecords

    records = LayerRecords.open(graph, "overlay")
    parent = ""
    for layer_id, data in zip((L1, L2, L3), LAYERS, strict=True):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        records.create(Layer(id=layer_id, parent=parent, compressed_digest=digest,
                             uncompressed_digest=digest, compressed_size=len(data),
                             uncompressed_size=len(data)))
        parent = layer_id


@pytest.mark.peers
@pytest.mark.parametrize("driver", ["overlay"], indirect=True)
def test_containers_storage_layers_are_ours(overlay: OverlayDriver, reference: Path,
                                            tmp_path: Path) -> None:
    """Layers created and applied by containers-storage have our layout, mount with our
    driver, and c/s's native diff of our layer dirs gives back their content."""
    graph = overlay.home
    base, env = _cs(graph, tmp_path)
    ids: list[str] = []
    for data in LAYERS:
        layer_id = run_tool([*base, "create-layer", *ids[-1:]], env=env).stdout.decode().strip()
        blob = tmp_path / "layer.tar"
        blob.write_bytes(data)
        run_tool([*base, "applydiff", "-f", str(blob), layer_id], env=env)
        ids.append(layer_id)
    run_tool([*base, "shutdown"], env=env)
    # the same files, modes and link/lower contents as ours
    ours = OverlayDriver(tmp_path / "ours")
    ours.create(L1)
    ours.create(L2, L1)
    for theirs_id, our_id in ((ids[0], L1), (ids[1], L2)):
        tdir, odir = overlay.root / theirs_id, ours.root / our_id
        assert {p.name: stat.S_IMODE(p.lstat().st_mode) for p in tdir.iterdir()} == {
            p.name: stat.S_IMODE(p.lstat().st_mode) for p in odir.iterdir()}
    assert stat.S_IMODE((ours.root / "l").stat().st_mode) == stat.S_IMODE(
        (overlay.root / "l").stat().st_mode)
    assert (overlay.root / ids[2] / "lower").read_text() == \
        f"l/{overlay.link(ids[1])}:l/{overlay.link(ids[0])}"
    assert os.readlink(overlay.root / "l" / overlay.link(ids[2])) == f"../{ids[2]}/diff"
    # their layer stack mounted by us
    root = overlay.mount(ids[2])
    assert snapshot(root) == snapshot(reference)
    overlay.unmount(ids[2])
    # our stack, diffed by c/s: its whiteouts and opaque dirs are read as such
    build_chain(overlay)
    _register_chain(graph)
    layer_tar = run_tool([*base, "diff", "-u", L2, L1], env=env).stdout
    target = tmp_path / "cs-diff"
    target.mkdir()
    apply_layer(io.BytesIO(LAYERS[0]), target)
    apply_layer(io.BytesIO(layer_tar), target)
    expected = tmp_path / "expected"
    expected.mkdir()
    apply_layer(io.BytesIO(LAYERS[0]), expected)
    apply_layer(io.BytesIO(LAYERS[1]), expected)
    assert snapshot(target) == snapshot(expected)


@pytest.mark.peers
@pytest.mark.parametrize("driver", ["overlay"], indirect=True)
def test_containers_storage_mounts_our_overlay_layers(overlay: OverlayDriver,
                                                      reference: Path,
                                                      tmp_path: Path) -> None:
    build_chain(overlay)
    graph = overlay.home
    _register_chain(graph)
    base, env = _cs(graph, tmp_path)
    try:
        out = run_tool([*base, "mount", L3], env=env).stdout.decode().strip()
        assert out == str(graph / "overlay" / L3 / "merged")
        assert snapshot(out) == snapshot(reference)
    finally:
        run_tool([*base, "unmount", L3], env=env)
    # c/s did not need to repair anything: our link names are still the ones in use
    assert (graph / "overlay" / L3 / "lower").read_text().startswith("l/")
    assert sorted(p.name for p in (graph / "overlay" / "l").iterdir()) == sorted(
        overlay.link(x) for x in (L1, L2, L3))


def test_select_driver_falls_back_to_vfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    def refuse(cls: type[OverlayDriver], home: object) -> None:
        raise DriverNotSupportedError("overlay: probe refused (test)")

    monkeypatch.setattr(OverlayDriver, "supported", classmethod(refuse))
    assert isinstance(select_driver(tmp_path), VfsDriver)
    with pytest.raises(DriverNotSupportedError, match="probe refused"):
        select_driver(tmp_path, "overlay")
