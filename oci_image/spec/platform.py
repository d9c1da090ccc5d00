"""Platforms (os / architecture / variant), their normalisation, and instance choice."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import attrs

from ._json import Fields

__all__ = ["Platform", "host_platform", "platform_preferences"]

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "386": ("386", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "arm": ("arm", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}

# Which variants can run on a CPU of a given variant, most preferred first
# (containers/image platform matcher: arm v8 runs v7, v6, v5 binaries).
_ARM_COMPAT = {
    "v8": ("v8", "v7", "v6", "v5"),
    "v7": ("v7", "v6", "v5"),
    "v6": ("v6", "v5"),
    "v5": ("v5",),
}


@attrs.frozen
class Platform:
    """A platform as written in an index entry or an image config."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Platform:
        """Parse ``os/arch[/variant]`` (as on podman's ``--platform``)."""
        parts = value.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {value!r}: expected os/arch[/variant]")
        return cls(os=parts[0], architecture=parts[1],
                   variant=parts[2] if len(parts) == 3 else "").normalized()

    @classmethod
    def from_fields(cls, f: Fields) -> Platform:
        return cls(
            os=f.string("os") or "",
            architecture=f.string("architecture") or "",
            variant=f.string("variant") or "",
            os_version=f.string("os.version") or "",
            os_features=f.str_list("os.features"),
            features=f.str_list("features"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        if self.features:
            out["features"] = list(self.features)
        return out

    def normalized(self) -> Platform:
        """Canonical names: ``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64/v8``,
        ``armhf`` -> ``arm/v7``, numeric variants get a ``v`` prefix."""
        os_name = self.os.lower()
        if os_name == "macos":
            os_name = "darwin"
        arch = self.architecture.lower()
        variant = self.variant.lower()
        alias = _ARCH_ALIASES.get(arch)
        if alias is not None:
            arch, default_variant = alias
            if not variant:
                variant = default_variant
        if variant and variant[0].isdigit():
            variant = "v" + variant
        if variant == "v8.0":
            variant = "v8"
        if arch == "arm64" and not variant:
            variant = "v8"
        if arch == "arm" and not variant:
            variant = "v7"
        if arch == "amd64" and variant == "v1":
            variant = ""
        return attrs.evolve(self, os=os_name, architecture=arch, variant=variant)

    def matches(self, wanted: Platform) -> bool:
        """Whether an instance with this platform satisfies ``wanted`` exactly
        (os and architecture equal; variant equal, or not asked for)."""
        mine, want = self.normalized(), wanted.normalized()
        if mine.os != want.os or mine.architecture != want.architecture:
            return False
        return not want.variant or mine.variant == want.variant

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def host_platform() -> Platform:
    """The platform of this machine (Linux images are wanted on any host OS that runs
    them in a VM, like podman machine does)."""
    import platform as _host  # (2 ms to import; only this function needs it)

    os_name = "linux" if sys.platform.startswith("linux") else sys.platform
    machine = _host.machine() or "amd64"
    return Platform(os=os_name, architecture=machine).normalized()


def platform_preferences(wanted: Platform) -> Sequence[Platform]:
    """The platforms acceptable for ``wanted``, most preferred first."""
    want = wanted.normalized()
    if want.architecture == "arm64" and want.variant == "v8":
        # arm64 images often carry no variant at all.
        return (want, attrs.evolve(want, variant=""))
    if want.architecture == "arm" and want.variant in _ARM_COMPAT:
        return tuple(attrs.evolve(want, variant=v) for v in _ARM_COMPAT[want.variant])
    return (want,)
