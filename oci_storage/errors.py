"""The ``oci_storage`` branch of the one error tree (rooted at
:class:`oci_image.errors.OCIError`)::

    StorageError(OCIError)
    ├── UnsafeArchiveError(StorageError, ValueError)  a layer entry that would reach outside
    │                                                 the layer root or damage it (names the
    │                                                 entry)
    ├── LayerLimitError(StorageError, ValueError)     a layer over a configured limit: total
    │                                                 size, entry count, header sizes
    ├── DriverNotSupportedError(StorageError)         a named driver cannot work here
    ├── StoreCorruptError(StorageError)               a record file that cannot be read
    ├── TarSplitError(StorageError, ValueError)       a layer tar-split cannot record or
    │                                                 reproduce
    ├── LayerUnknownError(StorageError, LookupError)
    ├── ImageUnknownError(StorageError, LookupError)
    ├── ContainerUnknownError(StorageError, LookupError)
    ├── DuplicateNameError(StorageError, ValueError)  a name already used by another record
    ├── DuplicateIDError(StorageError, ValueError)    an ID already used by another record
    └── LayerInUseError(StorageError)                 a layer that other records still need

Messages name the layer, image, entry or file concerned.
"""

from __future__ import annotations

from oci_image.errors import OCIError

__all__ = [
    "ContainerUnknownError",
    "DriverNotSupportedError",
    "DuplicateIDError",
    "DuplicateNameError",
    "ImageUnknownError",
    "LayerInUseError",
    "LayerLimitError",
    "LayerUnknownError",
    "StorageError",
    "StoreCorruptError",
    "TarSplitError",
    "UnsafeArchiveError",
]


class StorageError(OCIError):
    """Root of every error raised on purpose by oci_storage."""


class UnsafeArchiveError(StorageError, ValueError):
    """A layer tar entry that would create, change or read something outside the layer
    root (``..``, absolute names, symlinks, hardlinks, whiteouts), or replace the root
    itself. ``entry`` is the entry's name as it appears in the tar."""

    def __init__(self, message: str, *, entry: str = "") -> None:
        super().__init__(message)
        self.entry = entry


class LayerLimitError(StorageError, ValueError):
    """A layer larger than allowed (uncompressed bytes, entries, header sizes)."""


class DriverNotSupportedError(StorageError):
    """The named storage driver cannot work on this machine or filesystem."""


class StoreCorruptError(StorageError):
    """A record file (layers.json, images.json, ...) cannot be read."""


class TarSplitError(StorageError, ValueError):
    """A tar-split record that cannot be written (an entry the format cannot reproduce)
    or read (a malformed file)."""


class LayerUnknownError(StorageError, LookupError):
    """No layer with that ID or name."""


class ImageUnknownError(StorageError, LookupError):
    """No image with that ID, name or digest."""


class ContainerUnknownError(StorageError, LookupError):
    """No container with that ID or name."""


class DuplicateNameError(StorageError, ValueError):
    """A name already belongs to another record."""


class DuplicateIDError(StorageError, ValueError):
    """A record with that ID already exists."""


class LayerInUseError(StorageError):
    """A layer that images, containers or child layers still use."""
