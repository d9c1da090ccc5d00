"""oci_storage.store: layers and images put into a containers/storage-format store, reuse
of shared layers, no trace of a failed layer, crash recovery, and podman reading (and
running) what we stored."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

from oci_image.build import BuiltImage, FileEntry, ImageBuilder
from oci_image.errors import DiffIDMismatchError, DigestMismatchError
from oci_image.spec import Digest, ImageConfig, ImageManifest, Platform, host_platform
from oci_image.testing.random import random_image
from oci_storage.apply import apply_layer
from oci_storage.drivers import select_driver
from oci_storage.errors import DriverNotSupportedError, ImageUnknownError
from oci_storage.records import INCOMPLETE_FLAG, Layer, LayerRecords
from oci_storage.store import Store

from .peers import require, require_root, run_tool


@pytest.fixture(params=["vfs", "overlay"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    name: str = request.param
    if name == "overlay":
        if os.geteuid() != 0:
            pytest.skip("overlay needs root")
        try:
            select_driver(tmp_path / "probe", name)
        except DriverNotSupportedError as exc:
            pytest.skip(f"overlay not supported here: {exc}")
        finally:
            shutil.rmtree(tmp_path / "probe", ignore_errors=True)
    return name


def _blob(image: BuiltImage, digest: Digest) -> bytes:
    value = image.blobs[digest]
    return value if isinstance(value, bytes) else value.read_bytes()


@attrs.frozen
class Parts:
    manifest: ImageManifest
    config_raw: bytes
    config: ImageConfig


def _parts(image: BuiltImage) -> Parts:
    manifest = ImageManifest.from_json(image.manifest)
    raw = _blob(image, manifest.config.digest)
    return Parts(manifest, raw, ImageConfig.from_json(raw))


def put_image(store: Store, image: BuiltImage, name: str) -> str:
    """Put every layer and the image record; the image ID."""
    parts = _parts(image)
    parent: str | None = None
    for desc, diff_id in zip(parts.manifest.layers, parts.config.rootfs.diff_ids, strict=True):
        parent = store.put_layer(parent, io.BytesIO(_blob(image, desc.digest)),
                                 diff_id=diff_id, compressed_digest=desc.digest).id
    assert parent is not None
    image_id = parts.manifest.config.digest.hex
    store.create_image(image_id, parent, names=(name,), manifest=image.manifest,
                       config=parts.config_raw)
    return image_id


def _layer_dir(root: Path, driver: str, layer_id: str) -> Path:
    return root / driver / ("dir" if driver == "vfs" else "") / layer_id


def _tar_splits(root: Path, driver: str) -> list[str]:
    return sorted(p.name for p in (root / f"{driver}-layers").iterdir()
                  if "tar-split" in p.name)


# -- the store on its own ----------------------------------------------------------------


def test_put_image_then_reopen(tmp_path: Path, driver: str) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    image = random_image(seed=1)
    parts = _parts(image)
    with Store.open(graph, run, driver) as store:
        image_id = put_image(store, image, "localhost/ocistack/random:1")
    with Store.open(graph, run) as store:  # the driver in use is kept
        assert store.driver.name == driver
        found = store.image("localhost/ocistack/random:1")
        assert found.id == image_id
        assert store.image(image_id[:12]) == found
        assert store.image(str(image.digest)) == found
        assert store.image(f"sha256:{image_id}") == found
        assert found.digest == str(image.digest)
        assert found.created == "2000-01-01T00:00:00Z"
        assert found.big_data_names == (
            str(parts.manifest.config.digest), f"manifest-{image.digest}", "manifest",
            f"signature-{image.digest.hex}")
        assert store.image_records.big_data(image_id, "manifest") == image.manifest
        assert store.image_records.big_data(
            image_id, str(parts.manifest.config.digest)) == parts.config_raw
        assert json.loads(found.metadata) == {"signatures-sizes": {str(image.digest): []}}
        layers = store.layers()
        assert [layer.uncompressed_digest for layer in layers] == [
            str(d) for d in parts.config.rootfs.diff_ids]
        assert [layer.compressed_digest for layer in layers] == [
            str(d.digest) for d in parts.manifest.layers]
        assert layers[0].id == parts.config.rootfs.diff_ids[0].hex
        assert layers[1].parent == layers[0].id
        assert found.top_layer == layers[-1].id
        for layer in layers:
            assert not layer.flags
            assert layer.compression == 2
            assert layer.uids
            assert layer.gids
            assert store.layer(layer.id[:12]) == layer
            assert _layer_dir(graph, driver, layer.id).is_dir()
        assert _tar_splits(graph, driver) == sorted(f"{layer.id}.tar-split.gz"
                                                    for layer in layers)
        with pytest.raises(ImageUnknownError):
            store.image("localhost/nothing:1")


def test_shared_layers_are_reused_and_deleted_last(tmp_path: Path, driver: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    first, other = random_image(seed=1), random_image(seed=2)
    applies: list[str] = []

    def counting(*args: object, **kwargs: object) -> object:
        applies.append(str(args[1]))
        return apply_layer(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("oci_storage.store.apply_layer", counting)
    with Store.open(graph, run, driver) as store:
        first_id = put_image(store, first, "localhost/a:1")
        assert len(applies) == 2
        base = store.layers()
        inodes = [_layer_dir(graph, driver, layer.id).stat().st_ino for layer in base]

        class Unreadable:
            def read(self, n: int = -1, /) -> bytes:
                raise AssertionError("a reused layer must not be read")

        # the same layers again: returned as they are, without reading or applying
        fp, op = _parts(first), _parts(other)
        parent: str | None = None
        for diff_id in fp.config.rootfs.diff_ids:
            parent = store.put_layer(parent, Unreadable(), diff_id=diff_id).id
        assert parent == base[-1].id
        assert len(applies) == 2
        # one more layer on top: applied once
        extra = op.manifest.layers[0]
        top = store.put_layer(parent, io.BytesIO(_blob(other, extra.digest)),
                              diff_id=op.config.rootfs.diff_ids[0])
        assert len(applies) == 3
        assert top.parent == parent
        second_id = op.manifest.config.digest.hex
        store.create_image(second_id, top.id, names=("localhost/b:1",),
                           manifest=other.manifest, config=op.config_raw)
        assert [_layer_dir(graph, driver, layer.id).stat().st_ino
                for layer in base] == inodes

        # deleting the first image keeps its layers: the second one needs them
        deleted = store.delete_image("localhost/a:1")
        assert deleted.image.id == first_id
        assert deleted.layers == ()
        assert len(store.layers()) == 3
        # deleting the second removes all three (top first)
        deleted = store.delete_image(second_id)
        assert deleted.layers == (top.id, base[1].id, base[0].id)
        assert store.layers() == ()
        assert store.images() == ()
        assert _tar_splits(graph, driver) == []
        for layer_id in deleted.layers:
            assert not _layer_dir(graph, driver, layer_id).exists()


def test_bad_layer_leaves_no_trace(tmp_path: Path, driver: str) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    image = random_image(seed=3)
    parts = _parts(image)
    blob = _blob(image, parts.manifest.layers[0].digest)
    with Store.open(graph, run, driver) as store:
        before = sorted(p.name for p in (graph / driver).rglob("*"))
        with pytest.raises(DiffIDMismatchError):
            store.put_layer(None, io.BytesIO(blob), diff_id=Digest.from_bytes(b"wrong"))
        with pytest.raises(DigestMismatchError):
            store.put_layer(None, io.BytesIO(blob), diff_id=parts.config.rootfs.diff_ids[0],
                            compressed_digest=Digest.from_bytes(b"wrong"))
        assert store.layers() == ()
        assert sorted(p.name for p in (graph / driver).rglob("*")) == before
        assert sorted(p.name for p in (graph / f"{driver}-layers").iterdir()) == [
            "layers.json", "layers.lock"]
        # and then the right one works
        layer = store.put_layer(None, io.BytesIO(blob), diff_id=parts.config.rootfs.diff_ids[0])
        assert store.layers() == (layer,)


def test_incomplete_layer_removed_on_open(tmp_path: Path, driver: str) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    image = random_image(seed=4)
    parts = _parts(image)
    with Store.open(graph, run, driver) as store:
        kept = store.put_layer(None, io.BytesIO(_blob(image, parts.manifest.layers[0].digest)),
                               diff_id=parts.config.rootfs.diff_ids[0])
        # a crash in the middle of the next put: record flagged, driver dir, tar-split
        crashed = "ab" * 32
        store.layer_records.create(Layer(id=crashed, parent=kept.id,
                                         flags={INCOMPLETE_FLAG: True}))
        store.driver.create(crashed, kept.id)
        store.layer_records.tar_split_path(crashed).write_bytes(b"partial")
        assert _layer_dir(graph, driver, crashed).is_dir()
    with Store.open(graph, run, driver) as store:
        assert store.layers() == (kept,)
        assert not _layer_dir(graph, driver, crashed).exists()
        assert _tar_splits(graph, driver) == [f"{kept.id}.tar-split.gz"]
        assert LayerRecords.open(graph, driver).incomplete() == ()


# -- podman reads and runs what we stored ----------------------------------------------

CONTAINERS_CONF = (
    '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
    'netns = "none"\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    'runtime = "runc"\n')


@attrs.frozen
class PodmanOnStore:
    """podman on our graphroot/runroot, with private configuration and a private
    /var/lib (as tests/peers.py's ``podman`` fixture, any driver)."""

    home: Path
    graphroot: Path
    runroot: Path
    driver: str

    def argv(self, *args: str) -> list[str]:
        base = [require("podman"), "--root", str(self.graphroot), "--runroot",
                str(self.runroot), "--tmpdir", str(self.home / "tmp"), "--storage-driver",
                self.driver, "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                *args]
        script = ('mount -t tmpfs tmpfs /var/lib && mkdir -p /var/lib/containers/cache '
                  '&& exec "$0" "$@"')
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, *base]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"CONTAINERS_CONF": str(self.home / "containers.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(self.home / "registries.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.home / "storage.conf"),
                    "REGISTRY_AUTH_FILE": str(self.home / "auth.json"),
                    "HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.home / "xdg")})
        return env

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return run_tool(self.argv(*args), env=self.env(), timeout=300)


@pytest.fixture
def podman_on(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
              driver: str) -> PodmanOnStore:
    return podman_on_store(tmp_path, tmp_path_factory, driver)


def podman_on_store(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory,
                    driver: str) -> PodmanOnStore:
    """podman configured for a store of ours under ``tmp_path`` (see PodmanOnStore)."""
    require("podman")
    require("unshare")
    require_root("podman with a private root-owned store")
    # podman refuses a runroot of more than 50 characters: keep it short
    return podman_for(tmp_path / "podman-home", tmp_path / "graph",
                      tmp_path_factory.mktemp("run"), driver)


def podman_for(home: Path, graphroot: Path, runroot: Path, driver: str) -> PodmanOnStore:
    """podman's private configuration under ``home`` for the store at ``graphroot`` and
    ``runroot`` (a runroot podman accepts: at most 50 characters)."""
    for sub in ("tmp", "xdg"):
        (home / sub).mkdir(parents=True)
    (home / "containers.conf").write_text(CONTAINERS_CONF)
    (home / "registries.conf").write_text("unqualified-search-registries = []\n")
    (home / "auth.json").write_text('{"auths": {}}')
    (home / "storage.conf").write_text(
        f'[storage]\ndriver = "{driver}"\ngraphroot = "{graphroot}"\n'
        f'runroot = "{runroot}"\n')
    return PodmanOnStore(home, graphroot, runroot, driver)


def busybox_image() -> BuiltImage:
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        require("busybox")
        busybox = Path(shutil.which("busybox") or "/bin/busybox")
    host = host_platform()
    builder = ImageBuilder(platform=Platform(host.os, host.architecture))
    builder.add_layer_from_files(
        {"bin/busybox": FileEntry(data=busybox.read_bytes(), mode=0o755),
         **{f"bin/{a}": FileEntry(kind="symlink", linkname="busybox")
            for a in ("sh", "cat", "echo", "id")}},
        created_by="COPY busybox /bin/busybox")
    builder.add_layer_from_files(
        {"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
         "etc/group": b"root:x:0:\n",
         "srv/hello.txt": b"hello from an ocistack store\n"},
        created_by="ADD files")
    builder.config(cmd=["/bin/cat", "/srv/hello.txt"], env=["PATH=/bin"], working_dir="/")
    return builder.build()


def test_podman_lists_and_inspects_our_image(podman_on: PodmanOnStore) -> None:
    image = random_image(seed=1)
    with Store.open(podman_on.graphroot, podman_on.runroot, podman_on.driver) as store:
        image_id = put_image(store, image, "localhost/ocistack/random:1")
    listed = json.loads(podman_on.run("images", "--format", "json").stdout)
    assert [(i["Id"], i["Names"]) for i in listed] == [
        (image_id, ["localhost/ocistack/random:1"])]
    assert listed[0]["Digest"] == str(image.digest)
    inspected = json.loads(podman_on.run("image", "inspect", image_id).stdout)[0]
    assert inspected["Id"] == image_id
    assert inspected["Digest"] == str(image.digest)
    assert inspected["RepoTags"] == ["localhost/ocistack/random:1"]
    parts = _parts(image)
    assert inspected["RootFS"]["Layers"] == [str(d) for d in parts.config.rootfs.diff_ids]
    # podman rebuilds each layer from our tar-split and tree: the exact diff_id bytes
    out = podman_on.home / "saved"
    podman_on.run("save", "--format", "oci-dir", "--uncompressed", "-o", str(out), image_id)
    for diff_id in parts.config.rootfs.diff_ids:
        blob = (out / "blobs" / "sha256" / diff_id.hex).read_bytes()
        assert Digest.from_bytes(blob) == diff_id
    # and removes it cleanly: records, tar-splits and driver directories
    podman_on.run("rmi", image_id)
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        assert store.images() == ()
        assert store.layers() == ()
    assert _tar_splits(podman_on.graphroot, podman_on.driver) == []


def test_podman_runs_our_busybox_image(podman_on: PodmanOnStore) -> None:
    require("runc")
    image = busybox_image()
    with Store.open(podman_on.graphroot, podman_on.runroot, podman_on.driver) as store:
        image_id = put_image(store, image, "localhost/ocistack/busybox:1")
    out = podman_on.run("run", "--rm", "--net=none", image_id).stdout
    assert out == b"hello from an ocistack store\n"
    out = podman_on.run("run", "--rm", "--net=none", "localhost/ocistack/busybox:1",
                        "/bin/sh", "-c", "echo $PATH; id -u").stdout
    assert out == b"/bin\n0\n"
    # and our store still reads what podman left (its container is gone)
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        assert store.image(image_id).names == ("localhost/ocistack/busybox:1",)
        assert store.container_records.records() == ()
