"""oci_runtime.runc without runc: golden argv of every subcommand, the environment
(NOTIFY_SOCKET), stdio choices, JSON-log errors, exit statuses versus runc failures,
output parsing, the missing-binary error and the console socket's fd passing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import tty
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from oci_runtime._process import Command, Completed, ProcessIO, SubprocessRunner
from oci_runtime.console import ConsoleSocket
from oci_runtime.errors import ContainerNotFoundError, RuncError, RuncNotFoundError
from oci_runtime.runc import (
    ContainerState,
    CreateOptions,
    Event,
    ExecOptions,
    ProcessTable,
    Runc,
    RunOptions,
    RuntimeVersion,
    is_not_found,
    parse_log,
)

RUNC_ERROR = '{"level":"error","msg":"%s","time":"2026-11-28T06:01:19Z"}\n'
CRUN_ERROR = '{"msg": "%s", "level": "error", "time": "2026-11-28T06:01:28.293799Z"}\n'

Reply = Callable[[Command], Completed]


def log_path(command: Command) -> str:
    return command.argv[command.argv.index("--log") + 1]


def subcommand(command: Command) -> list[str]:
    """The argv after the global options (the fixture's Runc has no flags after
    ``--log-format json``)."""
    argv = list(command.argv)
    return argv[argv.index("--log-format") + 2:]


@attrs.define
class Recorder:
    """A fake runner: records each Command; ``reply`` may write runc's JSON log."""

    reply: Reply = lambda command: Completed(0)
    commands: list[Command] = attrs.Factory(list)
    files: dict[str, str] = attrs.Factory(dict)

    def run(self, command: Command) -> Completed:
        self.commands.append(command)
        for flag in ("--process", "--resources"):
            if flag in command.argv:
                path = command.argv[command.argv.index(flag) + 1]
                self.files[flag] = Path(path).read_text()
        return self.reply(command)

    def spawn(self, command: Command) -> subprocess.Popen[bytes]:
        self.commands.append(command)
        lines = "".join(json.dumps({"type": "stats", "id": "c", "data": {"n": i}}) + "\n"
                        for i in range(3))
        return subprocess.Popen(["printf", "%s", lines], stdout=subprocess.PIPE)

    @property
    def last(self) -> Command:
        return self.commands[-1]


def failing(message: str, exit_code: int = 1, template: str = RUNC_ERROR) -> Reply:
    def reply(command: Command) -> Completed:
        with open(log_path(command), "a") as f:
            f.write('{"level":"info","msg":"noise","time":"t"}\n')
            f.write(template % json.dumps(message)[1:-1])
        return Completed(exit_code)
    return reply


def stdout_of(data: object) -> Reply:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return lambda command: Completed(0, raw)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def runc(rec: Recorder, tmp_path: Path) -> Runc:
    return Runc(root="/run/test-root", runner=rec, temp_dir=str(tmp_path))


# -- golden argv ----------------------------------------------------------------------


def test_global_options(tmp_path: Path) -> None:
    r = Runc(binary="/usr/sbin/runc", root="/s", systemd_cgroup=True, rootless=False,
             debug=True, extra_args=["--criu", "/c"])
    assert r.global_argv("/l.json") == [
        "/usr/sbin/runc", "--root", "/s", "--log", "/l.json", "--log-format", "json",
        "--debug", "--systemd-cgroup", "--rootless", "false", "--criu", "/c"]
    assert Runc().global_argv("/l") == ["runc", "--log", "/l", "--log-format", "json"]
    assert Runc(rootless=True).global_argv("/l")[-2:] == ["--rootless", "true"]
    prefix = ["unshare", "-m", "sh", "-c", 'exec "$0" "$@"']
    crun = Runc(binary="/usr/bin/crun", prefix=prefix)
    assert crun.global_argv("/l")[:6] == [*prefix, "/usr/bin/crun"]
    assert crun.flavor == "crun"
    assert crun.name == "crun"
    assert Runc().flavor == "runc"


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    monkeypatch.chdir(tmp_path)
    assert Runc(root="state").root == str(tmp_path / "state")
    opts = CreateOptions(pid_file="pid", console_socket="c.sock")
    assert opts.argv("c1", "bundle") == [
        "create", "--bundle", str(tmp_path / "bundle"), "--console-socket",
        str(tmp_path / "c.sock"), "--pid-file", str(tmp_path / "pid"), "c1"]


def test_create_argv(runc: Runc, rec: Recorder) -> None:
    opts = CreateOptions(pid_file="/p/pid", console_socket="/p/c.sock", no_pivot=True,
                         no_new_keyring=True, preserve_fds=0, extra_args=["--x"])
    runc.create("c1", "/b", opts)
    cmd = rec.last
    assert cmd.argv[:4] == ("runc", "--root", "/run/test-root", "--log")
    assert subcommand(cmd) == [
        "create", "--bundle", "/b", "--console-socket", "/p/c.sock", "--pid-file",
        "/p/pid", "--no-pivot", "--no-new-keyring", "--x", "c1"]
    # create hands runc's stdio to the container: never captured, /dev/null by default
    assert not cmd.capture
    assert cmd.io == ProcessIO.null()
    assert cmd.timeout == runc.timeout


def test_run_argv_foreground_and_detached(runc: Runc, rec: Recorder) -> None:
    assert runc.run("c2", "/b") == 0
    assert subcommand(rec.last) == ["run", "--bundle", "/b", "c2"]
    assert rec.last.io == ProcessIO.inherit()
    assert rec.last.timeout is None
    assert runc.run("c3", "/b", RunOptions(detach=True, keep=True, no_subreaper=True,
                                           pid_file="/p")) == 0
    assert subcommand(rec.last) == ["run", "--bundle", "/b", "--pid-file", "/p",
                                    "--detach", "--keep", "--no-subreaper", "c3"]
    assert rec.last.io == ProcessIO.null()
    io = ProcessIO(stdout="/tmp/out")
    runc.run("c4", "/b", io=io)
    assert rec.last.io is io


def test_preserve_fds_keeps_fds_open(runc: Runc, rec: Recorder) -> None:
    runc.run("c", "/b", RunOptions(preserve_fds=2))
    assert "--preserve-fds" in subcommand(rec.last)
    assert rec.last.pass_fds == (3, 4)


def test_exec_argv(runc: Runc, rec: Recorder) -> None:
    opts = ExecOptions(args=["sh", "-c", "echo hi"], env={"A": "1", "B": "2"}, cwd="/tmp",
                       user=1000, additional_gids=[5, 6], capabilities=["CAP_KILL"],
                       no_new_privileges=True, tty=True, console_socket="/c.sock",
                       detach=True, pid_file="/pid", apparmor="unconfined",
                       process_label="l", cgroup="sub", preserve_fds=1)
    assert runc.exec("c1", opts) == 0
    assert subcommand(rec.last) == [
        "exec", "--cwd", "/tmp", "--env", "A=1", "--env", "B=2", "--user", "1000",
        "--additional-gids", "5", "--additional-gids", "6", "--cap", "CAP_KILL",
        "--no-new-privs", "--apparmor", "unconfined", "--process-label", "l",
        "--cgroup", "sub", "--tty", "--console-socket", "/c.sock", "--detach",
        "--pid-file", "/pid", "--preserve-fds", "1", "c1", "sh", "-c", "echo hi"]
    assert rec.last.io == ProcessIO.null()  # detached
    runc.exec("c1", ["id", "-u"])
    assert subcommand(rec.last) == ["exec", "c1", "id", "-u"]
    assert rec.last.io == ProcessIO.inherit()


def test_exec_process_json_is_written_to_a_file(runc: Runc, rec: Recorder,
                                                tmp_path: Path) -> None:
    process = {"args": ["true"], "cwd": "/", "env": ["A=1"], "user": {"uid": 0, "gid": 0},
               "terminal": False}
    runc.exec("c1", ExecOptions(process=process))
    argv = subcommand(rec.last)
    assert argv[:2] == ["exec", "--process"]
    assert argv[3:] == ["c1"]
    assert json.loads(rec.files["--process"]) == process
    assert not Path(argv[2]).exists()  # removed after the call
    assert ExecOptions(process_file="/p.json").argv("c") == [
        "exec", "--process", "/p.json", "c"]


def test_exec_options_need_exactly_one_process() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ExecOptions()
    with pytest.raises(ValueError, match="exactly one"):
        ExecOptions(args=["true"], process_file="/p.json")
    with pytest.raises(TypeError):
        ExecOptions(args="true")  # a string is not an argv


def test_other_subcommands_argv(runc: Runc, rec: Recorder) -> None:
    runc.start("c")
    assert subcommand(rec.last) == ["start", "c"]
    runc.kill("c")
    assert subcommand(rec.last) == ["kill", "c", str(int(signal.SIGTERM))]
    runc.kill("c", signal.SIGKILL, all_processes=True)
    assert subcommand(rec.last) == ["kill", "--all", "c", "9"]
    runc.kill("c", "HUP")
    assert subcommand(rec.last) == ["kill", "c", "HUP"]
    runc.delete("c")
    assert subcommand(rec.last) == ["delete", "c"]
    runc.delete("c", force=True)
    assert subcommand(rec.last) == ["delete", "--force", "c"]
    runc.pause("c")
    assert subcommand(rec.last) == ["pause", "c"]
    runc.resume("c")
    assert subcommand(rec.last) == ["resume", "c"]
    runc.update("c", {"pids": {"limit": 10}, "memory": {"limit": 1 << 26}})
    argv = subcommand(rec.last)
    assert argv[:2] == ["update", "--resources"]
    assert argv[3:] == ["c"]
    assert json.loads(rec.files["--resources"]) == {"pids": {"limit": 10},
                                                    "memory": {"limit": 1 << 26}}
    for cmd in rec.commands:
        assert not cmd.capture
        assert cmd.io == ProcessIO.null()


def test_query_subcommands_capture_and_parse(rec: Recorder, runc: Runc) -> None:
    state = {"ociVersion": "1.0.2-dev", "id": "c", "pid": 42, "status": "paused",
             "bundle": "/b", "rootfs": "/b/rootfs", "created": "2026-11-28T06:01:24Z",
             "owner": "", "annotations": {"a": "b"}, "future-field": 1}
    rec.reply = stdout_of(state)
    s = runc.state("c")
    assert subcommand(rec.last) == ["state", "c"]
    assert rec.last.capture
    assert s == ContainerState(id="c", status="paused", pid=42, bundle="/b",
                               rootfs="/b/rootfs", created="2026-11-28T06:01:24Z",
                               oci_version="1.0.2-dev", annotations={"a": "b"})
    rec.reply = stdout_of(None)  # runc prints null when there are no containers
    assert runc.list() == ()
    assert subcommand(rec.last) == ["list", "--format", "json"]
    rec.reply = stdout_of([state, dict(state, id="d", status="running")])
    assert [c.id for c in runc.list()] == ["c", "d"]
    rec.reply = stdout_of([101, 102])
    assert runc.ps("c") == (101, 102)
    assert subcommand(rec.last) == ["ps", "--format", "json", "c"]
    rec.reply = stdout_of(b"UID  PID  PPID  C STIME TTY TIME CMD\n"
                          b"root 7 1 0 06:01 ? 00:00:00 sleep 100\n")
    table = runc.top("c", ["-ef"])
    assert subcommand(rec.last) == ["ps", "c", "-ef"]
    assert table.headers[1] == "PID"
    assert table.rows == (
        ("root", "7", "1", "0", "06:01", "?", "00:00:00", "sleep 100"),)
    rec.reply = stdout_of({"type": "stats", "id": "c", "data": {"pids": {"current": 1}}})
    assert runc.stats("c") == Event("stats", "c", {"pids": {"current": 1}})
    assert subcommand(rec.last) == ["events", "--stats", "c"]
    rec.reply = stdout_of({"ociVersionMin": "1.0.0", "ociVersionMax": "1.0.2-dev",
                           "hooks": ["prestart"], "mountOptions": ["bind"],
                           "linux": {"namespaces": ["pid"]},
                           "annotations": {"org.opencontainers.runc.version": "1.1.5"}})
    features = runc.features()
    assert subcommand(rec.last) == ["features"]
    assert (features.oci_version_min, features.oci_version_max) == ("1.0.0", "1.0.2-dev")
    assert features.hooks == ("prestart",)
    assert features.mount_options == ("bind",)
    assert features.linux["namespaces"] == ["pid"]
    assert features.annotations["org.opencontainers.runc.version"] == "1.1.5"


def test_not_json_output_is_a_runc_error(rec: Recorder, runc: Runc) -> None:
    rec.reply = stdout_of(b"garbage")
    with pytest.raises(RuncError, match="not JSON"):
        runc.state("c")


def test_events_stream(rec: Recorder, runc: Runc) -> None:
    with runc.events("c", interval=0.25) as stream:
        events = list(stream)
    assert subcommand(rec.last) == ["events", "--interval", "0.25s", "c"]
    assert [e.data["n"] for e in events] == [0, 1, 2]
    assert all(e.type == "stats" for e in events)


# -- environment: NOTIFY_SOCKET and socket activation ------------------------------


def test_notify_socket_is_not_inherited(rec: Recorder, runc: Runc,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("LISTEN_FDS", "2")
    monkeypatch.setenv("LISTEN_PID", "1")
    monkeypatch.setenv("OCISTACK_CANARY", "yes")
    runc.run("c", "/b")
    runc.create("c", "/b")
    runc.start("c")
    for cmd in rec.commands:
        assert "NOTIFY_SOCKET" not in cmd.env
        assert "LISTEN_FDS" not in cmd.env
        assert "LISTEN_PID" not in cmd.env
        assert cmd.env["OCISTACK_CANARY"] == "yes"


def test_notify_socket_on_request(rec: Recorder, runc: Runc) -> None:
    runc.run("c", "/b", RunOptions(notify_socket="/run/n.sock"))
    assert rec.last.env["NOTIFY_SOCKET"] == "/run/n.sock"
    assert "--notify-socket" not in rec.last.argv  # an environment variable, not a flag
    runc.create("c", "/b", CreateOptions(notify_socket="/run/n.sock"))
    assert rec.last.env["NOTIFY_SOCKET"] == "/run/n.sock"
    runc.start("c", notify_socket="/run/n.sock")
    assert rec.last.env["NOTIFY_SOCKET"] == "/run/n.sock"
    assert rec.last.timeout is None  # start waits for READY=1


def test_extra_env(rec: Recorder, tmp_path: Path) -> None:
    rec.reply = stdout_of(None)
    Runc(env={"XDG_RUNTIME_DIR": "/x"}, runner=rec, temp_dir=str(tmp_path)).list()
    assert rec.last.env["XDG_RUNTIME_DIR"] == "/x"


# -- errors -----------------------------------------------------------------------------


def test_parse_log() -> None:
    data = ((RUNC_ERROR % "first") + "time=\"t\" level=error msg=\"text\"\n\n"
            + (CRUN_ERROR % "second") + '{"level":"warning","msg":"w","time":"t"}\n')
    entries = parse_log(data.encode())
    assert [(e.level, e.msg, e.is_error) for e in entries] == [
        ("error", "first", True), ("", 'time="t" level=error msg="text"', False),
        ("error", "second", True), ("warning", "w", False)]
    assert entries[0].time == "2026-11-28T06:01:19Z"


def test_is_not_found() -> None:
    assert is_not_found("container does not exist", "c")
    assert not is_not_found("container with given ID already exists", "c")
    crun_msg = "error opening file `/run/crun/c1/status`: No such file or directory"
    assert is_not_found(crun_msg, "c1", flavor="crun")
    assert not is_not_found(crun_msg, "c1")  # only crun words it that way
    assert not is_not_found("open /b/config.json: no such file or directory", "c1",
                            flavor="crun")


def test_runc_error_from_json_log(rec: Recorder, runc: Runc) -> None:
    rec.reply = failing("cannot start a container that has stopped")
    with pytest.raises(RuncError) as info:
        runc.start("c1")
    err = info.value
    assert not isinstance(err, ContainerNotFoundError)
    assert err.exit_code == 1
    assert err.message == "runc start c1: cannot start a container that has stopped"
    assert err.argv == rec.last.argv
    assert "start" in err.argv
    assert not Path(log_path(rec.last)).exists()  # the private log is removed


@pytest.mark.parametrize("call", [
    lambda r: r.state("c1"), lambda r: r.start("c1"), lambda r: r.kill("c1"),
    lambda r: r.delete("c1"), lambda r: r.pause("c1"), lambda r: r.resume("c1"),
    lambda r: r.ps("c1"), lambda r: r.stats("c1"), lambda r: r.exec("c1", ["true"]),
    lambda r: r.update("c1", {}),
])
def test_container_not_found(rec: Recorder, runc: Runc, call: Callable[[Runc], object]
                             ) -> None:
    rec.reply = failing("container does not exist")
    with pytest.raises(ContainerNotFoundError) as info:
        call(runc)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, RuncError)
    assert "container does not exist" in info.value.message


def test_crun_not_found(rec: Recorder, tmp_path: Path) -> None:
    crun = Runc(binary="crun", root="/r", runner=rec, temp_dir=str(tmp_path))
    rec.reply = failing("error opening file `/r/c1/status`: No such file or directory",
                        template=CRUN_ERROR)
    with pytest.raises(ContainerNotFoundError, match="crun state c1"):
        crun.state("c1")


def test_create_failure_is_not_a_lookup(rec: Recorder, runc: Runc) -> None:
    rec.reply = failing("container with given ID already exists")
    with pytest.raises(RuncError) as info:
        runc.create("c1", "/b")
    assert type(info.value) is RuncError


def test_error_falls_back_to_stderr_then_status(rec: Recorder, runc: Runc) -> None:
    rec.reply = lambda command: Completed(2, b"", b"line one\nincorrect usage\n")
    with pytest.raises(RuncError, match="runc list: incorrect usage") as info:
        runc.list()
    assert info.value.exit_code == 2
    rec.reply = lambda command: Completed(3)
    with pytest.raises(RuncError, match="runc pause c: exited with status 3"):
        runc.pause("c")


def test_user_log_file_is_kept_and_read_from_its_end(rec: Recorder, tmp_path: Path) -> None:
    log = tmp_path / "runc.log"
    log.write_text(RUNC_ERROR % "an old error")
    r = Runc(log=str(log), runner=rec)
    rec.reply = lambda command: Completed(1)
    with pytest.raises(RuncError, match="exited with status 1"):  # not the old error
        r.state("c")
    assert log_path(rec.last) == str(log)
    rec.reply = failing("new error")
    with pytest.raises(RuncError, match="new error"):
        r.state("c")
    assert log.exists()


def test_container_status_versus_runc_failure(rec: Recorder, runc: Runc) -> None:
    rec.reply = lambda command: Completed(3)  # the container's own exit 3
    assert runc.run("c", "/b") == 3
    rec.reply = lambda command: Completed(137)  # killed by SIGKILL
    assert runc.run("c", "/b") == 137
    rec.reply = failing("runc run failed: container with given ID already exists")
    with pytest.raises(RuncError, match="already exists"):
        runc.run("c", "/b")
    rec.reply = lambda command: Completed(255)  # exec'd process exited 255 itself
    assert runc.exec("c", ["false"]) == 255
    rec.reply = failing('exec failed: exec: "nope": executable file not found in $PATH',
                        exit_code=255)
    with pytest.raises(RuncError, match="executable file not found") as info:
        runc.exec("c", ["nope"])
    assert info.value.exit_code == 255


def test_detached_run_failure_raises(rec: Recorder, runc: Runc) -> None:
    rec.reply = lambda command: Completed(1)
    with pytest.raises(RuncError):
        runc.run("c", "/b", RunOptions(detach=True))


def test_timeout_is_a_runc_error_and_deletes_the_container(rec: Recorder, runc: Runc
                                                           ) -> None:
    def reply(command: Command) -> Completed:
        if "run" in command.argv:
            raise subprocess.TimeoutExpired(list(command.argv), 1.0)
        return Completed(0)
    rec.reply = reply
    with pytest.raises(RuncError, match=r"timed out after 1\.0 s"):
        runc.run("c", "/b", timeout=1.0)
    assert subcommand(rec.last) == ["delete", "--force", "c"]


def test_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(RuncNotFoundError) as info:
        Runc(binary="ocistack-no-such-runc", temp_dir=str(tmp_path)).list()
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(RuncNotFoundError):
        Runc(binary="ocistack-no-such-runc", temp_dir=str(tmp_path)).run(
            "c", tmp_path, io=ProcessIO.null())
    with pytest.raises(RuncNotFoundError):  # looked up before the prefix runs it
        Runc(binary="ocistack-no-such-crun", prefix=["env"]).version()
    with pytest.raises(RuncNotFoundError):
        Runc(binary="/nonexistent/runc", temp_dir=str(tmp_path)).events("c")
    assert list(tmp_path.iterdir()) == []  # no log files left


# -- parsers -------------------------------------------------------------------------------

RUNC_VERSION = """runc version 1.1.5+ds1
commit: 1.1.5+ds1-1+deb12u1
spec: 1.0.2-dev
go: go1.19.8
libseccomp: 2.5.4
"""
CRUN_VERSION = """crun version 1.8.1
commit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30
rundir: /run/crun
spec: 1.0.0
+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL
"""


def test_version_parsing(rec: Recorder, runc: Runc) -> None:
    rec.reply = stdout_of(RUNC_VERSION.encode())
    v = runc.version()
    assert subcommand(rec.last) == ["--version"]
    assert v == RuntimeVersion("runc", "1.1.5+ds1", "1.1.5+ds1-1+deb12u1", "1.0.2-dev",
                               {"go": "go1.19.8", "libseccomp": "2.5.4"})
    c = RuntimeVersion.parse(CRUN_VERSION)
    assert (c.runtime, c.version, c.spec) == ("crun", "1.8.1", "1.0.0")
    assert c.details == {"rundir": "/run/crun"}
    assert c.features == ("+SYSTEMD", "+SELINUX", "+APPARMOR", "+CAP", "+SECCOMP",
                          "+EBPF", "+YAJL")


def test_state_and_table_parsing_tolerate_odd_input() -> None:
    s = ContainerState.from_json({"id": "x", "status": "stopped", "pid": None,
                                  "annotations": None, "systemd-scope": "s"})
    assert (s.pid, s.annotations, s.bundle) == (0, {}, "")
    assert ProcessTable.parse("") == ProcessTable((), ())


# -- the process runner and stdio ------------------------------------------------------


def test_process_io_validates() -> None:
    with pytest.raises(TypeError):
        ProcessIO(stdout=3.5)  # type: ignore[arg-type]
    assert ProcessIO.inherit() == ProcessIO(0, 1, 2)


def test_subprocess_runner_stdio_to_paths(tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from stdin\n")
    io = ProcessIO(stdin=tmp_path / "in", stdout=tmp_path / "out",
                   stderr=str(tmp_path / "err"))
    done = SubprocessRunner().run(Command(
        ["sh", "-c", "cat; echo to-err >&2; exit 4"], dict(os.environ), io))
    assert done == Completed(4)
    assert (tmp_path / "out").read_text() == "from stdin\n"
    assert (tmp_path / "err").read_text() == "to-err\n"
    captured = SubprocessRunner().run(Command(["sh", "-c", "echo o; echo e >&2"],
                                              dict(os.environ), capture=True))
    assert (captured.stdout, captured.stderr) == (b"o\n", b"e\n")


def test_subprocess_runner_timeout_kills() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        SubprocessRunner().run(Command(["sleep", "30"], dict(os.environ), timeout=0.2))


# -- the console socket (a fake runtime sends a pty master) -------------------------


def test_console_socket_receives_a_pty_master(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo: what the master reads is only what the slave wrote

    def fake_runtime(path: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            socket.send_fds(client, [b"/dev/ptmx"], [master])

    with ConsoleSocket(tmp_path) as sock:
        assert os.fspath(sock) == str(sock.path)
        assert sock.path.parent.parent == tmp_path
        assert oct(sock.path.parent.stat().st_mode & 0o777) == "0o700"
        thread = threading.Thread(target=fake_runtime, args=(os.fspath(sock),))
        thread.start()
        with sock.receive(timeout=5) as console:
            thread.join()
            os.close(master)
            assert console.name == "/dev/ptmx"
            console.resize(30, 100)
            assert console.size() == (30, 100)
            os.write(slave, b"hello from the container\n")
            assert b"hello from the container" in console.read_until(b"container")
            console.write(b"typed\n")
            assert os.read(slave, 100) == b"typed\n"
            os.close(slave)
            assert console.read(timeout=5) == b""  # hung up
        assert console.closed
        directory = sock.path.parent
    assert not directory.exists()


def test_console_socket_times_out(tmp_path: Path) -> None:
    with ConsoleSocket(tmp_path) as sock, pytest.raises(TimeoutError):
        sock.receive(timeout=0.1)
