"""Writing a layer tar from a directory tree: the shared part of ``Driver.diff``.

Two producers feed :func:`write_layer`:

* :func:`overlay_changes` walks an overlay upper dir (``diff/``) where deletions are char
  0/0 devices and opaque dirs carry ``trusted.overlay.opaque=y``;
* :func:`naive_changes` compares a full layer tree with its parent's full tree, as
  containers/storage's ``archive.ChangesDirs`` does (mode, owner, rdev, and for non-dirs
  size and mtime; a dir with a changed child is included too).
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

import attrs

OVERLAY_OPAQUE_XATTR: Final = "trusted.overlay.opaque"
WHITEOUT_PREFIX: Final = ".wh."
WHITEOUT_OPAQUE: Final = ".wh..wh..opq"
#: xattrs never exported (overlay bookkeeping, SELinux labels of this host)
_SKIPPED_XATTRS: Final = ("trusted.overlay.", "user.overlay.", "security.selinux")


@attrs.frozen
class Change:
    """One entry of a layer tar: ``path`` relative to the root (no leading ``/``), read
    from ``source`` (None for a synthesized whiteout)."""

    path: str
    source: str | None
    whiteout: bool = False
    #: stat of the whiteout's origin (owner/mtime for the ``.wh.`` file)
    st: os.stat_result | None = None


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith(_SKIPPED_XATTRS):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, absolute path, lstat) of every entry under ``root``, sorted,
    parents before children."""
    here = os.path.join(root, rel) if rel else root
    for name in sorted(os.listdir(here)):
        rpath = f"{rel}/{name}" if rel else name
        apath = os.path.join(here, name)
        st = os.lstat(apath)
        yield rpath, apath, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, rpath)


def overlay_changes(upper: str) -> Iterator[Change]:
    """The changes recorded in an overlay upper dir."""
    for rpath, apath, st in _walk(upper):
        if _is_whiteout(st):
            head, _, base = rpath.rpartition("/")
            name = f"{head}/{WHITEOUT_PREFIX}{base}" if head else WHITEOUT_PREFIX + base
            yield Change(name, None, whiteout=True, st=st)
            continue
        yield Change(rpath, apath)
        if stat.S_ISDIR(st.st_mode) and _is_opaque(apath):
            yield Change(f"{rpath}/{WHITEOUT_OPAQUE}", None, whiteout=True, st=st)


def _differs(old: os.stat_result, new: os.stat_result, old_path: str, new_path: str) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
            new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    if not stat.S_ISDIR(new.st_mode) and (
            old.st_mtime_ns != new.st_mtime_ns or old.st_size != new.st_size):
        return True
    if stat.S_ISLNK(new.st_mode) and os.readlink(old_path) != os.readlink(new_path):
        return True
    return _xattrs(old_path) != _xattrs(new_path)


def naive_changes(parent: str | None, layer: str) -> Iterator[Change]:
    """The changes turning the tree ``parent`` (None: empty) into the tree ``layer``."""
    yield from _naive(parent, layer, "")


def _naive(parent: str | None, layer: str, rel: str) -> Iterator[Change]:
    here = os.path.join(layer, rel) if rel else layer
    old_here = (os.path.join(parent, rel) if rel else parent) if parent is not None else None
    new_names = set(os.listdir(here))
    old_names: set[str] = set()
    if old_here is not None:
        old_names = set(os.listdir(old_here))
    for name in sorted(new_names | old_names):
        rpath = f"{rel}/{name}" if rel else name
        if name not in new_names:
            assert old_here is not None
            st = os.lstat(os.path.join(old_here, name))
            yield Change(f"{rel}/{WHITEOUT_PREFIX}{name}" if rel else WHITEOUT_PREFIX + name,
                         None, whiteout=True, st=st)
            continue
        apath = os.path.join(here, name)
        st = os.lstat(apath)
        old_st: os.stat_result | None = None
        old_path = ""
        if name in old_names:
            assert old_here is not None
            old_path = os.path.join(old_here, name)
            old_st = os.lstat(old_path)
        if stat.S_ISDIR(st.st_mode):
            both_dirs = old_st is not None and stat.S_ISDIR(old_st.st_mode)
            inner = list(_naive(parent if both_dirs else None, layer, rpath))
            if old_st is None or not both_dirs or inner or _differs(old_st, st, old_path,
                                                                    apath):
                yield Change(rpath, apath)
            yield from inner
        elif old_st is None or _differs(old_st, st, old_path, apath):
            yield Change(rpath, apath)


def _tarinfo(change: Change, links: dict[tuple[int, int], str]) -> tuple[tarfile.TarInfo,
                                                                          str | None]:
    """The header of ``change`` and the file to copy its body from (None: no body)."""
    info = tarfile.TarInfo(change.path)
    if change.whiteout:
        st = change.st
        info.type = tarfile.REGTYPE
        info.mode = 0o644 if st is None else (stat.S_IMODE(st.st_mode) & 0o777)
        if st is not None:
            info.uid, info.gid, info.mtime = st.st_uid, st.st_gid, st.st_mtime
        info.size = 0
        return info, None
    assert change.source is not None
    st = os.lstat(change.source)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime
    info.size = 0
    body: str | None = None
    mode = st.st_mode
    if stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type = tarfile.LNKTYPE
            info.linkname = links[key]
        else:
            if st.st_nlink > 1:
                links[key] = change.path
            info.type = tarfile.REGTYPE
            info.size = st.st_size
            body = change.source
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(change.source)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        raise _Skip
    info.pax_headers = {f"SCHILY.xattr.{name}": value.decode("utf-8", "surrogateescape")
                        for name, value in _xattrs(change.source).items()}
    return info, body


class _Skip(Exception):
    """A socket or other file type a layer cannot hold."""


def write_layer(changes: Iterable[Change]) -> BinaryIO:
    """An uncompressed PAX layer tar of ``changes``, positioned at its start."""
    out = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 (returned)
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for change in changes:
            try:
                info, body = _tarinfo(change, links)
            except _Skip:
                continue
            if body is None:
                tf.addfile(info)
            else:
                with open(body, "rb") as f:
                    tf.addfile(info, f)
    out.seek(0)
    return out  # type: ignore[return-value]
