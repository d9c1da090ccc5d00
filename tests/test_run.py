"""oci_runtime.run / ``python -m oci_runtime run``: pull into a store, create and mount a
container, generate the bundle, run it with real runc (as root), clean up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oci_image.build import FileEntry, ImageBuilder
from oci_image.spec import Platform, host_platform
from oci_runtime._process import ProcessIO
from oci_runtime.convert import (
    ConvertOptions,
    FilesystemOptions,
    ProcessOptions,
    ResourceLimits,
)
from oci_runtime.errors import RuncError
from oci_runtime.run import RunImageOptions, StoreLocation, run_image
from oci_runtime.runc import Runc
from oci_storage.drivers.overlay import mounted_paths
from oci_storage.errors import ImageUnknownError
from oci_storage.store import Store

from .peers import require, require_root

ROOT = Path(__file__).resolve().parent.parent


def _app_image(layout: Path) -> str:
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        busybox = Path(require("busybox"))
    host = host_platform()
    builder = ImageBuilder(platform=Platform(host.os, host.architecture))
    builder.add_layer_from_files(
        {"bin/busybox": FileEntry(data=busybox.read_bytes(), mode=0o755),
         **{f"bin/{a}": FileEntry(kind="symlink", linkname="busybox")
            for a in ("sh", "cat", "echo", "id", "pwd", "touch", "env", "ls", "stat", "wc")}})
    builder.add_layer_from_files(
        {"etc/passwd": b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
         "etc/group": b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
         "home/app": FileEntry(kind="dir", mode=0o755, uid=1000, gid=1000),
         "srv/hello.txt": b"hello from the image\n"})
    builder.config(cmd=["/bin/cat", "/srv/hello.txt"], env=["PATH=/bin", "FOO=bar"],
                   working_dir="/srv", user="app")
    builder.build().write_to(f"oci:{layout}:app")
    return f"oci:{layout}:app"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[str, RunImageOptions, Path]:
    require_root("runc runs containers as root here")
    runc = require("runc")
    src = _app_image(tmp_path / "layout")
    options = RunImageOptions(
        store=StoreLocation(str(tmp_path / "graph"), str(tmp_path / "run")),
        runc=Runc(binary=runc, root=str(tmp_path / "runc")))
    yield src, options, tmp_path
    # nothing of ours may stay mounted
    for path in mounted_paths():
        assert not path.startswith(str(tmp_path)), path


def _run(image: str, command: list[str], options: RunImageOptions, out: Path,
         **changes: object) -> tuple[int, str]:
    import attrs

    options = attrs.evolve(options, io=ProcessIO(stdout=str(out), stderr=str(out)),
                           **changes)  # type: ignore[arg-type]
    status = run_image(image, command, options)
    return status, out.read_text() if out.exists() else ""


def test_pull_then_run_with_the_image_config(setup: tuple[str, RunImageOptions, Path]
                                             ) -> None:
    src, options, tmp = setup
    status, out = _run(src, [], options, tmp / "out1")
    assert (status, out) == (0, "hello from the image\n")
    # the user by name from the image's passwd, its groups, HOME, env, cwd
    status, out = _run(src, ["sh", "-c", "id -u; id -g; id -G; pwd; echo $HOME $FOO"],
                       options, tmp / "out2")
    assert status == 0
    assert out.split("\n")[:5] == ["1000", "1000", "1000 2000", "/srv", "/home/app bar"]
    # pulled once, under a name derived from the transport string; --rm left nothing
    with options.store.open() as store:
        assert len(store.images()) == 1
        stored = store.images()[0].names[0]
        assert stored.startswith("localhost/")
        assert store.containers() == ()
    # podman's short names: "NAME" (no domain, no tag) finds localhost/NAME:latest
    short = stored.removeprefix("localhost/").removesuffix(":latest")
    status, out = _run(short, [], options, tmp / "out3", pull="never")
    assert (status, out) == (0, "hello from the image\n")


def test_exit_status_and_overrides(setup: tuple[str, RunImageOptions, Path]) -> None:
    src, options, tmp = setup
    status, _ = _run(src, ["sh", "-c", "exit 7"], options, tmp / "o1")
    assert status == 7
    convert = ConvertOptions(process=ProcessOptions(user="root", cwd="/",
                                                    env=["FOO=over"]))
    status, out = _run(src, ["sh", "-c", "id -u; pwd; echo $FOO"], options, tmp / "o2",
                       convert=convert)
    assert (status, out.split("\n")[:3]) == (0, ["0", "/", "over"])


def test_read_only_rootfs_refuses_writes(setup: tuple[str, RunImageOptions, Path]) -> None:
    src, options, tmp = setup
    convert = ConvertOptions(process=ProcessOptions(user="root"),
                             filesystem=FilesystemOptions(read_only=True))
    status, out = _run(src, ["sh", "-c", "touch /srv/x && echo wrote"], options,
                       tmp / "o", convert=convert)
    assert status != 0
    assert "Read-only file system" in out


def test_masked_and_read_only_paths_and_limits(setup: tuple[str, RunImageOptions, Path]
                                               ) -> None:
    """runc's default masked paths (/proc/timer_list and /proc/keys are /dev/null,
    /sys/firmware an empty tmpfs), read-only /proc/sys, and the memory and pids limits
    in the container's own cgroup."""
    src, options, tmp = setup
    convert = ConvertOptions(process=ProcessOptions(user="root"),
                             limits=ResourceLimits(memory=64 << 20, pids=32))
    script = ("stat -c %t:%T /proc/timer_list; cat /proc/keys | wc -c; ls -A /sys/firmware | wc -l;"
              " (echo 1 > /proc/sys/vm/drop_caches) 2>&1;"
              " if [ -f /sys/fs/cgroup/memory.max ]; then"  # cgroup v2 (own namespace)
              " cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; else"
              " cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max;"
              " fi")
    status, out = _run(src, ["sh", "-c", script], options, tmp / "o", convert=convert)
    lines = out.splitlines()
    assert status == 0, out
    assert lines[0] == "1:3"  # the /dev/null character device
    assert [line.strip() for line in lines[1:3]] == ["0", "0"]
    assert "Read-only file system" in lines[3]
    assert lines[4:] == [str(64 << 20), "32"]


def test_keep_container_without_rm(setup: tuple[str, RunImageOptions, Path]) -> None:
    src, options, tmp = setup
    status, _ = _run(src, ["sh", "-c", "echo kept > /home/app/note"], options, tmp / "o",
                     remove=False, name="keeper")
    assert status == 0
    with options.store.open() as store:
        (container,) = store.containers()
        assert container.names == ("keeper",)
        assert store.mount_count(container.id) == 0
        rootfs = Path(store.mount(container.id))
        try:
            assert (rootfs / "home/app/note").read_text() == "kept\n"
        finally:
            store.unmount(container.id)
        store.delete_container(container.id)


def test_pull_never_and_runc_failure_clean_up(setup: tuple[str, RunImageOptions, Path]
                                              ) -> None:
    import attrs

    src, options, tmp = setup
    with pytest.raises(ImageUnknownError):
        run_image(src, [], attrs.evolve(options, pull="never"))
    with pytest.raises(RuncError) as info:
        _run(src, ["/no/such/binary"], options, tmp / "o")
    assert "no/such/binary" in info.value.message
    with Store.open(options.store.graphroot, options.store.runroot) as store:
        assert store.containers() == ()  # --rm cleaned up after the failure too
    assert not list(Path(options.runc.root or "/nonexistent").glob("*/state.json"))


def test_cli_run(setup: tuple[str, RunImageOptions, Path]) -> None:
    src, options, tmp = setup
    base = [sys.executable, "-m", "oci_runtime", "--root", options.store.graphroot,
            "--runroot", options.store.runroot, "--runtime-root", str(tmp / "cli-runc")]
    done = subprocess.run([*base, "run", "--rm", src], capture_output=True, cwd=ROOT,
                          timeout=120)
    assert (done.returncode, done.stdout) == (0, b"hello from the image\n")
    done = subprocess.run([*base, "run", "--rm", "-u", "root", "-e", "X=1",
                           "localhost/" + _stored_name(options), "--", "sh", "-c",
                           "echo $X; exit 4"], capture_output=True, cwd=ROOT, timeout=120)
    assert (done.returncode, done.stdout) == (4, b"1\n")
    done = subprocess.run([*base, "run", "--rm", "--pull", "never", "localhost/nope"],
                          capture_output=True, cwd=ROOT, timeout=120)
    assert done.returncode == 125
    assert done.stderr.decode().startswith("Error: ")
    spec = subprocess.run([sys.executable, "-m", "oci_runtime", "spec"],
                          capture_output=True, cwd=ROOT, check=True).stdout
    assert json.loads(spec)["process"]["args"] == ["sh"]


def _stored_name(options: RunImageOptions) -> str:
    with options.store.open() as store:
        name = store.images()[0].names[0]
    assert name.startswith("localhost/")
    return name[len("localhost/"):]


def test_bundle_and_run_dir_removed(setup: tuple[str, RunImageOptions, Path]) -> None:
    src, options, tmp = setup
    _run(src, [], options, tmp / "o")
    leftovers = [p for p in Path(options.store.runroot).rglob("config.json")]
    assert leftovers == []
    runc_root = tmp / "runc"
    assert not runc_root.exists() or os.listdir(runc_root) == []


def test_prepare_start_detached_stop_remove(setup: tuple[str, RunImageOptions, Path]
                                            ) -> None:
    """The API for background containers: prepare_container, runc run -d,
    stop_container, remove_container; a failed prepare leaves nothing behind."""
    import attrs

    from oci_runtime.errors import UserNotFoundError
    from oci_runtime.run import prepare_container, remove_container, stop_container
    from oci_runtime.runc import RunOptions

    src, options, tmp = setup
    prepared = prepare_container(src, ["sh", "-c", "echo up > /home/app/up; sleep 600"],
                                 options)
    assert (prepared.bundle.path / "config.json").is_file()
    assert (prepared.rootfs / "srv/hello.txt").is_file()
    options.runc.run(prepared.id, prepared.bundle.path, RunOptions(detach=True))
    assert options.runc.state(prepared.id).status == "running"
    assert stop_container(prepared.id, options, timeout=5) is True
    assert options.runc.state(prepared.id).status == "stopped"
    assert stop_container(prepared.id, options) is False  # not running any more
    assert (prepared.rootfs / "home/app/up").read_text() == "up\n"
    remove_container(prepared.id, options)
    assert not prepared.bundle.path.exists()
    with options.store.open() as store:
        assert store.containers() == ()
    assert os.listdir(tmp / "runc") == []

    convert = ConvertOptions(process=ProcessOptions(user="nobody-here"))
    with pytest.raises(UserNotFoundError):
        prepare_container(src, [], attrs.evolve(options, convert=convert))
    with options.store.open() as store:
        assert store.containers() == ()
        run_dirs = store.container_run_dir("x").parent.parent  # <runroot>/overlay-containers
        assert not run_dirs.exists() or list(run_dirs.iterdir()) == []


def test_a_callers_bundle_dir_keeps_its_other_files(setup: tuple[str, RunImageOptions, Path]
                                                    ) -> None:
    import attrs

    from oci_runtime.errors import UserNotFoundError

    src, options, tmp = setup
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "keep").write_text("the caller's\n")
    options = attrs.evolve(options, bundle_dir=str(mine))
    with pytest.raises(UserNotFoundError):
        _run(src, [], options, tmp / "o1",
             convert=ConvertOptions(process=ProcessOptions(user="nobody-here")))
    status, out = _run(src, [], options, tmp / "o2")
    assert (status, out) == (0, "hello from the image\n")
    assert sorted(os.listdir(mine)) == ["keep"]  # our config.json went, theirs stayed
    empty = tmp / "empty"
    _run(src, [], attrs.evolve(options, bundle_dir=str(empty)), tmp / "o3")
    assert not empty.exists()  # made by us, left empty: removed
