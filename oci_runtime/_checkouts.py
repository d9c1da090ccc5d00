"""Where a system container's deployments are in the checkouts directory, and the
``info`` record each one keeps.

``<checkouts>/<name>.<n>`` is deployment ``n`` (0 or 1);
``<checkouts>/.<name>.<n>.replaced`` is where an update keeps the deployment it is
replacing until the new one is active; ``<deployment>/tmpfiles-<name>.conf`` is the
deployment's copy of the tmpfiles.d file it installs; ``<deployment>/info`` (JSON)
records what the deployment is and what it installed on the host. The
``<checkouts>/<name>`` symlink and its switch belong to the activation in
:mod:`oci_runtime.install`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .bundle import write_atomic
from .errors import InstallError

__all__ = ["INFO_NAME", "deployment_dir", "read_info", "replaced_dir", "tmpfiles_copy",
           "write_info"]

INFO_NAME: Final = "info"


def deployment_dir(checkouts: str, name: str, n: int) -> Path:
    return Path(checkouts) / f"{name}.{n}"


def replaced_dir(checkouts: str, name: str, n: int) -> Path:
    """Where update keeps the deployment it is replacing until the new one is active."""
    return Path(checkouts) / f".{name}.{n}.replaced"


def tmpfiles_copy(directory: Path, name: str) -> Path:
    """The deployment's copy of the tmpfiles.d file it installs."""
    return directory / f"tmpfiles-{name}.conf"


def write_info(directory: Path, info: Mapping[str, Any]) -> None:
    write_atomic(directory / INFO_NAME, (json.dumps(info, indent=2) + "\n").encode())


def read_info(directory: Path) -> dict[str, Any]:
    try:
        info: dict[str, Any] = json.loads((directory / INFO_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise InstallError(f"{directory / INFO_NAME}: cannot read: {exc}") from exc
    return info
