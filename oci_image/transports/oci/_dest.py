from __future__ import annotations

from typing import TYPE_CHECKING

from ...interfaces import BlobInfo, DestinationCapabilities, LayerCompression
from ...spec import Descriptor, Digest, MediaType, Readable
from .._layout import DirectoryLayout, LayoutWriter

if TYPE_CHECKING:
    from ._transport import OCIReference


class OCIDestination:
    """Writes one image (or index) into an OCI layout directory.

    Like skopeo, uncompressed layers are gzipped on the way in unless
    ``accept_uncompressed`` (``--dest-oci-accept-uncompressed-layers``).
    """

    def __init__(self, ref: OCIReference, layout: DirectoryLayout, *,
                 accept_uncompressed: bool = False) -> None:
        self._ref = ref
        self._writer = LayoutWriter(layout, ref.image)
        self._capabilities = DestinationCapabilities(
            supported_manifest_types=(MediaType.OCI_MANIFEST, MediaType.OCI_INDEX),
            desired_layer_compression=(LayerCompression.PRESERVE if accept_uncompressed
                                       else LayerCompression.COMPRESS),
            accepts_foreign_layer_urls=True,
            thread_safe_put_blob=True,
        )

    @property
    def reference(self) -> OCIReference:
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

    def __enter__(self) -> OCIDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
