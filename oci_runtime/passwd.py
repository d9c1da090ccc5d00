"""Resolve an image's ``Config.User`` against the rootfs's own /etc/passwd and /etc/group.

Reading is confined to the rootfs: the path is walked one component at a time with
``openat``-style calls relative to directory descriptors (``O_NOFOLLOW``), and every
symlink met on the way is resolved *as if the rootfs were /* (an absolute target starts
again at the rootfs, ``..`` never climbs above it), so ``/etc/passwd -> /etc/shadow`` or
``-> ../../../../etc/passwd`` reads the rootfs's files, never the host's. The final file
must be a regular file (checked with ``lstat`` before opening and ``fstat`` after), is
opened with ``O_NONBLOCK`` (a FIFO can never block the open) and at most
:data:`MAX_FILE_SIZE` bytes are read.

Outcomes:

- a missing file (or a missing directory on the way) counts as an empty database: names
  then fail with :class:`UserNotFoundError`, numeric ids are used verbatim;
- a FIFO, socket, device (``/dev/zero``), directory, a file over the size limit, a symlink
  loop (more than 40 links) or a non-directory in the middle of the path raises
  :class:`SpecError` naming the path inside the rootfs.

Parsing follows the file formats (``name:password:uid:gid:gecos:home:shell`` and
``name:password:gid:member,member``, lines ending in ``\n``): blank lines, ``#``
comments and NIS ``+``/``-`` lines are skipped, and so are lines whose ids are not
decimal numbers in the 32-bit range (moby/sys/user reads such an id as 0, i.e. root; we
ignore the line instead).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import attrs

from .errors import SpecError, UserNotFoundError

__all__ = [
    "MAX_FILE_SIZE",
    "GroupEntry",
    "PasswdEntry",
    "ResolvedUser",
    "parse_group",
    "parse_passwd",
    "read_rootfs_file",
    "resolve_user",
]

#: at most this many bytes of /etc/passwd or /etc/group are read
MAX_FILE_SIZE: Final = 1024 * 1024
#: symlinks followed while resolving one path (Linux's own limit, ELOOP)
MAX_SYMLINKS: Final = 40
_MAX_ID: Final = 2**32 - 1
_NUMERIC: Final = re.compile(r"[0-9]+")


@attrs.frozen
class PasswdEntry:
    name: str
    password: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str


@attrs.frozen
class GroupEntry:
    name: str
    password: str
    gid: int
    members: tuple[str, ...]


@attrs.frozen
class ResolvedUser:
    """``process.user`` values plus the home directory for ``HOME``.

    ``additional_gids`` is ``None`` when conversion.md says not to set it (numeric user
    or explicit group); ``home`` is ``None`` without a passwd entry."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] | None = None
    home: str | None = None


def _id(text: str) -> int | None:
    if not _NUMERIC.fullmatch(text):
        return None
    value = int(text)
    return value if value <= _MAX_ID else None


def _lines(text: str) -> Iterable[list[str]]:
    # "\n"-separated (not str.splitlines(), which also splits on \x1c-\x1e, \x85, ...)
    for line in text.split("\n"):
        line = line.strip(" \t\r")
        if not line or line.startswith(("#", "+", "-")):
            continue
        yield line.split(":")


def parse_passwd(text: str) -> tuple[PasswdEntry, ...]:
    """The valid entries of an /etc/passwd text, in file order."""
    entries: list[PasswdEntry] = []
    for parts in _lines(text):
        parts += [""] * (7 - len(parts))
        uid, gid = _id(parts[2]), _id(parts[3])
        if not parts[0] or uid is None or gid is None:
            continue
        entries.append(PasswdEntry(parts[0], parts[1], uid, gid, parts[4], parts[5],
                                   ":".join(parts[6:])))
    return tuple(entries)


def parse_group(text: str) -> tuple[GroupEntry, ...]:
    """The valid entries of an /etc/group text, in file order."""
    entries: list[GroupEntry] = []
    for parts in _lines(text):
        parts += [""] * (4 - len(parts))
        gid = _id(parts[2])
        if not parts[0] or gid is None:
            continue
        members = tuple(m.strip(" \t") for m in ":".join(parts[3:]).split(",")
                        if m.strip(" \t"))
        entries.append(GroupEntry(parts[0], parts[1], gid, members))
    return tuple(entries)


# ---------------------------------------------------------------------------------------
# confined reading


def read_rootfs_file(rootfs: str | os.PathLike[str], path: str, *,
                     limit: int = MAX_FILE_SIZE) -> bytes | None:
    """The content of ``path`` (absolute, inside the container) of ``rootfs``, or
    ``None`` when it does not exist. Never leaves the rootfs, never blocks on a FIFO or
    device, never reads more than ``limit`` bytes (:class:`SpecError` beyond)."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    stack = [root_fd]
    try:
        return _walk_and_read(stack, path, limit)
    finally:
        for fd in stack:
            os.close(fd)


def _walk_and_read(stack: list[int], path: str, limit: int) -> bytes | None:
    pending = [c for c in path.split("/") if c]
    pending.reverse()  # a stack: the next component is pending[-1]
    links = 0
    while pending:
        name = pending.pop()
        if name == ".":
            continue
        if name == "..":
            if len(stack) > 1:
                os.close(stack.pop())
            continue
        try:
            st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
        except FileNotFoundError:
            return None
        except NotADirectoryError:  # pragma: no cover - parents are checked below
            raise SpecError(f"{path}: a path component is not a directory") from None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise SpecError(f"{path}: too many levels of symbolic links in the rootfs")
            target = os.readlink(name, dir_fd=stack[-1])
            if target.startswith("/"):
                while len(stack) > 1:
                    os.close(stack.pop())
            parts = [c for c in target.split("/") if c]
            pending.extend(reversed(parts))
            continue
        if pending:  # an intermediate component: must be a directory
            if not stat.S_ISDIR(st.st_mode):
                raise SpecError(f"{path}: {name!r} in the rootfs is not a directory")
            try:
                fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             dir_fd=stack[-1])
            except OSError as exc:  # swapped under us (ENOTDIR, ELOOP, ENOENT)
                raise SpecError(f"{path}: {name!r} changed while resolving: {exc}") from exc
            stack.append(fd)
            continue
        return _read_regular(stack[-1], name, st, path, limit)
    raise SpecError(f"{path}: resolves to the rootfs directory itself")


def _read_regular(dir_fd: int, name: str, st: os.stat_result, path: str, limit: int
                  ) -> bytes:
    if not stat.S_ISREG(st.st_mode):
        raise SpecError(f"{path} in the rootfs is not a regular file "
                        f"({_describe(st.st_mode)}); refusing to read it")
    if st.st_size > limit:
        raise SpecError(f"{path} in the rootfs is {st.st_size} bytes, over the limit of {limit}")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            raise SpecError(f"{path} changed while being opened: {exc}") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SpecError(f"{path} in the rootfs is not a regular file "
                            f"({_describe(st.st_mode)}); refusing to read it")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise SpecError(f"{path} in the rootfs is over the limit of {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _describe(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _read_db(rootfs: str | os.PathLike[str] | None, path: str) -> str:
    if rootfs is None:
        return ""
    data = read_rootfs_file(rootfs, path)
    return "" if data is None else data.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------------------
# Config.User


def resolve_user(user: str, rootfs: str | os.PathLike[str] | Path | None) -> ResolvedUser:
    """Resolve ``Config.User`` (``""``, ``user``, ``uid``, ``user:group``, ``uid:gid``,
    ``uid:group``, ``user:gid``) as image-spec conversion.md says.

    - numeric parts are copied verbatim (an id without a passwd/group entry is fine);
    - a user name is looked up in the rootfs's /etc/passwd (first match wins): it gives
      uid, primary gid and home; a group name in /etc/group (first match wins);
    - ``additional_gids`` are the /etc/group memberships of a *named* user given without
      a group; they stay ``None`` for a numeric user or an explicit group;
    - a numeric uid takes its primary gid and home from its passwd entry if it has one
      (gid 0 otherwise);
    - an empty ``User`` is implementation-defined: uid 0, gid 0, home from uid 0's entry;
    - an unknown user or group name raises :class:`UserNotFoundError` naming it.

    ``rootfs=None`` means "no rootfs to look in": numeric forms work, names fail.
    """
    user_part, _, group_part = user.partition(":")
    if _NUMERIC.fullmatch(user_part) and _id(user_part) is None:
        raise SpecError(f"config.User {user!r}: uid {user_part} is out of range")
    if _NUMERIC.fullmatch(group_part) and _id(group_part) is None:
        raise SpecError(f"config.User {user!r}: gid {group_part} is out of range")
    passwd = parse_passwd(_read_db(rootfs, "/etc/passwd"))
    uid_arg = _id(user_part)

    entry: PasswdEntry | None
    if not user_part or uid_arg is not None:
        uid = uid_arg or 0
        entry = next((p for p in passwd if p.uid == uid), None)
    else:
        entry = next((p for p in passwd if p.name == user_part), None)
        if entry is None:
            raise UserNotFoundError(
                f"config.User {user!r}: no user {user_part!r} in the rootfs's /etc/passwd")
        uid = entry.uid
    gid = entry.gid if entry is not None else 0
    home = entry.home if entry is not None else None

    if group_part:
        gid_arg = _id(group_part)
        if gid_arg is not None:
            return ResolvedUser(uid, gid_arg, None, home)
        groups = parse_group(_read_db(rootfs, "/etc/group"))
        group = next((g for g in groups if g.name == group_part), None)
        if group is None:
            raise UserNotFoundError(
                f"config.User {user!r}: no group {group_part!r} in the rootfs's /etc/group")
        return ResolvedUser(uid, group.gid, None, home)

    if uid_arg is not None or not user_part:
        return ResolvedUser(uid, gid, None, home)
    assert entry is not None
    groups = parse_group(_read_db(rootfs, "/etc/group"))
    additional: list[int] = []
    for group in groups:
        if entry.name in group.members and group.gid not in additional:
            additional.append(group.gid)
    return ResolvedUser(uid, gid, tuple(additional), home)
