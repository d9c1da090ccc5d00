"""Random-access reading and streaming writing of tar archives (``oci-archive:``,
``docker-archive:``).

Reading never extracts anything: the archive's headers are scanned once (Python's
``tarfile`` is used only as a header parser) and members are then read in place with
``pread``, from any number of threads. An archive that is not a seekable regular file
(a pipe, ``/dev/stdin``) or that is compressed is first spooled, decompressed, to a
temporary file, as containers/image does.

Member names are normalised (``./`` and leading ``/`` removed, ``..`` refused), and
symlinks inside the archive are resolved lexically, never leaving the archive.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Final

import attrs

from .._blobio import CHUNK, FileSection, PeekReader, detect_compression, open_decompressed
from ..errors import ArchiveError, BlobNotFoundError, TransportError, UnsafePathError

__all__ = ["TarIndex", "TarWriter", "clean_member_name"]

_MAX_LINK_DEPTH: Final = 16


def clean_member_name(name: str, where: str) -> str:
    """A normalised archive-relative path; :class:`UnsafePathError` if it leaves the
    archive (``..`` past the top)."""
    if "\x00" in name:
        raise UnsafePathError(f"{where}: path {name!r} contains a NUL byte")
    normal = posixpath.normpath("/" + name.lstrip("/")) if name else "/"
    if ".." in name.split("/"):
        # normpath resolved it: refuse anything that tried to climb above the top
        depth = 0
        for part in name.strip("/").split("/"):
            if part == "..":
                depth -= 1
            elif part not in ("", "."):
                depth += 1
            if depth < 0:
                raise UnsafePathError(f"{where}: path {name!r} points outside the archive")
    return normal.lstrip("/")


@attrs.frozen
class _Member:
    name: str
    type: bytes
    offset: int
    size: int
    linkname: str


class TarIndex:
    """The members of a tar archive, readable in place."""

    def __init__(self, fd: int, members: dict[str, _Member], where: str,
                 temp_path: Path | None) -> None:
        self._fd = fd
        self._members = members
        self._where = where
        self._temp = temp_path

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, tmp_dir: str | None = None) -> TarIndex:
        where = str(path)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        temp: Path | None = None
        try:
            st = os.fstat(fd)
            head = os.pread(fd, 6, 0) if stat.S_ISREG(st.st_mode) else b""
            if not stat.S_ISREG(st.st_mode) or detect_compression(head) != "none":
                try:
                    temp_fd, temp = _spool(fd, tmp_dir)
                except TransportError as exc:
                    raise ArchiveError(f"{where}: {exc}") from exc
                os.close(fd)
                fd = temp_fd
            members = _scan(fd, where)
        except BaseException:
            os.close(fd)
            if temp is not None:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
            raise
        return cls(fd, members, where, temp)

    def names(self) -> list[str]:
        return list(self._members)

    def resolve(self, name: str) -> _Member:
        """The regular-file member ``name`` refers to, following symlinks and hard
        links inside the archive."""
        current = clean_member_name(name, self._where)
        for _ in range(_MAX_LINK_DEPTH):
            member = self._members.get(current)
            if member is None:
                raise BlobNotFoundError(f"{self._where}: no file {name!r} in the archive")
            if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
                return member
            if member.type == tarfile.SYMTYPE:
                target = member.linkname
                base = "" if target.startswith("/") else posixpath.dirname(current)
                current = clean_member_name(posixpath.join(base, target.lstrip("/")),
                                            self._where)
                continue
            if member.type == tarfile.LNKTYPE:
                current = clean_member_name(member.linkname, self._where)
                continue
            raise ArchiveError(f"{self._where}: {name!r} is not a regular file")
        raise UnsafePathError(f"{self._where}: too many levels of links resolving {name!r}")

    def exists(self, name: str) -> bool:
        try:
            self.resolve(name)
        except (BlobNotFoundError, ArchiveError):
            return False
        return True

    def open_member(self, name: str) -> FileSection:
        member = self.resolve(name)
        return FileSection(self._fd, member.offset, member.size)

    def read_member(self, name: str, limit: int) -> bytes:
        member = self.resolve(name)
        if member.size > limit:
            from ..errors import ContentTooLargeError

            raise ContentTooLargeError(
                f"{self._where}: {name} is {member.size} bytes, over the limit of {limit}")
        section = FileSection(self._fd, member.offset, member.size)
        parts = []
        while chunk := section.read():
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._temp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()
            self._temp = None


def _spool(fd: int, tmp_dir: str | None) -> tuple[int, Path]:
    """Copy (decompressing) the stream behind ``fd`` into an unlinked-on-close temp file."""
    src = os.fdopen(os.dup(fd), "rb")
    temp_fd, temp_name = tempfile.mkstemp(dir=tmp_dir, prefix="oci-archive-", suffix=".tar")
    try:
        with src, os.fdopen(os.dup(temp_fd), "wb") as out:
            reader, _kind = open_decompressed(PeekReader(src))
            while chunk := reader.read(CHUNK):
                out.write(chunk)
    except BaseException:
        os.close(temp_fd)
        os.unlink(temp_name)
        raise
    return temp_fd, Path(temp_name)


def _scan(fd: int, where: str) -> dict[str, _Member]:
    members: dict[str, _Member] = {}
    with os.fdopen(os.dup(fd), "rb") as f:  # a dup shares the offset: rewind it
        f.seek(0)
        try:
            with tarfile.open(fileobj=f, mode="r:") as tar:
                for info in tar:
                    try:
                        name = clean_member_name(info.name, where)
                    except UnsafePathError:
                        continue  # never looked up, never extracted: ignore it
                    members[name] = _Member(name, info.type, info.offset_data, info.size,
                                            info.linkname)
        except tarfile.TarError as exc:
            raise ArchiveError(f"{where}: not a valid tar archive: {exc}") from exc
    return members


class TarWriter:
    """Writes a tar stream with fixed metadata (mode 0644, owner 0, mtime 0); file
    contents are copied with ``copy_file_range`` where the kernel allows it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def _header(self, info: tarfile.TarInfo) -> None:
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._f.write(info.tobuf(format=tarfile.PAX_FORMAT))

    def add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        self._header(info)
        self._f.write(data)
        self._pad(len(data))

    def add_file(self, name: str, path: Path) -> None:
        size = path.stat().st_size
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        self._header(info)
        self._f.flush()
        with open(path, "rb") as src:
            _copy_range(src, self._f, size)
        self._pad(size)

    def add_dir(self, name: str) -> None:
        info = tarfile.TarInfo(name.rstrip("/") + "/")
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        self._header(info)

    def add_symlink(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        info.mode = 0o777
        self._header(info)

    def _pad(self, size: int) -> None:
        remainder = size % tarfile.BLOCKSIZE
        if remainder:
            self._f.write(b"\0" * (tarfile.BLOCKSIZE - remainder))

    def close(self) -> None:
        self._f.write(b"\0" * (tarfile.BLOCKSIZE * 2))
        self._f.flush()


def _copy_range(src: IO[bytes], dst: IO[bytes], size: int) -> None:
    """Copy ``size`` bytes from ``src`` to the current end of ``dst``."""
    in_fd, out_fd = src.fileno(), dst.fileno()
    copied = 0
    try:
        while copied < size:
            n = os.copy_file_range(in_fd, out_fd, size - copied)
            if n == 0:
                break
            copied += n
    except OSError:
        pass  # not supported between these files: fall back to read/write
    if copied < size:
        src.seek(copied)
        os.lseek(out_fd, 0, os.SEEK_END)
        remaining = size - copied
        while remaining:
            chunk = src.read(min(CHUNK, remaining))
            if not chunk:
                raise ArchiveError(f"{src.name}: file shrank while it was being archived")
            view = memoryview(chunk)
            while view:
                view = view[os.write(out_fd, view):]
            remaining -= len(chunk)
    dst.seek(0, os.SEEK_END)
