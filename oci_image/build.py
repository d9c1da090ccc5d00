"""Build images from files, directories or layer tarballs, with no daemon and no
Dockerfile: the small buildah-like core that ``make demo`` and the test kit use.

    >>> b = ImageBuilder(platform=Platform("linux", "amd64"))
    >>> b.add_layer_from_files({"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\\n"})
    >>> b.config(cmd=["/bin/sh"], env=["PATH=/bin"], user="root")
    >>> image = b.build()
    >>> copy_image(image.reference, "oci:/tmp/layout:demo")

Images are built in memory (blobs are bytes), which suits small and medium images; big
layers can be given as files with :meth:`ImageBuilder.add_layer_file`.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ._blobio import CompressingReader
from .errors import BlobNotFoundError, ManifestNotFoundError
from .interfaces import BlobStream, ImageDestination, OpenOptions
from .spec import (
    Compression,
    ContainerConfig,
    Descriptor,
    Digest,
    HistoryEntry,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    Reference,
    RootFS,
    host_platform,
    layer_media_type,
    manifest_digest,
)

__all__ = ["BuiltImage", "FileEntry", "ImageBuilder", "build_index", "tar_from_files"]

#: 2000-01-01T00:00:00Z: a fixed default timestamp, so that builds are reproducible
DEFAULT_EPOCH = 946684800


@attrs.frozen
class FileEntry:
    """One entry of a layer built from a mapping (regular file unless told otherwise)."""

    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    #: ``file``, ``dir``, ``symlink``, ``hardlink``, ``char``, ``block``, ``fifo``
    kind: str = "file"
    linkname: str = ""
    xattrs: Mapping[str, str] = attrs.field(factory=dict)
    devmajor: int = 0
    devminor: int = 0


_KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
          "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
          "fifo": tarfile.FIFOTYPE}


def tar_from_files(files: Mapping[str, bytes | FileEntry], *, mtime: int = DEFAULT_EPOCH,
                   add_parents: bool = True) -> bytes:
    """A reproducible tar stream of ``files`` (path -> content or :class:`FileEntry`),
    sorted by name, parent directories added first."""
    entries: dict[str, FileEntry] = {}
    for name, value in files.items():
        clean = name.strip("/")
        entry = value if isinstance(value, FileEntry) else FileEntry(data=value)
        if add_parents:
            parts = clean.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                entries.setdefault("/".join(parts[:i]), FileEntry(kind="dir", mode=0o755))
        entries[clean] = entry
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            entry = entries[name]
            target = entries.get(entry.linkname.strip("/"))
            if entry.kind == "hardlink" and target is not None:
                # as tar writers do (GNU tar, Go's FileInfoHeader): a hardlink's header
                # carries its file's metadata, which extractors may apply to the inode
                entry = attrs.evolve(entry, mode=target.mode, uid=target.uid,
                                     gid=target.gid, xattrs=target.xattrs)
            info = tarfile.TarInfo(name + ("/" if entry.kind == "dir" else ""))
            info.type = _KINDS[entry.kind]
            info.mode = entry.mode
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            info.mtime = mtime
            info.linkname = entry.linkname
            info.devmajor, info.devminor = entry.devmajor, entry.devminor
            if entry.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in entry.xattrs.items()}
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def tar_from_directory(root: str | os.PathLike[str], *, mtime: int | None = DEFAULT_EPOCH,
                       numeric_owner: int | None = 0) -> bytes:
    """A tar stream of a directory tree (sorted; owner forced to ``numeric_owner`` unless
    None; mtimes forced to ``mtime`` unless None)."""
    root = Path(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted([*dirnames, *filenames]):
                path = Path(dirpath, name)
                arcname = str(path.relative_to(root))
                info = tar.gettarinfo(str(path), arcname)
                if mtime is not None:
                    info.mtime = mtime
                if numeric_owner is not None:
                    info.uid = info.gid = numeric_owner
                    info.uname = info.gname = ""
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def _compress(data: bytes, compression: Compression, level: int | None = None) -> bytes:
    if compression is Compression.NONE:
        return data
    reader = CompressingReader(io.BytesIO(data), compression, level)
    out = io.BytesIO()
    while chunk := reader.read(1 << 20):
        out.write(chunk)
    return out.getvalue()


def _rfc3339(epoch: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ImageBuilder:
    """Accumulates layers and config settings; :meth:`build` makes a :class:`BuiltImage`."""

    def __init__(self, *, platform: Platform | None = None, oci: bool = True,
                 created: int | None = DEFAULT_EPOCH, author: str = "") -> None:
        self.platform = platform or host_platform()
        self.oci = oci
        self.created = _rfc3339(created) if created is not None else None
        self.author = author
        self._layers: list[tuple[Descriptor, Digest]] = []
        self._blobs: dict[Digest, bytes | Path] = {}
        self._history: list[HistoryEntry] = []
        self._container = ContainerConfig()
        self._config_media_type: str | None = None
        self._config_raw: bytes | None = None
        self._artifact_type: str | None = None
        self._annotations: dict[str, str] = {}

    # layers -------------------------------------------------------------------------

    def add_layer(self, tar: bytes, *, compression: Compression = Compression.GZIP,
                  level: int | None = None, created_by: str = "", comment: str = "",
                  media_type: str | None = None, urls: Sequence[str] = (),
                  annotations: Mapping[str, str] | None = None) -> Descriptor:
        """Add a layer from an uncompressed tar stream (compressed here)."""
        blob = _compress(tar, compression, level)
        diff_id = Digest.from_bytes(tar)
        mt = media_type or layer_media_type(oci=self.oci, compression=compression,
                                            nondistributable=bool(urls))
        if mt is None:
            raise ValueError(f"{compression} layers cannot go into a Docker schema2 image")
        desc = Descriptor(mt, Digest.from_bytes(blob), len(blob), urls=tuple(urls),
                          annotations=annotations or {})
        self._blobs[desc.digest] = blob
        self._layers.append((desc, diff_id))
        self._history.append(HistoryEntry(created=self.created, created_by=created_by,
                                          comment=comment))
        return desc

    def add_layer_file(self, path: str | os.PathLike[str], *, media_type: str,
                       diff_id: Digest, created_by: str = "") -> Descriptor:
        """Add an already compressed layer file as it is (read when copied)."""
        p = Path(path)
        with open(p, "rb") as f:
            digest, size = Digest.from_stream(f)
        desc = Descriptor(media_type, digest, size)
        self._blobs[digest] = p
        self._layers.append((desc, diff_id))
        self._history.append(HistoryEntry(created=self.created, created_by=created_by))
        return desc

    def add_layer_from_files(self, files: Mapping[str, bytes | FileEntry], **kwargs: Any
                             ) -> Descriptor:
        return self.add_layer(tar_from_files(files), **kwargs)

    def add_layer_from_dir(self, root: str | os.PathLike[str], **kwargs: Any) -> Descriptor:
        return self.add_layer(tar_from_directory(root), **kwargs)

    def add_empty_history(self, created_by: str) -> None:
        """A history entry without a layer (like ``ENV`` in a Dockerfile)."""
        self._history.append(HistoryEntry(created=self.created, created_by=created_by,
                                          empty_layer=True))

    # config -------------------------------------------------------------------------

    def config(self, **changes: Any) -> None:
        """Set :class:`ContainerConfig` fields: ``cmd``, ``entrypoint``, ``env``,
        ``user``, ``working_dir``, ``labels``, ``exposed_ports``, ``volumes``,
        ``stop_signal`` ..."""
        for key in ("cmd", "entrypoint", "env", "exposed_ports", "volumes", "shell"):
            if key in changes and changes[key] is not None:
                changes[key] = tuple(changes[key])
        self._container = attrs.evolve(self._container, **changes)

    def artifact(self, *, artifact_type: str | None, config_media_type: str,
                 config: bytes) -> None:
        """Make this an OCI artifact with an opaque config blob."""
        self._artifact_type = artifact_type
        self._config_media_type = config_media_type
        self._config_raw = config

    def annotate(self, annotations: Mapping[str, str]) -> None:
        self._annotations.update(annotations)

    def build(self) -> BuiltImage:
        if self._config_raw is not None and self._config_media_type is not None:
            config_raw, config_type = self._config_raw, self._config_media_type
        else:
            p = self.platform
            config = ImageConfig(
                architecture=p.architecture, os=p.os, variant=p.variant,
                created=self.created, author=self.author, config=self._container,
                rootfs=RootFS(diff_ids=tuple(d for _, d in self._layers)),
                history=tuple(self._history))
            config_raw = config.to_json()
            config_type = MediaType.OCI_CONFIG if self.oci else MediaType.DOCKER_CONFIG
        config_desc = Descriptor(config_type, Digest.from_bytes(config_raw), len(config_raw))
        blobs = dict(self._blobs)
        blobs[config_desc.digest] = config_raw
        manifest = ImageManifest(
            media_type=MediaType.OCI_MANIFEST if self.oci else MediaType.DOCKER_MANIFEST,
            config=config_desc, layers=tuple(d for d, _ in self._layers),
            annotations=self._annotations if self.oci else {},
            artifact_type=self._artifact_type)
        raw = manifest.to_json()
        return BuiltImage(manifest=raw, media_type=manifest.media_type, blobs=blobs,
                          platform=self.platform)


@attrs.frozen
class BuiltImage:
    """An image (or index) held in memory, readable through :attr:`reference`."""

    manifest: bytes
    media_type: str
    blobs: Mapping[Digest, bytes | Path]
    platform: Platform | None = None
    #: per-instance manifests of an index: digest -> (raw, media type)
    instances: Mapping[Digest, tuple[bytes, str]] = attrs.field(factory=dict)

    @property
    def digest(self) -> Digest:
        return manifest_digest(self.manifest)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.manifest),
                          platform=self.platform)

    @property
    def reference(self) -> MemoryReference:
        return MemoryReference(self)

    def write_to(self, destination: str | Any, options: Any = None) -> Any:
        """``copy_image(self.reference, destination, options)``."""
        from .copy import copy_image

        return copy_image(self.reference, destination, options)


def build_index(images: Iterable[BuiltImage], *, oci: bool = True,
                annotations: Mapping[str, str] | None = None) -> BuiltImage:
    """An index (OCI) or manifest list (Docker) over built images."""
    images = list(images)
    blobs: dict[Digest, bytes | Path] = {}
    instances: dict[Digest, tuple[bytes, str]] = {}
    for image in images:
        blobs.update(image.blobs)
        instances[image.digest] = (image.manifest, image.media_type)
    index = ImageIndex(
        media_type=MediaType.OCI_INDEX if oci else MediaType.DOCKER_MANIFEST_LIST,
        manifests=tuple(i.descriptor for i in images),
        annotations=annotations or {})
    return BuiltImage(manifest=index.to_json(), media_type=index.media_type, blobs=blobs,
                      instances=instances)


@attrs.frozen
class _MemoryTransport:
    name: str = "memory"

    def parse_reference(self, reference: str) -> Any:
        raise ManifestNotFoundError("memory: images are only reachable from Python")


_MEMORY = _MemoryTransport()


@attrs.frozen
class MemoryReference:
    image: BuiltImage

    @property
    def transport(self) -> _MemoryTransport:
        return _MEMORY

    def string_within_transport(self) -> str:
        return str(self.image.digest)

    def docker_reference(self) -> Reference | None:
        return None

    def open_source(self, options: OpenOptions | None = None) -> MemorySource:
        return MemorySource(self)

    def open_destination(self, options: OpenOptions | None = None) -> ImageDestination:
        raise ManifestNotFoundError("memory: images are read-only")


class MemorySource:
    def __init__(self, ref: MemoryReference) -> None:
        self._ref = ref

    @property
    def reference(self) -> MemoryReference:
        return self._ref

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        image = self._ref.image
        if instance is None:
            return image.manifest, image.media_type
        try:
            return image.instances[instance]
        except KeyError:
            raise ManifestNotFoundError(f"memory: no instance {instance}") from None

    def get_blob(self, desc: Descriptor) -> BlobStream:
        blob = self._ref.image.blobs.get(desc.digest)
        if blob is None:
            raise BlobNotFoundError(f"memory: no blob {desc.digest}")
        if isinstance(blob, Path):
            return open(blob, "rb")
        return io.BytesIO(blob)

    def close(self) -> None:
        pass

    def __enter__(self) -> MemorySource:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
