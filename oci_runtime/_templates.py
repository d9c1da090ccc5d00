"""Strict ``$VARIABLE`` substitution for system-container templates, as Project Atomic
did it with :meth:`string.Template.substitute`: ``$NAME`` and ``${NAME}`` are replaced,
``$$`` is a literal ``$``, and a variable without a value is an
:class:`~oci_runtime.errors.InstallError` naming the variable and the template.
"""

from __future__ import annotations

import os
import string
from collections.abc import Mapping

from .convert import ALL_CAPABILITIES
from .errors import InstallError

__all__ = ["all_process_capabilities", "host_ids", "identifiers", "substitute"]


def substitute(text: str, values: Mapping[str, str], *, source: str) -> str:
    """``text`` with every variable replaced; ``source`` names the template in errors."""
    try:
        return string.Template(text).substitute(values)
    except KeyError as exc:
        raise InstallError(f"{source}: no value for the variable ${exc.args[0]} "
                           f"(set it with --set {exc.args[0]}=VALUE)") from None
    except ValueError as exc:  # a lone "$" or "${" that is not a placeholder
        raise InstallError(f"{source}: invalid placeholder: {exc}") from None


def identifiers(text: str) -> set[str]:
    """The variable names ``text`` uses (``$$`` escapes are not variables)."""
    return set(string.Template(text).get_identifiers())


def all_process_capabilities() -> str:
    """Every capability this kernel knows, quoted and comma-separated, ready to go
    inside a JSON array (``"bounding": [$ALL_PROCESS_CAPABILITIES]``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read().strip())
    except (OSError, ValueError):
        last = len(ALL_CAPABILITIES) - 1
    names = ALL_CAPABILITIES[: last + 1]
    return ", ".join(f'"{name}"' for name in names)


def host_ids() -> tuple[str, str]:
    """``HOST_UID`` and ``HOST_GID``: the installing user's."""
    return str(os.getuid()), str(os.getgid())
