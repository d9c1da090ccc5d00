"""oci_storage.store containers: a read-write layer on an image, counted mounts in
``mountpoints.json``, the container's diff as an OCI layer, deletion, and podman /
containers-storage using containers we created (and we using podman's)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_image.build import BuiltImage
from oci_image.testing.random import random_image
from oci_storage.apply import apply_layer
from oci_storage.drivers.overlay import mounted_paths
from oci_storage.errors import ContainerUnknownError, DuplicateNameError, LayerInUseError
from oci_storage.store import Store

from .peers import require, run_tool
from .test_store import (  # noqa: F401 (fixtures)
    PodmanOnStore,
    _blob,
    _layer_dir,
    _parts,
    driver,
    podman_on,
    put_image,
)

IMAGE = "localhost/ocistack/random:1"


@pytest.fixture
def store(tmp_path: Path, driver: str) -> Iterator[Store]:  # noqa: F811
    with Store.open(tmp_path / "graph", tmp_path / "run", driver) as opened:
        try:
            yield opened
        finally:
            _unmount_all(opened)


def _unmount_all(store: Store) -> None:
    """Teardown: nothing of ours stays mounted, whatever the test did."""
    for container in store.containers():
        store.unmount(container.id, force=True)
    for layer in store.layers():
        store.unmount(layer.id, force=True)


def _mountpoints(store: Store) -> list[dict[str, object]]:
    value = json.loads(store.mount_records.path.read_bytes())
    assert isinstance(value, list)
    return value


def _is_overlay_mount(path: str) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split(" ")
            if fields[4] == path and fields[fields.index("-") + 1] == "overlay":
                return True
    return False


def _tree(root: Path) -> dict[str, tuple[str, int, bytes | str]]:
    """Every entry below ``root``: kind, permission bits and content / link target."""
    out: dict[str, tuple[str, int, bytes | str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            path = Path(dirpath) / entry
            st = path.lstat()
            rel = str(path.relative_to(root))
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, b"")
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", mode, path.read_bytes())
            else:
                out[rel] = ("other", mode, b"")
    return out


def _image_rootfs(image: BuiltImage, target: Path) -> Path:
    """The image's rootfs, applied layer by layer from its blobs."""
    target.mkdir()
    parts = _parts(image)
    for desc in parts.manifest.layers:
        apply_layer(io.BytesIO(_blob(image, desc.digest)), target)
    return target


def test_create_mount_diff_delete(store: Store, tmp_path: Path, driver: str) -> None:  # noqa: F811
    image = random_image(seed=11)
    image_id = put_image(store, image, IMAGE)
    top = store.image(image_id).top_layer
    c = store.create_container(IMAGE, name="c1")
    # records as podman/c-s write them
    assert store.containers() == (c,)
    assert store.container("c1") == c == store.container(c.id[:12]) == store.container(c.layer)
    assert c.image == image_id
    assert c.names == ("c1",)
    assert c.flags == {"MountLabel": "", "ProcessLabel": ""}
    meta = json.loads(c.metadata)
    assert (meta["image-name"], meta["image-id"], meta["name"]) == (IMAGE, image_id, "c1")
    assert isinstance(meta["created-at"], int)
    layer = store.layer(c.layer)
    assert layer.parent == top
    assert layer.names == ("c1-layer",)
    assert not layer.flags
    assert layer.id != c.id
    assert len(layer.id) == 64
    raw = json.loads((store.graphroot / f"{driver}-containers" / "containers.json").read_bytes())
    assert list(raw[0]) == ["id", "names", "image", "layer", "metadata", "created", "flags"]
    assert (store.graphroot / f"{driver}-containers" / c.id / "userdata").is_dir()
    assert store.container_run_dir(c.id).is_dir()
    assert _layer_dir(store.graphroot, driver, c.layer).is_dir()
    with pytest.raises(DuplicateNameError):
        store.create_container(IMAGE, name="c1")
    assert len(store.layers()) == 3  # the failed one left no layer

    # two mounts: one real one, counted
    path = store.mount("c1")
    assert store.mount(c.id) == path
    assert store.mount_count("c1") == 2
    assert _mountpoints(store) == [{"id": c.layer, "path": path, "count": 2}]
    if driver == "overlay":
        assert path == str(_layer_dir(store.graphroot, driver, c.layer) / "merged")
        assert _is_overlay_mount(path)
        assert sum(1 for p in mounted_paths() if p == path) == 1
    else:
        assert path == str(_layer_dir(store.graphroot, driver, c.layer))
    # write into the mount: a new file, a changed file, a deleted file, a new dir
    root = Path(path)
    before = _tree(root)
    files = sorted(rel for rel, (kind, _, _) in before.items() if kind == "file")
    assert len(files) >= 2
    (root / "new-dir" / "sub").mkdir(parents=True)
    (root / "new-dir" / "sub" / "hello.txt").write_bytes(b"hello from a container\n")
    (root / files[0]).write_bytes(b"changed\n")
    (root / files[1]).unlink()
    os.symlink("new-dir/sub/hello.txt", root / "link-to-hello")

    # the diff reproduces the container's tree on a copy of the image rootfs
    rootfs = _image_rootfs(image, tmp_path / "rootfs")
    assert _tree(rootfs) == before
    with store.diff("c1") as diff:
        applied = apply_layer(diff, rootfs)
    assert applied.uncompressed_size > 0
    after = _tree(root)
    assert _tree(rootfs) == after
    assert files[1] not in after
    assert after[files[0]][2] == b"changed\n"

    # unmount once: still mounted; again: gone
    assert store.unmount("c1") is True
    assert store.mount_count(c.id) == 1
    assert _mountpoints(store) == [{"id": c.layer, "path": path, "count": 1}]
    if driver == "overlay":
        assert _is_overlay_mount(path)
    assert store.unmount("c1") is False
    assert store.mount_count(c.id) == 0
    assert _mountpoints(store) == []
    if driver == "overlay":
        assert path not in mounted_paths()
    assert store.unmount("c1") is False  # nothing to do
    # the changes stay in the layer
    path = store.mount(c.layer)  # a layer reference works too
    assert (Path(path) / "new-dir" / "sub" / "hello.txt").read_bytes() == \
        b"hello from a container\n"

    # delete: refused while mounted, then forced
    with pytest.raises(LayerInUseError):
        store.delete_container("c1")
    deleted = store.delete_container("c1", force=True)
    assert deleted == c
    assert store.containers() == ()
    assert _mountpoints(store) == []
    if driver == "overlay":
        assert path not in mounted_paths()
    assert c.layer not in {x.id for x in store.layers()}
    assert len(store.layers()) == 2
    assert not _layer_dir(store.graphroot, driver, c.layer).exists()
    assert not (store.graphroot / f"{driver}-containers" / c.id).exists()
    assert not store.container_run_dir(c.id).parent.exists()
    with pytest.raises(ContainerUnknownError):
        store.container("c1")
    # the image can go now: all its layers with it
    assert len(store.delete_image(image_id).layers) == 2


def test_container_blocks_image_layers_and_has_own_id(store: Store) -> None:
    image_id = put_image(store, random_image(seed=12), IMAGE)
    a = store.create_container(image_id, container_id="ab" * 32)
    b = store.create_container(IMAGE)
    assert a.id == "ab" * 32
    assert a.names == ()
    assert store.layer(a.layer).names == ()
    assert json.loads(a.metadata)["image-name"] == IMAGE
    assert a.layer != b.layer
    assert a.id != b.id
    # the image's layers stay while containers use them
    deleted = store.delete_image(image_id)
    assert deleted.layers == ()
    for container in (a, b):
        store.delete_container(container.id)
    assert len(store.layers()) == 2


# -- podman and containers-storage ---------------------------------------------------------


def _cs(podman_on: PodmanOnStore, *args: str) -> subprocess.CompletedProcess[bytes]:  # noqa: F811
    # in its own mount namespace: the overlay driver bind-mounts its home privately, and
    # that mount must not outlive the command in ours
    argv = ["unshare", "-m", "--propagation", "private", require("containers-storage"),
            "-g", str(podman_on.graphroot), "-R", str(podman_on.runroot),
            "-s", podman_on.driver, *args]
    return run_tool(argv, env=podman_on.env(), timeout=120)


@pytest.mark.peers
def test_podman_sees_and_removes_our_container(podman_on: PodmanOnStore) -> None:  # noqa: F811
    with Store.open(podman_on.graphroot, podman_on.runroot, podman_on.driver) as store:
        put_image(store, random_image(seed=13), IMAGE)
        c = store.create_container(IMAGE, name="ours")
        path = store.mount("ours")
        (Path(path) / "marker").write_text("ours\n")
        assert store.unmount("ours") is False
    listed = json.loads(_cs(podman_on, "containers", "--json").stdout)
    assert [(x["id"], x["names"], x["image"], x["layer"]) for x in listed] == [
        (c.id, ["ours"], c.image, c.layer)]
    external = json.loads(podman_on.run("ps", "-a", "--external", "--format", "json").stdout)
    assert [(x["Id"], x["Names"]) for x in external] == [(c.id, ["ours"])]
    podman_on.run("rm", "--force", c.id)
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        assert store.containers() == ()
        assert c.layer not in {x.id for x in store.layers()}
        assert len(store.layers()) == 2
        assert store.image(IMAGE).id == c.image
    assert not _layer_dir(podman_on.graphroot, podman_on.driver, c.layer).exists()


@pytest.mark.peers
def test_we_use_podmans_container(podman_on: PodmanOnStore) -> None:  # noqa: F811
    with Store.open(podman_on.graphroot, podman_on.runroot, podman_on.driver) as store:
        image_id = put_image(store, random_image(seed=14), IMAGE)
    podman_on.run("create", "--name", "theirs", "--net=none", IMAGE, "/bin/true")
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        try:
            (theirs,) = store.containers()
            assert theirs.names == ("theirs",)
            assert theirs.image == image_id
            layer = store.layer(theirs.layer)
            assert layer.parent == store.image(image_id).top_layer
            assert layer.names == ("theirs-layer",)  # what our create_container writes
            assert set(theirs.flags) == {"MountLabel", "ProcessLabel"}
            meta = json.loads(theirs.metadata)
            assert (meta["image-id"], meta["name"]) == (image_id, "theirs")
            path = store.mount("theirs")
            assert store.mount("theirs") == path
            if podman_on.driver == "overlay":
                assert _is_overlay_mount(path)
            assert sorted(os.listdir(path))  # the image's files are there
            (Path(path) / "from-us").write_text("hi\n")
            assert store.unmount("theirs") is True
            assert store.unmount("theirs") is False
        finally:
            _unmount_all(store)
    mounted = podman_on.run("mount", "theirs").stdout.decode().strip()
    assert mounted
    podman_on.run("umount", "theirs")
    podman_on.run("rm", "theirs")
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        assert store.containers() == ()
        assert len(store.layers()) == 2
