"""``python -m oci_runtime``: ``run -t`` on a real pseudo-terminal, and the system
container commands (``install --system``, ``list``, ``update``, ``rollback``,
``uninstall``) end to end in private directories, with real runc."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_image.build import FileEntry, ImageBuilder
from oci_image.spec import Platform, host_platform
from oci_runtime.cli import _default_name
from oci_runtime.runc import Runc
from oci_storage.drivers.overlay import mounted_paths

from .peers import require, require_root

ROOT = Path(__file__).resolve().parent.parent

SERVICE = """\
[Unit]
Description=$NAME says $GREETING

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
"""


def _image(layout: Path, tag: str, greeting: str, *, stop_signal: str = "") -> str:
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        busybox = Path(require("busybox"))
    host = host_platform()
    builder = ImageBuilder(platform=Platform(host.os, host.architecture))
    builder.add_layer_from_files({
        "bin/busybox": FileEntry(data=busybox.read_bytes(), mode=0o755),
        **{f"bin/{a}": FileEntry(kind="symlink", linkname="busybox")
           for a in ("sh", "echo", "tty", "stty", "cat", "touch")},
        "exports/service.template": SERVICE.encode(),
        "exports/manifest.json": json.dumps(
            {"defaultValues": {"GREETING": greeting}}).encode(),
        "exports/hostfs/usr/local/bin/hello-ctl": FileEntry(
            data=b"#!/bin/sh\necho $GREETING\n", mode=0o755),
    })
    builder.config(cmd=["/bin/sh", "-c", "echo hi"], env=["PATH=/bin"],
                   stop_signal=stop_signal)
    builder.build().write_to(f"oci:{layout}:{tag}")
    return f"oci:{layout}:{tag}"


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[list[str]]:
    require_root("runc runs containers as root here")
    runc = require("runc")
    yield [sys.executable, "-m", "oci_runtime", "--root", str(tmp_path / "graph"),
           "--runroot", str(tmp_path / "run"), "--runtime", runc,
           "--runtime-root", str(tmp_path / "runc")]
    # after a failure: no container left running, nothing left mounted
    if (tmp_path / "runc").is_dir():
        for state in Runc(binary=runc, root=str(tmp_path / "runc")).list():
            Runc(binary=runc, root=str(tmp_path / "runc")).delete(state.id, force=True)
    for path in mounted_paths():
        if path.startswith(str(tmp_path)):
            subprocess.run(["umount", "-l", path], check=False)
            pytest.fail(f"{path} was left mounted")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)


def _run_on_pty(argv: list[str]) -> tuple[int, str]:
    """``argv`` with a new pseudo-terminal as its stdio and controlling terminal."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(argv, stdin=terminal, stdout=terminal, stderr=terminal,
                            cwd=ROOT, start_new_session=True)
    os.close(terminal)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(controller)
    return proc.wait(timeout=30), out.decode(errors="replace")


def test_run_tty_gives_the_container_a_terminal(cli: list[str], tmp_path: Path) -> None:
    image = _image(tmp_path / "layout", "t", "x")
    status, out = _run_on_pty([*cli, "run", "--rm", "-t", image, "sh", "-c",
                               "tty; [ -t 0 ] && echo stdin-is-a-tty; exit 3"])
    assert status == 3, out
    assert "/dev/pts/" in out
    assert "stdin-is-a-tty" in out
    # without -t the same command sees no terminal, even on a terminal
    status, out = _run_on_pty([*cli, "run", "--rm", image, "sh", "-c",
                               "[ -t 0 ] || echo no-tty"])
    assert (status, "no-tty" in out) == (0, True), out
    # -t with no terminal anywhere is our error, before anything is created
    done = subprocess.run([*cli, "run", "--rm", "-t", image, "true"], cwd=ROOT,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          start_new_session=True, timeout=120, check=False)
    assert done.returncode == 125
    assert done.stderr.startswith("Error: -t: no terminal"), done.stderr


def test_install_list_update_rollback_uninstall(cli: list[str], tmp_path: Path) -> None:
    host = tmp_path / "host"
    locations = ["--checkouts", str(tmp_path / "checkouts"),
                 "--unit-dir", str(tmp_path / "units"),
                 "--tmpfiles-dir", str(tmp_path / "tmpfiles.d"),
                 "--quadlet-dir", str(tmp_path / "quadlet"),
                 "--host-root", str(host), "--systemctl", "never"]
    layout = tmp_path / "layout"
    v1 = _image(layout, "v1", "hello")

    done = _run([*cli, "install", *locations, v1, "hello"])
    assert done.returncode == 2  # argparse: --system is required
    assert "--system" in done.stderr
    done = _run([*cli, "install", "--system", *locations, "--set", "NOEQUALS", v1, "hello"])
    assert (done.returncode, done.stderr) == (
        125, "Error: --set 'NOEQUALS': expected KEY=VALUE\n")
    assert not (tmp_path / "checkouts" / "hello").exists()

    done = _run([*cli, "install", "--system", *locations, "--set", "GREETING=bonjour",
                 "--after", "network-online.target", "--wants", "network-online.target",
                 v1, "hello"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("installed hello: deployment 0 of ")
    unit = tmp_path / "units" / "hello.service"
    text = unit.read_text()
    assert "Description=hello says bonjour" in text
    assert "After=network-online.target" in text.split("[Service]")[0]
    assert "Wants=network-online.target" in text.split("[Service]")[0]
    assert (host / "usr/local/bin/hello-ctl").read_text() == "#!/bin/sh\necho $GREETING\n"
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "SYSTEMD_UNIT_PATH":
                                 f"{tmp_path / 'units'}:"})
    assert verify.returncode == 0, verify.stderr

    done = _run([*cli, "install", "--system", *locations, v1, "hello"])
    assert done.returncode == 125
    assert "already installed" in done.stderr

    listed = _run([*cli, "list", "--json", *locations])
    (entry,) = json.loads(listed.stdout)
    assert (entry["name"], entry["deployment"], entry["image"]) == ("hello", 0, v1)
    assert entry["values"] == {"GREETING": "bonjour"}
    table = _run([*cli, "list", *locations]).stdout.splitlines()
    assert table[0].split() == ["NAME", "DEPLOYMENT", "IMAGE", "IMAGE", "ID", "CREATED"]
    assert table[1].split()[:2] == ["hello", "0"]

    # nothing changed: update does nothing; a rebase to another image switches
    done = _run([*cli, "update", *locations, "hello"])
    assert done.stdout.startswith("hello is up to date: deployment 0 of "), done.stderr
    v2 = _image(layout, "v2", "hello")
    done = _run([*cli, "update", *locations, "--rebase", v2, "--set", "GREETING=salut",
                 "hello"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("updated hello: deployment 1 of ")
    assert "Description=hello says salut" in unit.read_text()
    assert os.readlink(tmp_path / "checkouts" / "hello") == "hello.1"
    done = _run([*cli, "rollback", *locations, "hello"])
    assert done.stdout.startswith("rolled back hello: deployment 0 of "), done.stderr
    assert unit.read_text() == text

    done = _run([*cli, "uninstall", *locations, "--remove-image", "hello"])
    assert (done.returncode, done.stdout) == (0, "uninstalled hello\n"), done.stderr
    assert not unit.exists()
    assert not any((tmp_path / "checkouts").iterdir())
    assert not host.exists() or not any(host.rglob("*"))
    assert json.loads(_run([*cli, "list", "--json", *locations]).stdout) == []
    done = _run([*cli, "uninstall", *locations, "hello"])
    assert (done.returncode, done.stderr) == (
        125, "Error: system container hello is not installed\n")


@pytest.mark.parametrize(("image", "name"), [
    ("docker://quay.io/coreos/etcd:v3.5", "etcd"),
    ("registry.example:5000/team/flanneld@sha256:" + "a" * 64, "flanneld"),
    ("localhost/busybox", "busybox"),
    ("oci:/srv/images/etcd-layout:v1", "etcd-layout"),
    ("oci-archive:/srv/images/flanneld.tar", "flanneld"),
    ("containers-storage:[overlay@/var/lib/s+/run/s]localhost/app:v1", "app"),
])
def test_default_name_is_the_repository_basename(image: str, name: str) -> None:
    assert _default_name(image) == name


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_detached_run_ps_stop_rm(cli: list[str], tmp_path: Path) -> None:
    image = _image(tmp_path / "layout", "d", "x")
    usr1 = _image(tmp_path / "layout", "usr1", "x", stop_signal="SIGUSR1")
    loop = "while true; do sleep 1 & wait $!; done"
    log = tmp_path / "log"
    log.mkdir()
    done = _run([*cli, "run", "-d", "--name", "polite", "-v", f"{log}:/log", image, "sh",
                 "-c", f"trap 'echo TERM > /log/polite; exit 0' TERM; {loop}"])
    assert done.returncode == 0, done.stderr
    polite = done.stdout.strip()
    assert len(polite) == 64
    # a container that ignores SIGTERM is killed after stop's timeout
    done = _run([*cli, "run", "-d", "--name", "stubborn", image, "sh", "-c",
                 f"trap '' TERM; {loop}"])
    assert done.returncode == 0, done.stderr
    # the image's StopSignal (SIGUSR1) is what stop sends
    done = _run([*cli, "run", "-d", "--name", "usr1", "-v", f"{log}:/log", usr1, "sh",
                 "-c", f"trap 'echo USR1 > /log/usr1; exit 0' USR1; {loop}"])
    assert done.returncode == 0, done.stderr
    assert _run([*cli, "stop", "-t", "5", "usr1"]).returncode == 0
    assert (log / "usr1").read_text() == "USR1\n"
    assert _run([*cli, "rm", "usr1"]).returncode == 0

    rows = {r["names"][0]: r for r in json.loads(_run([*cli, "ps", "--json"]).stdout)}
    assert {n: r["status"] for n, r in rows.items()} == {"polite": "running",
                                                          "stubborn": "running"}
    assert rows["polite"]["id"] == polite
    assert _alive(rows["stubborn"]["pid"])
    table = _run([*cli, "ps"]).stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "STATUS", "CREATED", "NAMES"]
    assert len(table) == 3

    done = _run([*cli, "rm", "polite"])
    assert (done.returncode, done.stderr) == (
        125, "Error: container polite is running: stop it first or use rm -f\n")
    started = time.monotonic()
    done = _run([*cli, "stop", "-t", "1", "polite", "stubborn"])
    assert (done.returncode, done.stdout) == (0, "polite\nstubborn\n"), done.stderr
    assert time.monotonic() - started >= 1  # stubborn needed the SIGKILL
    assert (log / "polite").read_text() == "TERM\n"  # polite stopped on SIGTERM
    statuses = {r["names"][0]: r["status"]
                for r in json.loads(_run([*cli, "ps", "--json"]).stdout)}
    assert statuses == {"polite": "stopped", "stubborn": "stopped"}
    assert not _alive(rows["stubborn"]["pid"])

    done = _run([*cli, "rm", "polite", "stubborn"])
    assert (done.returncode, done.stdout) == (0, "polite\nstubborn\n"), done.stderr
    assert json.loads(_run([*cli, "ps", "--json"]).stdout) == []
    assert os.listdir(tmp_path / "runc") == []
    # rm -f stops a running one; an unknown name is an error
    done = _run([*cli, "run", "-d", "--name", "gone", image, "sh", "-c", loop])
    assert done.returncode == 0, done.stderr
    assert _run([*cli, "rm", "-f", "gone"]).returncode == 0
    assert os.listdir(tmp_path / "runc") == []
    done = _run([*cli, "rm", "gone"])
    assert done.returncode == 125
    assert "gone" in done.stderr
    done = _run([*cli, "run", "-d", "--rm", image, "true"])
    assert done.returncode == 125
    assert "-d cannot be combined with --rm" in done.stderr


def _interfaces(proc_net_dev: str) -> set[str]:
    return {line.split(":")[0].strip() for line in proc_net_dev.splitlines()[2:]}


def test_run_volumes_tmpfs_caps_network(cli: list[str], tmp_path: Path) -> None:
    image = _image(tmp_path / "layout", "v", "x")
    data = tmp_path / "data"
    data.mkdir()
    (data / "in").write_text("from the host\n")
    script = ("cat /data/in; echo written > /data/out; touch /ro/x 2>&1; "
              "cat /proc/mounts; cat /proc/self/status; cat /proc/net/dev")
    done = _run([*cli, "run", "--rm", "-v", f"{data}:/data", "-v", f"{data}:/ro:ro",
                 "--tmpfs", "/scratch", "--tmpfs", "/small:size=1m,mode=0700",
                 "--cap-drop", "ALL", "--cap-add", "NET_ADMIN",
                 image, "sh", "-c", script])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("from the host\n")
    assert (data / "out").read_text() == "written\n"
    assert "Read-only file system" in out
    mounts = {f[1]: f for f in (line.split() for line in out.splitlines()) if len(f) == 6}
    assert mounts["/scratch"][2] == "tmpfs"
    assert "noexec" in mounts["/scratch"][3].split(",")
    assert {"size=1024k", "mode=700"} <= set(mounts["/small"][3].split(","))
    caps = {k: int(v, 16) for k, v in (line.split(":\t") for line in out.splitlines()
                                       if line.startswith("Cap"))}
    assert caps["CapBnd"] == 1 << 12  # CAP_NET_ADMIN only
    assert _interfaces(out[out.index("Inter-|"):]) == {"lo"}  # --network none

    for bad in ("relative:/x", f"{data}:/x:rx", f"{tmp_path / 'missing'}:/x", "named:/x"):
        done = _run([*cli, "run", "--rm", "-v", bad, image, "true"])
        assert done.returncode == 125
        assert done.stderr.startswith(f"Error: -v {bad!r}"), done.stderr
    done = _run([*cli, "run", "--rm", "--tmpfs", "relative", image, "true"])
    assert (done.returncode, done.stderr) == (
        125, "Error: --tmpfs 'relative': the path must be absolute\n")

    # the host's network: its interfaces, its resolver configuration
    host = _run([*cli, "run", "--rm", "--network", "host", image, "sh", "-c",
                 "cat /proc/net/dev; echo ---; cat /etc/resolv.conf"])
    assert host.returncode == 0, host.stderr
    net_dev, resolv = host.stdout.split("---\n")
    if Path("/etc/resolv.conf").exists():
        assert resolv == Path("/etc/resolv.conf").read_text()
    host_interfaces = _interfaces(Path("/proc/net/dev").read_text())
    if host_interfaces == {"lo"}:
        pytest.skip("this host has no network interface besides lo to compare")
    assert _interfaces(net_dev) == host_interfaces
