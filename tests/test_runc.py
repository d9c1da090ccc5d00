"""oci_runtime.runc against the real runc 1.1.5 (and crun 1.8.1 through an unshare
prefix), as root, with a private ``--root`` per test and a busybox rootfs.

Every test's containers get IDs with a per-test prefix; the ``runtime`` fixture kills
and force-deletes whatever is left, removes empty cgroup directories runc may leave,
and fails if any cgroup of the test still holds a process or the wrapper left a
temporary file behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oci_runtime._process import ProcessIO
from oci_runtime.console import ConsoleSocket
from oci_runtime.errors import ContainerNotFoundError, RuncError
from oci_runtime.runc import (
    CreateOptions,
    ExecOptions,
    Features,
    Runc,
    RunOptions,
)

from .peers import require, require_root, run_tool

pytestmark = pytest.mark.peers

APPLETS = ("sh", "echo", "cat", "sleep", "id", "tty", "ls", "true", "false", "pwd", "env",
           "kill", "printf")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CRUN_PREFIX = ("unshare", "-m", "--propagation", "private", "sh", "-c",
               'umount /sys/fs/cgroup/unified && exec "$0" "$@"')

MakeBundle = Callable[..., Path]


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox (busybox-static) is not installed")
    root = tmp_path_factory.mktemp("busybox-rootfs")
    root.chmod(0o755)  # mktemp makes it 0700: uid 1000 in the container could not reach /bin
    (root / "bin").mkdir()
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "run"):
        (root / d).mkdir()
    (root / "tmp").chmod(0o1777)
    return root


@pytest.fixture(scope="session")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``runc spec``'s default config.json."""
    runc = require("runc")
    directory = tmp_path_factory.mktemp("runc-spec")
    run_tool([runc, "spec", "--bundle", str(directory)])
    config: dict[str, Any] = json.loads((directory / "config.json").read_text())
    return config


@pytest.fixture
def make_bundle(tmp_path: Path, rootfs: Path, base_config: dict[str, Any]) -> MakeBundle:
    def make(args: list[str], *, terminal: bool = False, pids_limit: int | None = None,
             rootfs_path: str | None = None, name: str = "bundle") -> Path:
        bundle = tmp_path / name
        bundle.mkdir()
        config = json.loads(json.dumps(base_config))
        config["root"]["path"] = rootfs_path or str(rootfs)
        config["process"]["args"] = args
        config["process"]["terminal"] = terminal
        if pids_limit is not None:
            config["linux"].setdefault("resources", {})["pids"] = {"limit": pids_limit}
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle
    return make


def _cgroup_dirs(prefix: str) -> list[Path]:
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    for controller in CGROUP_ROOT.iterdir():
        if controller.is_dir() and not controller.is_symlink():
            found += sorted(p for p in controller.glob(f"{prefix}*") if p.is_dir())
    return found


class Ids:
    def __init__(self) -> None:
        self.prefix = f"ocistack-{secrets.token_hex(3)}-"
        self._n = 0

    def __call__(self) -> str:
        self._n += 1
        return f"{self.prefix}{self._n}"


@pytest.fixture
def ids() -> Ids:
    return Ids()


def _clean(runtime: Runc, ids: Ids) -> None:
    for container in runtime.list():
        try:
            runtime.kill(container.id, signal.SIGKILL)
        except RuncError:
            pass
        runtime.delete(container.id, force=True)
    assert runtime.list() == ()
    for directory in reversed(_cgroup_dirs(ids.prefix)):
        procs = (directory / "cgroup.procs")
        if procs.exists():
            assert procs.read_text() == "", f"processes left in {directory}"
        directory.rmdir()  # runc can leave empty cgroup directories behind


@pytest.fixture
def runtime(tmp_path: Path, ids: Ids) -> Iterator[Runc]:
    require("runc")
    require_root("runc creates namespaces and cgroups")
    (tmp_path / "tmp").mkdir()
    runtime = Runc(root=str(tmp_path / "state"), temp_dir=str(tmp_path / "tmp"), timeout=60)
    yield runtime
    _clean(runtime, ids)
    assert list((tmp_path / "tmp").iterdir()) == []  # no log or process file left


@pytest.fixture
def crun(tmp_path: Path, ids: Ids) -> Iterator[Runc]:
    require("crun")
    require("unshare")
    require_root("crun creates namespaces and cgroups")
    (tmp_path / "crun-tmp").mkdir()
    runtime = Runc(binary="crun", prefix=CRUN_PREFIX, root=str(tmp_path / "crun-state"),
                   temp_dir=str(tmp_path / "crun-tmp"), timeout=60)
    yield runtime
    _clean(runtime, ids)


def wait_for_status(runtime: Runc, cid: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (current := runtime.state(cid).status) != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"{cid} is {current}, not {status}")
        time.sleep(0.05)


def started(runtime: Runc, make_bundle: MakeBundle, cid: str,
            args: list[str] | None = None, **kwargs: Any) -> Path:
    bundle = make_bundle(args or ["sleep", "300"], **kwargs)
    runtime.run(cid, bundle, RunOptions(detach=True))
    return bundle


# -- foreground run --------------------------------------------------------------------


def test_run_returns_the_container_exit_status(runtime: Runc, make_bundle: MakeBundle,
                                               ids: Ids) -> None:
    bundle = make_bundle(["sh", "-c", "exit 3"])
    assert runtime.run(ids(), bundle, io=ProcessIO.null()) == 3
    # killed by a signal: 128 + N (the init cannot SIGKILL itself, so kill it from here)
    cid = ids()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(runtime.run(
        cid, make_bundle(["sleep", "300"], name="killed"), io=ProcessIO.null())))
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not any(c.id == cid and c.status == "running" for c in runtime.list()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runtime.kill(cid, signal.SIGKILL)
    finally:
        runner.join(30)
    assert result == [128 + signal.SIGKILL]
    assert runtime.list() == ()  # a foreground run deletes its container


def test_run_stdio_to_files(runtime: Runc, make_bundle: MakeBundle, ids: Ids,
                            tmp_path: Path) -> None:
    (tmp_path / "in").write_text("from the caller\n")
    bundle = make_bundle(["sh", "-c", "cat; echo hello; echo oops >&2"])
    io = ProcessIO(stdin=tmp_path / "in", stdout=tmp_path / "out", stderr=tmp_path / "err")
    assert runtime.run(ids(), bundle, io=io) == 0
    assert (tmp_path / "out").read_text() == "from the caller\nhello\n"
    assert (tmp_path / "err").read_text() == "oops\n"


def test_run_timeout_deletes_the_container(runtime: Runc, make_bundle: MakeBundle,
                                           ids: Ids) -> None:
    cid = ids()
    with pytest.raises(RuncError, match="timed out"):
        runtime.run(cid, make_bundle(["sleep", "300"]), io=ProcessIO.null(), timeout=1)
    assert runtime.list() == ()


def test_pids_limit_from_the_config_stops_a_fork_bomb(runtime: Runc, make_bundle: MakeBundle,
                                                      ids: Ids, tmp_path: Path) -> None:
    script = ("cat /sys/fs/cgroup/pids/pids.max; "
              "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait; echo all-forked")
    bundle = make_bundle(["sh", "-c", script], pids_limit=5)
    io = ProcessIO(stdout=tmp_path / "out", stderr=tmp_path / "err")
    status = runtime.run(ids(), bundle, io=io)
    assert (tmp_path / "out").read_text().splitlines()[0] == "5"
    assert "all-forked" not in (tmp_path / "out").read_text()
    assert "can't fork" in (tmp_path / "err").read_text()
    assert status != 0


# -- detached lifecycle ------------------------------------------------------------


def test_create_start_state_kill_delete(runtime: Runc, make_bundle: MakeBundle, ids: Ids,
                                        tmp_path: Path) -> None:
    cid = ids()
    bundle = make_bundle(["sh", "-c", "echo started; exec sleep 300"])
    pid_file = tmp_path / "pid"
    t0 = time.monotonic()
    # the container keeps its stdout open for 300 s: create must return at once
    runtime.create(cid, bundle, CreateOptions(pid_file=str(pid_file)),
                   io=ProcessIO(stdout=tmp_path / "out"))
    assert time.monotonic() - t0 < 30
    state = runtime.state(cid)
    assert state.status == "created"
    assert state.pid == int(pid_file.read_text())
    assert state.bundle == str(bundle)
    assert (tmp_path / "out").read_text() == ""  # process.args has not run yet
    runtime.start(cid)
    assert runtime.state(cid).status == "running"
    assert [c.id for c in runtime.list()] == [cid]
    deadline = time.monotonic() + 10
    while (tmp_path / "out").read_text() != "started\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "out").read_text() == "started\n"
    with pytest.raises(RuncError, match="not stopped"):
        runtime.delete(cid)
    runtime.kill(cid, signal.SIGKILL)
    wait_for_status(runtime, cid, "stopped")
    runtime.delete(cid)
    with pytest.raises(ContainerNotFoundError):
        runtime.state(cid)
    assert runtime.list() == ()
    assert _cgroup_dirs(cid) == []


def test_run_detached_returns_at_once(runtime: Runc, make_bundle: MakeBundle, ids: Ids,
                                      tmp_path: Path) -> None:
    cid = ids()
    t0 = time.monotonic()
    pid_file = tmp_path / "pid"
    assert runtime.run(cid, make_bundle(["sleep", "300"]),
                       RunOptions(detach=True, pid_file=str(pid_file))) == 0
    assert time.monotonic() - t0 < 30
    state = runtime.state(cid)
    assert (state.status, state.pid) == ("running", int(pid_file.read_text()))
    runtime.delete(cid, force=True)
    assert runtime.list() == ()


def test_exec(runtime: Runc, make_bundle: MakeBundle, ids: Ids, tmp_path: Path) -> None:
    cid = ids()
    started(runtime, make_bundle, cid)
    assert runtime.exec(cid, ["sh", "-c", "exit 4"], io=ProcessIO.null()) == 0 + 4
    out = tmp_path / "out"
    opts = ExecOptions(args=["sh", "-c", "echo $FOO; pwd; id -u"], env={"FOO": "bar"},
                       cwd="/tmp", user="1000:1000")
    assert runtime.exec(cid, opts, io=ProcessIO(stdout=out)) == 0
    assert out.read_text() == "bar\n/tmp\n1000\n"
    process = {"args": ["sh", "-c", "echo from-json; exit 6"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}, "terminal": False}
    assert runtime.exec(cid, ExecOptions(process=process), io=ProcessIO(stdout=out)) == 6
    assert out.read_text().endswith("from-json\n")
    with pytest.raises(RuncError, match="executable file not found") as info:
        runtime.exec(cid, ["no-such-program"], io=ProcessIO.null())
    assert info.value.exit_code == 255


def test_ps_and_top(runtime: Runc, make_bundle: MakeBundle, ids: Ids) -> None:
    cid = ids()
    started(runtime, make_bundle, cid)
    init = runtime.state(cid).pid
    assert runtime.ps(cid) == (init,)
    runtime.exec(cid, ExecOptions(args=["sleep", "301"], detach=True))
    deadline = time.monotonic() + 10
    while len(runtime.ps(cid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = runtime.ps(cid)
    assert len(pids) == 2
    assert init in pids
    table = runtime.top(cid, ["-o", "pid,args"])
    assert table.headers == ("PID", "COMMAND")
    assert sorted(row[1] for row in table.rows) == ["sleep 300", "sleep 301"]


def test_pause_resume(runtime: Runc, make_bundle: MakeBundle, ids: Ids) -> None:
    cid = ids()
    started(runtime, make_bundle, cid)
    runtime.pause(cid)
    assert runtime.state(cid).status == "paused"
    runtime.resume(cid)
    assert runtime.state(cid).status == "running"


def test_update_pids_and_memory(runtime: Runc, make_bundle: MakeBundle, ids: Ids,
                                tmp_path: Path) -> None:
    cid = ids()
    started(runtime, make_bundle, cid)
    runtime.update(cid, {"pids": {"limit": 10}, "memory": {"limit": 64 << 20}})
    out = tmp_path / "out"
    runtime.exec(cid, ["cat", "/sys/fs/cgroup/pids/pids.max",
                       "/sys/fs/cgroup/memory/memory.limit_in_bytes"],
                 io=ProcessIO(stdout=out))
    assert out.read_text().split() == ["10", str(64 << 20)]
    host = [p for p in _cgroup_dirs(cid) if p.parent.name == "pids"]
    assert [p.joinpath("pids.max").read_text().strip() for p in host] == ["10"]


def test_stats_and_events(runtime: Runc, make_bundle: MakeBundle, ids: Ids) -> None:
    cid = ids()
    started(runtime, make_bundle, cid)
    stats = runtime.stats(cid)
    assert (stats.type, stats.id) == ("stats", cid)
    assert stats.data["pids"]["current"] == 1
    assert stats.data["memory"]["usage"]["usage"] > 0
    t0 = time.monotonic()
    with runtime.events(cid, interval=0.2) as stream:
        first, second = next(stream), next(stream)
        pid = stream.pid
    assert time.monotonic() - t0 < 10
    assert first.type == second.type == "stats"
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_events_end_when_the_container_goes(runtime: Runc, make_bundle: MakeBundle,
                                            ids: Ids) -> None:
    cid = ids()
    started(runtime, make_bundle, cid)
    with runtime.events(cid, interval=0.2) as stream:
        next(stream)
        runtime.delete(cid, force=True)
        t0 = time.monotonic()
        rest = list(stream)  # runc notices and exits; iteration ends
    assert time.monotonic() - t0 < 10
    assert all(e.id == cid for e in rest)


def test_list_features_version(runtime: Runc, make_bundle: MakeBundle, ids: Ids) -> None:
    assert runtime.list() == ()
    first, second = ids(), ids()
    started(runtime, make_bundle, first)
    started(runtime, make_bundle, second, name="second")
    assert sorted(c.id for c in runtime.list()) == [first, second]
    assert {c.status for c in runtime.list()} == {"running"}
    features = runtime.features()
    assert isinstance(features, Features)
    assert features.oci_version_min == "1.0.0"
    assert "poststop" in features.hooks
    assert "bind" in features.mount_options
    version = runtime.version()
    assert version.runtime == "runc"
    assert version.version.startswith("1.")
    assert version.spec.startswith("1.")


# -- terminals ----------------------------------------------------------------------------


def test_console_socket_gives_a_working_pty(runtime: Runc, make_bundle: MakeBundle,
                                            ids: Ids, tmp_path: Path) -> None:
    cid = ids()
    bundle = make_bundle(["sh"], terminal=True)
    with ConsoleSocket(tmp_path) as sock:
        runtime.create(cid, bundle, CreateOptions(console_socket=os.fspath(sock)))
        with sock.receive(timeout=10) as console:
            console.resize(40, 120)
            runtime.start(cid)
            console.write(b"tty; echo $((40 + 2)); stty size\n")
            output = console.read_until(b"40 120")
            assert b"/dev/pts/0" in output
            assert b"42\r\n" in output  # CRLF: a real tty
            console.write(b"exit 7\n")
            wait_for_status(runtime, cid, "stopped")
    runtime.delete(cid)


def test_exec_with_a_tty(runtime: Runc, make_bundle: MakeBundle, ids: Ids,
                         tmp_path: Path) -> None:
    cid = ids()
    started(runtime, make_bundle, cid)
    with ConsoleSocket(tmp_path) as sock:
        runtime.exec(cid, ExecOptions(args=["sh", "-c", "tty; sleep 1"], tty=True,
                                      detach=True, console_socket=os.fspath(sock)))
        with sock.receive(timeout=10) as console:
            assert b"/dev/pts/" in console.read_until(b"\n")


# -- errors ---------------------------------------------------------------------------------


def test_unknown_container(runtime: Runc) -> None:
    for call in (lambda: runtime.state("nope"), lambda: runtime.start("nope"),
                 lambda: runtime.kill("nope", signal.SIGKILL), lambda: runtime.delete("nope"),
                 lambda: runtime.pause("nope"), lambda: runtime.ps("nope"),
                 lambda: runtime.stats("nope"),
                 lambda: runtime.exec("nope", ["true"], io=ProcessIO.null())):
        with pytest.raises(ContainerNotFoundError) as info:
            call()
        assert "container does not exist" in info.value.message
        assert info.value.exit_code != 0
    runtime.delete("nope", force=True)  # force: an unknown container is not an error


def test_bad_bundle(runtime: Runc, make_bundle: MakeBundle, ids: Ids, tmp_path: Path) -> None:
    bundle = make_bundle(["true"], rootfs_path=str(tmp_path / "no-such-rootfs"))
    with pytest.raises(RuncError) as info:
        runtime.run(ids(), bundle, io=ProcessIO.null())
    assert not isinstance(info.value, ContainerNotFoundError)
    assert "no-such-rootfs" in info.value.message
    assert "no such file or directory" in info.value.message
    assert info.value.exit_code == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuncError, match=r"config\.json"):
        runtime.create(ids(), empty)
    assert runtime.list() == ()


def test_duplicate_id(runtime: Runc, make_bundle: MakeBundle, ids: Ids) -> None:
    cid = ids()
    bundle = started(runtime, make_bundle, cid)
    with pytest.raises(RuncError, match="already exists") as info:
        runtime.create(cid, bundle)
    assert type(info.value) is RuncError


def test_notify_socket_of_the_caller_is_not_leaked(runtime: Runc, make_bundle: MakeBundle,
                                                   ids: Ids, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Given NOTIFY_SOCKET, runc 1.1.5 proxies it into the container and waits for
    READY=1 (a foreground run of a container that never sends it never returns)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify.sock"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
        out = tmp_path / "out"
        bundle = make_bundle(["sh", "-c", 'echo "notify=$NOTIFY_SOCKET"'])
        assert runtime.run(ids(), bundle, io=ProcessIO(stdout=out), timeout=30) == 0
    assert out.read_text() == "notify=\n"


# -- crun -----------------------------------------------------------------------------------


def test_crun_runs_the_same_bundle(crun: Runc, make_bundle: MakeBundle, ids: Ids,
                                   tmp_path: Path) -> None:
    bundle = make_bundle(["sh", "-c", "echo from-crun; exit 3"])
    out = tmp_path / "out"
    assert crun.run(ids(), bundle, io=ProcessIO(stdout=out)) == 3
    assert out.read_text() == "from-crun\n"
    version = crun.version()
    assert version.runtime == "crun"
    assert "+SECCOMP" in version.features or "-SECCOMP" in version.features
    if version.version.startswith("1.8."):  # crun before 1.9 has no features command
        with pytest.raises(RuncError, match="unknown command"):
            crun.features()
    else:
        assert crun.features().oci_version_min
    with pytest.raises(ContainerNotFoundError):
        crun.state("nope")


def test_crun_detached_lifecycle(crun: Runc, make_bundle: MakeBundle, ids: Ids,
                                 tmp_path: Path) -> None:
    cid = ids()
    crun.run(cid, make_bundle(["sleep", "300"]),
             RunOptions(detach=True, pid_file=str(tmp_path / "pid")))
    state = crun.state(cid)
    assert (state.status, state.pid) == ("running", int((tmp_path / "pid").read_text()))
    assert crun.exec(cid, ["sh", "-c", "exit 5"], io=ProcessIO.null()) == 5
    crun.kill(cid, signal.SIGKILL)
    wait_for_status(crun, cid, "stopped")
    crun.delete(cid)
    assert crun.list() == ()
