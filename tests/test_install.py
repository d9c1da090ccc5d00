"""System containers (oci_runtime.install): images pushed to a real loopback registry,
installed into private directories (never the host's /etc/systemd, /etc/tmpfiles.d or
/var/lib/containers), units checked with ``systemd-analyze verify`` and run the way
systemd would (their ExecStart/ExecStop lines, with real runc), update, rollback and
uninstall leaving nothing behind."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
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

PLAIN = OpenOptions(registry=RegistryOptions(tls_verify=False))

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


def etcd_image(version: str, *, service: str = SERVICE_TEMPLATE) -> BuiltImage:
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
        "exports/hostfs/etc/etcd-like/etcd.conf": b"literal $NOT_A_VARIABLE\n",
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
    assert sorted(inst.installed_files) == ["/etc/etcd-like/etcd.conf",
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


def test_quadlet_output(env: Env) -> None:
    before = env.snapshot()
    ref = env.push(etcd_image("v1"), "etcd")
    options = attrs.evolve(env.options, quadlet=True, requires=["etcd-db.service"],
                           after=["etcd-db.service"])
    inst = install(ref, "etcd", options)
    path = Path(options.quadlet_dir) / "etcd.container"
    assert inst.unit_path == path
    assert not any(Path(options.unit_dir).iterdir())
    entries = parse_unit(path.read_text())
    assert ("Container", "Image", inst.image_id) in entries
    assert ("Container", "ContainerName", "etcd") in entries
    assert ("Container", "ReadOnly", "true") in entries
    assert ("Unit", "Requires", "etcd-db.service") in entries
    assert ("Unit", "After", "etcd-db.service") in entries
    state = env.tmp / "state" / "etcd"
    assert ("Container", "Volume", f"{state}:/state") in entries
    global_args = next(v for s, k, v in entries if k == "GlobalArgs")
    assert shlex.split(global_args)[:2] == ["--root", str(env.tmp / "graph")]
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
