"""Real registries for tests: the CNCF distribution registry started by fixtures.

No mocked HTTP for registry behaviour: ``/usr/bin/docker-registry`` (distribution 2.8)
runs on a free loopback port (it binds ``127.0.0.1:0`` and the port is read back from its
"listening on" log line, so there is no port race), with its storage and logs under the
test's temporary directory. Fixtures:

``registry`` (session)
    plain HTTP, no auth, delete enabled.
``tls_registry`` (session)
    HTTPS with a generated CA (``ca_cert``, ``certs_d_root``) and htpasswd basic auth
    (``username``/``password``).
``token_registry`` (session)
    plain HTTP with bearer-token auth from a :class:`TokenServer` (``issuer``) that runs
    in a thread; ``token_url``, ``service``, ``username``, ``password``.
``token_issuer`` (function)
    ``token_registry.issuer`` with its settings and log reset before and after the test.
``registry_factory`` (function)
    ``registry_factory(**kw)`` starts an extra registry (see :func:`start_registry`),
    stopped at teardown.
``fault_proxy`` / ``redirect_target`` (function)
    a :class:`~tests.faultproxy.FaultProxy` / :class:`~tests.faultproxy.RedirectTarget`
    in front of the session ``registry``.

Request records: the registry writes its access log in Apache combined format on stdout
(:attr:`RegistryServer.log_path`) and its application log as JSON lines on stderr
(:attr:`RegistryServer.app_log_path`); :meth:`RegistryServer.requests` parses the first.
A line is written when the handler returns, which can be a moment after the client has
the response: ``requests(min_count=N)`` waits for N records.

Token expiry: distribution checks ``exp`` and ``nbf`` with a leeway of 60 s
(``token.Leeway`` in registry/auth/token/token.go), so a token whose ``exp`` passed less
than 60 s ago is still accepted. To get tokens the registry rejects as expired, set
``issuer.clock_offset`` to e.g. -120 (the issuer's clock runs 2 minutes late).
``issuer.lifetime`` sets ``exp - iat`` and the ``expires_in`` the client is told.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from oci_image.copy import CopyOptions, CopyResult, copy_image
from oci_image.interfaces import OpenOptions, RegistryOptions
from oci_image.spec import Descriptor, ImageManifest
from oci_image.transports import parse_image_name
from tests.faultproxy import FaultProxy, RedirectTarget
from tests.peers import require

STARTUP_TIMEOUT = 15.0
TOKEN_LEEWAY_SECONDS = 60  # distribution registry/auth/token/token.go: Leeway


# -- certificates -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertPair:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ocistack tests")])


def make_ca(cn: str) -> CertPair:
    """A self-signed P-256 CA, valid from a day ago for ten days."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=10))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return CertPair(key, cert)


def make_leaf(ca: CertPair, cn: str, *, server: bool) -> CertPair:
    """A P-256 leaf signed by ``ca``: a TLS server cert for 127.0.0.1 and localhost
    (``server=True``) or a plain signing cert (token signing)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn)).issuer_name(ca.cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=10))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                              critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=server, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                              critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    if server:
        import ipaddress

        builder = (builder
                   .add_extension(x509.SubjectAlternativeName([
                       x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
                       x509.DNSName("localhost")]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                  critical=False))
    return CertPair(key, builder.sign(ca.key, hashes.SHA256()))


# -- bearer token issuer ------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_scope(scope: str) -> tuple[str, str, list[str]]:
    """``repository:team/app:pull,push`` -> ``("repository", "team/app", ["pull", "push"])``."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, [a for a in actions.split(",") if a]


@dataclasses.dataclass(frozen=True)
class TokenRequest:
    """One request to the token server."""

    method: str  # GET or POST
    service: str | None
    scopes: tuple[str, ...]  # as requested (each scope= parameter; POST: split on spaces)
    account: str | None  # GET account= / POST username=
    basic_auth: bool  # an Authorization: Basic header was sent
    user: str | None  # the authenticated user, None for anonymous / refused
    grant_type: str | None  # POST only
    refresh_token_used: bool  # a refresh token was presented (POST refresh_token grant)
    offline_token: bool  # GET offline_token=true
    client_id: str | None
    status: int
    granted: tuple[str, ...]  # e.g. ("repository:team/app:pull,push",)
    time: float


class _TokenHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: TokenServer


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TokenHTTPServer
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, code: int, payload: Mapping[str, Any],
               headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        ts = self.server.owner
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path != "/token":
            self._reply(404, {"error": "not found"})
            return
        scopes = tuple(query.get("scope", []))
        service = query.get("service", [None])[0]
        account = query.get("account", [None])[0]
        offline = query.get("offline_token", ["false"])[0].lower() == "true"
        client_id = query.get("client_id", [None])[0]
        header = self.headers.get("Authorization")
        basic = header is not None and header.lower().startswith("basic ")
        user: str | None = None
        ok = True
        if header is not None:
            user = ts._check_basic(header)
            ok = user is not None
        if not ok:
            ts._log(TokenRequest("GET", service, scopes, account, basic, None, None, False,
                                 offline, client_id, 401, (), time.time()))
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                          "message": "invalid username or password"}]},
                        {"WWW-Authenticate": 'Basic realm="ocistack-token"'})
            return
        granted = ts.grant(user, scopes)
        token, issued = ts.issue(user or "", granted, service)
        payload: dict[str, Any] = {"token": token, "access_token": token,
                                   "expires_in": ts.lifetime, "issued_at": _iso(issued)}
        if offline and user is not None:
            payload["refresh_token"] = ts.new_refresh_token(user)
        ts._log(TokenRequest("GET", service, scopes, account, basic, user, None, False,
                             offline, client_id, 200, _scope_strings(granted), time.time()))
        self._reply(200, payload)

    def do_POST(self) -> None:
        ts = self.server.owner
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = urllib.parse.parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
        if url.path != "/token":
            self._reply(404, {"error": "not found"})
            return

        def one(key: str) -> str | None:
            values = form.get(key)
            return values[0] if values else None

        grant_type = one("grant_type")
        service = one("service")
        scopes = tuple(s for value in form.get("scope", []) for s in value.split(" ") if s)
        client_id = one("client_id")
        basic = (self.headers.get("Authorization") or "").lower().startswith("basic ")
        user: str | None = None
        refresh_used = False
        account = one("username")
        refresh_token: str | None = None
        if grant_type == "password":
            if one("username") == ts.username and one("password") == ts.password:
                user = ts.username
                refresh_token = ts.new_refresh_token(user)
            code, error = 401, "invalid_grant"
        elif grant_type == "refresh_token":
            refresh_used = True
            refresh_token = one("refresh_token")
            with ts._lock:
                user = ts.refresh_tokens.get(refresh_token or "")
            code, error = 401, "invalid_grant"
        else:
            code, error = 400, "unsupported_grant_type"
        if user is None:
            ts._log(TokenRequest("POST", service, scopes, account, basic, None, grant_type,
                                 refresh_used, False, client_id, code, (), time.time()))
            self._reply(code, {"error": error})
            return
        granted = ts.grant(user, scopes)
        token, issued = ts.issue(user, granted, service)
        ts._log(TokenRequest("POST", service, scopes, account, basic, user, grant_type,
                             refresh_used, False, client_id, 200, _scope_strings(granted),
                             time.time()))
        self._reply(200, {"access_token": token, "expires_in": ts.lifetime,
                          "issued_at": _iso(issued), "refresh_token": refresh_token,
                          "scope": " ".join(_scope_strings(granted))})


def _scope_strings(access: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access)


class TokenServer:
    """A bearer-token issuer for distribution's ``auth.token`` (a thread, plain HTTP).

    ``GET /token?service=&scope=...&account=&offline_token=`` with optional Basic auth:
    wrong credentials -> 401; anonymous -> only ``pull`` on ``public/*`` repositories;
    the valid user -> everything requested, except ``push`` (and ``*``) on ``denied/*``.
    ``offline_token=true`` with valid credentials adds a ``refresh_token``.
    ``POST /token`` (form): ``grant_type=password`` (``username``, ``password``) or
    ``grant_type=refresh_token`` (``refresh_token``), plus ``service``, ``scope``
    (space-separated) and ``client_id``; answers ``access_token``, ``expires_in``,
    ``issued_at``, ``refresh_token``, ``scope``. Bad credentials or an unknown refresh
    token -> 401 ``{"error": "invalid_grant"}``; another grant type -> 400.

    Tokens are ES256 JWTs whose header carries the signing certificate in ``x5c``; the
    registry verifies it against :attr:`root_bundle_pem` (its ``rootcertbundle``).
    """

    DEFAULT_LIFETIME = 300

    def __init__(self, *, username: str = "tokenuser", password: str | None = None,
                 service: str = "ocistack-test-registry",
                 issuer_name: str = "ocistack-test-issuer") -> None:
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.service = service
        self.issuer_name = issuer_name
        self.lifetime = self.DEFAULT_LIFETIME
        #: seconds added to the issuer's clock for iat/nbf/exp (negative: running late)
        self.clock_offset = 0
        self.log: list[TokenRequest] = []
        self.refresh_tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._ca = make_ca("ocistack token CA")
        self._signer = make_leaf(self._ca, "ocistack token signer", server=False)
        self._server: _TokenHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def root_bundle_pem(self) -> bytes:
        return self._ca.cert_pem

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    def start(self) -> Self:
        server = _TokenHTTPServer(("127.0.0.1", 0), _TokenHandler)
        server.owner = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"token-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def reset(self) -> None:
        """Default lifetime and clock, empty log, no refresh tokens."""
        with self._lock:
            self.lifetime = self.DEFAULT_LIFETIME
            self.clock_offset = 0
            self.log.clear()
            self.refresh_tokens.clear()

    def _log(self, entry: TokenRequest) -> None:
        with self._lock:
            self.log.append(entry)

    def _check_basic(self, header: str) -> str | None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode() \
                .partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if user == self.username and password == self.password:
            return user
        return None

    def new_refresh_token(self, user: str) -> str:
        """Register and return a refresh token for ``user`` (as ``offline_token=true``
        would), e.g. to write an identity token into an auth file."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = user
        return token

    _new_refresh_token = new_refresh_token

    def grant(self, user: str | None, scopes: tuple[str, ...]) -> list[dict[str, Any]]:
        """The access claims the policy grants ``user`` (None: anonymous) for ``scopes``."""
        access: list[dict[str, Any]] = []
        for scope in scopes:
            kind, name, actions = parse_scope(scope)
            if user is None:
                allowed = ["pull"] if (kind == "repository" and name.startswith("public/")
                                       and ("pull" in actions or "*" in actions)) else []
            elif kind == "repository" and name.startswith("denied/"):
                allowed = [a for a in actions if a not in ("push", "*")]
            else:
                allowed = list(actions)
            if allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def issue(self, subject: str, access: list[dict[str, Any]],
              service: str | None = None) -> tuple[str, float]:
        """A signed token for ``access``, and its iat (issuer clock)."""
        now = time.time() + self.clock_offset
        claims = {"iss": self.issuer_name, "sub": subject, "aud": service or self.service,
                  "exp": int(now) + self.lifetime, "nbf": int(now), "iat": int(now),
                  "jti": secrets.token_hex(16), "access": access}
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self._signer.cert_der).decode()]}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        der = self._signer.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input}.{_b64url(signature)}", now

    @staticmethod
    def claims(token: str) -> dict[str, Any]:
        """The (unverified) claims of a token."""
        claims: dict[str, Any] = json.loads(_b64url_decode(token.split(".")[1]))
        return claims


# -- the registry -------------------------------------------------------------------


_ACCESS_LINE = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] '
    r'"(?P<method>\S+) (?P<path>\S+) (?P<proto>[^"]*)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?')


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One line of the registry's access log."""

    method: str
    path: str  # the request target, query included
    status: int
    size: int  # response body bytes written
    user_agent: str
    remote: str
    time: str
    raw: str

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0]


@dataclasses.dataclass(eq=False)
class RegistryServer:
    """A running ``docker-registry serve`` on 127.0.0.1 (see the module doc)."""

    host: str  # "127.0.0.1:PORT"
    url: str  # "http(s)://127.0.0.1:PORT"
    scheme: str  # "http" or "https"
    root: Path  # storage rootdirectory
    base_dir: Path  # config, logs, certs
    config_path: Path
    log_path: Path  # access log (stdout), Apache combined format
    app_log_path: Path  # application log (stderr), JSON lines
    process: subprocess.Popen[bytes]
    ca_cert: Path | None = None  # PEM CA of the TLS variants
    certs_dir: Path | None = None  # <certs_d_root>/<host>, holding ca.crt
    certs_d_root: Path | None = None  # a certs.d root: <certs_d_root>/<host>/ca.crt
    username: str | None = None
    password: str | None = None
    token_url: str | None = None
    service: str | None = None
    issuer: TokenServer | None = None
    _owns_issuer: bool = False

    # -- lifecycle -------------------------------------------------------------------

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._owns_issuer and self.issuer is not None:
            self.issuer.stop()

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this registry's CA (TLS variants)."""
        if self.ca_cert is None:
            raise ValueError(f"{self.url} is not a TLS registry")
        return ssl.create_default_context(cafile=str(self.ca_cert))

    # -- logs ------------------------------------------------------------------------

    def log_mark(self) -> int:
        """A position in the access log, for ``requests(since=...)``."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def requests(self, since: int = 0, *, min_count: int = 0,
                 timeout: float = 2.0) -> list[RequestRecord]:
        """The access-log records (after ``since``, a :meth:`log_mark`); waits up to
        ``timeout`` for at least ``min_count`` of them."""
        deadline = time.monotonic() + timeout
        while True:
            records = self._parse_access_log(since)
            if len(records) >= min_count or time.monotonic() > deadline:
                return records
            time.sleep(0.01)

    def _parse_access_log(self, since: int) -> list[RequestRecord]:
        with self.log_path.open("rb") as f:
            f.seek(since)
            data = f.read()
        records = []
        for line in data.decode(errors="replace").splitlines():
            m = _ACCESS_LINE.match(line)
            if m is None:
                continue
            records.append(RequestRecord(
                method=m["method"], path=m["path"], status=int(m["status"]),
                size=0 if m["size"] == "-" else int(m["size"]),
                user_agent=m["agent"] or "", remote=m["remote"], time=m["time"], raw=line))
        return records

    def app_log(self) -> list[dict[str, Any]]:
        """The application log (JSON lines; a non-JSON line becomes ``{"msg": line}``)."""
        entries = []
        for line in self.app_log_path.read_text(errors="replace").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                entries.append({"msg": line})
        return entries

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.app_log_path, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # -- storage ---------------------------------------------------------------------

    @property
    def _v2(self) -> Path:
        return self.root / "docker" / "registry" / "v2"

    def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether ``repo`` links blob ``digest`` (…/repositories/REPO/_layers/ALG/HEX/link)."""
        algo, _, hexpart = digest.partition(":")
        return (self._v2 / "repositories" / repo / "_layers" / algo / hexpart / "link").is_file()

    def blob_data_exists(self, digest: str) -> bool:
        """Whether the blob store holds ``digest`` at all (…/blobs/ALG/XX/HEX/data)."""
        algo, _, hexpart = digest.partition(":")
        return (self._v2 / "blobs" / algo / hexpart[:2] / hexpart / "data").is_file()

    def manifest_exists(self, repo: str, digest: str) -> bool:
        algo, _, hexpart = digest.partition(":")
        return (self._v2 / "repositories" / repo / "_manifests" / "revisions" / algo
                / hexpart / "link").is_file()

    def tags(self, repo: str) -> list[str]:
        tags_dir = self._v2 / "repositories" / repo / "_manifests" / "tags"
        if not tags_dir.is_dir():
            return []
        return sorted(p.name for p in tags_dir.iterdir()
                      if (p / "current" / "link").is_file())

    def uploads(self, repo: str) -> list[str]:
        """Upload sessions still open under the repository's ``_uploads`` (those with a
        ``startedat`` file: distribution 2.8 writes ``hashstates/`` again after a
        DELETE, so the bare directory of a cancelled upload may remain)."""
        uploads_dir = self._v2 / "repositories" / repo / "_uploads"
        if not uploads_dir.is_dir():
            return []
        return sorted(p.name for p in uploads_dir.iterdir() if (p / "startedat").exists())


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _htpasswd_line(username: str, password: str) -> str:
    htpasswd = require("htpasswd")
    result = subprocess.run([htpasswd, "-Bbn", username, password], capture_output=True,
                            check=True, timeout=30)
    return result.stdout.decode().strip() + "\n"


def start_registry(base: Path, *, tls: bool = False,
                   htpasswd: tuple[str, str] | None = None,
                   token: TokenServer | bool | None = None, delete: bool = True,
                   extra_config: Mapping[str, Any] | None = None,
                   startup_timeout: float = STARTUP_TIMEOUT) -> RegistryServer:
    """Start ``docker-registry serve`` with its files under ``base`` (an empty directory).

    ``tls``: serve HTTPS with a fresh CA; ``htpasswd=(user, password)``: basic auth;
    ``token``: bearer-token auth from that :class:`TokenServer` (``True``: a new one,
    started here and stopped with the registry); ``extra_config`` is merged into the
    configuration (e.g. ``{"storage": {"readonly": {"enabled": True}}}``).
    """
    binary = require("docker-registry")
    if htpasswd is not None and token:
        raise ValueError("choose htpasswd or token auth, not both")
    base.mkdir(parents=True, exist_ok=True)
    root = base / "data"
    root.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(root)},
                    "delete": {"enabled": delete},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": "127.0.0.1:0", "secret": secrets.token_hex(16)},
        "health": {"storagedriver": {"enabled": False}},
    }
    ca: CertPair | None = None
    if tls:
        ca = make_ca("ocistack registry CA")
        leaf = make_leaf(ca, "127.0.0.1", server=True)
        (base / "ca.crt").write_bytes(ca.cert_pem)
        (base / "server.crt").write_bytes(leaf.cert_pem + ca.cert_pem)
        (base / "server.key").write_bytes(leaf.key_pem)
        config["http"]["tls"] = {"certificate": str(base / "server.crt"),
                                 "key": str(base / "server.key")}
    username = password = None
    issuer: TokenServer | None = None
    owns_issuer = False
    if htpasswd is not None:
        username, password = htpasswd
        (base / "htpasswd").write_text(_htpasswd_line(username, password))
        config["auth"] = {"htpasswd": {"realm": "ocistack-registry",
                                       "path": str(base / "htpasswd")}}
    elif token:
        if isinstance(token, TokenServer):
            issuer = token
        else:
            issuer, owns_issuer = TokenServer().start(), True
        (base / "token-root.crt").write_bytes(issuer.root_bundle_pem)
        username, password = issuer.username, issuer.password
        config["auth"] = {"token": {"realm": issuer.token_url, "service": issuer.service,
                                    "issuer": issuer.issuer_name,
                                    "rootcertbundle": str(base / "token-root.crt")}}
    if extra_config:
        _deep_merge(config, extra_config)
    config_path = base / "config.yml"
    config_path.write_text(json.dumps(config, indent=1))  # JSON is YAML
    log_path, app_log_path = base / "access.log", base / "registry.log"
    with log_path.open("ab") as out, app_log_path.open("ab") as err:
        # the registry maps REGISTRY_* variables onto its configuration (the tests set
        # REGISTRY_AUTH_FILE for the client side): start it without them
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        process = subprocess.Popen([binary, "serve", str(config_path)], stdout=out,
                                   stderr=err, stdin=subprocess.DEVNULL, cwd=base, env=env)
    scheme = "https" if tls else "http"
    server = RegistryServer(host="", url="", scheme=scheme, root=root, base_dir=base,
                            config_path=config_path, log_path=log_path,
                            app_log_path=app_log_path, process=process,
                            username=username, password=password,
                            token_url=issuer.token_url if issuer else None,
                            service=issuer.service if issuer else None, issuer=issuer,
                            _owns_issuer=owns_issuer)
    try:
        port = _wait_listening(server, startup_timeout)
        server.host = f"127.0.0.1:{port}"
        server.url = f"{scheme}://{server.host}"
        if ca is not None:
            server.ca_cert = base / "ca.crt"
            server.certs_d_root = base / "certs.d"
            server.certs_dir = server.certs_d_root / server.host
            server.certs_dir.mkdir(parents=True)
            (server.certs_dir / "ca.crt").write_bytes(ca.cert_pem)
        _wait_ready(server, port, startup_timeout)
    except BaseException:
        server.stop()
        raise
    return server


_LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


def _startup_failure(server: RegistryServer, what: str) -> RuntimeError:
    return RuntimeError(f"docker-registry ({server.config_path}) {what}\n"
                        f"{server.log_tail()}")


def _wait_listening(server: RegistryServer, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        m = _LISTENING.search(server.app_log_path.read_bytes())
        if m is not None:
            return int(m[1])
        if server.process.poll() is not None:
            raise _startup_failure(server, f"exited with {server.process.returncode}")
        if time.monotonic() > deadline:
            raise _startup_failure(server, f"did not listen within {timeout} s")
        time.sleep(0.005)


def _wait_ready(server: RegistryServer, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if server.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", port, timeout=2, context=server.ssl_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/v2/", headers={"User-Agent": "ocistack-tests-readiness"})
            status = conn.getresponse().status
            if status in (200, 401):
                return
            last = f"GET /v2/ answered {status}"
        except OSError as exc:
            last = exc
        finally:
            conn.close()
        if server.process.poll() is not None:
            raise _startup_failure(server, f"exited with {server.process.returncode}")
        time.sleep(0.01)
    raise _startup_failure(server, f"not ready within {timeout} s (last: {last})")



# -- client-side helpers for registry tests -------------------------------------------


def reg_options(tmp_path: Path, **kw: Any) -> OpenOptions:
    """Registry options that read nothing of the machine's configuration (their own
    empty registries.conf, drop-in directory, auth file and certs.d roots), with fast
    retries and no partial-blob cache; ``kw`` overrides any field."""
    conf = tmp_path / "registries.conf"
    if not conf.exists():
        conf.write_text("")
    (tmp_path / "registries.conf.d").mkdir(exist_ok=True)
    base: dict[str, Any] = {
        "registries_conf": str(conf), "registries_conf_dir": str(tmp_path / "registries.conf.d"),
        "certs_d_dirs": (), "retry_base_delay": 0.01, "retry_max_delay": 0.2,
        "partial_blob_dir": "", "auth_file": str(tmp_path / "no-auth.json"),
    }
    base.update(kw)
    return OpenOptions(registry=RegistryOptions(**base))


def plain(tmp_path: Path, **kw: Any) -> OpenOptions:
    """:func:`reg_options` for the plain-HTTP registries (``tls_verify=False``)."""
    return reg_options(tmp_path, tls_verify=False, **kw)


def copy(src: Any, dst: Any, src_opts: OpenOptions | None = None,
         dst_opts: OpenOptions | None = None, *, progress: Any = None,
         cancel: threading.Event | None = None, **kw: Any) -> CopyResult:
    """``copy_image`` of two transport strings (or references) with per-side options;
    ``kw`` are :class:`CopyOptions` fields."""
    src_ref = parse_image_name(src) if isinstance(src, str) else src
    dst_ref = parse_image_name(dst) if isinstance(dst, str) else dst
    return copy_image(src_ref, dst_ref, CopyOptions(source_options=src_opts,
                                                    dest_options=dst_opts, **kw),
                      progress=progress, cancel=cancel)


def layers_of(image: Any) -> list[Descriptor]:
    """The layer descriptors of a built image's manifest."""
    return list(ImageManifest.from_json(image.manifest).layers)

# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Plain HTTP, no auth, delete enabled."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """HTTPS (generated CA) with htpasswd basic auth."""
    require("htpasswd")
    server = start_registry(tmp_path_factory.mktemp("tls-registry"), tls=True,
                            htpasswd=("tlsuser", secrets.token_urlsafe(12)))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """Plain HTTP with bearer-token auth; ``.issuer`` is the running TokenServer."""
    server = start_registry(tmp_path_factory.mktemp("token-registry"), token=True)
    yield server
    server.stop()


@pytest.fixture
def token_issuer(token_registry: RegistryServer) -> Iterator[TokenServer]:
    """The session token registry's issuer, reset (settings, log) around the test."""
    issuer = token_registry.issuer
    assert issuer is not None
    issuer.reset()
    yield issuer
    issuer.reset()


@pytest.fixture
def registry_factory(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RegistryServer]]:
    """``registry_factory(**kw)`` -> a new registry (:func:`start_registry` keywords)."""
    started: list[RegistryServer] = []

    def factory(**kw: Any) -> RegistryServer:
        server = start_registry(tmp_path_factory.mktemp("extra-registry"), **kw)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def fault_proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the session ``registry``, no rules yet."""
    proxy = FaultProxy(registry.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def redirect_target(registry: RegistryServer) -> Iterator[RedirectTarget]:
    """A RedirectTarget forwarding to the session ``registry``."""
    target = RedirectTarget(registry.url).start()
    yield target
    target.stop()
