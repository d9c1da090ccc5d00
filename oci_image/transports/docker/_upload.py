"""Blob uploads (distribution-spec "pushing blobs").

The copy engine hands us a one-pass stream, sent as it is read (memory stays at one
piece, or one chunk in chunked mode). A failure while data is on the wire cancels the
upload and raises a transient error; the copy engine then copies that blob again from
the source (``CopyOptions.blob_retries``), rather than this module keeping a copy of
every blob on disk in case it is needed.

Modes, chosen per blob:

* monolithic: ``POST`` then one ``PUT ?digest=`` carrying the body, when the digest is
  known before the data is (a blob copied unchanged);
* streamed: ``POST``, one streamed ``PATCH``, ``PUT ?digest=`` (recompressed blobs,
  whose digest is known only at the end);
* chunked: ``PATCH`` requests of ``upload_chunk_size`` bytes (at least the registry's
  ``OCI-Chunk-Min-Length``) with ``Content-Range``; after a failed or refused (416)
  chunk the upload's status (``GET``, ``Range`` header) says where to go on from.

Any failure cancels the registry-side upload (``DELETE``) before the error propagates,
so no upload is left unfinished.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from typing import Final

import httpx

from ...errors import NetworkError, OCIError, RegistryError, VerificationError
from ...spec import Digest, Readable, VerifiedStream
from ._http import RegistryClient, raise_for_status

__all__ = ["upload_blob"]

log = logging.getLogger(__name__)

_PIECE: Final = 1 << 20
_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")


class _Stream:
    """The one-pass input with a position, read in pieces for request bodies."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self.size = 0
        self.eof = False

    def pieces(self) -> Iterator[bytes]:
        while True:
            data = self._stream.read(_PIECE)
            if not data:
                self.eof = True
                return
            self.size += len(data)
            yield data

    def chunk(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end of the stream)."""
        parts: list[bytes] = []
        have = 0
        while have < n:
            data = self._stream.read(min(_PIECE, n - have))
            if not data:
                self.eof = True
                break
            parts.append(data)
            have += len(data)
        self.size += have
        return b"".join(parts)


def upload_blob(client: RegistryClient, repo: str, scopes: frozenset[str],
                stream: VerifiedStream, digest: Digest | None, size: int | None,
                what: str) -> tuple[Digest, int]:
    """Upload ``stream`` into ``repo``; return the digest and size the registry stored.

    Requests without a body are retried by the client. A failure while data is being
    sent cancels the upload and raises :class:`NetworkError` (or the registry's error):
    the stream is spent, so the copy engine starts this blob again from the source.
    """
    location, min_chunk = _start(client, repo, scopes, what)
    upload = _Upload(location)
    try:
        return _one_upload(client, scopes, _Stream(stream), stream, digest, size, what,
                           upload, min_chunk)
    except BaseException:
        # the newest Location: distribution refuses a DELETE whose _state is stale
        _cancel(client, upload.location, scopes)
        raise


class _Upload:
    """The upload's current ``Location`` (each answer may carry a new one)."""

    def __init__(self, location: str) -> None:
        self.location = location

    def follow(self, response: httpx.Response) -> None:
        if "location" in response.headers:
            self.location = str(response.url.join(response.headers["location"]))


def _start(client: RegistryClient, repo: str, scopes: frozenset[str], what: str
           ) -> tuple[str, int]:
    """``POST``: the upload's ``Location`` and the registry's ``OCI-Chunk-Min-Length``."""
    response = client.send("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes)
    raise_for_status(response, f"{what}: starting the upload")
    if response.status_code != 202 or "location" not in response.headers:
        raise RegistryError(f"{what}: starting the upload answered HTTP "
                            f"{response.status_code} without a Location",
                            status=response.status_code)
    min_chunk = 0
    with contextlib.suppress(ValueError):
        min_chunk = int(response.headers.get("oci-chunk-min-length", "0"))
    return str(response.url.join(response.headers["location"])), min_chunk


def _with_digest(location: str, digest: Digest) -> str:
    return str(httpx.URL(location).copy_merge_params({"digest": str(digest)}))


_OCTET: Final = {"Content-Type": "application/octet-stream"}


def _one_upload(client: RegistryClient, scopes: frozenset[str], data: _Stream,
                stream: VerifiedStream, digest: Digest | None, size: int | None,
                what: str, upload: _Upload, min_chunk: int) -> tuple[Digest, int]:
    chunk_size = client.options.upload_chunk_size
    if chunk_size <= 0 and digest is not None:
        # monolithic: the PUT carries the stream; its digest (and size) were announced.
        # The stream raises before its end if it is longer or shorter than announced.
        headers = dict(_OCTET)
        if size is not None:
            headers["Content-Length"] = str(size)
        final = _send(client, "PUT", _with_digest(upload.location, digest), scopes, headers,
                      data.pieces(), what)
    else:
        if chunk_size > 0:
            _chunked(client, scopes, data, what, upload, max(chunk_size, min_chunk))
        else:
            upload.follow(_send(client, "PATCH", upload.location, scopes, _OCTET,
                                data.pieces(), what))
        if not data.eof or data.chunk(1):
            raise RegistryError(f"{what}: the stream did not end")
        actual = stream.actual_digest  # verified by the stream at its end
        if digest is not None and actual != digest:
            raise VerificationError(f"{what}: uploaded data has digest {actual}",
                                    name=str(digest), expected=digest, actual=actual)
        digest = actual
        final = client.send("PUT", _with_digest(upload.location, digest), scopes=scopes,
                            headers={**_OCTET, "Content-Length": "0"}, content=b"")
    raise_for_status(final, f"{what}: finishing the upload")
    if final.status_code != 201:
        raise RegistryError(f"{what}: finishing the upload answered HTTP "
                            f"{final.status_code}", status=final.status_code)
    stored = final.headers.get("docker-content-digest")
    if stored and stored != str(digest):
        raise RegistryError(f"{what}: the registry stored {stored}, not {digest}")
    return digest, data.size


def _send(client: RegistryClient, method: str, url: str, scopes: frozenset[str],
          headers: dict[str, str], body: Iterator[bytes], what: str) -> httpx.Response:
    """One request carrying (part of) the stream: never retried here."""
    response = client.send(method, url, scopes=scopes, headers=headers,
                           content=lambda: body, retry=False)
    raise_for_status(response, f"{what}: sending data")
    return response


def _chunked(client: RegistryClient, scopes: frozenset[str], data: _Stream, what: str,
             upload: _Upload, chunk_size: int) -> None:
    """PATCH chunks with ``Content-Range``; after a failure or a 416 the upload status
    says how much arrived and the rest of the current chunk is sent again."""
    offset = 0
    while not data.eof:
        chunk = data.chunk(chunk_size)
        if not chunk:
            break
        start = offset
        tries = 0
        while offset < start + len(chunk):
            piece = chunk[offset - start:]
            headers = {**_OCTET, "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                       "Content-Length": str(len(piece))}
            try:
                response = client.send("PATCH", upload.location, scopes=scopes,
                                       headers=headers, content=piece, retry=False)
                failed = response.status_code == 416
                if not failed:
                    raise_for_status(response, f"{what}: sending a chunk")
            except NetworkError:
                failed = True
            if failed:
                tries += 1
                if tries > max(0, client.options.retry_times):
                    raise NetworkError(f"{what}: chunk at byte {offset} failed "
                                       f"{tries} times")
                time.sleep(client.backoff(tries - 1, None))
                offset = _resync(client, scopes, upload, what)
                if not start <= offset <= start + len(chunk):
                    raise NetworkError(
                        f"{what}: the registry has {offset} bytes of the upload, outside "
                        f"the chunk still in memory ({start}-{start + len(chunk)})")
                continue
            upload.follow(response)
            offset = start + len(chunk)


def _resync(client: RegistryClient, scopes: frozenset[str], upload: _Upload,
            what: str) -> int:
    """Ask the registry how much of the upload it has (``GET``: 204 and ``Range``)."""
    response = client.send("GET", upload.location, scopes=scopes)
    raise_for_status(response, f"{what}: upload status")
    match = _RANGE.match(response.headers.get("range", ""))
    if response.status_code != 204 or match is None:
        raise NetworkError(f"{what}: upload status answered HTTP {response.status_code} "
                           f"with Range {response.headers.get('range')!r}")
    # "0-0" is what distribution answers for an empty upload too
    end = int(match.group(1)) + 1 if int(match.group(1)) else 0
    log.info("%s: upload resynchronised at byte %d", what, end)
    upload.follow(response)
    return end


def _cancel(client: RegistryClient, location: str, scopes: frozenset[str]) -> None:
    """Best effort ``DELETE`` of an unfinished upload."""
    try:
        response = client.send("DELETE", location, scopes=scopes, retry=False)
        response.close()
        if response.status_code not in (200, 202, 204, 404):
            log.info("cancelling an upload answered HTTP %d", response.status_code)
    except OCIError as exc:
        log.debug("cancelling upload failed: %s", exc)
