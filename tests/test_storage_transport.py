"""oci_storage.transport: ``containers-storage:`` references, copies into and out of our
store through the copy engine, and podman/skopeo reading what we stored."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from oci_image.copy import copy_image
from oci_image.errors import InvalidReferenceError, ManifestNotFoundError
from oci_image.interfaces import (
    BlobInfo,
    ImageDestination,
    ImageReference,
    ImageSource,
    ImageTransport,
)
from oci_image.spec import Digest, ImageConfig, ImageManifest, MediaType, Reference
from oci_image.testing.random import random_image
from oci_image.transports.oci import TRANSPORT as OCI
from oci_image.validate import validate_image
from oci_storage.store import Store
from oci_storage.transport import TRANSPORT, StorageReference, StoreSpec

from .peers import Skopeo, skopeo  # noqa: F401  (fixture)
from .test_store import PodmanOnStore, podman_on_store


def _spec(tmp_path: Path) -> str:
    return f"[vfs@{tmp_path / 'graph'}+{tmp_path / 'run'}]"


def _blob(image_blobs: object, digest: Digest) -> bytes:
    value = image_blobs[digest]  # type: ignore[index]
    return value if isinstance(value, bytes) else Path(value).read_bytes()


# -- references --------------------------------------------------------------------------


def test_parse_references(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    ref = TRANSPORT.parse_reference(f"{spec}localhost/test:1")
    assert ref.spec == StoreSpec("vfs", str(tmp_path / "graph"), str(tmp_path / "run"))
    assert ref.named == Reference.parse("localhost/test:1")
    assert ref.image_id == ""
    assert ref.string_within_transport() == f"{spec}localhost/test:1"
    assert str(ref) == f"containers-storage:{spec}localhost/test:1"
    assert ref.docker_reference() == ref.named
    assert isinstance(TRANSPORT, ImageTransport)
    assert isinstance(ref, ImageReference)
    # latest is added; docker.io normalised
    ref = TRANSPORT.parse_reference(f"{spec}busybox")
    assert str(ref.named) == "docker.io/library/busybox:latest"
    # an ID, alone or with a name
    image_id = "ab" * 32
    ref = TRANSPORT.parse_reference(f"{spec}@{image_id}")
    assert (ref.named, ref.image_id) == (None, image_id)
    ref = TRANSPORT.parse_reference(f"{spec}localhost/x:2@{image_id}")
    assert (str(ref.named), ref.image_id) == ("localhost/x:2", image_id)
    # a digest stays part of the name (no tag added)
    digest = "sha256:" + "cd" * 32
    ref = TRANSPORT.parse_reference(f"localhost/x@{digest}")
    assert ref.spec is None
    assert ref.named == Reference.parse(f"localhost/x@{digest}")
    assert ref.image_id == ""
    # round trips
    for text in (f"{spec}localhost/x:2@{image_id}", f"{spec}@{image_id}",
                 "[overlay@/g+/r:a=b,c=d]localhost/y:3", "[/g]localhost/y:3"):
        assert TRANSPORT.parse_reference(text).string_within_transport() == text
    for bad in ("", "[", "[]x", "[@/g]x", "[vfs@]x", "[relative+/r]x", "x@", "x@nothex!",
                f"{spec}", "UPPER:1"):
        with pytest.raises(InvalidReferenceError):
            TRANSPORT.parse_reference(bad)


# -- copy in and out ---------------------------------------------------------------------


def _copy_in(tmp_path: Path, seed: int = 1, name: str = "localhost/test:1"
             ) -> tuple[StorageReference, object]:
    image = random_image(seed=seed)
    ref = TRANSPORT.parse_reference(f"{_spec(tmp_path)}{name}")
    copy_image(image.reference, ref)
    return ref, image


def test_copy_in_and_out(tmp_path: Path) -> None:
    image = random_image(seed=1)
    manifest = ImageManifest.from_json(image.manifest)
    config_raw = _blob(image.blobs, manifest.config.digest)
    diff_ids = ImageConfig.from_json(config_raw).rootfs.diff_ids
    ref = TRANSPORT.parse_reference(f"{_spec(tmp_path)}localhost/test:1")
    copy_image(image.reference, ref)

    with Store.open(tmp_path / "graph", tmp_path / "run") as store:
        images = store.images()
        assert [(i.id, i.names) for i in images] == [
            (manifest.config.digest.hex, ("localhost/test:1",))]
        stored = images[0]
        assert stored.digest == str(image.digest)
        assert store.image_records.big_data(stored.id, "manifest") == image.manifest
        assert store.image_records.big_data(stored.id, str(manifest.config.digest)) \
            == config_raw
        layers = store.layers()
        assert [layer.uncompressed_digest for layer in layers] == [str(d) for d in diff_ids]
        assert [layer.compressed_digest for layer in layers] == [
            str(d.digest) for d in manifest.layers]
        assert stored.top_layer == layers[-1].id
    # nothing left behind in the store's tmp
    assert list((tmp_path / "graph" / "tmp").iterdir()) == []

    # the source presents the layers as it serves them: uncompressed, by diff_id
    with ref.open_source() as source:
        assert isinstance(source, ImageSource)
        raw, media_type = source.get_manifest()
        assert media_type == MediaType.OCI_MANIFEST
        served = ImageManifest.from_json(raw, media_type)
        assert [d.digest for d in served.layers] == list(diff_ids)
        assert {d.media_type for d in served.layers} == {MediaType.OCI_LAYER}
        assert served.config == manifest.config
    validate_image(ref)

    out = OCI.parse_reference(f"{tmp_path / 'out'}:copied")
    copy_image(ref, out)
    validate_image(out)
    with out.open_source() as source:
        raw, media_type = source.get_manifest()
        copied = ImageManifest.from_json(raw, media_type)
        cfg = source.get_blob(copied.config)
        try:
            copied_cfg = cfg.read()
        finally:
            cfg.close()
    assert copied_cfg == config_raw
    assert ImageConfig.from_json(copied_cfg).rootfs.diff_ids == diff_ids
    assert len(copied.layers) == len(manifest.layers)

    # by ID and by manifest digest too
    image_id = manifest.config.digest.hex
    for text in (f"{_spec(tmp_path)}@{image_id}", f"{_spec(tmp_path)}{image_id[:12]}",
                 f"{_spec(tmp_path)}localhost/test@{image.digest}"):
        by = TRANSPORT.parse_reference(text)
        with by.open_source() as source:
            assert source.image.id == image_id
            assert ImageManifest.from_json(source.get_manifest()[0]) == served


def test_copy_again_and_a_second_name(tmp_path: Path) -> None:
    ref, _ = _copy_in(tmp_path)
    copy_image(random_image(seed=1).reference, ref)  # the same again: no error
    _copy_in(tmp_path, seed=1, name="localhost/other:2")
    _copy_in(tmp_path, seed=2, name="localhost/test:1")  # the name moves
    with Store.open(tmp_path / "graph", tmp_path / "run") as store:
        names = sorted(i.names for i in store.images())
    assert names == [("localhost/other:2",), ("localhost/test:1",)]


def test_unknown_image(tmp_path: Path) -> None:
    ref = TRANSPORT.parse_reference(f"{_spec(tmp_path)}localhost/none:1")
    with pytest.raises(ManifestNotFoundError):
        ref.open_source()


def test_close_without_commit_leaves_nothing(tmp_path: Path) -> None:
    image = random_image(seed=5)
    manifest = ImageManifest.from_json(image.manifest)
    ref = TRANSPORT.parse_reference(f"{_spec(tmp_path)}localhost/test:1")
    with ref.open_destination() as dest:
        assert isinstance(dest, ImageDestination)
        for desc in manifest.layers:
            dest.put_blob(io.BytesIO(_blob(image.blobs, desc.digest)),
                          BlobInfo.from_descriptor(desc))
        dest.put_manifest(image.manifest, image.media_type)
    with Store.open(tmp_path / "graph", tmp_path / "run") as store:
        assert store.images() == ()
        assert store.layers() == ()
    assert list((tmp_path / "graph" / "tmp").iterdir()) == []


# -- podman and skopeo read what we stored -----------------------------------------------


@pytest.fixture
def podman_vfs(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> PodmanOnStore:
    return podman_on_store(tmp_path, tmp_path_factory, "vfs")


def test_podman_and_skopeo_read_our_copy(podman_vfs: PodmanOnStore,
                                         skopeo: Skopeo,  # noqa: F811
                                         tmp_path: Path) -> None:
    image = random_image(seed=1)
    manifest = ImageManifest.from_json(image.manifest)
    config_raw = _blob(image.blobs, manifest.config.digest)
    spec = f"[vfs@{podman_vfs.graphroot}+{podman_vfs.runroot}]"
    copy_image(image.reference, TRANSPORT.parse_reference(f"{spec}localhost/test:1"))
    listed = json.loads(podman_vfs.run("images", "--format", "json").stdout)
    assert [(i["Id"], i["Names"]) for i in listed] == [
        (manifest.config.digest.hex, ["localhost/test:1"])]
    assert listed[0]["Digest"] == str(image.digest)
    # skopeo (containers/image) copies it out of our store
    out = tmp_path / "skopeo-out"
    skopeo.copy(f"containers-storage:{spec}localhost/test:1", f"oci:{out}:x")
    validate_image(OCI.parse_reference(f"{out}:x"))
    index = json.loads((out / "index.json").read_text())
    raw = (out / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_bytes()
    copied = ImageManifest.from_json(raw)
    assert (out / "blobs" / "sha256" / copied.config.digest.hex).read_bytes() == config_raw
