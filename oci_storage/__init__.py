"""oci_storage: a containers/storage-compatible copy-on-write image store (layers, images,
containers) with overlay and vfs drivers. Not implemented yet: see the project issues."""

__all__: list[str] = []
