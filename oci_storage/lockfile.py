"""containers/storage lock files (``storage.lock``, ``layers.lock``, ``images.lock``,
``containers.lock``, ``mountpoints.lock``, ...), compatible with podman and buildah.

What containers/storage (``pkg/lockfile``) does, and so what we do:

* A lock is an ``fcntl`` whole-file record lock on the lock file: ``F_WRLCK`` for writers,
  ``F_RDLCK`` for readers, blocking (``F_SETLKW``). Go takes classic POSIX locks; we take
  open-file-description locks (``F_OFD_SETLKW``) where the kernel has them: the two kinds
  conflict with each other, so podman and we exclude each other, and an OFD lock is not
  dropped when some other descriptor of the same file is closed in this process (a classic
  POSIX lock is). Where OFD locks are missing we fall back to classic ones.
* POSIX locks do not exclude threads of one process, so each lock file has one
  :class:`LockFile` object per process (:func:`get_lockfile`) with an in-process
  reader/writer lock in front of the file lock. The file is opened on the first hold and
  closed on the last release.
* The "last writer" token: 64 bytes at offset 0 of the lock file (8-byte little-endian
  nanosecond time, 8-byte per-process counter, 4-byte PID, 44 random bytes). A writer
  writes a new token (:meth:`LockFile.record_write`, Go's ``Touch``/``RecordWrite``);
  a reader that remembers the token it saw knows that someone wrote since when the token
  differs (:meth:`LockFile.modified`, :meth:`LockFile.modified_since`). A lock file that
  was never written to is empty, and reads as "modified" every time.

Locks are reentrant per thread: a thread holding the exclusive lock may take it (or the
shared lock) again; a thread holding only the shared lock may take the shared lock again
but not the exclusive one (no upgrades: :class:`RuntimeError`).

Do not fork while holding a lock: a forked child does not hold the parent's locks (its
copies of the lock state are reset, see ``os.register_at_fork`` below).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LAST_WRITE_SIZE", "LockFile", "get_lockfile", "new_last_write"]

#: Size of the "last writer" token (``len(stringid.GenerateRandomID())`` in Go).
LAST_WRITE_SIZE = 64

_counter_lock = threading.Lock()
_counter = 0


def new_last_write() -> bytes:
    """A new, unique "last writer" token laid out as containers/storage does."""
    global _counter
    with _counter_lock:
        _counter += 1
        count = _counter
    head = struct.pack("<QQI", time.time_ns() & 0xFFFFFFFFFFFFFFFF,
                       count & 0xFFFFFFFFFFFFFFFF, os.getpid() & 0xFFFFFFFF)
    return head + os.urandom(LAST_WRITE_SIZE - len(head))


_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)


def _flock(fd: int, lock_type: int) -> None:
    """Block until the whole-file lock of ``lock_type`` (F_RDLCK/F_WRLCK) is held."""
    if _OFD_SETLKW is not None:
        # struct flock: short l_type, short l_whence, off_t l_start, off_t l_len,
        # pid_t l_pid (must be 0 for OFD locks)
        arg = struct.pack("hhqqi", lock_type, os.SEEK_SET, 0, 0, 0)
        while True:
            try:
                fcntl.fcntl(fd, _OFD_SETLKW, arg)
                return
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    break  # kernel without OFD locks: use classic ones
                if exc.errno not in (errno.EINTR, errno.EAGAIN, errno.EDEADLK):
                    raise
                time.sleep(0.01)
    op = fcntl.LOCK_EX if lock_type == fcntl.F_WRLCK else fcntl.LOCK_SH
    while True:
        try:
            fcntl.lockf(fd, op)  # F_SETLKW with F_WRLCK / F_RDLCK
            return
        except OSError as exc:
            if exc.errno not in (errno.EINTR, errno.EAGAIN, errno.EDEADLK):
                raise
            time.sleep(0.01)


class LockFile:
    """One containers/storage lock file; get instances from :func:`get_lockfile`."""

    def __init__(self, path: Path, *, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self._reset()
        # the lock file must be openable (c/s creates it, and its directory, at once)
        os.close(self._open())

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._writer: int | None = None
        self._write_depth = 0
        self._readers: dict[int, int] = {}
        self._fd: int | None = None
        self._lw = new_last_write()  # as Go: the first modified() says "modified"

    def __repr__(self) -> str:
        return f"LockFile({str(self.path)!r}, read_only={self.read_only})"

    # -- file handling -------------------------------------------------------------

    def _open(self) -> int:
        flags = os.O_CREAT | os.O_CLOEXEC | (os.O_RDONLY if self.read_only else os.O_RDWR)
        try:
            return os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(self.path, flags, 0o644)

    def _acquire_file(self, lock_type: int) -> None:
        fd = self._open()
        try:
            _flock(fd, lock_type)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _release_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the (only) descriptor releases the lock
            self._fd = None

    # -- locking -------------------------------------------------------------------

    def lock(self) -> None:
        """Take the exclusive (writer) lock, waiting as long as needed."""
        if self.read_only:
            raise PermissionError(f"cannot take a write lock on read-only lock file "
                                  f"{self.path}")
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._write_depth += 1
                return
            if me in self._readers:
                raise RuntimeError(f"{self.path}: cannot upgrade a shared lock to an "
                                   "exclusive one")
            while self._writer is not None or self._readers:
                self._cond.wait()
            self._acquire_file(fcntl.F_WRLCK)
            self._writer = me
            self._write_depth = 1

    def rlock(self) -> None:
        """Take the shared (reader) lock, waiting as long as needed."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._write_depth += 1
                return
            if me in self._readers:
                self._readers[me] += 1
                return
            while self._writer is not None:
                self._cond.wait()
            if not self._readers:
                self._acquire_file(fcntl.F_RDLCK)
            self._readers[me] = 1

    def unlock(self) -> None:
        """Release one hold taken by this thread; the file lock goes with the last one."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._write_depth -= 1
                if self._write_depth == 0:
                    self._writer = None
                    self._release_file()
                    self._cond.notify_all()
                return
            depth = self._readers.get(me)
            if depth is None:
                raise RuntimeError(f"unlock of {self.path}, which this thread does not hold")
            if depth > 1:
                self._readers[me] = depth - 1
                return
            del self._readers[me]
            if not self._readers:
                self._release_file()
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[LockFile]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    @contextmanager
    def shared(self) -> Iterator[LockFile]:
        self.rlock()
        try:
            yield self
        finally:
            self.unlock()

    def __enter__(self) -> LockFile:
        """``with lockfile:`` takes the exclusive lock (the shared one when read-only)."""
        if self.read_only:
            self.rlock()
        else:
            self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def locked(self) -> bool:
        """Whether some thread of this process holds the exclusive lock."""
        with self._cond:
            return self._writer is not None

    def held_exclusive(self) -> bool:
        """Whether the calling thread holds the exclusive lock."""
        with self._cond:
            return self._writer == threading.get_ident()

    def held(self) -> bool:
        """Whether the calling thread holds the lock, shared or exclusive."""
        me = threading.get_ident()
        with self._cond:
            return self._writer == me or me in self._readers

    # -- the last-writer token -----------------------------------------------------

    def _held_fd(self) -> int:
        if self._fd is None or not self.held():
            raise RuntimeError(f"{self.path} must be locked by this thread first")
        return self._fd

    def record_write(self) -> bytes:
        """Record that this process is the last writer (Go ``Touch``/``RecordWrite``);
        needs the exclusive lock. Returns the new token."""
        if not self.held_exclusive():
            raise RuntimeError(f"recording a write in {self.path} needs its exclusive lock")
        fd = self._held_fd()
        token = new_last_write()
        written = os.pwrite(fd, token, 0)
        if written != len(token):
            raise OSError(errno.ENOSPC, "short write of the last-writer token", str(self.path))
        self._lw = token
        return token

    def last_write(self) -> bytes:
        """The token in the file now (empty when nobody ever wrote); needs the lock."""
        return os.pread(self._held_fd(), LAST_WRITE_SIZE, 0)

    def modified_since(self, token: bytes) -> bool:
        """Whether someone wrote since ``token`` was read; needs the lock. An empty or
        short token (or file) always counts as modified."""
        current = self.last_write()
        return len(current) != LAST_WRITE_SIZE or current != token

    def modified(self) -> bool:
        """Go ``Modified``: whether the file's token differs from the one this object
        last wrote or saw; remembers the current one. Needs the lock. Prefer
        :meth:`modified_since` with a token kept by the caller when several readers in
        one process share this object."""
        current = self.last_write()
        if len(current) != LAST_WRITE_SIZE:
            return True
        changed = current != self._lw
        self._lw = current
        return changed

    def touched_since(self, when: float) -> bool:
        """Whether the lock file's mtime is later than ``when`` (seconds since epoch)."""
        try:
            return self.path.stat().st_mtime > when
        except OSError:
            return True


_registry: dict[str, LockFile] = {}
_registry_lock = threading.Lock()
_all: weakref.WeakSet[LockFile] = weakref.WeakSet()


def get_lockfile(path: str | os.PathLike[str], *, read_only: bool = False) -> LockFile:
    """The process-wide :class:`LockFile` for ``path``, creating the file (and its
    directory, mode 0700) when missing. Asking for the same path once read-only and once
    read-write is an error, as in containers/storage."""
    key = os.path.realpath(os.fspath(path))
    with _registry_lock:
        existing = _registry.get(key)
        if existing is not None:
            if existing.read_only != read_only:
                kind = "read-only" if existing.read_only else "read-write"
                raise ValueError(f"lock {key} is already open as a {kind} lock")
            return existing
        lockfile = LockFile(Path(key), read_only=read_only)
        _registry[key] = lockfile
        _all.add(lockfile)
        return lockfile


def _after_fork_in_child() -> None:
    global _registry_lock, _counter_lock
    _registry_lock = threading.Lock()
    _counter_lock = threading.Lock()
    for lockfile in list(_all):
        if lockfile._fd is not None:
            try:
                os.close(lockfile._fd)  # the parent keeps its own hold
            except OSError:
                pass
        lockfile._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
