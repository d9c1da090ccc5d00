"""oci_runtime.runc: argv rendering and log parsing without runc, and the detached
lifecycle, errors and exit statuses with the real runc (as root, private --root)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import attrs
import pytest

from oci_runtime._process import ProcessIO
from oci_runtime.bundle import Bundle
from oci_runtime.errors import ContainerNotFoundError, RuncError, RuncNotFoundError
from oci_runtime.profiles import default_spec
from oci_runtime.runc import (
    CreateOptions,
    ExecOptions,
    Runc,
    RunOptions,
    is_not_found,
    parse_log,
)

from .peers import require, require_root

# -- without runc ---------------------------------------------------------------------


def test_argv_rendering() -> None:
    runc = Runc(binary="/usr/bin/runc", root="/tmp/state", systemd_cgroup=True)
    assert runc.global_argv("/tmp/log.json") == [
        "/usr/bin/runc", "--root", "/tmp/state", "--log", "/tmp/log.json",
        "--log-format", "json", "--systemd-cgroup"]
    assert CreateOptions(pid_file="/tmp/pid", no_pivot=True).argv("c1", "/b") == [
        "create", "--bundle", "/b", "--pid-file", "/tmp/pid", "--no-pivot", "c1"]
    assert RunOptions(detach=True, keep=True).argv("c2", "/b") == [
        "run", "--bundle", "/b", "--detach", "--keep", "c2"]
    assert Runc(binary="crun").flavor == "crun"


def test_log_parsing_and_not_found() -> None:
    log = (b'{"level":"info","msg":"starting","time":"t1"}\n'
           b'not json at all\n'
           b'{"level":"error","msg":"container does not exist","time":"t2"}\n')
    entries = parse_log(log)
    assert [(e.level, e.msg, e.is_error) for e in entries] == [
        ("info", "starting", False), ("", "not json at all", False),
        ("error", "container does not exist", True)]
    assert is_not_found("container does not exist", "x")
    assert is_not_found("error opening file `/run/crun/x/status`: No such file or directory",
                        "x", flavor="crun")
    assert not is_not_found("permission denied", "x")


def test_missing_binary() -> None:
    with pytest.raises(RuncNotFoundError):
        Runc(binary="no-such-runtime-binary").list()


# -- with runc ---------------------------------------------------------------------------


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    require_root("runc containers")
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        busybox = Path(require("busybox"))
    rootfs = tmp_path / "bundle" / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "bin/busybox").write_bytes(busybox.read_bytes())
    (rootfs / "bin/busybox").chmod(0o755)
    for applet in ("sh", "sleep", "echo", "cat"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    spec = default_spec()
    assert spec.process is not None
    spec = attrs.evolve(spec, process=attrs.evolve(spec.process, terminal=False,
                                                   args=("sleep", "30")))
    return Bundle.create(tmp_path / "bundle", spec)


@pytest.fixture
def runc(tmp_path: Path) -> Runc:
    require_root("runc containers")
    return Runc(binary=require("runc"), root=str(tmp_path / "state"))


def test_detached_lifecycle(runc: Runc, bundle: Bundle, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    try:
        runc.create("c1", bundle.path, CreateOptions(pid_file=str(pid_file)),
                    io=ProcessIO.null())
        assert runc.state("c1").status == "created"
        pid = int(pid_file.read_text())
        runc.start("c1")
        assert runc.state("c1").status == "running"
        assert runc.state("c1").pid == pid
        assert [s.id for s in runc.list()] == ["c1"]
        assert pid in runc.ps("c1")
        out = tmp_path / "exec.out"
        status = runc.exec("c1", ExecOptions(args=("sh", "-c", "echo inside; exit 5")),
                           io=ProcessIO(stdout=str(out)))
        assert (status, out.read_text()) == (5, "inside\n")
        runc.kill("c1", "KILL")
        for _ in range(100):
            if runc.state("c1").status == "stopped":
                break
            time.sleep(0.05)
        assert runc.state("c1").status == "stopped"
    finally:
        runc.delete("c1", force=True)
    with pytest.raises(ContainerNotFoundError):
        runc.state("c1")
    assert runc.list() == ()


def test_foreground_exit_status_and_runc_errors(runc: Runc, bundle: Bundle,
                                               tmp_path: Path) -> None:
    spec = bundle.load_config()
    assert spec.process is not None
    exit_spec = attrs.evolve(spec, process=attrs.evolve(
        spec.process, args=("sh", "-c", "echo out; exit 3")))
    bundle.write_config(exit_spec)
    out = tmp_path / "run.out"
    assert runc.run("c2", bundle.path, io=ProcessIO(stdout=str(out))) == 3
    assert out.read_text() == "out\n"
    broken = attrs.evolve(spec, process=attrs.evolve(spec.process,
                                                     args=("/no/such/program",)))
    bundle.write_config(broken)
    with pytest.raises(RuncError) as info:
        runc.run("c3", bundle.path, RunOptions(), io=ProcessIO.null())
    assert "/no/such/program" in info.value.message
    assert info.value.argv[-1] == "c3"
    with pytest.raises(ContainerNotFoundError):
        runc.kill("never-created", "KILL")


def test_pause_resume_update_stats(runc: Runc, bundle: Bundle) -> None:
    try:
        runc.run("c4", bundle.path, RunOptions(detach=True), io=ProcessIO.null())
        runc.pause("c4")
        assert runc.state("c4").status == "paused"
        runc.resume("c4")
        assert runc.state("c4").status == "running"
        runc.update("c4", {"pids": {"limit": 7}})
        stats = runc.stats("c4")
        assert stats.type == "stats"
        assert stats.data["pids"]["limit"] == 7
    finally:
        runc.delete("c4", force=True)
    assert runc.version().version.startswith("1.")
    assert runc.features().oci_version_max.startswith("1.")


def test_console_socket_gives_a_working_pty(runc: Runc, bundle: Bundle) -> None:
    from oci_runtime.console import ConsoleSocket

    spec = bundle.load_config()
    assert spec.process is not None
    bundle.write_config(attrs.evolve(spec, process=attrs.evolve(
        spec.process, terminal=True, args=("sh",))))
    with ConsoleSocket() as sock:
        try:
            runc.run("c5", bundle.path, RunOptions(detach=True, console_socket=os.fspath(sock)))
            with sock.receive(timeout=10) as console:
                console.write(b"echo pty-$((6*7)); tty\n")
                out = console.read_until(b"/dev/pts/", timeout=10)
                assert b"pty-42" in out
        finally:
            runc.delete("c5", force=True)


def test_crun_through_a_prefix(bundle: Bundle, tmp_path: Path) -> None:
    """crun refuses this host's hybrid cgroup layout unless the cgroup2 mount is hidden
    in a private mount namespace (peers.md): the wrapper runs it through ``prefix``."""
    require_root("crun containers")
    crun = Runc(binary=require("crun"), root=str(tmp_path / "crun-state"), prefix=(
        "unshare", "-m", "--propagation", "private", "sh", "-c",
        'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"'))
    assert crun.flavor == "crun"
    spec = bundle.load_config()
    assert spec.process is not None
    bundle.write_config(attrs.evolve(spec, process=attrs.evolve(
        spec.process, args=("sh", "-c", "echo from crun; exit 6"))))
    out = tmp_path / "crun.out"
    try:
        assert crun.run("k1", bundle.path, io=ProcessIO(stdout=str(out))) == 6
    finally:
        crun.delete("k1", force=True)
    assert out.read_text() == "from crun\n"
    assert crun.version().runtime == "crun"
