"""A typed wrapper around the ``runc`` (or ``crun``) command line, shaped like containerd's
go-runc: one method per subcommand, options objects that render their own argv, an
injectable process runner, and typed errors.

Decisions (see docs/runc.md):

* **runc's failures versus the container's exit status.** ``run`` (foreground) and
  ``exec`` return the container process's exit status as an ``int`` (128+N for a death
  by signal N). runc's own failure raises :class:`RuncError`; it is told apart by the
  error runc writes to its JSON log (``--log FILE --log-format json``), which every call
  gets -- a private temporary file unless :attr:`Runc.log` names one.
* **No pipes for container stdio.** ``create``, ``run`` and ``exec`` hand runc's stdio
  to the container, so they never capture it: stdio comes from a
  :class:`~oci_runtime._process.ProcessIO` (``/dev/null`` by default for detached calls,
  the caller's own fds for foreground ones). Only calls that start no process
  (``state``, ``list``, ``ps`` ...) read runc's stdout through a pipe.
* **NOTIFY_SOCKET is never inherited.** runc forwards sd_notify messages whenever
  ``NOTIFY_SOCKET`` is in its environment; it is removed from every call's environment
  (as are ``LISTEN_FDS``/``LISTEN_PID``/``LISTEN_FDNAMES``, whose fds are not passed on)
  and set only from an explicit ``notify_socket=`` option.
* ``binary`` may be ``"crun"``; ``prefix`` runs the binary through a wrapper command
  (e.g. ``unshare -m ... sh -c '... exec "$0" "$@"'``).
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal as signal_module
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from types import TracebackType
from typing import Any

import attrs

from ._process import (
    Command,
    Completed,
    ProcessIO,
    ProcessRunner,
    Spawned,
    SubprocessRunner,
    fds_to_keep,
)
from .errors import ContainerNotFoundError, RuncError, RuncNotFoundError

__all__ = [
    "ContainerState",
    "CreateOptions",
    "Event",
    "EventStream",
    "ExecOptions",
    "Features",
    "LogEntry",
    "ProcessTable",
    "RunOptions",
    "Runc",
    "RuntimeVersion",
    "is_not_found",
    "parse_log",
]

#: environment variables that make runc do something on its own: never inherited
SCRUBBED_ENV = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
_ERROR_LEVELS = frozenset({"error", "fatal", "panic"})


def _opt_abspath(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.path.abspath(os.fspath(value))


def _str_tuple(value: Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("expected a sequence of strings, not one string")
    return tuple(str(v) for v in value)


# -------------------------------------------------------------------------------------
# JSON log and errors


@attrs.frozen
class LogEntry:
    """One line of runc's (or crun's) ``--log-format json`` log."""

    level: str
    msg: str
    time: str = ""

    @property
    def is_error(self) -> bool:
        return self.level in _ERROR_LEVELS


def parse_log(data: bytes | str) -> tuple[LogEntry, ...]:
    """The entries of a JSON log: runc writes ``{"level","msg","time"}`` objects, crun
    ``{"msg","level","time"}``. A line that is not a JSON object is kept with an empty
    level (it never counts as an error)."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    entries: builtins.list[LogEntry] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            entries.append(LogEntry(str(obj.get("level", "")), str(obj.get("msg", "")),
                                    str(obj.get("time", ""))))
        else:
            entries.append(LogEntry("", line))
    return tuple(entries)


def is_not_found(message: str, container_id: str, *, flavor: str = "runc") -> bool:
    """Whether a runtime error message says the container does not exist: runc says
    "container does not exist"; crun 1.8 names the missing state file or directory
    (``error opening file `ROOT/ID/status`: No such file or directory``)."""
    lowered = message.lower()
    if "not exist" in lowered:
        return True
    return (flavor == "crun" and "no such file or directory" in lowered
            and f"/{container_id}" in message)


# -------------------------------------------------------------------------------------
# options: each renders its own subcommand argv


@attrs.frozen
class CreateOptions:
    """Options of ``create`` (always detached: runc's ``create`` has no ``--detach``).

    ``console_socket`` (a path, or a :class:`~oci_runtime.console.ConsoleSocket`) is
    required when ``process.terminal`` is true. ``preserve_fds=N`` passes the caller's
    fds 3..3+N-1 on to the container. ``notify_socket`` is not a flag: it becomes
    ``NOTIFY_SOCKET`` in runc's environment (see the module docstring).
    """

    pid_file: str | None = attrs.field(default=None, converter=_opt_abspath)
    console_socket: str | None = attrs.field(default=None, converter=_opt_abspath)
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    notify_socket: str | None = attrs.field(default=None, converter=_opt_abspath)
    extra_args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    def _flags(self, bundle: str | os.PathLike[str]) -> builtins.list[str]:
        args = ["--bundle", os.path.abspath(os.fspath(bundle))]
        if self.console_socket is not None:
            args += ["--console-socket", self.console_socket]
        if self.pid_file is not None:
            args += ["--pid-file", self.pid_file]
        if self.no_pivot:
            args.append("--no-pivot")
        if self.no_new_keyring:
            args.append("--no-new-keyring")
        if self.preserve_fds:
            args += ["--preserve-fds", str(self.preserve_fds)]
        return args

    def argv(self, container_id: str, bundle: str | os.PathLike[str]) -> builtins.list[str]:
        return ["create", *self._flags(bundle), *self.extra_args, container_id]


@attrs.frozen
class RunOptions(CreateOptions):
    """Options of ``run``: those of ``create`` plus ``detach`` (``-d``), ``keep`` (do
    not delete the container when it exits) and ``no_subreaper``."""

    detach: bool = False
    keep: bool = False
    no_subreaper: bool = False

    def argv(self, container_id: str, bundle: str | os.PathLike[str]) -> builtins.list[str]:
        args = ["run", *self._flags(bundle)]
        if self.detach:
            args.append("--detach")
        if self.keep:
            args.append("--keep")
        if self.no_subreaper:
            args.append("--no-subreaper")
        return [*args, *self.extra_args, container_id]


def _int_tuple(value: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _env_items(value: Mapping[str, str] | Sequence[str]) -> tuple[str, ...]:
    if isinstance(value, Mapping):
        return tuple(f"{k}={v}" for k, v in value.items())
    return _str_tuple(value)


@attrs.frozen
class ExecOptions:
    """Options of ``exec``: the process is either ``args`` (with ``env``, ``cwd``,
    ``user`` ...), or a whole runtime-spec ``process`` object (written to a temporary
    file and passed as ``--process``), or an existing ``process_file``.

    ``user`` is ``"uid[:gid]"`` (numeric; runc does not resolve names). ``tty`` needs a
    real terminal on the caller's stdio unless ``detach`` with ``console_socket``.
    """

    args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    process: Mapping[str, Any] | None = None
    process_file: str | None = attrs.field(default=None, converter=_opt_abspath)
    env: tuple[str, ...] = attrs.field(default=(), converter=_env_items)
    cwd: str | None = None
    user: str | None = attrs.field(default=None, converter=attrs.converters.optional(str))
    additional_gids: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    capabilities: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    no_new_privileges: bool = False
    apparmor: str | None = None
    process_label: str | None = None
    cgroup: str | None = None
    tty: bool = False
    console_socket: str | None = attrs.field(default=None, converter=_opt_abspath)
    detach: bool = False
    pid_file: str | None = attrs.field(default=None, converter=_opt_abspath)
    preserve_fds: int = 0
    extra_args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    def __attrs_post_init__(self) -> None:
        given = sum((bool(self.args), self.process is not None, self.process_file is not None))
        if given != 1:
            raise ValueError("ExecOptions needs exactly one of args, process, process_file")

    def argv(self, container_id: str) -> builtins.list[str]:
        """The argv; a ``process`` mapping must first be written to a file
        (:meth:`Runc.exec` does that and passes ``process_file``)."""
        if self.process is not None and self.process_file is None:
            raise ValueError("ExecOptions.process must be written to process_file first")
        args = ["exec"]
        if self.process_file is not None:
            args += ["--process", self.process_file]
        if self.cwd is not None:
            args += ["--cwd", self.cwd]
        for item in self.env:
            args += ["--env", item]
        if self.user is not None:
            args += ["--user", self.user]
        for gid in self.additional_gids:
            args += ["--additional-gids", str(gid)]
        for cap in self.capabilities:
            args += ["--cap", cap]
        if self.no_new_privileges:
            args.append("--no-new-privs")
        if self.apparmor is not None:
            args += ["--apparmor", self.apparmor]
        if self.process_label is not None:
            args += ["--process-label", self.process_label]
        if self.cgroup is not None:
            args += ["--cgroup", self.cgroup]
        if self.tty:
            args.append("--tty")
        if self.console_socket is not None:
            args += ["--console-socket", self.console_socket]
        if self.detach:
            args.append("--detach")
        if self.pid_file is not None:
            args += ["--pid-file", self.pid_file]
        if self.preserve_fds:
            args += ["--preserve-fds", str(self.preserve_fds)]
        args += [*self.extra_args, container_id]
        if self.process_file is None:
            args += self.args
        return args


# -------------------------------------------------------------------------------------
# results


@attrs.frozen
class ContainerState:
    """``runc state`` / one entry of ``runc list``: the runtime-spec state plus runc's
    and crun's extra fields. ``status`` may be any string (runc adds ``paused``)."""

    id: str
    status: str
    pid: int = 0
    bundle: str = ""
    rootfs: str = ""
    created: str = ""
    owner: str = ""
    oci_version: str = ""
    annotations: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ContainerState:
        annotations = data.get("annotations") or {}
        return cls(id=str(data["id"]), status=str(data.get("status", "")),
                   pid=int(data.get("pid") or 0), bundle=str(data.get("bundle", "")),
                   rootfs=str(data.get("rootfs", "")), created=str(data.get("created", "")),
                   owner=str(data.get("owner", "")),
                   oci_version=str(data.get("ociVersion", "")),
                   annotations={str(k): str(v) for k, v in dict(annotations).items()})


@attrs.frozen
class Event:
    """One event of ``runc events``: ``type`` is ``stats``, ``oom``, ...; ``data`` the
    raw JSON payload (for stats: ``cpu``, ``memory``, ``pids``, ``blkio`` ...)."""

    type: str
    id: str
    data: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Event:
        return cls(str(obj.get("type", "")), str(obj.get("id", "")), obj.get("data") or {})


@attrs.frozen
class ProcessTable:
    """``runc ps ID [ps args]`` in table form: the header columns and one row per
    process (the last column keeps its spaces)."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> ProcessTable:
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            return cls((), ())
        headers = tuple(lines[0].split())
        rows = tuple(tuple(line.split(None, len(headers) - 1)) for line in lines[1:])
        return cls(headers, rows)


@attrs.frozen
class RuntimeVersion:
    """``runc --version`` or ``crun --version``, parsed. runc prints ``commit``, ``spec``,
    ``go``, ``libseccomp``; crun prints ``commit``, ``rundir``, ``spec`` and a line of
    ``+FEATURE``/``-FEATURE`` flags. Other keys land in ``details``."""

    runtime: str
    version: str
    commit: str = ""
    spec: str = ""
    details: Mapping[str, str] = attrs.field(factory=dict)
    features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> RuntimeVersion:
        runtime = version = commit = spec = ""
        details: dict[str, str] = {}
        features: builtins.list[str] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line:
                continue
            if not runtime and " version " in line:
                runtime, _, version = line.partition(" version ")
                version = version.strip()
            elif all(token[0] in "+-" for token in line.split()):
                features += line.split()
            elif ":" in line:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "commit":
                    commit = value
                elif key == "spec":
                    spec = value
                else:
                    details[key] = value
        return cls(runtime.strip(), version, commit, spec, details, tuple(features))


@attrs.frozen
class Features:
    """``runc features`` (runtime-spec ``features.md``); ``raw`` holds the whole JSON."""

    raw: Mapping[str, Any]

    @property
    def oci_version_min(self) -> str:
        return str(self.raw.get("ociVersionMin", ""))

    @property
    def oci_version_max(self) -> str:
        return str(self.raw.get("ociVersionMax", ""))

    @property
    def hooks(self) -> tuple[str, ...]:
        return tuple(self.raw.get("hooks") or ())

    @property
    def mount_options(self) -> tuple[str, ...]:
        return tuple(self.raw.get("mountOptions") or ())

    @property
    def linux(self) -> Mapping[str, Any]:
        return dict(self.raw.get("linux") or {})

    @property
    def annotations(self) -> Mapping[str, str]:
        return dict(self.raw.get("annotations") or {})


# -------------------------------------------------------------------------------------
# the wrapper


@attrs.frozen(eq=False)
class _Log:
    path: str
    offset: int
    temporary: bool

    def entries(self) -> tuple[LogEntry, ...]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                return parse_log(f.read())
        except FileNotFoundError:
            return ()

    def discard(self) -> None:
        if self.temporary:
            with suppress(FileNotFoundError):
                os.unlink(self.path)


@attrs.frozen(eq=False)
class _Outcome:
    argv: tuple[str, ...]
    completed: Completed
    entries: tuple[LogEntry, ...]


def _signal_arg(sig: int | str) -> str:
    if isinstance(sig, str):
        return sig
    return str(int(sig))


def _runner_default() -> ProcessRunner:
    return SubprocessRunner()


@attrs.frozen
class Runc:
    """The runtime command line (global options) and one method per subcommand.

    * ``binary``: ``"runc"``, ``"crun"`` or a path; looked up on ``PATH``.
    * ``root``: the state directory (``--root``); ``None`` is the runtime's default
      (``/run/runc``). Tests and embedders should always give a private one.
    * ``log``: a file runc appends its JSON log to; ``None`` gives each call a private
      temporary log (in ``temp_dir``) that is read for errors and removed.
    * ``systemd_cgroup``, ``rootless`` (``None`` = the runtime decides), ``debug``.
    * ``prefix``: a command the runtime is run through (``unshare ...``, ``nsenter ...``);
      it must exec ``binary`` with the arguments appended to it.
    * ``env``: variables added to the runtime's environment (after scrubbing).
    * ``timeout``: seconds for every call that does not run a container process in the
      foreground (``run`` and ``exec`` take their own ``timeout``).
    * ``runner``: the :class:`~oci_runtime._process.ProcessRunner` (tests inject one).
    """

    binary: str = "runc"
    root: str | None = attrs.field(default=None, converter=_opt_abspath)
    log: str | None = attrs.field(default=None, converter=_opt_abspath)
    systemd_cgroup: bool = False
    rootless: bool | None = None
    debug: bool = False
    prefix: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    extra_args: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    env: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float | None = 120.0
    temp_dir: str | None = attrs.field(default=None, converter=_opt_abspath)
    runner: ProcessRunner = attrs.field(factory=_runner_default, eq=False, repr=False)

    # --- plumbing -----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The runtime's name for messages: ``runc``, ``crun`` ..."""
        return os.path.basename(self.binary)

    @property
    def flavor(self) -> str:
        """``"crun"`` when the binary is crun, else ``"runc"``."""
        return "crun" if self.name.startswith("crun") else "runc"

    def global_argv(self, log_path: str) -> builtins.list[str]:
        """Everything before the subcommand, with runc's log going to ``log_path``."""
        args = [*self.prefix, self._program()]
        if self.root is not None:
            args += ["--root", self.root]
        args += ["--log", log_path, "--log-format", "json"]
        if self.debug:
            args.append("--debug")
        if self.systemd_cgroup:
            args.append("--systemd-cgroup")
        if self.rootless is not None:
            args += ["--rootless", "true" if self.rootless else "false"]
        return [*args, *self.extra_args]

    def environment(self, notify_socket: str | None = None) -> dict[str, str]:
        """The runtime's environment: ours without :data:`SCRUBBED_ENV`, plus ``env``,
        plus ``NOTIFY_SOCKET`` only when asked for."""
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
        env.update(self.env)
        if notify_socket is not None:
            env["NOTIFY_SOCKET"] = os.fspath(notify_socket)
        return env

    def _program(self) -> str:
        if not self.prefix or "/" in self.binary:
            return self.binary  # the runner searches PATH and reports a missing binary
        found = shutil.which(self.binary, path=self.environment().get("PATH"))
        if found is None:
            raise RuncNotFoundError(f"{self.binary}: runtime binary not found on PATH")
        return found

    @contextmanager
    def _open_log(self) -> Iterator[_Log]:
        if self.log is not None:
            try:
                offset = os.path.getsize(self.log)
            except FileNotFoundError:
                offset = 0
            log = _Log(self.log, offset, temporary=False)
        else:
            fd, path = tempfile.mkstemp(prefix=f"{self.name}-log-", suffix=".json",
                                        dir=self.temp_dir)
            os.close(fd)
            log = _Log(path, 0, temporary=True)
        try:
            yield log
        finally:
            log.discard()

    @contextmanager
    def _json_file(self, obj: object, what: str) -> Iterator[str]:
        fd, path = tempfile.mkstemp(prefix=f"{self.name}-{what}-", suffix=".json",
                                    dir=self.temp_dir)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(obj, f)
            yield path
        finally:
            with suppress(FileNotFoundError):
                os.unlink(path)

    def _error(self, argv: Sequence[str], completed: Completed,
               entries: Sequence[LogEntry], what: str,
               container_id: str | None) -> RuncError:
        errors = [e.msg for e in entries if e.is_error]
        if errors:
            logged = errors[-1]
        else:
            stderr = completed.stderr.decode(errors="replace").strip()
            logged = stderr.splitlines()[-1] if stderr else (
                f"exited with status {completed.exit_code}")
        message = f"{self.name} {what}: {logged}"
        if container_id is not None and is_not_found(logged, container_id,
                                                     flavor=self.flavor):
            return ContainerNotFoundError(message, argv=argv, exit_code=completed.exit_code)
        return RuncError(message, argv=argv, exit_code=completed.exit_code)

    def _execute(self, args: Sequence[str], *, what: str, container_id: str | None = None,
                 io: ProcessIO | None = None, capture: bool = False,
                 input: bytes | None = None, preserve_fds: int = 0,
                 notify_socket: str | None = None, timeout: float | None = None,
                 check: bool = True) -> _Outcome:
        """Run one subcommand; with ``check``, any non-zero exit raises."""
        with self._open_log() as log:
            argv = [*self.global_argv(log.path), *args]
            command = Command(argv, self.environment(notify_socket), io or ProcessIO(),
                              capture=capture, input=input,
                              pass_fds=fds_to_keep(preserve_fds), timeout=timeout)
            try:
                completed = self.runner.run(command)
            except FileNotFoundError as exc:
                raise RuncNotFoundError(
                    f"{self.binary}: runtime binary not found ({exc.strerror or exc})"
                ) from exc
            except subprocess.TimeoutExpired as exc:
                raise RuncError(f"{self.name} {what}: timed out after {exc.timeout} s",
                                argv=argv) from None
            entries = log.entries()
        if check and completed.exit_code != 0:
            raise self._error(argv, completed, entries, what, container_id)
        return _Outcome(tuple(argv), completed, entries)

    def _exit_status(self, outcome: _Outcome, what: str, container_id: str) -> int:
        """A foreground process's status, unless runc itself logged a failure."""
        completed = outcome.completed
        if completed.exit_code != 0 and any(e.is_error for e in outcome.entries):
            raise self._error(outcome.argv, completed, outcome.entries, what, container_id)
        return completed.exit_code

    def _json(self, args: Sequence[str], *, what: str,
              container_id: str | None = None) -> Any:
        completed = self._execute(args, what=what, container_id=container_id,
                                  capture=True, timeout=self.timeout).completed
        try:
            return json.loads(completed.stdout)
        except ValueError as exc:
            raise RuncError(f"{self.name} {what}: output is not JSON: "
                            f"{completed.stdout[:200]!r}", exit_code=0) from exc

    # --- lifecycle ------------------------------------------------------------------

    def create(self, container_id: str, bundle: str | os.PathLike[str],
               options: CreateOptions | None = None, *, io: ProcessIO | None = None) -> None:
        """``runc create``: set the container up without starting ``process.args``.

        ``io`` becomes the container's stdio (default ``/dev/null``); runc's errors come
        from its log, so this never blocks on a pipe the container holds."""
        options = options or CreateOptions()
        self._execute(options.argv(container_id, bundle), what=f"create {container_id}",
                      io=io, preserve_fds=options.preserve_fds,
                      notify_socket=options.notify_socket, timeout=self.timeout)

    def start(self, container_id: str, *, notify_socket: str | os.PathLike[str] | None = None
              ) -> None:
        """``runc start``. With ``notify_socket`` (for a container created with one),
        runc waits for the container's ``READY=1`` and forwards it there; then no
        timeout applies."""
        socket_path = _opt_abspath(notify_socket)
        self._execute(["start", container_id], what=f"start {container_id}",
                      container_id=container_id, notify_socket=socket_path,
                      timeout=None if socket_path else self.timeout)

    def run(self, container_id: str, bundle: str | os.PathLike[str],
            options: RunOptions | None = None, *, io: ProcessIO | None = None,
            timeout: float | None = None) -> int:
        """``runc run``. In the foreground (default) returns the container's exit status
        and passes the caller's stdio through unless ``io`` says otherwise; runc's own
        failure raises :class:`RuncError`. With ``RunOptions(detach=True)`` returns 0
        once the container runs (stdio default ``/dev/null``).

        On ``timeout`` (foreground) the container is deleted with ``--force`` and
        :class:`RuncError` is raised."""
        options = options or RunOptions()
        what = f"run {container_id}"
        if options.detach:
            self._execute(options.argv(container_id, bundle), what=what, io=io,
                          preserve_fds=options.preserve_fds,
                          notify_socket=options.notify_socket, timeout=self.timeout)
            return 0
        try:
            outcome = self._execute(
                options.argv(container_id, bundle), what=what,
                io=io or ProcessIO.inherit(), preserve_fds=options.preserve_fds,
                notify_socket=options.notify_socket, timeout=timeout, check=False)
        except RuncError:
            if timeout is not None:  # runc was killed: the container must not linger
                with suppress(RuncError):
                    self.delete(container_id, force=True)
            raise
        return self._exit_status(outcome, what, container_id)

    def exec(self, container_id: str, options: ExecOptions | Sequence[str], *,
             io: ProcessIO | None = None, timeout: float | None = None) -> int:
        """``runc exec``: run another process in a running container. Returns its exit
        status (foreground; runc's own failures, exit 255 with a logged error, raise),
        or 0 with ``detach``. A list of strings is shorthand for ``ExecOptions(args)``.
        Foreground stdio defaults to the caller's; detached to ``/dev/null``."""
        if not isinstance(options, ExecOptions):
            options = ExecOptions(args=options)
        what = f"exec {container_id}"
        if options.process is not None and options.process_file is None:
            with self._json_file(dict(options.process), "process") as path:
                return self.exec(container_id, attrs.evolve(options, process=None,
                                                            process_file=path),
                                 io=io, timeout=timeout)
        if options.detach:
            self._execute(options.argv(container_id), what=what, container_id=container_id,
                          io=io, preserve_fds=options.preserve_fds, timeout=self.timeout)
            return 0
        outcome = self._execute(
            options.argv(container_id), what=what, container_id=container_id,
            io=io or ProcessIO.inherit(), preserve_fds=options.preserve_fds,
            timeout=timeout, check=False)
        return self._exit_status(outcome, what, container_id)

    def kill(self, container_id: str, signal: int | str = signal_module.SIGTERM, *,
             all_processes: bool = False) -> None:
        """``runc kill ID SIGNAL`` (a number, a :class:`signal.Signals`, or a name such as
        ``"KILL"``); ``all_processes`` adds ``--all``."""
        args = ["kill", *(["--all"] if all_processes else []), container_id,
                _signal_arg(signal)]
        self._execute(args, what=f"kill {container_id}", container_id=container_id,
                      timeout=self.timeout)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """``runc delete [--force]``. With ``force`` a running container is killed, and
        an unknown one is not an error (runc's behaviour)."""
        args = ["delete", *(["--force"] if force else []), container_id]
        self._execute(args, what=f"delete {container_id}", container_id=container_id,
                      timeout=self.timeout)

    def pause(self, container_id: str) -> None:
        self._execute(["pause", container_id], what=f"pause {container_id}",
                      container_id=container_id, timeout=self.timeout)

    def resume(self, container_id: str) -> None:
        self._execute(["resume", container_id], what=f"resume {container_id}",
                      container_id=container_id, timeout=self.timeout)

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """``runc update --resources FILE``: ``resources`` is a runtime-spec
        ``linux.resources`` object, e.g. ``{"pids": {"limit": 10}}``."""
        with self._json_file(dict(resources), "resources") as path:
            self._execute(["update", "--resources", path, container_id],
                          what=f"update {container_id}", container_id=container_id,
                          timeout=self.timeout)

    # --- queries --------------------------------------------------------------------

    def state(self, container_id: str) -> ContainerState:
        data = self._json(["state", container_id], what=f"state {container_id}",
                          container_id=container_id)
        return ContainerState.from_json(data)

    def list(self) -> tuple[ContainerState, ...]:
        """``runc list --format json`` (runc prints ``null`` when there are none)."""
        data = self._json(["list", "--format", "json"], what="list")
        return tuple(ContainerState.from_json(item) for item in data or ())

    def ps(self, container_id: str) -> tuple[int, ...]:
        """The host pids of the container's processes (``runc ps --format json``)."""
        data = self._json(["ps", "--format", "json", container_id],
                          what=f"ps {container_id}", container_id=container_id)
        return tuple(int(pid) for pid in data or ())

    def top(self, container_id: str, ps_args: Sequence[str] = ("-ef",)) -> ProcessTable:
        """``runc ps ID PS_ARGS``: the host ``ps`` table of the container's processes
        (runc stops parsing its own flags at the ID, so ``-ef`` reaches ``ps``)."""
        completed = self._execute(["ps", container_id, *ps_args],
                                  what=f"ps {container_id}", container_id=container_id,
                                  capture=True, timeout=self.timeout).completed
        return ProcessTable.parse(completed.stdout.decode(errors="replace"))

    def stats(self, container_id: str) -> Event:
        """One statistics snapshot: ``runc events --stats``."""
        data = self._json(["events", "--stats", container_id],
                          what=f"events {container_id}", container_id=container_id)
        return Event.from_json(data)

    def events(self, container_id: str, interval: float = 5.0) -> EventStream:
        """A stream of events (``runc events --interval``): statistics every
        ``interval`` seconds and OOM notifications. Close it (or use ``with``) to stop
        the runc process."""
        stack = ExitStack()
        try:
            log = stack.enter_context(self._open_log())
            argv = [*self.global_argv(log.path), "events", "--interval",
                    f"{interval:g}s", container_id]
            command = Command(argv, self.environment())
            try:
                proc = self.runner.spawn(command)
            except FileNotFoundError as exc:
                raise RuncNotFoundError(
                    f"{self.binary}: runtime binary not found ({exc.strerror or exc})"
                ) from exc
        except BaseException:
            stack.close()
            raise
        return EventStream(self, proc, stack, log, argv, container_id)

    def features(self) -> Features:
        """``runc features`` (runc >= 1.1; crun 1.8 answers "unknown command",
        raised as :class:`RuncError`)."""
        return Features(self._json(["features"], what="features"))

    def version(self) -> RuntimeVersion:
        """``BINARY --version``, parsed (runc and crun print different fields)."""
        completed = self._execute(["--version"], what="--version", capture=True,
                                  timeout=self.timeout).completed
        return RuntimeVersion.parse(completed.stdout.decode(errors="replace"))


class EventStream:
    """The events of a running ``runc events`` process, one :class:`Event` per line.
    Iteration ends when runc exits (raising :class:`RuncError` if it failed, e.g. the
    container is gone); :meth:`close` stops it."""

    def __init__(self, runc: Runc, proc: Spawned, cleanup: ExitStack, log: _Log,
                 argv: Sequence[str], container_id: str) -> None:
        self._runc = runc
        self._proc = proc
        self._cleanup = cleanup
        self._log = log
        self._argv = tuple(argv)
        self._id = container_id
        self._closed = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        stdout = self._proc.stdout
        if self._closed or stdout is None:
            raise StopIteration
        while True:
            line = stdout.readline()
            if not line:
                break
            if line.strip():
                try:
                    return Event.from_json(json.loads(line))
                except ValueError:
                    continue
        exit_code = self._proc.wait()
        entries = self._log.entries()
        self.close()
        if exit_code != 0:
            raise self._runc._error(self._argv, Completed(exit_code), entries,
                                    f"events {self._id}", self._id)
        raise StopIteration

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._cleanup.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
