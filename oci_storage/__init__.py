"""oci_storage: a containers/storage-compatible copy-on-write image store (layers, images,
containers) with overlay and vfs drivers -- issue #4, in progress.

Done so far: :mod:`oci_storage.apply` (safe application of one layer tar onto a directory,
with OCI whiteouts as deletions or as overlay whiteouts, limits and digests),
:mod:`oci_storage.tarsplit` (the exact layer tar back from an applied layer),
:mod:`oci_storage.records` and :mod:`oci_storage.lockfile` (the record files and lock
files of containers/storage, readable and writable by podman), :mod:`oci_storage.config`
(storage.conf), :mod:`oci_storage.drivers` (vfs, overlay) and :mod:`oci_storage.store`
(layers and images; podman runs what it stores). Containers, the
``containers-storage:`` transport and the CLI are still to come.
"""

__all__: list[str] = []
