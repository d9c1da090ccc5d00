from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..._blobio import atomic_write_bytes, fsync_dir
from ...errors import ArchiveError
from ...interfaces import BlobInfo, DestinationCapabilities, LayerCompression
from ...spec import Descriptor, Digest, Readable
from .._common import stage_blob
from ._transport import (
    KNOWN_VERSIONS,
    VERSION_1_1,
    VERSION_1_2,
    blob_name,
    manifest_name,
    signature_name,
)

if TYPE_CHECKING:
    from ._transport import DirReference

log = logging.getLogger("oci_image.transports.dir")


class DirDestination:
    """Writes an image into a ``dir:`` directory.

    Everything is staged in a hidden directory inside the target; at commit the old
    contents (only ever an earlier ``dir:`` image: anything else is refused, as skopeo
    does) are replaced by the staged files. Closing without commit leaves the target as
    it was (and removes it if this session created it).
    """

    def __init__(self, ref: DirReference, path: Path) -> None:
        self._ref = ref
        self._path = path
        self._created = not path.exists()
        if not self._created:
            self._check_overwritable()
        path.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(dir=path, prefix=".staging-"))
        self._blobs: dict[str, Descriptor] = {}
        self._version = VERSION_1_1
        self._committed = False
        self._capabilities = DestinationCapabilities(
            supported_manifest_types=None,
            desired_layer_compression=LayerCompression.PRESERVE,
            accepts_foreign_layer_urls=False,
            thread_safe_put_blob=True,
            supports_signatures=True,
        )

    def _check_overwritable(self) -> None:
        if not self._path.is_dir():
            raise ArchiveError(f"{self._ref}: exists and is not a directory")
        entries = [e for e in os.listdir(self._path) if not e.startswith(".staging-")]
        if not entries:
            return
        try:
            version = (self._path / "version").read_bytes()[:256]
        except FileNotFoundError:
            version = None
        if version not in KNOWN_VERSIONS:
            raise ArchiveError(
                f"{self._ref}: not a containers image directory, refusing to overwrite it")

    @property
    def reference(self) -> DirReference:
        return self._ref

    @property
    def capabilities(self) -> DestinationCapabilities:
        return self._capabilities

    def has_blob(self, info: BlobInfo) -> Descriptor | None:
        if info.digest is None:
            return None
        return self._blobs.get(blob_name(info.digest))

    def put_blob(self, stream: Readable, info: BlobInfo) -> Descriptor:
        with stage_blob(self._staging, stream, info) as staged:
            name = blob_name(staged.digest)
            os.replace(staged.path, self._staging / name)
        if staged.digest.algorithm != "sha256":
            self._version = VERSION_1_2
        desc = Descriptor(info.media_type, staged.digest, staged.size)
        self._blobs[name] = desc
        return desc

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None
                     ) -> None:
        atomic_write_bytes(self._staging / manifest_name(instance), raw, sync=False)

    def put_signatures(self, signatures: list[bytes], instance: Digest | None = None
                       ) -> None:
        for i, signature in enumerate(signatures):
            atomic_write_bytes(self._staging / signature_name(i, instance), signature,
                               sync=False)

    def commit(self) -> None:
        if not (self._staging / "manifest.json").exists():
            raise RuntimeError("commit() before the manifest was written")
        atomic_write_bytes(self._staging / "version", self._version, sync=False)
        for entry in os.listdir(self._path):
            target = self._path / entry
            if target == self._staging:
                continue
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        for entry in os.listdir(self._staging):
            os.replace(self._staging / entry, self._path / entry)
        self._staging.rmdir()
        fsync_dir(self._path)
        self._committed = True

    def close(self) -> None:
        if self._committed:
            return
        self._committed = True
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._staging)
        if self._created:
            with contextlib.suppress(OSError):
                self._path.rmdir()

    def __enter__(self) -> DirDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
