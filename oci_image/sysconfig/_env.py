"""Small helpers shared by the configuration readers: the environment and home directory
a caller passes in (never ``os.environ`` behind their back), and atomic private writes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

__all__ = ["atomic_write", "environ", "home_dir", "locked"]


def environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """``env``, or the process environment when it is ``None``."""
    return os.environ if env is None else env


def home_dir(env: Mapping[str, str] | None) -> Path:
    """``$HOME``, else the passwd entry of the current user (containers/storage's
    ``homedir.Get``)."""
    home = environ(env).get("HOME", "")
    if home:
        return Path(home)
    try:
        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        return Path("/")


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, dir_mode: int = 0o700) -> None:
    """Replace ``path`` with ``data``: missing parents are created with ``dir_mode``, the
    data goes to a temporary file of ``mode`` in the same directory, is fsynced and renamed
    over ``path``; a reader sees the old or the new file, never a part."""
    path.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked(lock_path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold a POSIX record lock on ``lock_path`` (the kind containers/storage's lockfile
    takes, so podman and we exclude each other). A shared lock on a lock file that does
    not exist is skipped: nobody has written under that lock yet."""
    if exclusive:
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    else:
        try:
            fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, PermissionError):
            yield
            return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing drops the lock
