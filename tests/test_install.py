"""System containers (oci_runtime.install): images pushed to a real loopback registry,
installed into private directories (never the host's /etc/systemd, /etc/tmpfiles.d or
/var/lib/containers), units checked with ``systemd-analyze verify`` and run the way
systemd would (their ExecStart/ExecStop lines, with real runc), update, rollback and
uninstall leaving nothing behind."""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from oci_image.build import BuiltImage, FileEntry, ImageBuilder
from oci_image.copy import CopyOptions
from oci_image.interfaces import OpenOptions, RegistryOptions
from oci_image.spec import Platform, host_platform
from oci_runtime._templates import substitute
from oci_runtime._units import add_dependencies, command_line, exec_argv, parse_unit
from oci_runtime.errors import InstallError
from oci_runtime.install import (
    InstallOptions,
    get_installation,
    install,
    list_installed,
    rollback,
    uninstall,
    update,
)
from oci_runtime.profiles import default_spec
from oci_runtime.run import StoreLocation
from oci_storage.store import Store

from .peers import require, require_root
from .test_store import podman_for

PLAIN = OpenOptions(registry=RegistryOptions(tls_verify=False))
#: the module (``oci_runtime.install`` the attribute could be taken for the function)
install_module = importlib.import_module("oci_runtime.install")

# ---------------------------------------------------------------------------------------
# images


def _busybox_files() -> dict[str, bytes | FileEntry]:
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        busybox = Path(require("busybox"))
    return {"bin/busybox": FileEntry(data=busybox.read_bytes(), mode=0o755),
            **{f"bin/{a}": FileEntry(kind="symlink", linkname="busybox")
               for a in ("sh", "cat", "echo", "sleep", "ls")},
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
            "etc/group": b"root:x:0:\n"}


def _builder() -> ImageBuilder:
    host = host_platform()
    builder = ImageBuilder(platform=Platform(host.os, host.architecture))
    builder.add_layer_from_files(_busybox_files(), created_by="COPY busybox")
    return builder


#: the etcd-like container: writes to its bind-mounted state directory, stops on TERM
ETCD_SCRIPT = ("trap 'echo stopping >> /state/log; exit 0' TERM; "
               "echo \"started $$ETCD_NAME $VERSION\" >> /state/log; "
               "while true; do sleep 1 & wait $$!; done")

SERVICE_TEMPLATE = """\
[Unit]
Description=etcd-like $VERSION ($NAME)
After=network.target

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=-$EXEC_STOPPOST
WorkingDirectory=$DESTDIR
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


def config_template() -> str:
    """A config.json.template as an image author writes one: ``runc spec`` edited, with
    variables (``$ALL_PROCESS_CAPABILITIES`` makes it JSON only once substituted)."""
    doc: dict[str, Any] = json.loads(default_spec().to_json())
    doc["process"].update(terminal=False, args=["/bin/sh", "-c", ETCD_SCRIPT],
                          env=["PATH=/bin", "ETCD_NAME=$ETCD_NAME"])
    doc["process"]["capabilities"]["bounding"] = "@CAPS@"
    doc["root"] = {"path": "rootfs", "readonly": True}
    doc["hostname"] = "$NAME"
    doc["mounts"].append({"destination": "/state", "type": "bind",
                          "source": "${STATE_DIRECTORY}/${NAME}",
                          "options": ["rbind", "rw"]})
    return json.dumps(doc, indent=2).replace('"@CAPS@"', "[$ALL_PROCESS_CAPABILITIES]")


def etcd_image(version: str, *, service: str = SERVICE_TEMPLATE,
               extra: dict[str, bytes | FileEntry] | None = None) -> BuiltImage:
    builder = _builder()
    manifest = {"version": "1.0",
                "defaultValues": {"ETCD_NAME": "default", "VERSION": version},
                "installedFilesTemplate": ["/usr/local/bin/etcdctl-like"],
                "renameFiles": {"/etc/etcd-like/etcd.conf": "/etc/etcd-like/$NAME.conf"}}
    builder.add_layer_from_files({
        "exports/config.json.template": config_template().encode(),
        "exports/manifest.json": json.dumps(manifest).encode(),
        "exports/service.template": service.encode(),
        "exports/tmpfiles.template":
            b"d ${STATE_DIRECTORY}/${NAME} 0700 ${HOST_UID} ${HOST_GID} - -\n",
        "exports/hostfs/usr/local/bin/etcdctl-like": FileEntry(
            data=b"#!/bin/sh\necho 'etcdctl for $NAME $VERSION'\n", mode=0o755),
        # a relative symlink that stays inside the host root is installed as it is
        "exports/hostfs/usr/local/bin/etcdctl": FileEntry(kind="symlink",
                                                          linkname="etcdctl-like"),
        "exports/hostfs/etc/etcd-like/etcd.conf": b"literal $NOT_A_VARIABLE\n",
        **(extra or {}),
    }, created_by=f"ADD exports {version}")
    builder.config(cmd=["/bin/sh"], env=["PATH=/bin"], labels={"version": version})
    return builder.build()


def flanneld_image() -> BuiltImage:
    """No /exports: the installer's defaults (spec from the image config, default unit)."""
    builder = _builder()
    builder.config(cmd=["/bin/sh", "-c",
                        "echo flanneld up; trap 'echo flanneld down; exit 0' TERM; "
                        "while :; do sleep 1 & wait $!; done"], env=["PATH=/bin"])
    return builder.build()


# ---------------------------------------------------------------------------------------
# fixtures


@attrs.frozen
class Env:
    tmp: Path
    options: InstallOptions
    registry_host: str
    repo: str

    def push(self, image: BuiltImage, name: str, tag: str = "latest") -> str:
        ref = f"docker://{self.registry_host}/{self.repo}/{name}:{tag}"
        image.write_to(ref, CopyOptions(dest_options=PLAIN))
        return ref

    def snapshot(self) -> set[str]:
        """Every path under the directories an installation writes to."""
        out = set()
        for key in ("checkouts", "unit_dir", "tmpfiles_dir", "quadlet_dir", "host_root"):
            root = Path(getattr(self.options, key))
            for dirpath, dirnames, filenames in os.walk(root):
                for entry in dirnames + filenames:
                    out.add(f"{key}:{Path(dirpath, entry).relative_to(root)}")
        runc_root = Path(self.options.runc_root or "/nonexistent")
        if runc_root.is_dir():
            out |= {f"runc:{p.name}" for p in runc_root.iterdir()}
        return out


@pytest.fixture
def env(tmp_path: Path, registry: Any, request: pytest.FixtureRequest) -> Iterator[Env]:
    require_root("system containers run with runc as root here")
    runc = require("runc")
    require("systemd-tmpfiles")
    for d in ("checkouts", "units", "tmpfiles", "quadlet", "host/etc", "runc", "state",
              "rundir"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "host/etc/hostname").write_text("the host's own file\n")
    options = InstallOptions(
        store=StoreLocation(str(tmp_path / "graph"), str(tmp_path / "run")),
        checkouts=str(tmp_path / "checkouts"), unit_dir=str(tmp_path / "units"),
        tmpfiles_dir=str(tmp_path / "tmpfiles"), quadlet_dir=str(tmp_path / "quadlet"),
        host_root=str(tmp_path / "host"), runc=runc, runc_root=str(tmp_path / "runc"),
        values={"STATE_DIRECTORY": str(tmp_path / "state"),
                "RUN_DIRECTORY": str(tmp_path / "rundir")},
        copy_options=CopyOptions(source_options=PLAIN))
    repo = "sys/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    yield Env(tmp_path, options, registry.host, repo)
    for name in ("etcd", "flanneld", "bad"):  # never leave a container running
        subprocess.run([runc, "--root", str(tmp_path / "runc"), "delete", "--force", name],
                       capture_output=True, check=False)


# ---------------------------------------------------------------------------------------
# running a unit the way systemd would


def unit_values(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for _section, key, value in parse_unit(path.read_text()):
        out.setdefault(key, []).append(value)
    return out


def _exec(value: str, cwd: str) -> int:
    result = subprocess.run(exec_argv(value), cwd=cwd, capture_output=True, timeout=60,
                            check=False)
    if result.returncode != 0 and not value.startswith("-"):
        raise AssertionError(f"{value} failed: {result.stderr.decode(errors='replace')}")
    return result.returncode


def run_unit(unit: Path, output: Path, ready: Callable[[], bool]) -> int:
    """ExecStartPre, ExecStart (in the background, stdout to ``output``) until
    ``ready()``, then ExecStop and ExecStopPost; the ExecStart process's exit status."""
    values = unit_values(unit)
    cwd = values["WorkingDirectory"][0]
    for pre in values.get("ExecStartPre", []):
        _exec(pre, cwd)
    (start,) = values["ExecStart"]
    with open(output, "wb") as out:
        process = subprocess.Popen(exec_argv(start), cwd=cwd, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not ready():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.05)
        for stop in values["ExecStop"]:
            _exec(stop, cwd)
        status = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for post in values.get("ExecStopPost", []):
        _exec(post, cwd)
    return status


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it has exited, and the init
    that inherited it may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def start_forking_unit(unit: Path, output: Path) -> int:
    """ExecStartPre, then ExecStart as systemd runs a ``Type=forking`` unit's: stdin
    /dev/null and stdout/stderr to a file (the journal, under systemd), never a pipe:
    ``runc run -d`` hands its stdio to the container, which would hold a pipe open
    for its whole life and hang a reader waiting for EOF. ExecStart must exit 0
    promptly; the main PID is read from ``PIDFile=`` and must be alive."""
    values = unit_values(unit)
    assert values["Type"] == ["forking"]
    cwd = values["WorkingDirectory"][0]
    for pre in values.get("ExecStartPre", []):
        _exec(pre, cwd)
    (start,) = values["ExecStart"]
    began = time.monotonic()
    with open(output, "wb") as out:
        result = subprocess.run(exec_argv(start), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, timeout=60,
                                check=False)
    assert result.returncode == 0, output.read_text()
    assert time.monotonic() - began < 30, "ExecStart of a forking unit must return"
    (pidfile,) = values["PIDFile"]
    pid = int(Path(pidfile).read_text().strip())
    assert _alive(pid), f"PIDFile {pidfile} names {pid}, which is not running"
    return pid


def stop_forking_unit(unit: Path, pid: int) -> None:
    """ExecStop, wait for the main PID to exit (as systemd does, up to
    TimeoutStopSec), ExecStopPost, and remove the PIDFile (as systemd does)."""
    values = unit_values(unit)
    cwd = values["WorkingDirectory"][0]
    try:
        for stop in values["ExecStop"]:
            _exec(stop, cwd)
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, f"main PID {pid} did not exit"
            time.sleep(0.05)
    finally:
        for post in values.get("ExecStopPost", []):
            _exec(post, cwd)
        Path(values["PIDFile"][0]).unlink(missing_ok=True)


def verify_unit(unit: Path, *unit_dirs: Path) -> None:
    analyze = require("systemd-analyze")
    search = ":".join(str(d) for d in (unit.parent, *unit_dirs)) + ":"
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            env={**os.environ, "SYSTEMD_UNIT_PATH": search}, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert unit.name not in result.stderr, result.stderr  # no warning about our unit


# ---------------------------------------------------------------------------------------
# the tests


def test_install_run_update_rollback_uninstall(env: Env) -> None:
    before = env.snapshot()
    ref = env.push(etcd_image("v1"), "etcd")
    options = attrs.evolve(env.options, values={**env.options.values, "ETCD_NAME": "node1"})
    inst = install(ref, "etcd", options)

    checkouts = Path(options.checkouts)
    assert os.readlink(checkouts / "etcd") == "etcd.0"
    assert inst.deployment == 0
    assert inst.path == checkouts / "etcd.0"
    info = json.loads((checkouts / "etcd.0" / "info").read_text())
    assert info["image"] == ref
    assert info["image-id"] == inst.image_id
    assert info["digest"].startswith("sha256:")
    assert info["values"]["ETCD_NAME"] == "node1"
    with Store.open(options.store.graphroot, options.store.runroot) as store:
        assert store.image(inst.image_id).names == (ref.removeprefix("docker://"),)
    # a real copy of the tree, read-only in the bundle
    assert (inst.rootfs / "bin/busybox").is_file()
    config = json.loads((inst.path / "config.json").read_text())
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert config["hostname"] == "etcd"
    assert "ETCD_NAME=node1" in config["process"]["env"]
    assert "CAP_SYS_ADMIN" in config["process"]["capabilities"]["bounding"]
    assert "$ETCD_NAME" in config["process"]["args"][2]  # $$ escaped, left for the shell
    # the unit, from the image's template
    unit = Path(options.unit_dir) / "etcd.service"
    assert inst.unit_path == unit
    text = unit.read_text()
    assert "Description=etcd-like v1 (etcd)" in text
    assert f"WorkingDirectory={checkouts}/etcd.0" in text
    verify_unit(unit)
    # tmpfiles.d entry, applied: the state directory exists
    tmpfiles = Path(options.tmpfiles_dir) / "etcd.conf"
    state = env.tmp / "state" / "etcd"
    assert tmpfiles.read_text() == f"d {state} 0700 0 0 - -\n"
    assert state.is_dir()
    # host files: templated, renamed, literal
    host = Path(options.host_root)
    ctl = host / "usr/local/bin/etcdctl-like"
    assert ctl.read_text() == "#!/bin/sh\necho 'etcdctl for etcd v1'\n"
    assert os.access(ctl, os.X_OK)
    assert (host / "etc/etcd-like/etcd.conf").read_text() == "literal $NOT_A_VARIABLE\n"
    assert os.readlink(host / "usr/local/bin/etcdctl") == "etcdctl-like"
    assert sorted(inst.installed_files) == ["/etc/etcd-like/etcd.conf",
                                            "/usr/local/bin/etcdctl",
                                            "/usr/local/bin/etcdctl-like"]
    assert [i.name for i in list_installed(options)] == ["etcd"]

    # the unit really runs the container
    status = run_unit(unit, env.tmp / "out", lambda: (state / "log").exists())
    assert status == 0
    assert (state / "log").read_text() == "started node1 v1\nstopping\n"
    assert not list(Path(options.runc_root or "").iterdir())  # runc state gone

    with pytest.raises(InstallError, match="already installed"):
        install(ref, "etcd", options)
    with pytest.raises(InstallError, match="no previous deployment"):
        rollback("etcd", options)
    assert update("etcd", options).deployment == 0  # nothing new: nothing done

    # update to v2 (same tag), then roll back and forth
    v1_unit = unit.read_bytes()
    env.push(etcd_image("v2"), "etcd")
    updated = update("etcd", options)
    assert updated.deployment == 1
    assert os.readlink(checkouts / "etcd") == "etcd.1"
    assert updated.image_id != inst.image_id
    assert "Description=etcd-like v2 (etcd)" in unit.read_text()
    assert f"WorkingDirectory={checkouts}/etcd.1" in unit.read_text()
    assert json.loads((checkouts / "etcd.1/info").read_text())["image-id"] == updated.image_id
    assert ctl.read_text() == "#!/bin/sh\necho 'etcdctl for etcd v2'\n"
    verify_unit(unit)
    (state / "log").unlink()
    run_unit(unit, env.tmp / "out2", lambda: (state / "log").exists())
    assert (state / "log").read_text() == "started node1 v2\nstopping\n"

    back = rollback("etcd", options)
    assert back.deployment == 0
    assert back.image_id == inst.image_id
    assert os.readlink(checkouts / "etcd") == "etcd.0"
    assert unit.read_bytes() == v1_unit
    assert ctl.read_text() == "#!/bin/sh\necho 'etcdctl for etcd v1'\n"
    assert get_installation("etcd", options).deployment == 0
    assert rollback("etcd", options).deployment == 1

    uninstall("etcd", options, remove_image=True)
    after = env.snapshot()
    assert after == before, sorted(after ^ before)
    assert (host / "etc/hostname").read_text() == "the host's own file\n"
    assert list_installed(options) == ()
    with Store.open(options.store.graphroot, options.store.runroot) as store:
        assert store.images() == ()
    with pytest.raises(InstallError, match="not installed"):
        uninstall("etcd", options)


def test_default_unit_with_dependencies(env: Env) -> None:
    """flanneld (no /exports) ordered after and requiring etcd, as in
    atomic-system-containers."""
    before = env.snapshot()
    etcd_ref = env.push(etcd_image("v1"), "etcd")
    flannel_ref = env.push(flanneld_image(), "flanneld")
    install(etcd_ref, "etcd", env.options)
    options = attrs.evolve(env.options, requires=["etcd.service"], after=["etcd.service"],
                           wants=["network-online.target"])
    inst = install(flannel_ref, "flanneld", options)
    unit = Path(options.unit_dir) / "flanneld.service"
    lines = unit.read_text().splitlines()
    unit_section = lines[:lines.index("[Service]")]
    for line in ("Requires=etcd.service", "After=etcd.service",
                 "Wants=network-online.target"):
        assert line in unit_section
    values = unit_values(unit)
    assert values["Restart"] == ["on-failure"]
    assert values["WorkingDirectory"] == [str(inst.path)]
    assert exec_argv(values["ExecStart"][0]) == [
        options.runc, "--root", options.runc_root, "run", "--bundle", str(inst.path),
        "flanneld"]
    assert exec_argv(values["ExecStop"][0])[-2:] == ["kill", "flanneld"]
    verify_unit(unit)  # etcd.service is found next to it
    # the spec from the image config: read-only root, no terminal
    config = json.loads((inst.path / "config.json").read_text())
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert config["process"]["terminal"] is False
    assert not (Path(options.tmpfiles_dir) / "flanneld.conf").exists()

    out = env.tmp / "flanneld.out"
    assert run_unit(unit, out, lambda: out.exists() and "up" in out.read_text()) == 0
    assert out.read_text() == "flanneld up\nflanneld down\n"

    uninstall("flanneld", options)
    uninstall("etcd", options)
    after = env.snapshot()
    assert after == before, sorted(after ^ before)


#: Atomic's detached variant: a template using both $EXEC_STOPPOST and $PIDFILE gets
#: ``runc run -d --pid-file $PIDFILE`` as $EXEC_START, for Type=forking
DETACHED_TEMPLATE = """\
[Unit]
Description=etcd-like $VERSION ($NAME), detached

[Service]
Type=forking
PIDFile=$PIDFILE
ExecStartPre=-$EXEC_STARTPRE
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
WorkingDirectory=$DESTDIR
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


def _runc_state(options: InstallOptions, name: str) -> dict[str, Any]:
    result = subprocess.run([options.runc, "--root", options.runc_root or "", "state",
                             name], capture_output=True, timeout=30, check=True)
    state: dict[str, Any] = json.loads(result.stdout)
    return state


def test_detached_unit(env: Env) -> None:
    before = env.snapshot()
    ref = env.push(etcd_image("v1", service=DETACHED_TEMPLATE), "etcd")
    options = env.options
    inst = install(ref, "etcd", options)
    unit = Path(options.unit_dir) / "etcd.service"
    pidfile = env.tmp / "rundir" / "container-etcd.pid"
    values = unit_values(unit)
    assert values["Type"] == ["forking"]
    assert values["PIDFile"] == [str(pidfile)]
    assert exec_argv(values["ExecStart"][0]) == [
        options.runc, "--root", options.runc_root, "run", "-d", "--pid-file",
        str(pidfile), "--bundle", str(inst.path), "etcd"]
    assert exec_argv(values["ExecStopPost"][0])[-3:] == ["delete", "--force", "etcd"]
    verify_unit(unit)

    state = env.tmp / "state" / "etcd"
    pid = start_forking_unit(unit, env.tmp / "out")
    try:
        assert _runc_state(options, "etcd")["pid"] == pid  # the container's init
        assert _runc_state(options, "etcd")["status"] == "running"
        deadline = time.monotonic() + 30
        while not (state / "log").exists():  # the container does its work
            assert _alive(pid), (env.tmp / "out").read_text()
            assert time.monotonic() < deadline, "the container did not start"
            time.sleep(0.05)
    finally:
        stop_forking_unit(unit, pid)
    assert (state / "log").read_text() == "started default v1\nstopping\n"
    assert not list(Path(options.runc_root or "").iterdir())  # runc state gone
    assert not pidfile.exists()

    # a second start works (ExecStartPre clears nothing left; the name is free again)
    pid = start_forking_unit(unit, env.tmp / "out2")
    stop_forking_unit(unit, pid)
    assert not list(Path(options.runc_root or "").iterdir())

    uninstall("etcd", options)
    assert env.snapshot() == before


def test_detached_pidfile_must_suit_pidfile_setting(env: Env) -> None:
    before = env.snapshot()
    ref = env.push(etcd_image("v1", service=DETACHED_TEMPLATE), "etcd")
    for bad in ("relative/etcd.pid", f"{env.tmp}/100%/etcd.pid", f"{env.tmp}/a b.pid"):
        options = attrs.evolve(env.options, values={**env.options.values, "PIDFILE": bad})
        with pytest.raises(InstallError, match="PIDFILE"):
            install(ref, "etcd", options)
        assert env.snapshot() == before


#: the [Container] keys podman-systemd.unit(5) defines that the installer writes
#: (GlobalArgs= since podman 4.8; Quadlet rejects keys it does not know)
QUADLET_CONTAINER_KEYS = {"Image", "ContainerName", "ReadOnly", "GlobalArgs", "Volume"}


def _quadlet_words(value: str) -> list[str]:
    """A Quadlet ``GlobalArgs=`` value's words (systemd quoting, ``$$``/``%%`` undone)."""
    return [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(value)]


def test_quadlet_output(env: Env, tmp_path: Path,
                        tmp_path_factory: pytest.TempPathFactory) -> None:
    # podman refuses a long runroot (tests/test_store.py): give the store a short one
    runroot = tmp_path_factory.mktemp("qrun")
    store = StoreLocation(str(env.tmp / "graph"), str(runroot))
    before = env.snapshot()
    ref = env.push(etcd_image("v1"), "etcd")
    options = attrs.evolve(env.options, store=store, quadlet=True,
                           requires=["etcd-db.service"], after=["etcd-db.service"])
    inst = install(ref, "etcd", options)
    path = Path(options.quadlet_dir) / "etcd.container"
    assert inst.unit_path == path
    assert not any(Path(options.unit_dir).iterdir())
    entries = parse_unit(path.read_text())
    assert {s for s, _k, _v in entries} == {"Unit", "Container", "Service", "Install"}
    container = [(k, v) for s, k, v in entries if s == "Container"]
    assert {k for k, _v in container} <= QUADLET_CONTAINER_KEYS
    for once in ("Image", "ContainerName", "ReadOnly", "GlobalArgs"):
        assert [k for k, _v in container].count(once) == 1, once
    # Image=: the deployment's exact image, as a full 64-hex ID (Quadlet takes that as
    # unambiguous; a short name would draw its warning and a registry search)
    assert ("Image", inst.image_id) in container
    assert re.fullmatch(r"[0-9a-f]{64}", inst.image_id)
    assert ("ContainerName", "etcd") in container
    assert ("ReadOnly", "true") in container
    # Quadlet generates ExecStart/ExecStop itself
    assert not {k for s, k, _v in entries if s == "Service"} & {
        "ExecStart", "ExecStop", "ExecStopPost", "Type"}
    assert ("Unit", "Requires", "etcd-db.service") in entries
    assert ("Unit", "After", "etcd-db.service") in entries
    state = env.tmp / "state" / "etcd"
    volumes = [v for k, v in container if k == "Volume"]
    assert volumes == [f"{state}:/state"]
    for volume in volumes:  # SOURCE:DEST[:OPTIONS], a bind mount from an absolute path
        source, dest, *opts = volume.split(":")
        assert source.startswith("/"), volume
        assert dest.startswith("/"), volume
        assert len(opts) <= 1, volume
    global_args = _quadlet_words(next(v for k, v in container if k == "GlobalArgs"))
    with Store.open(store.graphroot, store.runroot) as opened:
        driver = opened.driver.name
    assert global_args == ["--root", store.graphroot, "--runroot", store.runroot,
                           "--storage-driver", driver]

    # what the file says, podman runs: its GlobalArgs find the image by that ID in our
    # store, and the Volume= binds work (the generator is not in podman 4.3; this is
    # the `podman run` it would generate, minus systemd's --cidfile/--sdnotify)
    # (test_store's podman on our store: the same --root/--runroot/--storage-driver as
    # the GlobalArgs checked above, plus private test state only: a private /var/lib,
    # --tmpdir for libpod's /run/libpod, cgroupfs, file events)
    require("unshare")
    podman = podman_for(tmp_path / "podman-home", Path(store.graphroot),
                        Path(store.runroot), driver)
    try:
        result = podman.run(
            "run", "--rm", "--pull=never", "--name", dict(container)["ContainerName"],
            "--read-only", *[a for v in volumes for a in ("-v", v)],
            dict(container)["Image"],
            "/bin/sh", "-c", "echo ran by podman > /state/podman.out; cat /etc/passwd")
    finally:
        subprocess.run(podman.argv("rm", "--force", "--ignore", "etcd"), env=podman.env(),
                       capture_output=True, timeout=120, check=False)
    assert result.stdout == b"root:x:0:0:root:/root:/bin/sh\n"  # the image's own file
    assert (state / "podman.out").read_text() == "ran by podman\n"

    # an update keeps the installation a Quadlet one, whatever options.quadlet says
    updated = update("etcd", attrs.evolve(options, quadlet=False), force=True)
    assert updated.deployment == 1
    assert updated.unit_path == path
    assert updated.quadlet
    assert not any(Path(options.unit_dir).iterdir())
    uninstall("etcd", options, remove_image=True)
    assert env.snapshot() == before


def test_strict_substitution(env: Env) -> None:
    values = {"NAME": "x", "A": "1"}
    assert substitute("$NAME ${A} $$HOME $$", values, source="t") == "x 1 $HOME $"
    with pytest.raises(InstallError, match=r"service\.template: no value for the "
                                           r"variable \$UNKNOWN_THING"):
        substitute("ExecStart=$UNKNOWN_THING", values, source="/exports/service.template")
    with pytest.raises(InstallError, match="invalid placeholder"):
        substitute("cost: 5$", values, source="t")

    # an image whose template uses an unset variable installs nothing; --set fixes it
    before = env.snapshot()
    bad = etcd_image("v1", service=SERVICE_TEMPLATE.replace("After=network.target",
                                                            "After=$AFTER"))
    ref = env.push(bad, "bad")
    with pytest.raises(InstallError, match=r"/exports/service\.template.*\$AFTER"):
        install(ref, "bad", env.options)
    assert {p for p in env.snapshot() if not p.startswith("checkouts:.")} == before
    options = attrs.evolve(env.options, values={**env.options.values,
                                                "AFTER": "etcd.service"})
    install(ref, "bad", options)
    assert "After=etcd.service" in (Path(options.unit_dir) / "bad.service").read_text()
    # forced variables cannot be overridden with --set
    assert "(bad)" in (Path(options.unit_dir) / "bad.service").read_text()
    uninstall("bad", options)
    assert env.snapshot() == before


def test_hostfs_conflict_and_changed_files(env: Env) -> None:
    ref = env.push(etcd_image("v1"), "etcd")
    host = Path(env.options.host_root)
    before = env.snapshot()
    theirs = host / "usr/local/bin/etcdctl-like"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("someone else's\n")
    with pytest.raises(InstallError, match="was not installed by etcd"):
        install(ref, "etcd", env.options)
    assert theirs.read_text() == "someone else's\n"
    assert not (Path(env.options.checkouts) / "etcd.0").exists()
    assert not (Path(env.options.unit_dir) / "etcd.service").exists()
    shutil.rmtree(host / "usr")
    install(ref, "etcd", env.options)
    conf = host / "etc/etcd-like/etcd.conf"
    conf.write_text("edited by the admin\n")  # a changed host file is kept on uninstall
    uninstall("etcd", env.options)
    assert conf.read_text() == "edited by the admin\n"
    conf.unlink()
    conf.parent.rmdir()
    assert env.snapshot() == before


def test_hostfs_conflict_with_identical_file_is_kept(env: Env) -> None:
    """A refused install removes only what it made: a host file that happens to have
    the same content as the image's stays."""
    ref = env.push(etcd_image("v1"), "etcd")
    before = env.snapshot()
    theirs = Path(env.options.host_root) / "etc/etcd-like/etcd.conf"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("literal $NOT_A_VARIABLE\n")  # byte for byte what etcd installs
    with pytest.raises(InstallError, match="was not installed by etcd"):
        install(ref, "etcd", env.options)
    assert theirs.read_text() == "literal $NOT_A_VARIABLE\n"
    theirs.unlink()
    theirs.parent.rmdir()
    assert env.snapshot() == before


def _state_of(env: Env) -> dict[str, bytes | str]:
    """Every file and symlink an installation wrote, with its content."""
    out: dict[str, bytes | str] = {}
    for key in ("checkouts", "unit_dir", "tmpfiles_dir", "host_root"):
        root = Path(getattr(env.options, key))
        for dirpath, dirnames, filenames in os.walk(root):
            for entry in dirnames + filenames:
                path = Path(dirpath, entry)
                rel = f"{key}:{path.relative_to(root)}"
                if "/rootfs/" in rel + "/":
                    continue
                if path.is_symlink():
                    out[rel] = "-> " + os.readlink(path)
                elif path.is_file():
                    out[rel] = path.read_bytes()
                else:
                    out[rel] = "dir"
    return out


def test_failed_update_keeps_the_active_deployment(env: Env, tmp_path: Path) -> None:
    ref = env.push(etcd_image("v1"), "etcd")
    options = env.options
    install(ref, "etcd", options)
    env.push(etcd_image("v2"), "etcd")
    assert update("etcd", options).deployment == 1
    assert rollback("etcd", options).deployment == 0  # etcd.1 (v2) is the fallback
    unit = Path(options.unit_dir) / "etcd.service"
    state = _state_of(env)

    # 1. the new image cannot be rendered (its template needs an unset variable)
    bad = etcd_image("v3", service=SERVICE_TEMPLATE.replace("After=network.target",
                                                            "After=$AFTER"))
    env.push(bad, "etcd")
    with pytest.raises(InstallError, match=r"service\.template.*\$AFTER"):
        update("etcd", options)
    assert _state_of(env) == state  # etcd.1 (v2) came back from aside, unchanged

    # 2. rendering works but activation fails late: host files and the unit were
    # already replaced when the tmpfiles.d step fails, and are put back
    v4 = etcd_image("v4", extra={"exports/hostfs/opt/etcd-like/new/file": b"v4 only\n"})
    env.push(v4, "etcd")
    failing = tmp_path / "failing-tmpfiles"
    failing.write_text("#!/bin/sh\necho 'tmpfiles: simulated failure' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(InstallError, match="simulated failure"):
        update("etcd", attrs.evolve(options, tmpfiles_command=str(failing)))
    assert _state_of(env) == state
    assert os.readlink(Path(options.checkouts) / "etcd") == "etcd.0"
    assert "Description=etcd-like v1 (etcd)" in unit.read_text()
    verify_unit(unit)
    assert not (Path(options.host_root) / "opt").exists()

    # the installation still works: the unit runs, rollback reaches v2, update v4
    log = env.tmp / "state" / "etcd" / "log"
    run_unit(unit, env.tmp / "out", log.exists)
    assert log.read_text() == "started default v1\nstopping\n"
    assert rollback("etcd", options).image_id == json.loads(
        state["checkouts:etcd.1/info"])["image-id"]
    assert update("etcd", options).deployment == 0
    assert (Path(options.host_root) / "opt/etcd-like/new/file").read_text() == "v4 only\n"
    assert get_installation("etcd", options).image_id != json.loads(
        state["checkouts:etcd.0/info"])["image-id"]
    uninstall("etcd", options)
    assert not (Path(options.host_root) / "opt").exists()


# ---------------------------------------------------------------------------------------
# hostile images: the installer reads only the image's own files, writes only below the
# host root, and a refused image leaves nothing behind


def _exports_image(files: dict[str, bytes | FileEntry], manifest: Any = None) -> BuiltImage:
    """An image with just ``files`` (``manifest``: /exports/manifest.json as JSON)."""
    host = host_platform()
    builder = ImageBuilder(platform=Platform(host.os, host.architecture))
    if manifest is not None:
        files = {"exports/manifest.json": json.dumps(manifest).encode(), **files}
    builder.add_layer_from_files(files, created_by="ADD hostile exports")
    builder.config(cmd=["/bin/sh"], env=["PATH=/bin"])
    return builder.build()


def _link(target: str) -> FileEntry:
    return FileEntry(kind="symlink", linkname=target)


HOSTFS_CONF: dict[str, bytes | FileEntry] = {"exports/hostfs/etc/hostile/a.conf": b"a\n"}
#: name -> (files, manifest, the error message): ``@OUTSIDE@`` in a symlink target
#: stands for a directory of the test outside the host root (that must stay empty)
HOSTILE: dict[str, tuple[dict[str, bytes | FileEntry], Any, str]] = {}


def _hostile(name: str, match: str, files: dict[str, bytes | FileEntry],
             manifest: Any = None) -> None:
    HOSTILE[name] = (files, manifest, match)


_hostile("service-template-symlink", r"/exports/service\.template is a symlink",
         {"exports/service.template": _link("/etc/shadow")})
_hostile("manifest-symlink", r"/exports/manifest\.json is a symlink",
         {"exports/manifest.json": _link("/etc/shadow")})
_hostile("config-template-symlink-relative", r"config\.json\.template is a symlink",
         {"exports/config.json.template": _link("../../../../../../etc/shadow")})
_hostile("exports-symlink", r"/exports is a symlink",
         {"exports": _link("/etc")})
_hostile("exports-symlink-relative", r"/exports is a symlink",
         {"exports": _link("../../../../../../../etc")})
_hostile("exports-not-a-directory", r"/exports in the image is not a directory",
         {"exports": b"a file\n"})
_hostile("service-template-fifo", r"service\.template in the image is not a regular file",
         {"exports/service.template": FileEntry(kind="fifo")})
_hostile("tmpfiles-template-device", r"tmpfiles\.template in the image is not a regular",
         {"exports/tmpfiles.template": FileEntry(kind="char", devmajor=1, devminor=5)})
_hostile("service-template-huge", r"service\.template in the image is larger than 1048576",
         {"exports/service.template": b"#" * (1024 * 1024 + 1)})
_hostile("manifest-deeply-nested", r"manifest\.json is not valid JSON",
         {"exports/manifest.json": b"[" * 200_000 + b"]" * 200_000})
_hostile("manifest-rename-not-a-string", r"renameFiles must map strings to strings",
         HOSTFS_CONF, {"renameFiles": {"/etc/hostile/a.conf": ["/x"]}})
_hostile("hostfs-symlink", r"/exports/hostfs is a symlink",
         {"exports/hostfs": _link("/etc")})
_hostile("hostfs-entry-symlink-absolute-outside",
         r"hostfs symlink /etc/hostile/shadow -> /etc/shadow points outside the host root",
         {**HOSTFS_CONF, "exports/hostfs/etc/hostile/shadow": _link("/etc/shadow")})
_hostile("hostfs-entry-symlink-relative-outside",
         r"hostfs symlink /etc/hostile/up -> \.\./\.\./\.\./\.\./\.\./\.\./\.\./\.\./\.\./\.\./"
         r"etc/shadow points outside the host root",
         {**HOSTFS_CONF,
          "exports/hostfs/etc/hostile/up": _link("../" * 10 + "etc/shadow")})
# the symlink sorts first: copied first, a file then written "below" it would land
# wherever it points
_hostile("hostfs-file-through-own-symlink",
         r"hostfs file /etc/hostile/0dir/passwd would be installed below /etc/hostile/0dir",
         {**HOSTFS_CONF, "exports/hostfs/etc/hostile/0dir": _link("@OUTSIDE@")},
         {"renameFiles": {"/etc/hostile/a.conf": "/etc/hostile/0dir/passwd"}})
_hostile("hostfs-file-through-own-symlink-renamed",
         r"hostfs file /etc/hostile/dir/passwd would be installed below /etc/hostile/dir",
         {**HOSTFS_CONF, "exports/hostfs/etc/hostile/z": _link("@OUTSIDE@")},
         {"renameFiles": {"/etc/hostile/a.conf": "/etc/hostile/dir/passwd",
                          "/etc/hostile/z": "/etc/hostile/dir"}})
_hostile("rename-dotdot-relative", r"renamed to '\.\./\.\./x'.*'\.\.'", HOSTFS_CONF,
         {"renameFiles": {"/etc/hostile/a.conf": "../../x"}})
_hostile("rename-dotdot-absolute", r"renamed to '/etc/\.\./\.\./\.\./x'.*'\.\.'",
         HOSTFS_CONF, {"renameFiles": {"/etc/hostile/a.conf": "/etc/../../../x"}})
_hostile("rename-dotdot-from-a-variable", r"renamed to '/etc/\.\./\.\./x'", HOSTFS_CONF,
         {"renameFiles": {"/etc/hostile/a.conf": "/etc/$UP/x"},
          "defaultValues": {"UP": "../.."}})
_hostile("rename-to-the-root", r"renamed to the host root itself", HOSTFS_CONF,
         {"renameFiles": {"/etc/hostile/a.conf": "//"}})
# an OSError while rendering (here ENAMETOOLONG) is an InstallError naming the step
_hostile("rename-name-too-long", r"preparing deployment \S*/bad\.0: .*File name too long",
         HOSTFS_CONF, {"renameFiles": {"/etc/hostile/a.conf": "/etc/" + "x" * 300}})
_hostile("rename-collision", r"both go to /etc/hostile/b\.conf",
         {**HOSTFS_CONF, "exports/hostfs/etc/hostile/b.conf": b"b\n"},
         {"renameFiles": {"/etc/hostile/a.conf": "/etc/hostile/b.conf"}})


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_image(env: Env, case: str) -> None:
    files, manifest, match = HOSTILE[case]
    outside = env.tmp / "outside"
    outside.mkdir()
    files = {path: attrs.evolve(entry, linkname=entry.linkname.replace(
                 "@OUTSIDE@", str(outside))) if isinstance(entry, FileEntry) else entry
             for path, entry in files.items()}
    ref = env.push(_exports_image(files, manifest), "bad")
    before = env.snapshot()
    with pytest.raises(InstallError, match=match):
        install(ref, "bad", env.options)
    assert env.snapshot() == before
    assert not any(outside.iterdir())
    assert not (env.tmp / "x").exists()
    assert not (env.tmp.parent / "x").exists()


def test_hostfs_below_a_host_symlink_leading_out(env: Env, tmp_path: Path) -> None:
    """A host directory symlink out of the host root (host_root/etc/hostile -> a
    directory elsewhere) is not followed to install files."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    host = Path(env.options.host_root)
    (host / "etc/hostile").symlink_to(elsewhere)
    ref = env.push(_exports_image(HOSTFS_CONF), "bad")
    before = env.snapshot()
    with pytest.raises(InstallError, match=r"/etc/hostile leads outside the host root"):
        install(ref, "bad", env.options)
    assert env.snapshot() == before
    assert not any(elsewhere.iterdir())
    # within the host root, a host symlink is followed (merged /usr: /lib -> usr/lib)
    (host / "etc/hostile").unlink()
    (host / "etc/real").mkdir()
    (host / "etc/hostile").symlink_to("real")
    inst = install(ref, "bad", env.options)
    assert (host / "etc/real/a.conf").read_text() == "a\n"
    assert list(inst.installed_files) == ["/etc/hostile/a.conf"]
    uninstall("bad", env.options)
    assert not (host / "etc/real/a.conf").exists()


def test_systemctl_calls(env: Env, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    systemctl.chmod(0o755)
    options = attrs.evolve(env.options, systemctl=str(systemctl))
    ref = env.push(etcd_image("v1"), "etcd")
    install(ref, "etcd", options)
    env.push(etcd_image("v2"), "etcd")
    update("etcd", options)
    uninstall("etcd", options)
    assert calls.read_text().splitlines() == [
        "daemon-reload", "enable etcd.service", "daemon-reload", "try-restart etcd.service",
        "disable --now etcd.service", "daemon-reload"]

    # Quadlet: systemd knows the unit Quadlet generates, etcd.service (not
    # etcd.container); it cannot be enabled, and is stopped on uninstall
    calls.unlink()
    quadlet = attrs.evolve(options, quadlet=True)
    install(ref, "etcd", quadlet)
    env.push(etcd_image("v3"), "etcd")
    update("etcd", quadlet)
    rollback("etcd", quadlet)
    uninstall("etcd", quadlet)
    assert calls.read_text().splitlines() == [
        "daemon-reload",
        "daemon-reload", "try-restart etcd.service",
        "daemon-reload", "try-restart etcd.service",
        "stop etcd.service", "daemon-reload"]


# ---------------------------------------------------------------------------------------
# images that exist only in the store (podman build, an image ID): updated from the
# store, never pulled


def store_image(options: InstallOptions, image: BuiltImage, name: str) -> str:
    """Copy ``image`` into the installation's store as ``name`` (the name moves off any
    image that had it, as ``podman build -t NAME`` does); its ID."""
    with options.store.open() as store:
        spec = options.store.transport_spec(store)
    image.write_to(f"containers-storage:{spec}{name}")
    with options.store.open() as store:
        return store.image(name).id


def test_update_local_image(env: Env) -> None:
    """An image built locally (``localhost/...``) has no registry to pull from: update
    looks the name up in the store again."""
    options = env.options
    before = env.snapshot()
    id1 = store_image(options, etcd_image("v1"), "localhost/etcd:v1")
    inst = install("localhost/etcd:v1", "etcd", options)
    assert (inst.image_id, inst.image_name) == (id1, "localhost/etcd:v1")
    assert update("etcd", options) == inst  # up to date, nothing pulled

    # rebuilt under the same name: the new image is picked up
    unit = Path(options.unit_dir) / "etcd.service"
    id2 = store_image(options, etcd_image("v2"), "localhost/etcd:v1")
    assert id2 != id1
    updated = update("etcd", options)
    assert (updated.deployment, updated.image_id) == (1, id2)
    assert "Description=etcd-like v2 (etcd)" in unit.read_text()
    assert update("etcd", options).deployment == 1

    # a rebase to another local image
    id3 = store_image(options, etcd_image("v3"), "localhost/etcd-next:v3")
    rebased = update("etcd", options, image="localhost/etcd-next:v3")
    assert (rebased.deployment, rebased.image_id) == (0, id3)
    assert rebased.image == "localhost/etcd-next:v3"
    assert "Description=etcd-like v3 (etcd)" in unit.read_text()
    assert update("etcd", options).image_id == id3  # the rebase sticks
    assert rollback("etcd", options).image_id == id2

    # a local image that is gone is an error, not a pull from a registry at "localhost"
    with options.store.open() as store:
        store.delete_image(id2)
    state = _state_of(env)
    with pytest.raises(InstallError, match=r"'localhost/etcd:v1' is not in the store "
                                           r"\(an image that exists only locally"):
        update("etcd", options)
    assert _state_of(env) == state

    uninstall("etcd", options, remove_image=True)  # v3 and v2: v1 was in neither
    with options.store.open() as store:
        assert [i.id for i in store.images()] == [id1]
    assert env.snapshot() == before


def flanneld_v2_image() -> BuiltImage:
    builder = _builder()
    builder.config(cmd=["/bin/sh", "-c", "echo flanneld v2"], env=["PATH=/bin"])
    return builder.build()


def test_update_local_image_forms(env: Env) -> None:
    """Every way to name a local image: a ``containers-storage:`` reference (to this
    store, or none), an image ID or unique ID prefix, a short name the store has only
    as ``localhost/NAME``. None is pulled on update; an ID stays that image."""
    options = env.options
    before = env.snapshot()
    id1 = store_image(options, flanneld_image(), "localhost/flanneld:v1")
    with options.store.open() as store:
        spec = options.store.transport_spec(store)
    by_name = {"by-cs-ref": f"containers-storage:{spec}localhost/flanneld:v1",
               "by-cs-ref-no-store": "containers-storage:localhost/flanneld:v1",
               "by-short-name": "flanneld:v1"}
    by_id = {"by-id": id1, "by-id-prefix": id1[:12],
             "by-cs-id": f"containers-storage:{spec}@{id1}"}
    for name, image in {**by_name, **by_id}.items():
        inst = install(image, name, options)
        assert inst.image_id == id1, name
        assert update(name, options) == inst, name  # up to date, nothing pulled
    id2 = store_image(options, flanneld_v2_image(), "localhost/flanneld:v1")
    for name in by_name:
        updated = update(name, options)
        assert (updated.deployment, updated.image_id) == (1, id2), name
    for name in by_id:
        assert get_installation(name, options).image_id == id1
        assert update(name, options).deployment == 0, name
    for name in (*by_name, *by_id):
        uninstall(name, options, remove_image=True)
    with options.store.open() as store:
        assert store.images() == ()
    assert env.snapshot() == before


def test_remove_image_keeps_images_used_by_containers(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """``uninstall(remove_image=True)`` leaves an image a store container was created
    from (``run -d``, podman): containers/storage refuses to delete those."""
    ref = env.push(flanneld_image(), "flanneld")
    inst = install(ref, "flanneld", env.options)
    with env.options.store.open() as store:
        container = store.create_container(inst.image_id, name="other-user")
    with caplog.at_level(logging.WARNING, logger="oci_runtime.install"):
        uninstall("flanneld", env.options, remove_image=True)
    assert f"image {inst.image_id} is used by container {container.id}" in caplog.text
    with env.options.store.open() as store:
        assert store.image(inst.image_id).id == inst.image_id
        assert store.container(container.id).image == inst.image_id
        store.delete_container(container.id)
    # without the container the image goes
    install(ref, "flanneld", env.options)
    uninstall("flanneld", env.options, remove_image=True)
    with env.options.store.open() as store:
        assert store.images() == ()


def test_command_timeout(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``systemd-tmpfiles`` (or ``systemctl``) that hangs is killed and the step fails
    with an InstallError; the install is undone."""
    ref = env.push(etcd_image("v1"), "etcd")
    slow = tmp_path / "slow-tmpfiles"
    slow.write_text("#!/bin/sh\nexec sleep 60\n")
    slow.chmod(0o755)
    monkeypatch.setattr(install_module, "_COMMAND_TIMEOUT", 0.5)
    before = env.snapshot()
    began = time.monotonic()
    with pytest.raises(InstallError, match=r"tmpfiles: \S*/slow-tmpfiles --create \S*/"
                                           r"etcd\.conf did not finish within 0\.5 seconds"):
        install(ref, "etcd", attrs.evolve(env.options, tmpfiles_command=str(slow)))
    assert time.monotonic() - began < 30
    assert env.snapshot() == before
    # systemctl too (after the install is complete: it stays installed)
    slow_systemctl = tmp_path / "slow-systemctl"
    slow_systemctl.write_text("#!/bin/sh\nexec sleep 60\n")
    slow_systemctl.chmod(0o755)
    with pytest.raises(InstallError, match=r"systemctl: \S*/slow-systemctl daemon-reload "
                                           r"did not finish"):
        install(ref, "etcd", attrs.evolve(env.options, systemctl=str(slow_systemctl)))
    uninstall("etcd", env.options)
    assert env.snapshot() == before


def _crash_during_update(options: InstallOptions, where: str) -> None:
    """Run ``update("etcd", options)`` in another process that dies (``os._exit``, no
    clean-up) when it calls ``where`` (``_switch_symlink``, of oci_runtime.install, or
    ``MODULE:ATTR``: ``oci_runtime._hostfiles:Journal.commit``)."""
    module, _, attr = where.rpartition(":")
    script = ("import importlib, os, pickle, sys\n"
              f"m = importlib.import_module({module or 'oci_runtime.install'!r})\n"
              "def crash(*args, **kwargs):\n"
              "    os._exit(86)\n"
              f"m.{attr} = crash\n"
              "importlib.import_module('oci_runtime.install')"
              ".update('etcd', pickle.loads(sys.stdin.buffer.read()))\n"
              "sys.exit(1)\n")
    result = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(options),
                            capture_output=True, timeout=300, check=False)
    assert result.returncode == 86, result.stderr.decode(errors="replace")


def _leftovers(env: Env) -> list[str]:
    return sorted(p for p in _state_of(env) if ".install-old" in p or ".replaced" in p)


def test_update_interrupted_by_a_crash(env: Env) -> None:
    """An update that dies (not fails) leaves its work half done; the next rollback or
    update sorts it out first, so rollback goes to the real previous deployment, not
    to the one the crashed update never activated."""
    options = env.options
    checkouts = Path(options.checkouts)
    host = Path(options.host_root)
    unit = Path(options.unit_dir) / "etcd.service"
    new_file = host / "opt/etcd-like/new/file"
    id1 = store_image(options, etcd_image("v1"), "localhost/etcd:latest")
    install("localhost/etcd:latest", "etcd", options)
    id2 = store_image(options, etcd_image("v2"), "localhost/etcd:latest")
    assert update("etcd", options).deployment == 1
    state = _state_of(env)  # v2 active, v1 the rollback target
    v3 = etcd_image("v3", extra={"exports/hostfs/opt/etcd-like/new/file": b"v3 only\n"})
    id3 = store_image(options, v3, "localhost/etcd:latest")

    # 1. dies at the switch: host files, unit, tmpfiles.d and info of etcd.0 (v3) are
    # written, v1 is aside; the symlink still says etcd.1
    _crash_during_update(options, "_switch_symlink")
    assert os.readlink(checkouts / "etcd") == "etcd.1"
    assert (checkouts / ".etcd.0.replaced").is_dir()
    assert json.loads((checkouts / "etcd.0/info").read_text())["image-id"] == id3
    assert "v3" in unit.read_text()
    assert new_file.exists()
    assert _leftovers(env)
    back = rollback("etcd", options)  # to v1, the real previous deployment
    assert (back.deployment, back.image_id) == (0, id1)
    assert "Description=etcd-like v1 (etcd)" in unit.read_text()
    assert not (host / "opt").exists()
    assert _leftovers(env) == []
    assert rollback("etcd", options).image_id == id2
    assert _state_of(env) == state

    # 2. the same crash, then an update: it starts from the state before the crash
    _crash_during_update(options, "_switch_symlink")
    updated = update("etcd", options)
    assert (updated.deployment, updated.image_id) == (0, id3)
    assert new_file.read_text() == "v3 only\n"
    assert _leftovers(env) == []
    assert rollback("etcd", options).image_id == id2
    assert not (host / "opt").exists()
    assert update("etcd", options).image_id == id3

    # 3. dies just after the switch: the update is done but for its clean-up
    assert rollback("etcd", options).image_id == id2
    _crash_during_update(options, "oci_runtime._hostfiles:Journal.commit")
    assert os.readlink(checkouts / "etcd") == "etcd.0"
    assert (checkouts / ".etcd.0.replaced").is_dir()
    assert _leftovers(env)
    assert rollback("etcd", options).image_id == id2
    assert _leftovers(env) == []
    assert not (host / "opt").exists()
    assert rollback("etcd", options).image_id == id3

    # 4. dies before rendering (etcd.1 moved aside, nothing in its place); uninstall
    # sorts it out too
    store_image(options, etcd_image("v4"), "localhost/etcd:latest")
    _crash_during_update(options, "_deploy")
    assert (checkouts / ".etcd.1.replaced").is_dir()
    assert not (checkouts / "etcd.1").exists()
    uninstall("etcd", options, remove_image=True)
    assert _state_of(env) == {"host_root:etc": "dir",
                              "host_root:etc/hostname": b"the host's own file\n"}


def test_names_and_unit_text() -> None:
    from oci_runtime.install import _check_name

    for bad in ("", "a/b", "../x", "etcd.0", "-x", "a b"):
        with pytest.raises(InstallError):
            _check_name(bad)
    argv = ["/usr/bin/runc", "--root", "/tmp/a b", "run", "100%", "$HOME", 'q"x']
    assert exec_argv(command_line(argv)) == argv
    assert command_line(["a", "100%"]) == 'a "100%%"'
    text = "[Unit]\nDescription=x\nAfter=a.service\n\n[Service]\nExecStart=/bin/true\n"
    out = add_dependencies(text, requires=["a.service"], after=["a.service", "b.service"])
    assert out.splitlines()[:5] == ["[Unit]", "Requires=a.service", "After=b.service",
                                    "Description=x", "After=a.service"]
    assert add_dependencies("[Service]\nExecStart=/bin/true\n", wants=["w.target"]) \
        .startswith("[Unit]\nWants=w.target\n\n[Service]")
