"""One registry endpoint over HTTP: TLS settings, the ``/v2/`` ping that picks https or
(for insecure registries) http, authentication, redirects, retries and the mapping of
registry error bodies to typed exceptions.

Every request of every kind (manifest, blob, token, upload) goes through
:meth:`RegistryClient.send`, which applies the same policy:

* ``Authorization`` is attached only to requests for the registry's own origin (scheme,
  host and port of the ping); redirects are followed here, by hand, and a redirect to any
  other origin (a storage backend) gets no credentials;
* 401 answers are handled once per request: a scope upgrade (``insufficient_scope``), or
  a fresh token when a cached one was refused; a second 401 is an
  :class:`AuthenticationError`;
* 408/429/500/502/503/504 answers, connection failures and timeouts are retried with
  exponential backoff and jitter (or the fixed ``retry_delay``), honouring
  ``Retry-After``, at most ``retry_times`` times per request.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Final

import httpx

from ... import __version__
from ...errors import (
    TRANSIENT_STATUSES,
    AccessDeniedError,
    AuthenticationError,
    BlobUnknownError,
    ManifestUnknownError,
    NameUnknownError,
    NetworkError,
    RegistryError,
    TooManyRequestsError,
)
from ...interfaces import RegistryOptions
from ...sysconfig.auth import Credentials
from ...sysconfig.certs import tls_context
from ._auth import Authenticator, parse_challenges, wrap_network_error
from ._net import make_transport

__all__ = ["RegistryClient", "raise_for_status"]

log = logging.getLogger(__name__)

RETRY_STATUSES: Final = TRANSIENT_STATUSES
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 10
_MAX_ERROR_BODY: Final = 1 << 20

#: a request body: bytes, or a factory of a fresh iterator for every attempt
Body = bytes | Callable[[], Iterator[bytes]] | None


def endpoint_host(host: str) -> str:
    """The network host for a reference domain (``docker.io`` is served by
    ``registry-1.docker.io``)."""
    return "registry-1.docker.io" if host in ("docker.io", "index.docker.io") else host


class RegistryClient:
    """HTTP access to one registry host, shared by the threads of a copy."""

    def __init__(self, host: str, options: RegistryOptions, *, insecure: bool,
                 credentials: Credentials | None) -> None:
        self.host = host
        self.options = options
        self.insecure = insecure
        self._net_host = endpoint_host(host)
        # certs.d is looked up by the reference's domain (docker.io), as containers/image
        verify: ssl.SSLContext = tls_context(
            host, cert_dir=options.cert_dir, certs_d_dirs=options.certs_d_dirs,
            verify=not insecure)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        self._http = httpx.Client(
            transport=make_transport(verify, limits), follow_redirects=False,
            trust_env=False, timeout=httpx.Timeout(options.timeout, read=options.read_timeout),
            # blobs are compressed already; a proxy's Content-Encoding would change the
            # bytes we hash, so ask for none
            headers={"User-Agent": options.user_agent or f"ocistack/{__version__}",
                     "Accept-Encoding": "identity"})
        self.auth = Authenticator(host, None if options.no_credentials else credentials,
                                  options.registry_token, self._token_request)
        self._base: str | None = None
        self._ping_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RegistryClient {self.host} base={self._base}>"

    def close(self) -> None:
        self._http.close()

    # -- endpoint discovery -------------------------------------------------------------

    @property
    def base(self) -> str:
        """``https://host`` or ``http://host``, decided by the first ping."""
        if self._base is None:
            self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> None:
        """``GET /v2/``: pick the scheme and learn the authentication challenges."""
        with self._ping_lock:
            if self._base is not None:
                return
            schemes = ["https", "http"] if self.insecure else ["https"]
            errors: list[str] = []
            for scheme in schemes:
                base = f"{scheme}://{self._net_host}"
                # with a plain-HTTP fallback, one https probe is enough (containers/image)
                probe_only = scheme == "https" and len(schemes) > 1
                try:
                    response = self._send_with_retries(
                        "GET", f"{base}/v2/", {}, None, None, allow_auth=False,
                        retries=0 if probe_only else None)
                except NetworkError as exc:
                    errors.append(f"{scheme}: {exc}")
                    continue
                response.close()
                if response.status_code not in (200, 401):
                    errors.append(f"{scheme}: /v2/ answered HTTP {response.status_code}")
                    continue
                self.auth.set_challenges(
                    parse_challenges(response.headers.get_list("www-authenticate")))
                self._base = base
                return
            raise NetworkError(f"{self.host}: cannot reach the registry ({'; '.join(errors)})")

    # -- requests -----------------------------------------------------------------------

    def send(self, method: str, path: str, *, scopes: frozenset[str],
             headers: Mapping[str, str] | None = None, content: Body = None,
             stream: bool = False, retry: bool = True,
             credentials: bool = True) -> httpx.Response:
        """Send a request to ``path`` (relative to the endpoint, or an absolute URL the
        registry gave us, such as an upload ``Location``). Redirects are followed;
        the final response is returned whatever its status (callers map errors with
        :func:`raise_for_status`). With ``stream`` the body is left unread. Without
        ``retry`` a failure is raised at once (upload bodies, which the caller resends
        from a known offset). Without ``credentials`` nothing is ever authenticated
        (non-distributable layers fetched from their own URLs)."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        hdrs = dict(headers or {})
        refreshed = False
        upgraded = False
        while True:
            response = self._send_with_retries(method, url, hdrs, content, scopes,
                                               allow_auth=credentials, stream=stream,
                                               retries=None if retry else 0)
            if response.status_code != 401 or self.options.registry_token is not None \
                    or not credentials or _origin(str(response.url)) != _origin(self.base):
                # challenges are learnt from the registry itself only, never from a
                # redirect target or a foreign URL (which could name its own realm)
                return response
            if not retry and content is not None and not isinstance(content, bytes):
                # a one-pass body is spent: renew the token and let the caller start over
                self.auth.invalidate(scopes)
                _discard(response)
                raise NetworkError(f"{self.host}: authorization expired while sending data")
            challenges = parse_challenges(response.headers.get_list("www-authenticate"))
            bearer = next((c for c in challenges if c.scheme == "bearer"), None)
            if self.auth.scheme is None and challenges:
                # registries that did not challenge the ping
                self.auth.set_challenges(challenges)
                if not refreshed:
                    refreshed = True
                    _discard(response)
                    continue
            if bearer is not None and bearer.params.get("error") == "insufficient_scope" \
                    and bearer.params.get("scope") and not upgraded:
                new = frozenset(bearer.params["scope"].split(" "))
                if not new <= scopes:
                    upgraded = True
                    scopes = scopes | new
                    _discard(response)
                    continue
            if self.auth.scheme == "bearer" and not refreshed:
                # a cached token the registry refused (expired, revoked): one fresh try
                refreshed = True
                self.auth.invalidate(scopes)
                _discard(response)
                continue
            if bearer is not None and bearer.params.get("error") == "insufficient_scope" \
                    and self.auth.has_credentials:
                # authenticated, and the token server gave fewer rights than asked for
                _discard(response)
                raise AccessDeniedError(
                    f"{self.host}: access to {bearer.params.get('scope') or 'this resource'}"
                    f" denied for these credentials (insufficient_scope)", status=401,
                    codes=("DENIED",))
            return response

    def _send_with_retries(self, method: str, url: str, headers: dict[str, str],
                           content: Body, scopes: frozenset[str] | None, *,
                           allow_auth: bool, stream: bool = False,
                           retries: int | None = None) -> httpx.Response:
        attempts = max(0, self.options.retry_times if retries is None else retries) + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._send_following(method, url, headers, content, scopes,
                                                allow_auth=allow_auth, stream=stream)
            except httpx.HTTPError as exc:
                if _is_certificate_error(exc) or last:
                    error = wrap_network_error(self.host, exc)
                    if "WRONG_VERSION_NUMBER" in str(error).upper():
                        error.args = (f"{error} (the server does not speak TLS: plain HTTP "
                                      f"needs --tls-verify=false or insecure = true in "
                                      f"registries.conf)",)
                    raise error from exc
                delay = self.backoff(attempt, None)
                log.info("%s %s: %s; retrying in %.1fs", method, self.host,
                         type(exc).__name__, delay)
                time.sleep(delay)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                _discard(response)
                delay = self.backoff(attempt, retry_after)
                log.info("%s %s: HTTP %d; retrying in %.1fs", method, self.host,
                         response.status_code, delay)
                time.sleep(delay)
                continue
            return response
        raise AssertionError("unreachable")

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        opts = self.options
        if retry_after is not None:
            return min(max(retry_after, 0.0), opts.retry_max_delay)
        if opts.retry_delay is not None:
            return opts.retry_delay
        ceiling = min(opts.retry_base_delay * 2.0 ** attempt, opts.retry_max_delay)
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    def _send_following(self, method: str, url: str, headers: dict[str, str],
                        content: Body, scopes: frozenset[str] | None, *,
                        allow_auth: bool, stream: bool) -> httpx.Response:
        origin = _origin(url) if self._base is None else _origin(self._base)
        for _ in range(_MAX_REDIRECTS + 1):
            hdrs = dict(headers)
            if allow_auth and scopes is not None and _origin(url) == origin:
                value = self.auth.header(scopes)
                if value is not None:
                    hdrs["Authorization"] = value
            body = content() if callable(content) else content
            try:
                request = self._http.build_request(method, url, headers=hdrs, content=body)
            except httpx.InvalidURL as exc:
                raise RegistryError(f"{self.host}: invalid URL: {exc}") from None
            response = self._http.send(request, stream=True)
            if response.status_code in _REDIRECTS and "location" in response.headers:
                target = str(response.url.join(response.headers["location"]))
                _discard(response)
                if not target.startswith(("https://", "http://")):
                    raise RegistryError(f"{self.host}: redirect to a non-HTTP URL")
                if target.startswith("http://") and url.startswith("https://") \
                        and not self.insecure:
                    raise RegistryError(
                        f"{self.host}: refusing a redirect from https to plain http")
                if response.status_code == 303:
                    method, content = "GET", None
                    headers = {k: v for k, v in headers.items()
                               if k.lower() not in ("content-length", "content-type")}
                elif content is not None and not isinstance(content, bytes):
                    # a one-pass stream cannot be sent a second time
                    raise RegistryError(f"{self.host}: the registry redirected a request "
                                        f"carrying a stream (HTTP {response.status_code})",
                                        status=response.status_code)
                url = target
                continue
            if not stream:
                read_bounded(response)
            return response
        raise RegistryError(f"{self.host}: too many redirects")

    def _token_request(self, method: str, url: str, headers: dict[str, str],
                       form: dict[str, str] | None,
                       basic: tuple[str, str] | None) -> httpx.Response:
        """A token server request (retried like any other; credentials only over
        https, or to an insecure registry's own host)."""
        if basic is not None or form is not None:
            self._check_secret_destination(url)
        attempts = max(0, self.options.retry_times) + 1
        for attempt in range(attempts):
            try:
                request = self._http.build_request(method, url, headers=headers, data=form)
                response = self._http.send(
                    request, stream=True,
                    auth=httpx.BasicAuth(*basic) if basic is not None else None)
                read_bounded(response, 1 << 20)  # containers/image's limit for tokens
            except httpx.HTTPError as exc:
                if attempt == attempts - 1 or _is_certificate_error(exc):
                    raise wrap_network_error(self.host, exc) from exc
                time.sleep(self.backoff(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and attempt < attempts - 1:
                time.sleep(self.backoff(
                    attempt, parse_retry_after(response.headers.get("retry-after"))))
                continue
            return response
        raise AssertionError("unreachable")

    def _check_secret_destination(self, url: str) -> None:
        if url.startswith("https://"):
            return
        # the insecure setting is per host (registries.conf, --tls-verify): a token
        # server on another port of the registry's own host shares it
        if self.insecure and httpx.URL(url).host == httpx.URL(f"http://{self._net_host}").host:
            return
        raise AuthenticationError(
            f"{self.host}: refusing to send credentials over plain HTTP to the token "
            f"server {httpx.URL(url).host} (the registry is not configured insecure)")


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed.scheme, parsed.host, port


def _discard(response: httpx.Response) -> None:
    """Drop an answer we do not use without reading its body (which the server
    controls: it could be huge, or trickle forever)."""
    response.close()


#: the most we read of an answer that is not a blob (manifest PUT, POST, errors ...)
MAX_SMALL_BODY: Final = 4 << 20


def read_bounded(response: httpx.Response, limit: int = MAX_SMALL_BODY) -> bytes:
    """The body, read now; at most ``limit + 1`` bytes are kept (the rest is dropped
    with the connection), so ``len(body) > limit`` means it was too long."""
    chunks: list[bytes] = []
    total = 0
    keep = limit + 1  # one byte more than allowed tells the caller it was too long
    try:
        for chunk in response.iter_bytes():
            room = keep - total
            chunks.append(chunk[:room])
            total += min(len(chunk), room)
            if total >= keep:
                break
    finally:
        response.close()
    body = b"".join(chunks)
    response._content = body  # so that .content and .json() see what was kept
    return body


_PERMANENT_TLS = ("CERTIFICATE", "WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL",
                  "RECORD_LAYER_FAILURE")


def _is_certificate_error(exc: BaseException) -> bool:
    """A TLS failure that trying again cannot fix: an untrusted certificate, or a
    server that does not speak TLS at all."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        if isinstance(seen, ssl.SSLError) and any(
                marker in str(seen).upper() for marker in _PERMANENT_TLS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_body(response: httpx.Response) -> bytes:
    """At most 1 MiB of the body, read now if it was streamed."""
    try:
        return response.content[:_MAX_ERROR_BODY]
    except httpx.ResponseNotRead:
        pass
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            total += len(chunk)
            if total > _MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass
    finally:
        response.close()
    return b"".join(chunks)[:_MAX_ERROR_BODY]


def error_codes(response: httpx.Response) -> tuple[tuple[str, ...], str]:
    """The ``errors[].code`` values and the first message of a registry error body."""
    body = _error_body(response)
    codes: list[str] = []
    message = ""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list):
        for entry in errors:
            if isinstance(entry, dict):
                code = entry.get("code")
                if isinstance(code, str):
                    codes.append(code.upper())
                text = entry.get("message")
                if isinstance(text, str) and not message:
                    message = " ".join(text.split())[:300]
    return tuple(codes), message


def raise_for_status(response: httpx.Response, what: str, *,
                     not_found: type[RegistryError] = NameUnknownError) -> None:
    """Raise the typed error for a non-2xx answer about ``what`` (``"manifest
    docker://host/repo:tag"``)."""
    status = response.status_code
    if 200 <= status < 300:
        return
    codes, message = error_codes(response)
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    detail = f"{message or response.reason_phrase or 'error'}"
    code_text = ", ".join(codes)
    text = f"{what}: {detail} ({code_text + ', ' if code_text else ''}HTTP {status})"
    kw = {"status": status, "codes": codes, "retry_after": retry_after}
    cls: type[RegistryError]
    if status == 401 or "UNAUTHORIZED" in codes:
        cls = AuthenticationError
    elif status == 403 or "DENIED" in codes:
        cls = AccessDeniedError
    elif status == 429 or "TOOMANYREQUESTS" in codes:
        cls = TooManyRequestsError
    elif "MANIFEST_UNKNOWN" in codes:
        cls = ManifestUnknownError
    elif "BLOB_UNKNOWN" in codes:
        cls = BlobUnknownError
    elif "NAME_UNKNOWN" in codes:
        cls = NameUnknownError
    elif status == 404:
        cls = not_found
    else:
        cls = RegistryError
    raise cls(text, **kw)  # type: ignore[arg-type]
