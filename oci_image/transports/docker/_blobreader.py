"""Blob downloads that survive broken connections, within a run and across runs.

:class:`BlobReader` is the stream ``DockerSource.get_blob`` returns. When the body breaks
off (reset, timeout, a clean close before ``Content-Length``), it asks again with
``Range: bytes=N-`` and checks the ``206``'s ``Content-Range`` before going on; a server
that ignores ``Range`` and answers ``200`` has its first N bytes skipped. Each resume that
made less than 1 MiB of progress since the previous one counts against the retry budget
(containers/image ``bodyReader`` has the same rule).

Beyond skopeo: large blobs (``RegistryOptions.partial_blob_min_size``) are also
appended to a file in the :class:`PartialBlobCache` as they arrive. If the process dies
or is interrupted, the next pull of the same digest (from any registry) serves that
prefix from disk and asks only for the rest. The file is removed once the whole blob
has been read, and when it is longer than the blob. The
copy engine verifies the digest over every byte, prefix included, so a bad cache file
costs one failed copy, never a bad blob.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import httpx

from ...errors import NetworkError, RegistryError
from ...spec import Descriptor, Digest
from ._http import RegistryClient, raise_for_status

__all__ = ["BlobReader", "PartialBlobCache"]

log = logging.getLogger(__name__)

_PROGRESS_FOR_FREE_RESUME: Final = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class PartialFile:
    """An open, exclusively locked partial download."""

    def __init__(self, path: Path, fd: int, size: int) -> None:
        self.path = path
        self.fd = fd
        self.size = size

    def append(self, data: bytes) -> None:
        os.write(self.fd, data)
        self.size += len(data)

    def read_at(self, offset: int, n: int) -> bytes:
        return os.pread(self.fd, n, offset)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # also drops the flock
            self.fd = -1


class PartialBlobCache:
    """A directory of ``<algorithm>-<hex>.partial`` files, one per digest, locked with
    ``flock`` while a download uses them (a second concurrent download of the same blob
    simply does not cache)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path_for(self, digest: Digest) -> Path:
        return self.directory / f"{digest.algorithm}-{digest.encoded}.partial"

    def open(self, digest: Digest, size: int) -> PartialFile | None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.path_for(digest)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.debug("partial blob cache unavailable: %s", exc)
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        have = os.fstat(fd).st_size
        if have > size:
            os.ftruncate(fd, 0)
            have = 0
        if have:
            log.info("resuming %s from %d cached bytes", digest, have)
        return PartialFile(path, fd, have)


class BlobReader:
    """A readable stream of one blob from a registry (see the module docstring)."""

    def __init__(self, client: RegistryClient, path: str, scopes: frozenset[str],
                 desc: Descriptor, what: str, partial: PartialFile | None, *,
                 credentials: bool = True) -> None:
        self._client = client
        self._path = path
        self._scopes = scopes
        self._desc = desc
        self._what = what
        self._partial = partial
        self._credentials = credentials
        self._cached = partial.size if partial is not None else 0
        self._offset = 0
        self._response: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._pending = b""
        self._skip = 0
        self._failures = 0
        self._since_resume = 0
        self._eof = False
        self.resumes = 0

    @property
    def bytes_read(self) -> int:
        return self._offset

    def start(self) -> None:
        """Send the first request now (from the end of the cached prefix)."""
        if self._chunks is None and self._cached < self._desc.size:
            self._open(self._cached)

    def read(self, n: int = -1, /) -> bytes:
        if self._eof:
            return b""
        if n == 0:
            return b""
        if n is None or n < 0:
            n = 1 << 62
        if self._offset < self._cached:
            assert self._partial is not None
            data = self._partial.read_at(self._offset, min(n, self._cached - self._offset,
                                                           1 << 20))
            if data:
                self._offset += len(data)
                return data
            self._cached = self._offset  # the file shrank under us: fetch the rest
            self._close_response()
        while True:
            if self._pending:
                data, self._pending = self._pending[:n], self._pending[n:]
                self._deliver(data)
                return data
            if self._chunks is None:
                if self._offset >= self._desc.size:
                    self._finish()
                    return b""
                self._open(self._offset)
            assert self._chunks is not None
            try:
                chunk = next(self._chunks)
            except StopIteration:
                if self._offset >= self._desc.size:
                    self._finish()
                    return b""
                self._broken(NetworkError(
                    f"{self._what}: body ended after {self._offset} of "
                    f"{self._desc.size} bytes"))
                continue
            except httpx.HTTPError as exc:
                self._broken(exc)
                continue
            if self._skip:
                drop = min(self._skip, len(chunk))
                self._skip -= drop
                chunk = chunk[drop:]
            self._pending = chunk

    def _deliver(self, data: bytes) -> None:
        self._offset += len(data)
        self._since_resume += len(data)
        if self._partial is not None:
            try:
                self._partial.append(data)
            except OSError as exc:
                log.debug("partial blob cache write failed: %s", exc)
                self._partial.discard()
                self._partial = None

    def _open(self, offset: int) -> None:
        headers = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = self._client.send("GET", self._path, scopes=self._scopes,
                                     headers=headers, stream=True,
                                     credentials=self._credentials)
        try:
            raise_for_status(response, self._what, not_found=_blob_unknown())
            if offset and response.status_code == 206:
                self._check_range(response, offset)
            elif offset:
                if response.status_code != 200:
                    raise RegistryError(
                        f"{self._what}: unexpected HTTP {response.status_code} to a "
                        f"range request", status=response.status_code)
                log.info("%s: server ignored Range; skipping %d bytes", self._what, offset)
                self._skip = offset
        except BaseException:
            response.close()
            raise
        self._response = response
        self._chunks = response.iter_raw()  # as the network delivers: no re-chunking copy

    def _check_range(self, response: httpx.Response, offset: int) -> None:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if match is None or int(match.group(1)) != offset:
            raise RegistryError(
                f"{self._what}: the registry answered the range request from byte "
                f"{offset} with Content-Range "
                f"{response.headers.get('content-range')!r}", status=206)

    def _broken(self, exc: BaseException) -> None:
        """Drop the connection and arrange for a range request, within budget."""
        self._close_response()
        if self._since_resume >= _PROGRESS_FOR_FREE_RESUME:
            self._failures = 0
        else:
            self._failures += 1
        retries = max(0, self._client.options.retry_times)
        if self._failures > retries:
            raise NetworkError(
                f"{self._what}: download broke off at byte {self._offset} "
                f"({type(exc).__name__}) and the retry budget is spent") from exc
        if self._failures:
            time.sleep(self._client.backoff(self._failures - 1, None))
        log.info("%s: %s at byte %d; resuming", self._what, type(exc).__name__,
                 self._offset)
        self.resumes += 1
        self._since_resume = 0

    def _finish(self) -> None:
        self._eof = True
        self._close_response()
        if self._partial is not None:
            self._partial.discard()
            self._partial = None

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = None
        self._chunks = None
        self._pending = b""
        self._skip = 0

    def close(self) -> None:
        self._close_response()
        if self._partial is not None:
            self._partial.release()  # keep what arrived for the next run
            self._partial = None


def _blob_unknown() -> type[RegistryError]:
    from ...errors import BlobUnknownError
    return BlobUnknownError
