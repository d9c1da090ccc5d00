from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..._blobio import fsync_dir
from ...interfaces import BlobInfo, DestinationCapabilities, LayerCompression
from ...spec import Descriptor, Digest, MediaType, Readable
from .._layout import DirectoryLayout, LayoutWriter
from .._tar import TarWriter

if TYPE_CHECKING:
    from ._transport import OCIArchiveReference


class OCIArchiveDestination:
    """Builds a layout in a temporary directory; at commit, tars it over the target."""

    def __init__(self, ref: OCIArchiveReference, *, tmp_dir: str | None = None,
                 accept_uncompressed: bool = False) -> None:
        self._ref = ref
        self._target = Path(ref.path)
        parent = tmp_dir or str(self._target.parent if str(self._target.parent) else ".")
        self._staging = Path(tempfile.mkdtemp(dir=parent, prefix=".oci-archive-"))
        self._writer = LayoutWriter(DirectoryLayout(self._staging / "layout"), ref.image,
                                    sync=False)
        self._done = False
        self._capabilities = DestinationCapabilities(
            supported_manifest_types=(MediaType.OCI_MANIFEST, MediaType.OCI_INDEX),
            desired_layer_compression=(LayerCompression.PRESERVE if accept_uncompressed
                                       else LayerCompression.COMPRESS),
            accepts_foreign_layer_urls=True,
            thread_safe_put_blob=True,
        )

    @property
    def reference(self) -> OCIArchiveReference:
        return self._ref

    @property
    def capabilities(self) -> DestinationCapabilities:
        return self._capabilities

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        return self._writer.has_blob(info)

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        return self._writer.put_blob(stream, info)

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None
                     ) -> None:
        self._writer.put_manifest(raw, media_type, instance)

    def commit(self) -> None:
        self._writer.commit()
        layout = self._staging / "layout"
        parent = self._target.parent if str(self._target.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{self._target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                tar = TarWriter(f)
                tar.add_file("oci-layout", layout / "oci-layout")
                tar.add_file("index.json", layout / "index.json")
                tar.add_dir("blobs")
                for algorithm in sorted(os.listdir(layout / "blobs")):
                    tar.add_dir(f"blobs/{algorithm}")
                    for name in sorted(os.listdir(layout / "blobs" / algorithm)):
                        tar.add_file(f"blobs/{algorithm}/{name}",
                                     layout / "blobs" / algorithm / name)
                tar.close()
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self._target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(parent)
        self._done = True

    def close(self) -> None:
        self._done = True
        shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> OCIArchiveDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
