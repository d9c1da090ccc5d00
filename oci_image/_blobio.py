"""Blob plumbing shared by transports and the copy engine: compression sniffing,
pull-based (de)compressing readers, atomic file writes and bounded file sections.

Readers here are pull-based and run in the caller's thread, so an error raised by an inner
:class:`~oci_image.spec.VerifyingReader` at EOF surfaces in the consumer's ``read`` call
before the consumer commits anything.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import lzma
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final, cast

import zstandard

from .errors import CopyCancelledError, TransportError
from .spec import Compression, Readable

try:  # zlib-ng inflates 4-5x faster than zlib: diff_id checks and decompression use it
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover - the dependency is declared; stdlib fallback
    _zlib = zlib  # type: ignore[misc]

# (the zlib_ng stub declares ``error`` as an instance; it is an exception class)
_DECOMPRESS_ERRORS: Final[tuple[type[BaseException], ...]] = (
    zlib.error, cast(type[Exception], _zlib.error), zstandard.ZstdError, OSError, EOFError,
    lzma.LZMAError)


__all__ = [
    "CHUNK",
    "CompressingReader",
    "DecompressingReader",
    "FileSection",
    "PeekReader",
    "atomic_write_bytes",
    "detect_compression",
    "open_decompressed",
]

CHUNK: Final = 1 << 20

_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_BZIP2_MAGIC: Final = b"BZh"
_XZ_MAGIC: Final = b"\xfd7zXZ\x00"


def detect_compression(head: bytes) -> str:
    """``gzip``, ``zstd``, ``bzip2``, ``xz`` or ``none``, from the first bytes."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_BZIP2_MAGIC):
        return "bzip2"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    return "none"


class PeekReader:
    """Lets the first bytes of a stream be looked at without consuming them."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._buffer = b""

    def peek(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self._stream.read(n - len(self._buffer))
            if not chunk:
                break
            self._buffer += chunk
        return self._buffer[:n]

    def read(self, n: int = -1, /) -> bytes:
        if self._buffer:
            if n is None or n < 0 or n >= len(self._buffer):
                data, self._buffer = self._buffer, b""
                return data
            data, self._buffer = self._buffer[:n], self._buffer[n:]
            return data
        return self._stream.read(n)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _ChunkedReader:
    """Base for readers that produce output in chunks from an input stream."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._pending = bytearray()
        self._eof = False

    def _fill(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, n: int = -1, /) -> bytes:
        want = n if n is not None and n >= 0 else CHUNK
        while len(self._pending) < want and not self._eof:
            out = self._fill()
            if out:
                self._pending += out
        if not self._pending:
            return b""
        take = min(want, len(self._pending)) if want else 0
        data = bytes(self._pending[:take])
        del self._pending[:take]
        return data

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class IncrementalDecompressor:
    """Feed compressed chunks, get uncompressed bytes; :meth:`finish` checks that the
    stream ended cleanly. gzip and zstd may consist of several concatenated members."""

    def __init__(self, kind: str) -> None:
        if kind not in ("gzip", "zstd", "bzip2", "xz"):
            raise ValueError(f"unknown compression {kind!r}")
        self.kind = kind
        self._d = self._new()
        self._fed = False

    def _new(self) -> Any:
        if self.kind == "gzip":
            return _zlib.decompressobj(zlib.MAX_WBITS | 16)
        if self.kind == "zstd":
            return zstandard.ZstdDecompressor().decompressobj()
        if self.kind == "bzip2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        try:
            if self._d.eof:
                return self._restart(data)
            out: bytes = self._d.decompress(data)
            self._fed = True
            if self._d.eof and self._d.unused_data:
                out += self._restart(self._d.unused_data)
            return out
        except _DECOMPRESS_ERRORS as exc:
            raise TransportError(f"invalid {self.kind} data: {exc}") from exc

    def _restart(self, rest: bytes) -> bytes:
        if self.kind not in ("gzip", "zstd") or rest.strip(b"\x00") == b"":
            return b""  # trailing zero padding (or garbage the digest still covers)
        self._d = self._new()
        return self.feed(rest)

    def finish(self) -> bytes:
        if not self._fed:
            raise TransportError(f"empty {self.kind} stream")
        out = b""
        if self.kind == "gzip":
            out = self._d.flush()
        if not self._d.eof:
            raise TransportError(f"{self.kind} stream is truncated")
        return out


class _DecompressingReader(_ChunkedReader):
    def __init__(self, stream: Readable, kind: str) -> None:
        super().__init__(stream)
        self._inc = IncrementalDecompressor(kind)

    def _fill(self) -> bytes:
        data = self._stream.read(CHUNK)
        if not data:
            self._eof = True
            return self._inc.finish()
        return self._inc.feed(data)


def DecompressingReader(stream: Readable, compression: str) -> Readable:
    """A reader of the uncompressed bytes of ``stream`` (``compression`` as returned by
    :func:`detect_compression`; ``none`` returns ``stream`` itself)."""
    if compression == "none":
        return stream
    return _DecompressingReader(stream, compression)


def open_decompressed(stream: Readable) -> tuple[Readable, str]:
    """Sniff the compression of ``stream``; return an uncompressed reader and the name."""
    peek = PeekReader(stream)
    kind = detect_compression(peek.peek(6))
    return DecompressingReader(peek, kind), kind


class _GzipCompressor(_ChunkedReader):
    def __init__(self, stream: Readable, level: int) -> None:
        super().__init__(stream)
        self._c = _zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS | 16)

    def _fill(self) -> bytes:
        data = self._stream.read(CHUNK)
        if not data:
            self._eof = True
            return self._c.flush()
        return self._c.compress(data)


class _ZstdCompressor(_ChunkedReader):
    def __init__(self, stream: Readable, level: int) -> None:
        super().__init__(stream)
        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def _fill(self) -> bytes:
        data = self._stream.read(CHUNK)
        if not data:
            self._eof = True
            out: bytes = self._c.flush()
            return out
        chunk: bytes = self._c.compress(data)
        return chunk


#: defaults as containers/image uses them (gzip: Go's default level 6; zstd: level 3)
DEFAULT_LEVELS: Final = {Compression.GZIP: 6, Compression.ZSTD: 3}


def CompressingReader(stream: Readable, compression: Compression,
                      level: int | None = None) -> Readable:
    """A reader of the ``compression``-compressed bytes of ``stream``."""
    if compression is Compression.GZIP:
        return _GzipCompressor(stream, level if level is not None else 6)
    if compression is Compression.ZSTD:
        return _ZstdCompressor(stream, level if level is not None else 3)
    return stream


class CancellableReader:
    """Raises :class:`CopyCancelledError` on the next read once any of ``events`` is set."""

    def __init__(self, stream: Readable, events: tuple[threading.Event, ...]) -> None:
        self._stream = stream
        self._events = events

    def read(self, n: int = -1, /) -> bytes:
        if any(e.is_set() for e in self._events):
            raise CopyCancelledError("copy cancelled")
        return self._stream.read(n)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class CallbackReader:
    """Calls ``on_read(total_so_far)`` after each chunk (progress reporting)."""

    def __init__(self, stream: Readable, on_read: Callable[[int], None]) -> None:
        self._stream = stream
        self._on_read = on_read
        self._total = 0

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n)
        if data:
            self._total += len(data)
            self._on_read(self._total)
        return data

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class FileSection:
    """A read-only window ``[offset, offset+size)`` of an open file, read with ``pread``
    so that many sections of one file can be read from several threads at once."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd = fd
        self._offset = offset
        self._size = size
        self._pos = 0

    @property
    def size(self) -> int:
        return self._size

    def read(self, n: int = -1, /) -> bytes:
        remaining = self._size - self._pos
        if remaining <= 0:
            return b""
        want = remaining if n is None or n < 0 else min(n, remaining)
        want = min(want, CHUNK * 4)
        data = os.pread(self._fd, want, self._offset + self._pos)
        if not data:
            raise TransportError("file is shorter than its recorded size (truncated archive?)")
        self._pos += len(data)
        return data

    def close(self) -> None:
        pass


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: int = 0o644,
                sync: bool = True) -> Iterator[IO[bytes]]:
    """Write ``path`` atomically: a temp file in the same directory, fsynced, renamed.
    On error the temp file is removed and ``path`` is untouched."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync:
        fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644,
                       sync: bool = True) -> None:
    with atomic_file(path, mode, sync) as f:
        f.write(data)
