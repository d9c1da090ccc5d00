"""Private staging directories in a store's ``tmp`` (same filesystem as the layers, so
staged content is renamed into place), each locked with ``flock`` by its owner while it
lives. Directories whose owner is gone (a killed process: the lock is free) are swept
by the next caller, as containers/storage's tempdir does."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["new_staging_dir", "release_staging_dir", "sweep_stale"]


def new_staging_dir(tmp_dir: Path, prefix: str) -> tuple[Path, int]:
    """A new directory ``tmp_dir/<prefix>XXXX`` and an fd holding its lock (give both to
    :func:`release_staging_dir`). Stale ``<prefix>*`` directories are removed first;
    ``tmp_dir`` itself is locked meanwhile, so a directory just made and not yet locked
    by a live owner is never swept."""
    tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp_fd = os.open(tmp_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(tmp_fd, fcntl.LOCK_EX)
        _sweep(tmp_dir, prefix)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_dir))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return path, fd
    finally:
        os.close(tmp_fd)  # releases tmp_dir's lock


def _sweep(tmp_dir: Path, prefix: str) -> None:
    for stale in tmp_dir.glob(f"{prefix}*"):
        try:
            fd = os.open(stale, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live owner's
        else:
            shutil.rmtree(stale, ignore_errors=True)
        finally:
            os.close(fd)


def sweep_stale(tmp_dir: Path, prefix: str) -> None:
    """Remove the ``<prefix>*`` directories of ``tmp_dir`` whose owner is gone."""
    if not tmp_dir.is_dir():
        return
    tmp_fd = os.open(tmp_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(tmp_fd, fcntl.LOCK_EX)
        _sweep(tmp_dir, prefix)
    finally:
        os.close(tmp_fd)


def release_staging_dir(path: Path, fd: int) -> None:
    """Remove the staging directory, then drop its lock."""
    shutil.rmtree(path, ignore_errors=True)
    if fd >= 0:
        os.close(fd)
