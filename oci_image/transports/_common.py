"""Helpers shared by the local transports (no I/O policy of their own)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import IO

import attrs

from .._blobio import CHUNK
from ..errors import BlobNotFoundError, ContentTooLargeError, InvalidReferenceError
from ..interfaces import BlobInfo
from ..spec import (
    DEFAULT_SIZE_LIMIT,
    Descriptor,
    Digest,
    Readable,
    VerifiedStream,
    VerifyingReader,
)

__all__ = [
    "StagedBlob",
    "ensure_verifying",
    "read_limited",
    "split_path",
    "stage_blob",
]

log = logging.getLogger("oci_image.transports")


def split_path(reference: str, transport: str) -> tuple[str, str]:
    """Split ``PATH[:REST]`` at the first colon (paths cannot contain one, as in
    containers/image on Linux)."""
    path, _, rest = reference.partition(":")
    if not path:
        raise InvalidReferenceError(f"{transport}: reference {reference!r} has an empty path")
    return path, rest


def ensure_verifying(stream: Readable, info: BlobInfo, name: str | None = None
                     ) -> VerifiedStream:
    """``stream`` itself when it already verifies what ``info`` announces, else a new
    :class:`VerifyingReader` (which also computes the digest when none is announced)."""
    if (isinstance(stream, VerifiedStream) and stream.expected_digest == info.digest
            and (info.size is None or stream.expected_size == info.size)):
        return stream
    return VerifyingReader(stream, info.digest, info.size, name=name)


@attrs.frozen
class StagedBlob:
    """A verified blob written to a temporary file, ready to be renamed into place."""

    path: Path
    digest: Digest
    size: int


def stage_blob(directory: str | os.PathLike[str], stream: Readable, info: BlobInfo, *,
               sync: bool = True) -> StagedBlob:
    """Copy ``stream`` into a temporary file in ``directory``, verifying it; on any error
    the temporary file is removed and the error propagates."""
    reader = ensure_verifying(stream, info)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".put-blob-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _copy_to_eof(reader, f)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return StagedBlob(Path(tmp), reader.actual_digest, reader.bytes_read)


def _copy_to_eof(reader: VerifiedStream, f: IO[bytes]) -> None:
    while chunk := reader.read(CHUNK):
        f.write(chunk)


def read_limited(stream: Readable, what: str, limit: int = DEFAULT_SIZE_LIMIT) -> bytes:
    """Read a whole small document, refusing one over ``limit`` bytes."""
    parts: list[bytes] = []
    total = 0
    while chunk := stream.read(min(CHUNK, limit + 1 - total)):
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise ContentTooLargeError(f"{what} is over the limit of {limit} bytes")
    return b"".join(parts)


def read_verified(stream: Readable, desc: Descriptor, what: str,
                  limit: int = DEFAULT_SIZE_LIMIT) -> bytes:
    """Read a small blob whole, checking its size limit, size and digest."""
    if desc.size > limit:
        raise ContentTooLargeError(
            f"{what} {desc.digest} is {desc.size} bytes, over the limit of {limit}")
    reader = VerifyingReader(stream, desc.digest, desc.size, name=f"{what} {desc.digest}")
    data = read_limited(reader, what, limit)
    reader.read_all_and_verify()
    return data


def open_blob_file(path: Path, digest: Digest, where: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise BlobNotFoundError(f"blob {digest} not found in {where}") from None
