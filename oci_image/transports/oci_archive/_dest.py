from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..._blobio import atomic_file
from .._layout import DirectoryLayout, LayoutDestination, LayoutWriter
from .._tar import TarWriter

if TYPE_CHECKING:
    from ._transport import OCIArchiveReference


class OCIArchiveDestination(LayoutDestination):
    """Builds a layout in a temporary directory; at commit, tars it over the target."""

    def __init__(self, ref: OCIArchiveReference, *, tmp_dir: str | None = None,
                 accept_uncompressed: bool = False) -> None:
        self._target = Path(ref.path)
        parent = tmp_dir or str(self._target.parent if str(self._target.parent) else ".")
        self._staging = Path(tempfile.mkdtemp(dir=parent, prefix=".oci-archive-"))
        super().__init__(ref, LayoutWriter(DirectoryLayout(self._staging / "layout"),
                                           ref.image, sync=False),
                         accept_uncompressed=accept_uncompressed)

    def commit(self) -> None:
        self._writer.commit()
        layout = self._staging / "layout"
        with atomic_file(self._target) as f:
            tar = TarWriter(f)
            tar.add_file("oci-layout", layout / "oci-layout")
            tar.add_file("index.json", layout / "index.json")
            tar.add_dir("blobs")
            for algorithm in sorted(os.listdir(layout / "blobs")):
                tar.add_dir(f"blobs/{algorithm}")
                for name in sorted(os.listdir(layout / "blobs" / algorithm)):
                    tar.add_file(f"blobs/{algorithm}/{name}", layout / "blobs" / algorithm / name)
            tar.close()

    def close(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
