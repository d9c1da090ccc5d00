"""The host side of a system container: the files its image installs below a host root.

What a host file is (:func:`file_digest`, to tell later whether it was changed), the
checks made before anything on the host changes (:func:`check_host_files`: no
overwriting of files the container did not install, no escaping the host root through
a host directory symlink or a planted symlink), copying a deployment's rendered files
into place and removing them again (only unchanged ones), and the :class:`Journal` that
undoes one activation's host changes from ``.NAME.install-old`` hard links. Everything
takes the host root as a path; nothing here knows about images or deployments beyond
the ``hostfs/`` directory a deployment renders its host files into.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from .bundle import write_atomic
from .errors import InstallError

__all__ = [
    "Journal",
    "backup_of",
    "check_host_files",
    "copy_host_files",
    "file_digest",
    "host_path",
    "remove_empty_dirs",
    "remove_host_files",
    "temp_of",
    "within",
]

#: the installer's logger (these records are part of what an installation logs)
log = logging.getLogger("oci_runtime.install")


def host_path(host_root: str, target: str) -> Path:
    """Where the host file ``target`` (an absolute path on the host) is below
    ``host_root``."""
    return Path(host_root) / target.lstrip("/")


def within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def backup_of(path: Path) -> Path:
    """The hard link :class:`Journal` keeps of a file it replaces or removes."""
    return path.parent / f".{path.name}.install-old"


def temp_of(path: Path) -> Path:
    """The temporary file a host file is copied to before it is renamed over ``path``."""
    return path.parent / f".{path.name}.install-tmp"


def file_digest(path: Path) -> str:
    """What a host file is, to tell later whether it was changed: ``sha256:HEX`` for a
    regular file, ``symlink:TARGET`` for a symlink, ``other:MODE`` for anything else."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "symlink:" + os.readlink(path)
    if not stat.S_ISREG(st.st_mode):
        return f"other:{stat.S_IFMT(st.st_mode):o}"
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class Journal:
    """The host changes of one activation, undone (in reverse order) when it fails before
    its commit point, the switch of the ``<checkouts>/<name>`` symlink. A file that is
    replaced or removed is first hard-linked to ``.NAME.install-old`` next to it, so
    that undoing puts back exactly what was there (an admin's edits included)."""

    def __init__(self) -> None:
        self._changes: list[tuple[Path, Path | None]] = []
        self._seen: set[Path] = set()
        self.created_dirs: list[Path] = []

    def _record(self, path: Path) -> None:
        if path in self._seen:  # the first backup is what was there before us
            return
        self._seen.add(path)
        backup = None
        if os.path.lexists(path):
            backup = backup_of(path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(backup)
            os.link(path, backup, follow_symlinks=False)
        self._changes.append((path, backup))

    def replace(self, path: Path, tmp: Path) -> None:
        """Rename ``tmp`` over ``path``."""
        self._record(path)
        os.replace(tmp, path)

    def write(self, path: Path, data: bytes) -> None:
        self._record(path)
        write_atomic(path, data)

    def remove(self, path: Path) -> None:
        if os.path.lexists(path):
            self._record(path)
            os.unlink(path)

    def mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o755)
        self.created_dirs.append(path)

    def undo(self) -> None:
        for path, backup in reversed(self._changes):
            try:
                if backup is not None:
                    os.replace(backup, path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            except OSError as exc:
                log.error("could not restore %s: %s", path, exc)
        for directory in reversed(self.created_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(directory)

    def commit(self) -> None:
        for _path, backup in self._changes:
            if backup is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backup)


def check_host_files(name: str, directory: Path, files: Mapping[str, str],
                     owned: Mapping[str, str], host_root: str,
                     reserved: Iterable[Path]) -> None:
    """Refuse, before anything on the host changes, a deployment (rendered in
    ``directory``) whose host files would overwrite files the container ``name`` did
    not install (``owned``), go through a directory symlink out of the host root, need
    a directory where the host has a file, replace the unit or the tmpfiles.d file
    (``reserved``), or be symlinks pointing outside the host root."""
    root = os.path.realpath(host_root)
    reserved = set(reserved)
    for target in sorted(files):
        path = host_path(host_root, target)
        if path in reserved:
            raise InstallError(f"hostfs file {target} would replace {path}, the "
                               "installation's own unit or tmpfiles.d file")
        parent = os.path.realpath(path.parent)
        if not within(parent, root):
            raise InstallError(f"hostfs file {target}: {path.parent} leads outside the "
                               f"host root {host_root} (to {parent})")
        _check_parent_is_a_directory(target, parent)
        if os.path.lexists(path):
            _check_replaceable(name, target, path, owned)
        _check_symlink_stays_inside(directory, target, parent, root, host_root)


def _check_parent_is_a_directory(target: str, parent: str) -> None:
    existing = parent
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InstallError(f"hostfs file {target}: {existing} on the host is not a "
                           "directory")


def _check_replaceable(name: str, target: str, path: Path, owned: Mapping[str, str]
                       ) -> None:
    if target not in owned:
        raise InstallError(f"{path} exists and was not installed by {name}; "
                           "refusing to overwrite it")
    if os.path.isdir(path) and not os.path.islink(path):
        raise InstallError(f"{path} is a directory on the host; refusing to "
                           "replace it")


def _check_symlink_stays_inside(directory: Path, target: str, parent: str, root: str,
                                host_root: str) -> None:
    src = directory / "hostfs" / target.lstrip("/")
    if src.is_symlink():
        link = os.readlink(src)
        resolved = os.path.realpath(os.path.join(parent, link))
        if not within(resolved, root):
            raise InstallError(f"hostfs symlink {target} -> {link} points outside "
                               f"the host root {host_root}")


def copy_host_files(directory: Path, files: Mapping[str, str], host_root: str,
                    journal: Journal) -> list[str]:
    """Copy the deployment's rendered host files into place (each renamed over its
    target); the host directories created for them."""
    created = []
    for target in sorted(files):
        src = directory / "hostfs" / target.lstrip("/")
        dest = host_path(host_root, target)
        missing = []
        parent = dest.parent
        while not os.path.lexists(parent):
            missing.append(parent)
            parent = parent.parent
        for d in reversed(missing):
            journal.mkdir(d)
            created.append("/" + d.relative_to(host_root).as_posix())
        tmp = temp_of(dest)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            if src.is_symlink():
                os.symlink(os.readlink(src), tmp)
            else:
                shutil.copy2(src, tmp, follow_symlinks=False)
            journal.replace(dest, tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    return created


def remove_host_files(files: Mapping[str, str], keep: Iterable[str], host_root: str
                      ) -> None:
    """Remove the host files ``files`` (target -> checksum) but ``keep``, each only when
    it is unchanged and still inside the host root; problems are logged, not raised
    (this runs after the point of no return)."""
    keep = set(keep)
    root = os.path.realpath(host_root)
    for target, digest in files.items():
        if target in keep:
            continue
        path = host_path(host_root, target)
        try:
            if not os.path.lexists(path):
                continue
            if not within(os.path.realpath(path.parent), root):
                log.warning("%s is no longer inside the host root; leaving it", path)
                continue
            if file_digest(path) != digest:
                log.warning("%s was changed since it was installed; leaving it", path)
                continue
            os.unlink(path)
        except OSError as exc:
            log.warning("could not remove %s: %s", path, exc)


def remove_empty_dirs(dirs: Iterable[str], host_root: str) -> None:
    """Remove the host directories ``dirs`` that are empty, deepest first."""
    for directory in sorted(dirs, key=lambda d: d.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(host_path(host_root, directory))
