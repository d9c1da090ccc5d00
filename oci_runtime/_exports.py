"""The image's ``/exports``, read as untrusted input from a checked-out root filesystem.

:func:`read_exported` reads one exported file (``service.template``,
``config.json.template`` ...) without following symlinks and up to
:data:`TEMPLATE_LIMIT` bytes; :func:`read_manifest` reads and validates
``manifest.json``; :func:`render_hostfs` copies ``/exports/hostfs`` into a deployment
as it will be on the host (``renameFiles`` applied, ``installedFilesTemplate`` files
substituted), refusing targets that could escape the host root. Nothing here touches
the host: the host side is :mod:`oci_runtime._hostfiles`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ._hostfiles import file_digest
from ._templates import substitute
from .errors import InstallError

__all__ = ["TEMPLATE_LIMIT", "decode", "read_exported", "read_manifest", "render_hostfs"]

#: the installer's logger (these records are part of what an installation logs)
log = logging.getLogger("oci_runtime.install")

#: the largest /exports file read into memory (templates, manifest)
TEMPLATE_LIMIT: Final = 1 << 20


def read_exported(rootfs: Path, rel: str) -> bytes | None:
    """``rootfs/rel`` (a file the image exports), or ``None`` when it is missing.

    The path is walked one component at a time relative to directory descriptors with
    ``O_NOFOLLOW``, so an image cannot make the installer read a host file through a
    symlink (``/exports -> /etc``, ``service.template -> /etc/shadow``: both refused);
    the file must be a regular file (a FIFO or device is refused, and ``O_NONBLOCK``
    keeps even a raced-in FIFO from blocking the open) of at most
    :data:`TEMPLATE_LIMIT` bytes."""
    parts = Path(rel).parts
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i in range(len(parts)):
            child = _open_component(fd, rel, parts, i)
            if child is None:
                return None
            os.close(fd)
            fd = child
        return _read_limited(fd, rel)
    finally:
        os.close(fd)


def _open_component(fd: int, rel: str, parts: tuple[str, ...], i: int) -> int | None:
    """The descriptor of ``parts[i]`` in the directory ``fd`` (a directory, or the
    regular file when it is the last part), or ``None`` when it is missing."""
    part = parts[i]
    shown = "/" + "/".join(parts[:i + 1])
    try:
        st = os.stat(part, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    last = i == len(parts) - 1
    if stat.S_ISLNK(st.st_mode):
        raise InstallError(f"/{rel}: {shown} is a symlink in the image; refusing "
                           "to follow it")
    if not last and not stat.S_ISDIR(st.st_mode):
        raise InstallError(f"/{rel}: {shown} in the image is not a directory")
    if last and not stat.S_ISREG(st.st_mode):
        raise InstallError(f"/{rel} in the image is not a regular file")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (
        os.O_NONBLOCK | os.O_NOCTTY if last else os.O_DIRECTORY)
    try:
        return os.open(part, flags, dir_fd=fd)
    except OSError as exc:
        raise InstallError(f"/{rel}: cannot open {shown} in the image: "
                           f"{exc.strerror}") from None


def _read_limited(fd: int, rel: str) -> bytes:
    """The content of the regular file ``fd`` (``/rel`` in the image), at most
    :data:`TEMPLATE_LIMIT` bytes."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise InstallError(f"/{rel} in the image is not a regular file")
    if st.st_size > TEMPLATE_LIMIT:
        raise InstallError(f"/{rel} in the image is larger than {TEMPLATE_LIMIT} "
                           "bytes")
    chunks = []
    size = 0
    while size <= TEMPLATE_LIMIT and (chunk := os.read(fd, 1 << 16)):
        chunks.append(chunk)
        size += len(chunk)
    if size > TEMPLATE_LIMIT:
        raise InstallError(f"/{rel} in the image is larger than {TEMPLATE_LIMIT} "
                           "bytes")
    return b"".join(chunks)


def decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InstallError(f"{what} is not UTF-8: {exc}") from None


def read_manifest(rootfs: Path) -> dict[str, Any]:
    """``/exports/manifest.json`` (``{}`` without one), its fields checked."""
    raw = read_exported(rootfs, "exports/manifest.json")
    if raw is None:
        return {}
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InstallError(f"/exports/manifest.json is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise InstallError("/exports/manifest.json must be a JSON object")
    for key in ("defaultValues", "renameFiles"):
        mapping = manifest.get(key, {})
        if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise InstallError(f"/exports/manifest.json: {key} must map strings to "
                               "strings")
    templated = manifest.get("installedFilesTemplate", [])
    if not isinstance(templated, list) or not all(isinstance(t, str) for t in templated):
        raise InstallError("/exports/manifest.json: installedFilesTemplate must be a list "
                           "of paths")
    if not isinstance(manifest.get("noContainerService", False), bool):
        raise InstallError("/exports/manifest.json: noContainerService must be true or "
                           "false")
    return manifest


# ---------------------------------------------------------------------------------------
# /exports/hostfs


def hostfs_target(rel: str, renames: Mapping[str, str], values: Mapping[str, str]
                  ) -> str:
    """Where the image's ``/exports/hostfs{rel}`` goes on the host (``renameFiles``
    applied): an absolute, normalized path; ``..`` anywhere is refused rather than
    clamped, so ``../../x`` cannot quietly become ``/x``."""
    target = rel
    if rel in renames:
        target = substitute(renames[rel], values,
                            source=f"/exports/manifest.json renameFiles[{rel}]")
    if "\0" in target:
        raise InstallError(f"hostfs file {rel} renamed to {target!r}: a NUL byte")
    if ".." in target.split("/"):
        raise InstallError(f"hostfs file {rel} renamed to {target!r}: a path with '..' "
                           "could escape the host root")
    target = os.path.normpath("/" + target.lstrip("/"))
    if target == "/":
        raise InstallError(f"hostfs file {rel} renamed to the host root itself")
    return target


def render_hostfs(name: str, rootfs: Path, deployment: Path, manifest: Mapping[str, Any],
                  values: Mapping[str, str]) -> dict[str, str]:
    """Copy the image's /exports/hostfs into ``<deployment>/hostfs`` as it will be on the
    host (renameFiles applied, installedFilesTemplate files substituted); the target
    paths and their checksums. Symlinks are copied as symlinks, never followed; devices
    and FIFOs are skipped; no file may go below another one (a file installed through
    a symlink the image also installs could land anywhere)."""
    source_root = _hostfs_root(rootfs)
    if source_root is None:
        return {}
    templated = set(manifest.get("installedFilesTemplate", ()))
    renames: Mapping[str, str] = manifest.get("renameFiles", {})
    sources = _hostfs_sources(name, source_root, renames, values)
    _check_not_nested(sources)

    out_root = deployment / "hostfs"
    out_root.mkdir(mode=0o755, exist_ok=True)
    files: dict[str, str] = {}
    for target, src in sorted(sources.items()):
        rel = "/" + src.relative_to(source_root).as_posix()
        dest = out_root / target.lstrip("/")
        dest.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if os.path.realpath(dest.parent) != os.path.realpath(out_root) + os.path.dirname(
                target).rstrip("/"):  # cannot happen (checked above): never write through
            raise InstallError(f"hostfs file {target}: its directory is a symlink")
        _render_file(src, dest, rel, rel in templated, values)
        files[target] = file_digest(dest)
    return files


def _hostfs_root(rootfs: Path) -> Path | None:
    """``/exports/hostfs`` in ``rootfs``, or ``None`` when the image has none."""
    exports = rootfs / "exports"
    source_root = exports / "hostfs"
    for path in (exports, source_root):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            raise InstallError(f"/{path.relative_to(rootfs)} is a symlink in the image; "
                               "refusing to follow it")
        if not stat.S_ISDIR(st.st_mode):
            if path == source_root:
                raise InstallError("/exports/hostfs in the image is not a directory")
            return None
    return source_root


def _hostfs_sources(name: str, source_root: Path, renames: Mapping[str, str],
                    values: Mapping[str, str]) -> dict[str, Path]:
    """The files and symlinks under ``source_root``: host target -> source."""
    sources: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(source_root):
        here = Path(dirpath)
        entries = filenames + [d for d in dirnames if (here / d).is_symlink()]
        for entry in sorted(entries):
            src = here / entry
            mode = os.lstat(src).st_mode
            rel = "/" + src.relative_to(source_root).as_posix()
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                log.warning("%s: /exports/hostfs%s is not a regular file or symlink; "
                            "not installed", name, rel)
                continue
            target = hostfs_target(rel, renames, values)
            if target in sources:
                raise InstallError(f"hostfs files {sources[target]} and {rel} both go "
                                   f"to {target}")
            sources[target] = src
    return sources


def _check_not_nested(sources: Mapping[str, Path]) -> None:
    """Refuse a target below another target (a file or symlink the image installs)."""
    for target in sources:
        parent = os.path.dirname(target)
        while parent != "/":
            if parent in sources:
                raise InstallError(f"hostfs file {target} would be installed below "
                                   f"{parent}, which the image installs as a file or "
                                   "symlink")
            parent = os.path.dirname(parent)


def _render_file(src: Path, dest: Path, rel: str, templated: bool,
                 values: Mapping[str, str]) -> None:
    """``/exports/hostfs{rel}`` (``src``) copied to ``dest``: a symlink as a symlink, a
    template substituted (mode kept), anything else copied with its metadata."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dest)
    elif templated:
        st = os.lstat(src)
        if st.st_size > TEMPLATE_LIMIT:
            raise InstallError(f"/exports/hostfs{rel} (a template) is larger than "
                               f"{TEMPLATE_LIMIT} bytes")
        text = substitute(decode(src.read_bytes(), f"/exports/hostfs{rel}"), values,
                          source=f"/exports/hostfs{rel}")
        dest.write_text(text)
        os.chmod(dest, st.st_mode & 0o7777)
    else:
        shutil.copy2(src, dest, follow_symlinks=False)
