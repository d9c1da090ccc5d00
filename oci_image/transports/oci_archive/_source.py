from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import BlobNotFoundError
from ...interfaces import BlobStream
from ...spec import DEFAULT_SIZE_LIMIT, Descriptor, Digest, ImageIndex
from .._layout import LayoutReader, check_layout_file, parse_index, resolve_descriptor
from .._tar import TarIndex

if TYPE_CHECKING:
    from ._transport import OCIArchiveReference


def open_archive_layout(ref: OCIArchiveReference, tmp_dir: str | None
                        ) -> tuple[ImageIndex, TarIndex]:
    tar = TarIndex.open(ref.path, tmp_dir=tmp_dir)
    try:
        if tar.exists("oci-layout"):
            check_layout_file(tar.read_member("oci-layout", 1 << 16), str(ref))
        try:
            raw = tar.read_member("index.json", DEFAULT_SIZE_LIMIT)
        except BlobNotFoundError:
            from ...errors import ArchiveError

            raise ArchiveError(f"{ref}: not an OCI archive (no index.json)") from None
        return parse_index(raw, str(ref)), tar
    except BaseException:
        tar.close()
        raise


class OCIArchiveSource:
    """Reads one image of an OCI layout tarball in place. Thread-safe."""

    def __init__(self, ref: OCIArchiveReference, *, tmp_dir: str | None = None) -> None:
        self._ref = ref
        index, self._tar = open_archive_layout(ref, tmp_dir)
        try:
            top = resolve_descriptor(index, ref.image, ref.source_index, str(ref))
        except BaseException:
            self._tar.close()
            raise
        self._reader = LayoutReader(index, top, self._open_blob, str(ref))

    def _open_blob(self, digest: Digest) -> BlobStream:
        try:
            return self._tar.open_member(f"blobs/{digest.algorithm}/{digest.hex}")
        except BlobNotFoundError:
            raise BlobNotFoundError(f"{self._ref}: blob {digest} not found") from None

    @property
    def reference(self) -> OCIArchiveReference:
        return self._ref

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        return self._reader.get_manifest(instance)

    def get_blob(self, desc: Descriptor) -> BlobStream:
        return self._reader.get_blob(desc)

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> OCIArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
