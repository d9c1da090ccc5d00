"""The record layer of a containers/storage-compatible store: ``layers.json``,
``images.json``, ``containers.json`` (and ``mountpoints.json``), their lock files and the
big-data files next to them. I/O only: no drivers, no layer contents.

Layout under a store (``<drv>`` is the driver name, ``vfs`` or ``overlay``)::

    GRAPHROOT/<drv>-layers/layers.json        + layers.lock, <id>.tar-split.gz, <id>/<big data>
    GRAPHROOT/<drv>-images/images.json        + images.lock, <id>/<big data>
    GRAPHROOT/<drv>-containers/containers.json + containers.lock, <id>/<big data>
    RUNROOT/<drv>-layers/mountpoints.json     + mountpoints.lock

Every record file is a JSON array written compactly by Go's ``encoding/json``; the
models here read and write exactly its keys, in its order, omitting what Go omits
(``omitempty``), with map keys sorted, and keep keys they do not know (``extra``) so a
newer store round-trips. See docs/storage-format.md for the format as observed.

Use::

    images = ImageRecords.open(graphroot, "vfs")
    img = images.get("localhost/x:1")          # by ID, name or unique ID prefix
    images.add_names(img.id, ["localhost/x:2"])  # the name moves from any other image
    with images.transaction():                  # one exclusive hold for several changes
        images.create(Image(id=..., top_layer=..., names=("a:1",)))
        images.set_big_data(id, "manifest", data, digest=manifest_digest)

Every call takes the store's lock file (shared to read, exclusive to write), and reloads
the JSON when another process wrote since (the lock file's last-writer token, or the
JSON file's mtime/size/inode changed). Writes record a new token *before* replacing the
JSON (so a crash in between still makes readers reload), then write a temporary file in
the same directory, fsync it, rename it over the old one and fsync the directory.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from .errors import (
    ContainerUnknownError,
    DuplicateIDError,
    DuplicateNameError,
    ImageUnknownError,
    LayerUnknownError,
    StorageError,
    StoreCorruptError,
)
from .lockfile import LockFile, get_lockfile

__all__ = [
    "INCOMPLETE_FLAG",
    "MANIFEST_BIG_DATA_PREFIX",
    "ZERO_TIME",
    "Container",
    "ContainerRecords",
    "DuplicateIDError",
    "IDMap",
    "Image",
    "ImageRecords",
    "Layer",
    "LayerRecords",
    "MountPoint",
    "MountRecords",
    "RecordStore",
    "atomic_write",
    "big_data_file_name",
    "chain_layer_id",
    "format_timestamp",
    "parse_timestamp",
    "random_id",
]

#: Layer flag set while a layer is being created or deleted; such layers are removed
#: when a writable store is next opened.
INCOMPLETE_FLAG = "incomplete"
#: Image big-data keys starting with this are manifests; their digests find the image.
MANIFEST_BIG_DATA_PREFIX = "manifest"
#: How Go writes an unset ``time.Time`` (``created`` is never omitted).
ZERO_TIME = "0001-01-01T00:00:00Z"




# -- small helpers -------------------------------------------------------------------------

def random_id() -> str:
    """A random 64-hex ID as ``stringid.GenerateRandomID``: never all-digit in its first
    12 characters (those are used as host names)."""
    while True:
        # os.urandom, as secrets.token_hex does (importing secrets loads OpenSSL)
        candidate = os.urandom(32).hex()
        if not candidate[:12].isdigit():
            return candidate


def _hex(digest: str) -> str:
    algo, sep, value = digest.partition(":")
    if not sep or algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return value


def chain_layer_id(parent_id: str | None, diff_id: str) -> str:
    """The storage layer ID containers/image gives an image layer: the diff ID's hex for
    a base layer, else ``sha256(parent_id + "+" + diff_id_hex)`` (verified against podman
    4.3.1 pulls)."""
    value = _hex(diff_id)
    if not parent_id:
        return value
    import hashlib  # (not loaded to read records: OpenSSL costs ms at start-up)

    return hashlib.sha256(f"{parent_id}+{value}".encode()).hexdigest()


def big_data_file_name(key: str) -> str:
    """The file name containers/storage uses for a big-data item: the key itself when
    it only has ``[.0-9a-z]``, else ``"="`` + standard base64 of its UTF-8 bytes."""
    if key and all(c == "." or "0" <= c <= "9" or "a" <= c <= "z" for c in key):
        return key
    return "=" + base64.b64encode(key.encode()).decode("ascii")


#: (a pattern, compiled by ``re`` on first use: reading records never parses times)
_TS = (r"(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
       r"(Z|[+-]\d\d:\d\d)")


def format_timestamp(when: _dt.datetime | int | None = None) -> str:
    """RFC 3339 with nanoseconds as Go's ``time.Time`` JSON (trailing zeros of the
    fraction dropped, ``Z`` for UTC). ``when`` is a datetime, integer nanoseconds since
    the epoch, or None for now."""
    if when is None:
        when = time.time_ns()
    if isinstance(when, int):
        seconds, frac = divmod(when, 1_000_000_000)
        base = _dt.datetime.fromtimestamp(seconds, _dt.UTC)
        zone = "Z"
    else:
        if when.tzinfo is None:
            raise ValueError("naive datetime: give a time zone")
        frac = when.microsecond * 1000
        base = when.replace(microsecond=0)
        offset = when.utcoffset() or _dt.timedelta(0)
        if offset == _dt.timedelta(0):
            zone = "Z"
        else:
            minutes = int(offset.total_seconds()) // 60
            sign = "+" if minutes >= 0 else "-"
            zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    text = base.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + zone


def parse_timestamp(text: str) -> _dt.datetime:
    """A timestamp as written in the record files, as an aware datetime (truncated to
    microseconds). The Go zero time gives ``datetime.min`` in UTC."""
    match = re.fullmatch(_TS, text)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    tz = _dt.UTC if zone == "Z" else _dt.timezone(
        (1 if zone[0] == "+" else -1) * _dt.timedelta(hours=int(zone[1:3]),
                                                      minutes=int(zone[4:6])))
    micro = int((frac or "0").ljust(6, "0")[:6])
    return _dt.datetime(int(year), int(month), int(day), int(hour), int(minute),
                        int(second), micro, tzinfo=tz)


def _go_json(value: Any) -> bytes:
    """Compact JSON as Go's encoding/json writes it (HTML-safe escapes, raw UTF-8)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text.encode()


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically: a ``.tmp-<name>*`` file in the same
    directory, fsync, chmod, rename over ``path``, fsync of the directory. On failure the
    old file is untouched and the temporary file removed."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = directory / f".tmp-{path.name}{os.urandom(5).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fdatasync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# -- field conversion ----------------------------------------------------------------------

def _str(value: Any, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, not {type(value).__name__}")
    return value


def _int(value: Any, key: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key!r} must be an integer, not {type(value).__name__}")
    return value


def _strs(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key!r} must be a list of strings")
    return tuple(value)


def _ints(value: Any, key: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TypeError(f"{key!r} must be a list of integers")
    return tuple(value)


def _map(value: Any, key: str, item: type | None = None) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise TypeError(f"{key!r} must be an object")
    if item is not None and not all(
            isinstance(v, item) and not isinstance(v, bool) for v in value.values()):
        raise TypeError(f"{key!r} must map to {item.__name__} values")
    return MappingProxyType(dict(value))


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _tuple_of_int(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _tuple_of_idmap(value: Iterable[IDMap]) -> tuple[IDMap, ...]:
    return tuple(value)


def _tuple_of_str(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("expected a sequence of strings, not a string")
    return tuple(value)


def _now() -> str:
    return format_timestamp()


@attrs.frozen
class IDMap:
    """One ID mapping range (``idtools.IDMap``)."""

    container_id: int
    host_id: int
    size: int

    def to_json(self) -> dict[str, int]:
        return {"container_id": self.container_id, "host_id": self.host_id,
                "size": self.size}

    @classmethod
    def from_json(cls, value: Any) -> IDMap:
        if not isinstance(value, dict):
            raise TypeError("an ID map must be an object")
        return cls(_int(value.get("container_id"), "container_id"),
                   _int(value.get("host_id"), "host_id"), _int(value.get("size"), "size"))


def _idmaps(value: Any, key: str) -> tuple[IDMap, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"{key!r} must be a list")
    return tuple(IDMap.from_json(v) for v in value)


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Go ``omitempty``: leave out "", 0, empty lists and maps."""
    if value in ("", 0, (), None) or (isinstance(value, Mapping) and not value):
        return
    if isinstance(value, tuple):
        value = [v.to_json() if isinstance(v, IDMap) else v for v in value]
    elif isinstance(value, Mapping):
        value = {k: value[k] for k in sorted(value)}  # Go sorts map keys
    out[key] = value


def _extra_out(out: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if key not in out:
            out[key] = value
    return out


# -- the models ----------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Layer:
    """A record of ``layers.json`` (``storage.Layer``)."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "id", "names", "parent", "metadata", "mountlabel", "created",
        "compressed-diff-digest", "compressed-size", "diff-digest", "toc-digest",
        "diff-size", "compression", "uidset", "gidset", "flags", "uidmap", "gidmap",
        "big-data-names")

    id: str
    names: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    parent: str = ""
    metadata: str = ""
    mount_label: str = ""
    created: str = attrs.field(factory=_now)
    compressed_digest: str = ""
    compressed_size: int = 0
    uncompressed_digest: str = ""   # "diff-digest": the DiffID
    toc_digest: str = ""            # newer c/s only (zstd:chunked); kept when present
    uncompressed_size: int = 0
    compression: int = 0            # archive.Compression: 0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd
    uids: tuple[int, ...] = attrs.field(default=(), converter=_tuple_of_int)
    gids: tuple[int, ...] = attrs.field(default=(), converter=_tuple_of_int)
    flags: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    uid_map: tuple[IDMap, ...] = attrs.field(default=(), converter=_tuple_of_idmap)
    gid_map: tuple[IDMap, ...] = attrs.field(default=(), converter=_tuple_of_idmap)
    big_data_names: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)

    @property
    def incomplete(self) -> bool:
        return self.flags.get(INCOMPLETE_FLAG) is True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        _put(out, "names", self.names)
        _put(out, "parent", self.parent)
        _put(out, "metadata", self.metadata)
        _put(out, "mountlabel", self.mount_label)
        out["created"] = self.created
        _put(out, "compressed-diff-digest", self.compressed_digest)
        _put(out, "compressed-size", self.compressed_size)
        _put(out, "diff-digest", self.uncompressed_digest)
        _put(out, "toc-digest", self.toc_digest)
        _put(out, "diff-size", self.uncompressed_size)
        _put(out, "compression", self.compression)
        _put(out, "uidset", self.uids)
        _put(out, "gidset", self.gids)
        _put(out, "flags", self.flags)
        _put(out, "uidmap", self.uid_map)
        _put(out, "gidmap", self.gid_map)
        _put(out, "big-data-names", self.big_data_names)
        return _extra_out(out, self.extra)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Layer:
        return cls(
            id=_str(value.get("id"), "id"), names=_strs(value.get("names"), "names"),
            parent=_str(value.get("parent"), "parent"),
            metadata=_str(value.get("metadata"), "metadata"),
            mount_label=_str(value.get("mountlabel"), "mountlabel"),
            created=_str(value.get("created"), "created") or ZERO_TIME,
            compressed_digest=_str(value.get("compressed-diff-digest"), "compressed-diff-digest"),
            compressed_size=_int(value.get("compressed-size"), "compressed-size"),
            uncompressed_digest=_str(value.get("diff-digest"), "diff-digest"),
            toc_digest=_str(value.get("toc-digest"), "toc-digest"),
            uncompressed_size=_int(value.get("diff-size"), "diff-size"),
            compression=_int(value.get("compression"), "compression"),
            uids=_ints(value.get("uidset"), "uidset"), gids=_ints(value.get("gidset"), "gidset"),
            flags=_map(value.get("flags"), "flags"),
            uid_map=_idmaps(value.get("uidmap"), "uidmap"),
            gid_map=_idmaps(value.get("gidmap"), "gidmap"),
            big_data_names=_strs(value.get("big-data-names"), "big-data-names"),
            extra={k: v for k, v in value.items() if k not in cls.KEYS})


@attrs.frozen(kw_only=True)
class Image:
    """A record of ``images.json`` (``storage.Image``). ``digests`` is not stored: it
    is derived, as containers/storage does, from ``digest`` and the digests of the
    big-data items whose key starts with ``manifest``."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "id", "digest", "names", "names-history", "layer", "mapped-layers", "metadata",
        "big-data-names", "big-data-sizes", "big-data-digests", "created", "flags")

    id: str
    digest: str = ""
    names: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    names_history: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    top_layer: str = ""
    mapped_top_layers: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    metadata: str = ""
    big_data_names: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    big_data_sizes: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    big_data_digests: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    created: str = attrs.field(factory=_now)
    flags: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)

    @property
    def digests(self) -> tuple[str, ...]:
        """``digest`` (when set) then the manifests' digests, without repeats."""
        found: list[str] = [self.digest] if self.digest else []
        for key in sorted(self.big_data_digests):
            value = self.big_data_digests[key]
            if key.startswith(MANIFEST_BIG_DATA_PREFIX) and value and value not in found:
                found.append(value)
        return tuple(found)

    @property
    def effective_digest(self) -> str:
        """The digest c/s reports: ``digest``, else the first manifest digest."""
        return self.digest or next(iter(self.digests), "")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        _put(out, "digest", self.digest)
        _put(out, "names", self.names)
        _put(out, "names-history", self.names_history)
        _put(out, "layer", self.top_layer)
        _put(out, "mapped-layers", self.mapped_top_layers)
        _put(out, "metadata", self.metadata)
        _put(out, "big-data-names", self.big_data_names)
        _put(out, "big-data-sizes", self.big_data_sizes)
        _put(out, "big-data-digests", self.big_data_digests)
        out["created"] = self.created
        _put(out, "flags", self.flags)
        return _extra_out(out, self.extra)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Image:
        return cls(
            id=_str(value.get("id"), "id"), digest=_str(value.get("digest"), "digest"),
            names=_strs(value.get("names"), "names"),
            names_history=_strs(value.get("names-history"), "names-history"),
            top_layer=_str(value.get("layer"), "layer"),
            mapped_top_layers=_strs(value.get("mapped-layers"), "mapped-layers"),
            metadata=_str(value.get("metadata"), "metadata"),
            big_data_names=_strs(value.get("big-data-names"), "big-data-names"),
            big_data_sizes=_map(value.get("big-data-sizes"), "big-data-sizes", int),
            big_data_digests=_map(value.get("big-data-digests"), "big-data-digests", str),
            created=_str(value.get("created"), "created") or ZERO_TIME,
            flags=_map(value.get("flags"), "flags"),
            extra={k: v for k, v in value.items() if k not in cls.KEYS})


@attrs.frozen(kw_only=True)
class Container:
    """A record of ``containers.json`` (``storage.Container``)."""

    KEYS: ClassVar[tuple[str, ...]] = (
        "id", "names", "image", "layer", "metadata", "big-data-names", "big-data-sizes",
        "big-data-digests", "created", "uidmap", "gidmap", "flags")

    id: str
    names: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    image: str = ""   # always written, even when empty
    layer: str = ""   # always written
    metadata: str = ""
    big_data_names: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    big_data_sizes: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_map)
    big_data_digests: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    created: str = attrs.field(factory=_now)
    uid_map: tuple[IDMap, ...] = attrs.field(default=(), converter=_tuple_of_idmap)
    gid_map: tuple[IDMap, ...] = attrs.field(default=(), converter=_tuple_of_idmap)
    flags: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)
    extra: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        _put(out, "names", self.names)
        out["image"] = self.image
        out["layer"] = self.layer
        _put(out, "metadata", self.metadata)
        _put(out, "big-data-names", self.big_data_names)
        _put(out, "big-data-sizes", self.big_data_sizes)
        _put(out, "big-data-digests", self.big_data_digests)
        out["created"] = self.created
        _put(out, "uidmap", self.uid_map)
        _put(out, "gidmap", self.gid_map)
        _put(out, "flags", self.flags)
        return _extra_out(out, self.extra)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Container:
        return cls(
            id=_str(value.get("id"), "id"), names=_strs(value.get("names"), "names"),
            image=_str(value.get("image"), "image"), layer=_str(value.get("layer"), "layer"),
            metadata=_str(value.get("metadata"), "metadata"),
            big_data_names=_strs(value.get("big-data-names"), "big-data-names"),
            big_data_sizes=_map(value.get("big-data-sizes"), "big-data-sizes", int),
            big_data_digests=_map(value.get("big-data-digests"), "big-data-digests", str),
            created=_str(value.get("created"), "created") or ZERO_TIME,
            uid_map=_idmaps(value.get("uidmap"), "uidmap"),
            gid_map=_idmaps(value.get("gidmap"), "gidmap"),
            flags=_map(value.get("flags"), "flags"),
            extra={k: v for k, v in value.items() if k not in cls.KEYS})


@attrs.frozen(kw_only=True)
class MountPoint:
    """An entry of ``mountpoints.json``: a mounted layer and its reference count."""

    id: str
    path: str
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "count": self.count}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> MountPoint:
        return cls(id=_str(value.get("id"), "id"), path=_str(value.get("path"), "path"),
                   count=_int(value.get("count"), "count"))


# -- the record stores ---------------------------------------------------------------------

R = TypeVar("R", Layer, Image, Container, MountPoint)
N = TypeVar("N", Layer, Image, Container)


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@attrs.frozen
class _Snapshot(Generic[R]):
    records: tuple[R, ...]
    by_id: Mapping[str, R]
    by_name: Mapping[str, R]


class RecordStore(Generic[R]):
    """A JSON array of records in ``directory/file_name`` under ``directory/lock_name``.
    Thread-safe; several processes (ours and podman's) may share the files."""

    file_name: ClassVar[str]
    lock_name: ClassVar[str]
    record_type: ClassVar[type[Any]]
    unknown_error: ClassVar[type[StorageError]] = StorageError
    kind: ClassVar[str] = "record"

    def __init__(self, directory: str | os.PathLike[str], *, read_only: bool = False,
                 sync: bool = True) -> None:
        self.directory = Path(directory)
        self.read_only = read_only
        self.sync = sync
        if not read_only:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lockfile: LockFile = get_lockfile(self.directory / self.lock_name,
                                               read_only=read_only)
        self._load_mutex = threading.RLock()
        self._snapshot: _Snapshot[R] = _Snapshot((), {}, {})
        self._token: bytes = b""
        self._stamp: tuple[int, int, int] | None = None
        self._loaded = False

    @property
    def path(self) -> Path:
        return self.directory / self.file_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.directory)!r})"

    # -- loading and saving --------------------------------------------------------

    def _parse(self, data: bytes) -> tuple[R, ...]:
        if not data.strip():
            return ()
        try:
            value = json.loads(data)
            if value is None:
                return ()
            if not isinstance(value, list):
                raise TypeError("the top level must be an array")
            return tuple(self.record_type.from_json(_dict(item)) for item in value)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise StoreCorruptError(f"{self.path}: {exc}") from exc

    def _index(self, records: Sequence[R]) -> _Snapshot[R]:
        by_id: dict[str, R] = {}
        by_name: dict[str, R] = {}
        fixed: list[R] = []
        for record in records:
            names = self._names(record)
            for name in names:
                # as c/s Load: a later record that repeats a name takes it
                owner = by_name.get(name)
                if owner is not None and owner.id != record.id:
                    stripped = self._with_names(owner, tuple(
                        n for n in self._names(owner) if n != name))
                    fixed[fixed.index(owner)] = stripped
                    by_id[owner.id] = stripped
                    for n in self._names(stripped):
                        by_name[n] = stripped
            fixed.append(record)
            by_id[record.id] = record
            for name in names:
                by_name[name] = record
        return _Snapshot(tuple(fixed), by_id, by_name)

    def _reload_if_changed(self) -> None:
        """Reload when another writer recorded a write or the file changed; needs the
        lock held by this thread."""
        with self._load_mutex:
            stamp = _file_stamp(self.path)
            if (self._loaded and stamp == self._stamp
                    and not self.lockfile.modified_since(self._token)):
                return
            token = self.lockfile.last_write()
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            self._snapshot = self._index(self._parse(data))
            self._token, self._stamp, self._loaded = token, stamp, True

    def _save(self, records: Sequence[R]) -> None:
        """Write ``records``; needs the exclusive lock."""
        if self.read_only:
            raise PermissionError(f"{self.path} is read-only")
        snapshot = self._index(records)
        payload = _go_json([r.to_json() for r in snapshot.records])
        with self._load_mutex:
            # the token first: a crash after it still makes every reader reload
            self._token = self.lockfile.record_write()
            atomic_write(self.path, payload, 0o600, sync=self.sync)
            self._snapshot = snapshot
            self._stamp = _file_stamp(self.path)

    @contextlib.contextmanager
    def reading(self) -> Iterator[_Snapshot[R]]:
        """Hold the shared lock; yields the current snapshot."""
        with self.lockfile.shared():
            self._reload_if_changed()
            yield self._snapshot

    @contextlib.contextmanager
    def transaction(self) -> Iterator[RecordStore[R]]:
        """Hold the exclusive lock across several calls (they re-enter it)."""
        with self.lockfile.exclusive():
            self._reload_if_changed()
            yield self

    @contextlib.contextmanager
    def _writing(self) -> Iterator[_Snapshot[R]]:
        with self.lockfile.exclusive():
            self._reload_if_changed()
            yield self._snapshot

    def reload(self) -> None:
        """Forget the cache; the next call reads the file again."""
        with self._load_mutex:
            self._loaded = False

    # -- lookups -------------------------------------------------------------------

    def _find(self, snap: _Snapshot[R], ref: str) -> R | None:
        record = snap.by_id.get(ref) or snap.by_name.get(ref)
        if record is not None:
            return record
        record = self._find_extra(snap, ref)
        if record is not None:
            return record
        if ref and " " not in ref:
            matches = [r for r in snap.records if r.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
        return None

    def _find_extra(self, snap: _Snapshot[R], ref: str) -> R | None:
        return None

    def _require(self, snap: _Snapshot[R], ref: str) -> R:
        record = self._find(snap, ref)
        if record is None:
            ambiguous = sum(1 for r in snap.records if ref and r.id.startswith(ref)) > 1
            why = "is an ambiguous ID prefix" if ambiguous else "is not known"
            raise self.unknown_error(f"{self.kind} {ref!r} {why} in {self.path}")
        return record

    def records(self) -> tuple[R, ...]:
        with self.reading() as snap:
            return snap.records

    def get(self, ref: str) -> R:
        """The record with this ID, name, or unique ID prefix (in that order)."""
        with self.reading() as snap:
            return self._require(snap, ref)

    def lookup(self, ref: str) -> str:
        return self.get(ref).id

    def exists(self, ref: str) -> bool:
        with self.reading() as snap:
            return self._find(snap, ref) is not None

    # -- changes -------------------------------------------------------------------

    def create(self, record: R) -> R:
        """Add a record. Its ID must be new and its names unused
        (:class:`DuplicateIDError`, :class:`DuplicateNameError`)."""
        if not record.id or " " in record.id:
            raise ValueError(f"invalid {self.kind} ID {record.id!r}")
        with self._writing() as snap:
            if record.id in snap.by_id:
                raise DuplicateIDError(f"a {self.kind} with ID {record.id!r} already exists")
            names = tuple(dict.fromkeys(self._names(record)))
            for name in names:
                owner = snap.by_name.get(name)
                if owner is not None:
                    raise DuplicateNameError(
                        f"{self.kind} name {name!r} is already used by {owner.id}")
            stored = self._with_names(record, names)
            current: list[R] = list(snap.records)
            current.append(stored)
            self._save(current)
            return stored

    def update(self, ref: str, change: Callable[[R], R]) -> R:
        """Replace a record with ``change(record)`` (same ID); names it takes must not
        belong to another record."""
        with self._writing() as snap:
            old = self._require(snap, ref)
            new = change(old)
            if new.id != old.id:
                raise ValueError("update must keep the record's ID")
            for name in self._names(new):
                owner = snap.by_name.get(name)
                if owner is not None and owner.id != old.id:
                    raise DuplicateNameError(
                        f"{self.kind} name {name!r} is already used by {owner.id}")
            self._save(tuple(new if r.id == old.id else r for r in snap.records))
            return new

    def delete(self, ref: str) -> R:
        """Remove a record (and its big-data directory, if any)."""
        with self._writing() as snap:
            old = self._require(snap, ref)
            self._save(tuple(r for r in snap.records if r.id != old.id))
            self._after_delete(old)
            return old

    def _after_delete(self, record: R) -> None:
        pass

    def _names(self, record: R) -> tuple[str, ...]:
        return ()

    def _with_names(self, record: R, names: tuple[str, ...]) -> R:
        if names:
            raise TypeError(f"{self.kind} records have no names")
        return record


class _NamedStore(RecordStore[N]):
    """Stores whose records have names, metadata, flags and big data."""

    def _names(self, record: N) -> tuple[str, ...]:
        return record.names

    def _with_names(self, record: N, names: tuple[str, ...]) -> N:
        return attrs.evolve(record, names=names)

    def _apply_names(self, ref: str, names: Iterable[str], op: str) -> N:
        wanted: list[str] = list(dict.fromkeys(_tuple_of_str(names)))
        with self._writing() as snap:
            record = self._require(snap, ref)
            old: tuple[str, ...] = record.names
            if op == "set":
                result = wanted
            elif op == "add":
                result = list(dict.fromkeys([*wanted, *old]))
            else:
                result = [n for n in old if n not in wanted]
            new = self._renamed(record, tuple(result))
            records: list[N] = []
            for r in snap.records:
                if r.id == record.id:
                    records.append(new)
                    continue
                # c/s updateNames: a name moves from whichever record had it
                others: tuple[str, ...] = r.names
                if any(n in result for n in others):
                    r = attrs.evolve(r, names=tuple(n for n in others if n not in result))
                records.append(r)
            self._save(records)
            return new

    def _renamed(self, record: N, names: tuple[str, ...]) -> N:
        return attrs.evolve(record, names=names)

    def add_names(self, ref: str, names: Iterable[str]) -> N:
        """Put ``names`` first in the record's names; any other record loses them."""
        return self._apply_names(ref, names, "add")

    def remove_names(self, ref: str, names: Iterable[str]) -> N:
        return self._apply_names(ref, names, "remove")

    def set_names(self, ref: str, names: Iterable[str]) -> N:
        """Replace the record's names; any other record loses them."""
        return self._apply_names(ref, names, "set")

    def set_metadata(self, ref: str, metadata: str) -> N:
        return self.update(ref, lambda r: attrs.evolve(r, metadata=metadata))

    def set_flag(self, ref: str, flag: str, value: Any) -> N:
        return self.update(ref, lambda r: attrs.evolve(
            r, flags={**r.flags, flag: value}))

    def clear_flag(self, ref: str, flag: str) -> N:
        return self.update(ref, lambda r: attrs.evolve(
            r, flags={k: v for k, v in r.flags.items()
                      if k != flag}))

    # -- big data --------------------------------------------------------------------

    def data_dir(self, record_id: str) -> Path:
        return self.directory / record_id

    def big_data_path(self, record_id: str, key: str) -> Path:
        if not key:
            raise ValueError("a big-data key must not be empty")
        return self.data_dir(record_id) / big_data_file_name(key)

    def big_data(self, ref: str, key: str) -> bytes:
        with self.reading() as snap:
            record = self._require(snap, ref)
            return self.big_data_path(record.id, key).read_bytes()

    def big_data_names(self, ref: str) -> tuple[str, ...]:
        return self.get(ref).big_data_names

    def _write_big_data(self, record: N, key: str, data: bytes) -> None:
        directory = self.data_dir(record.id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.big_data_path(record.id, key), data, 0o600, sync=self.sync)

    def _after_delete(self, record: N) -> None:
        shutil.rmtree(self.data_dir(record.id), ignore_errors=True)


def _dict(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("every record must be an object")
    return value


class LayerRecords(_NamedStore[Layer]):
    """``<graphroot>/<driver>-layers/layers.json`` under ``layers.lock``."""

    file_name = "layers.json"
    lock_name = "layers.lock"
    record_type = Layer
    unknown_error = LayerUnknownError
    kind = "layer"

    @classmethod
    def open(cls, graphroot: str | os.PathLike[str], driver: str, **kw: Any) -> LayerRecords:
        return cls(Path(graphroot) / f"{driver}-layers", **kw)

    def tar_split_path(self, layer_id: str) -> Path:
        """Where c/s keeps the layer's tar-split metadata (gzip-compressed)."""
        return self.directory / f"{layer_id}.tar-split.gz"

    def by_compressed_digest(self, digest: str) -> tuple[Layer, ...]:
        return tuple(r for r in self.records() if r.compressed_digest == digest)

    def by_uncompressed_digest(self, digest: str) -> tuple[Layer, ...]:
        return tuple(r for r in self.records() if r.uncompressed_digest == digest)

    def children(self, layer_id: str) -> tuple[Layer, ...]:
        return tuple(r for r in self.records() if r.parent == layer_id)

    def incomplete(self) -> tuple[Layer, ...]:
        """Layers marked incomplete (a crash while creating or deleting them)."""
        return tuple(r for r in self.records() if r.incomplete)

    def chain(self, ref: str) -> tuple[Layer, ...]:
        """The layer and its parents, bottom layer first."""
        with self.reading() as snap:
            layer: Layer | None = self._require(snap, ref)
            out: list[Layer] = []
            while layer is not None:
                if layer in out:
                    raise StoreCorruptError(f"{self.path}: parent loop at {layer.id}")
                out.append(layer)
                layer = snap.by_id.get(layer.parent) if layer.parent else None
                if out[-1].parent and layer is None:
                    raise LayerUnknownError(
                        f"parent {out[-1].parent} of layer {out[-1].id} is not known")
            return tuple(reversed(out))

    def set_big_data(self, ref: str, key: str, data: bytes) -> Layer:
        with self._writing() as snap:
            record = self._require(snap, ref)
            self._write_big_data(record, key, data)
            if key in record.big_data_names:
                return record
            new = attrs.evolve(record, big_data_names=(*record.big_data_names, key))
            self._save(tuple(new if r.id == record.id else r for r in snap.records))
            return new


#: records whose big data also have sizes and digests
S = TypeVar("S", Image, Container)


def _set_sized_big_data(store: _NamedStore[S], ref: str, key: str, data: bytes,
                        digest: str | None) -> S:
    """Write a big-data item of an image or container and record its name, size and
    digest (by default the sha256 of ``data``)."""
    import hashlib

    value = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    with store._writing() as snap:
        record = store._require(snap, ref)
        store._write_big_data(record, key, data)
        names: tuple[str, ...] = record.big_data_names
        if key not in names:
            names = (*names, key)
        new = attrs.evolve(
            record, big_data_names=names,
            big_data_sizes={**record.big_data_sizes, key: len(data)},
            big_data_digests={**record.big_data_digests, key: value})
        if new != record:
            store._save(tuple(new if r.id == record.id else r for r in snap.records))
        return new


class ImageRecords(_NamedStore[Image]):
    """``<graphroot>/<driver>-images/images.json`` under ``images.lock``."""

    file_name = "images.json"
    lock_name = "images.lock"
    record_type = Image
    unknown_error = ImageUnknownError
    kind = "image"

    @classmethod
    def open(cls, graphroot: str | os.PathLike[str], driver: str, **kw: Any) -> ImageRecords:
        return cls(Path(graphroot) / f"{driver}-images", **kw)

    def _renamed(self, record: Image, names: tuple[str, ...]) -> Image:
        # c/s: every name the image now has goes to the front of its names-history
        history = list(record.names_history)
        for name in names:
            history = [name, *(h for h in history if h != name)]
        return attrs.evolve(record, names=names, names_history=tuple(history))

    def by_digest(self, digest: str) -> tuple[Image, ...]:
        """Images whose ``digest`` or a manifest big-data item has this digest."""
        return tuple(r for r in self.records() if digest in r.digests)

    def by_top_layer(self, layer_id: str) -> tuple[Image, ...]:
        return tuple(r for r in self.records()
                     if r.top_layer == layer_id or layer_id in r.mapped_top_layers)

    def set_big_data(self, ref: str, key: str, data: bytes, *,
                     digest: str | None = None) -> Image:
        """Store a big-data item (the manifest, the config, a signature...). ``digest``
        is what to record for it, by default the sha256 of ``data``; pass the manifest
        digest for ``manifest*`` keys when it differs (schema 1)."""
        return _set_sized_big_data(self, ref, key, data, digest)


class ContainerRecords(_NamedStore[Container]):
    """``<graphroot>/<driver>-containers/containers.json`` under ``containers.lock``."""

    file_name = "containers.json"
    lock_name = "containers.lock"
    record_type = Container
    unknown_error = ContainerUnknownError
    kind = "container"

    @classmethod
    def open(cls, graphroot: str | os.PathLike[str], driver: str,
             **kw: Any) -> ContainerRecords:
        return cls(Path(graphroot) / f"{driver}-containers", **kw)

    def _find_extra(self, snap: _Snapshot[Container], ref: str) -> Container | None:
        # c/s looks containers up by their layer's ID too, before ID prefixes
        for record in snap.records:
            if record.layer == ref:
                return record
        return None

    def by_layer(self, layer_id: str) -> Container | None:
        with self.reading() as snap:
            return self._find_extra(snap, layer_id)

    def set_big_data(self, ref: str, key: str, data: bytes) -> Container:
        return _set_sized_big_data(self, ref, key, data, None)


class MountRecords(RecordStore[MountPoint]):
    """``<runroot>/<driver>-layers/mountpoints.json`` under ``mountpoints.lock``: only
    layers with a count above zero are listed."""

    file_name = "mountpoints.json"
    lock_name = "mountpoints.lock"
    record_type = MountPoint
    kind = "mount point"

    @classmethod
    def open(cls, runroot: str | os.PathLike[str], driver: str, **kw: Any) -> MountRecords:
        return cls(Path(runroot) / f"{driver}-layers", **kw)

    def _save(self, records: Sequence[MountPoint]) -> None:
        super()._save([r for r in records if r.count > 0 and r.path])

    def count(self, layer_id: str) -> int:
        with self.reading() as snap:
            found = snap.by_id.get(layer_id)
            return found.count if found else 0

    def change(self, layer_id: str, path: str, delta: int) -> int:
        """Add ``delta`` to the layer's mount count (the entry goes at 0); the new count."""
        with self._writing() as snap:
            old = snap.by_id.get(layer_id)
            count = max(0, (old.count if old else 0) + delta)
            new = MountPoint(id=layer_id, path=path or (old.path if old else ""), count=count)
            records = [r for r in snap.records if r.id != layer_id]
            if old is None:
                records.append(new)
            else:
                records.insert(snap.records.index(old), new)
            self._save(records)
            return count

    def write(self, records: Iterable[MountPoint]) -> None:
        """Replace the whole file (needed by mount/unmount code that recounts)."""
        with self._writing():
            self._save(tuple(records))
