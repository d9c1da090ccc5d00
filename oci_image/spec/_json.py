"""Strict JSON reading with paths in error messages, Go-compatible JSON writing, and a
hashable read-only mapping for annotation-like fields."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

from ..errors import ContentTooLargeError, SpecError

__all__ = [
    "Fields",
    "FrozenDict",
    "dumps",
    "go_compact",
    "go_time",
    "json_kind",
    "load_object",
    "top_level_members",
]

#: default limit on manifests, indexes and configs (containers/image uses 4 MiB too)
DEFAULT_SIZE_LIMIT: Final = 4 * 1024 * 1024


class FrozenDict(Mapping[str, str]):
    """An immutable, hashable ``str -> str`` mapping that keeps insertion order."""

    __slots__ = ("_d", "_hash")

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._d: dict[str, str] = dict(data) if data else {}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._d.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenDict):
            return self._d == other._d
        if isinstance(other, Mapping):
            return self._d == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._d!r})"

    def to_dict(self) -> dict[str, str]:
        return dict(self._d)


def to_frozen(value: Mapping[str, str] | None) -> FrozenDict:
    """attrs converter: any mapping (or None) to a :class:`FrozenDict`."""
    if isinstance(value, FrozenDict):
        return value
    return FrozenDict(value)


def load_object(raw: bytes | str, what: str, limit: int | None = DEFAULT_SIZE_LIMIT
                ) -> dict[str, Any]:
    """Decode ``raw`` as a JSON object; :class:`SpecError` otherwise.

    ``what`` names the document in messages; ``limit`` is a size limit in bytes.
    """
    if limit is not None and len(raw) > limit:
        raise ContentTooLargeError(f"{what} is {len(raw)} bytes, over the limit of {limit}")
    try:
        # JSON documents are UTF-8 (no BOM, no UTF-16/32 guessing as json.loads does for
        # bytes); NaN and Infinity are not JSON.
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SpecError(f"{what} must be a JSON object, not {json_kind(value)}")
    return value


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def json_kind(value: object) -> str:
    """The JSON type name of a parsed value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Fields:
    """Typed access to the members of one JSON object, naming the path on error."""

    __slots__ = ("obj", "path")

    def __init__(self, obj: object, path: str) -> None:
        if not isinstance(obj, dict):
            raise SpecError(f"{path} must be a JSON object, not {json_kind(obj)}")
        self.obj: dict[str, Any] = obj
        self.path = path

    def _err(self, key: str, expected: str, value: object) -> SpecError:
        return SpecError(f"{self.path}.{key} must be {expected}, not {json_kind(value)}")

    def has(self, key: str) -> bool:
        return key in self.obj and self.obj[key] is not None

    def string(self, key: str, *, required: bool = False, default: str | None = None
            ) -> str | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise SpecError(f"{self.path}.{key} is required")
            return default
        if not isinstance(value, str):
            raise self._err(key, "a string", value)
        return value

    def req_str(self, key: str) -> str:
        value = self.string(key, required=True)
        assert value is not None
        return value

    def integer(self, key: str, *, required: bool = False, minimum: int | None = None
            ) -> int | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise SpecError(f"{self.path}.{key} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise self._err(key, "an integer", value)
        if minimum is not None and value < minimum:
            raise SpecError(f"{self.path}.{key} must be >= {minimum}, not {value}")
        return value

    def req_int(self, key: str, *, minimum: int | None = None) -> int:
        value = self.integer(key, required=True, minimum=minimum)
        assert value is not None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self._err(key, "a boolean", value)
        return value

    def fields(self, key: str, *, required: bool = False) -> Fields | None:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise SpecError(f"{self.path}.{key} is required")
            return None
        return Fields(value, f"{self.path}.{key}")

    def array(self, key: str, *, required: bool = False) -> list[Any]:
        value = self.obj.get(key)
        if value is None:
            if required:
                raise SpecError(f"{self.path}.{key} is required")
            return []
        if not isinstance(value, list):
            raise self._err(key, "an array", value)
        return value

    def str_list(self, key: str) -> tuple[str, ...]:
        items = self.array(key)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise SpecError(f"{self.path}.{key}[{i}] must be a string, not {json_kind(item)}")
        return tuple(items)

    def str_map(self, key: str) -> FrozenDict:
        value = self.obj.get(key)
        if value is None:
            return FrozenDict()
        if not isinstance(value, dict):
            raise self._err(key, "an object", value)
        for k, v in value.items():
            if not isinstance(v, str):
                raise SpecError(f"{self.path}.{key}[{k!r}] must be a string, not {json_kind(v)}")
        return FrozenDict(value)

    def object_list(self, key: str, *, required: bool = False) -> list[Fields]:
        return [Fields(item, f"{self.path}.{key}[{i}]")
                for i, item in enumerate(self.array(key, required=required))]


#: (a pattern, compiled by ``re`` on first use: only a rare error path needs it)
_SURROGATES: Final = "[\ud800-\udfff]"
_GO_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                      "\u2028": "\\u2028", "\u2029": "\\u2029"}


def dumps(value: object, *, indent: int | None = None) -> bytes:
    """Serialise like Go's ``encoding/json.Marshal``: compact, keys in the given order,
    UTF-8 kept as is, and ``<``, ``>``, ``&``, U+2028, U+2029 escaped.

    Manifests we generate are byte-identical to what containers/image generates for the
    same content, so their digests agree with skopeo's.
    """
    if indent is None:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)
    else:
        text = json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    if any(c in text for c in _GO_ESCAPES):
        text = "".join(_GO_ESCAPES.get(c, c) for c in text)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate from a "\ud800" escape: Go decodes it as U+FFFD
        return re.sub(_SURROGATES, "\ufffd", text).encode("utf-8")


def go_compact(text: str) -> str:
    """Go's ``json.Compact`` with HTML escaping: whitespace outside strings removed,
    everything else (number spelling, key order) kept."""
    out: list[str] = []
    in_string = escaped = False
    for c in text:
        if in_string:
            out.append(_GO_ESCAPES.get(c, c))
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif c not in " \t\r\n":
            out.append(c)
    return "".join(out)


def top_level_members(text: str) -> list[tuple[str, str]]:
    """(key, raw value text) of a JSON object's members, in document order."""
    try:
        return _members(text)
    except (ValueError, IndexError) as exc:
        raise SpecError(f"malformed JSON object: {exc}") from exc


def _members(text: str) -> list[tuple[str, str]]:
    decoder = json.JSONDecoder()
    ws = " \t\r\n"
    i = 0
    n = len(text)

    def skip(j: int) -> int:
        while j < n and text[j] in ws:
            j += 1
        return j

    i = skip(i)
    if i >= n or text[i] != "{":
        raise SpecError("not a JSON object")
    i = skip(i + 1)
    members: list[tuple[str, str]] = []
    if i < n and text[i] == "}":
        return members
    while True:
        key, i = decoder.raw_decode(text, i)
        i = skip(i)
        if text[i] != ":":
            raise SpecError("malformed JSON object")
        start = skip(i + 1)
        _, end = decoder.raw_decode(text, start)
        members.append((key, text[start:end]))
        i = skip(end)
        if text[i] == ",":
            i = skip(i + 1)
            continue
        if text[i] == "}":
            return members
        raise SpecError("malformed JSON object")


_TIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


def go_time(value: object) -> str:
    """A timestamp as Go marshals a ``time.Time`` (RFC 3339 with trimmed nanoseconds)."""
    if not isinstance(value, str) or not value:
        return "0001-01-01T00:00:00Z"
    m = _TIME_RE.match(value)
    if m is None:
        raise SpecError(f"invalid timestamp {value!r}")
    base, frac, zone = m.groups()
    frac = (frac or "")[:9].rstrip("0")
    if zone in ("+00:00", "-00:00"):
        zone = "Z"
    return f"{base}.{frac}{zone}" if frac else f"{base}{zone}"
