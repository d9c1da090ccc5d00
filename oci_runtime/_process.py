"""The process seam of :class:`oci_runtime.runc.Runc`: what to run, with which stdio, and
the injectable runner that runs it (go-runc's ``Monitor``/``IO``, reduced to data).

Two kinds of runtime call exist, and they must not be confused:

* calls that start no container process (``state``, ``list``, ``ps``, ``features``,
  ``events``, ``--version`` ...) may capture runc's stdout and stderr through pipes
  (``Command.capture``);
* calls that start or join a container (``create``, ``run``, ``exec``) hand runc's stdio
  to the container process. A pipe given to them is inherited by the container, so a
  reader waiting for its end would wait as long as the container lives (runc #1721,
  go-runc #31). They therefore never capture: their stdio comes from a
  :class:`ProcessIO` (``/dev/null``, the caller's fds, files or paths), and runc's own
  errors are read from its JSON log file instead.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from typing import IO, Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "Command",
    "Completed",
    "ProcessIO",
    "ProcessRunner",
    "Spawned",
    "StdioTarget",
    "SubprocessRunner",
]


@runtime_checkable
class _HasFileno(Protocol):
    def fileno(self) -> int: ...


#: Where one standard stream goes: ``None`` is ``/dev/null``; an ``int`` is an open file
#: descriptor; an object with ``fileno()`` (an open file, a socket) is used as is; a
#: path (``str`` or ``os.PathLike``) is opened by the runner (stdin for reading, stdout
#: and stderr for appending) and closed after the call.
StdioTarget = int | _HasFileno | str | os.PathLike[str] | None


def _check_target(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None or isinstance(value, int | str | os.PathLike | _HasFileno):
        return
    raise TypeError(f"ProcessIO.{attribute.name}: expected None, an fd, a file or a path, "
                    f"not {type(value).__name__}")


@attrs.frozen
class ProcessIO:
    """The stdio of a container process started by ``create``, ``run`` or ``exec``.

    The default is ``/dev/null`` for all three, which is always safe. Never pass the
    write end of a pipe you are going to read to its end while the container runs:
    the container keeps it open. Files, the caller's own fds and ptys are fine.
    """

    stdin: StdioTarget = attrs.field(default=None, validator=_check_target)
    stdout: StdioTarget = attrs.field(default=None, validator=_check_target)
    stderr: StdioTarget = attrs.field(default=None, validator=_check_target)

    @classmethod
    def null(cls) -> ProcessIO:
        """``/dev/null`` for stdin, stdout and stderr."""
        return cls()

    @classmethod
    def inherit(cls) -> ProcessIO:
        """The caller's own fds 0, 1 and 2 (pass-through, as a foreground run wants)."""
        return cls(0, 1, 2)


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


@attrs.frozen
class Command:
    """One invocation of the runtime binary, as data (what a fake runner records)."""

    argv: tuple[str, ...] = attrs.field(converter=_strs)
    env: Mapping[str, str] = attrs.field(factory=dict)
    io: ProcessIO = attrs.field(factory=ProcessIO)
    #: capture stdout and stderr through pipes (only for calls that start no container)
    capture: bool = False
    #: bytes for stdin when capturing (``update --resources -`` style); else /dev/null
    input: bytes | None = None
    #: extra fds the child keeps (``--preserve-fds``: 3 .. 3+N-1)
    pass_fds: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    timeout: float | None = None


@attrs.frozen
class Completed:
    """How a :class:`Command` ended. ``stdout``/``stderr`` are empty unless captured."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


class Spawned(Protocol):
    """A running runtime process whose stdout is read line by line (``events``)."""

    @property
    def pid(self) -> int: ...

    @property
    def stdout(self) -> IO[bytes] | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class ProcessRunner(Protocol):
    """Runs runtime commands. The default is :class:`SubprocessRunner`; tests inject a
    recorder that returns canned results. ``run`` raises :class:`FileNotFoundError` when
    the program cannot be executed and :class:`subprocess.TimeoutExpired` on timeout
    (after killing it)."""

    def run(self, command: Command) -> Completed: ...

    def spawn(self, command: Command) -> Spawned: ...


def _open(stack: ExitStack, target: StdioTarget, mode: str) -> int | IO[bytes]:
    if target is None:
        return subprocess.DEVNULL
    if isinstance(target, int):
        return target
    if isinstance(target, str | os.PathLike):
        return stack.enter_context(open(target, mode))
    return target.fileno()


@attrs.frozen
class SubprocessRunner:
    """The default runner: :mod:`subprocess`, all other fds closed, no shell."""

    def run(self, command: Command) -> Completed:
        if command.capture:
            result = subprocess.run(
                list(command.argv), env=dict(command.env), capture_output=True,
                input=command.input if command.input is not None else b"",
                timeout=command.timeout, pass_fds=command.pass_fds, check=False)
            return Completed(result.returncode, result.stdout, result.stderr)
        with ExitStack() as stack:
            stdin = _open(stack, command.io.stdin, "rb")
            stdout = _open(stack, command.io.stdout, "ab")
            stderr = _open(stack, command.io.stderr, "ab")
            proc = subprocess.Popen(list(command.argv), env=dict(command.env), stdin=stdin,
                                    stdout=stdout, stderr=stderr, pass_fds=command.pass_fds)
            try:
                return Completed(proc.wait(timeout=command.timeout))
            except BaseException:
                # a timeout or an interrupt: the runtime must not outlive the call
                proc.kill()
                proc.wait()
                raise

    def spawn(self, command: Command) -> Spawned:
        with ExitStack() as stack:
            stderr = _open(stack, command.io.stderr, "ab")
            return subprocess.Popen(list(command.argv), env=dict(command.env),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=stderr, pass_fds=command.pass_fds)


def fds_to_keep(count: int) -> Sequence[int]:
    """The fds ``--preserve-fds count`` passes on: 3 .. 3+count-1."""
    return tuple(range(3, 3 + count))
