"""Options, results and progress events of a copy."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import attrs

from ..interfaces import OpenOptions
from ..spec import Compression, Descriptor, Digest, MediaType, Platform

__all__ = [
    "CopyOptions",
    "CopyResult",
    "ManifestFormat",
    "MultiArch",
    "ProgressCallback",
    "ProgressEvent",
    "ProgressKind",
]


class MultiArch(Enum):
    """What to copy from a manifest list / index (skopeo ``--multi-arch``)."""

    #: the one image that fits the wanted platform (the default)
    SYSTEM = "system"
    #: every image and the index (skopeo ``--all``)
    ALL = "all"
    #: only the index itself (a sparse copy, most registries refuse it)
    INDEX_ONLY = "index-only"


class ManifestFormat(Enum):
    """A forced manifest format (skopeo ``--format``)."""

    OCI = "oci"
    V2S2 = "v2s2"

    @property
    def manifest_type(self) -> str:
        return MediaType.OCI_MANIFEST if self is ManifestFormat.OCI else MediaType.DOCKER_MANIFEST

    @property
    def index_type(self) -> str:
        return MediaType.OCI_INDEX if self is ManifestFormat.OCI \
            else MediaType.DOCKER_MANIFEST_LIST


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, not {value}")


@attrs.frozen
class CopyOptions:
    """How to copy (each field matches a skopeo ``copy`` flag, named in its comment)."""

    #: ``--multi-arch`` / ``--all``
    multi_arch: MultiArch = MultiArch.SYSTEM
    #: the platform to pick from an index (``--override-os/-arch/-variant``); host if None
    platform: Platform | None = None
    #: ``--format``
    manifest_format: ManifestFormat | None = None
    #: ``--dest-compress``: compress layers even for destinations that keep them as is
    compress: bool = False
    #: ``--dest-decompress``
    decompress: bool = False
    #: ``--dest-compress-format``
    compression_format: Compression | None = None
    #: ``--dest-compress-level``
    compression_level: int | None = None
    #: ``--preserve-digests``: fail rather than change any digest
    preserve_digests: bool = False
    #: ``--remove-signatures``
    remove_signatures: bool = False
    #: ``--image-parallel-copies``: blobs copied at once (6, as containers/image)
    jobs: int = attrs.field(default=6, validator=_positive)
    #: check each layer's uncompressed digest against the config's diff_ids (costs a
    #: decompression of layers that are otherwise copied as they are)
    verify_diff_ids: bool = True
    #: times a blob is copied again, from the start, after a transient failure
    #: (:func:`~oci_image.errors.is_transient`: a connection reset during an upload,
    #: a 5xx/429 that outlived the request's own retries)
    blob_retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    #: options for opening the source
    source_options: OpenOptions | None = None
    #: options for opening the destination
    dest_options: OpenOptions | None = None

    def __attrs_post_init__(self) -> None:
        if self.compress and self.decompress:
            raise ValueError("cannot compress and decompress at the same time")
        if self.compression_format is Compression.NONE:
            raise ValueError("compression_format must be gzip or zstd")


class ProgressKind(Enum):
    STARTED = "started"
    PROGRESS = "progress"
    DONE = "done"
    SKIPPED = "skipped"
    MANIFEST = "manifest"


@attrs.frozen
class ProgressEvent:
    """One progress report. ``offset`` counts bytes read from the source so far."""

    kind: ProgressKind
    descriptor: Descriptor
    offset: int = 0
    #: the destination descriptor, on DONE and SKIPPED
    result: Descriptor | None = None


#: called from worker threads: implementations must be thread-safe and quick
ProgressCallback = Callable[[ProgressEvent], None]


@attrs.frozen
class CopyResult:
    """What a copy wrote."""

    #: digest of the top-level manifest written (an index with ``--all``)
    manifest_digest: Digest
    media_type: str
    manifest: bytes = attrs.field(repr=False)
    #: digests of per-platform manifests written under an index
    instances: tuple[Digest, ...] = ()
    blobs_copied: int = 0
    blobs_skipped: int = 0
