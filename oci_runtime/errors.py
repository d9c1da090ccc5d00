"""The ``oci_runtime`` branch of the one error tree (rooted at
:class:`oci_image.errors.OCIError`)::

    OCIRuntimeError(OCIError)
    ├── SpecError(OCIRuntimeError, ValueError)   a runtime-spec config that is invalid or
    │                                            cannot be generated (names the field)
    ├── UserNotFoundError(SpecError, LookupError)
    │                                            an image ``User`` name or group that the
    │                                            rootfs's /etc/passwd or /etc/group lacks
    ├── RuncNotFoundError(OCIRuntimeError, FileNotFoundError)
    │                                            the runc/crun binary is missing
    ├── RuncError(OCIRuntimeError)               runc failed: ``argv``, ``exit_code``,
    │                                            ``message`` (from its JSON log)
    ├── ContainerNotFoundError(RuncError, LookupError)
    │                                            runc does not know the container
    └── InstallError(OCIRuntimeError)            a system container cannot be installed,
                                                 updated, rolled back or removed

Messages name the container, field or file concerned.
"""

from __future__ import annotations

from collections.abc import Sequence

from oci_image.errors import OCIError

__all__ = [
    "ContainerNotFoundError",
    "InstallError",
    "OCIRuntimeError",
    "RuncError",
    "RuncNotFoundError",
    "SpecError",
    "UserNotFoundError",
]


class OCIRuntimeError(OCIError):
    """Root of every error raised on purpose by oci_runtime (not the builtin
    ``RuntimeError``)."""


class SpecError(OCIRuntimeError, ValueError):
    """A runtime-spec configuration that is invalid or cannot be generated."""


class UserNotFoundError(SpecError, LookupError):
    """A user or group name that the rootfs's /etc/passwd or /etc/group lacks."""


class RuncNotFoundError(OCIRuntimeError, FileNotFoundError):
    """The runtime binary (runc, crun) cannot be found."""


class RuncError(OCIRuntimeError):
    """The runtime binary failed. ``argv`` is what ran, ``exit_code`` runc's own status,
    ``message`` the error it logged (its JSON log's last error, else stderr)."""

    def __init__(self, message: str, *, argv: Sequence[str] = (), exit_code: int = -1
                 ) -> None:
        super().__init__(message)
        self.argv = tuple(argv)
        self.exit_code = exit_code
        self.message = message


class ContainerNotFoundError(RuncError, LookupError):
    """The runtime has no container with that ID."""


class InstallError(OCIRuntimeError):
    """A system container cannot be installed, updated, rolled back or removed."""
