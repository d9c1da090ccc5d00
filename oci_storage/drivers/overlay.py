"""The overlay driver, with containers/storage's on-disk layout (``drivers/overlay``)::

    <home>/overlay/<id>/diff      this layer's files (the upperdir; whiteouts are char 0/0
                                  devices, opaque dirs carry trusted.overlay.opaque=y)
    <home>/overlay/<id>/work      overlay workdir
    <home>/overlay/<id>/merged    mount point
    <home>/overlay/<id>/link      the 26-character short name (no newline)
    <home>/overlay/<id>/lower     ``l/<short>:l/<short>...`` of all ancestors, nearest
                                  first (absent for a base layer)
    <home>/overlay/<id>/empty     base layers only: the dummy lowerdir of a writable mount
    <home>/overlay/l/<short>      symlink ``../<id>/diff``

Mounts name the layers by their short links relative to ``<home>/overlay`` so that the
option string fits in one page: ``mount(8)`` runs with that directory as its cwd, as
containers/storage's ``mountOverlayFrom`` does. Unmounting uses ``umount2(MNT_DETACH)``.
Needs root (no ``userxattr`` rootless mode here).
"""

from __future__ import annotations

import base64
import errno
import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from ..errors import DriverNotSupportedError, DuplicateIDError, StorageError
from . import Driver

if TYPE_CHECKING:
    import ctypes

    from oci_image.spec import Readable

    from ..apply import AppliedLayer, ApplyOptions

LINK_DIR: Final = "l"
ID_LENGTH: Final = 26
MAX_DEPTH: Final = 500
_MNT_DETACH: Final = 2
_OCTAL: Final = re.compile(r"\\([0-7]{3})")


def generate_link_id() -> str:
    """A 26-character short name as containers/storage makes them (base32, upper case)."""
    return base64.b32encode(os.urandom(20)).decode("ascii")[:ID_LENGTH]


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once (ctypes is imported on the first unmount). glibc's
    ``libc.so.6`` directly; else whatever ``find_library`` finds (it runs ``ldconfig``,
    milliseconds a process does not need to spend on glibc)."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        import ctypes.util

        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def umount(path: str, flags: int = _MNT_DETACH) -> None:
    """``umount2(path, flags)``; raise OSError on failure."""
    import ctypes

    if _libc().umount2(os.fsencode(path), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount2 {path}: {os.strerror(err)}")


def mounted_paths() -> set[str]:
    """Mount points of this mount namespace (from ``/proc/self/mountinfo``)."""
    out: set[str] = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            # the kernel escapes space, tab, newline and backslash as \ooo
            out.add(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), line.split(" ")[4]))
    return out


def is_mounted(path: str) -> bool:
    return os.path.realpath(path) in mounted_paths()


def _mount_overlay(cwd: str, options: str, target: str) -> None:
    proc = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, target],
                          cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise OSError(errno.EIO, f"mount overlay on {target} ({options}) failed: "
                      f"{proc.stderr.strip()}")


class OverlayDriver(Driver):
    name = "overlay"
    supports_staging = True

    @classmethod
    def supported(cls, home: str | os.PathLike[str]) -> None:
        if os.geteuid() != 0:
            raise DriverNotSupportedError("overlay: needs root (rootless overlay is not "
                                          "implemented)")
        if shutil.which("mount") is None:
            raise DriverNotSupportedError("overlay: the mount program is not available")
        root = Path(home) / cls.name
        if (Path(home) / f"{cls.name}-layers").is_dir() and (root / LINK_DIR).is_dir():
            return  # a store that already uses overlay here: skip the probe mount
        try:
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = tempfile.mkdtemp(prefix="probe-", dir=root)
        except OSError as exc:
            raise DriverNotSupportedError(f"overlay: cannot create {root}: {exc}") from exc
        try:
            for sub in ("lower", "upper", "work", "merged"):
                os.mkdir(os.path.join(probe, sub))
            merged = os.path.join(probe, "merged")
            try:
                _mount_overlay(probe, "lowerdir=lower,upperdir=upper,workdir=work", merged)
            except OSError as exc:
                raise DriverNotSupportedError(
                    f"overlay: a probe mount in {root} failed: {exc}") from exc
            try:
                # a whiteout and an opaque dir must work on the upper filesystem
                os.mkdir(os.path.join(probe, "lower", "d"))
                os.rmdir(os.path.join(merged, "d"))
                os.mkdir(os.path.join(merged, "d"))
            except OSError as exc:
                raise DriverNotSupportedError(
                    f"overlay: the upper filesystem under {root} cannot hold whiteouts: "
                    f"{exc}") from exc
            finally:
                umount(merged)
        finally:
            shutil.rmtree(probe, ignore_errors=True)

    # -- layout

    def dir(self, id: str) -> Path:
        self._check_id(id)
        return self.root / id

    def diff_dir(self, id: str) -> str:
        return os.fspath(self.dir(id) / "diff")

    def merged_dir(self, id: str) -> str:
        return os.fspath(self.dir(id) / "merged")

    def link(self, id: str) -> str:
        return (self.owner(id).dir(id) / "link").read_text().strip()

    def lowers(self, id: str) -> list[str]:
        """The ``l/<short>`` entries of the layer's ancestors, nearest first."""
        try:
            text = (self.owner(id).dir(id) / "lower").read_text().strip()
        except FileNotFoundError:
            return []
        return [p for p in text.split(":") if p]

    # -- driver API

    def create(self, id: str, parent_id: str | None = None) -> None:
        d = self.dir(id)
        lower = ""
        if parent_id is not None:
            parent_owner = self.owner(parent_id)
            parent_owner._require(parent_id)
            parent_lowers = self.lowers(parent_id)
            if len(parent_lowers) + 1 > MAX_DEPTH:
                raise StorageError(f"overlay: layer {id}: more than {MAX_DEPTH} layers")
            lower = ":".join([f"{LINK_DIR}/{self.link(parent_id)}", *parent_lowers])
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / LINK_DIR).mkdir(exist_ok=True, mode=0o755)
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            raise DuplicateIDError(f"overlay: layer {id} already exists") from None
        try:
            diff_mode = 0o555  # c/s's default: a layer tar without ./ leaves it so
            if parent_id is not None:
                diff_mode = os.stat(self.owner(parent_id).dir(parent_id)
                                    / "diff").st_mode & 0o7777
            os.mkdir(d / "diff", 0o755)
            os.chmod(d / "diff", diff_mode)
            short = generate_link_id()
            (d / "link").write_text(short)
            os.chmod(d / "link", 0o644)
            os.symlink(f"../{id}/diff", self.root / LINK_DIR / short)
            if parent_id is None:
                os.mkdir(d / "empty", 0o700)
            else:
                (d / "lower").write_text(lower)
                os.chmod(d / "lower", 0o644)
            os.mkdir(d / "work", 0o700)
            os.mkdir(d / "merged", 0o700)
        except BaseException:
            self._remove_dir(id)
            raise

    def create_from_staged(self, id: str, parent_id: str | None, staged: Path, *,
                           root_entry: bool) -> None:
        self.create(id, parent_id)
        try:
            diff = self.dir(id) / "diff"
            if not root_entry:  # the mode create() gave it (inherited from the parent)
                os.chmod(staged, os.stat(diff).st_mode & 0o7777)
            os.rmdir(diff)
            os.rename(staged, diff)
        except BaseException:
            self._remove_dir(id)
            raise

    def apply_diff(self, id: str, stream: Readable, *,
                   options: ApplyOptions | None = None) -> AppliedLayer:
        self._require(id)
        from ..apply import WhiteoutMode, apply_layer  # (only writing layers needs tar)

        return apply_layer(stream, self.diff_dir(id), mode=WhiteoutMode.OVERLAY,
                           options=options)

    def mount_options(self, id: str, mount_label: str = "", *, read_only: bool = False
                      ) -> str:
        """The overlay option string, relative to :attr:`root` (the mount's cwd)."""
        lowers = [self._resolve_link(entry) for entry in self.lowers(id)]
        if read_only:
            # overlay refuses a single lowerdir without upper: a base layer gets its
            # empty dir as a second lower
            rest = lowers if lowers else [f"{id}/empty"]
            parts = [f"lowerdir={':'.join([f'{id}/diff', *rest])}"]
        else:
            lowerdir = ":".join(lowers) if lowers else f"{id}/empty"
            parts = [f"lowerdir={lowerdir}", f"upperdir={id}/diff", f"workdir={id}/work"]
        if mount_label:
            parts.append(f'context="{mount_label}"')
        return ",".join(parts)

    def _resolve_link(self, entry: str) -> str:
        """A ``l/<short>`` lower as the mount names it: relative to our root, else the
        absolute path in the read-only store that has it (c/s looks there too)."""
        if os.path.lexists(self.root / entry):
            return entry
        for other in self.read_only:
            if os.path.lexists(other.root / entry):
                return os.fspath(other.root / entry)
        return entry

    def mount(self, id: str, mount_label: str = "", *, read_only: bool = False) -> str:
        self._require(id)
        merged = self.merged_dir(id)
        if is_mounted(merged):
            return merged
        options = self.mount_options(id, mount_label, read_only=read_only)
        _mount_overlay(os.fspath(self.root), options, merged)
        return merged

    def unmount(self, id: str) -> None:
        merged = self.merged_dir(id)
        while is_mounted(merged):
            umount(merged)

    def exists(self, id: str) -> bool:
        return self.dir(id).is_dir()

    def _remove_dir(self, id: str) -> None:
        d = self.dir(id)
        try:
            short = (d / "link").read_text().strip()
        except OSError:
            short = ""
        if short and "/" not in short:
            try:
                os.unlink(self.root / LINK_DIR / short)
            except FileNotFoundError:
                pass
        shutil.rmtree(d, ignore_errors=False)

    def remove(self, id: str) -> None:
        if not self.exists(id):
            return
        self.unmount(id)
        self._remove_dir(id)

    def diff(self, id: str, parent: str | None) -> BinaryIO:
        """The native diff of the layer's ``diff/`` dir. Only against its own parent
        (a naive diff against another layer is not implemented)."""
        self._require(id)
        lowers = self.lowers(id)
        own_parent = None
        if lowers:
            target = os.readlink(self.root / lowers[0])  # ../<parent id>/diff
            own_parent = target.split("/")[1]
        if parent != own_parent:
            raise StorageError(f"overlay: diff of layer {id} against {parent} (not its "
                               "parent) is not implemented")
        from ._export import overlay_changes, write_layer

        return write_layer(overlay_changes(self.diff_dir(id)))
