"""Media types of the OCI image-spec and of Docker's registry formats, and predicates.

Constants are plain strings, so that JSON documents can be compared with them directly.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

__all__ = [
    "Compression",
    "MediaType",
    "compression_of",
    "is_docker_schema1",
    "is_index",
    "is_layer",
    "is_manifest",
    "is_single_manifest",
    "layer_media_type",
]


class MediaType:
    """Namespace of media type strings."""

    # OCI image-spec
    OCI_DESCRIPTOR: Final = "application/vnd.oci.descriptor.v1+json"
    OCI_LAYOUT_HEADER: Final = "application/vnd.oci.layout.header.v1+json"
    OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
    OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
    OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
    OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
    OCI_LAYER_NONDIST: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"
    OCI_LAYER_NONDIST_GZIP: Final = (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
    OCI_LAYER_NONDIST_ZSTD: Final = (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
    OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"

    # Docker registry formats
    DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
    DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"
    DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    DOCKER_FOREIGN_LAYER: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar"
    DOCKER_FOREIGN_LAYER_GZIP: Final = (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    DOCKER_PLUGIN_CONFIG: Final = "application/vnd.docker.plugin.v1+json"


class Compression(Enum):
    """How a layer blob is compressed."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    def __str__(self) -> str:
        return self.value


_INDEX_TYPES: Final = frozenset({MediaType.OCI_INDEX, MediaType.DOCKER_MANIFEST_LIST})
_SINGLE_TYPES: Final = frozenset({
    MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST,
    MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED,
})

_LAYER_COMPRESSION: Final = {
    MediaType.OCI_LAYER: Compression.NONE,
    MediaType.OCI_LAYER_GZIP: Compression.GZIP,
    MediaType.OCI_LAYER_ZSTD: Compression.ZSTD,
    MediaType.OCI_LAYER_NONDIST: Compression.NONE,
    MediaType.OCI_LAYER_NONDIST_GZIP: Compression.GZIP,
    MediaType.OCI_LAYER_NONDIST_ZSTD: Compression.ZSTD,
    MediaType.DOCKER_LAYER: Compression.NONE,
    MediaType.DOCKER_LAYER_GZIP: Compression.GZIP,
    MediaType.DOCKER_FOREIGN_LAYER: Compression.NONE,
    MediaType.DOCKER_FOREIGN_LAYER_GZIP: Compression.GZIP,
}

_NONDISTRIBUTABLE: Final = frozenset({
    MediaType.OCI_LAYER_NONDIST, MediaType.OCI_LAYER_NONDIST_GZIP,
    MediaType.OCI_LAYER_NONDIST_ZSTD, MediaType.DOCKER_FOREIGN_LAYER,
    MediaType.DOCKER_FOREIGN_LAYER_GZIP,
})

# (oci?, nondistributable?, compression) -> media type
_LAYER_TYPES: Final = {
    (True, False, Compression.NONE): MediaType.OCI_LAYER,
    (True, False, Compression.GZIP): MediaType.OCI_LAYER_GZIP,
    (True, False, Compression.ZSTD): MediaType.OCI_LAYER_ZSTD,
    (True, True, Compression.NONE): MediaType.OCI_LAYER_NONDIST,
    (True, True, Compression.GZIP): MediaType.OCI_LAYER_NONDIST_GZIP,
    (True, True, Compression.ZSTD): MediaType.OCI_LAYER_NONDIST_ZSTD,
    (False, False, Compression.NONE): MediaType.DOCKER_LAYER,
    (False, False, Compression.GZIP): MediaType.DOCKER_LAYER_GZIP,
    (False, True, Compression.NONE): MediaType.DOCKER_FOREIGN_LAYER,
    (False, True, Compression.GZIP): MediaType.DOCKER_FOREIGN_LAYER_GZIP,
}


def is_index(media_type: str) -> bool:
    """An OCI index or a Docker manifest list."""
    return media_type in _INDEX_TYPES


def is_single_manifest(media_type: str) -> bool:
    """An image manifest of any supported format (OCI, schema2, schema1)."""
    return media_type in _SINGLE_TYPES


def is_manifest(media_type: str) -> bool:
    """Any manifest or index media type."""
    return media_type in _INDEX_TYPES or media_type in _SINGLE_TYPES


def is_docker_schema1(media_type: str) -> bool:
    return media_type in (MediaType.DOCKER_SCHEMA1, MediaType.DOCKER_SCHEMA1_SIGNED)


def is_layer(media_type: str) -> bool:
    """A known layer media type (OCI or Docker)."""
    return media_type in _LAYER_COMPRESSION


def is_nondistributable(media_type: str) -> bool:
    return media_type in _NONDISTRIBUTABLE


def compression_of(media_type: str) -> Compression | None:
    """The compression a known layer media type declares; ``None`` for unknown types."""
    if media_type in _LAYER_COMPRESSION:
        return _LAYER_COMPRESSION[media_type]
    if media_type.endswith("+gzip") or media_type.endswith(".gzip"):
        return Compression.GZIP
    if media_type.endswith("+zstd"):
        return Compression.ZSTD
    return None


def layer_media_type(*, oci: bool, compression: Compression,
                     nondistributable: bool = False) -> str | None:
    """The layer media type for a format and a compression; ``None`` if the format has none
    (Docker schema2 cannot express zstd)."""
    return _LAYER_TYPES.get((oci, nondistributable, compression))
