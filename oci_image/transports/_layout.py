"""OCI image layout reading and writing, shared by ``oci:`` and ``oci-archive:``.

Writing protocol (several processes may write one layout at once):

* blobs are staged in a temporary file in the layout, verified while written, fsynced,
  then renamed to ``blobs/<alg>/<hex>`` -- a blob path only ever holds verified content;
* ``index.json`` is changed only at commit, under an exclusive ``flock`` on the layout
  directory: it is re-read, the new entry merged (an existing tag moves to the new
  image), and replaced atomically (temp file, fsync, rename). Blobs this session relies
  on are checked to still exist under the same lock;
* a session closed without commit removes the blobs it created, unless index.json
  references them by then (another writer committed them) -- under the same lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from .._blobio import atomic_write_bytes, read_limited, read_verified
from ..errors import (
    ArchiveError,
    BlobNotFoundError,
    InvalidReferenceError,
    ManifestNotFoundError,
    ManifestTypeRejectedError,
    SpecError,
)
from ..interfaces import BlobInfo, BlobStream, DestinationCapabilities, LayerCompression
from ..spec import (
    DEFAULT_SIZE_LIMIT,
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    MediaType,
    Readable,
    VerifyingReader,
    guess_media_type,
    is_docker_schema1,
    is_manifest,
    parse_manifest,
)
from ..spec._json import dumps, load_object
from ._common import stage_blob, sweep_stale_temps

__all__ = [
    "LAYOUT_FILE",
    "REF_NAME",
    "DirectoryLayout",
    "LayoutDestination",
    "LayoutReader",
    "LayoutWriter",
    "format_layout_reference",
    "parse_layout_reference",
]

log = logging.getLogger("oci_image.transports.oci")

INDEX_FILE: Final = "index.json"
LAYOUT_FILE: Final = "oci-layout"
LAYOUT_BYTES: Final = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME: Final = "org.opencontainers.image.ref.name"

_SEPARATOR = r"(?:[-._:@+]|--)"
_ALNUM = r"[A-Za-z0-9]+"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REF_NAME_RE: Final = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")


def parse_layout_reference(rest: str, transport: str) -> tuple[str, int]:
    """``REFERENCE`` or ``@INDEX`` (the part after the path) -> (image, source_index)."""
    if rest.startswith("@"):
        try:
            index = int(rest[1:], 10)
        except ValueError:
            raise InvalidReferenceError(
                f"{transport}: invalid source index {rest!r}: not an integer") from None
        if index < 0:
            raise InvalidReferenceError(f"{transport}: source index {rest!r} is negative")
        return "", index
    if rest and not _REF_NAME_RE.match(rest):
        raise InvalidReferenceError(f"{transport}: invalid image name {rest!r}")
    return rest, -1


def format_layout_reference(path: str, image: str, source_index: int) -> str:
    if source_index >= 0:
        return f"{path}:@{source_index}"
    return f"{path}:{image}" if image else path


def resolve_descriptor(index: ImageIndex, image: str, source_index: int, where: str
                       ) -> Descriptor:
    """The index.json entry a reference means (containers/image rules)."""
    if source_index >= 0:
        if source_index >= len(index.manifests):
            raise ManifestNotFoundError(
                f"{where}: no image at index @{source_index} "
                f"(the layout has {len(index.manifests)})")
        return index.manifests[source_index]
    if not image:
        if len(index.manifests) == 1:
            return index.manifests[0]
        if not index.manifests:
            raise ManifestNotFoundError(f"{where}: the layout holds no image")
        raise ManifestNotFoundError(
            f"{where}: more than one image in the layout; name one as PATH:REFERENCE "
            f"(known: {', '.join(ref_names(index)) or 'none named'})")
    for desc in index.manifests:
        if desc.annotations.get(REF_NAME) == image and is_manifest(desc.media_type):
            return desc
    raise ManifestNotFoundError(f"{where}: no image named {image!r}")


def ref_names(index: ImageIndex) -> list[str]:
    return [d.annotations[REF_NAME] for d in index.manifests if REF_NAME in d.annotations]


def parse_index(raw: bytes, where: str) -> ImageIndex:
    try:
        parsed = parse_manifest(raw, None)
    except SpecError as exc:
        raise ArchiveError(f"{where}: invalid index.json: {exc}") from exc
    if not isinstance(parsed, ImageIndex):
        raise ArchiveError(f"{where}: index.json is not an image index")
    return parsed


def check_layout_file(raw: bytes, where: str) -> None:
    try:
        obj = load_object(raw, "oci-layout", 1 << 16)
    except SpecError as exc:
        raise ArchiveError(f"{where}: invalid oci-layout file: {exc}") from exc
    version = obj.get("imageLayoutVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise ArchiveError(f"{where}: unsupported image layout version {version!r}")


class LayoutReader:
    """Reads manifests and blobs of one image out of a layout, given a blob opener."""

    def __init__(self, index: ImageIndex, top: Descriptor,
                 open_blob: Callable[[Digest], BlobStream], where: str) -> None:
        self.index = index
        self.top = top
        self._open_blob = open_blob
        self._where = where

    def get_manifest(self, instance: Digest | None) -> tuple[bytes, str]:
        if instance is None:
            with contextlib.closing(self._open_blob(self.top.digest)) as stream:
                raw = read_verified(stream, self.top, "manifest")
            return raw, self.top.media_type
        with contextlib.closing(self._open_blob(instance)) as stream:
            reader = VerifyingReader(stream, instance, None, name=f"manifest {instance}")
            raw = read_limited(reader, f"manifest {instance}", DEFAULT_SIZE_LIMIT)
            reader.read_all_and_verify()
        obj = load_object(raw, f"manifest {instance}")
        media_type = obj.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            media_type = guess_media_type(obj)
        return raw, media_type

    def get_blob(self, desc: Descriptor) -> BlobStream:
        return self._open_blob(desc.digest)


class DirectoryLayout:
    """An OCI layout directory (with an optional shared blob directory)."""

    def __init__(self, root: Path, shared_blob_dir: str | None = None) -> None:
        self.root = root
        self.blobs = Path(shared_blob_dir) if shared_blob_dir else root / "blobs"

    def blob_path(self, digest: Digest) -> Path:
        # Digest validation guarantees algorithm and hex are safe path components.
        return self.blobs / digest.algorithm / digest.hex

    def open_blob(self, digest: Digest) -> BlobStream:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"{self.root}: blob {digest} not found") from None

    def has_index(self) -> bool:
        return (self.root / INDEX_FILE).exists()

    def read_index_raw(self) -> bytes:
        try:
            with open(self.root / INDEX_FILE, "rb") as f:
                raw = read_limited(f, f"{self.root}/index.json")
        except FileNotFoundError:
            if not self.root.exists():
                raise ManifestNotFoundError(f"{self.root}: no such OCI layout") from None
            raise ArchiveError(f"{self.root}: not an OCI layout (no index.json)") from None
        with contextlib.suppress(FileNotFoundError):
            check_layout_file((self.root / LAYOUT_FILE).read_bytes()[: 1 << 16], str(self.root))
        return raw

    def read_index(self) -> ImageIndex:
        return parse_index(self.read_index_raw(), str(self.root))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock on the layout (flock on the directory)."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def referenced_digests(self) -> set[Digest]:
        """Every digest reachable from index.json (manifests, configs, layers)."""
        if not self.has_index():
            return set()
        return self.reachable(self.read_index().manifests)

    def reachable(self, roots: Iterable[Descriptor]) -> set[Digest]:
        """Digests of ``roots`` and of everything their manifests reference."""
        seen: set[Digest] = set()
        stack = list(roots)
        while stack:
            desc = stack.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if not is_manifest(desc.media_type) or desc.size > DEFAULT_SIZE_LIMIT:
                continue
            try:
                parsed = parse_manifest(self.blob_path(desc.digest).read_bytes(),
                                        desc.media_type)
            except (OSError, SpecError):
                continue
            if isinstance(parsed, ImageIndex):
                stack.extend(parsed.manifests)
            elif isinstance(parsed, ImageManifest):
                seen.update(d.digest for d in parsed.referenced_blobs())
        return seen

    def delete_image(self, target: Descriptor) -> None:
        """Drop ``target``'s index.json entry and the blobs only it used (under the
        layout lock, which the caller holds)."""
        before = self.referenced_digests()
        doomed = self.reachable([target])
        obj = json.loads(self.read_index_raw())
        entries = obj.get("manifests") or []
        kept = [m for m in entries if not _same_entry(m, target)]
        if len(kept) == len(entries):
            raise ManifestNotFoundError(f"{self.root}: image {target.digest} not found")
        obj["manifests"] = kept
        atomic_write_bytes(self.root / INDEX_FILE, dumps(obj))
        for digest in (doomed & before) - self.referenced_digests():
            with contextlib.suppress(FileNotFoundError):
                self.blob_path(digest).unlink()


def _same_entry(entry: object, target: Descriptor) -> bool:
    if not isinstance(entry, dict):
        return False
    annotations = entry.get("annotations") or {}
    return (entry.get("digest") == str(target.digest)
            and annotations.get(REF_NAME) == target.annotations.get(REF_NAME))


def merge_index_entry(index_obj: dict[str, Any], desc: Descriptor) -> dict[str, Any]:
    """Add ``desc`` to a decoded index.json (unknown fields kept): an entry that had the
    same name loses it (and is dropped when nothing else is left of its annotations); an
    unnamed entry with the same digest is replaced."""
    manifests = [m for m in index_obj.get("manifests") or [] if isinstance(m, dict)]
    name = desc.annotations.get(REF_NAME)
    if name:
        for i, entry in enumerate(manifests):
            annotations = entry.get("annotations") or {}
            if annotations.get(REF_NAME) == name:
                annotations = {k: v for k, v in annotations.items() if k != REF_NAME}
                if annotations:
                    manifests[i] = {**entry, "annotations": annotations}
                else:
                    del manifests[i]
                break
    new_entry = desc.to_json()
    for i, entry in enumerate(manifests):
        if entry.get("digest") == str(desc.digest) and not (entry.get("annotations") or {}
                                                            ).get(REF_NAME):
            manifests[i] = new_entry
            break
    else:
        manifests.append(new_entry)
    out = dict(index_obj)
    out["schemaVersion"] = 2
    out.setdefault("mediaType", MediaType.OCI_INDEX)
    out["manifests"] = manifests
    return out


class LayoutWriter:
    """Writes one image (or index) into a layout directory; see the module docstring."""

    def __init__(self, layout: DirectoryLayout, image: str, *, sync: bool = True) -> None:
        self.layout = layout
        self.image = image
        self._sync = sync
        self._created_root = not layout.root.exists()
        layout.root.mkdir(parents=True, exist_ok=True)
        layout.blobs.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(layout.root)  # what a killed writer left behind
        self._new_blobs: dict[Path, tuple[int, int]] = {}
        self._used: set[Digest] = set()
        self._top: Descriptor | None = None
        self._done = False

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        if info.digest is None:
            return None
        try:
            st = self.layout.blob_path(info.digest).stat()
        except FileNotFoundError:
            return None
        if info.size is not None and st.st_size != info.size:
            return None
        self._used.add(info.digest)
        return Descriptor(info.media_type, info.digest, st.st_size)

    def put_blob(self, stream: Any, info: BlobInfo) -> Descriptor:
        with stage_blob(self.layout.root, stream, info, sync=self._sync) as staged:
            final = self.layout.blob_path(staged.digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            existed = final.exists()
            os.replace(staged.path, final)
        if not existed:
            st = final.stat()
            self._new_blobs[final] = (st.st_dev, st.st_ino)
        self._used.add(staged.digest)
        return Descriptor(info.media_type, staged.digest, staged.size)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None) -> None:
        if not is_manifest(media_type) or is_docker_schema1(media_type):
            raise ManifestTypeRejectedError(
                f"{self.layout.root}: an OCI layout stores OCI (or, when asked, Docker "
                f"schema2) manifests and indexes, not {media_type}")
        info = BlobInfo(media_type, instance, len(raw))
        desc = self.put_blob(io.BytesIO(raw), info)
        if instance is None:
            annotations = {REF_NAME: self.image} if self.image else {}
            self._top = Descriptor(media_type, desc.digest, desc.size, annotations=annotations)

    def commit(self) -> None:
        if self._top is None:
            raise RuntimeError("commit() before the top-level manifest was written")
        with self.layout.locked():
            for digest in self._used:
                if not self.layout.blob_path(digest).exists():
                    raise BlobNotFoundError(
                        f"{self.layout.root}: blob {digest} disappeared before commit "
                        "(removed by a concurrent writer?); nothing was committed")
            _remove_stale_index_temps(self.layout.root)
            index_obj: dict[str, Any] = {"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX,
                                         "manifests": []}
            if self.layout.has_index():
                raw = self.layout.read_index_raw()
                parse_index(raw, str(self.layout.root))  # refuse to merge into garbage
                index_obj = json.loads(raw)
            new_index = merge_index_entry(index_obj, self._top)
            layout_file = self.layout.root / LAYOUT_FILE
            if not layout_file.exists():
                atomic_write_bytes(layout_file, LAYOUT_BYTES, sync=self._sync)
            atomic_write_bytes(self.layout.root / INDEX_FILE, dumps(new_index),
                               sync=self._sync)
        self._done = True
        log.debug("committed %s to %s", self._top.digest, self.layout.root)

    def abort(self) -> None:
        """Remove what this session added (see module docstring)."""
        if self._done:
            return
        self._done = True
        if not self._new_blobs and not self._created_root:
            return
        if not self.layout.root.exists():
            return
        with self.layout.locked():
            referenced = self.layout.referenced_digests() if self.layout.has_index() else set()
            for path, ident in self._new_blobs.items():
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) != ident:
                    continue
                if Digest(path.parent.name, path.name) in referenced:
                    continue
                path.unlink()
            if self._created_root and not self.layout.has_index():
                _remove_empty_layout(self.layout.root)


def _remove_stale_index_temps(root: Path) -> None:
    """Temp files of index.json are only written under the layout lock, which the caller
    holds: any left over belongs to a dead process."""
    for name in os.listdir(root):
        if name.startswith((f".{INDEX_FILE}.", f".{LAYOUT_FILE}.")) and name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / name)


def _remove_empty_layout(root: Path) -> None:
    """Remove a layout directory this session created, if nothing but empty blob
    directories is left in it."""
    for dirpath, _dirnames, filenames in os.walk(root):
        if filenames:
            log.debug("leaving %s: %s holds files", root, dirpath)
            return
    try:
        shutil.rmtree(root)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


class LayoutDestination:
    """The destination half shared by ``oci:`` and ``oci-archive:``: an image written
    through a :class:`LayoutWriter`. Like skopeo, uncompressed layers are gzipped on the
    way in unless ``accept_uncompressed`` (``--dest-oci-accept-uncompressed-layers``)."""

    def __init__(self, ref: Any, writer: LayoutWriter, *, accept_uncompressed: bool) -> None:
        self._ref = ref
        self._writer = writer
        self._capabilities = DestinationCapabilities(
            supported_manifest_types=(MediaType.OCI_MANIFEST, MediaType.OCI_INDEX),
            desired_layer_compression=(LayerCompression.PRESERVE if accept_uncompressed
                                       else LayerCompression.COMPRESS),
            accepts_foreign_layer_urls=True,
            thread_safe_put_blob=True,
        )

    @property
    def reference(self) -> Any:
        return self._ref

    @property
    def capabilities(self) -> DestinationCapabilities:
        return self._capabilities

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        return self._writer.has_blob(info)

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        return self._writer.put_blob(stream, info)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None
                     ) -> None:
        self._writer.put_manifest(raw, media_type, instance)

    def commit(self) -> None:
        self._writer.commit()

    def close(self) -> None:
        self._writer.abort()

    def __enter__(self) -> LayoutDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
