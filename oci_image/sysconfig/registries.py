"""``registries.conf`` (v2, and the deprecated v1 tables) and short-name resolution, as
containers/image 5.23 reads them (``pkg/sysregistriesv2``, ``pkg/shortnames``).

Loading (c/image ``newConfigWrapper`` / ``tryUpdatingCache``):

* the main file is the ``path`` argument (skopeo's ``--registries-conf``), else
  ``$CONTAINERS_REGISTRIES_CONF``, else ``$REGISTRIES_CONFIG_PATH`` (c/image
  ``pkg/cli/environment``), else ``$HOME/.config/containers/registries.conf`` if it
  exists, else ``/etc/containers/registries.conf``. A main file named explicitly (argument
  or environment) must exist; a missing default file is an empty configuration.
* drop-ins are the ``*.conf`` files, in name order, of ``/etc/containers/registries.conf.d``
  and then ``$HOME/.config/containers/registries.conf.d`` -- whatever the main file is --
  except that when the user's own ``registries.conf`` is the main file only the user's
  directory is read. ``conf_dir`` replaces both directories (c/image
  ``SystemRegistriesConfDirPath``). Drop-ins must be v2; a ``[[registry]]`` of a later
  file replaces one with the same ``prefix``; ``unqualified-search-registries``,
  ``credential-helpers`` and ``short-name-mode`` replace earlier values when set (an empty
  list counts as set); aliases are merged name by name.

Pull sources (c/image ``Registry.PullSourcesFromReference``): the ``[[registry]]`` with
the longest matching ``prefix`` decides; its mirrors come first (filtered by
``mirror-by-digest-only`` or each mirror's ``pull-from-mirror``), the primary location
last, each with the prefix of the reference rewritten to the endpoint's location.

Where we differ: no process-wide cache (load once and keep the :class:`RegistriesConfig`);
reading the short-name alias cache creates no directory or lock file; the alias cache is
replaced atomically instead of rewritten in place; prompting is the caller's
``choose`` callback (``interactive=True``) instead of a TTY check.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, TypeVar

import attrs

from ..errors import ConfigError, InvalidReferenceError, ShortNameError
from ..spec.reference import DEFAULT_DOMAIN, Reference
from ._env import atomic_write, environ, home_dir, locked

__all__ = [
    "AUTH_FILE_HELPER",
    "SYSTEM_REGISTRIES_CONF",
    "SYSTEM_REGISTRIES_CONF_DIR",
    "Endpoint",
    "PullSource",
    "RegistriesConfPaths",
    "RegistriesConfig",
    "Registry",
    "ShortNameAlias",
    "ShortNameResolution",
    "endpoint_for_host",
    "is_blocked",
    "is_insecure",
    "is_short_name",
    "load_registries_config",
    "local_candidates",
    "parse_registries_conf",
    "pull_sources",
    "record_alias",
    "registries_conf_paths",
    "remove_alias",
    "resolve_short_name",
    "short_name_aliases_path",
]

SYSTEM_REGISTRIES_CONF: Final = Path("/etc/containers/registries.conf")
SYSTEM_REGISTRIES_CONF_DIR: Final = Path("/etc/containers/registries.conf.d")
_USER_REGISTRIES_CONF: Final = ".config/containers/registries.conf"
_USER_REGISTRIES_CONF_DIR: Final = ".config/containers/registries.conf.d"
_ALIASES_FILE: Final = "containers/short-name-aliases.conf"

#: the ``credential-helpers`` entry that means "the auth.json files"
AUTH_FILE_HELPER: Final = "containers-auth.json"

ShortNameMode = Literal["enforcing", "permissive", "disabled"]
PullFromMirror = Literal["all", "digest-only", "tag-only"]
_MODES: Final[tuple[ShortNameMode, ...]] = ("enforcing", "permissive", "disabled")
_PULL_FROM_MIRROR: Final[tuple[PullFromMirror, ...]] = ("all", "digest-only", "tag-only")

# distribution/reference as vendored by c/image 5.23: domains without IPv6, and a
# repository whose first component is only a domain when the whole name parses that way.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_DOMAIN_RE: Final = re.compile(rf"^{_DOMAIN}\Z")
_UNNORMALIZED_RE: Final = re.compile(
    rf"^(?:({_DOMAIN})/)?({_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)"
    r"(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?\Z")


# -- models --------------------------------------------------------------------------


@attrs.frozen
class Endpoint:
    """A location images are pulled from: a ``[[registry]]``'s own location or one of its
    ``[[registry.mirror]]`` entries. ``location`` is ``host[:port][/namespace...]``; it is
    empty only for a primary with a ``*.example.com`` prefix (no rewrite).
    ``pull_from_mirror`` only means something on mirrors."""

    location: str
    insecure: bool = False
    pull_from_mirror: PullFromMirror = "all"


@attrs.frozen
class Registry:
    """One ``[[registry]]`` table after validation. ``origin`` names the file it came
    from (for messages)."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Endpoint, ...] = ()
    origin: str = attrs.field(default="", eq=False)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.location, self.insecure)

    def mirrors_for(self, ref: Reference) -> tuple[Endpoint, ...]:
        """The mirrors usable for ``ref``, in order: with ``mirror-by-digest-only`` all of
        them for a digested reference and none otherwise; else each mirror's
        ``pull-from-mirror`` decides (``digest-only`` / ``tag-only`` / ``all``)."""
        digested = ref.digest is not None
        if self.mirror_by_digest_only:
            return self.mirrors if digested else ()
        return tuple(m for m in self.mirrors
                     if not (m.pull_from_mirror == "digest-only" and not digested)
                     and not (m.pull_from_mirror == "tag-only" and digested))


@attrs.frozen
class ShortNameAlias:
    """The value of one ``[aliases]`` entry and the file that set it. ``value`` is ``None``
    for ``name = ""``, which erases an alias set by an earlier file."""

    value: Reference | None
    origin: str = ""


def _frozen_aliases(aliases: Mapping[str, ShortNameAlias]) -> Mapping[str, ShortNameAlias]:
    return MappingProxyType(dict(aliases))


@attrs.frozen
class RegistriesConfig:
    """The merged registries configuration.

    ``search_origin`` is the file that set ``unqualified_search_registries`` (or the main
    file); ``sources`` every file that was read, in order.
    """

    registries: tuple[Registry, ...] = ()
    unqualified_search_registries: tuple[str, ...] = ()
    short_name_mode: ShortNameMode = "permissive"
    aliases: Mapping[str, ShortNameAlias] = attrs.field(
        factory=dict, converter=_frozen_aliases, hash=False)
    credential_helpers: tuple[str, ...] = (AUTH_FILE_HELPER,)
    search_origin: str = ""
    sources: tuple[str, ...] = ()

    def find(self, name: str) -> Registry | None:
        """The ``[[registry]]`` whose prefix is the longest match of ``name``, which must
        start with a host (``host[:port][/path][:tag][@digest]``); ``None`` when none
        matches. Ties go to the first prefix in sorted order (c/image ``FindRegistry``)."""
        best: Registry | None = None
        for registry in self.registries:
            if _match_prefix(name, registry.prefix) != -1 and (
                    best is None or len(registry.prefix) > len(best.prefix)):
                best = registry
        return best

    def describe(self) -> str:
        """The files read, for messages (c/image ``ConfigurationSourceDescription``)."""
        return ", ".join(self.sources) or "no registries.conf"


@attrs.frozen
class PullSource:
    """Where to try pulling an image from. ``reference`` is the physical reference
    (prefix rewritten); ``endpoint_host`` the ``host[:port]`` to connect to
    (``registry-1.docker.io`` for ``docker.io``; credentials and ``certs.d`` use
    ``reference.domain``); ``insecure`` allows HTTP and unverified TLS for this endpoint;
    ``blocked`` says the physical reference itself falls under a blocked
    ``[[registry]]`` (c/image refuses that attempt and goes on with the next source)."""

    reference: Reference
    endpoint_host: str
    insecure: bool = False
    is_mirror: bool = False
    blocked: bool = False


@attrs.frozen
class RegistriesConfPaths:
    """The files :func:`load_registries_config` reads: ``conf`` (which must exist when
    ``explicit``) and the ``*.conf`` files of ``drop_in_dirs``."""

    conf: Path
    explicit: bool
    drop_in_dirs: tuple[Path, ...]

    def describe(self) -> str:
        return ", ".join(str(p) for p in (self.conf, *self.drop_in_dirs))


# -- prefix matching and pull sources ---------------------------------------------------


def _match_prefix(ref: str, prefix: str) -> int:
    """The length of ``ref`` matched by ``prefix``, or -1 (c/image ``refMatchingPrefix``).

    A plain prefix must be followed by the end, ``/``, ``:`` or ``@`` -- so, as in c/image,
    ``example.com`` also matches ``example.com:5000/x``. ``*.example.com`` matches any
    host ending in ``.example.com`` (not ``example.com`` itself) at the first place that
    suffix occurs before any ``/``.
    """
    if prefix.startswith("*."):
        suffix = prefix[1:]
        index = ref.find(suffix)
        if index == -1 or "/" in ref[:index]:
            return -1
        index += len(suffix)
        return index if index == len(ref) or ref[index] in ":/@" else -1
    if ref == prefix:
        return len(prefix)
    if len(ref) > len(prefix) and ref.startswith(prefix) and ref[len(prefix)] in ":/@":
        return len(prefix)
    return -1


def endpoint_for_host(host: str) -> str:
    """The host to connect to for a reference domain: Docker Hub's ``docker.io`` is served
    by ``registry-1.docker.io``; every other host is itself."""
    return "registry-1.docker.io" if host in (DEFAULT_DOMAIN, "index.docker.io") else host


def _rewrite(ref: Reference, registry: Registry, location: str) -> Reference:
    text = str(ref)
    matched = _match_prefix(text, registry.prefix)
    if matched == -1:
        raise ConfigError(f"invalid prefix {registry.prefix!r} for reference {text!r} "
                          f"({registry.origin or 'registries.conf'})")
    if not location:  # a *.example.com prefix without location: no rewrite
        return ref
    rewritten = location + text[matched:]
    try:
        parsed = Reference.parse(rewritten)
    except InvalidReferenceError as exc:
        raise ConfigError(f"rewriting {text!r} to {rewritten!r} with the [[registry]] of "
                          f"prefix {registry.prefix!r} in {registry.origin or 'registries.conf'}"
                          f": {exc}") from exc
    if str(parsed) != rewritten:
        raise ConfigError(f"rewriting {text!r} with the [[registry]] of prefix "
                          f"{registry.prefix!r} in {registry.origin or 'registries.conf'} "
                          f"gives {rewritten!r}, which is not a canonical reference")
    return parsed


def pull_sources(config: RegistriesConfig, ref: Reference) -> list[PullSource]:
    """Where to pull ``ref`` from, in order: usable mirrors, then the primary location
    (c/image ``Registry.PullSourcesFromReference``; without a matching ``[[registry]]``
    just ``ref`` itself). Mirrors and rewrites apply to pulls only, not to pushes,
    tag lists or searches."""
    registry = config.find(ref.name)
    if registry is None:
        return [PullSource(ref, endpoint_for_host(ref.domain))]
    sources = []
    for endpoint, is_mirror in [*((m, True) for m in registry.mirrors_for(ref)),
                                (registry.endpoint, False)]:
        physical = _rewrite(ref, registry, endpoint.location)
        sources.append(PullSource(physical, endpoint_for_host(physical.domain),
                                  insecure=endpoint.insecure, is_mirror=is_mirror,
                                  blocked=is_blocked(config, physical)))
    return sources


def is_blocked(config: RegistriesConfig, ref: Reference) -> bool:
    """Whether ``ref`` (by its repository name) falls under a ``blocked`` registry.

    A blocked registry may still have mirrors that are not blocked; c/image pulls through
    them, so a pull should look at :attr:`PullSource.blocked` of each source instead.
    """
    registry = config.find(ref.name)
    return registry is not None and registry.blocked


def is_insecure(config: RegistriesConfig, name: str) -> bool:
    """Whether ``name`` (``host[:port]`` or a repository name) falls under an ``insecure``
    registry (HTTP and unverified TLS allowed). Pull sources carry their own flag, the
    mirror's or the primary's."""
    registry = config.find(name)
    return registry is not None and registry.insecure


# -- reading files ----------------------------------------------------------------------


class _Invalid(Exception):
    """A validation failure inside one file; turned into a ConfigError naming it."""


@attrs.define
class _FileConfig:
    """One file's settings; ``None`` means "not set here" for the merged fields.
    ``search_origin`` is the file that set ``search`` (c/image: the main file even when it
    does not)."""

    search_origin: str
    registries: dict[str, Registry] = attrs.field(factory=dict)
    search: tuple[str, ...] | None = None
    helpers: tuple[str, ...] | None = None
    mode: ShortNameMode | None = None
    aliases: dict[str, ShortNameAlias] = attrs.field(factory=dict)

    def update(self, later: _FileConfig) -> None:
        """c/image ``parsedConfig.updateWithConfigurationFrom``."""
        self.registries.update(later.registries)
        if later.search is not None:
            self.search, self.search_origin = later.search, later.search_origin
        if later.helpers is not None:
            self.helpers = later.helpers
        if later.mode is not None:
            self.mode = later.mode
        self.aliases.update(later.aliases)

    def finish(self, sources: Sequence[str]) -> RegistriesConfig:
        return RegistriesConfig(
            registries=tuple(self.registries[p] for p in sorted(self.registries)),
            unqualified_search_registries=self.search or (),
            short_name_mode=self.mode or "permissive",
            aliases=self.aliases,
            credential_helpers=self.helpers or (AUTH_FILE_HELPER,),
            search_origin=self.search_origin,
            sources=tuple(sources))


def registries_conf_paths(path: str | os.PathLike[str] | None = None, *,
                          conf_dir: str | os.PathLike[str] | None = None,
                          env: Mapping[str, str] | None = None,
                          system_path: str | os.PathLike[str] = SYSTEM_REGISTRIES_CONF,
                          system_dir: str | os.PathLike[str] = SYSTEM_REGISTRIES_CONF_DIR,
                          ) -> RegistriesConfPaths:
    """Which files :func:`load_registries_config` reads (see the module docstring)."""
    variables = environ(env)
    home = home_dir(env)
    explicit = os.fspath(path) if path is not None else ""
    if not explicit:
        for name in ("CONTAINERS_REGISTRIES_CONF", "REGISTRIES_CONFIG_PATH"):
            if name in variables:
                explicit = variables[name]
                break
    chosen_dirs = (Path(conf_dir),) if conf_dir else None
    if explicit:
        return RegistriesConfPaths(Path(explicit), True, chosen_dirs or (
            Path(system_dir), home / _USER_REGISTRIES_CONF_DIR))
    user_conf = home / _USER_REGISTRIES_CONF
    if user_conf.exists():
        return RegistriesConfPaths(user_conf, False,
                                   chosen_dirs or (home / _USER_REGISTRIES_CONF_DIR,))
    return RegistriesConfPaths(Path(system_path), False, chosen_dirs or (
        Path(system_dir), home / _USER_REGISTRIES_CONF_DIR))


def load_registries_config(path: str | os.PathLike[str] | None = None, *,
                           conf_dir: str | os.PathLike[str] | None = None,
                           env: Mapping[str, str] | None = None,
                           system_path: str | os.PathLike[str] = SYSTEM_REGISTRIES_CONF,
                           system_dir: str | os.PathLike[str] = SYSTEM_REGISTRIES_CONF_DIR,
                           ) -> RegistriesConfig:
    """Read and merge registries.conf and its drop-ins. A malformed file raises
    :class:`ConfigError` naming it."""
    paths = registries_conf_paths(path, conf_dir=conf_dir, env=env,
                                  system_path=system_path, system_dir=system_dir)
    sources: list[str] = []
    text = _read_text(paths.conf, missing_ok=not paths.explicit)
    if text is None:
        merged = _FileConfig("")
    else:
        merged = _parse_file(text, str(paths.conf), drop_in=False)
        sources.append(str(paths.conf))
    for drop_in in _drop_in_files(paths.drop_in_dirs):
        text = _read_text(drop_in, missing_ok=False)
        assert text is not None
        merged.update(_parse_file(text, str(drop_in), drop_in=True))
        sources.append(str(drop_in))
    return merged.finish(sources)


def parse_registries_conf(text: str, *, origin: str = "registries.conf") -> RegistriesConfig:
    """One registries.conf (v1 or v2) given as text, without drop-ins."""
    return _parse_file(text, origin, drop_in=False).finish([origin])


def _read_text(path: Path, *, missing_ok: bool,
               what: str = "registries configuration") -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError(f"loading {what} {str(path)!r}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"loading {what} {str(path)!r}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc


def _drop_in_files(dirs: Iterable[Path]) -> list[Path]:
    """The ``*.conf`` files directly inside each directory, in name order per directory;
    a missing directory is skipped."""
    files: list[Path] = []
    for directory in dirs:
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(f"reading registries.conf.d {str(directory)!r}: "
                              f"{exc.strerror}") from exc
        files.extend(Path(e.path) for e in sorted(entries, key=lambda e: e.name)
                     if e.name.endswith(".conf") and not e.is_dir(follow_symlinks=False))
    return files


def _parse_file(text: str, path: str, *, drop_in: bool) -> _FileConfig:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return _interpret(document, path, drop_in=drop_in)
    except _Invalid as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _interpret(doc: Mapping[str, object], path: str, *, drop_in: bool) -> _FileConfig:
    """c/image ``loadConfigFile``: v1 or v2, validated, one file."""
    v1 = _v1_tables(doc)
    tables = _list(doc, "registry", dict) or []
    search = _list(doc, "unqualified-search-registries", str)
    helpers = _list(doc, "credential-helpers", str)
    mode_text = _value(doc, "short-name-mode", str) or ""
    raw_aliases = _table(doc.get("aliases", {}), "[aliases]")
    if any(v1.values()):
        if drop_in:
            raise _Invalid("registry must be in v2 format but is in v1")
        if tables or search or helpers or mode_text or raw_aliases:
            raise _Invalid("mixing sysregistry v1/v2 is not supported")
        registries = _convert_v1(v1, path)
        search = v1["search"]
    else:
        registries = [_registry(t, path) for t in tables]
    _check_conflicts(registries)
    config = _FileConfig(path, _first_per_prefix(registries),
                         None if search is None else tuple(_search_registry(s) for s in search),
                         None if helpers is None else tuple(helpers),
                         _mode(mode_text) if mode_text else None)
    for registry in config.registries.values():
        if registry.prefix.startswith("*.") and any(c in registry.prefix for c in "/@:"):
            raise _Invalid("wildcarded prefix should be in the format: *.example.com; "
                           f"{registry.prefix!r} is not")
    config.aliases = _aliases(raw_aliases, path)
    return config


def _mode(text: str) -> ShortNameMode:
    for mode in _MODES:
        if mode == text:
            return mode
    raise _Invalid(f"invalid short-name mode: {text!r}")


_T = TypeVar("_T")


def _value(table: Mapping[str, object], key: str, kind: type[_T]) -> _T | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, kind):
        raise _Invalid(f"{key!r} must be a {_KIND_NAMES.get(kind, kind.__name__)}")
    return value


def _list(table: Mapping[str, object], key: str, kind: type[_T]) -> list[_T] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise _Invalid(f"{key!r} must be an array of {_KIND_NAMES.get(kind, kind.__name__)}s")
    return value


def _table(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Invalid(f"{what} must be a table")
    return value


_KIND_NAMES: Final[dict[type[object], str]] = {str: "string", bool: "boolean", dict: "table"}


def _location(text: str) -> str:
    """c/image ``parseLocation``: trailing slashes dropped, no URL schemes."""
    trimmed = text.rstrip("/")
    if trimmed.startswith(("http://", "https://")):
        raise _Invalid(f"invalid location {text!r}: URI schemes are not supported")
    return trimmed


def _pull_from_mirror(text: str | None, location: str) -> PullFromMirror:
    if not text:
        return "all"
    for value in _PULL_FROM_MIRROR:
        if value == text:
            return value
    raise _Invalid(f"unsupported pull-from-mirror value {text!r} for mirror {location!r}")


def _registry(table: Mapping[str, object], path: str) -> Registry:
    """c/image ``postProcessRegistries``, for one ``[[registry]]``."""
    location = _location(_value(table, "location", str) or "")
    prefix = _value(table, "prefix", str) or ""
    if not prefix:
        if not location:
            raise _Invalid("invalid condition: both location and prefix are unset")
        prefix = location
    else:
        prefix = _location(prefix)
        if not prefix.startswith("*.") and not location:
            raise _Invalid("invalid condition: location is unset and prefix is not in the "
                           "format: *.example.com")
    if _value(table, "pull-from-mirror", str):
        raise _Invalid(f"pull-from-mirror must not be set for a non-mirror registry {prefix!r}")
    by_digest = bool(_value(table, "mirror-by-digest-only", bool))
    mirrors = []
    for raw in _list(table, "mirror", dict) or []:
        mirror_location = _location(_value(raw, "location", str) or "")
        if not mirror_location:
            raise _Invalid("invalid condition: mirror location is unset")
        pull_from = _value(raw, "pull-from-mirror", str)
        if by_digest and pull_from:
            raise _Invalid(f"cannot set mirror usage mirror-by-digest-only for the registry "
                           f"({prefix!r}) and pull-from-mirror for per-mirror "
                           f"({mirror_location!r}) at the same time")
        mirrors.append(Endpoint(mirror_location, bool(_value(raw, "insecure", bool)),
                                _pull_from_mirror(pull_from, mirror_location)))
    return Registry(prefix, location, insecure=bool(_value(table, "insecure", bool)),
                    blocked=bool(_value(table, "blocked", bool)),
                    mirror_by_digest_only=by_digest, mirrors=tuple(mirrors), origin=path)


def _check_conflicts(registries: Sequence[Registry]) -> None:
    """The same location (or wildcard prefix) must not be both secure and insecure, or
    both blocked and not."""
    seen: dict[str, Registry] = {}
    for registry in registries:
        key = registry.location or registry.prefix
        other = seen.setdefault(key, registry)
        for setting in ("insecure", "blocked"):
            if getattr(other, setting) != getattr(registry, setting):
                raise _Invalid(f"registry {registry.location!r} is defined multiple times "
                               f"with conflicting {setting!r} setting")


def _first_per_prefix(registries: Sequence[Registry]) -> dict[str, Registry]:
    """Later tables with an already-seen prefix are ignored, as c/image does."""
    out: dict[str, Registry] = {}
    for registry in registries:
        out.setdefault(registry.prefix, registry)
    return out


def _search_registry(text: str) -> str:
    registry = _location(text)
    if not _DOMAIN_RE.match(registry):
        raise _Invalid(f"invalid unqualified-search-registries entry {registry!r}")
    return registry


def _v1_tables(doc: Mapping[str, object]) -> dict[str, list[str]]:
    """The v1 ``[registries.search|insecure|block] registries = [...]`` lists."""
    top = _table(doc.get("registries", {}), "[registries]")
    out: dict[str, list[str]] = {}
    for name in ("search", "insecure", "block"):
        table = _table(top.get(name, {}), f"[registries.{name}]")
        out[name] = _list(table, "registries", str) or []
    return out


def _convert_v1(v1: Mapping[str, list[str]], path: str) -> list[Registry]:
    """c/image ``ConvertToV2``: one registry per location, blocked and/or insecure."""
    flags: dict[str, dict[str, bool]] = {}
    for kind, flag in (("block", "blocked"), ("insecure", "insecure")):
        for text in v1[kind]:
            flags.setdefault(_location(text), {})[flag] = True
    return [Registry(loc, loc, insecure=f.get("insecure", False),
                     blocked=f.get("blocked", False), origin=path)
            for loc, f in flags.items()]


# -- short names ---------------------------------------------------------------------------


@attrs.frozen
class _Unnormalized:
    """A reference as typed, before Docker Hub normalisation (``reference.Parse``)."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def fully_qualified(self) -> bool:
        return any(c in self.domain for c in ".:") or self.domain == "localhost"

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path


def _parse_unnormalized(value: str) -> _Unnormalized:
    match = _UNNORMALIZED_RE.match(value)
    if match is None:
        raise InvalidReferenceError(f"invalid reference format: {value!r}")
    domain, path, tag, digest = match.groups()
    parsed = _Unnormalized(domain or "", path, tag, digest)
    if len(parsed.repository) > 255:
        raise InvalidReferenceError("repository name must not be more than 255 characters")
    return parsed


def is_short_name(name: str) -> bool:
    """Whether ``name`` lacks a registry (c/image ``shortnames.IsShortName``): ``fedora``,
    ``library/fedora:39`` are short; ``quay.io/x``, ``localhost/x``, ``host:5000/x`` are
    not. An unparsable name is not a short name."""
    try:
        return not _parse_unnormalized(name).fully_qualified
    except InvalidReferenceError:
        return False


def _validate_alias_name(name: str) -> None:
    """The left side of an alias: a short repository name, no tag, no digest."""
    try:
        parsed = _parse_unnormalized(name)
    except InvalidReferenceError as exc:
        raise ShortNameError(f"cannot parse short name {name!r}: {exc}") from exc
    if parsed.digest:
        raise ShortNameError(f"invalid short name {name!r}: must not contain digest")
    if parsed.tag:
        raise ShortNameError(f"invalid short name {name!r}: must not contain tag")
    if parsed.fully_qualified:
        raise ShortNameError(f"invalid short name {name!r}: must not contain registry")


def _parse_alias_value(value: str) -> Reference:
    """The right side of an alias: ``registry/repository`` with neither tag nor digest,
    normalised (``docker.io/alpine`` is ``docker.io/library/alpine``)."""
    try:
        parsed = _parse_unnormalized(value)
    except InvalidReferenceError as exc:
        raise ShortNameError(f"parsing alias {value!r}: {exc}") from exc
    if parsed.digest:
        raise ShortNameError(f"invalid alias {value!r}: must not contain digest")
    if parsed.tag:
        raise ShortNameError(f"invalid alias {value!r}: must not contain tag")
    if not parsed.fully_qualified:
        raise ShortNameError(f"invalid alias {value!r}: must contain registry and repository")
    return Reference.parse(value)


def _aliases(table: Mapping[str, object], path: str) -> dict[str, ShortNameAlias]:
    """Validated aliases; every bad entry is reported, not just the first."""
    out: dict[str, ShortNameAlias] = {}
    problems: list[str] = []
    for name, value in table.items():
        if not isinstance(value, str):
            problems.append(f"alias {name!r} must be a string")
            continue
        try:
            _validate_alias_name(name)
            out[name] = ShortNameAlias(_parse_alias_value(value) if value else None, path)
        except ShortNameError as exc:
            problems.append(str(exc))
    if problems:
        raise _Invalid("; ".join(problems))
    return out


def short_name_aliases_path(env: Mapping[str, str] | None = None) -> Path:
    """The machine-written alias cache: ``/var/cache/containers/short-name-aliases.conf``
    for root, else under ``$XDG_CACHE_HOME`` (default ``$HOME/.cache``). As in c/image,
    ``$_CONTAINERS_ROOTLESS_UID`` overrides the effective user id."""
    variables = environ(env)
    try:
        euid = int(variables["_CONTAINERS_ROOTLESS_UID"])
    except (KeyError, ValueError):
        euid = os.geteuid()
    if euid == 0:
        return Path("/var/cache") / _ALIASES_FILE
    cache = variables.get("XDG_CACHE_HOME") or str(home_dir(env) / ".cache")
    return Path(cache) / _ALIASES_FILE


def _cache_path(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None) -> Path:
    return Path(path) if path is not None else short_name_aliases_path(env)


def _read_alias_cache(path: Path) -> tuple[dict[str, str], dict[str, ShortNameAlias]]:
    """The raw and the validated aliases of the cache file (missing: none), read under
    a shared lock when podman or we ever wrote it under one."""
    with locked(_lock_path(path), exclusive=False):
        return _read_alias_cache_unlocked(path)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _lookup_alias(repository: str, config: RegistriesConfig,
                  cache_path: Path) -> ShortNameAlias | None:
    """The cache file first (an empty value there hides the registries.conf alias), then
    the ``[aliases]`` of registries.conf."""
    _, cached = _read_alias_cache(cache_path)
    if repository in cached:
        return cached[repository]
    return config.aliases.get(repository)


Rule = Literal["fully-qualified", "alias", "search-registries", "user-selection"]


@attrs.frozen
class ShortNameResolution:
    """What a name resolves to. ``candidates`` are fully qualified, tagged (``latest``
    unless the input had a tag or digest) references to try in order. ``rule`` says how
    they were found; ``origin`` is the file of the alias or search list. When ``record``
    is true the user picked the single candidate and the caller should
    :func:`record_alias` ``short_name`` after pulling it successfully."""

    candidates: tuple[Reference, ...]
    rule: Rule
    short_name: str | None = None
    origin: str = ""
    record: bool = False

    @property
    def alias_used(self) -> bool:
        return self.rule == "alias"

    def description(self) -> str:
        """c/image ``Resolved.Description``: a line worth printing before pulling, or ``""``."""
        if self.rule == "alias":
            return f"Resolved {self.short_name!r} as an alias ({self.origin})"
        if self.rule == "search-registries":
            return (f"Resolving {self.short_name!r} using unqualified-search registries "
                    f"({self.origin})")
        return ""


def _with_input_suffix(ref: Reference, parsed: _Unnormalized) -> Reference:
    if parsed.tag:
        ref = ref.with_tag(parsed.tag)
    if parsed.digest:
        ref = Reference.parse(f"{ref}@{parsed.digest}")
    return ref.with_default_tag()


def _search_candidates(name: str, registries: Iterable[str]) -> list[Reference]:
    out = []
    for registry in registries:
        try:
            out.append(Reference.parse(f"{registry}/{name}").with_default_tag())
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"creating reference with unqualified-search "
                                        f"registry {registry!r}: {exc}") from exc
    return out


def resolve_short_name(name: str, config: RegistriesConfig, *,
                       aliases_cache_path: str | os.PathLike[str] | None = None,
                       env: Mapping[str, str] | None = None,
                       interactive: bool = False,
                       choose: Callable[[Sequence[Reference]], Reference] | None = None,
                       mode: ShortNameMode | None = None) -> ShortNameResolution:
    """Resolve ``name`` to the references to pull (c/image ``shortnames.Resolve``).

    A fully qualified name is returned as is. For a short name the tag and digest are set
    aside, an alias (cache file first, then ``[aliases]``) wins; otherwise each
    ``unqualified-search-registries`` entry gives a candidate. With several candidates,
    ``disabled`` mode returns them all; ``permissive`` and ``enforcing`` let the user
    ``choose`` one when ``interactive`` (default: a numbered prompt on stderr/stdin); not
    interactive, ``permissive`` returns them all and ``enforcing`` raises
    :class:`ShortNameError`. ``mode`` overrides ``short-name-mode``.
    """
    parsed = _parse_unnormalized(name)
    if parsed.fully_qualified:
        return ShortNameResolution((Reference.parse(name).with_default_tag(),),
                                   "fully-qualified")
    repository = parsed.repository
    alias = _lookup_alias(repository, config, _cache_path(aliases_cache_path, env))
    if alias is not None and alias.value is not None:
        return ShortNameResolution((_with_input_suffix(alias.value, parsed),), "alias",
                                   repository, alias.origin)
    if not config.unqualified_search_registries:
        where = (f"are defined in {config.search_origin!r}" if config.search_origin
                 else "are defined, and no containers-registries.conf(5) was found")
        raise ShortNameError(f"short-name {name!r} did not resolve to an alias and no "
                             f"unqualified-search registries {where}")
    candidates = _search_candidates(name, config.unqualified_search_registries)
    resolution = ShortNameResolution(tuple(candidates), "search-registries", repository,
                                     config.search_origin)
    effective = mode or config.short_name_mode
    if effective == "disabled" or len(candidates) == 1:
        return resolution
    if interactive:
        picked = (choose or _prompt)(candidates)
        if picked not in candidates:
            raise ShortNameError(f"{picked} is not one of the candidates for {name!r}")
        return ShortNameResolution((picked,), "user-selection", repository,
                                   config.search_origin, record=True)
    if effective == "enforcing":
        raise ShortNameError(
            f"short-name {name!r} is ambiguous ({', '.join(map(str, candidates))}) and "
            "short-name resolution is enforced without a way to prompt; use a fully "
            "qualified name or add an alias")
    return resolution


def _prompt(candidates: Sequence[Reference]) -> Reference:
    """The default ``choose``: a numbered list on stderr, the answer from stdin."""
    for number, candidate in enumerate(candidates, 1):
        print(f"  {number}) {candidate}", file=sys.stderr)
    print("Please select an image: ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip()
    if answer.isdigit() and 1 <= int(answer) <= len(candidates):
        return candidates[int(answer) - 1]
    raise ShortNameError("no image selected")


def local_candidates(name: str, config: RegistriesConfig, *,
                     aliases_cache_path: str | os.PathLike[str] | None = None,
                     env: Mapping[str, str] | None = None) -> list[Reference]:
    """Names to look for in local storage (c/image ``shortnames.ResolveLocally``): a fully
    qualified name as is; else the alias if any, ``localhost/<name>``, then each search
    registry."""
    parsed = _parse_unnormalized(name)
    if parsed.fully_qualified:
        return [Reference.parse(name).with_default_tag()]
    out = []
    alias = _lookup_alias(parsed.repository, config, _cache_path(aliases_cache_path, env))
    if alias is not None and alias.value is not None:
        out.append(_with_input_suffix(alias.value, parsed))
    out.extend(_search_candidates(name, ("localhost", *config.unqualified_search_registries)))
    return out


def _edit_alias_cache(path: Path, name: str, value: str | None) -> Path:
    with locked(_lock_path(path), exclusive=True):
        raw, _ = _read_alias_cache_unlocked(path)
        if value is not None:
            raw[name] = value
        elif name not in raw:
            raise ShortNameError(f"short-name alias {name!r} not found in {str(path)!r}: "
                                 "please check registries.conf files")
        else:
            del raw[name]
        lines = ["[aliases]"] + [f"  {_toml_string(k)} = {_toml_string(v)}"
                                 for k, v in sorted(raw.items())]
        atomic_write(path, ("\n".join(lines) + "\n").encode())
    return path


def _read_alias_cache_unlocked(path: Path) -> tuple[dict[str, str], dict[str, ShortNameAlias]]:
    text = _read_text(path, missing_ok=True, what="short-name aliases config file")
    if text is None:
        return {}, {}
    try:
        raw = _table(tomllib.loads(text).get("aliases", {}), "[aliases]")
        return ({k: v for k, v in raw.items() if isinstance(v, str)}, _aliases(raw, str(path)))
    except (tomllib.TOMLDecodeError, _Invalid) as exc:
        raise ConfigError(f"loading short-name aliases config file {str(path)!r}: "
                          f"{exc}") from exc


def _toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def record_alias(name: str, value: Reference | str, *,
                 aliases_cache_path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> Path:
    """Store ``name = value`` in the alias cache (c/image ``shortnames.Add``), replacing
    an earlier value; a tag or digest of a :class:`Reference` value is dropped. Returns
    the file written."""
    if not is_short_name(name):
        raise ShortNameError(f"{name!r} is not a short name")
    _validate_alias_name(name)
    text = value.name if isinstance(value, Reference) else value
    _parse_alias_value(text)
    return _edit_alias_cache(_cache_path(aliases_cache_path, env), name, text)


def remove_alias(name: str, *, aliases_cache_path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None) -> Path:
    """Remove ``name`` from the alias cache (c/image ``shortnames.Remove``); an alias that
    is not there raises :class:`ShortNameError` (registries.conf aliases are the user's
    to edit)."""
    if not is_short_name(name):
        raise ShortNameError(f"{name!r} is not a short name")
    _validate_alias_name(name)
    return _edit_alias_cache(_cache_path(aliases_cache_path, env), name, None)
