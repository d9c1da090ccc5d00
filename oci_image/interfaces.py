"""The four roles every transport plays (after containers/image's ``types``):

* :class:`ImageTransport` -- a name (``oci``, ``dir`` ...) and a reference parser;
* :class:`ImageReference` -- one parsed ``transport:details`` string; opens sources and
  destinations, and can delete;
* :class:`ImageSource` -- reads manifests and blobs (unverified: callers verify);
* :class:`ImageDestination` -- stores blobs (verifying as it reads), manifests, and
  commits atomically. Its :class:`DestinationCapabilities` are data the copy engine reads.

The base protocols are small on purpose. Optional features are separate
``runtime_checkable`` protocols (:class:`SupportsSignatures`,
:class:`AcceptsSignatures`, :class:`SupportsDelete`, :class:`SupportsListTags`)
probed with ``isinstance``, so that adding one never breaks a third-party transport.

Contracts that every implementation keeps:

* ``ImageSource.get_blob`` may be called from several threads at once.
* ``ImageDestination.put_blob`` reads its stream to EOF before it makes the blob visible,
  through a :class:`~oci_image.spec.VerifyingReader` (it wraps the stream in one when it
  is not one already), and on any error removes everything it wrote for that blob.
* Nothing a destination writes is visible under the target name before ``commit()``;
  ``close()`` without ``commit()`` removes what the session added.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol, runtime_checkable

import attrs

from .spec import Descriptor, Digest, Readable, Reference
from .sysconfig.auth import Credentials

__all__ = [
    "AcceptsSignatures",
    "BlobInfo",
    "BlobStream",
    "DestinationCapabilities",
    "ImageDestination",
    "ImageReference",
    "ImageSource",
    "ImageTransport",
    "LayerCompression",
    "OpenOptions",
    "RegistryOptions",
    "SupportsDelete",
    "SupportsListTags",
    "SupportsSignatures",
]


class BlobStream(Readable, Protocol):
    """A readable binary stream that must be closed."""

    def close(self) -> None: ...


class LayerCompression(Enum):
    """What a destination wants done to layers (containers/image
    ``DesiredLayerCompression``)."""

    PRESERVE = "preserve"
    #: compress uncompressed layers (gzip unless told otherwise); keep compressed ones
    COMPRESS = "compress"
    #: store layers uncompressed
    DECOMPRESS = "decompress"


@attrs.frozen
class DestinationCapabilities:
    """What a destination can store, as data the copy engine plans with."""

    #: manifest media types it stores, most preferred first; ``None`` means any
    supported_manifest_types: tuple[str, ...] | None = None
    desired_layer_compression: LayerCompression = LayerCompression.PRESERVE
    #: whether non-distributable layers (with ``urls``) may be left out
    accepts_foreign_layer_urls: bool = False
    #: whether ``put_blob`` may be called from several threads at once
    thread_safe_put_blob: bool = True
    #: whether it keeps signatures (see :class:`AcceptsSignatures`)
    supports_signatures: bool = False

    def accepts(self, media_type: str) -> bool:
        types = self.supported_manifest_types
        return types is None or media_type in types


@attrs.frozen
class BlobInfo:
    """What is known of a blob about to be written.

    ``digest`` and ``size`` are ``None`` when the copy changed the blob (recompression)
    and they are only known at the end of the stream.
    """

    media_type: str
    digest: Digest | None = None
    size: int | None = None
    is_config: bool = False

    @classmethod
    def from_descriptor(cls, desc: Descriptor, *, is_config: bool = False) -> BlobInfo:
        return cls(media_type=desc.media_type, digest=desc.digest, size=desc.size,
                   is_config=is_config)


@attrs.frozen
class RegistryOptions:
    """How to reach registries (``docker://``): one side of a copy, as skopeo's
    ``--src-*``/``--dest-*`` flags set it (containers/image's ``SystemContext``)."""

    #: auth file to read and write instead of the default chain (``--authfile``)
    auth_file: str | None = None
    #: explicit credentials (``--creds``, ``--username``/``--password``)
    credentials: Credentials | None = None
    #: never send credentials (``--no-creds``)
    no_credentials: bool = False
    #: a bearer token to send as is (``--registry-token``)
    registry_token: str | None = attrs.field(default=None, repr=False)
    #: a directory of ``*.crt``/``*.cert``/``*.key`` used for every registry instead of
    #: the per-host ``certs.d`` directories (``--cert-dir``)
    cert_dir: str | None = None
    #: roots of per-host ``<host[:port]>/`` certificate directories; ``None`` means
    #: ``/etc/containers/certs.d``, ``/etc/docker/certs.d`` (and the user's)
    certs_d_dirs: tuple[str, ...] | None = None
    #: ``False`` allows plain HTTP and unverified TLS; ``None`` asks registries.conf
    tls_verify: bool | None = None
    #: registries.conf to read instead of the default one (``--registries-conf``)
    registries_conf: str | None = None
    #: drop-in directory to read instead of the system and user ``registries.conf.d``
    registries_conf_dir: str | None = None
    #: retries for each request after the first try (``--retry-times``)
    retry_times: int = 3
    #: fixed delay between retries in seconds; ``None`` is exponential backoff from
    #: ``retry_base_delay`` with jitter (``--retry-delay``)
    retry_delay: float | None = None
    retry_base_delay: float = 1.0
    #: longest wait honoured, for backoff and for ``Retry-After``
    retry_max_delay: float = 60.0
    #: connect timeout of one request, seconds
    timeout: float = 60.0
    #: longest wait for the next bytes of an answer (``None``: none); long enough for
    #: a registry verifying a multi-GB upload before it answers the final PUT
    read_timeout: float | None = 600.0
    #: upload in PATCH requests of this many bytes (raised to the registry's
    #: ``OCI-Chunk-Min-Length``), for registries or proxies that limit request sizes;
    #: 0 (the default) sends each blob in one streamed request, as skopeo does
    upload_chunk_size: int = 0
    #: directory keeping partly downloaded blobs between runs; ``None``:
    #: ``$XDG_CACHE_HOME/ocistack/partial-blobs``; ``""`` disables
    partial_blob_dir: str | None = None
    #: only blobs at least this large go through the partial-blob cache (writing the
    #: copy costs about a tenth of a pull; smaller blobs are cheaper to fetch again)
    partial_blob_min_size: int = 64 << 20
    user_agent: str | None = None


@attrs.frozen
class OpenOptions:
    """Settings for opening a source or destination, grouped by concern.

    Transports ignore what does not concern them. Later transports add their own
    small option groups here rather than flat fields.
    """

    #: where big temporary files go (``--tmpdir``); ``None``: next to the target, or $TMPDIR
    tmp_dir: str | None = None
    #: ``oci:`` keeps blobs in this directory instead of ``<layout>/blobs``
    #: (skopeo ``--src/dest-shared-blob-dir``)
    shared_blob_dir: str | None = None
    #: ``oci:`` destinations store uncompressed layers as they are instead of gzipping
    #: them (skopeo ``--dest-oci-accept-uncompressed-layers``)
    accept_uncompressed_layers: bool = False
    #: extra ``name:tag`` entries for ``docker-archive:`` destinations
    #: (skopeo ``--additional-tag``)
    additional_tags: tuple[Reference, ...] = ()
    #: registry access for ``docker://``
    registry: RegistryOptions = RegistryOptions()


@runtime_checkable
class ImageTransport(Protocol):
    @property
    def name(self) -> str: ...

    def parse_reference(self, reference: str) -> ImageReference:
        """Parse what follows ``name:``; raise :class:`InvalidReferenceError`."""
        ...


@runtime_checkable
class ImageReference(Protocol):
    @property
    def transport(self) -> ImageTransport: ...

    def string_within_transport(self) -> str:
        """The part after ``name:``; ``parse_reference`` of it gives an equal reference."""
        ...

    def docker_reference(self) -> Reference | None:
        """The named reference this one carries, if any (``docker-archive:x:busybox:1``)."""
        ...

    def open_source(self, options: OpenOptions | None = None) -> ImageSource: ...

    def open_destination(self, options: OpenOptions | None = None) -> ImageDestination: ...


@runtime_checkable
class ImageSource(Protocol):
    @property
    def reference(self) -> ImageReference: ...

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        """Raw bytes and media type of the top-level manifest, or of ``instance`` (a
        digest listed in the top-level index). Not verified: the caller verifies."""
        ...

    def get_blob(self, desc: Descriptor) -> BlobStream:
        """A stream of the blob. Not verified: the caller verifies (digest and size)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> ImageSource: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class ImageDestination(Protocol):
    @property
    def reference(self) -> ImageReference: ...

    @property
    def capabilities(self) -> DestinationCapabilities: ...

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        """The stored descriptor if this blob is already present (so it need not be
        sent), else ``None``."""
        ...

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        """Store a blob, verifying it while reading (see module docstring); return what
        was stored (digest and size filled in)."""
        ...

    def put_manifest(self, raw: bytes, media_type: str,
                     instance: Digest | None = None) -> None:
        """Store a manifest. ``instance`` is set for the per-platform manifests of an
        index; the top-level one comes last with ``instance=None``. Raises
        :class:`~oci_image.errors.ManifestTypeRejectedError` for a type it cannot keep."""
        ...

    def commit(self) -> None:
        """Make everything written visible, atomically where the format allows."""
        ...

    def close(self) -> None:
        """Release resources; without a prior ``commit()``, remove what was added."""
        ...

    def __enter__(self) -> ImageDestination: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class SupportsSignatures(Protocol):
    """A source that can hold signatures (``dir:``)."""

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]: ...


@runtime_checkable
class AcceptsSignatures(Protocol):
    """A destination that stores signatures."""

    def put_signatures(self, signatures: list[bytes], instance: Digest | None = None
                       ) -> None: ...


@runtime_checkable
class SupportsDelete(Protocol):
    """A reference whose image can be deleted (``oci:``)."""

    def delete(self, options: OpenOptions | None = None) -> None: ...


@runtime_checkable
class SupportsListTags(Protocol):
    """A reference to a place that holds several named images (``oci:``,
    ``docker-archive:``)."""

    def list_tags(self, options: OpenOptions | None = None) -> list[str]: ...
