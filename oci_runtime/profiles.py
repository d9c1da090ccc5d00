"""Ready-made runtime configurations.

- :func:`default_spec`: the content of ``runc spec`` (runc 1.1.5, ``libcontainer/specconv``
  ``Example()``), with our :data:`~oci_runtime.spec.OCI_VERSION` unless told otherwise;
- :func:`to_rootless` / :func:`rootless_spec`: runc's ``ToRootless`` transform, i.e. the
  content of ``runc spec --rootless``;
- :func:`harden`: podman's defaults (containers/common ``pkg/config``): its default
  capability set, masked and read-only paths, and the containers seccomp profile
  converted for the host architecture by :func:`seccomp_from_profile`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .errors import SpecError
from .spec import (
    OCI_VERSION,
    Capabilities,
    DeviceCgroup,
    IDMapping,
    Linux,
    Mount,
    Namespace,
    Process,
    Resources,
    Rlimit,
    Root,
    Seccomp,
    Spec,
    Syscall,
    SyscallArg,
    User,
)

__all__ = [
    "DEFAULT_SECCOMP_PROFILE",
    "PODMAN_CAPABILITIES",
    "PODMAN_MASKED_PATHS",
    "PODMAN_READONLY_PATHS",
    "RUNC_CAPABILITIES",
    "default_spec",
    "harden",
    "host_cgroup_v2",
    "load_seccomp_profile",
    "rootless_spec",
    "seccomp_from_profile",
    "seccomp_native_arch",
    "to_rootless",
]

DEFAULT_ENV: Final = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                      "TERM=xterm")
RUNC_CAPABILITIES: Final = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
RUNC_MASKED_PATHS: Final = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
    "/proc/scsi")
RUNC_READONLY_PATHS: Final = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: containers/common ``DefaultCapabilities`` (podman 5): no MKNOD, NET_RAW, AUDIT_WRITE
PODMAN_CAPABILITIES: Final = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT")
#: containers/common default masked paths; the ``thermal_throttle`` glob is expanded
#: against the host's /sys when :func:`harden` runs, as podman does
PODMAN_MASKED_PATHS: Final = (
    "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/sched_debug",
    "/proc/scsi", "/proc/timer_list", "/proc/timer_stats", "/sys/devices/virtual/powercap",
    "/sys/firmware", "/sys/fs/selinux", "/proc/interrupts")
PODMAN_MASKED_GLOBS: Final = ("/sys/devices/system/cpu/cpu*/thermal_throttle",)
PODMAN_READONLY_PATHS: Final = (
    "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: the containers seccomp profile (Debian package golang-github-containers-common)
DEFAULT_SECCOMP_PROFILE: Final = Path("/usr/share/containers/seccomp.json")
_PROFILE_SIZE_LIMIT: Final = 4 * 1024 * 1024


def host_cgroup_v2() -> bool:
    """Whether /sys/fs/cgroup is a unified (v2) hierarchy, as runc checks for the
    cgroup namespace."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _runc_mounts() -> tuple[Mount, ...]:
    return (
        Mount(destination="/proc", type="proc", source="proc"),
        Mount(destination="/dev", type="tmpfs", source="tmpfs",
              options=("nosuid", "strictatime", "mode=755", "size=65536k")),
        Mount(destination="/dev/pts", type="devpts", source="devpts",
              options=("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                       "gid=5")),
        Mount(destination="/dev/shm", type="tmpfs", source="shm",  # noqa: S108 (in the container)
              options=("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        Mount(destination="/dev/mqueue", type="mqueue", source="mqueue",
              options=("nosuid", "noexec", "nodev")),
        Mount(destination="/sys", type="sysfs", source="sysfs",
              options=("nosuid", "noexec", "nodev", "ro")),
        Mount(destination="/sys/fs/cgroup", type="cgroup", source="cgroup",
              options=("nosuid", "noexec", "nodev", "relatime", "ro")),
    )


def default_spec(*, oci_version: str = OCI_VERSION, cgroup_namespace: bool | None = None
                 ) -> Spec:
    """What ``runc spec`` writes: ``sh`` as root in a read-only ``rootfs`` with a
    terminal, three capabilities (also ambient, as runc 1.1.5 has them), NOFILE 1024,
    hostname ``runc``, runc's seven mounts, masked and read-only paths, a deny-all device
    cgroup, and pid/network/ipc/uts/mount namespaces, plus ``cgroup`` when
    ``cgroup_namespace`` is true (default: when the host is on cgroup v2, as runc does)."""
    if cgroup_namespace is None:
        cgroup_namespace = host_cgroup_v2()
    namespaces = [Namespace(type=t) for t in ("pid", "network", "ipc", "uts", "mount")]
    if cgroup_namespace:
        namespaces.append(Namespace(type="cgroup"))
    caps = RUNC_CAPABILITIES
    return Spec(
        oci_version=oci_version,
        process=Process(
            terminal=True, user=User(uid=0, gid=0), args=("sh",), env=DEFAULT_ENV, cwd="/",
            capabilities=Capabilities(bounding=caps, effective=caps, permitted=caps,
                                      ambient=caps),
            rlimits=(Rlimit(type="RLIMIT_NOFILE", hard=1024, soft=1024),),
            no_new_privileges=True),
        root=Root(path="rootfs", readonly=True),
        hostname="runc",
        mounts=_runc_mounts(),
        linux=Linux(
            resources=Resources(devices=(DeviceCgroup(allow=False, access="rwm"),)),
            namespaces=tuple(namespaces),
            masked_paths=RUNC_MASKED_PATHS,
            readonly_paths=RUNC_READONLY_PATHS),
    )


def to_rootless(spec: Spec, *, uid: int | None = None, gid: int | None = None) -> Spec:
    """runc's ``ToRootless``: a new user namespace (and no network namespace) mapping
    container root to ``uid``/``gid`` (default: our effective ids), /sys as a read-only
    rbind of the host's, no ``uid=``/``gid=`` mount options, no ``linux.resources``."""
    uid = os.geteuid() if uid is None else uid
    gid = os.getegid() if gid is None else gid
    linux = spec.linux or Linux()
    other = [ns for ns in linux.namespaces or () if ns.type not in ("network", "user")]
    namespaces = (*other, Namespace(type="user"))
    mounts: list[Mount] = []
    for mount in spec.mounts or ():
        if os.path.normpath(mount.destination) == "/sys":
            mounts.append(Mount(destination="/sys", type="none", source="/sys",
                                options=("rbind", "nosuid", "noexec", "nodev", "ro")))
            continue
        if mount.options is not None:
            kept = tuple(o for o in mount.options if not o.startswith(("uid=", "gid=")))
            mount = attrs.evolve(mount, options=kept or None)
        mounts.append(mount)
    linux = attrs.evolve(
        linux, namespaces=namespaces, resources=None,
        uid_mappings=(IDMapping(container_id=0, host_id=uid, size=1),),
        gid_mappings=(IDMapping(container_id=0, host_id=gid, size=1),))
    return attrs.evolve(spec, linux=linux,
                        mounts=tuple(mounts) if spec.mounts is not None else None)


def rootless_spec(*, oci_version: str = OCI_VERSION, cgroup_namespace: bool | None = None,
                  uid: int | None = None, gid: int | None = None) -> Spec:
    """What ``runc spec --rootless`` writes (for the given or effective ids)."""
    return to_rootless(default_spec(oci_version=oci_version,
                                    cgroup_namespace=cgroup_namespace), uid=uid, gid=gid)


# ---------------------------------------------------------------------------------------
# seccomp: Docker/containers profile format -> runtime-spec linux.seccomp

#: machine names (uname -m) to libseccomp's native arch names, which the profile's
#: ``includes.arches`` / ``excludes.arches`` use
_MACHINE_TO_NATIVE: Final = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "x86", "i686": "x86", "x86": "x86",
    "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm", "arm": "arm",
    "ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "s390": "s390",
    "riscv64": "riscv64", "mips64": "mips64", "mips64el": "mipsel64", "mips": "mips",
    "mipsel": "mipsel", "loongarch64": "loong64", "x32": "x32",
}
#: containers/common ``nativeToSeccomp``: which ``archMap`` entry applies to a native arch
_NATIVE_TO_SCMP: Final = {
    "amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32", "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mipsel64n32": "SCMP_ARCH_MIPSEL64N32", "s390x": "SCMP_ARCH_S390X",
}


def seccomp_native_arch(machine: str | None = None) -> str:
    """libseccomp's name (``amd64``, ``arm64``, ...) for ``machine`` (default: the host)."""
    if not machine:
        import platform

        machine = platform.machine()
    return _MACHINE_TO_NATIVE.get(machine, machine)


def load_seccomp_profile(path: str | os.PathLike[str] = DEFAULT_SECCOMP_PROFILE
                         ) -> dict[str, Any]:
    """Read a Docker/containers-format seccomp profile (JSON object)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_PROFILE_SIZE_LIMIT + 1)
    except FileNotFoundError as exc:
        raise SpecError(f"seccomp profile {os.fspath(path)} does not exist") from exc
    if len(raw) > _PROFILE_SIZE_LIMIT:
        raise SpecError(f"seccomp profile {os.fspath(path)} is over {_PROFILE_SIZE_LIMIT} bytes")
    try:
        profile = json.loads(raw)
    except ValueError as exc:
        raise SpecError(f"seccomp profile {os.fspath(path)} is not valid JSON: {exc}") from exc
    if not isinstance(profile, dict):
        raise SpecError(f"seccomp profile {os.fspath(path)} must be a JSON object")
    return profile


def _kernel_at_least(minimum: str, release: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        out: list[int] = []
        for piece in text.split("-")[0].split(".")[:3]:
            digits = "".join(c for c in piece if c.isdigit())
            out.append(int(digits) if digits else 0)
        return tuple(out)

    return parts(release) >= parts(minimum)


def _filter(profile_path: str, rule: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = rule.get(key) or {}
    if not isinstance(value, dict):
        raise SpecError(f"{profile_path}.{key} must be an object")
    return value


def seccomp_from_profile(profile: Mapping[str, Any], *, capabilities: Iterable[str],
                         arch: str | None = None, kernel: str | None = None) -> Seccomp:
    """Convert a Docker/containers seccomp profile into ``linux.seccomp`` for one
    container, as containers/common ``setupSeccomp`` does.

    ``capabilities`` is the container's bounding set: a rule with ``includes.caps`` is
    kept only if every listed capability is in it, one with ``excludes.caps`` only if
    none is. ``arch`` (libseccomp native name or ``uname -m``; default: the host) selects
    the ``archMap`` entry (its architecture plus sub-architectures) and filters rules by
    ``includes.arches``/``excludes.arches``; ``kernel`` (default: the host's release)
    filters rules by ``includes.minKernel``. ``defaultErrnoRet`` and per-rule
    ``errnoRet`` are kept; ``comment``, ``errno`` names and empty filters are dropped.
    """
    native = seccomp_native_arch(arch)
    caps = set(capabilities)
    if kernel:
        release = kernel
    else:
        import platform

        release = platform.release()
    default_action = profile.get("defaultAction")
    if not isinstance(default_action, str) or not default_action:
        raise SpecError("seccomp profile: defaultAction is required")
    architectures: list[str] = []
    if profile.get("architectures") and profile.get("archMap"):
        raise SpecError("seccomp profile: both 'architectures' and 'archMap' are given")
    for name in profile.get("architectures") or ():
        architectures.append(name)
    wanted = _NATIVE_TO_SCMP.get(native)
    for entry in profile.get("archMap") or ():
        if wanted is not None and entry.get("architecture") == wanted:
            architectures.append(entry["architecture"])
            architectures.extend(entry.get("subArchitectures") or ())
            break

    syscalls: list[Syscall] = []
    for i, rule in enumerate(profile.get("syscalls") or ()):
        where = f"seccomp profile.syscalls[{i}]"
        if not isinstance(rule, dict):
            raise SpecError(f"{where} must be an object")
        includes = _filter(where, rule, "includes")
        excludes = _filter(where, rule, "excludes")
        if native in (excludes.get("arches") or ()):
            continue
        if any(c in caps for c in excludes.get("caps") or ()):
            continue
        if includes.get("arches") and native not in includes["arches"]:
            continue
        if any(c not in caps for c in includes.get("caps") or ()):
            continue
        min_kernel = includes.get("minKernel")
        if min_kernel and not _kernel_at_least(str(min_kernel), release):
            continue
        name, names = rule.get("name"), rule.get("names")
        if name and names:
            raise SpecError(f"{where}: both 'name' and 'names' are given")
        all_names = (name,) if name else tuple(names or ())
        if not all_names:
            continue
        args = tuple(
            SyscallArg(index=a["index"], value=a["value"], value_two=a.get("valueTwo") or None,
                       op=a["op"])
            for a in rule.get("args") or ())
        try:
            syscalls.append(Syscall(names=all_names, action=rule["action"],
                                    errno_ret=rule.get("errnoRet"), args=args or None))
        except KeyError as exc:
            raise SpecError(f"{where}: {exc.args[0]!r} is required") from exc
    seccomp = Seccomp(
        default_action=default_action,
        default_errno_ret=profile.get("defaultErrnoRet"),
        architectures=tuple(architectures) or None,
        flags=tuple(profile["flags"]) if profile.get("flags") else None,
        listener_path=profile.get("listenerPath") or None,
        listener_metadata=profile.get("listenerMetadata") or None,
        syscalls=tuple(syscalls) or None,
    )
    # one pass through the parser checks actions, operators and ranges of the result
    return Seccomp.from_dict(seccomp.to_dict(), "linux.seccomp")


def harden(spec: Spec, *, seccomp_profile: Mapping[str, Any] | str | os.PathLike[str] | None
           = DEFAULT_SECCOMP_PROFILE, arch: str | None = None, kernel: str | None = None
           ) -> Spec:
    """podman's defaults on top of ``spec``: :data:`PODMAN_CAPABILITIES` in the
    bounding, effective and permitted sets (no inheritable or ambient), podman's
    masked and read-only paths, ``noNewPrivileges``, and ``seccomp_profile`` (a path or
    an already loaded profile; ``None`` leaves ``linux.seccomp`` as it is) converted for
    those capabilities and ``arch``."""
    process = spec.process or Process(cwd="/")
    process = attrs.evolve(process, capabilities=Capabilities.of(PODMAN_CAPABILITIES),
                           no_new_privileges=True)
    import glob

    masked = list(PODMAN_MASKED_PATHS)
    for pattern in PODMAN_MASKED_GLOBS:
        masked.extend(sorted(glob.glob(pattern)))
    linux = attrs.evolve(spec.linux or Linux(), masked_paths=tuple(masked),
                         readonly_paths=PODMAN_READONLY_PATHS)
    if seccomp_profile is not None:
        profile = (seccomp_profile if isinstance(seccomp_profile, Mapping)
                   else load_seccomp_profile(seccomp_profile))
        linux = attrs.evolve(linux, seccomp=seccomp_from_profile(
            profile, capabilities=PODMAN_CAPABILITIES, arch=arch, kernel=kernel))
    return attrs.evolve(spec, process=process, linux=linux)
