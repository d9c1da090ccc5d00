"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and Bearer tokens
(distribution's token protocol: anonymous or Basic-authenticated ``GET`` of the realm,
OAuth2 ``POST`` with a refresh token) cached per scope set until they expire.

One :class:`Authenticator` per registry endpoint is shared by every thread of a copy.
It only produces header values; :mod:`._http` decides which request may carry them (the
registry's own origin, never a redirect target).
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

import attrs
import httpx

from ...errors import AccessDeniedError, AuthenticationError, NetworkError, RegistryError
from ...sysconfig.auth import Credentials

__all__ = ["Authenticator", "Challenge", "parse_challenges"]

log = logging.getLogger(__name__)

#: containers/image: tokens are treated as valid for at least this long
_MIN_TOKEN_LIFETIME: Final = 60.0
_MAX_TOKEN_RESPONSE: Final = 1 << 20
_CLIENT_ID: Final = "ocistack"


@attrs.frozen
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: ``scheme`` in lower case and its
    parameters (``realm``, ``service``, ``scope``, ``error``)."""

    scheme: str
    params: dict[str, str] = attrs.field(factory=dict, hash=False)


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (RFC 9110 section 11.6.1): several
    challenges may share one header, parameter values may be quoted with escapes."""
    out: list[Challenge] = []
    for value in values:
        out.extend(_parse_one_header(value))
    return out


def _parse_one_header(value: str) -> list[Challenge]:
    out: list[Challenge] = []
    i, n = 0, len(value)
    current: Challenge | None = None
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        start = i
        while i < n and value[i] not in " \t,=":
            i += 1
        token = value[start:i]
        if not token:
            break
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == "=" and current is not None:
            # a parameter of the current challenge
            j += 1
            while j < n and value[j] in " \t":
                j += 1
            if j < n and value[j] == '"':
                j += 1
                chars: list[str] = []
                while j < n and value[j] != '"':
                    if value[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(value[j])
                    j += 1
                j += 1
                param_value = "".join(chars)
            else:
                vstart = j
                while j < n and value[j] not in " \t,":
                    j += 1
                param_value = value[vstart:j]
            current.params[token.lower()] = param_value
            i = j
        else:
            current = Challenge(token.lower())
            out.append(current)
    return out


@attrs.define
class _Token:
    value: str = attrs.field(repr=False)
    expires: float


def scope_for(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


class Authenticator:
    """Authorization header values for one registry.

    ``fetch`` performs a token request (it is :meth:`._http.RegistryClient.token_request`,
    which applies the retry policy and never follows redirects with credentials).
    """

    def __init__(self, registry: str, credentials: Credentials | None,
                 registry_token: str | None,
                 fetch: Callable[[str, str, dict[str, str], dict[str, str] | None,
                                  tuple[str, str] | None], httpx.Response]) -> None:
        self.registry = registry
        self._credentials = credentials
        self._fixed_token = registry_token
        self._fetch = fetch
        self._lock = threading.Lock()
        self._challenges: list[Challenge] = []
        self._tokens: dict[frozenset[str], _Token] = {}
        self._refresh_token = credentials.identity_token if credentials else ""
        # one lock per scope set: concurrent threads wait for one token request
        self._scope_locks: dict[frozenset[str], threading.Lock] = {}

    def __repr__(self) -> str:
        return f"<Authenticator {self.registry} challenges={[c.scheme for c in self._challenges]}>"

    @property
    def has_credentials(self) -> bool:
        return self._credentials is not None or self._fixed_token is not None

    def set_challenges(self, challenges: list[Challenge]) -> None:
        with self._lock:
            self._challenges = [c for c in challenges if c.scheme in ("bearer", "basic")]

    @property
    def scheme(self) -> str | None:
        with self._lock:
            return self._challenges[0].scheme if self._challenges else None

    def header(self, scopes: frozenset[str]) -> str | None:
        """The ``Authorization`` value for a request needing ``scopes``, or ``None``."""
        if self._fixed_token is not None:
            return f"Bearer {self._fixed_token}"
        with self._lock:
            challenge = next(iter(self._challenges), None)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self._credentials
            if creds is None:
                return None
            raw = f"{creds.username}:{creds.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return "Bearer " + self._token(challenge, scopes)

    def invalidate(self, scopes: frozenset[str]) -> None:
        """Forget the cached token for ``scopes`` (the registry refused it)."""
        with self._lock:
            self._tokens.pop(scopes, None)

    def _token(self, challenge: Challenge, scopes: frozenset[str]) -> str:
        with self._lock:
            token = self._tokens.get(scopes)
            if token is not None and token.expires > time.monotonic():
                return token.value
            scope_lock = self._scope_locks.setdefault(scopes, threading.Lock())
        with scope_lock:
            with self._lock:
                token = self._tokens.get(scopes)
                if token is not None and token.expires > time.monotonic():
                    return token.value
            token = self._request_token(challenge, scopes)
            with self._lock:
                self._tokens[scopes] = token
            return token.value

    def _request_token(self, challenge: Challenge, scopes: frozenset[str]) -> _Token:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthenticationError(
                f"{self.registry}: bearer challenge without a realm")
        if not realm.startswith(("https://", "http://")):
            raise AuthenticationError(f"{self.registry}: token realm is not an http(s) URL")
        service = challenge.params.get("service", "")
        creds = self._credentials
        if self._refresh_token:
            form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token,
                    "client_id": _CLIENT_ID, "scope": " ".join(sorted(scopes))}
            if service:
                form["service"] = service
            response = self._fetch("POST", realm, {}, form, None)
            if response.status_code == 404:
                response = self._get_token(realm, service, scopes, creds)
        else:
            response = self._get_token(realm, service, scopes, creds)
        if response.status_code in (401, 403):
            who = "the credentials" if creds else "anonymous access"
            cls = AuthenticationError if response.status_code == 401 else AccessDeniedError
            raise cls(f"{self.registry}: the token server refused {who} "
                      f"(HTTP {response.status_code})", status=response.status_code)
        if response.status_code != 200:
            raise RegistryError(f"{self.registry}: token server answered HTTP "
                                f"{response.status_code}", status=response.status_code)
        return self._parse_token(response.content)

    def _get_token(self, realm: str, service: str, scopes: frozenset[str],
                   creds: Credentials | None) -> httpx.Response:
        params: dict[str, str] = {}
        if service:
            params["service"] = service
        basic = None
        if creds is not None and not creds.identity_token:
            params["account"] = creds.username
            basic = (creds.username, creds.password)
        # merge, not replace: a realm may carry its own query
        url = httpx.URL(realm).copy_merge_params(params)
        if scopes:
            url = url.copy_merge_params([("scope", s) for s in sorted(scopes)])
        return self._fetch("GET", str(url), {}, None, basic)

    def _parse_token(self, body: bytes) -> _Token:
        if len(body) > _MAX_TOKEN_RESPONSE:
            raise AuthenticationError(f"{self.registry}: token response too large")
        try:
            data = json.loads(body)
        except ValueError:
            raise AuthenticationError(
                f"{self.registry}: token response is not JSON") from None
        if not isinstance(data, dict):
            raise AuthenticationError(f"{self.registry}: token response is not an object")
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthenticationError(f"{self.registry}: token response has no token")
        lifetime = data.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, (int, float)) else 0.0
        seconds = max(seconds, _MIN_TOKEN_LIFETIME)
        issued = data.get("issued_at")
        age = 0.0
        if isinstance(issued, str):
            try:
                when = datetime.datetime.fromisoformat(issued.replace("Z", "+00:00"))
                age = max(0.0, time.time() - when.timestamp())
            except ValueError:
                age = 0.0
        refresh = data.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self._refresh_token = refresh
        return _Token(value, time.monotonic() + seconds - min(age, seconds / 2))


def wrap_network_error(registry: str, exc: httpx.HTTPError) -> NetworkError:
    """A :class:`NetworkError` naming the registry and the kind of failure (never a URL
    with query parameters, which may carry upload state)."""
    return NetworkError(f"{registry}: {type(exc).__name__}: {_short(exc)}")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
