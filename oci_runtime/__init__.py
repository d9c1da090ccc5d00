"""oci_runtime: runtime-spec bundles from image configs, a runc/crun wrapper, the
pull -> store -> run flow, and systemd-managed system containers (docs/runtime-spec.md,
docs/runc.md, docs/runtime.md, docs/system-containers.md).

The installer's ``install`` function is not exported here: ``oci_runtime.install`` is its
module (``from oci_runtime.install import install``)."""

from typing import TYPE_CHECKING

from oci_image.spec._lazy import lazy_exports

if TYPE_CHECKING:
    from .bundle import Bundle
    from .convert import (
        ConvertOptions,
        FilesystemOptions,
        ProcessOptions,
        ResourceLimits,
        SecurityOptions,
        spec_from_image,
    )
    from .errors import (
        ContainerNotFoundError,
        InstallError,
        OCIRuntimeError,
        RuncError,
        RuncNotFoundError,
        SpecError,
        UserNotFoundError,
    )
    from .install import (
        Installation,
        InstallOptions,
        get_installation,
        list_installed,
        rollback,
        uninstall,
        update,
    )
    from .profiles import default_spec, harden, rootless_spec, seccomp_from_profile, to_rootless
    from .run import (
        PreparedContainer,
        RunImageOptions,
        StoreLocation,
        prepare_container,
        remove_container,
        resolve_image,
        run_image,
        stop_container,
    )
    from .runc import Runc
    from .spec import Spec

#: where each exported name lives; modules load on first use
_EXPORTS = {
    "Bundle": ".bundle", "ConvertOptions": ".convert", "FilesystemOptions": ".convert",
    "ProcessOptions": ".convert", "ResourceLimits": ".convert", "SecurityOptions": ".convert",
    "spec_from_image": ".convert", "default_spec": ".profiles", "harden": ".profiles",
    "rootless_spec": ".profiles", "seccomp_from_profile": ".profiles",
    "to_rootless": ".profiles", "RunImageOptions": ".run", "StoreLocation": ".run",
    "run_image": ".run", "resolve_image": ".run",
    "PreparedContainer": ".run", "prepare_container": ".run", "remove_container": ".run",
    "stop_container": ".run", "Spec": ".spec", "Runc": ".runc",
    "Installation": ".install", "InstallOptions": ".install",
    "get_installation": ".install", "list_installed": ".install",
    "rollback": ".install", "uninstall": ".install", "update": ".install",
    "ContainerNotFoundError": ".errors", "InstallError": ".errors",
    "OCIRuntimeError": ".errors", "RuncError": ".errors", "RuncNotFoundError": ".errors",
    "SpecError": ".errors", "UserNotFoundError": ".errors",
}

__all__ = [
    "Bundle",
    "ContainerNotFoundError",
    "ConvertOptions",
    "FilesystemOptions",
    "InstallError",
    "InstallOptions",
    "Installation",
    "OCIRuntimeError",
    "PreparedContainer",
    "ProcessOptions",
    "ResourceLimits",
    "RunImageOptions",
    "Runc",
    "RuncError",
    "RuncNotFoundError",
    "SecurityOptions",
    "Spec",
    "SpecError",
    "StoreLocation",
    "UserNotFoundError",
    "default_spec",
    "get_installation",
    "harden",
    "list_installed",
    "prepare_container",
    "remove_container",
    "resolve_image",
    "rollback",
    "rootless_spec",
    "run_image",
    "seccomp_from_profile",
    "spec_from_image",
    "stop_container",
    "to_rootless",
    "uninstall",
    "update",
]


if not TYPE_CHECKING:  # (mypy sees the imports above, and flags a name that is not one)
    __getattr__ = lazy_exports(globals(), _EXPORTS)
