"""Sockets for blob throughput.

httpcore asks the socket for 64 KiB at a time and a TLS socket hands out one 16 KiB
record per read; every piece then climbs through h11, httpcore, httpx and the copy
pipeline in Python. With six blobs in flight that per-piece work, done under the GIL,
was about 40% of a pull over loopback. :class:`LargeReadBackend` reads up to 512 KiB per
call instead: whatever the kernel has ready, plus, for TLS, the records already
buffered behind the first one. Only read sizes change; bytes, timeouts and errors are
httpcore's own.

It is installed through httpcore's public ``network_backend`` parameter; httpx builds
its connection pool itself, so :func:`make_transport` builds the same pool with it.
"""

from __future__ import annotations

import ssl
import typing
from typing import Final

import httpcore
import httpx

__all__ = ["READ_SIZE", "LargeReadBackend", "make_transport"]

READ_SIZE: Final = 512 << 10


class _LargeReadStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max(max_bytes, READ_SIZE), timeout)
        sock = self._inner.get_extra_info("socket")
        if not data or not isinstance(sock, ssl.SSLSocket):
            return data
        parts = [data]
        size = len(data)
        try:
            sock.setblocking(False)
            while size < READ_SIZE:
                more = sock.recv(READ_SIZE - size)
                if not more:
                    break
                parts.append(more)
                size += len(more)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass  # nothing more ready now: hand out what we have
        finally:
            sock.setblocking(True)
        return b"".join(parts)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _LargeReadStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class LargeReadBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, with streams that read in large pieces."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None
                    ) -> httpcore.NetworkStream:
        return _LargeReadStream(self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _LargeReadStream(self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def make_transport(verify: ssl.SSLContext, limits: httpx.Limits) -> httpx.HTTPTransport:
    """An ``httpx.HTTPTransport`` whose pool uses :class:`LargeReadBackend` (when this
    httpx keeps its pool where 0.2x versions do; else httpx's own, only slower)."""
    transport = httpx.HTTPTransport(verify=verify, limits=limits, trust_env=False)
    if isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
        transport._pool = httpcore.ConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=LargeReadBackend())
    return transport
