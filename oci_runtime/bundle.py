"""An OCI runtime bundle: a directory with ``config.json`` and the root filesystem that
``root.path`` names (relative to the bundle, or absolute).

``config.json`` is written atomically: a temporary file in the bundle directory,
``fsync``, ``rename`` over the old one, then ``fsync`` of the directory, so a reader
(runc) sees the old or the new config, never a partial one. All paths are made absolute,
so a bundle works whatever the current directory is.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Final

import attrs

from .errors import SpecError
from .spec import CONFIG_SIZE_LIMIT, Root, Spec

__all__ = ["CONFIG_NAME", "Bundle", "write_atomic"]

CONFIG_NAME: Final = "config.json"


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _absolute_path(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.abspath(path))


@attrs.frozen
class Bundle:
    """A bundle directory (``path`` is absolute)."""

    path: Path = attrs.field(converter=_absolute_path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    def rootfs_path(self, spec: Spec | None = None) -> Path:
        """The root filesystem ``spec`` (default: the stored config) points at."""
        spec = spec if spec is not None else self.load_config()
        if spec.root is None:
            raise SpecError(f"{self.config_path}: root.path is missing")
        return self.path / spec.root.path  # an absolute root.path wins in the join

    @classmethod
    def create(cls, directory: str | os.PathLike[str], spec: Spec, *,
               rootfs: str | os.PathLike[str] | None = None) -> Bundle:
        """Make ``directory`` (and parents) a bundle holding ``spec``.

        ``rootfs``: where the root filesystem already is. Inside the bundle it is
        written relative (``rootfs``), elsewhere absolute; the directory must exist.
        Without it, ``spec.root.path`` (default ``rootfs``) is created empty if missing.
        """
        bundle = cls(Path(directory))
        bundle.path.mkdir(parents=True, exist_ok=True)
        if rootfs is not None:
            root_dir = Path(os.path.abspath(rootfs))
            if not root_dir.is_dir():
                raise SpecError(f"rootfs {root_dir} is not a directory")
            try:
                rel = root_dir.relative_to(bundle.path)
                root_path = rel.as_posix() if rel.parts else "."
            except ValueError:
                root_path = str(root_dir)
            readonly = spec.root.readonly if spec.root is not None else None
            spec = attrs.evolve(spec, root=Root(path=root_path, readonly=readonly))
        elif spec.root is None:
            spec = attrs.evolve(spec, root=Root(path="rootfs"))
        bundle.rootfs_path(spec).mkdir(parents=True, exist_ok=True)
        bundle.write_config(spec)
        return bundle

    def write_config(self, spec: Spec) -> None:
        """Write ``config.json`` atomically."""
        write_atomic(self.config_path, spec.to_json())

    def load_config(self) -> Spec:
        with open(self.config_path, "rb") as f:
            raw = f.read(CONFIG_SIZE_LIMIT + 1)
        return Spec.from_json(raw)
