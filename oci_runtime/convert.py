"""Image config -> runtime config, as image-spec ``conversion.md`` says, plus the
overrides a caller needs.

:func:`spec_from_image` starts from a template (``runc spec``'s content by default),
applies the image configuration (the "default generated runtime configuration"), then
the caller's :class:`ConvertOptions` (externally provided inputs, which conversion.md
lets change anything). See docs/runtime-spec.md for the rules, one by one.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

import attrs

from oci_image.spec import FrozenDict, ImageConfig

from .errors import SpecError
from .passwd import resolve_user
from .profiles import (
    DEFAULT_SECCOMP_PROFILE,
    default_spec,
    harden,
    load_seccomp_profile,
    seccomp_from_profile,
)
from .spec import (
    CPU,
    NAMESPACE_TYPES,
    Capabilities,
    Hooks,
    Linux,
    Memory,
    Mount,
    Namespace,
    Pids,
    Process,
    Resources,
    Root,
    Spec,
    User,
)

__all__ = [
    "ALL_CAPABILITIES",
    "ConvertOptions",
    "FilesystemOptions",
    "ProcessOptions",
    "ResourceLimits",
    "SecurityOptions",
    "image_annotations",
    "image_args",
    "spec_from_image",
]

ANNOTATION_PREFIX: Final = "org.opencontainers.image."

#: every capability Linux 6.x knows (``capability.h`` order), for ``cap_add=("ALL",)``
ALL_CAPABILITIES: Final = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
#: options of a tmpfs made for an image volume or a read-only rootfs (umoci's choice)
TMPFS_OPTIONS: Final = ("rw", "nosuid", "nodev", "noexec", "relatime")


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("expected an iterable of strings, not a string")
    return tuple(value)


def _opt_strs(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else _strs(value)


def _frozen(value: Mapping[str, str]) -> FrozenDict:
    return value if isinstance(value, FrozenDict) else FrozenDict(value)


@attrs.frozen(kw_only=True)
class ProcessOptions:
    """What the caller changes about the process.

    ``args`` replaces ``process.args`` outright. ``entrypoint``/``cmd`` replace the
    image's ``Entrypoint``/``Cmd`` before they are joined (in Docker-compatible mode an
    ``entrypoint`` also drops the image's ``Cmd``, and ``("",)`` means no entrypoint).
    ``env`` entries (``NAME=value``) replace same-named ones or are appended; ``unset_env``
    names are removed. ``user`` is in ``Config.User`` syntax and is resolved like the
    image's. ``terminal=None`` keeps the template's.
    """

    args: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_strs)
    entrypoint: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_strs)
    cmd: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_strs)
    env: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    unset_env: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    cwd: str | None = None
    user: str | None = None
    terminal: bool | None = None


@attrs.frozen(kw_only=True)
class FilesystemOptions:
    """Root and mounts.

    ``read_only`` makes the rootfs read-only and mounts a tmpfs on each of
    ``read_only_tmpfs`` (where programs expect to write). ``tmpfs`` adds more tmpfs
    destinations; ``mounts`` adds any mounts (e.g. :meth:`Mount.bind`). Image
    ``Volumes`` become tmpfs mounts (``volumes="tmpfs"``) or nothing
    (``volumes="none"``); a destination in ``volume_sources`` is bind-mounted from that
    host directory instead. A later mount with the same destination replaces an earlier
    one in place (caller mounts > volumes > tmpfs > template mounts).
    """

    root_path: str = "rootfs"
    read_only: bool = False
    # paths inside the container, not host temporary directories
    read_only_tmpfs: tuple[str, ...] = attrs.field(
        default=("/tmp", "/run", "/var/tmp"), converter=_strs)  # noqa: S108
    tmpfs: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    mounts: tuple[Mount, ...] = ()
    volumes: Literal["tmpfs", "none"] = "tmpfs"
    volume_sources: FrozenDict = attrs.field(factory=FrozenDict, converter=_frozen)


@attrs.frozen(kw_only=True)
class SecurityOptions:
    """Capabilities and seccomp.

    ``hardened`` applies :func:`oci_runtime.profiles.harden` to the template (podman's
    capabilities, masked and read-only paths) and a seccomp profile. ``cap_drop`` is
    applied before ``cap_add``; names may omit ``CAP_``; ``"ALL"`` means every
    capability. ``seccomp_profile`` (a Docker/containers-format profile: a path or a
    loaded mapping; default with ``hardened``: /usr/share/containers/seccomp.json) is
    converted for the *final* bounding set, after ``cap_add``/``cap_drop``.
    """

    hardened: bool = False
    cap_add: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    cap_drop: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    seccomp_profile: Mapping[str, Any] | str | os.PathLike[str] | None = None
    no_new_privileges: bool | None = None


@attrs.frozen(kw_only=True)
class ResourceLimits:
    """cgroup limits: ``memory``/``memory_swap`` in bytes (-1 unlimited), ``pids``
    (-1 unlimited), CPU ``cpu_quota``/``cpu_period`` in microseconds, ``cpu_shares``,
    ``cpus`` (a cpuset such as ``"0-3"``)."""

    memory: int | None = None
    memory_swap: int | None = None
    pids: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpu_shares: int | None = None
    cpus: str | None = None


@attrs.frozen(kw_only=True)
class ConvertOptions:
    """Everything :func:`spec_from_image` takes besides the image and the rootfs.

    ``base`` is the template (default: :func:`~oci_runtime.profiles.default_spec`; pass
    :func:`~oci_runtime.profiles.rootless_spec` for a rootless container).
    ``docker_compatible`` switches the Entrypoint/Cmd override rules to Docker's and
    podman's. ``namespaces`` maps a namespace type to a path to join (``/proc/PID/ns/net``)
    or to ``None`` to not create one (share the runtime's). ``annotations`` are set last
    (they override image labels); ``ref_name`` becomes
    ``org.opencontainers.image.ref.name`` unless a label sets it.
    """

    base: Spec | None = None
    docker_compatible: bool = False
    process: ProcessOptions = attrs.field(factory=ProcessOptions)
    filesystem: FilesystemOptions = attrs.field(factory=FilesystemOptions)
    security: SecurityOptions = attrs.field(factory=SecurityOptions)
    limits: ResourceLimits | None = None
    hooks: Hooks | None = None
    hostname: str | None = None
    namespaces: Mapping[str, str | None] = attrs.field(factory=dict)
    annotations: FrozenDict = attrs.field(factory=FrozenDict, converter=_frozen)
    ref_name: str | None = None


# ---------------------------------------------------------------------------------------
# the pieces of conversion.md


def image_args(image: ImageConfig, options: ProcessOptions | None = None, *,
               docker_compatible: bool = False) -> tuple[str, ...]:
    """``process.args``: Entrypoint then Cmd (conversion.md), after the caller's
    overrides. In Docker-compatible mode an entrypoint override drops the image Cmd
    and ``[""]`` stands for "no entrypoint"."""
    options = options or ProcessOptions()
    if options.args is not None:
        return options.args
    entrypoint = image.config.entrypoint
    cmd = options.cmd if options.cmd is not None else image.config.cmd
    if options.entrypoint is not None:
        entrypoint = options.entrypoint
        if docker_compatible:
            cmd = options.cmd
            if entrypoint == ("",):
                entrypoint = ()
    return (entrypoint or ()) + (cmd or ())


def image_annotations(image: ImageConfig, *, ref_name: str | None = None) -> dict[str, str]:
    """The implicit annotations of conversion.md, then ``Config.Labels`` on top (labels
    win on conflict). Values are copied verbatim; empty fields give no annotation."""
    implicit = {
        "os": image.os,
        "architecture": image.architecture,
        "variant": image.variant,
        "os.version": image.os_version,
        "os.features": ",".join(image.os_features),
        "author": image.author,
        "created": image.created or "",
        "stopSignal": image.config.stop_signal,
        "exposedPorts": ",".join(image.config.exposed_ports),
        "ref.name": ref_name or "",
    }
    out = {ANNOTATION_PREFIX + k: v for k, v in implicit.items() if v}
    out.update(image.config.labels)
    return out


def _env_name(entry: str) -> str:
    return entry.split("=", 1)[0]


def _merge_env(image_env: Iterable[str], defaults: Iterable[str], options: ProcessOptions
               ) -> list[str]:
    env = list(image_env)
    names = {_env_name(e) for e in env}
    env += [e for e in defaults if _env_name(e) not in names]  # never override the image
    for entry in options.env:
        if "=" not in entry:
            raise SpecError(f"env entry {entry!r} must be NAME=value")
        name = _env_name(entry)
        if any(_env_name(e) == name for e in env):
            first = next(i for i, e in enumerate(env) if _env_name(e) == name)
            env = [e for e in env if _env_name(e) != name]
            env.insert(first, entry)
        else:
            env.append(entry)
    unset = set(options.unset_env)
    return [e for e in env if _env_name(e) not in unset]


def _cap_name(name: str) -> str:
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def _apply_capabilities(caps: Capabilities | None, security: SecurityOptions
                        ) -> Capabilities | None:
    if not security.cap_add and not security.cap_drop:
        return caps
    add = [_cap_name(c) for c in security.cap_add]
    drop = [_cap_name(c) for c in security.cap_drop]
    both = set(add) & set(drop) - {"ALL"}
    if both:
        raise SpecError(f"capabilities both added and dropped: {sorted(both)}")
    if "ALL" in add:
        add = list(ALL_CAPABILITIES)
    caps = caps or Capabilities()
    changes: dict[str, Any] = {}
    for name, current in caps.all_sets().items():
        if current is None and name not in ("bounding", "effective", "permitted"):
            continue  # do not create inheritable/ambient sets the template lacks
        values = [] if "ALL" in drop else [c for c in current or () if c not in drop]
        values += [c for c in add if c not in values]
        changes[name] = tuple(values)
    return attrs.evolve(caps, **changes)


def _limits(resources: Resources | None, limits: ResourceLimits) -> Resources:
    resources = resources or Resources()
    if limits.memory is not None or limits.memory_swap is not None:
        memory = resources.memory or Memory()
        if limits.memory is not None:
            memory = attrs.evolve(memory, limit=limits.memory)
        if limits.memory_swap is not None:
            memory = attrs.evolve(memory, swap=limits.memory_swap)
        resources = attrs.evolve(resources, memory=memory)
    if limits.pids is not None:
        resources = attrs.evolve(resources, pids=Pids(limit=limits.pids))
    cpu = (("quota", limits.cpu_quota), ("period", limits.cpu_period),
           ("shares", limits.cpu_shares), ("cpus", limits.cpus))
    cpu_changes: dict[str, Any] = {k: v for k, v in cpu if v is not None}
    if cpu_changes:
        resources = attrs.evolve(resources, cpu=attrs.evolve(resources.cpu or CPU(),
                                                             **cpu_changes))
    return resources


def _namespaces(linux: Linux, wanted: Mapping[str, str | None]) -> Linux:
    namespaces = list(linux.namespaces or ())
    for type_, path in wanted.items():
        if type_ not in NAMESPACE_TYPES:
            raise SpecError(f"unknown namespace type {type_!r}")
        if path is not None and not path.startswith("/"):
            raise SpecError(f"namespace {type_} path {path!r} must be absolute")
        index = next((i for i, ns in enumerate(namespaces) if ns.type == type_), None)
        if path is None:
            if index is not None:
                del namespaces[index]
        elif index is None:
            namespaces.append(Namespace(type=type_, path=path))
        else:
            namespaces[index] = attrs.evolve(namespaces[index], path=path)
    return attrs.evolve(linux, namespaces=tuple(namespaces))


def _absolute(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("/")) if path else "/"


def _mounts(base: Iterable[Mount], image: ImageConfig, fs: FilesystemOptions
            ) -> tuple[Mount, ...]:
    ordered: dict[str, Mount] = {}

    def put(mount: Mount) -> None:
        ordered[_absolute(mount.destination)] = mount  # replaces in place, keeps position

    for mount in base:
        put(mount)
    if fs.read_only:
        for dest in fs.read_only_tmpfs:
            if _absolute(dest) not in ordered:
                put(Mount.tmpfs(_absolute(dest), TMPFS_OPTIONS))
    for dest in fs.tmpfs:
        put(Mount.tmpfs(_absolute(dest), TMPFS_OPTIONS))
    for volume in sorted({_absolute(v) for v in image.config.volumes}):
        source = fs.volume_sources.get(volume)
        if source is not None:
            put(Mount.bind(source, volume))
        elif fs.volumes == "tmpfs":
            put(Mount.tmpfs(volume, TMPFS_OPTIONS))
    for mount in fs.mounts:
        put(mount)
    return tuple(ordered.values())


# ---------------------------------------------------------------------------------------
# the conversion


def spec_from_image(image: ImageConfig | bytes,
                    rootfs: str | os.PathLike[str] | None,
                    options: ConvertOptions | None = None) -> Spec:
    """The runtime config for a container of ``image`` whose extracted root filesystem
    is ``rootfs`` (where ``Config.User`` names are resolved; ``None``: numeric users
    only). Raises :class:`~oci_runtime.errors.UserNotFoundError` for an unknown user or
    group name and :class:`~oci_runtime.errors.SpecError` for an image whose ``os`` is
    not Linux or an invalid option."""
    options = options or ConvertOptions()
    if isinstance(image, bytes):
        image = ImageConfig.from_json(image)
    if image.os not in ("", "linux"):
        raise SpecError(f"image os is {image.os!r}; only linux images can be converted")
    spec = options.base if options.base is not None else default_spec()
    security = options.security
    if security.hardened:
        spec = harden(spec, seccomp_profile=None)
    popts = options.process
    base_process = spec.process or Process(cwd="/")

    args = image_args(image, popts, docker_compatible=options.docker_compatible)
    if not args:
        args = base_process.args or ()
    if not args:
        raise SpecError("no command: the image has neither Entrypoint nor Cmd, and no "
                        "args were given")
    user_spec = popts.user if popts.user is not None else image.config.user
    resolved = resolve_user(user_spec, rootfs)
    env = _merge_env(image.config.env, base_process.env or (), popts)
    if resolved.home and not any(_env_name(e) == "HOME" for e in env):
        env.append(f"HOME={resolved.home}")
    cwd = popts.cwd or image.config.working_dir or base_process.cwd or "/"
    user = attrs.evolve(base_process.user or User(), uid=resolved.uid, gid=resolved.gid,
                        additional_gids=resolved.additional_gids)
    process = attrs.evolve(
        base_process, args=args, env=tuple(env), cwd=_absolute(cwd), user=user,
        capabilities=_apply_capabilities(base_process.capabilities, security))
    if popts.terminal is not None:
        process = attrs.evolve(process, terminal=popts.terminal)
    if security.no_new_privileges is not None:
        process = attrs.evolve(process, no_new_privileges=security.no_new_privileges)

    linux = spec.linux or Linux()
    if options.limits is not None:
        linux = attrs.evolve(linux, resources=_limits(linux.resources, options.limits))
    if options.namespaces:
        linux = _namespaces(linux, options.namespaces)
    profile = security.seccomp_profile
    if profile is None and security.hardened:
        profile = DEFAULT_SECCOMP_PROFILE
    if profile is not None:
        loaded = profile if isinstance(profile, Mapping) else load_seccomp_profile(profile)
        bounding = (process.capabilities.bounding or ()) if process.capabilities else ()
        linux = attrs.evolve(linux, seccomp=seccomp_from_profile(loaded, capabilities=bounding))

    annotations = dict(spec.annotations or {})
    annotations.update(image_annotations(image, ref_name=options.ref_name))
    annotations.update(options.annotations)
    hooks = spec.hooks
    if options.hooks is not None:
        hooks = (hooks or Hooks()).merged(options.hooks)
    return attrs.evolve(
        spec,
        process=process,
        root=Root(path=options.filesystem.root_path, readonly=options.filesystem.read_only),
        hostname=options.hostname if options.hostname is not None else spec.hostname,
        mounts=_mounts(spec.mounts or (), image, options.filesystem),
        hooks=hooks,
        annotations=annotations or None,
        linux=linux,
    )
