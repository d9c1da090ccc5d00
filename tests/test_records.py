"""oci_storage.records and oci_storage.lockfile: the containers/storage record files.

Unit tests (round trips, name rules, big data, atomic writes, locks, several processes
writing at once) and interop with the real podman 4.3.1 / containers-storage 1.43: we
read what podman wrote, byte for byte, and podman reads what we wrote.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from oci_storage.errors import (
    ContainerUnknownError,
    DuplicateNameError,
    ImageUnknownError,
    LayerUnknownError,
    StoreCorruptError,
)
from oci_storage.lockfile import LAST_WRITE_SIZE, get_lockfile, new_last_write
from oci_storage.records import (
    INCOMPLETE_FLAG,
    ZERO_TIME,
    Container,
    ContainerRecords,
    DuplicateIDError,
    IDMap,
    Image,
    ImageRecords,
    Layer,
    LayerRecords,
    MountRecords,
    _go_json,
    big_data_file_name,
    chain_layer_id,
    format_timestamp,
    parse_timestamp,
    random_id,
)

from .peers import Podman, require, run_tool

H1 = "a" * 64
H2 = "b" * 64
H3 = "ab" + "c" * 62


# -- helpers ----------------------------------------------------------------------------

def test_big_data_file_name() -> None:
    assert big_data_file_name("manifest") == "manifest"
    assert big_data_file_name("a.b0") == "a.b0"
    key = "sha256:" + H1
    assert big_data_file_name(key) == "=" + base64.b64encode(key.encode()).decode()
    assert big_data_file_name("signature-1").startswith("=")  # '-' is not allowed
    assert big_data_file_name("Manifest").startswith("=")      # upper case neither
    assert big_data_file_name("ü") == "=" + base64.b64encode("ü".encode()).decode()


def test_chain_layer_id() -> None:
    # seen in a podman 4.3.1 pull: bottom layer ID = diff ID hex, next = chain
    base = "4509a750685320148174b997159038c65e110c6cd925264ee9176cd3f302c01f"
    diff = "sha256:4063e57cb67748b48cff6374320a9892d548b5bc07112f6dd532fd9d2f281597"
    assert chain_layer_id(None, "sha256:" + base) == base
    assert chain_layer_id(base, diff) == (
        "c9a586a2bd180a2a538f38c075791c5d6ae5daa77b3b93d46e0d7d568942efdb")
    with pytest.raises(ValueError, match="sha256"):
        chain_layer_id(None, "md5:00")


def test_random_id() -> None:
    ids = {random_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 64 and not i[:12].isdigit() for i in ids)
    int(next(iter(ids)), 16)


def test_timestamps() -> None:
    assert format_timestamp(0) == "1970-01-01T00:00:00Z"
    assert format_timestamp(1_500_000_000) == "1970-01-01T00:00:01.5Z"
    assert format_timestamp(1_795_839_064_555_630_384) == "2026-11-28T04:11:04.555630384Z"
    text = format_timestamp()
    assert text.endswith("Z")
    assert parse_timestamp(text).year >= 2024
    when = parse_timestamp("2026-11-28T04:11:04.555630384+02:00")
    assert when.microsecond == 555630
    assert when.utcoffset() is not None
    assert format_timestamp(when) == "2026-11-28T04:11:04.55563+02:00"
    assert parse_timestamp(ZERO_TIME).year == 1
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_timestamp("yesterday")


def test_go_json_escapes_like_go() -> None:
    assert _go_json([{"a": "<&>\u2028é"}]) == b'[{"a":"\\u003c\\u0026\\u003e\\u2028\xc3\xa9"}]'


# -- models -----------------------------------------------------------------------------

def test_layer_round_trip_and_omitempty() -> None:
    layer = Layer(id=H1, created="2026-11-28T04:11:04.5Z")
    assert layer.to_json() == {"id": H1, "created": "2026-11-28T04:11:04.5Z"}
    full = {"id": H2, "names": ["n"], "parent": H1, "metadata": "m", "mountlabel": "l",
            "created": "2026-01-01T00:00:00Z", "compressed-diff-digest": "sha256:" + H1,
            "compressed-size": 5, "diff-digest": "sha256:" + H2, "toc-digest": "sha256:" + H3,
            "diff-size": 7, "compression": 2, "uidset": [0, 1000], "gidset": [0],
            "flags": {"incomplete": True, "z": 1, "a": "x"},
            "uidmap": [{"container_id": 0, "host_id": 100000, "size": 65536}],
            "gidmap": [{"container_id": 0, "host_id": 100000, "size": 65536}],
            "big-data-names": ["k"], "future-key": {"x": [1]}}
    parsed = Layer.from_json(full)
    assert parsed.incomplete
    assert parsed.uid_map == (IDMap(0, 100000, 65536),)
    assert parsed.extra == {"future-key": {"x": [1]}}
    out = parsed.to_json()
    assert out == full
    assert list(out) == list(full)              # Go's field order, extras last
    assert list(out["flags"]) == ["a", "incomplete", "z"]  # map keys sorted


def test_image_and_container_round_trip() -> None:
    raw = {"id": H1, "digest": "sha256:" + H2, "names": ["a:1"], "names-history": ["a:1"],
           "layer": H3, "metadata": "{}", "big-data-names": ["manifest"],
           "big-data-sizes": {"manifest": 3}, "big-data-digests": {"manifest": "sha256:" + H2},
           "created": "2000-01-01T00:00:00Z", "flags": {"x": True}, "unknown": 1}
    image = Image.from_json(raw)
    assert image.top_layer == H3
    assert image.to_json() == raw
    assert image.digests == ("sha256:" + H2,)
    bare = Image(id=H1, big_data_digests={"manifest-sha256:" + H3: "sha256:" + H3,
                                          "sha256:" + H1: "sha256:" + H1})
    assert bare.digest == ""
    assert bare.effective_digest == "sha256:" + H3
    assert "digest" not in bare.to_json()
    assert "digests" not in bare.to_json()

    container = Container(id=H2, created=ZERO_TIME)
    assert container.to_json() == {"id": H2, "image": "", "layer": "", "created": ZERO_TIME}
    craw = {"id": H2, "names": ["c1"], "image": H1, "layer": H3, "metadata": "m",
            "created": "2026-11-28T04:11:18.385501099Z",
            "flags": {"MountLabel": "", "ProcessLabel": ""}}
    assert Container.from_json(craw).to_json() == craw


@pytest.mark.parametrize("bad", [
    b"{", b'{"id": 1}', b'[{"id": 5}]', b'[{"id": "x", "names": "n"}]', b"[1]",
    b'[{"id": "x", "compressed-size": "3"}]', b"\xff"])
def test_corrupt_file(tmp_path: Path, bad: bytes) -> None:
    store = LayerRecords(tmp_path)
    store.path.write_bytes(bad)
    with pytest.raises(StoreCorruptError, match=r"layers\.json"):
        store.records()


def test_empty_and_missing_files(tmp_path: Path) -> None:
    store = ImageRecords(tmp_path / "vfs-images")
    assert store.records() == ()
    store.path.write_bytes(b"")
    store.reload()
    assert store.records() == ()
    assert (tmp_path / "vfs-images" / "images.lock").exists()
    assert not store.path.read_bytes()


# -- stores -----------------------------------------------------------------------------

def test_lookup_by_id_name_prefix(tmp_path: Path) -> None:
    layers = LayerRecords.open(tmp_path, "vfs")
    layers.create(Layer(id=H1, names=("base",)))
    layers.create(Layer(id=H3, parent=H1))
    layers.create(Layer(id=H2, parent=H1))
    assert layers.get(H1).names == ("base",)
    assert layers.get("base").id == H1
    assert layers.get("aaaa").id == H1
    assert layers.lookup("b") == H2
    with pytest.raises(LayerUnknownError, match="ambiguous"):
        layers.get("a")  # H1 and H3
    with pytest.raises(LayerUnknownError, match="not known"):
        layers.get("nope")
    assert not layers.exists("nope")
    assert layers.exists("ab")
    assert [x.id for x in layers.chain(H3)] == [H1, H3]
    assert {x.id for x in layers.children(H1)} == {H2, H3}
    with pytest.raises(DuplicateIDError):
        layers.create(Layer(id=H1))
    with pytest.raises(DuplicateNameError, match="base"):
        layers.create(Layer(id="d" * 64, names=("base",)))
    on_disk = json.loads((tmp_path / "vfs-layers" / "layers.json").read_bytes())
    assert [x["id"] for x in on_disk] == [H1, H3, H2]
    assert (tmp_path / "vfs-layers" / "layers.json").stat().st_mode & 0o777 == 0o600


def test_names_move_between_images(tmp_path: Path) -> None:
    images = ImageRecords.open(tmp_path, "vfs")
    images.create(Image(id=H1, names=("x:1", "x:2")))
    images.create(Image(id=H2))
    moved = images.add_names(H2, ["x:1", "y:1"])
    assert moved.names == ("x:1", "y:1")
    assert moved.names_history == ("y:1", "x:1")
    assert images.get(H1).names == ("x:2",)
    assert images.get("x:1").id == H2
    images.set_names(H1, ["y:1", "z:1"])
    assert images.get(H2).names == ("x:1",)
    assert images.get(H1).names_history == ("z:1", "y:1")
    images.remove_names(H1, ["z:1"])
    assert images.get(H1).names == ("y:1",)
    with pytest.raises(ImageUnknownError):
        images.get("z:1")
    # containers: the same move rule, no history
    containers = ContainerRecords.open(tmp_path, "vfs")
    containers.create(Container(id=H1, names=("c",), image=H1, layer=H3))
    containers.create(Container(id=H2, image=H1, layer="e" * 64))
    containers.add_names(H2, ["c"])
    assert containers.get(H1).names == ()
    assert containers.get("c").id == H2
    assert containers.get(H3).id == H1  # by layer ID, as c/s
    assert containers.by_layer("e" * 64) is not None
    with pytest.raises(ContainerUnknownError):
        containers.get("zz")


def test_duplicate_names_on_disk_go_to_the_later_record(tmp_path: Path) -> None:
    store = ImageRecords(tmp_path)
    store.path.write_bytes(_go_json([{"id": H1, "names": ["n", "m"], "created": ZERO_TIME},
                                     {"id": H2, "names": ["n"], "created": ZERO_TIME}]))
    assert store.get("n").id == H2
    assert store.get(H1).names == ("m",)


def test_image_big_data(tmp_path: Path) -> None:
    images = ImageRecords.open(tmp_path, "vfs")
    images.create(Image(id=H1, top_layer=H2))
    manifest = b'{"schemaVersion":2}'
    mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    images.set_big_data(H1, "manifest-" + mdigest, manifest)
    images.set_big_data(H1, "manifest", manifest)
    image = images.set_big_data(H1, "sha256:" + H1, b"config")
    assert image.big_data_names == ("manifest-" + mdigest, "manifest", "sha256:" + H1)
    assert image.big_data_sizes["sha256:" + H1] == 6
    assert image.digests == (mdigest,)
    assert images.by_digest(mdigest)[0].id == H1
    assert images.by_top_layer(H2)[0].id == H1
    data_dir = tmp_path / "vfs-images" / H1
    assert (data_dir / "manifest").read_bytes() == manifest
    assert (data_dir / big_data_file_name("sha256:" + H1)).read_bytes() == b"config"
    assert images.big_data(H1, "sha256:" + H1) == b"config"
    assert data_dir.stat().st_mode & 0o777 == 0o700
    images.delete(H1)
    assert not data_dir.exists()
    assert images.records() == ()


def test_layer_flags_metadata_big_data(tmp_path: Path) -> None:
    layers = LayerRecords.open(tmp_path, "overlay")
    layers.create(Layer(id=H1, flags={INCOMPLETE_FLAG: True}))
    assert [x.id for x in layers.incomplete()] == [H1]
    layers.clear_flag(H1, INCOMPLETE_FLAG)
    assert layers.incomplete() == ()
    assert "flags" not in json.loads(layers.path.read_bytes())[0]
    layers.set_metadata(H1, "meta")
    layers.set_big_data(H1, "chunked-manifest-cache", b"xyz")
    assert layers.get(H1).big_data_names == ("chunked-manifest-cache",)
    assert layers.big_data(H1, "chunked-manifest-cache") == b"xyz"
    assert layers.tar_split_path(H1) == tmp_path / "overlay-layers" / f"{H1}.tar-split.gz"
    updated = layers.update(H1, lambda r: attrs.evolve(r, uncompressed_size=9))
    assert layers.get(H1) == updated
    with pytest.raises(ValueError, match="ID"):
        layers.update(H1, lambda r: attrs.evolve(r, id=H2))


def test_mount_records(tmp_path: Path) -> None:
    mounts = MountRecords.open(tmp_path, "vfs")
    assert mounts.change(H1, "/m/1", 1) == 1
    assert mounts.change(H1, "", 1) == 2
    assert json.loads(mounts.path.read_bytes()) == [{"id": H1, "path": "/m/1", "count": 2}]
    mounts.change(H1, "", -2)
    assert mounts.path.read_bytes() == b"[]"
    assert mounts.count(H1) == 0


def test_other_instance_sees_writes(tmp_path: Path) -> None:
    a = ImageRecords(tmp_path)
    b = ImageRecords(tmp_path)
    assert b.records() == ()
    a.create(Image(id=H1))
    assert [x.id for x in b.records()] == [H1]
    # a manual edit (no token change) is seen through the file's stamp
    data = json.loads(a.path.read_bytes())
    data[0]["names"] = ["edited"]
    a.path.write_bytes(_go_json(data))
    assert b.get("edited").id == H1


def test_atomic_write_failure_keeps_old_file(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    images = ImageRecords(tmp_path)
    images.create(Image(id=H1))
    before = images.path.read_bytes()

    def crash(*args: Any) -> None:
        raise OSError("power cut between the temp write and the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        images.create(Image(id=H2))
    monkeypatch.undo()
    assert images.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.json", "images.lock"]
    assert [x.id for x in images.records()] == [H1]
    assert [x.id for x in ImageRecords(tmp_path).records()] == [H1]


# -- lock files -------------------------------------------------------------------------

def test_last_write_token_layout() -> None:
    token = new_last_write()
    assert len(token) == LAST_WRITE_SIZE
    stamp = int.from_bytes(token[:8], "little")
    assert abs(stamp / 1e9 - time.time()) < 60
    assert int.from_bytes(token[16:20], "little") == os.getpid()
    assert new_last_write()[8:16] != token[8:16]


def test_lockfile_token_and_reentrancy(tmp_path: Path) -> None:
    lf = get_lockfile(tmp_path / "x.lock")
    assert get_lockfile(tmp_path / "x.lock") is lf
    with pytest.raises(ValueError, match="read-write"):
        get_lockfile(tmp_path / "x.lock", read_only=True)
    assert (tmp_path / "x.lock").stat().st_size == 0
    with lf.shared():
        assert lf.modified()  # never written: always "modified"
        with pytest.raises(RuntimeError, match="upgrade"):
            lf.lock()
        with pytest.raises(RuntimeError, match="exclusive"):
            lf.record_write()
    with lf.exclusive():
        with lf.shared():  # re-entered under the exclusive lock
            token = lf.record_write()
        assert not lf.modified()
        assert not lf.modified_since(token)
    assert (tmp_path / "x.lock").read_bytes() == token
    with pytest.raises(RuntimeError, match="does not hold"):
        lf.unlock()
    with pytest.raises(RuntimeError, match="locked"):
        lf.last_write()


def test_lockfile_excludes_threads(tmp_path: Path) -> None:
    lf = get_lockfile(tmp_path / "t.lock")
    inside = 0
    peak = 0
    guard = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        for _ in range(50):
            with lf.exclusive():
                with guard:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.0005)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 1


_HOLD_CLASSIC = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX)   # F_SETLKW F_WRLCK, as Go's containers/storage
print("held", flush=True)
sys.stdin.readline()
"""


def test_lockfile_conflicts_with_go_style_posix_locks(tmp_path: Path) -> None:
    """podman takes classic POSIX fcntl locks: we must wait for them and they for us."""
    path = tmp_path / "layers.lock"
    lf = get_lockfile(path)
    with subprocess.Popen([sys.executable, "-c", _HOLD_CLASSIC, str(path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as holder:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "held"
        got = threading.Event()

        def take() -> None:
            with lf.shared():
                got.set()

        t = threading.Thread(target=take)
        t.start()
        try:
            assert not got.wait(0.5)  # blocked by the other process's write lock
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
        assert got.wait(10)
        t.join()
    probe = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\n"
             "except OSError:\n    sys.exit(3)\n")
    with lf.exclusive():
        assert subprocess.run([sys.executable, "-c", probe, str(path)]).returncode == 3
    assert subprocess.run([sys.executable, "-c", probe, str(path)]).returncode == 0


# -- several processes ------------------------------------------------------------------

def _writer(directory: str, worker: int, count: int) -> None:
    images = ImageRecords(directory)
    layers = LayerRecords(directory)
    for i in range(count):
        image_id = hashlib.sha256(f"{worker}-{i}".encode()).hexdigest()
        images.create(Image(id=image_id, names=(f"w{worker}:{i}",)))
        images.add_names(image_id, ["moving:1"])  # moves from whichever image had it
        images.set_big_data(image_id, "manifest", f"{worker}-{i}".encode())
        layers.create(Layer(id=image_id))


def test_concurrent_writers_in_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers, count = 4, 12
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, count))
             for w in range(workers)]
    for p in procs:
        p.start()
    # a reader in this process meanwhile
    seen = 0
    while any(p.is_alive() for p in procs):
        seen = max(seen, len(ImageRecords(tmp_path).records()))
        time.sleep(0.01)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    images = ImageRecords(tmp_path).records()
    assert len(images) == workers * count
    names = [n for image in images for n in image.names]
    assert len(names) == len(set(names))  # a name belongs to one image only
    assert sum("moving:1" in i.names for i in images) == 1
    assert all(f"w{w}:{i}" in names for w in range(workers) for i in range(count))
    assert all(i.big_data_names == ("manifest",) for i in images)
    assert len(LayerRecords(tmp_path).records()) == workers * count


# -- interop with podman and containers-storage ------------------------------------------

def _podman_store(podman: Podman, tmp_path: Path) -> dict[str, Any]:
    from oci_image.testing.random import random_image

    random_image(seed=1).write_to(f"oci:{tmp_path}/layout:x")
    random_image(seed=2, layers=3).write_to(f"oci:{tmp_path}/layout2:y")
    podman.run("pull", "-q", f"oci:{tmp_path}/layout:x")
    podman.run("pull", "-q", f"oci:{tmp_path}/layout2:y")
    listed = json.loads(podman.run("images", "--format", "json").stdout)
    first = next(i for i in listed if i["Labels"].get("seed") == "1")
    podman.run("tag", first["Id"], "localhost/extra:1")
    podman.run("create", "--name", "c1", "localhost/extra:1", "/bin/true")
    return {i["Id"]: i for i in json.loads(podman.run("images", "--format", "json").stdout)}


def _cs(podman: Podman, *args: str) -> str:
    require("containers-storage")
    root = podman.root
    return run_tool(["containers-storage", "-g", str(root / "root"), "-R",
                     str(root / "runroot"), "-s", "vfs", *args],
                    env=podman.env()).stdout.decode()


@pytest.mark.peers
def test_podman_store_read_by_us(podman: Podman, tmp_path: Path) -> None:
    listed = _podman_store(podman, tmp_path)
    graph = podman.root / "root"
    images = ImageRecords.open(graph, "vfs")
    layers = LayerRecords.open(graph, "vfs")
    containers = ContainerRecords.open(graph, "vfs")
    mounts = MountRecords.open(podman.root / "runroot", "vfs")

    # our serialisation of podman's files is byte-identical to them
    for store in (images, layers, containers, mounts):
        assert _go_json([r.to_json() for r in store.records()]) == store.path.read_bytes()

    ours = {i.id: i for i in images.records()}
    assert set(ours) == set(listed)
    for image_id, podman_view in listed.items():
        image = ours[image_id]
        assert sorted(image.names) == sorted(podman_view["Names"])
        assert image.effective_digest == podman_view["Digest"]
        assert podman_view["Digest"] in image.digests
        inspect = json.loads(podman.run("image", "inspect", image_id).stdout)[0]
        chain = layers.chain(image.top_layer)
        assert [x.uncompressed_digest for x in chain] == inspect["RootFS"]["Layers"]
        parent = None
        for layer in chain:  # layer IDs are chain IDs of the diff IDs
            assert layer.id == chain_layer_id(parent, layer.uncompressed_digest)
            assert layer.compression == 2
            assert layer.compressed_digest.startswith("sha256:")
            assert layers.tar_split_path(layer.id).is_file()
            parent = layer.id
        # the config is big data keyed by its digest, which is the image ID
        config = images.big_data(image_id, "sha256:" + image_id)
        assert hashlib.sha256(config).hexdigest() == image_id
        manifest = images.big_data(image_id, "manifest")
        assert "sha256:" + hashlib.sha256(manifest).hexdigest() == image.digest
        assert (images.data_dir(image_id) / big_data_file_name("sha256:" + image_id)).is_file()
    extra = images.get("localhost/extra:1")
    assert extra.names_history[0] == "localhost/extra:1"

    container = containers.get("c1")
    assert container.image == extra.id
    rw = layers.get(container.layer)
    assert rw.parent == extra.top_layer
    assert rw.names == ("c1-layer",)
    assert json.loads(container.metadata)["image-id"] == extra.id
    assert mounts.records() == ()
    lock = (graph / "vfs-images" / "images.lock").read_bytes()
    assert len(lock) == LAST_WRITE_SIZE


@pytest.mark.peers
def test_podman_reads_what_we_write(podman: Podman, tmp_path: Path) -> None:
    listed = _podman_store(podman, tmp_path)
    graph = podman.root / "root"
    images = ImageRecords.open(graph, "vfs")
    base = images.get("localhost/extra:1")

    # (1) a second name on an existing image, (2) the name of the other image moves
    other = next(i for i in listed if i != base.id)
    other_name = listed[other]["Names"][0]
    images.add_names(base.id, ["localhost/second:2", other_name])

    # (3) a new image record on existing layers: a changed config, a new manifest
    config = json.loads(images.big_data(base.id, "sha256:" + base.id))
    config["config"].setdefault("Labels", {})["written-by"] = "ocistack"
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    new_id = hashlib.sha256(config_bytes).hexdigest()
    manifest = json.loads(images.big_data(base.id, "manifest"))
    manifest["config"]["digest"] = "sha256:" + new_id
    manifest["config"]["size"] = len(config_bytes)
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    mdigest = "sha256:" + hashlib.sha256(manifest_bytes).hexdigest()
    with images.transaction():
        images.create(Image(id=new_id, digest=mdigest, names=("localhost/ours:1",),
                            top_layer=base.top_layer, created=format_timestamp(),
                            names_history=("localhost/ours:1",)))
        images.set_big_data(new_id, "sha256:" + new_id, config_bytes)
        images.set_big_data(new_id, "manifest-" + mdigest, manifest_bytes)
        images.set_big_data(new_id, "manifest", manifest_bytes)

    after = {i["Id"]: i for i in json.loads(podman.run("images", "--format", "json").stdout)}
    assert set(after) == {*listed, new_id}
    assert sorted(after[base.id]["Names"]) == sorted(
        {*listed[base.id]["Names"], "localhost/second:2", other_name})
    assert not after[other].get("Names")  # a dangling image now (podman omits the key)
    assert after[new_id]["Names"] == ["localhost/ours:1"]
    assert after[new_id]["Digest"] == mdigest
    inspect = json.loads(podman.run("image", "inspect", "localhost/ours:1").stdout)[0]
    assert inspect["Id"] == new_id
    assert inspect["Labels"]["written-by"] == "ocistack"
    assert inspect["RootFS"]["Layers"] == json.loads(
        podman.run("image", "inspect", base.id).stdout)[0]["RootFS"]["Layers"]

    cs_images = _cs(podman, "images")
    assert new_id in cs_images
    assert "localhost/ours:1" in cs_images
    assert "localhost/second:2" in _cs(podman, "image", base.id)
    # podman still works on the store: a container from our image, then remove it
    podman.run("create", "--name", "c2", "localhost/ours:1", "/bin/true")
    containers = ContainerRecords.open(graph, "vfs")
    assert containers.get("c2").image == new_id
    podman.run("rm", "c2")
    podman.run("rmi", "localhost/ours:1")
    assert not images.exists(new_id)
    assert not images.data_dir(new_id).exists()
    assert images.get(base.id).names  # untouched by the removal
