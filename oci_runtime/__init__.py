"""oci_runtime: runtime-spec bundles from image configs, a runc/crun wrapper and
systemd-managed system containers (issue #5, under way: docs/runtime-spec.md)."""

__all__: list[str] = []

# runtime-spec model, profiles, image conversion and bundles (docs/runtime-spec.md)
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
from .spec import Spec

__all__ += [
    "Bundle",
    "ConvertOptions",
    "FilesystemOptions",
    "ProcessOptions",
    "ResourceLimits",
    "SecurityOptions",
    "Spec",
    "default_spec",
    "harden",
    "rootless_spec",
    "seccomp_from_profile",
    "spec_from_image",
    "to_rootless",
]
