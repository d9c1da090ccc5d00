"""The vfs driver (containers/storage ``drivers/vfs``): ``<home>/vfs/dir/<id>`` is a full
tree. A child starts as a copy of its parent (``cp -a --reflink=auto``: owners, modes,
xattrs, mtimes, devices and hardlinks within the tree survive; data is reflinked where the
filesystem can), then the layer is applied with whiteouts deleting. Works anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import TYPE_CHECKING, BinaryIO

from ..errors import DuplicateIDError, StorageError
from . import Driver

if TYPE_CHECKING:
    from oci_image.spec import Readable

    from ..apply import AppliedLayer, ApplyOptions


def copy_tree(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy the contents and root metadata of the directory ``src`` into the existing
    empty directory ``dst``, preserving everything (GNU ``cp -a --reflink=auto``)."""
    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--", f"{os.fspath(src)}/.",
                           os.fspath(dst)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StorageError(f"vfs: copying {os.fspath(src)} to {os.fspath(dst)} failed: "
                           f"{proc.stderr.strip()}")


class VfsDriver(Driver):
    name = "vfs"

    @classmethod
    def supported(cls, home: str | os.PathLike[str]) -> None:
        if shutil.which("cp") is None:  # pragma: no cover - coreutils is everywhere
            from ..errors import DriverNotSupportedError

            raise DriverNotSupportedError("vfs: the cp program is not available")

    def dir(self, id: str) -> str:
        self._check_id(id)
        return os.fspath(self.root / "dir" / id)

    def create(self, id: str, parent_id: str | None = None) -> None:
        path = self.dir(id)
        parent = self.owner(parent_id) if parent_id is not None else self
        if parent_id is not None:
            parent._require(parent_id)
        os.makedirs(self.root / "dir", mode=0o700, exist_ok=True)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            raise DuplicateIDError(f"vfs: layer {id} already exists") from None
        try:
            if parent_id is not None:
                copy_tree(parent.dir(parent_id), path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise

    def apply_diff(self, id: str, stream: Readable, *,
                   options: ApplyOptions | None = None) -> AppliedLayer:
        self._require(id)
        from ..apply import WhiteoutMode, apply_layer  # (only writing layers needs tar)

        return apply_layer(stream, self.dir(id), mode=WhiteoutMode.DELETE, options=options)

    def mount(self, id: str, mount_label: str = "") -> str:
        self._require(id)
        return self.dir(id)

    def unmount(self, id: str) -> None:
        self._require(id)

    def exists(self, id: str) -> bool:
        return os.path.isdir(self.dir(id))

    def remove(self, id: str) -> None:
        path = self.dir(id)
        if os.path.lexists(path):
            shutil.rmtree(path)

    def diff(self, id: str, parent: str | None) -> BinaryIO:
        self._require(id)
        if parent is not None:
            self._require(parent)
        from ._export import naive_changes, write_layer

        return write_layer(naive_changes(None if parent is None else self.dir(parent),
                                         self.dir(id)))
