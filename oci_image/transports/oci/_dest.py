from __future__ import annotations

from typing import TYPE_CHECKING

from .._layout import DirectoryLayout, LayoutDestination, LayoutWriter

if TYPE_CHECKING:
    from ._transport import OCIReference


class OCIDestination(LayoutDestination):
    """Writes one image (or index) into an OCI layout directory (see
    :mod:`oci_image.transports._layout` for the concurrency and crash guarantees)."""

    def __init__(self, ref: OCIReference, layout: DirectoryLayout, *,
                 accept_uncompressed: bool = False) -> None:
        super().__init__(ref, LayoutWriter(layout, ref.image),
                         accept_uncompressed=accept_uncompressed)
