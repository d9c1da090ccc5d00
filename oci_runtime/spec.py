"""Typed, frozen models of the OCI runtime-spec ``config.json``.

Every model parses in a ``from_dict`` classmethod (``Spec.from_json`` for a whole
document) and serialises with ``to_dict``; members a model does not know are kept in
its ``extra`` mapping and written back, so ``Spec.from_json(raw).to_dict()`` equals the
parsed ``raw`` for any valid config (``consoleSize``, ``scheduler``, ``intelRdt``,
``windows`` ... all survive). ``None`` means "absent": a field that is ``None`` is not
written, so absent and empty (``[]``) stay distinct.

Member order on output follows the Go types of ``specs-go/config.go`` (what runc
writes); unknown members come after the known ones of the same object.

Parsing checks types, integer ranges, the enumerations of the JSON schema (namespace
types, seccomp actions and operators, rootfs propagation, rlimit names) and the rules
"duplicate rlimit types / namespace types MUST error" of config.md; a violation raises
:class:`~oci_runtime.errors.SpecError` naming the member (``config.linux.namespaces[2].type``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Self, cast

import attrs

from oci_image.errors import SpecError as ImageSpecError
from oci_image.spec import FrozenDict
from oci_image.spec._json import json_kind, load_object

from .errors import SpecError

__all__ = [
    "CONFIG_SIZE_LIMIT",
    "CPU",
    "OCI_VERSION",
    "Capabilities",
    "Device",
    "DeviceCgroup",
    "Hook",
    "Hooks",
    "IDMapping",
    "Linux",
    "Memory",
    "Mount",
    "Namespace",
    "Pids",
    "Process",
    "Resources",
    "Rlimit",
    "Root",
    "Seccomp",
    "Spec",
    "Syscall",
    "SyscallArg",
    "Unknown",
    "User",
]

#: the runtime-spec version written by the generators (every field they emit exists in
#: 1.1.0: ``defaultErrnoRet`` is the newest); a parsed config keeps its own version
OCI_VERSION: Final = "1.1.0"
#: config.json documents larger than this are refused (a podman seccomp profile is ~30 KiB)
CONFIG_SIZE_LIMIT: Final = 4 * 1024 * 1024

NAMESPACE_TYPES: Final = frozenset(
    {"mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"})
SECCOMP_ACTIONS: Final = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"})
SECCOMP_OPERATORS: Final = frozenset({
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
    "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"})
ROOTFS_PROPAGATIONS: Final = frozenset({"private", "shared", "slave", "unbindable"})

_U32: Final = (0, 2**32 - 1)
_U64: Final = (0, 2**64 - 1)
_I32: Final = (-(2**31), 2**31 - 1)
_I64: Final = (-(2**63), 2**63 - 1)


class Unknown(Mapping[str, Any]):
    """Members of a JSON object that the model does not know, kept for the round trip.

    Immutable and hashable: values are held as JSON text and decoded afresh on access,
    so a caller cannot change them through a returned list or dict.
    """

    __slots__ = ("_items",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        items: list[tuple[str, str]] = []
        for key, value in (data or {}).items():
            try:
                text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise SpecError(f"member {key!r} is not JSON data: {exc}") from exc
            items.append((key, text))
        self._items: tuple[tuple[str, str], ...] = tuple(items)

    def __getitem__(self, key: str) -> Any:
        for k, text in self._items:
            if k == key:
                return json.loads(text)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Unknown):
            return dict(self.items()) == dict(other.items())
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Unknown({dict(self.items())!r})"


# ---------------------------------------------------------------------------------------
# member codecs


class _Kind:
    """How one member is checked on parse and written on output."""

    def parse(self, value: object, path: str) -> Any:
        raise NotImplementedError

    def dump(self, value: Any) -> Any:
        return value


class _Str(_Kind):
    def __init__(self, *, choices: frozenset[str] | None = None,
                 pattern: str | None = None) -> None:
        self.choices = choices
        self.pattern = pattern or None
        self._regex: re.Pattern[str] | None = None  # compiled on first parse

    def parse(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise SpecError(f"{path} must be a string, not {json_kind(value)}")
        if self.choices is not None and value not in self.choices:
            raise SpecError(f"{path} must be one of {sorted(self.choices)}, not {value!r}")
        if self.pattern is not None:
            if self._regex is None:
                self._regex = re.compile(self.pattern)
            if not self._regex.search(value):
                raise SpecError(f"{path} {value!r} does not match {self.pattern}")
        return value


class _Int(_Kind):
    def __init__(self, bounds: tuple[int, int]) -> None:
        self.lo, self.hi = bounds

    def parse(self, value: object, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{path} must be an integer, not {json_kind(value)}")
        if not self.lo <= value <= self.hi:
            raise SpecError(f"{path} must be in [{self.lo}, {self.hi}], not {value}")
        return value


class _Bool(_Kind):
    def parse(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise SpecError(f"{path} must be a boolean, not {json_kind(value)}")
        return value


class _List(_Kind):
    def __init__(self, item: _Kind, *, min_items: int = 0) -> None:
        self.item = item
        self.min_items = min_items

    def parse(self, value: object, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise SpecError(f"{path} must be an array, not {json_kind(value)}")
        if len(value) < self.min_items:
            raise SpecError(f"{path} must have at least {self.min_items} item(s)")
        return tuple(self.item.parse(v, f"{path}[{i}]") for i, v in enumerate(value))

    def dump(self, value: Any) -> Any:
        return [self.item.dump(v) for v in value]


class _Map(_Kind):
    def parse(self, value: object, path: str) -> FrozenDict:
        if not isinstance(value, dict):
            raise SpecError(f"{path} must be an object, not {json_kind(value)}")
        for k, v in value.items():
            if not isinstance(v, str):
                raise SpecError(f"{path}[{k!r}] must be a string, not {json_kind(v)}")
        return FrozenDict(value)

    def dump(self, value: Any) -> Any:
        return dict(value)


class _Obj(_Kind):
    def __init__(self, model: type[_Model]) -> None:
        self.model = model

    def parse(self, value: object, path: str) -> Any:
        return self.model.from_dict(value, path)

    def dump(self, value: Any) -> Any:
        return cast(_Model, value).to_dict()


_STR: Final = _Str()
_BOOL: Final = _Bool()
_STRS: Final = _List(_STR)
_MAP: Final = _Map()


def _m(json_name: str, kind: _Kind) -> dict[str, Any]:
    return {"json": json_name, "kind": kind}


def _strs(value: Iterable[str] | None) -> tuple[str, ...] | None:
    """Converter: any iterable of strings (not a lone string) to a tuple."""
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("expected an iterable of strings, not a string")
    return tuple(value)


def _ints(value: Iterable[int] | None) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    """Converter: ``tuple`` (a function: attrs reads a converter's signature, and the
    signature of the builtin costs a tokenizer run at import)."""
    return tuple(value)


def _frozen(value: Mapping[str, str] | None) -> FrozenDict | None:
    if value is None or isinstance(value, FrozenDict):
        return value
    return FrozenDict(value)


def _unknown(value: Mapping[str, Any] | None) -> Unknown:
    if isinstance(value, Unknown):
        return value
    return Unknown(value)


@attrs.frozen(kw_only=True)
class _Model:
    """Base of every model: the generic parser/serialiser driven by field metadata."""

    #: members this model does not know, written back after the known ones
    extra: Unknown = attrs.field(factory=Unknown, converter=_unknown, repr=False)

    @classmethod
    def from_dict(cls, obj: object, path: str = "config") -> Self:
        """Parse one JSON object (already decoded); :class:`SpecError` names ``path``."""
        if not isinstance(obj, dict):
            raise SpecError(f"{path} must be a JSON object, not {json_kind(obj)}")
        kwargs: dict[str, Any] = {}
        known: set[str] = set()
        for field in attrs.fields(cast("type[attrs.AttrsInstance]", cls)):
            meta = field.metadata
            if "json" not in meta:
                continue
            name: str = meta["json"]
            known.add(name)
            value = obj.get(name)
            if value is None:  # absent, or null (Go decodes null as the zero value)
                if field.default is attrs.NOTHING:
                    raise SpecError(f"{path}.{name} is required")
                continue
            kind: _Kind = meta["kind"]
            kwargs[field.name] = kind.parse(value, f"{path}.{name}")
        kwargs["extra"] = Unknown({k: v for k, v in obj.items() if k not in known})
        try:
            return cls(**kwargs)
        except SpecError as exc:  # a rule across members (__attrs_post_init__)
            raise SpecError(f"{path}.{exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (plain dicts and lists), known members first."""
        out: dict[str, Any] = {}
        for field in attrs.fields(cast("type[attrs.AttrsInstance]", type(self))):
            meta = field.metadata
            if "json" not in meta:
                continue
            value = getattr(self, field.name)
            if value is None:
                continue
            kind: _Kind = meta["kind"]
            out[meta["json"]] = kind.dump(value)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


# ---------------------------------------------------------------------------------------
# process


@attrs.frozen(kw_only=True)
class User(_Model):
    """``process.user``: numeric ids only (names are resolved by the generator)."""

    uid: int = attrs.field(default=0, metadata=_m("uid", _Int(_U32)))
    gid: int = attrs.field(default=0, metadata=_m("gid", _Int(_U32)))
    umask: int | None = attrs.field(default=None, metadata=_m("umask", _Int(_U32)))
    additional_gids: tuple[int, ...] | None = attrs.field(
        default=None, converter=_ints, metadata=_m("additionalGids", _List(_Int(_U32))))
    username: str | None = attrs.field(default=None, metadata=_m("username", _STR))


_CAP_LIST: Final = _List(_Str(pattern=r"^CAP_[A-Z0-9_]+$"))


@attrs.frozen(kw_only=True)
class Capabilities(_Model):
    """``process.capabilities``: the five capability sets (``CAP_*`` names)."""

    bounding: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("bounding", _CAP_LIST))
    effective: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("effective", _CAP_LIST))
    inheritable: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("inheritable", _CAP_LIST))
    permitted: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("permitted", _CAP_LIST))
    ambient: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("ambient", _CAP_LIST))

    SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

    @classmethod
    def of(cls, caps: Iterable[str], *, sets: Iterable[str] = (
            "bounding", "effective", "permitted")) -> Capabilities:
        """The same capabilities in each of ``sets`` (other sets absent)."""
        names = tuple(caps)
        kwargs: dict[str, Any] = {s: names for s in sets}
        return cls(**kwargs)

    def all_sets(self) -> dict[str, tuple[str, ...] | None]:
        return {s: getattr(self, s) for s in self.SETS}


@attrs.frozen(kw_only=True)
class Rlimit(_Model):
    """One ``process.rlimits`` entry."""

    type: str = attrs.field(metadata=_m("type", _Str(pattern=r"^RLIMIT_[A-Z]+$")))
    hard: int = attrs.field(metadata=_m("hard", _Int(_U64)))
    soft: int = attrs.field(metadata=_m("soft", _Int(_U64)))


@attrs.frozen(kw_only=True)
class Process(_Model):
    """``process``. ``consoleSize``, ``scheduler``, ``ioPriority``, ``execCPUAffinity``,
    ``commandLine`` are kept in ``extra``."""

    terminal: bool | None = attrs.field(default=None, metadata=_m("terminal", _BOOL))
    user: User | None = attrs.field(default=None, metadata=_m("user", _Obj(User)))
    args: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("args", _STRS))
    env: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("env", _STRS))
    cwd: str = attrs.field(metadata=_m("cwd", _STR))
    capabilities: Capabilities | None = attrs.field(
        default=None, metadata=_m("capabilities", _Obj(Capabilities)))
    rlimits: tuple[Rlimit, ...] | None = attrs.field(
        default=None, metadata=_m("rlimits", _List(_Obj(Rlimit))))
    no_new_privileges: bool | None = attrs.field(
        default=None, metadata=_m("noNewPrivileges", _BOOL))
    apparmor_profile: str | None = attrs.field(
        default=None, metadata=_m("apparmorProfile", _STR))
    oom_score_adj: int | None = attrs.field(
        default=None, metadata=_m("oomScoreAdj", _Int(_I64)))
    selinux_label: str | None = attrs.field(default=None, metadata=_m("selinuxLabel", _STR))

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for rlimit in self.rlimits or ():
            if rlimit.type in seen:
                raise SpecError(f"rlimits: duplicate type {rlimit.type}")
            seen.add(rlimit.type)


# ---------------------------------------------------------------------------------------
# root, mounts, hooks


@attrs.frozen(kw_only=True)
class Root(_Model):
    """``root``: the rootfs path (absolute, or relative to the bundle)."""

    path: str = attrs.field(metadata=_m("path", _STR))
    readonly: bool | None = attrs.field(default=None, metadata=_m("readonly", _BOOL))


@attrs.frozen(kw_only=True)
class IDMapping(_Model):
    """A user-namespace or idmapped-mount range."""

    container_id: int = attrs.field(metadata=_m("containerID", _Int(_U32)))
    host_id: int = attrs.field(metadata=_m("hostID", _Int(_U32)))
    size: int = attrs.field(metadata=_m("size", _Int(_U32)))


_ID_MAPPINGS: Final = _List(_Obj(IDMapping))


@attrs.frozen(kw_only=True)
class Mount(_Model):
    """One ``mounts`` entry, mounted in list order."""

    destination: str = attrs.field(metadata=_m("destination", _STR))
    type: str | None = attrs.field(default=None, metadata=_m("type", _STR))
    source: str | None = attrs.field(default=None, metadata=_m("source", _STR))
    options: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("options", _STRS))
    uid_mappings: tuple[IDMapping, ...] | None = attrs.field(
        default=None, metadata=_m("uidMappings", _ID_MAPPINGS))
    gid_mappings: tuple[IDMapping, ...] | None = attrs.field(
        default=None, metadata=_m("gidMappings", _ID_MAPPINGS))

    @classmethod
    def tmpfs(cls, destination: str, options: Iterable[str] = (
            "rw", "nosuid", "nodev", "noexec", "relatime")) -> Mount:
        return cls(destination=destination, type="tmpfs", source="tmpfs",
                   options=tuple(options))

    @classmethod
    def bind(cls, source: str, destination: str, *, read_only: bool = False,
             recursive: bool = True, options: Iterable[str] = ()) -> Mount:
        opts = ["rbind" if recursive else "bind", "ro" if read_only else "rw", *options]
        return cls(destination=destination, type="bind", source=source, options=tuple(opts))


@attrs.frozen(kw_only=True)
class Hook(_Model):
    """One hook: ``path`` absolute; the container state arrives on its stdin."""

    path: str = attrs.field(metadata=_m("path", _STR))
    args: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("args", _STRS))
    env: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("env", _STRS))
    timeout: int | None = attrs.field(default=None, metadata=_m("timeout", _Int((1, _I64[1]))))


_HOOKS: Final = _List(_Obj(Hook))


@attrs.frozen(kw_only=True)
class Hooks(_Model):
    """``hooks`` by lifecycle stage (``prestart`` is deprecated by the spec)."""

    prestart: tuple[Hook, ...] | None = attrs.field(default=None, metadata=_m("prestart", _HOOKS))
    create_runtime: tuple[Hook, ...] | None = attrs.field(
        default=None, metadata=_m("createRuntime", _HOOKS))
    create_container: tuple[Hook, ...] | None = attrs.field(
        default=None, metadata=_m("createContainer", _HOOKS))
    start_container: tuple[Hook, ...] | None = attrs.field(
        default=None, metadata=_m("startContainer", _HOOKS))
    poststart: tuple[Hook, ...] | None = attrs.field(
        default=None, metadata=_m("poststart", _HOOKS))
    poststop: tuple[Hook, ...] | None = attrs.field(default=None, metadata=_m("poststop", _HOOKS))

    STAGES = ("prestart", "create_runtime", "create_container", "start_container",
              "poststart", "poststop")

    def merged(self, other: Hooks) -> Hooks:
        """These hooks, then ``other``'s, stage by stage."""
        changes: dict[str, Any] = {}
        for stage in self.STAGES:
            theirs: tuple[Hook, ...] | None = getattr(other, stage)
            if theirs:
                changes[stage] = (getattr(self, stage) or ()) + theirs
        return attrs.evolve(self, **changes)


# ---------------------------------------------------------------------------------------
# linux


@attrs.frozen(kw_only=True)
class Namespace(_Model):
    """A namespace to create, or (with ``path``) to join."""

    type: str = attrs.field(metadata=_m("type", _Str(choices=NAMESPACE_TYPES)))
    path: str | None = attrs.field(default=None, metadata=_m("path", _STR))


@attrs.frozen(kw_only=True)
class Device(_Model):
    """``linux.devices``: a device node to create (``fileMode`` is decimal)."""

    path: str = attrs.field(metadata=_m("path", _STR))
    type: str = attrs.field(metadata=_m("type", _Str(pattern=r"^[cbup]$")))
    major: int | None = attrs.field(default=None, metadata=_m("major", _Int(_I64)))
    minor: int | None = attrs.field(default=None, metadata=_m("minor", _Int(_I64)))
    file_mode: int | None = attrs.field(default=None, metadata=_m("fileMode", _Int((0, 511))))
    uid: int | None = attrs.field(default=None, metadata=_m("uid", _Int(_U32)))
    gid: int | None = attrs.field(default=None, metadata=_m("gid", _Int(_U32)))


@attrs.frozen(kw_only=True)
class DeviceCgroup(_Model):
    """A ``linux.resources.devices`` allow/deny rule (applied in order)."""

    allow: bool = attrs.field(metadata=_m("allow", _BOOL))
    type: str | None = attrs.field(default=None, metadata=_m("type", _STR))
    major: int | None = attrs.field(default=None, metadata=_m("major", _Int(_I64)))
    minor: int | None = attrs.field(default=None, metadata=_m("minor", _Int(_I64)))
    access: str | None = attrs.field(default=None, metadata=_m("access", _STR))


@attrs.frozen(kw_only=True)
class Memory(_Model):
    """``linux.resources.memory`` (bytes; -1 is unlimited)."""

    limit: int | None = attrs.field(default=None, metadata=_m("limit", _Int(_I64)))
    reservation: int | None = attrs.field(default=None, metadata=_m("reservation", _Int(_I64)))
    swap: int | None = attrs.field(default=None, metadata=_m("swap", _Int(_I64)))
    kernel: int | None = attrs.field(default=None, metadata=_m("kernel", _Int(_I64)))
    kernel_tcp: int | None = attrs.field(default=None, metadata=_m("kernelTCP", _Int(_I64)))
    swappiness: int | None = attrs.field(default=None, metadata=_m("swappiness", _Int(_U64)))
    disable_oom_killer: bool | None = attrs.field(
        default=None, metadata=_m("disableOOMKiller", _BOOL))
    use_hierarchy: bool | None = attrs.field(default=None, metadata=_m("useHierarchy", _BOOL))
    check_before_update: bool | None = attrs.field(
        default=None, metadata=_m("checkBeforeUpdate", _BOOL))


@attrs.frozen(kw_only=True)
class CPU(_Model):
    """``linux.resources.cpu`` (quota and period in microseconds)."""

    shares: int | None = attrs.field(default=None, metadata=_m("shares", _Int(_U64)))
    quota: int | None = attrs.field(default=None, metadata=_m("quota", _Int(_I64)))
    burst: int | None = attrs.field(default=None, metadata=_m("burst", _Int(_U64)))
    period: int | None = attrs.field(default=None, metadata=_m("period", _Int(_U64)))
    realtime_runtime: int | None = attrs.field(
        default=None, metadata=_m("realtimeRuntime", _Int(_I64)))
    realtime_period: int | None = attrs.field(
        default=None, metadata=_m("realtimePeriod", _Int(_U64)))
    cpus: str | None = attrs.field(default=None, metadata=_m("cpus", _STR))
    mems: str | None = attrs.field(default=None, metadata=_m("mems", _STR))
    idle: int | None = attrs.field(default=None, metadata=_m("idle", _Int(_I64)))


@attrs.frozen(kw_only=True)
class Pids(_Model):
    """``linux.resources.pids`` (-1 is unlimited; 0 is a valid limit)."""

    limit: int = attrs.field(metadata=_m("limit", _Int(_I64)))


@attrs.frozen(kw_only=True)
class Resources(_Model):
    """``linux.resources``. ``blockIO``, ``hugepageLimits``, ``network``, ``rdma`` are
    kept in ``extra``."""

    devices: tuple[DeviceCgroup, ...] | None = attrs.field(
        default=None, metadata=_m("devices", _List(_Obj(DeviceCgroup))))
    memory: Memory | None = attrs.field(default=None, metadata=_m("memory", _Obj(Memory)))
    cpu: CPU | None = attrs.field(default=None, metadata=_m("cpu", _Obj(CPU)))
    pids: Pids | None = attrs.field(default=None, metadata=_m("pids", _Obj(Pids)))
    unified: FrozenDict | None = attrs.field(
        default=None, converter=_frozen, metadata=_m("unified", _MAP))


@attrs.frozen(kw_only=True)
class SyscallArg(_Model):
    index: int = attrs.field(metadata=_m("index", _Int(_U32)))
    value: int = attrs.field(metadata=_m("value", _Int(_U64)))
    value_two: int | None = attrs.field(default=None, metadata=_m("valueTwo", _Int(_U64)))
    op: str = attrs.field(metadata=_m("op", _Str(choices=SECCOMP_OPERATORS)))


@attrs.frozen(kw_only=True)
class Syscall(_Model):
    names: tuple[str, ...] = attrs.field(
        converter=_tuple, metadata=_m("names", _List(_STR, min_items=1)))
    action: str = attrs.field(metadata=_m("action", _Str(choices=SECCOMP_ACTIONS)))
    errno_ret: int | None = attrs.field(default=None, metadata=_m("errnoRet", _Int(_U32)))
    args: tuple[SyscallArg, ...] | None = attrs.field(
        default=None, metadata=_m("args", _List(_Obj(SyscallArg))))


@attrs.frozen(kw_only=True)
class Seccomp(_Model):
    """``linux.seccomp`` in runtime-spec form (see :mod:`oci_runtime.profiles` for the
    conversion from the Docker/containers profile format)."""

    default_action: str = attrs.field(
        metadata=_m("defaultAction", _Str(choices=SECCOMP_ACTIONS)))
    default_errno_ret: int | None = attrs.field(
        default=None, metadata=_m("defaultErrnoRet", _Int(_U32)))
    architectures: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs,
        metadata=_m("architectures", _List(_Str(pattern=r"^SCMP_ARCH_[A-Z0-9_]+$"))))
    flags: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("flags", _STRS))
    listener_path: str | None = attrs.field(default=None, metadata=_m("listenerPath", _STR))
    listener_metadata: str | None = attrs.field(
        default=None, metadata=_m("listenerMetadata", _STR))
    syscalls: tuple[Syscall, ...] | None = attrs.field(
        default=None, metadata=_m("syscalls", _List(_Obj(Syscall))))


@attrs.frozen(kw_only=True)
class Linux(_Model):
    """``linux``. ``intelRdt``, ``personality``, ``timeOffsets``, ``memoryPolicy``,
    ``netDevices`` are kept in ``extra``."""

    uid_mappings: tuple[IDMapping, ...] | None = attrs.field(
        default=None, metadata=_m("uidMappings", _ID_MAPPINGS))
    gid_mappings: tuple[IDMapping, ...] | None = attrs.field(
        default=None, metadata=_m("gidMappings", _ID_MAPPINGS))
    sysctl: FrozenDict | None = attrs.field(
        default=None, converter=_frozen, metadata=_m("sysctl", _MAP))
    resources: Resources | None = attrs.field(
        default=None, metadata=_m("resources", _Obj(Resources)))
    cgroups_path: str | None = attrs.field(default=None, metadata=_m("cgroupsPath", _STR))
    namespaces: tuple[Namespace, ...] | None = attrs.field(
        default=None, metadata=_m("namespaces", _List(_Obj(Namespace))))
    devices: tuple[Device, ...] | None = attrs.field(
        default=None, metadata=_m("devices", _List(_Obj(Device))))
    seccomp: Seccomp | None = attrs.field(default=None, metadata=_m("seccomp", _Obj(Seccomp)))
    rootfs_propagation: str | None = attrs.field(
        default=None, metadata=_m("rootfsPropagation", _Str(choices=ROOTFS_PROPAGATIONS)))
    masked_paths: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("maskedPaths", _STRS))
    readonly_paths: tuple[str, ...] | None = attrs.field(
        default=None, converter=_strs, metadata=_m("readonlyPaths", _STRS))
    mount_label: str | None = attrs.field(default=None, metadata=_m("mountLabel", _STR))

    def __attrs_post_init__(self) -> None:
        seen: set[str] = set()
        for ns in self.namespaces or ():
            if ns.type in seen:
                raise SpecError(f"namespaces: duplicate type {ns.type}")
            seen.add(ns.type)

    def namespace(self, type_: str) -> Namespace | None:
        return next((ns for ns in self.namespaces or () if ns.type == type_), None)


# ---------------------------------------------------------------------------------------
# the document


@attrs.frozen(kw_only=True)
class Spec(_Model):
    """A whole ``config.json``. ``solaris``, ``windows``, ``vm``, ``zos``, ``freebsd``
    and any future member are kept in ``extra``."""

    oci_version: str = attrs.field(default=OCI_VERSION, metadata=_m("ociVersion", _STR))
    process: Process | None = attrs.field(default=None, metadata=_m("process", _Obj(Process)))
    root: Root | None = attrs.field(default=None, metadata=_m("root", _Obj(Root)))
    hostname: str | None = attrs.field(default=None, metadata=_m("hostname", _STR))
    domainname: str | None = attrs.field(default=None, metadata=_m("domainname", _STR))
    mounts: tuple[Mount, ...] | None = attrs.field(
        default=None, metadata=_m("mounts", _List(_Obj(Mount))))
    hooks: Hooks | None = attrs.field(default=None, metadata=_m("hooks", _Obj(Hooks)))
    annotations: FrozenDict | None = attrs.field(
        default=None, converter=_frozen, metadata=_m("annotations", _MAP))
    linux: Linux | None = attrs.field(default=None, metadata=_m("linux", _Obj(Linux)))

    @classmethod
    def from_json(cls, raw: bytes | str, *, limit: int | None = CONFIG_SIZE_LIMIT) -> Spec:
        """Parse a ``config.json`` document (UTF-8 JSON object)."""
        try:
            doc = load_object(raw, "config.json", limit)
        except ImageSpecError as exc:  # the same message, in this package's error tree
            raise SpecError(str(exc)) from exc
        if doc.get("ociVersion") is None:
            raise SpecError("config.ociVersion is required")
        return cls.from_dict(doc)

    def to_json(self, *, indent: int | str | None = "\t") -> bytes:
        """The document as UTF-8 JSON (tab-indented like ``runc spec`` by default)."""
        text = json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8") + (b"\n" if indent is not None else b"")
