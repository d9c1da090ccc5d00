"""Recovery from an update that was interrupted by a crash (a failed update cleans up
after itself; a killed one cannot).

An update sets the deployment it replaces aside as ``<checkouts>/.<name>.<n>.replaced``
until the new one is active; :func:`recover`, run first by the next update, rollback or
uninstall, finds that marker and either finishes the update (it got past its switch) or
undoes its host changes from the activation's ``.install-old`` backups and puts the
replaced deployment back (it never switched).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._checkouts import INFO_NAME, deployment_dir, read_info, replaced_dir, tmpfiles_copy
from ._hostfiles import (
    backup_of,
    file_digest,
    host_path,
    remove_empty_dirs,
    remove_host_files,
    temp_of,
)
from .errors import InstallError

__all__ = ["recover"]

#: the installer's logger (these records are part of what an installation logs)
log = logging.getLogger("oci_runtime.install")


def recover(name: str, active: int, checkouts: str, host_root: str) -> None:
    """Clean up after an update that was interrupted by a crash (a failed update cleans
    up after itself). ``.<name>.<N>.replaced`` is the deployment that update was
    replacing: when ``N`` is the active deployment the update got past its switch, and
    it and the activation's ``.install-old`` backups are dropped (and the previous
    deployment's host files the new one lacks removed, as the update would have);
    otherwise the update never switched, so its host changes are put back from the
    backups, the half-made deployment removed and the replaced one put back (it stays
    the rollback target)."""
    for n in (0, 1):
        replaced = replaced_dir(checkouts, name, n)
        if not os.path.lexists(replaced):
            continue
        directory = deployment_dir(checkouts, name, n)
        other = deployment_dir(checkouts, name, 1 - n)
        if n == active:
            log.warning("%s: finishing an update to deployment %d that was interrupted "
                        "after its switch", name, n)
            with contextlib.suppress(InstallError):
                _finish_interrupted(read_info(directory), read_info(other), host_root)
            shutil.rmtree(replaced)
            continue
        log.warning("%s: undoing an update to deployment %d that was interrupted before "
                    "its switch", name, n)
        if (directory / INFO_NAME).is_file():
            with contextlib.suppress(InstallError):
                _undo_interrupted(read_info(directory), read_info(other), checkouts,
                                  host_root)
        if os.path.lexists(directory):
            shutil.rmtree(directory)
        os.rename(replaced, directory)


def _owned_paths(info: Mapping[str, Any], host_root: str, key: str
                 ) -> dict[Path, str | None]:
    """A deployment's host files (``key``: ``hostfs-files`` or ``installed-files``) ->
    their checksums, and its unit and tmpfiles.d file -> ``None``."""
    out: dict[Path, str | None] = {host_path(host_root, target): digest
                                   for target, digest in info.get(key, {}).items()}
    for field in ("unit", "tmpfiles"):
        if info.get(field):
            out[Path(info[field])] = None
    return out


def _finish_interrupted(new: Mapping[str, Any], previous: Mapping[str, Any],
                        host_root: str) -> None:
    """What an activation of ``new`` does after its switch, when it was interrupted
    there: drop the ``.install-old`` backups it kept and remove the host files of the
    ``previous`` deployment that ``new`` lacks (only unchanged ones)."""
    for info in (new, previous):
        for path in _owned_paths(info, host_root, "installed-files"):
            try:
                os.unlink(backup_of(path))
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", backup_of(path), exc)
    remove_host_files(previous.get("installed-files", {}),
                      new.get("installed-files", {}), host_root)
    remove_empty_dirs(previous.get("installed-dirs", ()), host_root)


def _undo_interrupted(info: Mapping[str, Any], active: Mapping[str, Any],
                      checkouts: str, host_root: str) -> None:
    """Put back what an activation of the deployment ``info`` that never reached its
    switch changed on the host (``active`` is the deployment still active): each file
    it replaced or removed from its ``.install-old`` backup; each file it created (not
    the active deployment's, and still as it wrote it) removed, with the directories it
    recorded creating when they are empty. Problems are logged."""
    owned = _owned_paths(active, host_root, "installed-files")
    rendered = _rendered_paths(info, checkouts, host_root)
    for path in [*rendered, *(p for p in owned if p not in rendered)]:
        backup = backup_of(path)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_of(path))
            if os.path.lexists(backup):
                os.replace(backup, path)
            elif path not in owned and os.path.lexists(path) and \
                    rendered.get(path) is not None and \
                    file_digest(path) == rendered[path]:
                os.unlink(path)
        except OSError as exc:
            log.warning("could not restore %s: %s", path, exc)
    created = set(info.get("installed-dirs", ())) - set(active.get("installed-dirs", ()))
    remove_empty_dirs(created, host_root)


def _rendered_paths(info: Mapping[str, Any], checkouts: str, host_root: str
                    ) -> dict[Path, str | None]:
    """The host files, unit and tmpfiles.d file the deployment ``info`` installs -> what
    they are as it rendered them (``None``: its copy is unreadable)."""
    deployment = deployment_dir(checkouts, info["name"], int(info["deployment"]))
    rendered: dict[Path, str | None] = {}
    for target, digest in info.get("hostfs-files", {}).items():
        rendered[host_path(host_root, target)] = digest
    if info.get("unit") and info.get("unit-file"):
        rendered[Path(info["unit"])] = _digest_or_none(deployment / info["unit-file"])
    if info.get("tmpfiles"):
        rendered[Path(info["tmpfiles"])] = _digest_or_none(
            tmpfiles_copy(deployment, info["name"]))
    return rendered


def _digest_or_none(path: Path) -> str | None:
    try:
        return file_digest(path)
    except OSError:
        return None
