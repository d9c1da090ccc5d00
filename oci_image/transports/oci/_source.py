from __future__ import annotations

from typing import TYPE_CHECKING

from ...interfaces import BlobStream
from ...spec import Descriptor, Digest
from .._layout import DirectoryLayout, LayoutReader, resolve_descriptor

if TYPE_CHECKING:
    from ._transport import OCIReference


class OCISource:
    """Reads one image (or index) of an OCI layout directory. Thread-safe."""

    def __init__(self, ref: OCIReference, layout: DirectoryLayout) -> None:
        self._ref = ref
        index = layout.read_index()
        top = resolve_descriptor(index, ref.image, ref.source_index, str(ref))
        self._reader = LayoutReader(index, top, layout.open_blob, str(ref))

    @property
    def reference(self) -> OCIReference:
        return self._ref

    @property
    def top_descriptor(self) -> Descriptor:
        """The index.json entry of the image."""
        return self._reader.top

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        return self._reader.get_manifest(instance)

    def get_blob(self, desc: Descriptor) -> BlobStream:
        return self._reader.get_blob(desc)

    def close(self) -> None:
        pass

    def __enter__(self) -> OCISource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
