"""A named corpus of hostile inputs, each built programmatically into a given directory.

Every case is a :class:`Case`: a name, a builder ``build(base) -> Built`` that writes the
hostile source under ``base`` (nothing is committed as a binary fixture), the exact
:class:`~oci_image.errors.OCIError` subclasses a copy from it may raise, and the strings
the error message must contain (the digest of the blob or the path concerned)::

    built = CASES["oci-layer-bitflip"].build(tmp_path)
    with pytest.raises(DigestMismatchError):
        copy_image(built.source, "oci:/tmp/out:t")

The builders write layouts and tarballs by hand (``json``, ``tarfile``), not through the
library, so that the corpus does not depend on the code under test being right.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from oci_image.build import BuiltImage
from oci_image.errors import (
    ArchiveError,
    BlobNotFoundError,
    ContentTooLargeError,
    DiffIDMismatchError,
    DigestMismatchError,
    ManifestNotFoundError,
    OCIError,
    SizeMismatchError,
    SpecError,
    TransportError,
    UnsafePathError,
)
from oci_image.spec import Compression
from oci_image.testing.random import random_image

__all__ = [
    "CASES",
    "LIMIT",
    "TEMP_MARKERS",
    "Built",
    "Case",
    "Entry",
    "RawImage",
    "blob_path",
    "docker_archive_entries",
    "docker_image",
    "leftovers",
    "oci_archive_entries",
    "sha256",
    "tree",
    "write_docker_archive",
    "write_layout",
    "write_oci_archive",
    "write_tar",
]

#: the manifest / index / config size limit of the library (containers/image's 4 MiB)
LIMIT = 4 * 1024 * 1024

#: name fragments of the temporary files and directories the transports create
TEMP_MARKERS = (".tmp", ".put-blob-", ".new-blob-", ".staging-", ".docker-archive-",
                ".oci-archive-")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def leftovers(root: Path) -> list[str]:
    """Every file or directory under ``root`` whose name looks like a temporary."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            if any(marker in name for marker in TEMP_MARKERS):
                found.append(str(Path(dirpath, name).relative_to(root)))
    return sorted(found)


def tree(root: Path) -> dict[str, str] | None:
    """Every path under ``root`` (directories included, which ``snapshot`` leaves out)
    with its kind and, for files, a hash of the content."""
    if not root.exists():
        return None
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[str(Path(dirpath, name).relative_to(root))] = "dir"
        for name in filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# --- images as plain bytes ---------------------------------------------------------------


@dataclass(frozen=True)
class RawImage:
    """An image as the bytes a layout holds: the manifest and every blob by digest."""

    manifest: bytes
    blobs: Mapping[str, bytes]
    media_type: str = OCI_MANIFEST

    @classmethod
    def from_built(cls, image: BuiltImage) -> RawImage:
        blobs = {}
        for digest, blob in image.blobs.items():
            assert isinstance(blob, bytes)
            blobs[str(digest)] = blob
        return cls(image.manifest, blobs, image.media_type)

    @classmethod
    def random(cls, seed: int, *, layers: int = 3, oci: bool = True,
               compression: Compression = Compression.GZIP, **kwargs: object) -> RawImage:
        return cls.from_built(random_image(seed, layers=layers, oci=oci,
                                           compression=compression, **kwargs))  # type: ignore[arg-type]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def obj(self) -> dict[str, object]:
        value = json.loads(self.manifest)
        assert isinstance(value, dict)
        return value

    @property
    def config_digest(self) -> str:
        return str(self.obj()["config"]["digest"])  # type: ignore[index]

    @property
    def layer_digests(self) -> list[str]:
        return [str(d["digest"]) for d in self.obj()["layers"]]  # type: ignore[attr-defined]

    def config(self) -> dict[str, object]:
        value = json.loads(self.blobs[self.config_digest])
        assert isinstance(value, dict)
        return value

    def descriptor(self, **annotations: str) -> dict[str, object]:
        desc: dict[str, object] = {"mediaType": self.media_type, "digest": self.digest,
                                   "size": len(self.manifest)}
        if annotations:
            desc["annotations"] = dict(annotations)
        return desc

    def with_manifest(self, mutate: Callable[[dict[str, object]], None]) -> RawImage:
        obj = self.obj()
        mutate(obj)
        return replace(self, manifest=json.dumps(obj).encode())

    def with_config(self, mutate: Callable[[dict[str, object]], None]) -> RawImage:
        """The image with its config changed (and the manifest pointing at the new one)."""
        cfg = self.config()
        mutate(cfg)
        raw = json.dumps(cfg).encode()
        blobs = {k: v for k, v in self.blobs.items() if k != self.config_digest}
        blobs[sha256(raw)] = raw

        def point(obj: dict[str, object]) -> None:
            obj["config"] = {**obj["config"], "digest": sha256(raw), "size": len(raw)}  # type: ignore[dict-item]

        return replace(self, blobs=blobs).with_manifest(point)

    def with_layer(self, index: int, blob: bytes) -> RawImage:
        """The image with layer ``index`` replaced by ``blob``, its descriptor updated
        (digest and size of the new bytes), the config's diff_ids left alone."""
        old = self.layer_digests[index]
        blobs = {k: v for k, v in self.blobs.items() if k != old}
        blobs[sha256(blob)] = blob

        def point(obj: dict[str, object]) -> None:
            layers = list(obj["layers"])  # type: ignore[call-overload]
            layers[index] = {**layers[index], "digest": sha256(blob), "size": len(blob)}
            obj["layers"] = layers

        return replace(self, blobs=blobs).with_manifest(point)


def write_layout(root: Path, images: Mapping[str, RawImage], *,
                 index: bytes | None = None) -> None:
    """An OCI layout at ``root`` holding ``images`` (tag -> image); ``index`` replaces
    the generated index.json."""
    blob_dir = root / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_bytes(LAYOUT_BYTES)
    entries = []
    for tag, image in images.items():
        for digest, blob in {**image.blobs, image.digest: image.manifest}.items():
            (blob_dir / _hex(digest)).write_bytes(blob)
        entries.append(image.descriptor(**{REF_NAME: tag}))
    if index is None:
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": entries}).encode()
    (root / "index.json").write_bytes(index)


def blob_path(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / _hex(digest)


# --- tarballs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tar member: a regular file (``data``), a ``symlink`` or ``hardlink``
    (``target``), or a ``dir``."""

    name: str
    data: bytes = b""
    kind: str = "file"
    target: str = ""


_TAR_KINDS = {"file": tarfile.REGTYPE, "symlink": tarfile.SYMTYPE,
              "hardlink": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE}


def write_tar(path: Path, entries: Iterable[Entry], *, truncate_at: int | None = None,
              compress: bool = False) -> None:
    """A tar archive of ``entries`` in this order (names written exactly as given, ``..``
    and leading ``/`` included), optionally gzipped and then cut at ``truncate_at``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = _TAR_KINDS[entry.kind]
            info.mode = 0o755 if entry.kind == "dir" else 0o644
            info.linkname = entry.target
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    data = buf.getvalue()
    if compress:
        data = gzip.compress(data, mtime=0)
    if truncate_at is not None:
        data = data[:truncate_at]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _truncate_in(path: Path, member: str) -> None:
    """Cut the tar archive at ``path`` in the middle of ``member``'s data."""
    with tarfile.open(path) as tar:
        info = tar.getmember(member)
    path.write_bytes(path.read_bytes()[: info.offset_data + info.size // 2])


def oci_archive_entries(images: Mapping[str, RawImage], *, skip: Iterable[str] = ()
                        ) -> list[Entry]:
    """The members of an oci-archive holding ``images``: ``oci-layout``, ``index.json``
    first, then every blob except those in ``skip`` (manifests before layers, layers in
    manifest order, so that the last member is the last layer)."""
    skipped = set(skip)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [image.descriptor(**{REF_NAME: tag})
                           for tag, image in images.items()]}
    entries = [Entry("oci-layout", LAYOUT_BYTES),
               Entry("index.json", json.dumps(index).encode()),
               Entry("blobs", kind="dir"), Entry("blobs/sha256", kind="dir")]
    blobs: dict[str, bytes] = {}
    for image in images.values():
        blobs[image.digest] = image.manifest
        blobs[image.config_digest] = image.blobs[image.config_digest]
        for digest in image.layer_digests:
            blobs[digest] = image.blobs[digest]
    entries += [Entry(f"blobs/sha256/{_hex(d)}", blob) for d, blob in blobs.items()
                if d not in skipped]
    return entries


def write_oci_archive(path: Path, images: Mapping[str, RawImage], *,
                      extra: Iterable[Entry] = (), **kwargs: object) -> None:
    write_tar(path, [*oci_archive_entries(images), *extra], **kwargs)  # type: ignore[arg-type]


def docker_archive_entries(image: RawImage, tags: Iterable[str] = (), *,
                           layer_names: list[str] | None = None,
                           config_name: str | None = None
                           ) -> tuple[dict[str, object], list[Entry]]:
    """The ``manifest.json`` item and the config and layer members of ``image`` (a
    Docker image with uncompressed layers, as ``docker save`` writes it)."""
    config_name = config_name or f"{_hex(image.config_digest)}.json"
    layer_names = layer_names or [f"{_hex(d)}.tar" for d in image.layer_digests]
    item = {"Config": config_name, "RepoTags": list(tags), "Layers": layer_names}
    entries = [Entry(config_name, image.blobs[image.config_digest])]
    for name, digest in zip(layer_names, image.layer_digests, strict=True):
        entries.append(Entry(name, image.blobs[digest]))
    return item, entries


def write_docker_archive(path: Path, items: list[dict[str, object]], entries: list[Entry],
                         **kwargs: object) -> None:
    """``manifest.json`` first, then ``entries`` (so truncating cuts the layers)."""
    manifest = Entry("manifest.json", json.dumps(items).encode())
    write_tar(path, [manifest, *entries], **kwargs)  # type: ignore[arg-type]


def docker_image(seed: int, layers: int = 2) -> RawImage:
    """A Docker schema2 image whose layers are uncompressed tars (digest = diff_id)."""
    return RawImage.random(seed, layers=layers, oci=False, compression=Compression.NONE)


# --- the cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """A hostile source written to disk: the reference to copy from, and the strings
    (digests, paths) the error message must contain."""

    source: str
    mentions: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path], Built]
    #: the exact error types a copy may raise (checked with ``type(exc) in errors``)
    errors: tuple[type[OCIError], ...]
    doc: str = ""


CASES: dict[str, Case] = {}


Builder = Callable[[Path], Built]


def case(name: str, *errors: type[OCIError]) -> Callable[[Builder], Builder]:
    """Register the decorated builder as case ``name``, failing with one of ``errors``."""

    def register(build: Builder) -> Builder:
        assert name not in CASES, name
        CASES[name] = Case(name, build, tuple(errors), (build.__doc__ or "").strip())
        return build
    return register


def _flip(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    path.write_bytes(bytes(data))


def _oci(base: Path, image: RawImage, **kwargs: object) -> tuple[Path, str]:
    root = base / "src-layout"
    write_layout(root, {"img": image}, **kwargs)  # type: ignore[arg-type]
    return root, f"oci:{root}:img"


# OCI layout: blob content ------------------------------------------------------------------

@case("oci-layer-bitflip", DigestMismatchError)
def _layer_bitflip(base: Path) -> Built:
    """One bit flipped in the middle of a layer blob."""
    image = RawImage.random(101)
    root, ref = _oci(base, image)
    layer = image.layer_digests[1]
    _flip(blob_path(root, layer))
    return Built(ref, (layer,))


@case("oci-layer-truncated", SizeMismatchError)
def _layer_truncated(base: Path) -> Built:
    """A layer blob one byte shorter than its descriptor says."""
    image = RawImage.random(102)
    root, ref = _oci(base, image)
    layer = image.layer_digests[1]
    path = blob_path(root, layer)
    path.write_bytes(path.read_bytes()[:-1])
    return Built(ref, (layer,))


@case("oci-layer-one-byte-longer", SizeMismatchError)
def _layer_longer(base: Path) -> Built:
    """A layer blob one byte longer than its descriptor says."""
    image = RawImage.random(103)
    root, ref = _oci(base, image)
    layer = image.layer_digests[2]
    with open(blob_path(root, layer), "ab") as f:
        f.write(b"\0")
    return Built(ref, (layer,))


@case("oci-layer-missing", BlobNotFoundError)
def _layer_missing(base: Path) -> Built:
    """A layer blob absent from blobs/sha256."""
    image = RawImage.random(104)
    root, ref = _oci(base, image)
    layer = image.layer_digests[1]
    blob_path(root, layer).unlink()
    return Built(ref, (layer,))


@case("oci-layer-symlink-etc-passwd", DigestMismatchError, SizeMismatchError,
      UnsafePathError)
def _layer_symlink(base: Path) -> Built:
    """A layer blob file that is a symlink to /etc/passwd."""
    image = RawImage.random(105)
    root, ref = _oci(base, image)
    layer = image.layer_digests[0]
    path = blob_path(root, layer)
    path.unlink()
    path.symlink_to("/etc/passwd")
    return Built(ref, (layer,))


@case("oci-config-bitflip", DigestMismatchError)
def _config_bitflip(base: Path) -> Built:
    """One bit flipped in the config blob."""
    image = RawImage.random(106)
    root, ref = _oci(base, image)
    _flip(blob_path(root, image.config_digest))
    return Built(ref, (image.config_digest,))


@case("oci-config-missing", BlobNotFoundError)
def _config_missing(base: Path) -> Built:
    """The config blob absent from blobs/sha256."""
    image = RawImage.random(107)
    root, ref = _oci(base, image)
    blob_path(root, image.config_digest).unlink()
    return Built(ref, (image.config_digest,))


@case("oci-manifest-bitflip", DigestMismatchError)
def _manifest_bitflip(base: Path) -> Built:
    """One bit flipped in the manifest blob index.json points at."""
    image = RawImage.random(108)
    root, ref = _oci(base, image)
    _flip(blob_path(root, image.digest), offset=len(image.manifest) - 3)
    return Built(ref, (image.digest,))


# OCI layout: size limits and malformed index.json ------------------------------------------

@case("oci-manifest-over-limit", ContentTooLargeError)
def _manifest_over_limit(base: Path) -> Built:
    """A manifest of 4 MiB + 1 byte (an annotation as padding) with the right digest and
    size in index.json."""
    image = RawImage.random(110, layers=1)

    def pad(obj: dict[str, object]) -> None:
        obj["annotations"] = {"pad": ""}

    small = image.with_manifest(pad)
    filler = "x" * (LIMIT + 1 - len(small.manifest))
    big = image.with_manifest(lambda o: o.__setitem__("annotations", {"pad": filler}))
    assert len(big.manifest) == LIMIT + 1
    _root, ref = _oci(base, big)
    return Built(ref, (big.digest,))


@case("oci-manifest-over-limit-small-size", ContentTooLargeError, SizeMismatchError)
def _manifest_over_limit_lying(base: Path) -> Built:
    """A manifest over the limit whose index.json entry claims a small size."""
    image = RawImage.random(111, layers=1)
    big = image.with_manifest(lambda o: o.__setitem__("annotations", {"pad": "y" * LIMIT}))
    desc = {**big.descriptor(**{REF_NAME: "img"}), "size": 1000}
    index = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
    _root, ref = _oci(base, big, index=index)
    return Built(ref, (big.digest,))


@case("oci-config-over-limit", ContentTooLargeError)
def _config_over_limit(base: Path) -> Built:
    """A config over the limit (a huge label), with the right digest and size."""
    image = RawImage.random(112, layers=1).with_config(
        lambda c: c["config"].__setitem__("Labels", {"pad": "z" * LIMIT}))  # type: ignore[attr-defined]
    _root, ref = _oci(base, image)
    return Built(ref, (image.config_digest,))


@case("oci-index-over-limit", ContentTooLargeError)
def _index_over_limit(base: Path) -> Built:
    """An index.json of more than 4 MiB (a padding annotation)."""
    image = RawImage.random(113, layers=1)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "annotations": {"pad": "p" * LIMIT},
                        "manifests": [image.descriptor(**{REF_NAME: "img"})]}).encode()
    root, ref = _oci(base, image, index=index)
    return Built(ref, (str(root), "index.json"))


def _bad_index(name: str, index: bytes, doc: str) -> None:
    def build(base: Path) -> Built:
        image = RawImage.random(114, layers=1)
        root, ref = _oci(base, image, index=index)
        return Built(ref, (str(root), "index.json"))

    build.__doc__ = doc
    case(name, ArchiveError)(build)


_GOOD_DESC = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 10,
              "annotations": {REF_NAME: "img"}}

_bad_index("oci-index-not-json", b'{"schemaVersion": 2, "manifests": [',
           "index.json cut in the middle of the JSON")
_bad_index("oci-index-empty", b"", "an empty index.json")
_bad_index("oci-index-array", b"[]", "index.json is a JSON array")
_bad_index("oci-index-manifests-string",
           json.dumps({"schemaVersion": 2, "manifests": "img"}).encode(),
           "index.json whose manifests is a string")
_bad_index("oci-index-digest-number",
           json.dumps({"schemaVersion": 2,
                       "manifests": [{**_GOOD_DESC, "digest": 12}]}).encode(),
           "an index.json entry whose digest is a number")
_bad_index("oci-index-size-string",
           json.dumps({"schemaVersion": 2,
                       "manifests": [{**_GOOD_DESC, "size": "10"}]}).encode(),
           "an index.json entry whose size is a string")
_bad_index("oci-index-negative-size",
           json.dumps({"schemaVersion": 2,
                       "manifests": [{**_GOOD_DESC, "size": -1}]}).encode(),
           "an index.json entry with size -1")
_bad_index("oci-index-bad-digest",
           json.dumps({"schemaVersion": 2,
                       "manifests": [{**_GOOD_DESC, "digest": "sha256:../../etc/passwd"}]
                       }).encode(),
           "an index.json entry whose digest is a path")
_bad_index("oci-index-annotations-list",
           json.dumps({"schemaVersion": 2,
                       "manifests": [{**_GOOD_DESC, "annotations": ["img"]}]}).encode(),
           "an index.json entry whose annotations are a list")


# OCI layout: config vs layers ----------------------------------------------------------------

@case("oci-diff-id-wrong", DiffIDMismatchError)
def _diff_id_wrong(base: Path) -> Built:
    """A config whose second diff_id is not the digest of the second layer's content."""
    image = RawImage.random(120)

    def corrupt(cfg: dict[str, object]) -> None:
        ids = list(cfg["rootfs"]["diff_ids"])  # type: ignore[index]
        ids[1] = sha256(b"not this layer")
        cfg["rootfs"]["diff_ids"] = ids  # type: ignore[index]

    bad = image.with_config(corrupt)
    _root, ref = _oci(base, bad)
    return Built(ref, (bad.layer_digests[1],))


@case("oci-diff-ids-fewer", DiffIDMismatchError)
def _diff_ids_fewer(base: Path) -> Built:
    """A config listing fewer diff_ids than the manifest has layers."""
    bad = RawImage.random(121).with_config(
        lambda c: c["rootfs"].__setitem__("diff_ids", c["rootfs"]["diff_ids"][:-1]))  # type: ignore[index]
    _root, ref = _oci(base, bad)
    return Built(ref, (bad.config_digest,))


# OCI layout: gzip that matches its digest but is not a valid gzip of the layer ---------------

def _uncompressed(image: RawImage, index: int) -> bytes:
    return gzip.decompress(image.blobs[image.layer_digests[index]])


def _gzip_case(name: str, mangle: Callable[[bytes, bytes], bytes], doc: str,
               *errors: type[OCIError]) -> None:
    def build(base: Path) -> Built:
        image = RawImage.random(130)
        blob = mangle(image.blobs[image.layer_digests[0]], _uncompressed(image, 0))
        bad = image.with_layer(0, blob)
        _root, ref = _oci(base, bad)
        return Built(ref, (bad.layer_digests[0],))

    build.__doc__ = doc
    case(name, *(errors or (TransportError, DiffIDMismatchError)))(build)


def _bad_crc(blob: bytes, _raw: bytes) -> bytes:
    crc = int.from_bytes(blob[-8:-4], "little") ^ 0xFFFFFFFF
    return blob[:-8] + crc.to_bytes(4, "little") + blob[-4:]


def _bad_deflate(blob: bytes, _raw: bytes) -> bytes:
    # a deflate stream with a reserved block type (BTYPE=11) right after the header
    return blob[:10] + b"\x07" + b"\x00" * 64 + blob[-8:]


def _cut_stream(blob: bytes, _raw: bytes) -> bytes:
    return blob[: len(blob) // 2]


def _garbage_after_magic(blob: bytes, raw: bytes) -> bytes:
    return blob[:10] + hashlib.sha512(raw).digest() * 8


def _wrong_content(blob: bytes, raw: bytes) -> bytes:
    # a perfectly valid gzip stream, of other content than the diff_id promises
    return gzip.compress(raw[:-1] + bytes([raw[-1] ^ 1]), mtime=0)


def _raw_deflate_in_gzip(blob: bytes, raw: bytes) -> bytes:
    # gzip header, then a deflate stream whose trailer carries the wrong size (ISIZE)
    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = body.compress(raw) + body.flush()
    return (blob[:10] + data + zlib.crc32(raw).to_bytes(4, "little")
            + ((len(raw) + 1) & 0xFFFFFFFF).to_bytes(4, "little"))


_gzip_case("oci-gzip-bad-crc", _bad_crc,
           "a gzip layer whose CRC32 trailer is wrong (digest of the corrupt bytes)")
_gzip_case("oci-gzip-bad-deflate", _bad_deflate,
           "a gzip layer whose deflate data is invalid (digest of the corrupt bytes)")
_gzip_case("oci-gzip-truncated-stream", _cut_stream,
           "a gzip layer cut in half (descriptor and digest of the cut bytes)")
_gzip_case("oci-gzip-garbage", _garbage_after_magic,
           "a gzip header followed by garbage (digest of the corrupt bytes)")
_gzip_case("oci-gzip-wrong-isize", _raw_deflate_in_gzip,
           "a gzip layer whose ISIZE trailer is wrong (digest of the corrupt bytes)")
_gzip_case("oci-gzip-valid-other-content", _wrong_content,
           "a valid gzip layer of other content than its diff_id", DiffIDMismatchError)


@case("oci-zstd-corrupt-frame", TransportError, DiffIDMismatchError)
def _zstd_corrupt(base: Path) -> Built:
    """A zstd layer with bytes overwritten in the middle of its frame (digest of the
    corrupt bytes)."""
    image = RawImage.random(131, compression=Compression.ZSTD)
    blob = bytearray(image.blobs[image.layer_digests[0]])
    middle = len(blob) // 2
    blob[middle:middle + 16] = b"\xff" * 16
    bad = image.with_layer(0, bytes(blob))
    _root, ref = _oci(base, bad)
    return Built(ref, (bad.layer_digests[0],))


@case("oci-zstd-truncated-stream", TransportError, DiffIDMismatchError)
def _zstd_truncated(base: Path) -> Built:
    """A zstd layer cut in half (descriptor and digest of the cut bytes)."""
    image = RawImage.random(132, compression=Compression.ZSTD)
    blob = image.blobs[image.layer_digests[1]]
    bad = image.with_layer(1, blob[: len(blob) // 2])
    _root, ref = _oci(base, bad)
    return Built(ref, (bad.layer_digests[1],))


# oci-archive -----------------------------------------------------------------------------

def _archive(base: Path, image: RawImage, entries: list[Entry], **kwargs: object
             ) -> str:
    path = base / "src-oci.tar"
    write_tar(path, entries, **kwargs)  # type: ignore[arg-type]
    return f"oci-archive:{path}:img"


@case("ociarch-truncated-in-layer", ArchiveError)
def _ociarch_truncated(base: Path) -> Built:
    """An oci-archive cut in the middle of its last layer blob."""
    image = RawImage.random(140)
    path = base / "src-oci.tar"
    write_oci_archive(path, {"img": image})
    _truncate_in(path, f"blobs/sha256/{_hex(image.layer_digests[-1])}")
    return Built(f"oci-archive:{path}:img", (str(path),))


@case("ociarch-truncated-gzip", ArchiveError, TransportError)
def _ociarch_truncated_gzip(base: Path) -> Built:
    """A gzip-compressed oci-archive cut in the middle."""
    image = RawImage.random(141)
    path = base / "src-oci.tar"
    write_tar(path, oci_archive_entries({"img": image}), compress=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return Built(f"oci-archive:{path}:img", (str(path),))


@case("ociarch-not-a-tar", ArchiveError)
def _ociarch_not_tar(base: Path) -> Built:
    """An oci-archive that is 64 KiB of random bytes."""
    path = base / "src-oci.tar"
    path.write_bytes(hashlib.sha512(b"x").digest() * 1024)
    return Built(f"oci-archive:{path}:img", (str(path),))


@case("ociarch-blob-missing", BlobNotFoundError)
def _ociarch_blob_missing(base: Path) -> Built:
    """An oci-archive without one of the layer blobs its manifest lists."""
    image = RawImage.random(142)
    layer = image.layer_digests[1]
    ref = _archive(base, image, [e for e in oci_archive_entries({"img": image})
                                 if not e.name.endswith(_hex(layer))])
    return Built(ref, (layer,))


@case("ociarch-index-missing", ArchiveError)
def _ociarch_index_missing(base: Path) -> Built:
    """An oci-archive without index.json."""
    image = RawImage.random(143)
    ref = _archive(base, image, [e for e in oci_archive_entries({"img": image})
                                 if e.name != "index.json"])
    return Built(ref, ("index.json",))


@case("ociarch-layer-bitflip", DigestMismatchError)
def _ociarch_bitflip(base: Path) -> Built:
    """An oci-archive whose layer blob has one bit flipped."""
    image = RawImage.random(144)
    layer = image.layer_digests[0]
    entries = []
    for e in oci_archive_entries({"img": image}):
        if e.name.endswith(_hex(layer)):
            data = bytearray(e.data)
            data[len(data) // 2] ^= 1
            e = Entry(e.name, bytes(data))
        entries.append(e)
    return Built(_archive(base, image, entries), (layer,))


@case("ociarch-blob-symlink-outside", UnsafePathError, BlobNotFoundError)
def _ociarch_symlink(base: Path) -> Built:
    """An oci-archive whose layer blob is a symlink to ../../../etc/passwd."""
    image = RawImage.random(145)
    layer = image.layer_digests[0]
    entries = [Entry(e.name, kind="symlink", target="../../../etc/passwd")
               if e.name.endswith(_hex(layer)) else e
               for e in oci_archive_entries({"img": image})]
    return Built(_archive(base, image, entries), ("../../../etc/passwd",))


# docker-archive ----------------------------------------------------------------------------

def _docker(base: Path, items: list[dict[str, object]], entries: list[Entry],
            ref_suffix: str = "", **kwargs: object) -> str:
    path = base / "src-docker.tar"
    write_docker_archive(path, items, entries, **kwargs)
    return f"docker-archive:{path}{ref_suffix}"


def _unsafe_manifest_path(name: str, field_name: str, value: str,
                          *errors: type[OCIError]) -> None:
    def build(base: Path) -> Built:
        image = docker_image(150)
        item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
        if field_name == "Config":
            item["Config"] = value
        else:
            item["Layers"] = [value, *item["Layers"][1:]]  # type: ignore[misc]
        return Built(_docker(base, [item], entries), (value,))

    build.__doc__ = f"manifest.json whose {field_name} entry is {value!r}"
    case(name, *(errors or (UnsafePathError,)))(build)


_unsafe_manifest_path("da-config-dotdot", "Config", "../x.json")
# An absolute name is looked up inside the archive (as containers/image does: it only
# compares names with the archive's own headers), so it is not found there; it must
# never be opened on the host.
_unsafe_manifest_path("da-config-absolute", "Config", "/etc/passwd", UnsafePathError,
                      BlobNotFoundError)
_unsafe_manifest_path("da-config-inner-dotdot", "Config", "a/../../b")
_unsafe_manifest_path("da-layer-dotdot", "Layers", "../layer.tar")
_unsafe_manifest_path("da-layer-absolute", "Layers", "/etc/passwd", UnsafePathError,
                      BlobNotFoundError, ArchiveError)
_unsafe_manifest_path("da-layer-inner-dotdot", "Layers", "a/../../b")


def _symlinked_layer(target: str, base: Path, mentions: tuple[str, ...] = ()) -> Built:
    image = docker_image(151)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    name = str(item["Layers"][0])  # type: ignore[index]
    entries = [Entry(e.name, kind="symlink", target=target) if e.name == name else e
               for e in entries]
    return Built(_docker(base, [item], entries), mentions or (name,))


@case("da-layer-symlink-dotdot", UnsafePathError)
def _da_symlink_dotdot(base: Path) -> Built:
    """A layer entry that is a symlink to ../../etc/passwd."""
    return _symlinked_layer("../../etc/passwd", base, ("../../etc/passwd",))


# an absolute link target is resolved inside the archive: missing there ("layer ... is
# missing from the archive", an ArchiveError), never read from the host
@case("da-layer-symlink-absolute", UnsafePathError, BlobNotFoundError, ArchiveError)
def _da_symlink_absolute(base: Path) -> Built:
    """A layer entry that is an absolute symlink to /etc/passwd."""
    return _symlinked_layer("/etc/passwd", base)


@case("da-layer-symlink-host-layer", UnsafePathError, BlobNotFoundError, ArchiveError)
def _da_symlink_host(base: Path) -> Built:
    """A layer entry that is an absolute symlink to a host file holding exactly the
    layer the config promises: only reading the host file would make the copy pass."""
    image = docker_image(152)
    host = base / "host-layer.tar"
    host.write_bytes(image.blobs[image.layer_digests[0]])
    return _symlinked_layer(str(host), base)


@case("da-layer-hardlink-outside", UnsafePathError)
def _da_hardlink(base: Path) -> Built:
    """A layer entry that is a hard link to ../../etc/passwd."""
    image = docker_image(153)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    name = str(item["Layers"][0])  # type: ignore[index]
    entries = [Entry(e.name, kind="hardlink", target="../../etc/passwd")
               if e.name == name else e for e in entries]
    return Built(_docker(base, [item], entries), ("../../etc/passwd",))


@case("da-symlink-loop", UnsafePathError)
def _da_loop(base: Path) -> Built:
    """Layer a.tar -> b.tar -> a.tar."""
    image = docker_image(154, layers=1)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    item["Layers"] = ["a.tar"]
    entries = [entries[0], Entry("a.tar", kind="symlink", target="b.tar"),
               Entry("b.tar", kind="symlink", target="./a.tar")]
    return Built(_docker(base, [item], entries), ("a.tar",))


@case("da-manifest-missing", ArchiveError)
def _da_manifest_missing(base: Path) -> Built:
    """A docker-archive without manifest.json."""
    image = docker_image(155)
    _item, entries = docker_archive_entries(image)
    path = base / "src-docker.tar"
    write_tar(path, entries)
    return Built(f"docker-archive:{path}", ("manifest.json",))


@case("da-manifest-not-json", ArchiveError)
def _da_manifest_not_json(base: Path) -> Built:
    """A docker-archive whose manifest.json is not JSON."""
    path = base / "src-docker.tar"
    write_tar(path, [Entry("manifest.json", b"[{\"Config\": ")])
    return Built(f"docker-archive:{path}", ("manifest.json",))


@case("da-manifest-wrong-types", ArchiveError)
def _da_manifest_types(base: Path) -> Built:
    """A docker-archive whose manifest.json item has Layers as a string."""
    path = base / "src-docker.tar"
    write_docker_archive(path, [{"Config": "c.json", "RepoTags": [], "Layers": "l.tar"}],
                         [])
    return Built(f"docker-archive:{path}", ("Layers",))


def _two_images(base: Path, suffix: str) -> Built:
    first, second = docker_image(156), docker_image(157)
    item1, entries1 = docker_archive_entries(first, ["example.com/one:1"])
    item2, entries2 = docker_archive_entries(second, ["example.com/two:2"])
    path = base / "src-docker.tar"
    write_docker_archive(path, [item1, item2], entries1 + entries2)
    return Built(f"docker-archive:{path}{suffix}", (str(path),))


@case("da-two-images-no-tag", ManifestNotFoundError)
def _da_two(base: Path) -> Built:
    """A docker-archive with two images, copied without a tag or index."""
    return _two_images(base, "")


@case("da-tag-not-present", ManifestNotFoundError)
def _da_tag(base: Path) -> Built:
    """A docker-archive asked for a tag it does not hold."""
    built = _two_images(base, ":example.com/three:3")
    return Built(built.source, ("example.com/three:3",))


@case("da-index-out-of-range", ManifestNotFoundError)
def _da_index(base: Path) -> Built:
    """A docker-archive asked for image @5 of 2."""
    built = _two_images(base, ":@5")
    return Built(built.source, ("@5",))


@case("da-layer-listed-twice", ArchiveError)
def _da_twice(base: Path) -> Built:
    """One layer file listed for two different diff_ids."""
    image = docker_image(158)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    first = str(item["Layers"][0])  # type: ignore[index]
    item["Layers"] = [first, first]
    return Built(_docker(base, [item], entries), (first,))


@case("da-layer-missing", ArchiveError, BlobNotFoundError)
def _da_layer_missing(base: Path) -> Built:
    """A layer listed in manifest.json but absent from the archive."""
    image = docker_image(159)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    last = str(item["Layers"][-1])  # type: ignore[index]
    return Built(_docker(base, [item], [e for e in entries if e.name != last]), (last,))


@case("da-layer-content-mismatch", DigestMismatchError)
def _da_layer_content(base: Path) -> Built:
    """A layer whose content is not what the config's diff_id promises."""
    image = docker_image(160)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    name = str(item["Layers"][1])  # type: ignore[index]
    entries = [Entry(e.name, e.data[:-1] + bytes([e.data[-1] ^ 1])) if e.name == name
               else e for e in entries]
    return Built(_docker(base, [item], entries), (image.layer_digests[1],))


@case("da-gzipped-layer-content-mismatch", DigestMismatchError)
def _da_gzipped_content(base: Path) -> Built:
    """A gzip-compressed docker-archive (spooled) whose layer is not what its diff_id
    promises."""
    image = docker_image(163)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    name = str(item["Layers"][0])  # type: ignore[index]
    entries = [Entry(e.name, e.data[:-1] + bytes([e.data[-1] ^ 1])) if e.name == name
               else e for e in entries]
    return Built(_docker(base, [item], entries, compress=True), (image.layer_digests[0],))


@case("da-truncated-in-layer", ArchiveError)
def _da_truncated(base: Path) -> Built:
    """A docker-archive (manifest.json first) cut in the middle of its last layer."""
    image = docker_image(161)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    path = base / "src-docker.tar"
    write_docker_archive(path, [item], entries)
    _truncate_in(path, str(item["Layers"][-1]))  # type: ignore[index]
    return Built(f"docker-archive:{path}", (str(path),))


@case("da-truncated-in-header", ArchiveError)
def _da_truncated_header(base: Path) -> Built:
    """A docker-archive cut in the middle of the header of its second member."""
    image = docker_image(162)
    item, entries = docker_archive_entries(image, ["example.com/hostile:1"])
    path = base / "src-docker.tar"
    write_docker_archive(path, [item], entries)
    raw = path.read_bytes()
    # the member after manifest.json: its pax header starts on the next block boundary
    manifest_len = len(json.dumps([item]).encode())
    first_end = 512 * 2 + -(-manifest_len // 512) * 512  # pax header + ustar header + data
    path.write_bytes(raw[: first_end + 100])
    return Built(f"docker-archive:{path}", (str(path),))


# dir --------------------------------------------------------------------------------------

def _dir(base: Path, image: RawImage) -> Path:
    root = base / "src-dir"
    root.mkdir()
    for digest, blob in image.blobs.items():
        (root / _hex(digest)).write_bytes(blob)
    (root / "manifest.json").write_bytes(image.manifest)
    (root / "version").write_bytes(b"Directory Transport Version: 1.1\n")
    return root


@case("dir-manifest-missing", ManifestNotFoundError)
def _dir_manifest_missing(base: Path) -> Built:
    """A dir: source without manifest.json."""
    root = _dir(base, RawImage.random(170))
    (root / "manifest.json").unlink()
    return Built(f"dir:{root}", ("manifest.json",))


@case("dir-version-unknown", ArchiveError)
def _dir_version(base: Path) -> Built:
    """A dir: source whose version file says 9.9."""
    root = _dir(base, RawImage.random(171))
    (root / "version").write_bytes(b"Directory Transport Version: 9.9\n")
    return Built(f"dir:{root}", (str(root), "version"))


@case("dir-layer-bitflip", DigestMismatchError)
def _dir_bitflip(base: Path) -> Built:
    """A dir: source whose layer has one bit flipped."""
    image = RawImage.random(172)
    root = _dir(base, image)
    layer = image.layer_digests[1]
    _flip(root / _hex(layer))
    return Built(f"dir:{root}", (layer,))


@case("dir-manifest-not-json", SpecError)
def _dir_manifest_not_json(base: Path) -> Built:
    """A dir: source whose manifest.json is not JSON."""
    root = _dir(base, RawImage.random(173))
    (root / "manifest.json").write_bytes(b"{\"schemaVersion\": 2, ")
    return Built(f"dir:{root}", ("manifest.json",))
