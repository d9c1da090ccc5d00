"""podman pulls, we read: images the real podman (containers/storage 1.43) pulled from an
``oci:`` layout into a private store (``--root``/``--runroot``, overlay and vfs), listed,
mounted as a container and copied out by us, with skopeo (containers/image) copying the
same image out of the same store as the oracle; names from two pulls and ``podman tag``;
and podman running an image our transport copied in.

Every peer runs on the test's own store with private configuration, in a private mount
namespace (see tests/test_store.py ``PodmanOnStore`` and tests/peers.py ``Skopeo``).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from oci_image.build import DEFAULT_EPOCH, BuiltImage, FileEntry, ImageBuilder
from oci_image.copy import CopyOptions, copy_image
from oci_image.interfaces import OpenOptions
from oci_image.spec import (
    Compression,
    Digest,
    ImageManifest,
    MediaType,
    Platform,
    manifest_digest,
)
from oci_image.testing.random import random_image
from oci_image.transports.oci import TRANSPORT as OCI
from oci_image.validate import validate_image
from oci_storage.drivers.overlay import mounted_paths
from oci_storage.store import Store
from oci_storage.transport import TRANSPORT

from .peers import Skopeo, require
from .test_store import (  # noqa: F401 (fixtures)
    PodmanOnStore,
    _parts,
    busybox_image,
    driver,
    podman_on,
)
from .test_store_containers import _is_overlay_mount

pytestmark = pytest.mark.peers

# -- images -------------------------------------------------------------------------------

V1 = b"#!/bin/sh\necho tool v1\n"
V2 = b"#!/bin/sh\necho tool v2\n"
BIG = b"0123456789abcdef" * 16384
RAND = random.Random(7).randbytes(65536)


def crafted_image() -> BuiltImage:
    """Four layers -- gzip, gzip, zstd, uncompressed -- with a whiteout, an opaque
    directory, symlinks (relative and absolute), hardlinks (one broken by a later
    layer's copy of the file), setuid and non-root owners."""
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    builder.add_layer_from_files({
        "etc/os-release": b"ID=ocistack\nVERSION=1\n",
        "etc/motd": b"welcome\n",
        "usr/bin/tool": FileEntry(data=V1, mode=0o755),
        # a hardlink's header carries its target's metadata, as tar writers make it
        # (c/storage applies a hardlink header's mode, owner and mtime to the inode)
        "usr/bin/tool-hard": FileEntry(kind="hardlink", linkname="usr/bin/tool", mode=0o755),
        "usr/bin/suid": FileEntry(data=b"suid\n", mode=0o4755),
        "usr/lib/libx.so.1": b"\x7fELF not really\n" * 10,
        "usr/lib/libx.so": FileEntry(kind="symlink", linkname="libx.so.1"),
        "opt/app/old-a": b"a\n",
        "opt/app/sub/old-b": b"b\n",
        "var/cache/stale.txt": b"stale\n",
        "var/cache/keep.txt": b"keep\n",
        "home/user": FileEntry(kind="dir", mode=0o750, uid=1000, gid=1000),
        "home/user/.profile": FileEntry(data=b"export A=1\n", mode=0o600, uid=1000,
                                        gid=1000),
    }, compression=Compression.GZIP, created_by="base")
    builder.add_layer_from_files({
        "var/cache/.wh.stale.txt": b"",
        "opt/app/.wh..wh..opq": b"",
        "opt/app/new.txt": b"new\n",
        "etc/os-release": b"ID=ocistack\nVERSION=2\n",
        "etc/alt": FileEntry(kind="symlink", linkname="/opt/app"),
        "data/a": FileEntry(data=b"shared\n", mode=0o640),
        "data/b": FileEntry(kind="hardlink", linkname="data/a", mode=0o640),
    }, compression=Compression.GZIP, created_by="whiteouts")
    builder.add_layer_from_files({"srv/big.bin": BIG, "srv/rand.bin": RAND},
                                 compression=Compression.ZSTD, created_by="zstd")
    builder.add_layer_from_files({
        "etc/.wh.motd": b"",
        "usr/bin/tool": FileEntry(data=V2, mode=0o755),
    }, compression=Compression.NONE, created_by="uncompressed")
    builder.config(cmd=["/usr/bin/tool"], env=["PATH=/usr/bin"], labels={"crafted": "1"})
    builder.annotate({"org.opencontainers.image.title": "crafted"})
    return builder.build()


#: the crafted image's rootfs: path -> (kind, permission bits, uid, gid, content/target)
Entry = tuple[str, int, int, int, bytes | str]
_D = ("dir", 0o755, 0, 0, b"")
CRAFTED_TREE: dict[str, Entry] = {
    **{d: _D for d in ("etc", "usr", "usr/bin", "usr/lib", "opt", "opt/app", "var",
                       "var/cache", "home", "data", "srv")},
    "home/user": ("dir", 0o750, 1000, 1000, b""),
    "home/user/.profile": ("file", 0o600, 1000, 1000, b"export A=1\n"),
    "etc/os-release": ("file", 0o644, 0, 0, b"ID=ocistack\nVERSION=2\n"),
    "etc/alt": ("link", 0, 0, 0, "/opt/app"),
    "usr/bin/tool": ("file", 0o755, 0, 0, V2),
    "usr/bin/tool-hard": ("file", 0o755, 0, 0, V1),
    "usr/bin/suid": ("file", 0o4755, 0, 0, b"suid\n"),
    "usr/lib/libx.so.1": ("file", 0o644, 0, 0, b"\x7fELF not really\n" * 10),
    "usr/lib/libx.so": ("link", 0, 0, 0, "libx.so.1"),
    "opt/app/new.txt": ("file", 0o644, 0, 0, b"new\n"),
    "var/cache/keep.txt": ("file", 0o644, 0, 0, b"keep\n"),
    "data/a": ("file", 0o640, 0, 0, b"shared\n"),
    "data/b": ("file", 0o640, 0, 0, b"shared\n"),
    "srv/big.bin": ("file", 0o644, 0, 0, BIG),
    "srv/rand.bin": ("file", 0o644, 0, 0, RAND),
}


def _tree(root: Path) -> dict[str, Entry]:
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            path = Path(dirpath) / entry
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, st.st_uid, st.st_gid, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, b"")
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                            path.read_bytes())
            else:
                out[rel] = ("other", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, b"")
    return out


# -- podman pulls -------------------------------------------------------------------------


def _pull(podman: PodmanOnStore, image: BuiltImage, layout: Path) -> str:
    """podman pulls ``image`` from an ``oci:`` layout at ``layout``; the name it gives
    the image (podman 4.3 names ``oci:`` pulls after the layout's path)."""
    # as built: the uncompressed layer too (an oci: destination gzips it otherwise)
    result = copy_image(image.reference, OCI.parse_reference(f"{layout}:pulled"), CopyOptions(
        dest_options=OpenOptions(accept_uncompressed_layers=True)))
    assert result.manifest_digest == image.digest
    out = podman.run("pull", "--quiet", f"oci:{layout}:pulled").stdout.decode().strip()
    assert out == _parts(image).manifest.config.digest.hex
    return f"localhost{layout}:latest"


def _spec(podman: PodmanOnStore) -> str:
    return f"[{podman.driver}@{podman.graphroot}+{podman.runroot}]"


@attrs.frozen
class SkopeoOnStore(Skopeo):
    """skopeo (private config and /var/lib, as tests/peers.py) with the storage.conf
    of the podman sharing the store, so that no system storage.conf is read."""

    storage_conf: Path = Path()

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)
        return env


@pytest.fixture
def skopeo_on(skopeo: Skopeo, podman_on: PodmanOnStore) -> SkopeoOnStore:  # noqa: F811
    return SkopeoOnStore(skopeo.home, podman_on.home / "storage.conf")


# -- we list what podman pulled ----------------------------------------------------------


def test_we_list_images_podman_pulled(podman_on: PodmanOnStore,  # noqa: F811
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    images = [crafted_image(), random_image(seed=21)]
    names = [_pull(podman_on, image, tmp_path_factory.mktemp("layout")) for image in images]
    listed = {i["Id"]: i for i in json.loads(podman_on.run("images", "--format", "json").stdout)}
    with Store.open(podman_on.graphroot, podman_on.runroot, podman_on.driver) as store:
        assert store.driver.name == podman_on.driver
        assert len(store.images()) == 2
        all_layers = {layer.id: layer for layer in store.layers()}
        for image, name in zip(images, names, strict=True):
            parts = _parts(image)
            found = store.image(name)
            assert found.id == parts.manifest.config.digest.hex
            assert found.names == (name,) == tuple(listed[found.id]["Names"])
            assert found.digest == str(image.digest) == listed[found.id]["Digest"]
            assert store.image(str(image.digest)) == found
            assert store.image(found.id[:12]) == found
            # podman kept the manifest and config as pulled
            assert store.image_records.big_data(found.id, "manifest") == image.manifest
            assert store.image_records.big_data(
                found.id, str(parts.manifest.config.digest)) == parts.config_raw
            # the layer chain, top to bottom through the parents
            chain = []
            layer_id = found.top_layer
            while layer_id:
                chain.append(all_layers[layer_id])
                layer_id = all_layers[layer_id].parent
            chain.reverse()
            assert [layer.uncompressed_digest for layer in chain] == [
                str(d) for d in parts.config.rootfs.diff_ids]
            assert [(layer.compressed_digest, layer.compressed_size) for layer in chain] == [
                (str(d.digest), d.size) for d in parts.manifest.layers]
            assert chain[0].id == parts.config.rootfs.diff_ids[0].hex
            for layer in chain:
                assert not layer.incomplete
                assert store.layer_records.tar_split_path(layer.id).is_file()
            # and our transport reads it, every blob checked against its digest and
            # every layer against its diff_id
            ref = TRANSPORT.parse_reference(f"{_spec(podman_on)}{name}")
            report = validate_image(ref)
            assert report.blobs == len(chain) + 1
        # nothing else: the two images' layers are all there is
        assert len(all_layers) == sum(len(_parts(i).manifest.layers) for i in images)


# -- we mount a container of podman's image ----------------------------------------------


@pytest.fixture
def pulled_store(podman_on: PodmanOnStore) -> Iterator[Store]:  # noqa: F811
    with Store.open(podman_on.graphroot, podman_on.runroot, podman_on.driver) as store:
        try:
            yield store
        finally:  # nothing of ours stays mounted, whatever the test did
            for container in store.containers():
                store.unmount(container.id, force=True)


def test_we_mount_a_container_of_podmans_image(
        podman_on: PodmanOnStore, pulled_store: Store,  # noqa: F811
        tmp_path_factory: pytest.TempPathFactory) -> None:
    image = crafted_image()
    name = _pull(podman_on, image, tmp_path_factory.mktemp("layout"))
    store = pulled_store
    image_id = store.image(name).id
    c = store.create_container(name, name="ours")
    assert c.image == image_id
    path = store.mount("ours")
    if podman_on.driver == "overlay":
        assert _is_overlay_mount(path)
    root = Path(path)
    # whiteouts and the opaque directory hid the lower files; nothing else is there
    assert _tree(root) == CRAFTED_TREE
    # the hardlink within one layer is still one file; the one a later layer broke is not
    a, b = (root / "data" / "a").stat(), (root / "data" / "b").stat()
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert (root / "usr/bin/tool").stat().st_ino != (root / "usr/bin/tool-hard").stat().st_ino
    assert (root / "srv/big.bin").stat().st_mtime == DEFAULT_EPOCH
    # a write goes to the container's layer (podman's layers still rebuild to their
    # diff_ids below)
    (root / "etc" / "os-release").write_bytes(b"changed\n")
    assert store.unmount("ours") is False
    if podman_on.driver == "overlay":
        assert path not in mounted_paths()
    store.delete_container("ours")
    assert store.containers() == ()
    # podman finds the image as it pulled it, runs nothing of ours, and removes it
    # with all its layers
    assert json.loads(podman_on.run("ps", "-a", "--external", "--format", "json").stdout) \
        == []
    out = podman_on.home / "saved"
    podman_on.run("save", "--format", "oci-dir", "--uncompressed", "-o", str(out), name)
    for diff_id in _parts(image).config.rootfs.diff_ids:
        assert Digest.from_bytes((out / "blobs" / "sha256" / diff_id.hex).read_bytes()) \
            == diff_id
    podman_on.run("rmi", name)
    assert store.images() == ()
    assert store.layers() == ()


# -- we copy out what podman pulled, as skopeo does --------------------------------------


@attrs.frozen
class LayoutImage:
    root: Path
    raw: bytes
    manifest: ImageManifest

    @classmethod
    def read(cls, root: Path) -> LayoutImage:
        (entry,) = json.loads((root / "index.json").read_bytes())["manifests"]
        assert entry["annotations"] == {"org.opencontainers.image.ref.name": "x"}
        raw = (root / "blobs" / "sha256" / entry["digest"].removeprefix("sha256:")
               ).read_bytes()
        assert manifest_digest(raw) == Digest.parse(entry["digest"])
        return cls(root, raw, ImageManifest.from_json(raw))

    def blob(self, digest: Digest) -> bytes:
        data = (self.root / "blobs" / digest.algorithm / digest.hex).read_bytes()
        assert Digest.from_bytes(data) == digest
        return data


_UNCOMPRESSED_TYPE_OF_STORAGE_LAYER = re.compile(
    rb'"mediaType":"application/vnd\.oci\.image\.layer\.v1\.tar(?:\+gzip|\+zstd)?",'
    rb'"digest":"(sha256:[0-9a-f]{64})"')


def _fixed_cimage_uncompressed_types(raw: bytes, diff_ids: tuple[Digest, ...]) -> bytes:
    """skopeo 1.9 (containers/image before 5.30, commit 772f391 "Ensure uncompressed
    layers from c/storage are recorded as uncompressed on upload") writes the layers a
    containers-storage source serves uncompressed, under
    ``--dest-oci-accept-uncompressed-layers``, with the media type of the layer as it
    was pulled (``tar+gzip``, ``tar+zstd``): a manifest whose blobs do not match their
    media type. The fixed versions write ``...layer.v1.tar``, as we do: the manifest
    as those write it (unchanged when skopeo is already fixed)."""
    wanted = {str(d).encode() for d in diff_ids}

    def fix(m: re.Match[bytes]) -> bytes:
        assert m.group(1) in wanted
        return b'"mediaType":"%s","digest":"%s"' % (MediaType.OCI_LAYER.encode(), m.group(1))

    return _UNCOMPRESSED_TYPE_OF_STORAGE_LAYER.sub(fix, raw)


def _diff_id_of(data: bytes, media_type: str) -> Digest:
    if media_type == MediaType.OCI_LAYER_GZIP:
        return Digest.from_bytes(gzip.decompress(data))
    assert media_type == MediaType.OCI_LAYER
    return Digest.from_bytes(data)


@pytest.mark.parametrize("uncompressed", [False, True], ids=["gzip", "uncompressed"])
def test_copy_out_matches_skopeo(podman_on: PodmanOnStore,  # noqa: F811
                                 skopeo_on: SkopeoOnStore, tmp_path: Path,
                                 tmp_path_factory: pytest.TempPathFactory,
                                 uncompressed: bool) -> None:
    images = [crafted_image(), random_image(seed=21)]
    names = [_pull(podman_on, image, tmp_path_factory.mktemp("layout")) for image in images]
    flags = ("--dest-oci-accept-uncompressed-layers",) if uncompressed else ()
    options = CopyOptions(dest_options=OpenOptions(accept_uncompressed_layers=uncompressed))
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        sizes = {layer.uncompressed_digest: layer.uncompressed_size
                 for layer in store.layers()}
    for i, (image, name) in enumerate(zip(images, names, strict=True)):
        parts = _parts(image)
        diff_ids = parts.config.rootfs.diff_ids
        source = f"{_spec(podman_on)}{name}"
        copy_image(TRANSPORT.parse_reference(source),
                   OCI.parse_reference(f"{tmp_path / f'ours-{i}'}:x"), options)
        skopeo_on.copy(f"containers-storage:{source}", f"oci:{tmp_path / f'skopeo-{i}'}:x",
                       *flags)
        validate_image(OCI.parse_reference(f"{tmp_path / f'ours-{i}'}:x"))
        ours = LayoutImage.read(tmp_path / f"ours-{i}")
        theirs = LayoutImage.read(tmp_path / f"skopeo-{i}")

        # the config: the same blob, the one podman pulled
        assert ours.manifest.config == theirs.manifest.config == parts.manifest.config
        assert ours.blob(ours.manifest.config.digest) == parts.config_raw
        # both drop the layer annotations (they described the pulled blobs), keep the
        # manifest's, and list the same layers of the same kind
        assert all(not d.annotations and not d.urls for d in ours.manifest.layers)
        assert ours.manifest.annotations == theirs.manifest.annotations \
            == parts.manifest.annotations
        assert len(ours.manifest.layers) == len(theirs.manifest.layers) == len(diff_ids)
        for mine, other, diff_id in zip(ours.manifest.layers, theirs.manifest.layers,
                                        diff_ids, strict=True):
            assert _diff_id_of(ours.blob(mine.digest), mine.media_type) == diff_id
            if uncompressed:
                # the tar the store rebuilds, byte for byte the same as skopeo's
                assert (mine.media_type, mine.digest, mine.size) == (
                    MediaType.OCI_LAYER, diff_id, sizes[str(diff_id)])
                assert (other.digest, other.size) == (mine.digest, mine.size)
            else:
                # both gzip the same tar: Go's compress/gzip and zlib write different
                # bytes, so only the media type and what they decompress to agree
                assert mine.media_type == other.media_type == MediaType.OCI_LAYER_GZIP
                assert _diff_id_of(theirs.blob(other.digest), other.media_type) == diff_id
        if uncompressed:
            # every byte of the manifest, so the manifest digest, is skopeo's
            assert ours.raw == _fixed_cimage_uncompressed_types(theirs.raw, diff_ids)
        else:
            # every byte of the manifest but the layers' gzip digests and sizes: skopeo's
            # manifest with our layer blobs put in is ours (Go's compact JSON, in order)
            value = json.loads(theirs.raw)
            assert json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() \
                == theirs.raw
            for layer, mine in zip(value["layers"], ours.manifest.layers, strict=True):
                layer["digest"], layer["size"] = str(mine.digest), mine.size
            assert json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() \
                == ours.raw


# -- names: two pulls and a tag ----------------------------------------------------------


def test_names_from_two_pulls_and_a_tag(podman_on: PodmanOnStore,  # noqa: F811
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    image = random_image(seed=22)
    parts = _parts(image)
    first = _pull(podman_on, image, tmp_path_factory.mktemp("layout"))
    second = _pull(podman_on, image, tmp_path_factory.mktemp("layout"))
    assert first != second
    tagged = "localhost/ocistack/tagged:2"
    podman_on.run("tag", first, tagged)
    inspected = json.loads(podman_on.run("image", "inspect", tagged).stdout)[0]
    spec = _spec(podman_on)
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        (found,) = store.images()
        assert found.id == parts.manifest.config.digest.hex
        # c/storage's AddNames puts a pulled name first; podman tag appends
        assert found.names == (second, first, tagged) == tuple(inspected["RepoTags"])
        # the second pull reused every layer
        assert len(store.layers()) == len(parts.manifest.layers)
        manifests = set()
        for name in found.names:
            assert store.image(name) == found
            with TRANSPORT.parse_reference(f"{spec}{name}").open_source() as source:
                assert source.image == found
                manifests.add(source.get_manifest())
        assert len(manifests) == 1
        by_digest = TRANSPORT.parse_reference(
            f"{spec}{tagged.rpartition(':')[0]}@{image.digest}")
        with by_digest.open_source() as source:
            assert source.image.id == found.id
    podman_on.run("untag", found.id, second)
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        assert store.image(found.id).names == (first, tagged)
    # our copy of the same image adds its name as a pull does: first, no new layer
    ours = "localhost/ocistack/ours:3"
    copy_image(image.reference, TRANSPORT.parse_reference(f"{spec}{ours}"))
    inspected = json.loads(podman_on.run("image", "inspect", ours).stdout)[0]
    assert inspected["Id"] == found.id
    assert inspected["RepoTags"] == [ours, first, tagged]
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        assert store.image(found.id).names == (ours, first, tagged)
        assert len(store.layers()) == len(parts.manifest.layers)


# -- podman runs what our transport copied in --------------------------------------------


def test_podman_runs_what_our_transport_copied_in(podman_on: PodmanOnStore) -> None:  # noqa: F811
    # test_store.py runs an image put with Store.put_layer/create_image on both drivers
    # and test_storage_transport.py lists a transport copy on vfs: this one copies with
    # the transport (staged, gzip blobs verified and applied at commit) and runs it
    require("runc")
    image = busybox_image()
    parts = _parts(image)
    name = "localhost/ocistack/busybox:1"
    copy_image(image.reference, TRANSPORT.parse_reference(f"{_spec(podman_on)}{name}"))
    listed = json.loads(podman_on.run("images", "--format", "json").stdout)
    assert [(i["Id"], i["Names"], i["Digest"]) for i in listed] == [
        (parts.manifest.config.digest.hex, [name], str(image.digest))]
    inspected = json.loads(podman_on.run("image", "inspect", name).stdout)[0]
    assert inspected["RootFS"]["Layers"] == [str(d) for d in parts.config.rootfs.diff_ids]
    out = podman_on.run("run", "--rm", "--net=none", name).stdout
    assert out == b"hello from an ocistack store\n"
    out = podman_on.run("run", "--rm", "--net=none", name, "/bin/sh", "-c",
                        "cat /etc/group; ls /bin/busybox").stdout
    assert out == b"root:x:0:\n/bin/busybox\n"
    with Store.open(podman_on.graphroot, podman_on.runroot) as store:
        assert store.container_records.records() == ()
        assert store.image(name).names == (name,)
