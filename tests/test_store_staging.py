"""Staged layers (overlay): Store.stage_layer applies a layer blob into a private, locked
directory of ``<graphroot>/tmp`` without knowing its parent; Store.put_staged_layer
records it once the parent is known. Staged in any order and put in order, the layers
must be exactly what Store.put_layer makes (IDs, records, diff trees, tar-split); every
failure leaves nothing; a dead owner's staging directory is swept by the next
Store.open and a live one's is not; the containers-storage: destination stages layers
in the copy's blob threads and commits them in order."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import attrs
import pytest

from oci_image.build import BuiltImage, ImageBuilder
from oci_image.copy import copy_image
from oci_image.errors import DiffIDMismatchError, DigestMismatchError, OCIError
from oci_image.interfaces import BlobInfo
from oci_image.spec import Compression, Digest, ImageConfig, ImageManifest, Platform
from oci_image.testing.random import random_files
from oci_storage.check import check_store
from oci_storage.drivers import select_driver
from oci_storage.errors import DriverNotSupportedError, StorageError, UnsafeArchiveError
from oci_storage.records import Layer, chain_layer_id
from oci_storage.store import StagedLayer, Store
from oci_storage.tarsplit import reassemble_stream
from oci_storage.transport import TRANSPORT
from oci_storage.unpack import unpack_image

from .hostile_layers import TarBuilder, corpus
from .test_store import _blob
from .test_unpack import _tree as unpack_tree

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "staged-layer-"


@pytest.fixture
def overlay(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("overlay needs root")
    try:
        select_driver(tmp_path / "probe", "overlay")
    except DriverNotSupportedError as exc:
        pytest.skip(f"overlay not supported here: {exc}")
    finally:
        shutil.rmtree(tmp_path / "probe", ignore_errors=True)


def _open(base: Path, driver: str = "overlay") -> Store:
    return Store.open(base / "graph", base / "run", driver)


def _staging_dirs(store: Store) -> list[str]:
    tmp = store.graphroot / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def _layer_dirs(store: Store) -> list[str]:
    return sorted(p.name for p in (store.graphroot / "overlay").iterdir() if p.name != "l")


def _links(store: Store) -> list[str]:
    return sorted(os.listdir(store.graphroot / "overlay" / "l"))


def _tree(root: Path, *, with_root: bool = True) -> dict[str, tuple[object, ...]]:
    """Type, mode, owner, link target, device, xattrs, link count and content of every
    entry (and of the root itself)."""
    return unpack_tree(root, with_root=with_root)


def _record(layer: Layer) -> tuple[object, ...]:
    """A layer record without its creation time."""
    return (layer.id, layer.names, layer.parent, layer.compressed_digest,
            layer.compressed_size, layer.uncompressed_digest, layer.uncompressed_size,
            layer.compression, layer.uids, layer.gids, dict(layer.flags))


@attrs.frozen
class Parts:
    manifest: ImageManifest
    config: ImageConfig
    blobs: list[bytes]


def _parts(image: BuiltImage) -> Parts:
    manifest = ImageManifest.from_json(image.manifest, image.media_type)
    config = ImageConfig.from_json(_blob(image, manifest.config.digest))
    return Parts(manifest, config, [_blob(image, d.digest) for d in manifest.layers])


def _mixed_image(seed: int = 11, *, repeat: bool = False) -> BuiltImage:
    """Five layers: random files (owners 0/1000, setuid, symlinks, hardlinks) in gzip,
    zstd and plain tar, and one of whiteouts, an opaque dir, a user.* xattr and a root
    entry. ``repeat``: the first layer's blob again at the top."""
    rng = random.Random(seed)
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    first = TarBuilder().dir("./", mode=0o751, uid=1234, gid=4321).dir("etc").file("etc/a", b"a")
    first.dir("opq").file("opq/old", b"old").dir("opq/sub").file("opq/sub/x", b"x")
    first.file("gone", b"gone").file("owned", b"o", uid=1234, gid=4321, mode=0o4750)
    first_tar = first.build()
    builder.add_layer(first_tar, compression=Compression.GZIP)
    builder.add_layer_from_files(random_files(rng, 20, 6000), compression=Compression.ZSTD)
    builder.add_layer_from_files(random_files(rng, 20, 6000), compression=Compression.NONE)
    builder.add_layer(TarBuilder().whiteout(".wh.gone").whiteout("opq/.wh..wh..opq")
                      .file("opq/new", b"new", pax={"SCHILY.xattr.user.k": "v"})
                      .fifo("fifo").symlink("s", "/etc/a").build(),
                      compression=Compression.GZIP)
    builder.add_layer_from_files(random_files(rng, 20, 6000), compression=Compression.GZIP)
    if repeat:
        builder.add_layer(first_tar, compression=Compression.GZIP)  # the same blob again
    return builder.build()


# --------------------------------------------------------------------------- same result


def _put_all(store: Store, parts: Parts) -> list[Layer]:
    out: list[Layer] = []
    parent: str | None = None
    for desc, blob, diff_id in zip(parts.manifest.layers, parts.blobs,
                                   parts.config.rootfs.diff_ids, strict=True):
        out.append(store.put_layer(parent, io.BytesIO(blob), diff_id=diff_id,
                                   compressed_digest=desc.digest))
        parent = out[-1].id
    return out


def test_staged_out_of_order_equals_put_layer(tmp_path: Path, overlay: None) -> None:
    parts = _parts(_mixed_image())
    diff_ids = parts.config.rootfs.diff_ids
    with _open(tmp_path / "ref") as reference:
        expected = _put_all(reference, parts)
        assert _staging_dirs(reference) == []
        with _open(tmp_path / "staged") as store:
            staged: dict[int, StagedLayer] = {}
            for i in reversed(range(len(parts.blobs))):  # top first
                staged[i] = store.stage_layer(
                    io.BytesIO(parts.blobs[i]), diff_id=diff_ids[i],
                    compressed_digest=parts.manifest.layers[i].digest)
                assert staged[i].applied.diff_id == diff_ids[i]
                assert staged[i].diff.is_dir()
                assert staged[i].tar_split.is_file()
            assert len(_staging_dirs(store)) == len(parts.blobs)
            assert store.layers() == ()  # nothing recorded while staged
            got: list[Layer] = []
            parent: str | None = None
            for i in range(len(parts.blobs)):
                got.append(store.put_staged_layer(parent, staged[i], diff_id=diff_ids[i]))
                parent = got[-1].id
                assert not staged[i].path.exists()
            assert _staging_dirs(store) == []

            # the image layer IDs (chain IDs) and the records
            chain: str | None = None
            for layer, diff_id in zip(got, diff_ids, strict=True):
                chain = chain_layer_id(chain, str(diff_id))
                assert layer.id == chain
            assert [_record(x) for x in got] == [_record(x) for x in expected]
            assert [_record(x) for x in store.layers()] == [
                _record(x) for x in reference.layers()]
            assert [x.compression for x in got] == [2, 4, 0, 2, 2]
            assert got[0].uids == (0, 1234)
            assert got[0].gids == (0, 4321)
            assert not any(x.incomplete for x in got)

            # the diff trees (overlay whiteouts, opaque xattr, root entry) and tar-split
            for ours, theirs, diff_id in zip(got, expected, diff_ids, strict=True):
                assert _tree(store.layer_path(ours.id)) == _tree(
                    reference.layer_path(theirs.id))
                ts = store.layer_records.tar_split_path(ours.id)
                assert gzip.decompress(ts.read_bytes()) == gzip.decompress(
                    reference.layer_records.tar_split_path(theirs.id).read_bytes())
                stream = reassemble_stream(ts, store.layer_path(ours.id))
                digest = hashlib.sha256()
                while chunk := stream.read(1 << 16):
                    digest.update(chunk)
                assert f"sha256:{digest.hexdigest()}" == str(diff_id)
            whiteout = os.lstat(store.layer_path(got[3].id) / "gone")
            assert stat.S_ISCHR(whiteout.st_mode)
            assert whiteout.st_rdev == 0
            assert os.getxattr(store.layer_path(got[3].id) / "opq",
                               "trusted.overlay.opaque") == b"y"
            assert stat.S_IMODE(os.stat(store.layer_path(got[0].id)).st_mode) == 0o751

            # the driver's files: links, lower chains
            assert len(_links(store)) == len(got)
            for ours, theirs in zip(got, expected, strict=True):
                d, r = store.graphroot / "overlay" / ours.id, \
                    reference.graphroot / "overlay" / theirs.id
                assert sorted(os.listdir(d)) == sorted(os.listdir(r))
                assert len(store.driver.lowers(ours.id)) == len(  # type: ignore[attr-defined]
                    reference.driver.lowers(theirs.id))  # type: ignore[attr-defined]
            assert check_store(store).ok

            # the merged view of the top layer
            merged = store.mount(got[-1].id)
            ref_merged = reference.mount(expected[-1].id)
            try:
                assert _tree(Path(merged)) == _tree(Path(ref_merged))
                assert (Path(merged) / "opq" / "new").read_bytes() == b"new"
                assert not (Path(merged) / "opq" / "old").exists()
                assert not (Path(merged) / "gone").exists()
            finally:
                store.unmount(got[-1].id, force=True)
                reference.unmount(expected[-1].id, force=True)
    # reopened: nothing swept or recovered away
    with _open(tmp_path / "staged") as store:
        assert [_record(x) for x in store.layers()] == [_record(x) for x in got]
        assert check_store(store).ok


@pytest.mark.parametrize("base_mode", [0o711, None])
def test_root_mode_inheritance(tmp_path: Path, overlay: None, base_mode: int | None) -> None:
    """A layer tar without a ./ entry: its diff dir gets the parent's mode (0o555 for a
    base layer), as Store.put_layer makes it; with one, its own."""
    base = TarBuilder()
    if base_mode is not None:
        base.dir("./", mode=base_mode)
    tars = [base.file("base", b"b").build(),
            TarBuilder().file("child", b"c").build(),  # no root entry: inherits
            TarBuilder().dir(".", mode=0o750).file("own", b"o").build(),
            TarBuilder().file("grandchild", b"g").build()]
    inherited = 0o555 if base_mode is None else base_mode
    modes = [inherited, inherited, 0o750, 0o750]
    diff_ids = [Digest.from_bytes(t) for t in tars]
    with _open(tmp_path / "ref") as reference, _open(tmp_path / "staged") as store:
        staged = [store.stage_layer(io.BytesIO(t)) for t in reversed(tars)][::-1]
        assert [s.applied.root_entry for s in staged] == [
            base_mode is not None, False, True, False]
        parent_ours: str | None = None
        parent_ref: str | None = None
        for i, tar in enumerate(tars):
            ours = store.put_staged_layer(parent_ours, staged[i])
            theirs = reference.put_layer(parent_ref, io.BytesIO(tar), diff_id=diff_ids[i])
            assert ours.id == theirs.id
            parent_ours, parent_ref = ours.id, theirs.id
            mode = stat.S_IMODE(os.stat(store.layer_path(ours.id)).st_mode)
            assert mode == stat.S_IMODE(os.stat(reference.layer_path(theirs.id)).st_mode)
            assert mode == modes[i], (i, oct(mode))
            assert _tree(store.layer_path(ours.id)) == _tree(reference.layer_path(theirs.id))
        assert parent_ours is not None
        merged = store.mount(parent_ours)
        try:
            assert stat.S_IMODE(os.stat(merged).st_mode) == 0o750
        finally:
            store.unmount(parent_ours, force=True)


# --------------------------------------------------------------------------- no trace


def _snapshot_store(store: Store) -> tuple[object, ...]:
    return ([_record(x) for x in store.layers()], _layer_dirs(store), _links(store),
            sorted(p.name for p in (store.graphroot / "overlay-layers").iterdir()),
            _staging_dirs(store))


def test_put_staged_with_a_wrong_diff_id(tmp_path: Path, overlay: None) -> None:
    parts = _parts(_mixed_image())
    diff_ids = parts.config.rootfs.diff_ids
    with _open(tmp_path) as store:
        base = store.put_layer(None, io.BytesIO(parts.blobs[0]), diff_id=diff_ids[0])
        staged = store.stage_layer(io.BytesIO(parts.blobs[1]))
        assert staged.path.is_dir()
        before = _snapshot_store(store)
        with pytest.raises(DiffIDMismatchError):
            store.put_staged_layer(base.id, staged, diff_id=diff_ids[2])
        assert not staged.path.exists()
        after = _snapshot_store(store)
        assert after[:4] == before[:4]  # no record, driver dir, link or tar-split
        assert after[4] == []  # the staging dir went
        for diff_id in (diff_ids[1], diff_ids[2]):
            assert store.layer_records.get(base.id)
            with pytest.raises(StorageError):
                store.layer(chain_layer_id(base.id, str(diff_id)))
        assert check_store(store).ok
        staged.discard()  # again: nothing happens


def test_put_staged_when_the_layer_exists(tmp_path: Path, overlay: None) -> None:
    parts = _parts(_mixed_image())
    diff_ids = parts.config.rootfs.diff_ids
    with _open(tmp_path) as store:
        base = store.put_layer(None, io.BytesIO(parts.blobs[0]), diff_id=diff_ids[0])
        tree = _tree(store.layer_path(base.id))
        before = _snapshot_store(store)
        staged = store.stage_layer(io.BytesIO(parts.blobs[0]), diff_id=diff_ids[0])
        again = store.put_staged_layer(None, staged, diff_id=diff_ids[0])
        assert again == base  # the record as it was (same created time)
        assert not staged.path.exists()
        assert _snapshot_store(store) == before
        assert _tree(store.layer_path(base.id)) == tree
        # and a layer staged twice, put twice: one layer, both staging dirs gone
        one = store.stage_layer(io.BytesIO(parts.blobs[1]))
        two = store.stage_layer(io.BytesIO(parts.blobs[1]))
        first = store.put_staged_layer(base.id, one)
        assert store.put_staged_layer(base.id, two) == first
        assert _staging_dirs(store) == []
        assert len(store.layers()) == 2
        assert check_store(store).ok


@pytest.mark.parametrize("what", ["compressed-digest", "diff-id", "hostile", "truncated"])
def test_stage_layer_failure_leaves_nothing(tmp_path: Path, overlay: None, what: str) -> None:
    parts = _parts(_mixed_image())
    blob, diff_id = parts.blobs[1], parts.config.rootfs.diff_ids[1]
    with _open(tmp_path) as store:
        store.put_layer(None, io.BytesIO(parts.blobs[0]), diff_id=None)
        before = _snapshot_store(store)
        error: type[Exception] = OCIError
        if what == "compressed-digest":
            kwargs = {"compressed_digest": Digest.from_bytes(b"another blob")}
            error = DigestMismatchError
        elif what == "diff-id":
            kwargs = {"diff_id": parts.config.rootfs.diff_ids[2]}
            error = DiffIDMismatchError
        elif what == "hostile":
            blob = corpus(Path("/nonexistent/outside"))["symlink-loop"].layers[0]
            kwargs = {}
            error = UnsafeArchiveError
        else:
            blob = blob[: len(blob) // 2]
            kwargs = {"diff_id": diff_id}
        with pytest.raises(error):
            store.stage_layer(io.BytesIO(blob), **kwargs)  # type: ignore[arg-type]
        assert _snapshot_store(store) == before
        assert _staging_dirs(store) == []


def test_vfs_cannot_stage(tmp_path: Path) -> None:
    with _open(tmp_path, "vfs") as store:
        assert not store.can_stage_layers
        with pytest.raises(StorageError):
            store.stage_layer(io.BytesIO(TarBuilder().file("a", b"a").build()))
        assert _staging_dirs(store) == []


def test_overlay_can_stage(tmp_path: Path, overlay: None) -> None:
    with _open(tmp_path) as store:
        assert store.can_stage_layers


# --------------------------------------------------------------------------- crashes


_CHILD = textwrap.dedent("""
    import os, sys
    from oci_storage.store import Store
    graph, run, blob, how = sys.argv[1:]
    store = Store.open(graph, run)
    with open(blob, "rb") as f:
        staged = store.stage_layer(f)
    print(staged.path, flush=True)
    sys.stdin.readline()  # until the parent says
    if how == "exit":
        os._exit(0)  # without discard
    staged.discard()
    print("discarded", flush=True)
""")


@pytest.fixture
def layer_file(tmp_path: Path) -> Path:
    path = tmp_path / "layer.tar"
    path.write_bytes(TarBuilder().dir("d").file("d/f", b"f" * 5000).build())
    return path


def _child(tmp_path: Path, layer: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "graph"), str(tmp_path / "run"),
         str(layer), how], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise AssertionError(f"the child failed: {proc.communicate()[1]}")
    return proc, Path(line)


@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_dead_owners_staging_dir_is_swept(tmp_path: Path, overlay: None, layer_file: Path,
                                          how: str) -> None:
    _open(tmp_path).close()
    proc, path = _child(tmp_path, layer_file, how)
    try:
        assert path.parent == tmp_path / "graph" / "tmp"
        assert path.name.startswith(PREFIX)
        assert (path / "diff" / "d" / "f").read_bytes() == b"f" * 5000
        # the owner lives: neither a Store.open nor another staging sweeps it
        with _open(tmp_path) as store:
            assert path.is_dir()
            with layer_file.open("rb") as f:
                mine = store.stage_layer(f)
            assert path.is_dir()
            mine.discard()
            assert _staging_dirs(store) == [path.name]
        if how == "sigkill":
            proc.send_signal(signal.SIGKILL)
        else:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        proc.wait(timeout=30)
        assert proc.returncode == (-signal.SIGKILL if how == "sigkill" else 0)
        assert path.is_dir()  # nobody swept it yet
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.communicate()
    with _open(tmp_path) as store:  # the owner is gone: swept
        assert not path.exists()
        assert _staging_dirs(store) == []
        assert store.layers() == ()


def test_live_owners_staging_dir_outlives_other_opens(tmp_path: Path, overlay: None,
                                                      layer_file: Path) -> None:
    _open(tmp_path).close()
    proc, path = _child(tmp_path, layer_file, "discard")
    try:
        for _ in range(3):
            with _open(tmp_path):
                assert path.is_dir()
        assert proc.stdin is not None
        out, err = proc.communicate("go\n", timeout=30)
        assert proc.returncode == 0, err
        assert out.strip() == "discarded"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not path.exists()
    with _open(tmp_path) as store:
        assert _staging_dirs(store) == []
        # this process's own staged layer survives its own Store.open and staging
        # (flock conflicts between open file descriptions of one process too)
        with layer_file.open("rb") as f:
            mine = store.stage_layer(f)
        with _open(tmp_path) as again, layer_file.open("rb") as f:
            assert mine.path.is_dir()
            again.stage_layer(f).discard()
            assert mine.path.is_dir()
        layer = store.put_staged_layer(None, mine)
        assert (store.layer_path(layer.id) / "d" / "f").read_bytes() == b"f" * 5000
        assert _staging_dirs(store) == []


# --------------------------------------------------------------------------- transport


@pytest.fixture
def counted_staging(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Records each Store.stage_layer (``ok``/``error``, thread) and put_layer call."""
    calls: list[tuple[str, int]] = []
    stage, put = Store.stage_layer, Store.put_layer

    def counting_stage(self: Store, *args: object, **kwargs: object) -> StagedLayer:
        try:
            staged = stage(self, *args, **kwargs)  # type: ignore[arg-type]
        except BaseException:
            calls.append(("error", threading.get_ident()))
            raise
        calls.append(("stage", threading.get_ident()))
        return staged

    def counting_put(self: Store, *args: object, **kwargs: object) -> Layer:
        calls.append(("put", threading.get_ident()))
        return put(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "stage_layer", counting_stage)
    monkeypatch.setattr(Store, "put_layer", counting_put)
    return calls


def test_copy_into_overlay_stages_layers(tmp_path: Path, overlay: None,
                                         counted_staging: list[tuple[str, int]]) -> None:
    image = _mixed_image(seed=12, repeat=True)
    parts = _parts(image)
    diff_ids = parts.config.rootfs.diff_ids
    assert parts.manifest.layers[0].digest == parts.manifest.layers[-1].digest
    spec = f"[overlay@{tmp_path / 'graph'}+{tmp_path / 'run'}]"
    copy_image(image.reference, f"containers-storage:{spec}localhost/staged:1")
    # each distinct blob staged once, in the copy's threads; the repeat put from the
    # store (it is known once its first position is recorded)
    distinct = len({d.digest for d in parts.manifest.layers})
    assert [c for c, _ in counted_staging].count("stage") == distinct
    assert [c for c, _ in counted_staging].count("put") == 1
    assert "error" not in [c for c, _ in counted_staging]
    main = threading.get_ident()
    assert all(t != main for c, t in counted_staging if c == "stage")
    # nothing left in tmp (looked at before a Store.open could sweep it)
    assert os.listdir(tmp_path / "graph" / "tmp") == []

    with _open(tmp_path) as store:
        assert check_store(store).ok
        image_record = store.image("localhost/staged:1")
        chain: list[Layer] = []
        layer_id = image_record.top_layer
        while layer_id:
            chain.insert(0, store.layer(layer_id))
            layer_id = chain[0].parent
        assert [x.uncompressed_digest for x in chain] == [str(d) for d in diff_ids]
        # (the repeat's record: see test_repeated_blob_is_recorded_as_vfs_records_it)
        assert [x.compressed_digest for x in chain[:-1]] == [
            str(d.digest) for d in parts.manifest.layers[:-1]]
        assert len(store.layers()) == len(diff_ids)
        expect_id: str | None = None
        for layer, diff_id in zip(chain, diff_ids, strict=True):
            expect_id = chain_layer_id(expect_id, str(diff_id))
            assert layer.id == expect_id
        # the top layer's merged view is the image unpacked
        unpacked = tmp_path / "unpacked"
        with image.reference.open_source() as source:
            unpack_image(source, unpacked)
        merged = store.mount(chain[-1].id)
        try:
            assert _tree(Path(merged), with_root=False) == _tree(unpacked, with_root=False)
        finally:
            store.unmount(chain[-1].id, force=True)

    # out again: the same diff_ids, served from the tar-split
    out = tmp_path / "out"
    copy_image(f"containers-storage:{spec}localhost/staged:1", f"oci:{out}:t")
    from oci_image.transports import parse_image_name
    with parse_image_name(f"oci:{out}:t").open_source() as source:
        raw, media_type = source.get_manifest()
        manifest = ImageManifest.from_json(raw, media_type)
        with source.get_blob(manifest.config) as f:  # type: ignore[attr-defined]
            config = ImageConfig.from_json(f.read())
        assert config.rootfs.diff_ids == diff_ids
        for desc, diff_id in zip(manifest.layers, diff_ids, strict=True):
            blob = source.get_blob(desc)
            try:
                data = blob.read()
            finally:
                blob.close()
            assert Digest.from_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b"
                                     else data) == diff_id


def test_repeated_blob_is_recorded_as_vfs_records_it(tmp_path: Path, overlay: None) -> None:
    image = _mixed_image(seed=12, repeat=True)
    for driver in ("vfs", "overlay"):
        spec = f"[{driver}@{tmp_path / driver / 'graph'}+{tmp_path / driver / 'run'}]"
        copy_image(image.reference, f"containers-storage:{spec}localhost/staged:1")
    with _open(tmp_path / "vfs", "vfs") as vfs, _open(tmp_path / "overlay") as ovl:
        assert [_record(x) for x in ovl.layers()] == [_record(x) for x in vfs.layers()]


@pytest.mark.parametrize("where", ["plain", "gzip"])
def test_copy_of_a_corrupted_layer_leaves_nothing(
        tmp_path: Path, overlay: None, where: str,
        counted_staging: list[tuple[str, int]]) -> None:
    image = _mixed_image(seed=13)
    parts = _parts(image)
    index = 2 if where == "plain" else 4
    desc = parts.manifest.layers[index]
    damaged = bytearray(parts.blobs[index])
    damaged[len(damaged) // 2] ^= 0x01
    bad = attrs.evolve(image, blobs={**image.blobs, desc.digest: bytes(damaged)})
    spec = f"[overlay@{tmp_path / 'graph'}+{tmp_path / 'run'}]"
    with pytest.raises(OCIError):
        copy_image(bad.reference, f"containers-storage:{spec}localhost/bad:1")
    assert "error" in [c for c, _ in counted_staging]
    assert os.listdir(tmp_path / "graph" / "tmp") == []  # before a Store.open sweeps
    with _open(tmp_path) as store:
        assert store.layers() == ()
        assert store.images() == ()
        assert _layer_dirs(store) == []
        assert _links(store) == []
        assert _staging_dirs(store) == []
        assert check_store(store).ok


def test_commit_with_a_lying_config_leaves_no_staged_layer(tmp_path: Path,
                                                           overlay: None) -> None:
    """The destination checks diff_ids at commit (put_staged_layer): a config lying about
    the fourth layer fails the commit; the staged layers from there up are discarded,
    no image is recorded, and the store stays consistent. (The copy engine checks
    diff_ids itself, so this drives the destination directly.)"""
    image = _mixed_image(seed=14)
    parts = _parts(image)
    lie = Digest.from_bytes(b"not this layer")
    diff_ids = list(parts.config.rootfs.diff_ids)
    diff_ids[3] = lie
    lying = attrs.evolve(parts.config, rootfs=attrs.evolve(
        parts.config.rootfs, diff_ids=tuple(diff_ids))).to_json()
    config_desc = attrs.evolve(parts.manifest.config, digest=Digest.from_bytes(lying),
                               size=len(lying))
    manifest = attrs.evolve(parts.manifest, config=config_desc).to_json()
    ref = TRANSPORT.parse_reference(
        f"[overlay@{tmp_path / 'graph'}+{tmp_path / 'run'}]localhost/lie:1")
    tmp = tmp_path / "graph" / "tmp"
    with ref.open_destination() as dest:
        for desc, blob in zip(parts.manifest.layers, parts.blobs, strict=True):
            dest.put_blob(io.BytesIO(blob), BlobInfo.from_descriptor(desc))
        dest.put_blob(io.BytesIO(lying), BlobInfo.from_descriptor(config_desc,
                                                                 is_config=True))
        assert len([p for p in os.listdir(tmp) if p.startswith(PREFIX)]) == len(parts.blobs)
        dest.put_manifest(manifest, parts.manifest.media_type)
        with pytest.raises(DiffIDMismatchError) as info:
            dest.commit()
        assert str(lie) in str(info.value)
    assert os.listdir(tmp) == []  # before a Store.open sweeps
    with _open(tmp_path) as store:
        assert store.images() == ()
        assert [x.uncompressed_digest for x in store.layers()] == [
            str(d) for d in diff_ids[:3]]  # the layers below the lie, as c/image leaves
        assert _layer_dirs(store) == sorted(x.id for x in store.layers())
        assert check_store(store).ok
