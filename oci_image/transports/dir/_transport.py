from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs

from ...errors import InvalidReferenceError
from ...interfaces import ImageDestination, ImageSource, OpenOptions
from ...spec import Digest, Reference

VERSION_1_1: Final = b"Directory Transport Version: 1.1\n"
VERSION_1_2: Final = b"Directory Transport Version: 1.2\n"
KNOWN_VERSIONS: Final = (VERSION_1_1, VERSION_1_2)


@attrs.frozen
class DirTransport:
    name: str = "dir"

    def parse_reference(self, reference: str) -> DirReference:
        if not reference:
            raise InvalidReferenceError("dir: an empty path is not allowed")
        return DirReference(reference)


TRANSPORT = DirTransport()


def blob_name(digest: Digest) -> str:
    """sha256 blobs are named by their hex; others ``algorithm-hex`` (version 1.2)."""
    return digest.hex if digest.algorithm == "sha256" else f"{digest.algorithm}-{digest.hex}"


def manifest_name(instance: Digest | None) -> str:
    return "manifest.json" if instance is None else f"{blob_name(instance)}.manifest.json"


def signature_name(index: int, instance: Digest | None) -> str:
    prefix = "" if instance is None else f"{blob_name(instance)}."
    return f"{prefix}signature-{index + 1}"


@attrs.frozen
class DirReference:
    path: str

    @property
    def transport(self) -> DirTransport:
        return TRANSPORT

    def string_within_transport(self) -> str:
        return self.path

    def __str__(self) -> str:
        return f"dir:{self.path}"

    def docker_reference(self) -> Reference | None:
        return None

    def open_source(self, options: OpenOptions | None = None) -> ImageSource:
        from ._source import DirSource

        return DirSource(self, Path(self.path))

    def open_destination(self, options: OpenOptions | None = None) -> ImageDestination:
        from ._dest import DirDestination

        return DirDestination(self, Path(self.path))
