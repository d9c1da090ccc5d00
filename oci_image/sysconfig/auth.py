"""Registry credentials: the :class:`Credentials` value, lookup in auth files and
credential helpers, and ``login``/``logout`` edits of auth.json, as containers/image 5.23
does them (``pkg/docker/config/config.go``, ``docs/containers-auth.json.5.md``).

Lookup (:func:`lookup_credentials`) asks each entry of ``helpers`` in order (registries.conf
``credential-helpers``; ``containers-auth.json`` means the auth files, anything else runs
``docker-credential-<name>`` for the registry host). The auth files, in order:

1. ``auth_file`` if given, else ``$REGISTRY_AUTH_FILE``, else
   ``$XDG_RUNTIME_DIR/containers/auth.json`` (skipped when ``$XDG_RUNTIME_DIR`` names a
   missing directory), else ``/run/containers/<uid>/auth.json``;
2. ``$XDG_CONFIG_HOME/containers/auth.json`` (default ``~/.config``);
3. ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``;
4. ``~/.dockercfg`` (legacy: the top level is the ``auths`` map).

An explicit path (``auth_file`` or ``$REGISTRY_AUTH_FILE``) is the only file read, as in
c/image 5.24 and later; c/image 5.23 (skopeo 1.9.3) still went on with files 2-4.

In each file a ``credHelpers`` entry for the registry host wins; then the most specific
``auths`` key (``host/ns/repo``, ``host/ns``, ``host``; only ``host`` in the legacy file);
then any key that normalises to the host (``https://index.docker.io/v1/`` and
``registry-1.docker.io`` are ``docker.io``; URL keys lose their scheme and path). ``auth``
is base64 ``user:password``; ``identitytoken`` is used along with it.

Differences from c/image, on purpose:

* docker's global ``credsStore`` is honoured (c/image ignores it, containers/image#111):
  after ``credHelpers`` and before ``auths`` the store's helper is asked (Docker Hub as
  ``https://index.docker.io/v1/``, as docker does); a store helper that is not installed
  is skipped, so a config.json copied from another machine does not break pulls.
* ``login``/``logout`` keep every other key of the file (c/image rewrites it with only
  ``auths`` and ``credHelpers``), and ``logout`` writes nothing when nothing changed.

Secrets never appear in a ``repr``, a log line or an exception message; a helper's error
output is cut to one line and withheld when it looks like JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from ..errors import ConfigError, CredentialHelperError
from ._env import atomic_write, environ, home_dir
from .registries import AUTH_FILE_HELPER

__all__ = [
    "AUTH_FILE_HELPER",
    "AuthFile",
    "Credentials",
    "auth_file_chain",
    "default_auth_file",
    "login",
    "logout",
    "lookup_credentials",
]

log = logging.getLogger(__name__)

_NOT_FOUND_MESSAGE: Final = "credentials not found in native keychain"
_TOKEN_USERNAME: Final = "<token>"  # noqa: S105 -- the marker user name, not a secret
_DOCKER_HUB_SERVER: Final = "https://index.docker.io/v1/"
_HELPER_TIMEOUT: Final = 120.0


@attrs.frozen
class Credentials:
    """A user name and secret for one registry. ``repr`` never shows the secrets.

    ``identity_token`` is an OAuth2 refresh token (auth.json ``identitytoken``); when it is
    set, ``password`` is unused and ``username`` is usually ``"<token>"``.
    """

    username: str
    password: str = attrs.field(default="", repr=False)
    identity_token: str = attrs.field(default="", repr=False)

    @classmethod
    def parse(cls, value: str) -> Credentials:
        """``USER[:PASSWORD]`` as skopeo's ``--creds`` takes it."""
        user, _, password = value.partition(":")
        if not user:
            raise ConfigError("credentials must be USERNAME[:PASSWORD] with a user name")
        return cls(user, password)


@attrs.frozen
class AuthFile:
    """One file of the lookup chain; ``legacy`` is the ``~/.dockercfg`` format."""

    path: Path
    legacy: bool = False


# -- where the files are -----------------------------------------------------------------


def _primary(auth_file: str | os.PathLike[str] | None,
             env: Mapping[str, str] | None) -> tuple[Path, bool]:
    """The first file of the chain and whether the user named it. Raises ConfigError when
    ``$XDG_RUNTIME_DIR`` names a directory that does not exist."""
    variables = environ(env)
    explicit = os.fspath(auth_file) if auth_file else variables.get("REGISTRY_AUTH_FILE", "")
    if explicit:
        return Path(explicit), True
    runtime_dir = variables.get("XDG_RUNTIME_DIR", "")
    if runtime_dir:
        try:
            os.stat(runtime_dir)
        except FileNotFoundError:
            raise ConfigError(
                f"{runtime_dir!r} directory set by $XDG_RUNTIME_DIR does not exist. Either "
                "create the directory or unset $XDG_RUNTIME_DIR.") from None
        except OSError:
            pass  # let the caller fail on the file itself
        return Path(runtime_dir) / "containers" / "auth.json", False
    return Path(f"/run/containers/{os.getuid()}/auth.json"), False


def default_auth_file(*, auth_file: str | os.PathLike[str] | None = None,
                      env: Mapping[str, str] | None = None) -> Path:
    """The file :func:`login` and :func:`logout` edit: the first file of the chain."""
    return _primary(auth_file, env)[0]


def auth_file_chain(*, auth_file: str | os.PathLike[str] | None = None,
                    env: Mapping[str, str] | None = None) -> list[AuthFile]:
    """The files :func:`lookup_credentials` reads, in order (some may not exist)."""
    files: list[AuthFile] = []
    try:
        primary, explicit = _primary(auth_file, env)
    except ConfigError as exc:
        log.warning("%s: trying without it, in case the image is public", exc)
        explicit = False
    else:
        files.append(AuthFile(primary))
        if explicit:
            return files
    variables = environ(env)
    home = home_dir(env)
    config_home = Path(variables.get("XDG_CONFIG_HOME") or home / ".config")
    files.append(AuthFile(config_home / "containers" / "auth.json"))
    docker_config = variables.get("DOCKER_CONFIG", "")
    files.append(AuthFile(Path(docker_config) / "config.json" if docker_config
                          else home / ".docker" / "config.json"))
    files.append(AuthFile(home / ".dockercfg", legacy=True))
    return files


# -- keys -------------------------------------------------------------------------------------


def _validate_key(key: str) -> bool:
    """c/image ``validateKey``: ``host[:port][/namespace...]`` without scheme, tag or
    digest. Returns whether the key is namespaced."""
    if not key:
        raise ConfigError("empty registry key")
    if key.startswith(("http://", "https://")):
        raise ConfigError(f"key {key} contains http[s]:// prefix")
    if "@" in key:
        raise ConfigError(f"key {key} contains a '@' character")
    host, slash, rest = key.partition("/")
    if slash and ":" in rest:
        raise ConfigError(f"key {key} contains a ':' character after host[:port]")
    if not host or (slash and not rest):
        raise ConfigError(f"key {key} is not a registry, namespace or repository")
    return bool(slash)


def _keys_for(key: str) -> list[str]:
    """``quay.io/ns/repo`` -> ``quay.io/ns/repo``, ``quay.io/ns``, ``quay.io``."""
    parts = key.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _normalize_registry(registry: str) -> str:
    return "index.docker.io" if registry in ("registry-1.docker.io", "docker.io") else registry


def _normalize_file_key(key: str, legacy: bool) -> str:
    stripped = key.removeprefix("http://").removeprefix("https://")
    if legacy or stripped != key:
        stripped = stripped.split("/", 1)[0]
    return _normalize_registry(stripped)


# -- reading files --------------------------------------------------------------------------


@attrs.frozen
class _AuthFileData:
    auths: dict[str, dict[str, object]] = attrs.field(factory=dict)
    cred_helpers: dict[str, str] = attrs.field(factory=dict)
    creds_store: str = ""


def _field_key(obj: Mapping[str, object], name: str) -> str:
    """The key Go's encoding/json would decode into field ``name``: case-insensitive,
    the last of several."""
    found = name
    for key in obj:
        if key.lower() == name.lower():
            found = key
    return found


def _field(obj: Mapping[str, object], name: str) -> object:
    return obj.get(_field_key(obj, name))


def _load_json_object(path: Path) -> dict[str, object] | None:
    """The JSON object in ``path``, ``None`` when the file does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"reading JSON file {str(path)!r}: {exc.strerror}") from exc
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"reading JSON file {str(path)!r}: not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"unmarshaling JSON at {str(path)!r}: {exc.msg} at line "
                          f"{exc.lineno} column {exc.colno}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"unmarshaling JSON at {str(path)!r}: not a JSON object")
    return document


def _auth_entries(value: object, path: Path) -> dict[str, dict[str, object]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"unmarshaling JSON at {str(path)!r}: \"auths\" is not an object")
    entries: dict[str, dict[str, object]] = {}
    for key, entry in value.items():
        entry = {} if entry is None else entry
        if not isinstance(entry, dict) or any(
                not isinstance(_field(entry, f), str | None) for f in ("auth", "identitytoken")):
            raise ConfigError(f"unmarshaling JSON at {str(path)!r}: the entry for {key!r} "
                              "is not an object with string fields")
        entries[key] = entry
    return entries


def _read_auth_file(auth_file: AuthFile) -> _AuthFileData:
    document = _load_json_object(auth_file.path)
    if document is None:
        return _AuthFileData()
    if auth_file.legacy:
        return _AuthFileData(_auth_entries(document, auth_file.path))
    helpers = _field(document, "credHelpers") or {}
    if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
        raise ConfigError(f"unmarshaling JSON at {str(auth_file.path)!r}: \"credHelpers\" "
                          "is not an object of strings")
    store = _field(document, "credsStore")
    return _AuthFileData(_auth_entries(_field(document, "auths"), auth_file.path), helpers,
                         store if isinstance(store, str) else "")


def _decode_entry(path: Path, key: str, entry: Mapping[str, object]) -> Credentials | None:
    """c/image ``decodeDockerAuth``: no ``user:password`` in ``auth`` means no credentials
    (docker writes empty entries next to credential helpers), identity token or not."""
    text = _field(entry, "auth") or ""
    assert isinstance(text, str)
    try:
        decoded = base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
        user, colon, password = decoded.decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigError(f"the \"auth\" field of {key!r} in {str(path)!r} is not base64 "
                          "of UTF-8 text") from None
    if not colon:
        if decoded:
            log.warning('the "auth" field of %r in %s has no ":"; ignoring it', key, path)
        return None
    token = _field(entry, "identitytoken") or ""
    assert isinstance(token, str)
    return Credentials(user, password.strip("\x00"), token)


def _find_in_file(key: str, host: str, auth_file: AuthFile,
                  env: Mapping[str, str] | None) -> Credentials | None:
    data = _read_auth_file(auth_file)
    path = auth_file.path
    if host in data.cred_helpers:
        log.debug("looking up %s in credential helper %s (credHelpers of %s)",
                  host, data.cred_helpers[host], path)
        return _helper_get(data.cred_helpers[host], host, env)
    if data.creds_store:
        server = _DOCKER_HUB_SERVER if _normalize_registry(host) == "index.docker.io" else host
        try:
            found = _helper_get(data.creds_store, server, env)
        except _HelperMissing:
            log.debug("credsStore helper %s of %s is not installed", data.creds_store, path)
        else:
            if found is not None:
                return found
    for candidate in (_keys_for(key) if not auth_file.legacy else [host]):
        if candidate in data.auths:
            return _decode_entry(path, candidate, data.auths[candidate])
    wanted = _normalize_registry(host)
    for file_key, entry in data.auths.items():
        if _normalize_file_key(file_key, auth_file.legacy) == wanted:
            return _decode_entry(path, file_key, entry)
    return None


def lookup_credentials(registry: str, repository: str | None = None, *,
                       auth_file: str | os.PathLike[str] | None = None,
                       helpers: Sequence[str] = (AUTH_FILE_HELPER,),
                       env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for ``registry`` (``host[:port]``, or already ``host/ns/...``) and
    optionally ``repository`` under it, or ``None``.

    Each of ``helpers`` is asked in order and the first credentials win. A helper that
    fails (a malformed file, a failing ``docker-credential-*``) does not stop the next
    one; when none has credentials the failure is raised (:class:`ConfigError` or
    :class:`CredentialHelperError`).
    """
    key = f"{registry}/{repository}" if repository else registry
    _validate_key(key)
    host = key.split("/", 1)[0]
    failures: list[ConfigError] = []
    for helper in helpers:
        try:
            if helper == AUTH_FILE_HELPER:
                found = None
                for auth_file_ in auth_file_chain(auth_file=auth_file, env=env):
                    found = _find_in_file(key, host, auth_file_, env)
                    if found is not None:
                        log.debug("credentials for %s found in %s", key, auth_file_.path)
                        break
            else:
                found = _helper_get(helper, host, env)
        except ConfigError as exc:
            log.debug("looking up credentials for %s with %s failed: %s", key, helper, exc)
            failures.append(exc)
            continue
        if found is not None:
            return found
    if len(failures) == 1:
        raise failures[0]
    if failures:
        raise type(failures[0])("; ".join(str(f) for f in failures)) from failures[0]
    return None


# -- credential helpers -----------------------------------------------------------------------


class _HelperMissing(CredentialHelperError):
    """``docker-credential-<name>`` is not on PATH."""


def _run_helper(name: str, action: str, data: bytes,
                env: Mapping[str, str] | None) -> tuple[int, bytes]:
    """Run ``docker-credential-<name> <action>`` with ``data`` on stdin, in ``env``."""
    program = f"docker-credential-{name}"
    if not name or "/" in name or name in (".", ".."):
        raise CredentialHelperError(f"invalid credential helper name {name!r}")
    variables = environ(env)
    executable = shutil.which(program, path=variables.get("PATH", os.defpath))
    if executable is None:
        raise _HelperMissing(f"credential helper {program} is not installed (not on PATH)")
    try:
        result = subprocess.run([executable, action], input=data, capture_output=True,
                                env=None if env is None else dict(env),
                                timeout=_HELPER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise CredentialHelperError(
            f"{program} {action} did not finish in {_HELPER_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise CredentialHelperError(f"running {program}: {exc.strerror}") from None
    return result.returncode, result.stdout


def _helper_output(out: bytes, secrets: Sequence[str] = ()) -> str:
    """A helper's error text fit for a message: one line, short, never JSON (which may
    hold a secret), known secrets masked."""
    text = out.decode("utf-8", "replace").strip()
    if not text:
        return "no output"
    if text.startswith(("{", "[")):
        return "output withheld"
    line = text.splitlines()[0][:200]
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    return line


def _helper_get(name: str, server: str, env: Mapping[str, str] | None) -> Credentials | None:
    status, out = _run_helper(name, "get", server.encode(), env)
    if status != 0:
        if out.decode("utf-8", "replace").strip() == _NOT_FOUND_MESSAGE:
            log.debug("not logged in to %s with credential helper %s", server, name)
            return None
        raise CredentialHelperError(
            f"error getting credentials for {server} from docker-credential-{name} "
            f"(exit status {status}): {_helper_output(out)}")
    try:
        answer, _ = json.JSONDecoder().raw_decode(out.decode("utf-8").lstrip())
    except (UnicodeDecodeError, json.JSONDecodeError):
        answer = None
    if not isinstance(answer, dict):
        raise CredentialHelperError(
            f"docker-credential-{name} answered the request for {server} with something "
            "other than a JSON object")
    username, secret = _field(answer, "Username") or "", _field(answer, "Secret") or ""
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialHelperError(
            f"docker-credential-{name} answered the request for {server} with a "
            "non-string Username or Secret")
    if username == _TOKEN_USERNAME:
        return Credentials(_TOKEN_USERNAME, identity_token=secret)
    if not username and not secret:
        return None
    return Credentials(username, secret)


def _helper_store(name: str, server: str, credentials: Credentials,
                  env: Mapping[str, str] | None) -> None:
    """docker's native store: an identity token is stored as user ``<token>``."""
    username, secret = credentials.username, credentials.password
    if credentials.identity_token:
        username, secret = _TOKEN_USERNAME, credentials.identity_token
    payload = json.dumps({"ServerURL": server, "Username": username, "Secret": secret})
    status, out = _run_helper(name, "store", payload.encode(), env)
    if status != 0:
        raise CredentialHelperError(
            f"error storing credentials for {server} in docker-credential-{name} "
            f"(exit status {status}): {_helper_output(out, (secret, credentials.password))}")


def _helper_erase(name: str, server: str, env: Mapping[str, str] | None) -> bool:
    """Erase ``server``; ``False`` when the helper had nothing for it."""
    status, out = _run_helper(name, "erase", server.encode(), env)
    if status == 0:
        return True
    if out.decode("utf-8", "replace").strip() == _NOT_FOUND_MESSAGE:
        return False
    raise CredentialHelperError(
        f"error erasing credentials for {server} from docker-credential-{name} "
        f"(exit status {status}): {_helper_output(out)}")


# -- login / logout ---------------------------------------------------------------------------


def _editable(path: Path) -> tuple[dict[str, object], str, dict[str, object], str]:
    """The document of the file to edit, with its ``auths`` and ``credHelpers`` objects
    (created empty when missing) and the keys they live under."""
    document = _load_json_object(path) or {}
    parts = []
    for name in ("auths", "credHelpers"):
        key = _field_key(document, name)
        value = document.get(key)
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"unmarshaling JSON at {str(path)!r}: {name!r} is not an object")
        parts.append((key, value))
    (auths_key, auths), (helpers_key, helpers) = parts
    _auth_entries(auths, path)
    if not all(isinstance(v, str) for v in helpers.values()):
        raise ConfigError(f"unmarshaling JSON at {str(path)!r}: \"credHelpers\" is not an "
                          "object of strings")
    document[auths_key] = auths
    return document, auths_key, helpers, helpers_key


def _write(path: Path, document: Mapping[str, object]) -> None:
    atomic_write(path, (json.dumps(document, indent="\t", ensure_ascii=False) + "\n").encode())


def login(registry: str, credentials: Credentials, *,
          auth_file: str | os.PathLike[str] | None = None,
          env: Mapping[str, str] | None = None) -> Path:
    """Store ``credentials`` for ``registry`` (``host[:port]`` or ``host/ns/repo``) in the
    first auth file of the chain and return its path (c/image ``SetCredentials`` with the
    default ``credential-helpers``).

    A ``credHelpers`` entry of that file for ``registry`` stores through the helper
    instead (namespaced keys cannot be). The file is written atomically with mode 0600
    (new parent directories 0700) and keeps every other key.
    """
    namespaced = _validate_key(registry)
    path = default_auth_file(auth_file=auth_file, env=env)
    document, auths_key, helpers, _ = _editable(path)
    helper = helpers.get(registry)
    if isinstance(helper, str):
        if namespaced:
            raise ConfigError(f"namespaced key {registry} is not supported for credential "
                              f"helper {helper}")
        _helper_store(helper, registry, credentials, env)
        return path
    auth = f"{credentials.username}:{credentials.password}".encode()
    entry: dict[str, object] = {"auth": base64.b64encode(auth).decode("ascii")}
    if credentials.identity_token:
        entry["identitytoken"] = credentials.identity_token
    auths = document[auths_key]
    assert isinstance(auths, dict)
    auths[registry] = entry
    _write(path, document)
    return path


def logout(registry: str | None = None, *, auth_file: str | os.PathLike[str] | None = None,
           all: bool = False, env: Mapping[str, str] | None = None) -> bool:
    """Remove the credentials for ``registry`` (exactly that key), or with ``all=True``
    every entry and every ``credHelpers`` entry (erasing their helpers' credentials), from
    the first auth file of the chain (c/image ``RemoveAuthentication`` /
    ``RemoveAllAuthentication``). Returns whether anything was removed."""
    if all == bool(registry):
        raise ConfigError("logout takes a registry or all=True, not both")
    path = default_auth_file(auth_file=auth_file, env=env)
    if not path.exists():
        return False
    document, auths_key, helpers, helpers_key = _editable(path)
    auths = document[auths_key]
    assert isinstance(auths, dict)
    if not registry:
        removed = bool(auths) or bool(helpers)
        for host, helper in helpers.items():
            assert isinstance(helper, str)
            _helper_erase(helper, host, env)
        document[auths_key] = {}
        document.pop(helpers_key, None)
    else:
        namespaced = _validate_key(registry)
        removed = False
        helper = helpers.get(registry)
        if isinstance(helper, str) and not namespaced:
            removed = _helper_erase(helper, registry, env)
        if registry in auths:
            del auths[registry]
            removed = True
        else:
            return removed
    _write(path, document)
    return removed
