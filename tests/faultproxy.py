"""A fault-injecting HTTP reverse proxy to put in front of the real registry.

The proxy is plain HTTP on its own loopback port, threaded and streaming (bodies are
forwarded in chunks, never buffered whole, in both directions; request bodies may have a
``Content-Length`` or be ``Transfer-Encoding: chunked``). ``Location`` headers that point
at the upstream are rewritten to point at the proxy, so clients stay on the proxy::

    proxy = FaultProxy(registry.url).start()
    rule = proxy.add_rule("GET", r"/blobs/sha256:", reset_after(1000))
    ...                                # the first blob GET dies after 1000 body bytes
    assert rule.fired == 1
    proxy.stop()

Rules are tried in the order they were added. A rule matches when its ``method`` regex
fully matches the request method (``"*"`` matches any) and its ``path`` regex is found
(``re.search``) in the request target, query included. A matching rule first lets
``skip`` requests through (for those, matching goes on with the next rules, as if the
rule were not there), then fires ``times`` times (``None``: without end) and is then
exhausted and ignored. Every request is logged in :attr:`FaultProxy.log` as a
:class:`ProxyRequest` (all request headers, the response status, the name of the rule
that fired), and the entry is in the log before the client sees the response headers.

Actions (build them with the functions below): :func:`status`, :func:`reset_after`,
:func:`truncate_after`, :func:`slow`, :func:`reset_request`, :func:`redirect`,
:func:`ignore_range`, :func:`passthrough`.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# Hop-by-hop headers (RFC 9110 7.6.1) and those the proxy handles itself.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                  "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"})
_CHUNK = 64 * 1024


class _ClientGone(Exception):
    """The client closed its side in the middle of a request body."""


@dataclass(frozen=True)
class Action:
    """What a rule does; build one with the functions of this module."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


def status(code: int, headers: Mapping[str, str] | None = None,
           body: bytes | str = b"") -> Action:
    """Answer ``code`` with ``headers`` and ``body`` without asking the upstream.

    The request body is read and discarded first, so the connection stays usable.
    """
    data = body.encode() if isinstance(body, str) else bytes(body)
    return Action("status", {"code": code, "headers": dict(headers or {}), "body": data})


def reset_after(nbytes: int) -> Action:
    """Forward; send the response headers and ``nbytes`` of the body, then TCP RST."""
    return Action("reset_after", {"nbytes": nbytes})


def truncate_after(nbytes: int) -> Action:
    """Forward; send the headers (full Content-Length) and ``nbytes`` of body, then FIN."""
    return Action("truncate_after", {"nbytes": nbytes})


def slow(delay_per_chunk: float, chunk: int = 1024) -> Action:
    """Forward; send the response body ``chunk`` bytes at a time, sleeping between."""
    return Action("slow", {"delay": delay_per_chunk, "chunk": chunk})


def reset_request(rst: bool = True) -> Action:
    """Close the connection right after the request headers, without answering.

    ``rst=True`` aborts with a TCP RST (SO_LINGER 0), ``rst=False`` closes with a FIN.
    """
    return Action("reset_request", {"rst": rst})


def redirect(target: FaultProxy | str, code: int = 307) -> Action:
    """Answer ``code`` with ``Location`` = the same request target on ``target``.

    ``target`` is usually a :class:`RedirectTarget` (or a base URL string).
    """
    return Action("redirect", {"target": target, "code": code})


def ignore_range() -> Action:
    """Forward without the ``Range`` / ``If-Range`` request headers (a server that answers
    200 with the whole body to a range request)."""
    return Action("ignore_range")


def passthrough() -> Action:
    """Forward unchanged (a rule that only counts matching requests)."""
    return Action("pass")


@dataclass(eq=False)
class Rule:
    """One programmed fault; :attr:`fired` counts how often it acted."""

    method: str
    path: str
    action: Action
    times: int | None = 1
    skip: int = 0
    name: str = ""
    fired: int = 0
    seen: int = 0  # matching requests, the skipped ones included

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, target: str) -> bool:
        if self.method != "*" and not re.fullmatch(self.method, method):
            return False
        return re.search(self.path, target) is not None


@dataclass(eq=False)
class ProxyRequest:
    """One request the proxy saw. ``headers`` has lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None  # None: no answer was sent (reset_request)
    rule: str | None = None  # name of the rule that fired, None when none did
    upstream: bool = False  # whether it was forwarded to the upstream
    body_bytes: int = 0  # response body bytes handed to the client socket so far
    time: float = field(default_factory=time.monotonic)
    #: set once the proxy is done with the request (response sent or connection cut)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float = 5.0) -> ProxyRequest:
        """Wait until the proxy is done with this request (e.g. before reading
        :attr:`body_bytes`, which grows while the body streams)."""
        if not self.done.wait(timeout):
            raise TimeoutError(f"proxy still busy with {self.method} {self.path}")
        return self

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def has_authorization(self) -> bool:
        return "authorization" in self.headers

    @property
    def range(self) -> str | None:
        return self.headers.get("range")

    @property
    def content_range(self) -> str | None:
        return self.headers.get("content-range")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that go away mid-response are part of the game here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without NODELAY, Nagle plus the
        # peer's delayed ACK add 40 ms to small responses
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def _dispatch(self) -> None:
        owner = self.server.owner
        entry = ProxyRequest(self.command, self.path,
                             {k.lower(): v for k, v in self.headers.items()})
        rule = owner._match(self.command, self.path)
        entry.rule = rule.name if rule is not None else None
        owner._record(entry)
        action = rule.action if rule is not None else Action("pass")
        try:
            if action.kind == "reset_request":
                entry.status = None
                self._abort(rst=bool(action.params["rst"]))
            elif action.kind == "status":
                self._discard_body()
                body: bytes = action.params["body"]
                entry.status = action.params["code"]
                self.send_response_only(action.params["code"])
                headers = {k.lower(): (k, v) for k, v in action.params["headers"].items()}
                for k, v in headers.values():
                    self.send_header(k, v)
                if "content-length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    entry.body_bytes = len(body)
                    self.wfile.write(body)
            elif action.kind == "redirect":
                self._discard_body()
                target = action.params["target"]
                base = target.url if isinstance(target, FaultProxy) else str(target)
                entry.status = action.params["code"]
                self.send_response_only(action.params["code"])
                self.send_header("Location", base.rstrip("/") + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._forward(entry, action)
        except (_ClientGone, ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            entry.done.set()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch

    # -- request side ----------------------------------------------------------------

    def _is_chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def _body(self) -> Iterator[bytes]:
        """The request body, decoded, in pieces."""
        if self._is_chunked():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise _ClientGone
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers up to the empty line
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            return
                remaining = size
                while remaining:
                    data = self.rfile.read(min(remaining, _CHUNK))
                    if not data:
                        raise _ClientGone
                    remaining -= len(data)
                    yield data
                self.rfile.readline(3)  # CRLF after the chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                data = self.rfile.read(min(remaining, _CHUNK))
                if not data:
                    raise _ClientGone
                remaining -= len(data)
                yield data

    def _discard_body(self) -> None:
        for _ in self._body():
            pass

    # -- upstream --------------------------------------------------------------------

    def _forward(self, entry: ProxyRequest, action: Action) -> None:
        owner = self.server.owner
        conn = owner._upstream_connection()
        entry.upstream = True
        try:
            conn.putrequest(self.command, self.path, skip_host=True,
                            skip_accept_encoding=True)
            strip = {"host", "expect"}
            if action.kind == "ignore_range":
                strip |= {"range", "if-range"}
            for k, v in self.headers.items():
                if k.lower() not in _HOP and k.lower() not in strip:
                    conn.putheader(k, v)
            conn.putheader("Host", owner.upstream_host)
            chunked = self._is_chunked()
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for piece in self._body():
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
            entry.status = resp.status
            self._relay(entry, resp, action)
        finally:
            conn.close()

    def _relay(self, entry: ProxyRequest, resp: http.client.HTTPResponse,
               action: Action) -> None:
        owner = self.server.owner
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            lk = k.lower()
            if lk in _HOP:
                continue
            if lk == "location":
                v = owner.rewrite_location(v)
            elif lk == "www-authenticate" and owner.realm_rewrite is not None:
                v = v.replace(*owner.realm_rewrite)
            self.send_header(k, v)
        if (self.command == "HEAD" or resp.status in (204, 304)
                or 100 <= resp.status < 200):
            self.end_headers()
            return
        chunked_out = False
        if resp.getheader("Content-Length") is None:
            if resp.chunked:
                self.send_header("Transfer-Encoding", "chunked")
                chunked_out = True
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
        self.end_headers()

        limit: int | None = None
        if action.kind in ("reset_after", "truncate_after"):
            limit = int(action.params["nbytes"])
        size = int(action.params["chunk"]) if action.kind == "slow" else _CHUNK
        while True:
            want = size if limit is None else min(size, limit - entry.body_bytes)
            if want <= 0:
                break
            data = resp.read(want) if action.kind == "slow" else resp.read1(want)
            if not data:
                break
            entry.body_bytes += len(data)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked_out else data)
            if action.kind == "slow":
                time.sleep(float(action.params["delay"]))
        if limit is not None and entry.body_bytes >= limit and resp.read(1):
            # There was more: cut the body here.
            self._abort(rst=action.kind == "reset_after")
            return
        if chunked_out:
            self.wfile.write(b"0\r\n\r\n")

    def _abort(self, *, rst: bool) -> None:
        self.close_connection = True
        sock = self.connection
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            self.rfile.close()  # drops the last reference: the real close, an RST
        else:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class FaultProxy:
    """A threaded reverse proxy on 127.0.0.1 with programmable faults (module doc)."""

    def __init__(self, upstream_url: str, *,
                 realm_rewrite: tuple[str, str] | None = None,
                 upstream_ssl_context: ssl.SSLContext | None = None,
                 timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.hostname is None or parsed.port is None:
            raise ValueError(f"upstream URL needs a host and a port: {upstream_url!r}")
        self.upstream_url = f"{parsed.scheme}://{parsed.netloc}"
        self.upstream_host = parsed.netloc
        self._upstream_addr = (parsed.hostname, parsed.port)
        self._upstream_tls = parsed.scheme == "https"
        self._ssl = upstream_ssl_context
        #: ``(old, new)`` substring replacement applied to ``WWW-Authenticate`` answers.
        self.realm_rewrite = realm_rewrite
        self.timeout = timeout
        self.rules: list[Rule] = []
        self.log: list[ProxyRequest] = []
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wake handler threads idling on keep-alive connections
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- rules and log ---------------------------------------------------------------

    def add_rule(self, method: str, path: str, action: Action, *, times: int | None = 1,
                 skip: int = 0, name: str | None = None) -> Rule:
        """Append a rule; ``method`` is a regex (or ``"*"``), ``path`` a regex searched
        in the request target (path and query)."""
        with self._lock:
            rule = Rule(method, path, action, times=times, skip=skip,
                        name=name or f"{action.kind}#{len(self.rules)}")
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[ProxyRequest]:
        """Logged requests, optionally filtered by exact method and a path regex."""
        with self._lock:
            entries = list(self.log)
        return [e for e in entries if (method is None or e.method == method)
                and (path is None or re.search(path, e.path))]

    def rewrite_location(self, value: str) -> str:
        if value.startswith(self.upstream_url):
            return self.url + value[len(self.upstream_url):]
        return value

    def _match(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.exhausted or not rule.matches(method, target):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                rule.fired += 1
                return rule
        return None

    def _record(self, entry: ProxyRequest) -> None:
        with self._lock:
            self.log.append(entry)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _upstream_connection(self) -> http.client.HTTPConnection:
        host, port = self._upstream_addr
        if self._upstream_tls:
            return http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                               context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)


class RedirectTarget(FaultProxy):
    """A second loopback server, the target of :func:`redirect` (like a storage backend
    answering a presigned URL): it forwards every request to the upstream and records
    everything it received in :attr:`log` (all headers, e.g. to check that no
    ``Authorization`` header reached it). Rules work here too."""

    @property
    def received_authorization(self) -> bool:
        with self._lock:
            return any(e.has_authorization for e in self.log)
