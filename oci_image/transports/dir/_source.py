from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..._blobio import read_limited
from ...errors import ArchiveError, BlobNotFoundError, ManifestNotFoundError
from ...interfaces import BlobStream
from ...spec import DEFAULT_SIZE_LIMIT, Descriptor, Digest, guess_media_type
from ...spec._json import load_object
from ._transport import KNOWN_VERSIONS, blob_name, manifest_name, signature_name

if TYPE_CHECKING:
    from ._transport import DirReference


class DirSource:
    """Reads an image from a ``dir:`` directory. Thread-safe."""

    def __init__(self, ref: DirReference, path: Path) -> None:
        self._ref = ref
        self._path = path
        try:
            version = (path / "version").read_bytes()[:256]
        except FileNotFoundError:
            if not path.exists():
                raise ManifestNotFoundError(f"{ref}: no such directory") from None
            version = None
        if version is not None and version not in KNOWN_VERSIONS:
            raise ArchiveError(f"{ref}: unsupported directory version {version!r}")

    @property
    def reference(self) -> DirReference:
        return self._ref

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        name = manifest_name(instance)
        try:
            with open(self._path / name, "rb") as f:
                raw = read_limited(f, f"{self._ref}/{name}", DEFAULT_SIZE_LIMIT)
        except FileNotFoundError:
            raise ManifestNotFoundError(f"{self._ref}: no {name}") from None
        return raw, guess_media_type(load_object(raw, f"{self._ref}/{name}"))

    def get_blob(self, desc: Descriptor) -> BlobStream:
        try:
            return open(self._path / blob_name(desc.digest), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"{self._ref}: blob {desc.digest} not found") from None

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]:
        signatures = []
        i = 0
        while True:
            try:
                signatures.append((self._path / signature_name(i, instance)).read_bytes())
            except FileNotFoundError:
                return signatures
            i += 1

    def close(self) -> None:
        pass

    def __enter__(self) -> DirSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
