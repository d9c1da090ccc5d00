"""The store under crashes and concurrent writers: a copy into ``containers-storage:``
SIGKILLed at deterministic points leaves a store that opens consistent and takes the
same copy again; several processes copying the same (or overlapping) images at once
end with one image record and one copy of each layer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oci_image.copy import copy_image
from oci_image.spec import ImageManifest
from oci_image.testing.random import random_image
from oci_image.validate import validate_image
from oci_storage.drivers.overlay import OverlayDriver
from oci_storage.drivers.vfs import VfsDriver
from oci_storage.errors import DriverNotSupportedError
from oci_storage.store import Store
from oci_storage.transport import TRANSPORT

ROOT = Path(__file__).resolve().parent.parent

# The child copies the image; KILL_AT ("<point>:<n>") makes it SIGKILL itself at the
# n-th occurrence of a point:
#   write   on entering records.atomic_write (a layers/images.json or big-data file)
#   wrote   after that write (renamed into place)
#   apply   in the middle of applying a layer (some of its blob read and unpacked)
#   staged  once a layer blob is staged in the store's tmp dir (before commit)
_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, ROOT)
    from oci_image.copy import copy_image
    import oci_storage.records as records
    import oci_storage.store as store
    import oci_storage.transport as transport

    src, dst = sys.argv[1], sys.argv[2]
    point, _, n = os.environ.get("KILL_AT", ":0").partition(":")
    seen = {"count": 0}

    def tick(name):
        if name == point:
            seen["count"] += 1
            if seen["count"] == int(n):
                os.kill(os.getpid(), signal.SIGKILL)

    real_write = records.atomic_write
    def atomic_write(*args, **kwargs):
        tick("write")
        real_write(*args, **kwargs)
        tick("wrote")
    records.atomic_write = atomic_write

    class Killing:
        def __init__(self, stream):
            self.stream, self.read_so_far = stream, 0
        def read(self, size=-1, /):
            data = self.stream.read(size if 0 < size < 4096 else 4096)
            self.read_so_far += len(data)
            if self.read_so_far > 8192:
                tick("apply")
            return data

    real_apply = store.apply_layer
    def apply_layer(stream, *args, **kwargs):
        return real_apply(Killing(stream), *args, **kwargs)
    store.apply_layer = apply_layer

    real_put = transport.StorageDestination.put_blob
    def put_blob(self, stream, info):
        desc = real_put(self, stream, info)
        if not info.is_config:
            tick("staged")
        return desc
    transport.StorageDestination.put_blob = put_blob

    copy_image(src, dst)
""")


def _run_copy(src: str, dst: str, kill_at: str = "") -> subprocess.Popen[bytes]:
    env = {**os.environ, "KILL_AT": kill_at}
    return subprocess.Popen(
        [sys.executable, "-c", f"ROOT = {str(ROOT)!r}\n{_CHILD}", src, dst],
        env=env, stderr=subprocess.PIPE)


def _wait_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait for all the children (killing the rest when one hangs); all must succeed."""
    errors: list[str] = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                errors.append(err.decode())
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not errors, "\n".join(errors)


def _open(graph: Path, run: Path, driver: str) -> Store:
    try:
        return Store.open(graph, run, driver)
    except DriverNotSupportedError as exc:
        pytest.skip(f"{driver}: {exc}")


def _driver_dirs(store: Store) -> set[str]:
    if isinstance(store.driver, VfsDriver):
        base = store.driver.root / "dir"
        return {p.name for p in base.iterdir()} if base.is_dir() else set()
    assert isinstance(store.driver, OverlayDriver)
    return {p.name for p in store.driver.root.iterdir() if p.is_dir()
            and p.name != "l" and not p.name.startswith("probe-")}


def assert_consistent(store: Store) -> None:
    """Every image's layer chain is present and complete, and layer records, driver
    directories and tar-splits match one to one."""
    layers = {layer.id: layer for layer in store.layers()}
    assert not [i for i, layer in layers.items() if layer.incomplete]
    assert _driver_dirs(store) == set(layers)
    for layer_id, layer in layers.items():
        assert store.driver.exists(layer_id)
        assert store.layer_records.tar_split_path(layer_id).is_file()
        assert not layer.parent or layer.parent in layers
    for image in store.images():
        layer_id = image.top_layer
        while layer_id:
            assert layer_id in layers, f"image {image.id} lacks layer {layer_id}"
            layer_id = layers[layer_id].parent
        assert store.image_records.big_data(image.id, "manifest")


def _copy_out_and_validate(spec: str, name: str, out: Path) -> None:
    copy_image(f"containers-storage:{spec}{name}", f"oci:{out}:x")
    validate_image(f"oci:{out}:x")


# A 3-layer copy writes layers.json twice a layer (writes 1-6: the incomplete record,
# then the complete one), then the image's 4 big-data files (7-10) and images.json (11).
KILL_POINTS = ["staged:1", "write:1", "wrote:1", "apply:1", "wrote:2", "apply:2",
               "write:4", "apply:3", "wrote:6", "wrote:7", "write:11", "wrote:11"]


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_killed_copy_recovers(tmp_path: Path, driver: str) -> None:
    layout = tmp_path / "layout"
    random_image(seed=5, layers=3, files_per_layer=40, max_file_size=8 << 10).write_to(
        f"oci:{layout}:src")
    src = f"oci:{layout}:src"
    for point in KILL_POINTS:
        base = tmp_path / point.replace(":", "-")
        graph, run = base / "graph", base / "run"
        _open(graph, run, driver)
        spec = f"[{driver}@{graph}+{run}]"
        proc = _run_copy(src, f"containers-storage:{spec}localhost/x:1", point)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, (point, err.decode())
        store = Store.open(graph, run)
        assert_consistent(store)
        # the same copy again completes the image
        proc = _run_copy(src, f"containers-storage:{spec}localhost/x:1")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (point, err.decode())
        store = Store.open(graph, run)
        assert_consistent(store)
        assert len(store.images()) == 1
        assert len(store.layers()) == 3
        # what the killed copy staged was swept by the next one
        assert not list((graph / "tmp").iterdir())
        _copy_out_and_validate(spec, "localhost/x:1", base / "out")


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_concurrent_copies_of_one_image(tmp_path: Path, driver: str) -> None:
    layout = tmp_path / "layout"
    random_image(seed=6, layers=4, files_per_layer=30, max_file_size=8 << 10).write_to(
        f"oci:{layout}:src")
    graph, run = tmp_path / "graph", tmp_path / "run"
    _open(graph, run, driver)
    spec = f"[{driver}@{graph}+{run}]"
    procs = [_run_copy(f"oci:{layout}:src", f"containers-storage:{spec}localhost/x:1")
             for _ in range(4)]
    _wait_all(procs)
    store = Store.open(graph, run)
    assert_consistent(store)
    assert len(store.images()) == 1
    assert store.images()[0].names == ("localhost/x:1",)
    assert len(store.layers()) == 4
    assert len(_driver_dirs(store)) == 4
    _copy_out_and_validate(spec, "localhost/x:1", tmp_path / "out")


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_concurrent_copies_sharing_base_layers(tmp_path: Path, driver: str) -> None:
    # the same seed and files: images 2 and 3 share image 1's layers as their base
    base = random_image(seed=7, layers=2, files_per_layer=30, max_file_size=8 << 10)
    bigger = random_image(seed=7, layers=3, files_per_layer=30, max_file_size=8 << 10)
    biggest = random_image(seed=7, layers=4, files_per_layer=30, max_file_size=8 << 10)
    layout = tmp_path / "layout"
    for i, image in enumerate((base, bigger, biggest)):
        image.write_to(f"oci:{layout}:i{i}")
    blobs = [[str(d.digest) for d in
              ImageManifest.from_json(im.manifest, im.media_type).layers]
             for im in (base, bigger, biggest)]
    assert blobs[0] == blobs[1][:2], "no shared base layers"
    assert blobs[1] == blobs[2][:3], "no shared base layers"
    graph, run = tmp_path / "graph", tmp_path / "run"
    _open(graph, run, driver)
    spec = f"[{driver}@{graph}+{run}]"
    procs = [_run_copy(f"oci:{layout}:i{i % 3}", f"containers-storage:{spec}localhost/i:{i}")
             for i in range(6)]
    _wait_all(procs)
    store = Store.open(graph, run)
    assert_consistent(store)
    # three images (each under two names), four layers stored once
    assert len(store.images()) == 3
    assert sorted(n for im in store.images() for n in im.names) == [
        f"localhost/i:{i}" for i in range(6)]
    assert len(store.layers()) == 4
    assert len(_driver_dirs(store)) == 4
    for i in range(3):
        _copy_out_and_validate(spec, f"localhost/i:{i}", tmp_path / f"out{i}")


def test_live_staging_dir_is_not_swept(tmp_path: Path) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    ref = TRANSPORT.parse_reference(f"[vfs@{graph}+{run}]localhost/x:1")
    with ref.open_destination():
        with ref.open_destination():
            # the second destination's sweep kept the first one's (live) directory
            assert len(list((graph / "tmp").iterdir())) == 2
        assert len(list((graph / "tmp").iterdir())) == 1
    assert not list((graph / "tmp").iterdir())
