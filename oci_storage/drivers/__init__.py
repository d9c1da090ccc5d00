"""Graph drivers: where layer trees live on disk and how a layer stack becomes a rootfs.

A driver owns ``<home>/<name>/`` (``home`` is the store's graph root) with the exact
layout containers/storage uses, so that a store laid out here can be used by podman:

* ``vfs``: ``vfs/dir/<id>`` is a full tree (a copy of the parent, then the layer
  applied with whiteouts deleting);
* ``overlay``: ``overlay/<id>/{diff,work,merged,link,lower}`` and
  ``overlay/l/<short> -> ../<id>/diff`` (see :mod:`oci_storage.drivers.overlay`).

Mounts are reference-free for now: :meth:`Driver.mount` mounts when not mounted,
:meth:`Driver.unmount` unmounts; counting mounts belongs to the store
(``mountpoints.json``).
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar, Self

from ..errors import DriverNotSupportedError, LayerUnknownError, StorageError

if TYPE_CHECKING:
    from oci_image.spec import Readable

    from ..apply import AppliedLayer, ApplyOptions

__all__ = ["DRIVERS", "Driver", "select_driver"]


class Driver(abc.ABC):
    """One graph driver rooted at ``home`` (the graph root; the driver uses
    ``home/<name>``). Layer IDs are the store's (64 hex digits)."""

    name: ClassVar[str]
    #: whether a layer's content can be applied before its parent is known, then moved
    #: into place (:meth:`create_from_staged`): overlay's ``diff/`` holds only the
    #: layer's own changes; vfs's directory is a full copy of the parent.
    supports_staging: ClassVar[bool] = False

    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = Path(home)
        self.root = self.home / self.name
        #: the same driver in read-only additional image stores (storage.conf's
        #: ``additionalimagestores``): their layers can be parents of ours
        self.read_only: tuple[Self, ...] = ()

    def owner(self, id: str) -> Self:
        """The driver (this one, else a read-only store's) that holds layer ``id``."""
        if self.exists(id):
            return self
        for other in self.read_only:
            if other.exists(id):
                return other
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.home)!r})"

    @classmethod
    @abc.abstractmethod
    def supported(cls, home: str | os.PathLike[str]) -> None:
        """Return when the driver can work in ``home``; raise
        :class:`DriverNotSupportedError` with the reason otherwise."""

    @abc.abstractmethod
    def create(self, id: str, parent_id: str | None = None) -> None:
        """Create the layer ``id`` on top of ``parent_id`` (empty when None)."""

    def create_from_staged(self, id: str, parent_id: str | None, staged: Path, *,
                           root_entry: bool) -> None:
        """Create the layer ``id`` on top of ``parent_id`` with the already applied
        directory ``staged`` (on the same filesystem) as its content, moved into place.
        ``root_entry``: whether the layer set its root's mode (else it is inherited, as
        :meth:`create` does)."""
        raise StorageError(f"{self.name}: staged layers are not supported")

    @abc.abstractmethod
    def apply_diff(self, id: str, stream: Readable, *,
                   options: ApplyOptions | None = None) -> AppliedLayer:
        """Apply a layer tar to the freshly created layer ``id``."""

    @abc.abstractmethod
    def mount(self, id: str, mount_label: str = "") -> str:
        """The path of the layer's full rootfs (writable; mounted when needed)."""

    @abc.abstractmethod
    def unmount(self, id: str) -> None:
        """Undo :meth:`mount` (nothing when not mounted)."""

    def get(self, id: str, mount_label: str = "") -> str:
        """Same as :meth:`mount` (the containers/storage name)."""
        return self.mount(id, mount_label)

    @abc.abstractmethod
    def exists(self, id: str) -> bool:
        """Whether the layer ``id`` has a directory here."""

    @abc.abstractmethod
    def remove(self, id: str) -> None:
        """Unmount and delete the layer ``id`` (nothing when it does not exist)."""

    @abc.abstractmethod
    def diff(self, id: str, parent: str | None) -> BinaryIO:
        """An uncompressed OCI layer tar holding the changes from ``parent`` to ``id``."""

    def _require(self, id: str) -> None:
        if not self.exists(id):
            raise LayerUnknownError(f"{self.name}: layer {id} does not exist")

    def _check_id(self, id: str) -> None:
        if not id or "/" in id or id in (".", "..", "l") or "\0" in id:
            raise StorageError(f"{self.name}: invalid layer id {id!r}")


def _drivers() -> dict[str, type[Driver]]:
    from .overlay import OverlayDriver
    from .vfs import VfsDriver

    return {"overlay": OverlayDriver, "vfs": VfsDriver}


#: the driver names in automatic preference order
DRIVERS: tuple[str, ...] = ("overlay", "vfs")


def select_driver(home: str | os.PathLike[str], name: str | None = None) -> Driver:
    """The driver ``name`` for the graph root ``home`` (raising
    :class:`DriverNotSupportedError` when it cannot work there), or with ``name=None``
    the first of :data:`DRIVERS` that works (overlay when a probe mount succeeds in
    ``home``, else vfs)."""
    table = _drivers()
    if name is not None:
        if name not in table:
            raise DriverNotSupportedError(f"unknown storage driver {name!r} "
                                          f"(known: {', '.join(sorted(table))})")
        table[name].supported(home)
        return table[name](home)
    reasons: list[str] = []
    for candidate in DRIVERS:
        try:
            table[candidate].supported(home)
        except DriverNotSupportedError as exc:
            reasons.append(f"{candidate}: {exc}")
            continue
        return table[candidate](home)
    raise DriverNotSupportedError("no storage driver works here: " + "; ".join(reasons))
