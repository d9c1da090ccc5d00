"""oci_storage: a containers/storage-compatible copy-on-write image store (layers, images,
containers) with overlay and vfs drivers -- issue #4, in progress.

Done so far: :mod:`oci_storage.apply` (safe application of one layer tar onto a directory,
with OCI whiteouts as deletions or as overlay whiteouts, limits and digests),
:mod:`oci_storage.records` and :mod:`oci_storage.lockfile` (the record files and lock
files of containers/storage, readable and writable by podman). The store, the drivers,
the ``containers-storage:`` transport and the CLI are still to come.
"""

__all__: list[str] = []
