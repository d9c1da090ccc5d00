"""Two records of :class:`~oci_storage.store.Store` that opening a store, reading it and
running a container from it never build: the read-only additional image stores
(storage.conf ``additionalimagestores``) and what :meth:`Store.delete_image` removed.

They live apart from :mod:`oci_storage.store` (which re-exports them and imports this
module on first use) so that ``import oci_storage.store`` does not create their attrs
classes: each costs about a millisecond at start-up.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .drivers import Driver
from .records import Image, ImageRecords, LayerRecords

__all__ = ["DeletedImage", "ReadOnlyStore"]


@attrs.frozen
class ReadOnlyStore:
    """An additional image store (storage.conf ``additionalimagestores``): another
    graph root whose images and layers this store reads and builds containers on, and
    never writes."""

    graphroot: Path
    layer_records: LayerRecords
    image_records: ImageRecords
    driver: Driver


@attrs.frozen
class DeletedImage:
    """What :meth:`Store.delete_image` removed."""

    image: Image
    #: the layers deleted with it (top first): those no other record needed
    layers: tuple[str, ...]
