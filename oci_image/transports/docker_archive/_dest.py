from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..._blobio import atomic_file
from ...errors import ManifestTypeRejectedError, SpecError
from ...interfaces import BlobInfo, DestinationCapabilities, LayerCompression
from ...spec import Descriptor, Digest, ImageManifest, MediaType, Readable, Reference
from ...spec._json import dumps, go_compact, top_level_members
from .._common import stage_blob
from .._tar import TarWriter
from ._format import ManifestItem, dump_archive_manifest

if TYPE_CHECKING:
    from ._transport import DockerArchiveReference

log = logging.getLogger("oci_image.transports.docker_archive")


class DockerArchiveWriter:
    """Collects one or more images and writes them as one docker-save archive.

    Blobs are staged in a temporary directory (next to the archive, or ``tmp_dir``);
    :meth:`close` writes the tarball to a temporary file and renames it over ``path``,
    so the archive appears whole or not at all. Use several destinations on one writer
    to put several images in one archive::

        with DockerArchiveWriter("images.tar") as w:
            copy_image("oci:a:1", w.reference("example.com/a:1"))
            copy_image("oci:b:1", w.reference("example.com/b:1"))
    """

    def __init__(self, path: str | os.PathLike[str], *, tmp_dir: str | None = None) -> None:
        self.path = Path(path)
        parent = tmp_dir or str(self.path.parent if str(self.path.parent) else ".")
        self._staging = Path(tempfile.mkdtemp(dir=parent, prefix=".docker-archive-"))
        self._lock = threading.Lock()
        self._blobs: dict[Digest, Path] = {}
        self._items: list[ManifestItem] = []
        self._repositories: dict[str, dict[str, str]] = {}
        self._legacy: dict[str, tuple[Digest, bytes]] = {}
        self._closed = False

    def reference(self, name: str | None = None) -> DockerArchiveReference:
        """A destination reference writing into this archive (``name:tag`` optional)."""
        from ._transport import DockerArchiveReference

        named = Reference.parse_named_tagged(name) if name else None
        return DockerArchiveReference(str(self.path), named=named, writer=self)

    # blobs ---------------------------------------------------------------------------

    def has_blob(self, digest: Digest) -> int | None:
        with self._lock:
            path = self._blobs.get(digest)
        return path.stat().st_size if path is not None else None

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        with stage_blob(self._staging, stream, info, sync=False) as staged:
            final = self._staging / f"{staged.digest.algorithm}-{staged.digest.hex}"
            os.replace(staged.path, final)
        with self._lock:
            self._blobs[staged.digest] = final
        return Descriptor(info.media_type, staged.digest, staged.size)

    # images --------------------------------------------------------------------------

    def add_image(self, manifest: ImageManifest, tags: list[Reference]) -> None:
        """Record an image whose blobs were put (containers/image ``ensureManifestItem``
        and legacy metadata)."""
        with self._lock:
            config_path = self._blobs.get(manifest.config.digest)
            if config_path is None:
                raise ManifestTypeRejectedError("the image config was not written first")
            config_name = f"{manifest.config.digest.hex}.json"
            layer_names = [f"{layer.digest.hex}.tar" for layer in manifest.layers]
            for layer in manifest.layers:
                if layer.digest not in self._blobs:
                    raise ManifestTypeRejectedError(f"layer {layer.digest} was not written")
            repo_tags = [f"{t.name}:{t.tag}" for t in tags]
            for item_index, item in enumerate(self._items):
                if item.config == config_name:
                    merged = list(item.repo_tags) + [t for t in repo_tags
                                                     if t not in item.repo_tags]
                    self._items[item_index] = ManifestItem(config_name, tuple(merged),
                                                           tuple(layer_names))
                    break
            else:
                self._items.append(ManifestItem(config_name, tuple(repo_tags),
                                                tuple(layer_names)))
            last_id = self._add_legacy_layers(manifest, config_path.read_bytes())
            for t in tags:
                if last_id:
                    self._repositories.setdefault(t.name, {})[t.tag or "latest"] = last_id

    def _add_legacy_layers(self, manifest: ImageManifest, config_raw: bytes) -> str:
        """The pre-1.10 ``<id>/{VERSION,json,layer.tar}`` entries docker load still reads
        (ids computed as containers/image computes them)."""
        try:
            config_members = dict(top_level_members(config_raw.decode("utf-8")))
        except (SpecError, UnicodeDecodeError):
            config_members = {}
        chain: Digest | None = None
        last_id = ""
        for i, layer in enumerate(manifest.layers):
            members: dict[str, str] = {}
            if last_id:
                members["parent"] = json.dumps(last_id)
            if i == len(manifest.layers) - 1:
                for key in ("architecture", "config", "container", "container_config",
                            "created", "docker_version", "os"):
                    members[key] = go_compact(config_members[key]) if key in config_members \
                        else "null"
            chain = layer.digest if chain is None else Digest.from_bytes(
                f"{chain} {layer.digest}".encode())
            members["layer_id"] = json.dumps(str(chain))
            layer_id = hashlib.sha256(_go_map(members)).hexdigest()
            del members["layer_id"]
            members["id"] = json.dumps(layer_id)
            self._legacy.setdefault(layer_id, (layer.digest, _go_map(members)))
            last_id = layer_id
        return last_id

    def close(self) -> None:
        """Write the archive (atomically) and remove the staging directory."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._items:
                self._write()
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)

    def abort(self) -> None:
        self._closed = True
        shutil.rmtree(self._staging, ignore_errors=True)

    def _write(self) -> None:
        with atomic_file(self.path) as f:
            tar = TarWriter(f)
            written: set[str] = set()
            for item in self._items:
                for name in (item.config, *item.layers):
                    if name in written:
                        continue
                    written.add(name)
                    digest = Digest("sha256", name.rsplit(".", 1)[0])
                    tar.add_file(name, self._blobs[digest])
            for layer_id, (digest, config) in self._legacy.items():
                tar.add_dir(layer_id)
                tar.add_symlink(f"{layer_id}/layer.tar", f"../{digest.hex}.tar")
                tar.add_bytes(f"{layer_id}/VERSION", b"1.0")
                tar.add_bytes(f"{layer_id}/json", config)
            tar.add_bytes("manifest.json", dump_archive_manifest(self._items))
            tar.add_bytes("repositories", dumps(self._repositories))
            tar.close()

    def __enter__(self) -> DockerArchiveWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _go_map(members: dict[str, str]) -> bytes:
    """Go's encoding of a ``map[string]json.RawMessage``: keys sorted."""
    body = ",".join(f"{json.dumps(k)}:{members[k]}" for k in sorted(members))
    return ("{" + body + "}").encode("utf-8")


class DockerArchiveDestination:
    """Writes one image into a :class:`DockerArchiveWriter` (its own, or a shared one)."""

    def __init__(self, ref: DockerArchiveReference, writer: DockerArchiveWriter,
                 tags: list[Reference], *, owns_writer: bool) -> None:
        self._ref = ref
        self._writer = writer
        self._tags = tags
        self._owns = owns_writer
        self._manifest: ImageManifest | None = None
        self._done = False
        self._capabilities = DestinationCapabilities(
            supported_manifest_types=(MediaType.DOCKER_MANIFEST,),
            desired_layer_compression=LayerCompression.DECOMPRESS,
            accepts_foreign_layer_urls=False,
            thread_safe_put_blob=True,
        )

    @property
    def reference(self) -> DockerArchiveReference:
        return self._ref

    @property
    def capabilities(self) -> DestinationCapabilities:
        return self._capabilities

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        if info.digest is None:
            return None
        size = self._writer.has_blob(info.digest)
        if size is None or (info.size is not None and size != info.size):
            return None
        return Descriptor(info.media_type, info.digest, size)

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        return self._writer.put_blob(stream, info)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None
                     ) -> None:
        if media_type != MediaType.DOCKER_MANIFEST or instance is not None:
            raise ManifestTypeRejectedError(
                f"{self._ref}: a docker archive stores Docker schema2 images only, "
                f"not {media_type}")
        self._manifest = ImageManifest.from_json(raw, media_type)

    def commit(self) -> None:
        if self._manifest is None:
            raise RuntimeError("commit() before the manifest was written")
        self._writer.add_image(self._manifest, self._tags)
        if self._owns:
            self._writer.close()
        self._done = True

    def close(self) -> None:
        if not self._done and self._owns:
            self._writer.abort()
        self._done = True

    def __enter__(self) -> DockerArchiveDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
