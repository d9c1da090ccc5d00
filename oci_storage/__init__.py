"""oci_storage: a containers/storage-compatible copy-on-write image store (layers,
images, containers) with overlay and vfs drivers, safe layer application, tar-split,
locking and crash recovery, and the ``containers-storage:`` transport (registered with
oci_image by name; see docs/storage.md).

The modules: :mod:`~oci_storage.store` (:class:`Store`), :mod:`~oci_storage.apply`
(:func:`apply_layer`), :mod:`~oci_storage.unpack` (:func:`unpack_image`),
:mod:`~oci_storage.check`, :mod:`~oci_storage.config` (storage.conf),
:mod:`~oci_storage.records` / :mod:`~oci_storage.lockfile` (the on-disk records),
:mod:`~oci_storage.tarsplit`, :mod:`~oci_storage.drivers`, :mod:`~oci_storage.errors`
and :mod:`~oci_storage.transport`. The names below are the curated API.
"""

from .apply import (
    AppliedLayer,
    ApplyLimits,
    ApplyOptions,
    DevicePolicy,
    WhiteoutMode,
    apply_layer,
)
from .check import CheckReport, check_store, gc_layers, repair_store
from .config import StorageConfig, load_storage_config
from .errors import StorageError
from .store import StagedLayer, Store
from .unpack import UnpackedImage, unpack_image

__all__ = [
    "AppliedLayer",
    "ApplyLimits",
    "ApplyOptions",
    "CheckReport",
    "DevicePolicy",
    "StagedLayer",
    "StorageConfig",
    "StorageError",
    "Store",
    "UnpackedImage",
    "WhiteoutMode",
    "apply_layer",
    "check_store",
    "gc_layers",
    "load_storage_config",
    "repair_store",
    "unpack_image",
]
