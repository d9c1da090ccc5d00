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

from typing import TYPE_CHECKING

from oci_image.spec._lazy import lazy_exports

if TYPE_CHECKING:
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

#: where each exported name lives; modules load on first use (a CLI that only needs the
#: store does not pay for the rest)
_EXPORTS = {
    "AppliedLayer": ".apply", "ApplyLimits": ".apply", "ApplyOptions": ".apply",
    "DevicePolicy": ".apply", "WhiteoutMode": ".apply", "apply_layer": ".apply",
    "CheckReport": ".check", "check_store": ".check", "gc_layers": ".check",
    "repair_store": ".check", "StorageConfig": ".config", "load_storage_config": ".config",
    "StorageError": ".errors", "StagedLayer": ".store", "Store": ".store",
    "UnpackedImage": ".unpack", "unpack_image": ".unpack",
}


if not TYPE_CHECKING:  # (mypy sees the imports above, and flags a name that is not one)
    __getattr__ = lazy_exports(globals(), _EXPORTS)


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
