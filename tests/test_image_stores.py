"""Read-only additional image stores (storage.conf ``additionalimagestores``): a store
reads images and layers of another graph root, builds and runs containers on them and
copies them out, and never writes there; podman agrees both ways (overlay and vfs)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from oci_image.copy import copy_image
from oci_image.transports.oci import TRANSPORT as OCI
from oci_image.validate import validate_image
from oci_runtime._process import ProcessIO
from oci_runtime.run import RunImageOptions, StoreLocation, run_image
from oci_runtime.runc import Runc
from oci_storage.check import check_store
from oci_storage.store import Store

from .peers import require
from .test_store import (  # noqa: F401 (fixtures)
    PodmanOnStore,
    _parts,
    busybox_image,
    driver,
    podman_on,
)
from .test_store_containers import _is_overlay_mount

pytestmark = pytest.mark.peers


def _fingerprint(graph: Path) -> dict[str, str]:
    """Every file of a graph root (but lock files) with its content's hash: a read-only
    store must come out byte for byte as it went in."""
    out = {}
    for path in sorted(graph.rglob("*")):
        if path.is_file() and not path.is_symlink() and not path.name.endswith(".lock") \
                and "merged" not in path.parts:
            out[str(path.relative_to(graph))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_we_use_an_image_store_podman_pulled(podman_on: PodmanOnStore,  # noqa: F811
                                             tmp_path: Path, driver: str) -> None:  # noqa: F811
    image = busybox_image()
    layout = tmp_path / "layout"
    copy_image(image.reference, OCI.parse_reference(f"{layout}:bb"))
    podman_on.run("pull", "--quiet", f"oci:{layout}:bb")
    ro = podman_on.graphroot
    before = _fingerprint(ro)
    graph, run = tmp_path / "ours", tmp_path / "ours-run"
    parts = _parts(image)
    config = parts.config
    with Store.open(graph, run, driver, image_stores=[ro]) as store:
        (img,) = store.images()
        assert img.id == parts.manifest.config.digest.hex
        assert store.image_records.records() == ()  # listed from the read-only store
        chain = [store.layer(img.top_layer)]
        assert [layer.uncompressed_digest for layer in chain][-1] == \
            str(config.rootfs.diff_ids[-1])
        c = store.create_container(img.id, name="on-ro")
        rootfs = Path(store.mount(c.id))
        try:
            if driver == "overlay":
                assert _is_overlay_mount(str(rootfs))
            assert (rootfs / "srv/hello.txt").read_text() == "hello from an ocistack store\n"
            (rootfs / "srv/new.txt").write_text("ours")  # lands in our container layer
        finally:
            store.unmount(c.id)
        assert check_store(store).ok
        store.delete_container(c.id)
    # copied out through the transport, with the read-only store as a driver option
    out = tmp_path / "out"
    spec = f"[{driver}@{graph}+{run}:{driver}.imagestore={ro}]"
    copy_image(f"containers-storage:{spec}{img.id}", f"oci:{out}:x")
    index = json.loads((out / "index.json").read_text())
    manifest = json.loads((out / "blobs/sha256" / index["manifests"][0]["digest"][7:])
                          .read_bytes())
    assert manifest["config"]["digest"] == str(parts.manifest.config.digest)
    validate_image(f"oci:{out}:x")  # every layer checked against the config's diff_ids
    # and run
    runc = require("runc")
    output = tmp_path / "run.out"
    status = run_image(img.id, [], RunImageOptions(
        store=StoreLocation(str(graph), str(run), driver, image_stores=(str(ro),)),
        runc=Runc(binary=runc, root=str(tmp_path / "runc")),
        io=ProcessIO(stdout=str(output))))
    assert (status, output.read_text()) == (0, "hello from an ocistack store\n")
    assert _fingerprint(ro) == before  # nothing written to the read-only store


def test_podman_uses_our_store_as_an_image_store(podman_on: PodmanOnStore,  # noqa: F811
                                                 tmp_path: Path,
                                                 driver: str) -> None:  # noqa: F811
    image = busybox_image()
    parts = _parts(image)
    ours = tmp_path / "ours-ro"
    copy_image(image.reference,
               f"containers-storage:[{driver}@{ours}+{tmp_path / 'ours-ro-run'}]"
               "localhost/ro/busybox:1")
    before = _fingerprint(ours)
    # storage.conf's additionalimagestores become this driver option; podman drops the
    # file's driver options when --storage-driver is given, so it is passed as a flag
    opt = ("--storage-opt", f"{driver}.imagestore={ours}")
    listed = json.loads(podman_on.run(*opt, "images", "--format", "json").stdout)
    assert [(i["Id"], i["Names"]) for i in listed] == [
        (parts.manifest.config.digest.hex, ["localhost/ro/busybox:1"])]
    out = podman_on.run(*opt, "run", "--rm", "--net=none", "localhost/ro/busybox:1").stdout
    assert out == b"hello from an ocistack store\n"
    assert _fingerprint(ours) == before
