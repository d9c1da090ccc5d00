"""Helpers shared by the local transports (no I/O policy of their own)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import attrs

from .._blobio import CHUNK
from ..errors import InvalidReferenceError
from ..interfaces import BlobInfo
from ..spec import (
    Digest,
    Readable,
    VerifiedStream,
    VerifyingReader,
)

__all__ = [
    "StagedBlob",
    "ensure_verifying",
    "split_path",
    "stage_blob",
    "sweep_stale_temps",
]

log = logging.getLogger("oci_image.transports")

#: name prefix of staged blob files (hidden; never at a blob path)
TEMP_PREFIX = ".put-blob-"
#: the name a staged file has for the instant between its creation and its lock
NEW_TEMP_PREFIX = ".new-blob-"
#: age after which an unlocked NEW_TEMP_PREFIX file is certainly abandoned
_NEW_TEMP_MAX_AGE = 3600.0


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


@contextlib.contextmanager
def stage_blob(directory: str | os.PathLike[str], stream: Readable, info: BlobInfo, *,
               sync: bool = True) -> Iterator[StagedBlob]:
    """Copy ``stream`` into a temporary file in ``directory``, verifying it, and yield it
    for the caller to rename into place. On any error -- or if the caller does not rename
    it -- the temporary file is removed.

    The file is ``flock``-ed while it exists, so that :func:`sweep_stale_temps` can tell
    the leftovers of a killed process from a copy in progress."""
    reader = ensure_verifying(stream, info)
    # Created under a name the sweeper leaves alone, locked, then renamed: a file with
    # the swept name is always locked while its writer lives.
    fd, new = tempfile.mkstemp(dir=directory, prefix=NEW_TEMP_PREFIX, suffix=".tmp")
    tmp = new
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        tmp = os.path.join(os.path.dirname(new),
                           TEMP_PREFIX + os.path.basename(new)[len(NEW_TEMP_PREFIX):])
        os.rename(new, tmp)
        with os.fdopen(os.dup(fd), "wb") as f:
            _copy_to_eof(reader, f)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.fchmod(fd, 0o644)
        yield StagedBlob(Path(tmp), reader.actual_digest, reader.bytes_read)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # a no-op once the caller renamed it
        os.close(fd)


def sweep_stale_temps(directory: str | os.PathLike[str]) -> int:
    """Remove blob temp files left in ``directory`` by killed processes (those whose
    ``flock`` nobody holds); return how many were removed."""
    removed = 0
    try:
        names = [n for n in os.listdir(directory)
                 if n.startswith((TEMP_PREFIX, NEW_TEMP_PREFIX))]
    except FileNotFoundError:
        return 0
    now = time.time()
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(NEW_TEMP_PREFIX):
            try:  # only a process killed in the instant before its lock leaves these
                if now - os.stat(path).st_mtime < _NEW_TEMP_MAX_AGE:
                    continue
            except FileNotFoundError:
                continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live writer holds it
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed += 1
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d stale temporary blob(s) from %s", removed, directory)
    return removed


def _copy_to_eof(reader: VerifiedStream, f: IO[bytes]) -> None:
    while chunk := reader.read(CHUNK):
        f.write(chunk)

