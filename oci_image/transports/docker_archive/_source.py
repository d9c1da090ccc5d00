from __future__ import annotations

import io
import logging
import threading
from typing import TYPE_CHECKING, cast

import attrs

from ..._blobio import CHUNK, DecompressingReader, PeekReader, detect_compression
from ...errors import (
    ArchiveError,
    BlobNotFoundError,
    ManifestNotFoundError,
    SpecError,
    UnsafePathError,
)
from ...interfaces import BlobStream
from ...spec import (
    DEFAULT_SIZE_LIMIT,
    Descriptor,
    Digest,
    ImageConfig,
    ImageManifest,
    MediaType,
    Reference,
)
from .._tar import TarIndex
from ._format import ManifestItem, parse_archive_manifest

if TYPE_CHECKING:
    from ._transport import DockerArchiveReference

log = logging.getLogger("oci_image.transports.docker_archive")


def read_archive_manifest(path: str, tmp_dir: str | None) -> tuple[list[ManifestItem], TarIndex]:
    index = TarIndex.open(path, tmp_dir=tmp_dir)
    try:
        raw = index.read_member("manifest.json", DEFAULT_SIZE_LIMIT)
    except BlobNotFoundError:
        index.close()
        raise ArchiveError(f"{path}: not a docker-archive (no manifest.json)") from None
    except BaseException:
        index.close()
        raise
    try:
        return parse_archive_manifest(raw, path), index
    except BaseException:
        index.close()
        raise


def choose_item(items: list[ManifestItem], ref: DockerArchiveReference) -> ManifestItem:
    """containers/image ``ChooseManifestItem``."""
    if ref.named is not None:
        wanted = str(ref.named)
        for i, item in enumerate(items):
            for tag in item.repo_tags:
                try:
                    parsed = Reference.parse(tag)
                except SpecError as exc:
                    raise ArchiveError(f"{ref}: invalid tag {tag!r} in manifest.json item "
                                       f"@{i}: {exc}") from exc
                if str(parsed) == wanted:
                    return item
        raise ManifestNotFoundError(f"{ref}: tag {wanted} not found in the archive")
    if ref.source_index >= 0:
        if ref.source_index >= len(items):
            raise ManifestNotFoundError(
                f"{ref}: invalid source index @{ref.source_index}, only {len(items)} "
                "images in the archive")
        return items[ref.source_index]
    if len(items) != 1:
        choices = [f"@{i} ({', '.join(item.repo_tags) or 'untagged'})"
                   for i, item in enumerate(items)]
        raise ManifestNotFoundError(
            f"{ref}: the archive holds {len(items)} images; choose one as PATH:NAME:TAG or "
            f"PATH:@INDEX: {'; '.join(choices)}")
    return items[0]


@attrs.frozen
class _Layer:
    path: str
    size: int  # uncompressed


class DockerArchiveSource:
    """One image of a docker-save archive, presented as a Docker schema2 image whose
    layers are the *uncompressed* tar streams (digest = diff_id), exactly as
    containers/image presents it, so manifest digests agree with skopeo's."""

    def __init__(self, ref: DockerArchiveReference, *, tmp_dir: str | None = None) -> None:
        self._ref = ref
        items, self._index = read_archive_manifest(ref.path, tmp_dir)
        try:
            self._item = choose_item(items, ref)
            self._config_raw = self._index.read_member(self._item.config, DEFAULT_SIZE_LIMIT)
            self._config_digest = Digest.from_bytes(self._config_raw)
            try:
                config = ImageConfig.from_json(self._config_raw)
            except SpecError as exc:
                raise ArchiveError(f"{ref}: config {self._item.config}: {exc}") from exc
            self._diff_ids = config.rootfs.diff_ids
            self._layers = self._prepare_layers()
            self._manifest = self._build_manifest()
        except BaseException:
            self._index.close()
            raise
        self._lock = threading.Lock()

    def _prepare_layers(self) -> dict[Digest, _Layer]:
        item = self._item
        if len(item.layers) != len(self._diff_ids):
            raise ArchiveError(
                f"{self._ref}: inconsistent layer count: {len(item.layers)} in manifest.json, "
                f"{len(self._diff_ids)} in the config")
        layers: dict[Digest, _Layer] = {}
        paths: set[str] = set()
        for diff_id, path in zip(self._diff_ids, item.layers, strict=True):
            if diff_id in layers:
                continue
            if path in paths:
                raise ArchiveError(f"{self._ref}: layer {path} used for two different diff_ids")
            paths.add(path)
            layers[diff_id] = _Layer(path, self._uncompressed_size(path))
        return layers

    def _uncompressed_size(self, path: str) -> int:
        try:
            section = self._index.open_member(path)
        except UnsafePathError:
            raise
        except BlobNotFoundError:
            raise ArchiveError(f"{self._ref}: layer {path} is missing from the archive") from None
        head = section.read(6)
        kind = detect_compression(head)
        if kind == "none":
            return section.size
        # A compressed layer: its uncompressed size is only known by reading it through.
        reader = DecompressingReader(PeekReader(self._index.open_member(path)), kind)
        total = 0
        while chunk := reader.read(CHUNK):
            total += len(chunk)
        return total

    def _build_manifest(self) -> bytes:
        layers = tuple(
            Descriptor(MediaType.DOCKER_LAYER_GZIP, d, self._layers[d].size)
            for d in self._diff_ids)
        config = Descriptor(MediaType.DOCKER_CONFIG, self._config_digest, len(self._config_raw))
        return ImageManifest(MediaType.DOCKER_MANIFEST, config, layers).to_json()

    @property
    def reference(self) -> DockerArchiveReference:
        return self._ref

    @property
    def repo_tags(self) -> tuple[str, ...]:
        return self._item.repo_tags

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        if instance is not None:
            raise ManifestNotFoundError(f"{self._ref}: docker archives hold no manifest lists")
        return self._manifest, MediaType.DOCKER_MANIFEST

    def get_blob(self, desc: Descriptor) -> BlobStream:
        if desc.digest == self._config_digest:
            return io.BytesIO(self._config_raw)
        layer = self._layers.get(desc.digest)
        if layer is None:
            raise BlobNotFoundError(f"{self._ref}: unknown blob {desc.digest}")
        section = PeekReader(self._index.open_member(layer.path))
        kind = detect_compression(section.peek(6))
        return cast(BlobStream, DecompressingReader(section, kind))

    def close(self) -> None:
        self._index.close()

    def __enter__(self) -> DockerArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
