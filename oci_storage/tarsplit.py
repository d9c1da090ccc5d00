"""tar-split: remember the exact bytes of a layer's uncompressed tar stream, minus the
file contents, so the identical stream (same ``diff_id``) can be rebuilt later from the
applied files. The on-disk format is the one containers/storage keeps next to
``layers.json`` as ``<layer-id>.tar-split.gz`` (github.com/vbatts/tar-split,
``tar/storage`` JSON packer, ``tar/asm`` disassembly):

* a gzip stream of JSON documents, one per line, each
  ``{"type":T,"name":...,"name_raw":...,"size":N,"payload":...,"position":P}``;
* ``type`` 2 (*segment*): ``payload`` is base64 of raw stream bytes (headers, PAX and GNU
  long-name bodies, block padding, the end-of-archive blocks and anything after them);
* ``type`` 1 (*file*): one per tar entry (every header the Go ``archive/tar`` reader
  returns, directories and links too); ``name`` (or ``name_raw``, base64, when the name
  is not valid UTF-8) is the entry's full name; ``size`` (omitted when 0) the length of
  its data; ``payload`` the big-endian CRC-64 (ISO polynomial, Go ``hash/crc64``) of the
  data, ``null`` when there is none. The data itself is read back from the applied tree;
* ``position`` counts the documents from 0. Two file documents whose names are equal
  after ``filepath.Clean`` make the stream unusable (the Go packer and unpacker refuse
  them: ``duplicates of file paths not supported``).

Segments are cut where the Go disassembler cuts them (padding of one entry plus the
headers of the next; the end blocks; then at most 1 MiB pieces), so a tar-split written
here is readable by c/storage and, for ordinary layers, has the same documents.

Deviation from Go, on purpose: a header-only entry (link, symlink, device, directory,
FIFO) whose header carries a non-zero size gets ``size`` 0 here (Go writes the header
value, and then cannot re-assemble it).

Typical use::

    with TarSplitWriter(layer_dir / f"{layer_id}.tar-split.gz") as ts:
        applied = apply_layer(blob, root, tar_split=ts)
    # later, for a push: the same bytes as the original uncompressed layer
    for chunk in reassemble(layer_dir / f"{layer_id}.tar-split.gz", root): ...
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import posixpath
import stat
import tempfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import attrs
import fastcrc.crc64  # (the submodule alone: fastcrc's package imports all widths)

from oci_image._blobio import CHUNK
from oci_image.spec import Readable

from .apply import _Root, clean_name
from .errors import StoreCorruptError, TarSplitError, UnsafeArchiveError

__all__ = [
    "FILE_TYPE",
    "SEGMENT_TYPE",
    "Crc64",
    "TarSplitEntry",
    "TarSplitError",
    "TarSplitRecorder",
    "TarSplitWriter",
    "crc64_iso",
    "read_entries",
    "reassemble",
    "reassemble_stream",
]

#: ``storage.FileType``: a tar entry; its data is read back from the applied tree
FILE_TYPE: Final = 1
#: ``storage.SegmentType``: raw bytes of the stream
SEGMENT_TYPE: Final = 2

_BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(_BLOCK)
_PADDING_CHUNK: Final = 1 << 20  # Go disassembler's trailing-padding chunk
_HEADER_ONLY: Final = frozenset(b"123456")  # link, symlink, chr, blk, dir, fifo




#: tar-split documents are compressed in batches of this many bytes
_OUT_BATCH: Final = 1 << 16


# --------------------------------------------------------------------------- CRC-64


def crc64_iso(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """Go's ``crc64.Update(crc, crc64.MakeTable(crc64.ISO), data)``: CRC-64/GO-ISO
    (``crc64_iso(b"123456789") == 0xB90956C775A41001``), by fastcrc's native code
    (about 20 GB/s; a table-driven Python loop managed 10 MB/s)."""
    return fastcrc.crc64.go_iso(data, initial=crc)


class Crc64:
    """Incremental :func:`crc64_iso`; :meth:`digest` is Go's ``Sum`` (8 bytes, big
    endian), the ``payload`` of a file document."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self.value = fastcrc.crc64.go_iso(data, initial=self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(8, "big")


# --------------------------------------------------------------------------- records


@attrs.frozen
class TarSplitEntry:
    """One document of a tar-split stream."""

    type: int
    position: int
    #: file documents: the entry name as bytes (from ``name`` or ``name_raw``)
    name: bytes = b""
    size: int = 0
    #: segment: raw bytes; file: the 8-byte CRC-64 (``None`` when absent)
    payload: bytes | None = None


def _go_json_string(text: str) -> str:
    """``text`` as Go's ``encoding/json`` writes it (HTML-safe escapes included)."""
    return (json.dumps(text, ensure_ascii=False).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _encode(entry: TarSplitEntry) -> bytes:
    parts = [f'{{"type":{entry.type}']
    if entry.name:
        try:
            parts.append(f',"name":{_go_json_string(entry.name.decode("utf-8"))}')
        except UnicodeDecodeError:
            parts.append(f',"name_raw":"{base64.b64encode(entry.name).decode()}"')
    if entry.size:
        parts.append(f',"size":{entry.size}')
    payload = "null" if entry.payload is None else \
        f'"{base64.b64encode(entry.payload).decode()}"'
    parts.append(f',"payload":{payload},"position":{entry.position}}}\n')
    return "".join(parts).encode("utf-8")


def _go_clean(name: bytes) -> bytes:
    """Go's ``filepath.Clean`` (POSIX): the key the Go packer uses to find duplicates."""
    if not name:
        return b"."
    cleaned = posixpath.normpath(name)
    if cleaned.startswith(b"//"):
        cleaned = b"/" + cleaned.lstrip(b"/")
    return cleaned


# --------------------------------------------------------------------------- writing


def _cstring(field: bytes) -> bytes:
    end = field.find(b"\x00")
    return field if end < 0 else field[:end]


def _numeric(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU), two's complement
        inv = 0xFF if field[0] & 0x40 else 0
        value = 0
        for i, c in enumerate(field):
            c ^= inv
            if i == 0:
                c &= 0x7F
            value = value << 8 | c
        return ~value if inv else value
    text = field.strip(b" \x00")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise UnsafeArchiveError(f"invalid tar header: bad {what} field {field!r}") from None


def _pad(n: int) -> int:
    return -n % _BLOCK


def _parse_pax(body: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    i = 0
    while i < len(body):
        space = body.find(b" ", i)
        try:
            length = int(body[i:space]) if space > i else 0
        except ValueError:
            length = 0
        record = body[i:i + length]
        if length <= space - i or len(record) != length or not record.endswith(b"\n") \
                or b"=" not in record:
            raise UnsafeArchiveError("invalid PAX extended header record")
        key, _, value = record[space - i + 1:-1].partition(b"=")
        records[key] = value
        i += length
    return records


# what the parser wants next from the stream
_HEADER: Final = "header"  # a header block (the stream may end cleanly before it)
_EOF2: Final = "eof2"  # the block after the first zero block
_BODY: Final = "body"  # PAX / GNU long-name body (buffered)
_PADDING: Final = "padding"
_CONTENT: Final = "content"  # file data: checksummed, not kept
_TRAILER: Final = "trailer"  # everything after the end-of-archive blocks

_Want = tuple[str, int]


class TarSplitWriter:
    """Records the tar-split of an uncompressed tar stream fed to :meth:`feed` in order
    (``apply_layer(..., tar_split=writer)`` does that) and writes it, gzip'd, to ``path``
    atomically: a temporary file in the same directory is renamed over ``path`` by
    :meth:`commit`; :meth:`abort` (or leaving the ``with`` block by an exception) removes
    it. Malformed tar raises :class:`UnsafeArchiveError`; what tar-split cannot describe
    raises :class:`TarSplitError`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                   suffix=".tmp")
        self._tmp = Path(tmp)
        self._file: IO[bytes] = os.fdopen(fd, "wb")
        # Go's default level (6), not Python's 9; documents are batched into _out
        self._gz = gzip.GzipFile(fileobj=self._file, mode="wb", mtime=0, compresslevel=6)
        self._out: list[bytes] = []
        self._out_size = 0
        self._position = 0
        self._seen: set[bytes] = set()
        self._pending = bytearray()  # raw bytes not yet written as a segment
        self._buf = bytearray()  # the header block or body being collected
        self._crc = Crc64()
        self._got = 0  # content bytes of the current entry seen so far
        self._done = False
        self._parser = self._parse()
        self._want: _Want = next(self._parser)
        #: documents written so far
        self.entries = 0

    # -- output

    def _emit(self, entry: TarSplitEntry) -> None:
        line = _encode(entry)
        self._out.append(line)
        self._out_size += len(line)
        if self._out_size >= _OUT_BATCH:
            self._write_out()
        self._position += 1
        self.entries += 1

    def _flush_segment(self) -> None:
        if self._pending:
            self._emit(TarSplitEntry(SEGMENT_TYPE, self._position,
                                     payload=bytes(self._pending)))
            self._pending.clear()

    def _file_entry(self, name: bytes, size: int, payload: bytes | None) -> None:
        key = _go_clean(name)
        if key in self._seen:
            raise TarSplitError(f"tar entry {name!r}: duplicate path; tar-split cannot "
                                "describe archives with duplicate entries")
        self._seen.add(key)
        self._emit(TarSplitEntry(FILE_TYPE, self._position, name=name, size=size,
                                 payload=payload))

    def _write_out(self) -> None:
        if self._out:
            self._gz.write(b"".join(self._out))
            self._out.clear()
            self._out_size = 0

    # -- parsing (a generator fed by feed(): it yields what it wants next)

    def _parse(self) -> Generator[_Want, bytes, None]:
        while True:
            pax: dict[bytes, bytes] = {}
            long_name: bytes | None = None
            while True:  # the chain of headers in front of one entry
                blk = yield (_HEADER, _BLOCK)
                if blk == _ZERO_BLOCK:
                    yield (_EOF2, _BLOCK)
                    self._flush_segment()
                    while True:
                        yield (_TRAILER, 0)
                name, typeflag, size = self._header(blk)
                if size < 0:
                    raise UnsafeArchiveError(f"tar entry {name!r}: negative size")
                if typeflag in b"xgXLK":
                    body = (yield (_BODY, size)) if size else b""
                    if typeflag in b"LK":
                        if typeflag == b"L":
                            long_name = _cstring(body)
                        if _pad(size):
                            yield (_PADDING, _pad(size))
                        continue
                    records = _parse_pax(body)
                    if any(k.startswith(b"GNU.sparse.") for k in records):
                        raise TarSplitError(f"tar entry {name!r}: sparse files are not "
                                            "supported")
                    if typeflag == b"g":
                        if b"path" in records or b"size" in records:
                            raise TarSplitError("global PAX header with path or size")
                        # Go's reader returns a global header as an entry of its own
                        self._flush_segment()
                        self._file_entry(name, 0, None)
                        if _pad(size):  # Go accounts it with the next header
                            yield (_PADDING, _pad(size))
                        break
                    pax = records
                    if _pad(size):
                        yield (_PADDING, _pad(size))
                    continue
                if long_name is not None:
                    name = long_name
                if b"path" in pax:
                    name = pax[b"path"]
                if b"size" in pax:
                    try:
                        size = int(pax[b"size"], 10)
                    except ValueError:
                        raise UnsafeArchiveError(f"tar entry {name!r}: bad PAX size") \
                            from None
                    if size < 0:
                        raise UnsafeArchiveError(f"tar entry {name!r}: negative size")
                if typeflag == b"S":
                    raise TarSplitError(f"tar entry {name!r}: sparse files are not "
                                        "supported")
                header_only = typeflag[0] in _HEADER_ONLY or (
                    typeflag == b"\x00" and name.endswith(b"/"))
                length = 0 if header_only else size
                self._flush_segment()
                if length:
                    self._crc = Crc64()
                    self._got = 0
                    yield (_CONTENT, length)
                    self._file_entry(name, length, self._crc.digest())
                    if _pad(length):
                        yield (_PADDING, _pad(length))
                else:
                    self._file_entry(name, 0, None)
                break

    @staticmethod
    def _header(blk: bytes) -> tuple[bytes, bytes, int]:
        stored = _numeric(blk[148:156], "checksum")
        unsigned = sum(blk[:148]) + 8 * 32 + sum(blk[156:])
        if stored != unsigned and stored != unsigned - 256 * sum(
                1 for b in blk[:148] + blk[156:] if b & 0x80):
            raise UnsafeArchiveError("invalid tar header: checksum mismatch")
        name = _cstring(blk[0:100])
        if blk[257:263] == b"ustar\x00" and blk[263:265] == b"00":
            prefix = _cstring(blk[345:476] if blk[508:512] == b"tar\x00" else blk[345:500])
            if prefix:
                name = prefix + b"/" + name
        return name, blk[156:157], _numeric(blk[124:136], "size")

    def _advance(self, value: bytes) -> None:
        self._want = self._parser.send(value)
        while self._want[1] == 0 and self._want[0] != _TRAILER:
            self._want = self._parser.send(b"")

    # -- input

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the uncompressed tar stream."""
        if self._done:
            raise ValueError("tar-split writer already committed or aborted")
        view = memoryview(data).cast("B")
        i = 0
        while i < len(view):
            kind, n = self._want
            if kind == _TRAILER:
                self._pending += view[i:]
                i = len(view)
                while len(self._pending) >= _PADDING_CHUNK:
                    chunk = bytes(self._pending[:_PADDING_CHUNK])
                    del self._pending[:_PADDING_CHUNK]
                    self._emit(TarSplitEntry(SEGMENT_TYPE, self._position, payload=chunk))
            elif kind == _CONTENT:
                take = min(n - self._got, len(view) - i)
                self._crc.update(view[i:i + take])
                self._got += take
                i += take
                if self._got == n:
                    self._advance(b"")
            else:
                take = min(n - len(self._buf), len(view) - i)
                self._buf += view[i:i + take]
                i += take
                if len(self._buf) == n:
                    value = bytes(self._buf)
                    self._buf.clear()
                    self._pending += value
                    self._advance(value)

    # -- finishing

    def commit(self) -> None:
        """Check the stream ended where a tar stream may end, then write the file."""
        if self._done:
            raise ValueError("tar-split writer already committed or aborted")
        kind, _ = self._want
        if kind == _EOF2 or (kind == _HEADER and not self._buf):
            self._pending += self._buf  # a short second end block: zeros, kept as is
        elif kind != _TRAILER:
            self.abort()
            raise UnsafeArchiveError(f"tar stream truncated (in {kind})")
        self._flush_segment()
        self._done = True
        try:
            self._write_out()
            self._gz.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self._discard()
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        """Forget the stream; ``path`` is left untouched."""
        if not self._done:
            self._done = True
            self._discard()

    def _discard(self) -> None:
        try:
            self._gz.close()
        except (OSError, ValueError):
            pass
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TarSplitWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.commit()


class TarSplitRecorder:
    """A readable wrapper over an uncompressed tar stream that feeds everything read
    through it to a :class:`TarSplitWriter` (for streams not applied by
    :func:`~oci_storage.apply.apply_layer`, which takes the writer directly)."""

    def __init__(self, stream: Readable, writer: TarSplitWriter) -> None:
        self._stream = stream
        self.writer = writer

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n)
        if data:
            self.writer.feed(data)
        return data


# --------------------------------------------------------------------------- reading


def _corrupt(path: Path, why: str) -> StoreCorruptError:
    return StoreCorruptError(f"tar-split {str(path)!r}: {why}")


def _b64(value: object, path: Path, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _corrupt(path, f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _corrupt(path, f"{what} is not valid base64") from None


def read_entries(path: str | os.PathLike[str]) -> Iterator[TarSplitEntry]:
    """The documents of the gzip'd tar-split file ``path``, checked (types, fields,
    duplicate names as the Go unpacker checks them); :class:`StoreCorruptError` when it
    cannot be read."""
    path = Path(path)
    seen: set[bytes] = set()
    decoder = json.JSONDecoder()
    try:
        with gzip.open(path, "rb") as gz:
            for line in gz:
                text = line.decode("utf-8").strip()
                pos = 0
                while pos < len(text):  # Go's json.Decoder takes any whitespace between
                    doc, end = decoder.raw_decode(text, pos)
                    pos = end
                    while pos < len(text) and text[pos].isspace():
                        pos += 1
                    yield _entry(doc, path, seen)
    except (OSError, EOFError, ValueError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise _corrupt(path, str(exc)) from exc


def _entry(doc: object, path: Path, seen: set[bytes]) -> TarSplitEntry:
    if not isinstance(doc, dict):
        raise _corrupt(path, "a document is not a JSON object")
    kind = doc.get("type")
    position = doc.get("position", 0)
    size = doc.get("size", 0)
    if kind not in (FILE_TYPE, SEGMENT_TYPE) or type(kind) is not int:
        raise _corrupt(path, f"unknown document type {kind!r}")
    if type(position) is not int or type(size) is not int or size < 0:
        raise _corrupt(path, "bad position or size")
    payload = _b64(doc.get("payload"), path, "payload")
    if kind == SEGMENT_TYPE:
        return TarSplitEntry(SEGMENT_TYPE, position, payload=payload or b"")
    raw = _b64(doc.get("name_raw"), path, "name_raw")
    name_text = doc.get("name", "")
    if not isinstance(name_text, str):
        raise _corrupt(path, "name is not a string")
    name = raw if raw else name_text.encode("utf-8", "surrogateescape")
    key = _go_clean(name)
    if key in seen:
        raise _corrupt(path, f"duplicate path {name!r}")
    seen.add(key)
    if size and (payload is None or len(payload) != 8):
        raise _corrupt(path, f"entry {name!r}: missing or bad CRC-64 payload")
    return TarSplitEntry(FILE_TYPE, position, name=name, size=size, payload=payload)


def _open_in_root(root: _Root, name: bytes, tar_split: Path) -> int:
    text = os.fsdecode(name)
    try:
        cleaned = clean_name(text)
    except UnsafeArchiveError as exc:
        raise _corrupt(tar_split, str(exc)) from None
    parts = [] if cleaned == "." else cleaned.split("/")
    if not parts:
        raise _corrupt(tar_split, f"entry {name!r} with data names the root")
    try:
        opened = root.open_dir(parts[:-1], create=False, entry=text)
    except UnsafeArchiveError as exc:
        raise _corrupt(tar_split, str(exc)) from None
    if opened is None:
        raise _corrupt(tar_split, f"file {text!r} is missing from the layer")
    parent, _ = opened
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=parent)
    except OSError as exc:
        raise _corrupt(tar_split, f"file {text!r} cannot be opened: {exc}") from None
    finally:
        root.close_dir(parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _corrupt(tar_split, f"file {text!r} is not a regular file in the layer")
    return fd


def reassemble(tar_split_path: str | os.PathLike[str], root: str | os.PathLike[str], *,
               chunk_size: int = CHUNK) -> Iterator[bytes]:
    """Yield the original uncompressed tar stream, rebuilt from the tar-split file and
    the files under ``root`` (names resolved inside ``root`` as
    :func:`~oci_storage.apply.apply_layer` resolves them; a symlink is never followed
    out of ``root``, nor at the last component). Only entries listed in the tar-split
    are read, so ``root`` may hold more (a vfs layer directory holds the layers below).

    A file whose size or CRC-64 differs raises :class:`StoreCorruptError` naming it;
    the CRC is known only once the file was read, so the error can come after its bytes
    were yielded: a consumer must treat the stream as failed, not just short."""
    path = Path(tar_split_path)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        in_root = _Root(root_fd)
        for entry in read_entries(path):
            if entry.type == SEGMENT_TYPE:
                if entry.payload:
                    yield entry.payload
                continue
            if not entry.size:
                continue
            yield from _file_data(in_root, entry, path, chunk_size)
    finally:
        in_root.invalidate()
        os.close(root_fd)


def _file_data(root: _Root, entry: TarSplitEntry, path: Path,
               chunk_size: int) -> Iterator[bytes]:
    fd = _open_in_root(root, entry.name, path)
    try:
        actual = os.fstat(fd).st_size
        if actual != entry.size:
            raise _corrupt(path, f"file {entry.name!r} has {actual} bytes, expected "
                                 f"{entry.size}")
        crc = Crc64()
        left = entry.size
        while left:
            data = os.read(fd, min(chunk_size, left))
            if not data:
                raise _corrupt(path, f"file {entry.name!r} is shorter than {entry.size} "
                                     "bytes")
            crc.update(data)
            left -= len(data)
            yield data
        if os.read(fd, 1):
            raise _corrupt(path, f"file {entry.name!r} is longer than {entry.size} bytes")
        if crc.digest() != entry.payload:
            raise _corrupt(path, f"file integrity checksum failed for {entry.name!r}")
    finally:
        os.close(fd)


class _IterReader:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            out = self._buf + b"".join(self._it)
            self._buf = b""
            return out
        while len(self._buf) < n:
            try:
                self._buf += next(self._it)
            except StopIteration:
                break
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def reassemble_stream(tar_split_path: str | os.PathLike[str],
                      root: str | os.PathLike[str]) -> Readable:
    """:func:`reassemble` as a readable stream (``read(n)``)."""
    return _IterReader(reassemble(tar_split_path, root))
