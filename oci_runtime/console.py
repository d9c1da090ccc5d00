"""The console socket runc and crun hand a container's pty master to.

When ``process.terminal`` is true and the runtime detaches (``create``, ``run -d``,
``exec -d --tty``), it needs ``--console-socket PATH``: it connects to that AF_UNIX
stream socket and sends one message whose data is the pty's name and whose ancillary
data is one SCM_RIGHTS file descriptor, the pty master (runc ``internal/cmsg``,
``tests/cmd/recvtty``; no JSON, no reply). :class:`ConsoleSocket` is that server;
:class:`Console` is the received master::

    with ConsoleSocket() as sock:
        runc.create("web", bundle, CreateOptions(console_socket=sock))
        with sock.receive() as console:
            runc.start("web")
            console.write(b"echo hi\\n")
            print(console.read_until(b"hi"))

Output arrives with CRLF line endings (the pty's ``onlcr``); stdout and stderr share it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import shutil
import socket
import struct
import tempfile
import termios
import time
from pathlib import Path
from types import TracebackType

__all__ = ["Console", "ConsoleSocket"]


class Console:
    """A pty master received from the runtime. Closing it hangs up the container's tty."""

    def __init__(self, fd: int, name: str = "") -> None:
        os.set_inheritable(fd, False)
        self._fd = fd
        self.name = name

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("console is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def read(self, size: int = 65536, timeout: float | None = None) -> bytes:
        """Up to ``size`` bytes; ``b""`` once the tty is hung up (every process that had
        it open has exited). Raises :class:`TimeoutError` when nothing arrives in time."""
        fd = self.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            raise TimeoutError(f"no output on console {self.name or fd} in {timeout} s")
        try:
            return os.read(fd, size)
        except OSError as exc:
            if exc.errno == errno.EIO:  # the slave side is closed
                return b""
            raise

    def read_until(self, marker: bytes, timeout: float = 10.0) -> bytes:
        """Everything read until ``marker`` has appeared (or the tty hung up)."""
        deadline = time.monotonic() + timeout
        data = b""
        while marker not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{marker!r} not seen on console {self.name} in "
                                   f"{timeout} s; got {data[-200:]!r}")
            chunk = self.read(timeout=left)
            if not chunk:
                break
            data += chunk
        return data

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fileno(), view)
            view = view[written:]

    def resize(self, rows: int, columns: int) -> None:
        """Set the window size (TIOCSWINSZ; the container sees SIGWINCH)."""
        fcntl.ioctl(self.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def size(self) -> tuple[int, int]:
        """``(rows, columns)`` of the window (TIOCGWINSZ)."""
        raw = fcntl.ioctl(self.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, columns, _, _ = struct.unpack("HHHH", raw)
        return rows, columns

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> Console:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Console(fd={self._fd}, name={self.name!r})"


class ConsoleSocket(os.PathLike[str]):
    """An AF_UNIX stream socket in a private temporary directory (mode 0700) that accepts
    one connection from the runtime and receives the pty master from it.

    It is path-like, so it can be given directly as ``console_socket=``. The runtime
    connects and sends during ``create``/``run -d``; the kernel queues the connection, so
    :meth:`receive` may be called after that call returned. Abstract sockets are not
    supported by runc, hence the filesystem path. ``close`` removes the directory.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ocistack-console-", dir=directory))
        self._path = self._dir / "console.sock"
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.bind(str(self._path))
            self._sock.listen(1)
        except BaseException:
            self.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    def __fspath__(self) -> str:
        return str(self._path)

    def receive(self, timeout: float | None = 30.0) -> Console:
        """Accept the runtime's connection and return the pty master it sent.

        Raises :class:`TimeoutError` when no runtime connects in time."""
        if self._sock is None:
            raise ValueError("console socket is closed")
        self._sock.settimeout(timeout)
        try:
            conn, _ = self._sock.accept()
        except TimeoutError:
            raise TimeoutError(f"no runtime connected to {self._path} in {timeout} s"
                               ) from None
        with conn:
            conn.settimeout(timeout)
            name, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        if not fds:
            raise OSError(f"the runtime connected to {self._path} but sent no fd")
        for extra in fds[1:]:
            os.close(extra)
        return Console(fds[0], name.decode(errors="replace").rstrip("\0"))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ConsoleSocket:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ConsoleSocket({str(self._path)!r})"
