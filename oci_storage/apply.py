"""Apply one OCI image layer (a gzip, zstd or plain tar stream) onto a directory: the
security core of the store, the equivalent of containers/storage's ``ApplyDiff``.

Python's :mod:`tarfile` is used only as a streaming header parser (``mode="r|"``); every
file-system change is made by this module, relative to directory file descriptors, so
that no entry of the layer can create, change or read anything outside the root.

Design choices (documented behaviour, each shown by ``tests/test_apply.py``):

* **Names** are cleaned as containers/storage does: leading ``/`` stripped (an absolute
  name means "relative to the layer root", as GNU tar and c/storage treat it), then
  lexically normalised; a name whose normal form still climbs out (``../x``,
  ``a/../../x``) is refused with :class:`UnsafeArchiveError` naming the entry. The same
  applies to hardlink targets.
* **Symlinks in parent components** are followed *inside the root*, like
  ``openat2(RESOLVE_IN_ROOT)`` or the chroot that c/storage extracts in: an absolute
  target restarts from the root, ``..`` at the root stays at the root. The walk is done one
  component at a time with ``O_NOFOLLOW|O_DIRECTORY`` opens relative to the previous
  directory's fd, so the kernel never follows a symlink for us. Chains are followed up to
  40 hops; more (a loop) is an :class:`UnsafeArchiveError`. The last component of an
  entry is never followed: a symlink there is replaced, not written through.
* **Missing parent directories** are created (0755, root-owned); a parent component that
  exists but is neither a directory nor a symlink to one is an
  :class:`UnsafeArchiveError` (no silent replacement).
* **The root** can get metadata from a ``.``/``/`` directory entry but never another type:
  any non-directory entry naming the root is refused (CVE-2021-29136).
* **Hardlinks** must name an existing non-directory entry inside the root (resolved the
  same way, last component not followed, so a link to a symlink links the symlink
  itself); forward and dangling hardlinks are refused. As in containers/storage, a
  hardlink header's owner, xattrs, mode and mtime are applied to the shared inode.
* **Whiteouts**: :attr:`WhiteoutMode.DELETE` deletes (vfs), :attr:`WhiteoutMode.OVERLAY`
  records them as overlay whiteouts (char 0/0, ``trusted.overlay.opaque=y``). Other
  ``.wh..wh.`` AUFS metadata entries are skipped. ``.wh.`` with an empty, ``.`` or ``..``
  name is refused.
* **xattrs** from PAX ``SCHILY.xattr.*`` are applied only when allowed by
  :attr:`ApplyOptions.xattr_prefixes` (default: ``user.*`` except ``user.overlay.*``,
  ``security.capability``, ``security.ima``); ``trusted.*`` (including
  ``trusted.overlay.*``) and ``security.selinux`` are dropped. ENOTSUP/EPERM from the
  file system are tolerated.
* **Malformed tar** (bad or lying sizes, bad headers, data after the end-of-archive
  marker that is not zero padding, unsupported entry types, sparse files, corrupt
  compression) is an :class:`UnsafeArchiveError`; going over an :class:`ApplyLimits` limit
  is a :class:`LayerLimitError`. No :mod:`tarfile` exception escapes.

On any error the partly written root is the caller's to discard.
"""

from __future__ import annotations

import enum
import errno
import math
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import attrs

from oci_image._blobio import CHUNK, DecompressingReader, PeekReader, detect_compression
from oci_image.errors import DiffIDMismatchError, OCIError
from oci_image.spec import Digest, DigestHasher, Readable, VerifiedStream

from .errors import LayerLimitError, UnsafeArchiveError

if TYPE_CHECKING:  # tar-split hook (tarsplit imports this module)
    from .tarsplit import TarSplitWriter

__all__ = [
    "AppliedLayer",
    "ApplyLimits",
    "ApplyOptions",
    "DevicePolicy",
    "WhiteoutMode",
    "apply_layer",
    "clean_name",
]

WHITEOUT_PREFIX: Final = ".wh."
WHITEOUT_META_PREFIX: Final = ".wh..wh."
WHITEOUT_OPAQUE: Final = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR: Final = "trusted.overlay.opaque"

_MAX_SYMLINK_HOPS: Final = 40
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_EXTENDED_TYPES: Final = frozenset({tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                                    tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK})
_TIME_NS_MAX: Final = (1 << 63) - 1


class WhiteoutMode(enum.Enum):
    """How ``.wh.`` entries are applied."""

    #: vfs / naive: the target holds the lower layers; whiteouts delete from it
    DELETE = "delete"
    #: overlay: the target is an empty per-layer diff dir; whiteouts become char 0/0
    #: devices and opaque markers the ``trusted.overlay.opaque=y`` xattr
    OVERLAY = "overlay"


class DevicePolicy(enum.Enum):
    """What to do with character and block device entries (FIFOs are always created)."""

    CREATE = "create"  #: mknod them (needs CAP_MKNOD; an EPERM propagates)
    SKIP = "skip"  #: leave them out silently
    REFUSE = "refuse"  #: raise UnsafeArchiveError naming the entry


def _default_devices() -> DevicePolicy:
    return DevicePolicy.CREATE if os.geteuid() == 0 else DevicePolicy.SKIP


@attrs.frozen
class ApplyLimits:
    """Bounds on what one layer may cost. Defaults are generous for real images and stop
    bombs: a decompressed stream over ``max_bytes`` is aborted while streaming."""

    #: uncompressed tar bytes read (the diff size), including padding after the end marker
    max_bytes: int = 64 << 30
    #: tar entries (every header that reaches the application, whiteouts included)
    max_entries: int = 4_000_000
    #: one PAX extended header or GNU long name/link body
    max_header_size: int = 1 << 20
    #: all PAX / GNU long-name bodies together
    max_total_header_bytes: int = 256 << 20
    #: consecutive extended headers in front of one entry
    max_header_chain: int = 16
    #: encoded length of an entry name or link target
    max_name_length: int = 4096


DEFAULT_XATTR_PREFIXES: Final = ("user.", "security.capability", "security.ima")
DENIED_XATTR_PREFIXES: Final = ("user.overlay.", "trusted.", "security.selinux")


@attrs.frozen
class ApplyOptions:
    """How entries are applied."""

    #: do not chown (the unprivileged case); files are owned by the applying user
    ignore_ownership: bool = False
    devices: DevicePolicy = attrs.field(factory=_default_devices)
    #: xattr names (or prefixes ending in ``.``) that may be applied; anything in
    #: :data:`DENIED_XATTR_PREFIXES` is dropped regardless
    xattr_prefixes: tuple[str, ...] = DEFAULT_XATTR_PREFIXES


@attrs.frozen
class AppliedLayer:
    """What applying a layer found: digests and sizes as containers/storage records them
    (``diff_id == compressed_digest`` when the input was not compressed)."""

    compressed_digest: Digest
    compressed_size: int
    diff_id: Digest
    uncompressed_size: int
    compression: str
    entries: int
    uids: frozenset[int]
    gids: frozenset[int]
    #: whether the layer had an entry for its root (``./``), which set the root's mode
    root_entry: bool = False


def clean_name(name: str, *, entry: str | None = None) -> str:
    """The root-relative normal form of a tar name (``.`` for the root itself); raise
    :class:`UnsafeArchiveError` when it climbs out of the root or holds a NUL."""
    who = name if entry is None else entry
    if "\x00" in name:
        raise UnsafeArchiveError(f"tar entry {who!r}: name contains a NUL byte", entry=who)
    stripped = name.lstrip("/")
    cleaned = posixpath.normpath(stripped) if stripped else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise UnsafeArchiveError(f"tar entry {who!r}: path {name!r} climbs out of the layer "
                                 "root", entry=who)
    return cleaned


# --------------------------------------------------------------------------- streams


class _HashingReader:
    """Counts and hashes what passes (only counts with ``hash=False``); optionally
    bounds it."""

    def __init__(self, stream: Readable, limit: int | None = None, *,
                 hash: bool = True) -> None:
        self._stream = stream
        self._limit = limit
        self.hasher: DigestHasher | None = DigestHasher("sha256") if hash else None
        self.count = 0
        #: tar-split hook: sees every byte read, in order (see apply_layer's tar_split)
        self.observer: Callable[[bytes], None] | None = None

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n if n is not None and n >= 0 else CHUNK)
        if data:
            self.count += len(data)
            if self._limit is not None and self.count > self._limit:
                raise LayerLimitError(
                    f"layer is over the limit of {self._limit} uncompressed bytes")
            if self.hasher is not None:
                self.hasher.update(data)
            if self.observer is not None:
                self.observer(data)
        return data


class _ReadAhead:
    """Reads ``stream`` in a worker thread, up to ``depth`` chunks ahead: decompressing
    and hashing (C code that releases the GIL) overlap with applying entries (syscalls
    and Python) on a second core. The thread lives only inside one apply_layer call
    (:meth:`close` stops and joins it); an error it meets is raised by :meth:`read`."""

    _END: Final = object()

    def __init__(self, stream: Readable, depth: int = 4) -> None:
        self._stream = stream
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="layer-read-ahead",
                                        daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._stream.read(CHUNK)
                if not self._put(data if data else self._END):
                    return
                if not data:
                    return
        except BaseException as exc:  # handed to the reader, raised there
            self._put(exc)

    def read(self, n: int = -1, /) -> bytes:
        # n is ignored: a chunk as it comes (callers handle short reads)
        if self._done:
            return b""
        item = self._queue.get()
        if item is self._END:
            self._done = True
            return b""
        if isinstance(item, BaseException):
            self._done = True
            raise item
        assert isinstance(item, bytes)
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _TarStream:
    """The uncompressed tar stream as a forward-only file for tarfile's ``r:`` mode:
    tarfile reads headers from it; the applier copies file data straight from it to the
    file (:meth:`copy_to`), one chunk at a time, without tarfile's stream-mode buffer
    (which reads 10 KiB at a time and copies its buffer on every header). ``seek`` only
    moves forward, by skipping. The bytes from the current chunk's start on stay
    readable for :meth:`drain_zeros` (the check after the end-of-archive marker)."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._buf = b""
        self._base = 0  # stream offset of _buf[0]
        self._pos = 0  # read position within _buf

    def tell(self) -> int:
        return self._base + self._pos

    def _more(self) -> bool:
        """Append the next chunk of the stream to what is left unread."""
        data = self._raw.read(CHUNK)
        if not data:
            return False
        self._base += self._pos
        self._buf = self._buf[self._pos:] + data if self._pos < len(self._buf) else data
        self._pos = 0
        return True

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            while self._more():
                pass
            n = len(self._buf) - self._pos
        while len(self._buf) - self._pos < n and self._more():
            pass
        out = self._buf[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def seek(self, offset: int, whence: int = 0, /) -> int:
        if whence != 0 or offset < self.tell():
            raise UnsafeArchiveError(f"tar stream: cannot seek back to offset {offset}")
        while self.tell() < offset:
            if self._pos >= len(self._buf):
                self._base += len(self._buf)
                self._buf, self._pos = b"", 0
                if not self._more():
                    break
            self._pos = min(len(self._buf), self._pos + offset - self.tell())
        return self.tell()

    def copy_to(self, fd: int, size: int, entry: str) -> None:
        """Write the next ``size`` bytes of the stream to ``fd``."""
        remaining = size
        while remaining:
            if self._pos >= len(self._buf):
                self._base += len(self._buf)
                self._buf, self._pos = b"", 0
                if not self._more():
                    raise UnsafeArchiveError(f"tar entry {entry!r}: data is shorter than "
                                             f"its size {size}", entry=entry)
            take = min(remaining, len(self._buf) - self._pos)
            view = memoryview(self._buf)[self._pos:self._pos + take]
            while view:
                view = view[os.write(fd, view):]
            self._pos += take
            remaining -= take

    def drain_zeros(self, end: int) -> None:
        """Read the stream to its end (the digest covers everything, as in c/storage) and
        check that everything from offset ``end`` (the end-of-archive marker) on is zero:
        tarfile stops silently at an invalid header, which must not pass for the end."""
        if end < self._base:
            raise UnsafeArchiveError("cannot verify the end of the tar archive")
        bad = bool(self._buf[end - self._base:].strip(b"\x00"))
        self._buf, self._base, self._pos = b"", self._base + len(self._buf), 0
        try:
            while data := self._raw.read(CHUNK):
                bad = bad or bool(data.strip(b"\x00"))
        except OCIError:
            raise
        except (OSError, EOFError, ValueError) as exc:
            raise UnsafeArchiveError(f"invalid compressed layer: {exc}") from exc
        if bad:
            raise UnsafeArchiveError(f"invalid tar header or data after the end-of-archive "
                                     f"marker at offset {end}")


class _HeaderGuard:
    """Checks extended headers before tarfile reads their bodies into memory."""

    def __init__(self, limits: ApplyLimits) -> None:
        self.limits = limits
        self.total = 0
        self.chain = 0

    def check(self, info: tarfile.TarInfo) -> None:
        name = info.name
        if info.size < 0:
            raise UnsafeArchiveError(f"tar entry {name!r}: negative size {info.size}",
                                     entry=name)
        if info.type in _EXTENDED_TYPES:
            self.chain += 1
            if self.chain > self.limits.max_header_chain:
                raise LayerLimitError(f"more than {self.limits.max_header_chain} extended "
                                      "tar headers in a row")
            if info.size > self.limits.max_header_size:
                raise LayerLimitError(
                    f"extended tar header of {info.size} bytes is over the limit of "
                    f"{self.limits.max_header_size}")
            self.total += info.size
            if self.total > self.limits.max_total_header_bytes:
                raise LayerLimitError(
                    f"extended tar headers total over the limit of "
                    f"{self.limits.max_total_header_bytes} bytes")
        else:
            self.chain = 0
            if info.type == tarfile.GNUTYPE_SPARSE:
                raise UnsafeArchiveError(f"tar entry {name!r}: sparse files are not "
                                         "supported", entry=name)


def _tarinfo_class(guard: _HeaderGuard) -> type[tarfile.TarInfo]:
    class _GuardedTarInfo(tarfile.TarInfo):
        def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
            guard.check(self)
            member: tarfile.TarInfo = tarfile.TarInfo._proc_member(  # type: ignore[attr-defined]
                self, tf)
            if member.size < 0:  # a PAX "size" record can make it negative
                raise UnsafeArchiveError(
                    f"tar entry {member.name!r}: negative size {member.size}",
                    entry=member.name)
            return member

    return _GuardedTarInfo


# --------------------------------------------------------------------------- in-root fs


#: directories _Root keeps open
_DIR_CACHE: Final = 128


class _Root:
    """Resolves root-relative names to (directory fd, last component) without ever
    letting the kernel follow a symlink, interpreting symlinks inside the root."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        # directories opened lately stay open (up to _DIR_CACHE): resolving a name from
        # the root costs a syscall per component, for every entry. Whoever removes or
        # replaces anything under the root calls invalidate().
        self._cache: OrderedDict[tuple[str, ...], tuple[int, tuple[str, ...]]] = \
            OrderedDict()
        self._cached_fds: set[int] = set()
        self._lent: dict[int, int] = {}  # fds handed out and not yet given back

    def open_dir(self, parts: list[str], *, create: bool, entry: str
                 ) -> tuple[int, tuple[str, ...]] | None:
        """Open the directory named by ``parts`` (symlinks resolved in-root). Returns an
        fd to give back with :meth:`close_dir` and the real root-relative path. ``None``
        when it does not exist (or is not a directory) and ``create`` is false."""
        key = tuple(parts)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            self._lent[hit[0]] = self._lent.get(hit[0], 0) + 1
            return hit
        result = self._resolve(parts, create=create, entry=entry)
        if result is not None and result[0] != self.fd:
            if len(self._cache) >= _DIR_CACHE:
                _, (old, _) = self._cache.popitem(last=False)
                self._forget(old)
            self._cache[key] = result
            self._cached_fds.add(result[0])
            self._lent[result[0]] = 1
        return result

    def _forget(self, fd: int) -> None:
        self._cached_fds.discard(fd)
        if fd not in self._lent:
            os.close(fd)

    def invalidate(self) -> None:
        """Forget the cached directories (something under the root was removed or
        replaced, so a cached resolution may be stale). An fd still handed out is
        closed when it is given back."""
        while self._cache:
            _, (fd, _) = self._cache.popitem()
            self._forget(fd)

    def _resolve(self, parts: list[str], *, create: bool, entry: str
                 ) -> tuple[int, tuple[str, ...]] | None:
        stack: list[tuple[int, tuple[str, ...]]] = [(self.fd, ())]
        queue = deque(parts)
        hops = 0
        try:
            while queue:
                comp = queue.popleft()
                if comp in ("", "."):
                    continue
                if comp == "..":
                    if len(stack) > 1:
                        os.close(stack.pop()[0])
                    continue
                cur, path = stack[-1]
                try:
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        return None
                    os.mkdir(comp, 0o755, dir_fd=cur)
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=cur)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        if not create:
                            return None
                        raise UnsafeArchiveError(
                            f"tar entry {entry!r}: parent {'/'.join((*path, comp))!r} is "
                            "not a directory", entry=entry) from None
                    hops += 1
                    if hops > _MAX_SYMLINK_HOPS:
                        raise UnsafeArchiveError(
                            f"tar entry {entry!r}: too many levels of symbolic links "
                            "(a symlink loop?)", entry=entry) from None
                    target = os.readlink(comp, dir_fd=cur)
                    if not target:
                        raise UnsafeArchiveError(
                            f"tar entry {entry!r}: empty symlink in its path",
                            entry=entry) from None
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop()[0])
                    queue.extendleft(reversed(target.split("/")))
                    continue
                stack.append((fd, (*path, comp)))
            result = stack.pop()
            return result
        finally:
            for fd, _ in stack[1:]:
                os.close(fd)

    def close_dir(self, fd: int) -> None:
        """Give back an fd of :meth:`open_dir` (closes it unless it stays cached)."""
        if fd == self.fd:
            return
        lent = self._lent.get(fd)
        if lent is not None:
            if lent > 1:
                self._lent[fd] = lent - 1
                return
            del self._lent[fd]
            if fd in self._cached_fds:
                return
        os.close(fd)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove(name: str, dir_fd: int, root: _Root) -> None:
    """Remove ``name`` in ``dir_fd`` (a whole tree for a directory), never following
    symlinks."""
    st = _lstat(name, dir_fd)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
        root.invalidate()  # a cached resolution may go through it
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _time_ns(mtime: float) -> tuple[int, int]:
    ns = int(mtime * 1_000_000_000) if math.isfinite(mtime) else 0
    ns = max(0, min(ns, _TIME_NS_MAX))
    return ns, ns


# --------------------------------------------------------------------------- applier


class _Applier:
    def __init__(self, root_fd: int, mode: WhiteoutMode, options: ApplyOptions,
                 limits: ApplyLimits) -> None:
        self.root = _Root(root_fd)
        self.mode = mode
        self.options = options
        self.limits = limits
        self.unpacked: set[tuple[str, ...]] = set()
        self.dir_times: dict[tuple[str, ...], tuple[int, int]] = {}
        self.uids: set[int] = set()
        self.root_entry = False
        self.gids: set[int] = set()

    # -- helpers

    def _mark(self, path: tuple[str, ...]) -> None:
        for i in range(len(path) + 1):
            self.unpacked.add(path[:i])

    def _chown_fd(self, fd: int, info: tarfile.TarInfo) -> None:
        if not self.options.ignore_ownership:
            os.fchown(fd, info.uid, info.gid)

    def _chown_at(self, name: str, dir_fd: int, info: tarfile.TarInfo) -> None:
        if not self.options.ignore_ownership:
            os.chown(name, info.uid, info.gid, dir_fd=dir_fd, follow_symlinks=False)

    def _xattrs(self, fd: int, info: tarfile.TarInfo) -> None:
        for key, value in info.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            xname = key[len("SCHILY.xattr."):]
            if xname.startswith(DENIED_XATTR_PREFIXES):
                continue
            if not any(xname == p or (p.endswith(".") and xname.startswith(p))
                       for p in self.options.xattr_prefixes):
                continue
            raw = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(fd, xname, raw)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EINVAL):
                    raise

    # -- entry points

    def entry(self, data: _TarStream, info: tarfile.TarInfo) -> None:
        raw_name = info.name
        if len(os.fsencode(raw_name)) > self.limits.max_name_length or \
                len(os.fsencode(info.linkname)) > self.limits.max_name_length:
            raise LayerLimitError(f"tar entry {raw_name[:100]!r}...: name or link target "
                                  f"over {self.limits.max_name_length} bytes")
        name = clean_name(raw_name, entry=raw_name)
        parts = [] if name == "." else name.split("/")
        base = parts[-1] if parts else "."
        if parts and parts[0].startswith(WHITEOUT_META_PREFIX):
            return  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs ...): skipped like c/storage
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(raw_name, parts[:-1], base)
            return
        if info.uid < 0 or info.gid < 0 or info.uid > 0xFFFFFFFE or info.gid > 0xFFFFFFFE:
            raise UnsafeArchiveError(f"tar entry {raw_name!r}: invalid owner "
                                     f"{info.uid}:{info.gid}", entry=raw_name)
        if "\x00" in info.linkname:
            raise UnsafeArchiveError(f"tar entry {raw_name!r}: link target contains a NUL "
                                     "byte", entry=raw_name)
        self.uids.add(info.uid)
        self.gids.add(info.gid)
        kind = info.type
        if not parts:
            if kind != tarfile.DIRTYPE:
                raise UnsafeArchiveError(f"tar entry {raw_name!r}: refusing to change the "
                                         "type of the layer root", entry=raw_name)
            self._root_dir(info)
            return
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            if self.options.devices is DevicePolicy.SKIP:
                return
            if self.options.devices is DevicePolicy.REFUSE:
                raise UnsafeArchiveError(f"tar entry {raw_name!r}: device nodes are not "
                                         "allowed here", entry=raw_name)
        if kind not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.DIRTYPE,
                        tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                        tarfile.FIFOTYPE):
            raise UnsafeArchiveError(f"tar entry {raw_name!r}: unsupported entry type "
                                     f"{kind!r}", entry=raw_name)
        opened = self.root.open_dir(parts[:-1], create=True, entry=raw_name)
        assert opened is not None
        parent, parent_path = opened
        try:
            path = (*parent_path, base)
            if kind == tarfile.LNKTYPE:
                self._hardlink(raw_name, info, parent, base, path)
            else:
                self._create(data, raw_name, info, parent, base, path)
            self._mark(path)
        finally:
            self.root.close_dir(parent)

    def _root_dir(self, info: tarfile.TarInfo) -> None:
        self.root_entry = True
        fd = self.root.fd
        self._chown_fd(fd, info)
        os.fchmod(fd, info.mode & 0o7777)
        self._xattrs(fd, info)
        self.dir_times[()] = _time_ns(info.mtime)

    def _create(self, data: _TarStream, raw_name: str, info: tarfile.TarInfo,
                parent: int, base: str, path: tuple[str, ...]) -> None:
        kind = info.type
        existing = _lstat(base, parent)
        if existing is not None and not (kind == tarfile.DIRTYPE
                                         and stat.S_ISDIR(existing.st_mode)):
            _remove(base, parent, self.root)
        mode = info.mode & 0o7777
        if kind == tarfile.DIRTYPE:
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(base, 0o700, dir_fd=parent)
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
            try:
                self._chown_fd(fd, info)
                os.fchmod(fd, mode)
                self._xattrs(fd, info)
            finally:
                os.close(fd)
            self.dir_times[path] = _time_ns(info.mtime)
        elif kind == tarfile.SYMTYPE:
            os.symlink(info.linkname, base, dir_fd=parent)
            self._chown_at(base, parent, info)
            os.utime(base, ns=_time_ns(info.mtime), dir_fd=parent, follow_symlinks=False)
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE):
            fmt = {tarfile.CHRTYPE: stat.S_IFCHR, tarfile.BLKTYPE: stat.S_IFBLK,
                   tarfile.FIFOTYPE: stat.S_IFIFO}[kind]
            dev = os.makedev(info.devmajor, info.devminor) if kind != tarfile.FIFOTYPE else 0
            os.mknod(base, fmt | 0o600, dev, dir_fd=parent)
            self._chown_at(base, parent, info)
            # no symlink can be at ``base``: we just created a node there
            os.chmod(base, mode, dir_fd=parent)
            os.utime(base, ns=_time_ns(info.mtime), dir_fd=parent, follow_symlinks=False)
        else:
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent)
            try:
                if info.size:
                    data.copy_to(fd, info.size, raw_name)
                self._chown_fd(fd, info)
                os.fchmod(fd, mode)  # after chown: chown clears setuid/setgid
                self._xattrs(fd, info)  # after chown: chown clears security.capability
                os.utime(fd, ns=_time_ns(info.mtime))
            finally:
                os.close(fd)


    def _hardlink(self, raw_name: str, info: tarfile.TarInfo, parent: int, base: str,
                  path: tuple[str, ...]) -> None:
        target = clean_name(info.linkname, entry=raw_name)
        if target == ".":
            raise UnsafeArchiveError(f"tar entry {raw_name!r}: hardlink to the layer root",
                                     entry=raw_name)
        tparts = target.split("/")
        opened = self.root.open_dir(tparts[:-1], create=False, entry=raw_name)
        if opened is None:
            raise UnsafeArchiveError(f"tar entry {raw_name!r}: hardlink target "
                                     f"{info.linkname!r} does not exist (yet)", entry=raw_name)
        tdir, tpath = opened
        try:
            tbase = tparts[-1]
            st = _lstat(tbase, tdir)
            if st is None:
                raise UnsafeArchiveError(f"tar entry {raw_name!r}: hardlink target "
                                         f"{info.linkname!r} does not exist (yet)",
                                         entry=raw_name)
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeArchiveError(f"tar entry {raw_name!r}: hardlink to a directory "
                                         f"{info.linkname!r}", entry=raw_name)
            if (*tpath, tbase) == path:
                return  # a link to itself: nothing to do
            if (*tpath, tbase)[:len(path)] == path:
                # replacing ``path`` would delete the target inside it first
                raise UnsafeArchiveError(
                    f"tar entry {raw_name!r}: hardlink to {info.linkname!r}, which is "
                    f"inside the entry it replaces", entry=raw_name)
            _remove(base, parent, self.root)
            os.link(tbase, base, src_dir_fd=tdir, dst_dir_fd=parent, follow_symlinks=False)
            self._link_metadata(info, parent, base, st)
        finally:
            self.root.close_dir(tdir)

    def _link_metadata(self, info: tarfile.TarInfo, parent: int, base: str,
                       st: os.stat_result) -> None:
        """As containers/storage's createTarFile: a hardlink header's owner, xattrs, mode
        and mtime go to the shared inode (mode and mtime not when it is a symlink)."""
        self._chown_at(base, parent, info)
        if stat.S_ISLNK(st.st_mode):
            return
        mode = info.mode & 0o7777
        if stat.S_ISREG(st.st_mode):
            fd = os.open(base, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                self._xattrs(fd, info)
                os.fchmod(fd, mode)  # after chown: chown clears setuid/setgid
                os.utime(fd, ns=_time_ns(info.mtime))
            finally:
                os.close(fd)
        else:  # a device node or FIFO (opening a FIFO would block): by name
            os.chmod(base, mode, dir_fd=parent, follow_symlinks=True)
            os.utime(base, ns=_time_ns(info.mtime), dir_fd=parent, follow_symlinks=False)

    # -- whiteouts

    def _whiteout(self, raw_name: str, dir_parts: list[str], base: str) -> None:
        if base == WHITEOUT_OPAQUE:
            self._opaque(raw_name, dir_parts)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise UnsafeArchiveError(f"tar entry {raw_name!r}: whiteout without a valid "
                                     "name", entry=raw_name)
        create = self.mode is WhiteoutMode.OVERLAY
        try:
            opened = self.root.open_dir(dir_parts, create=create, entry=raw_name)
        except UnsafeArchiveError:
            if create and _is_not_dir_error(raw_name, self.root, dir_parts):
                return  # under a path already whited out (``rm -rf /foo/bar``): tolerated
            raise
        if opened is None:
            return  # nothing there to delete
        fd, path = opened
        try:
            _remove(victim, fd, self.root)
            if self.mode is WhiteoutMode.OVERLAY:
                os.mknod(victim, stat.S_IFCHR, os.makedev(0, 0), dir_fd=fd)
                self._mark((*path, victim))
            else:
                # entries of this layer under it are gone too: forget them
                prefix = (*path, victim)
                if prefix in self.unpacked:
                    self.unpacked = {p for p in self.unpacked if p[:len(prefix)] != prefix}
        finally:
            self.root.close_dir(fd)

    def _opaque(self, raw_name: str, dir_parts: list[str]) -> None:
        create = self.mode is WhiteoutMode.OVERLAY
        opened = self.root.open_dir(dir_parts, create=create, entry=raw_name)
        if opened is None:
            return
        fd, path = opened
        try:
            if self.mode is WhiteoutMode.OVERLAY:
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
                self._mark(path)
            else:
                self._prune(fd, path)
        finally:
            self.root.close_dir(fd)

    def _prune(self, fd: int, path: tuple[str, ...]) -> None:
        """Delete what in directory ``fd`` did not come from this layer."""
        for name in os.listdir(fd):
            child = (*path, name)
            if child not in self.unpacked:
                _remove(name, fd, self.root)
                continue
            st = _lstat(name, fd)
            if st is not None and stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    self._prune(sub, child)
                finally:
                    os.close(sub)

    # -- end

    def finish(self) -> None:
        """Set directory mtimes (creating children changed them), deepest first, without
        following symlinks."""
        for path in sorted(self.dir_times, key=len, reverse=True):
            fd = self._open_real(path)
            if fd is None:
                continue
            try:
                os.utime(fd, ns=self.dir_times[path])
            finally:
                self.root.close_dir(fd)

    def _open_real(self, path: tuple[str, ...]) -> int | None:
        fd = self.root.fd
        for comp in path:
            try:
                nxt = os.open(comp, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                self.root.close_dir(fd)
                return None
            self.root.close_dir(fd)
            fd = nxt
        return fd


def _is_not_dir_error(raw_name: str, root: _Root, dir_parts: list[str]) -> bool:
    """Whether ``dir_parts`` fails to resolve because a component is not a directory."""
    try:
        opened = root.open_dir(dir_parts, create=False, entry=raw_name)
    except UnsafeArchiveError:
        return False
    if opened is None:
        return True
    root.close_dir(opened[0])
    return False


# --------------------------------------------------------------------------- public


def apply_layer(stream: Readable, root: str | os.PathLike[str], *,
                mode: WhiteoutMode = WhiteoutMode.DELETE,
                options: ApplyOptions | None = None,
                limits: ApplyLimits | None = None,
                expected_diff_id: Digest | None = None,
                on_entry: Callable[[tarfile.TarInfo], None] | None = None,
                tar_split: TarSplitWriter | None = None) -> AppliedLayer:
    """Apply the layer read from ``stream`` (gzip, zstd, bzip2, xz or plain tar, detected
    by content) onto the existing directory ``root``, and drain ``stream`` to its end.

    Raises :class:`UnsafeArchiveError` for a hostile or malformed layer,
    :class:`LayerLimitError` when a limit of ``limits`` is crossed, and
    :class:`~oci_image.errors.DiffIDMismatchError` when ``expected_diff_id`` is given and
    the uncompressed digest differs. On error, ``root`` is left partly written: the caller
    discards it. Nothing outside ``root`` is created, changed or read.

    ``on_entry`` (if given) sees every parsed header before it is applied.

    ``tar_split`` (if given) is fed every byte of the uncompressed stream, in order, to
    record the layer's tar-split; the caller commits it once this returns (see
    :mod:`oci_storage.tarsplit`).
    """
    options = options if options is not None else ApplyOptions()
    limits = limits if limits is not None else ApplyLimits()
    # a verified stream (the copy engine's) hashes the blob already: once is enough
    verified = stream if isinstance(stream, VerifiedStream) else None
    raw = _HashingReader(stream, hash=verified is None)
    peek = PeekReader(raw)
    compression = detect_compression(peek.peek(6))
    plain = _HashingReader(DecompressingReader(peek, compression), limits.max_bytes)
    if tar_split is not None:  # tar-split hook: record the exact uncompressed stream
        plain.observer = tar_split.feed
    ahead = _ReadAhead(plain)
    data = _TarStream(ahead)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    applier = _Applier(root_fd, mode, options, limits)
    entries = 0
    try:
        guard = _HeaderGuard(limits)
        try:
            # "r:": random-access mode on a forward-only file (see _TarStream)
            tf = tarfile.open(  # noqa: SIM115  (it owns no file)
                fileobj=data, mode="r:",  # type: ignore[call-overload]
                tarinfo=_tarinfo_class(guard))
        except tarfile.ReadError as exc:
            if plain.count != 0 or str(exc) != "empty file":
                raise UnsafeArchiveError(f"layer is not a valid tar stream: {exc}") from exc
            tf = None  # a zero-byte layer: empty
        if tf is not None:
            while True:
                try:
                    info = tf.next()
                except (tarfile.TarError, EOFError) as exc:
                    raise UnsafeArchiveError(f"invalid tar stream: {exc}") from exc
                if info is None:
                    break
                tf.members.clear()  # tarfile keeps every header otherwise
                entries += 1
                if entries > limits.max_entries:
                    raise LayerLimitError(f"layer has more than {limits.max_entries} entries")
                if on_entry is not None:
                    on_entry(info)
                try:
                    applier.entry(data, info)
                except (tarfile.TarError, EOFError) as exc:
                    raise UnsafeArchiveError(f"tar entry {info.name!r}: {exc}",
                                             entry=info.name) from exc
                except OSError as exc:
                    exc.add_note(f"while applying tar entry {info.name!r}")
                    raise
            data.drain_zeros(tf.offset)
        else:
            data.drain_zeros(0)
        applier.finish()
        while raw.read(CHUNK):  # whatever the decompressor left (the digest covers it)
            pass
    except (OCIError, OSError):
        raise
    except ValueError as exc:  # e.g. a NUL byte in a name reaching os.*
        raise UnsafeArchiveError(f"invalid layer: {exc}") from exc
    finally:
        ahead.close()
        applier.root.invalidate()
        os.close(root_fd)
    assert plain.hasher is not None
    diff_id = plain.hasher.digest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise DiffIDMismatchError(f"layer diff_id is {diff_id}, expected {expected_diff_id}")
    return AppliedLayer(
        compressed_digest=verified.actual_digest if verified is not None
        else raw.hasher.digest() if raw.hasher is not None else diff_id,
        compressed_size=raw.count,
        diff_id=diff_id, uncompressed_size=plain.count, compression=compression,
        entries=entries, uids=frozenset(applier.uids), gids=frozenset(applier.gids),
        root_entry=applier.root_entry)

