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

from .errors import ContentTooLargeError, CopyCancelledError, TransportError
from .spec import DEFAULT_SIZE_LIMIT, Compression, Descriptor, Readable, VerifyingReader

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
    "DecompressingSink",
    "FileSection",
    "PeekReader",
    "atomic_write_bytes",
    "detect_compression",
    "open_decompressed",
    "read_limited",
    "read_verified",
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
    """Base for readers that produce output in chunks from an input stream. Reads may
    return fewer bytes than asked (like a raw file); ``b""`` means the end."""

    def __init__(self, stream: Readable) -> None:
        self._stream = stream
        self._pending = b""
        self._offset = 0
        self._eof = False

    def _fill(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, n: int = -1, /) -> bytes:
        want = n if n is not None and n >= 0 else CHUNK
        if want == 0:
            return b""
        while self._offset >= len(self._pending):
            if self._eof:
                return b""
            self._pending, self._offset = self._fill(), 0
        start = self._offset
        if start == 0 and want >= len(self._pending):  # hand the whole piece over, no copy
            data, self._pending = self._pending, b""
            return data
        self._offset = start + want
        return self._pending[start:start + want]

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class _ZstdFrames:
    """Follows the zstd frame structure (frame and block headers only, skipping block
    contents) to tell whether a stream ended exactly at the end of a frame -- the
    zstandard readers and writers accept a truncated stream silently."""

    _MAGIC = 0xFD2FB528
    _FCS_SIZES = ((0, 1), (2, 2), (4, 4), (8, 8))  # [fcs flag] -> (multi, single segment)
    _DID_SIZES = (0, 1, 2, 4)

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = 4
        self._state = "magic"
        self._skip = 0
        self._checksum = False
        self.frames = 0

    def feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n:
            if self._skip:
                take = min(self._skip, n - pos)
                self._skip -= take
                pos += take
                continue
            take = min(self._need - len(self._buf), n - pos)
            self._buf += data[pos:pos + take]
            pos += take
            if len(self._buf) == self._need:
                header = bytes(self._buf)
                self._buf.clear()
                self._advance(header)

    def _advance(self, header: bytes) -> None:
        value = int.from_bytes(header, "little")
        if self._state == "magic":
            if value == self._MAGIC:
                self._state, self._need = "descriptor", 1
            elif value & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skippable", 4
            else:
                raise TransportError("invalid zstd data: bad frame magic")
        elif self._state == "skippable":
            self._skip = value
            self._state, self._need = "magic", 4
        elif self._state == "descriptor":
            single = (value >> 5) & 1
            self._checksum = bool((value >> 2) & 1)
            self._skip = (0 if single else 1) + self._DID_SIZES[value & 3] + \
                self._FCS_SIZES[value >> 6][single]
            self._state, self._need = "block", 3
        elif self._state == "block":
            block_type = (value >> 1) & 3
            if block_type == 3:
                raise TransportError("invalid zstd data: reserved block type")
            self._skip = 1 if block_type == 1 else value >> 3
            if value & 1:  # last block of the frame
                if self._checksum:
                    self._state, self._need = "checksum", 4
                else:
                    self._end_frame()
        else:  # checksum
            self._end_frame()

    def _end_frame(self) -> None:
        self.frames += 1
        self._state, self._need = "magic", 4

    @property
    def complete(self) -> bool:
        return (self._state == "magic" and not self._buf and not self._skip
                and self.frames > 0)


class _Inflater:
    """gzip / bzip2 / xz decompression with bounded output per call (``max_length``),
    following concatenated members. Input goes in with :meth:`push`; output comes out
    of :meth:`pull` in pieces of at most ``limit`` bytes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._d = self._new()
        self._input = b""
        self._fed = False

    def _new(self) -> Any:
        if self.kind == "gzip":
            return _zlib.decompressobj(zlib.MAX_WBITS | 16)
        if self.kind == "bzip2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def push(self, data: bytes) -> None:
        if data:
            self._fed = True
            self._input = self._input + data if self._input else data

    def pull(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of output; ``b""`` when more input is needed."""
        try:
            while True:
                if self._d.eof:
                    rest = self._d.unused_data + self._input
                    self._input = b""
                    if not rest or rest.strip(b"\x00") == b"":
                        return b""  # nothing more, or zero padding after the last member
                    self._d = self._new()
                    self._input = rest
                if self.kind == "gzip":
                    if not self._input and not self._d.unconsumed_tail:
                        return b""
                    data = self._input or self._d.unconsumed_tail
                    self._input = b""
                    out: bytes = self._d.decompress(data, limit)
                    if self._d.unconsumed_tail and not out and not self._d.eof:
                        continue
                else:
                    if not self._input and self._d.needs_input:
                        return b""
                    data, self._input = self._input, b""
                    out = self._d.decompress(data, limit)
                if out:
                    return out
                if self._d.eof:
                    continue
                if self.kind == "gzip" and not self._d.unconsumed_tail:
                    return b""
        except _DECOMPRESS_ERRORS as exc:
            raise TransportError(f"invalid {self.kind} data: {exc}") from exc

    def finish(self) -> None:
        if not self._fed:
            raise TransportError(f"empty {self.kind} stream")
        if not self._d.eof:
            raise TransportError(f"{self.kind} stream is truncated")


class DecompressingSink:
    """Push-mode decompression: :meth:`write` compressed bytes, the uncompressed bytes go
    to ``on_output`` in pieces of at most ``CHUNK`` bytes as they are produced (so a
    decompression bomb cannot fill memory); :meth:`close` raises :class:`TransportError`
    unless the stream ended cleanly."""

    def __init__(self, kind: str, on_output: Callable[[bytes], None]) -> None:
        if kind not in ("gzip", "zstd", "bzip2", "xz"):
            raise ValueError(f"unknown compression {kind!r}")
        self.kind = kind
        self._on_output = on_output
        self._frames: _ZstdFrames | None = None
        self._inflater: _Inflater | None = None
        if kind == "zstd":
            self._frames = _ZstdFrames()
            self._writer = zstandard.ZstdDecompressor().stream_writer(
                cast(IO[bytes], _CallbackWriter(on_output)), write_size=CHUNK, closefd=False)
        else:
            self._inflater = _Inflater(kind)

    def write(self, data: bytes) -> None:
        if self._frames is not None:
            self._frames.feed(data)
            try:
                self._writer.write(data)
            except zstandard.ZstdError as exc:
                raise TransportError(f"invalid zstd data: {exc}") from exc
            return
        assert self._inflater is not None
        self._inflater.push(data)
        while out := self._inflater.pull(CHUNK):
            self._on_output(out)

    def close(self) -> None:
        if self._frames is not None:
            if not self._frames.complete:
                raise TransportError("zstd stream is truncated")
            return
        assert self._inflater is not None
        self._inflater.finish()


class _CallbackWriter:
    def __init__(self, on_output: Callable[[bytes], None]) -> None:
        self._on_output = on_output

    def write(self, data: bytes) -> int:
        self._on_output(bytes(data))
        return len(data)


class _TrackingReader:
    def __init__(self, stream: Readable, frames: _ZstdFrames) -> None:
        self._stream = stream
        self._frames = frames

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n)
        self._frames.feed(data)
        return data


class _DecompressingReader:
    """Pull-mode decompression with reads bounded by what the caller asks for."""

    def __init__(self, stream: Readable, kind: str) -> None:
        if kind not in ("gzip", "zstd", "bzip2", "xz"):
            raise ValueError(f"unknown compression {kind!r}")
        self._stream = stream
        self.kind = kind
        self._done = False
        self._frames: _ZstdFrames | None = None
        self._inflater: _Inflater | None = None
        if kind == "zstd":
            self._frames = _ZstdFrames()
            self._zstd = zstandard.ZstdDecompressor().stream_reader(
                cast(IO[bytes], _TrackingReader(stream, self._frames)), read_size=CHUNK,
                read_across_frames=True, closefd=False)
        else:
            self._inflater = _Inflater(kind)

    def read(self, n: int = -1, /) -> bytes:
        if self._done:
            return b""
        want = n if n is not None and n > 0 else CHUNK
        if self._frames is not None:
            try:
                out: bytes = self._zstd.read(want)
            except zstandard.ZstdError as exc:
                raise TransportError(f"invalid zstd data: {exc}") from exc
            if not out:
                self._done = True
                if not self._frames.complete:
                    raise TransportError("zstd stream is truncated")
            return out
        assert self._inflater is not None
        while True:
            out = self._inflater.pull(want)
            if out:
                return out
            data = self._stream.read(CHUNK)
            if not data:
                self._done = True
                self._inflater.finish()
                return b""
            self._inflater.push(data)

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


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
