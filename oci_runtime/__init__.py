"""oci_runtime: runtime-spec bundles from image configs, a runc/crun wrapper, the
pull -> store -> run flow, and systemd-managed system containers (issue #5, under way:
docs/runtime-spec.md, docs/runc.md)."""

from typing import TYPE_CHECKING, Any

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
    from .profiles import default_spec, harden, rootless_spec, seccomp_from_profile, to_rootless
    from .run import RunImageOptions, StoreLocation, run_image
    from .spec import Spec

#: where each exported name lives; modules load on first use
_EXPORTS = {
    "Bundle": "bundle", "ConvertOptions": "convert", "FilesystemOptions": "convert",
    "ProcessOptions": "convert", "ResourceLimits": "convert", "SecurityOptions": "convert",
    "spec_from_image": "convert", "default_spec": "profiles", "harden": "profiles",
    "rootless_spec": "profiles", "seccomp_from_profile": "profiles",
    "to_rootless": "profiles", "RunImageOptions": "run", "StoreLocation": "run",
    "run_image": "run", "Spec": "spec",
}

__all__ = [
    "Bundle",
    "ConvertOptions",
    "FilesystemOptions",
    "ProcessOptions",
    "ResourceLimits",
    "RunImageOptions",
    "SecurityOptions",
    "Spec",
    "StoreLocation",
    "default_spec",
    "harden",
    "rootless_spec",
    "run_image",
    "seccomp_from_profile",
    "spec_from_image",
    "to_rootless",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'oci_runtime' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
