"""The examples in examples/ run, and do what their docstrings say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oci_image.copy import CopyOptions, MultiArch
from oci_image.testing.random import random_image, random_index
from oci_image.validate import validate_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo(tmp_path: Path) -> None:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        from tests.peers import require

        require("busybox")
    from tests.peers import require

    require("docker-registry")
    out = run("demo.py", str(tmp_path / "out"))
    assert "config digest the same at every stop: True" in out
    assert "manifest digest unchanged through the registry: True" in out
    assert "pulled again: 3 blobs already present, 0 downloaded" in out
    assert "store: image " in out
    assert "['localhost/demo:latest'], 2 layers" in out
    assert "/etc/passwd: root:x:0:0:root:/root:/bin/sh" in out
    assert "container unmounted and deleted: True" in out
    if os.geteuid() == 0:  # the runc step (it says it skipped otherwise)
        require("runc")
        assert "ran localhost/demo:latest with runc: exit status 0" in out
        assert "    hello from runc: demo on runc" in out
    inspect_start = out.index("{")
    inspected = json.loads(out[inspect_start:out.index("\n}", inspect_start) + 2])
    assert inspected["Env"] == ["PATH=/bin", "GREETING=hello"]
    for ref in (f"oci:{tmp_path}/out/layout:demo", f"docker-archive:{tmp_path}/out/demo.tar",
                f"dir:{tmp_path}/out/dir", f"oci:{tmp_path}/out/layout:roundtrip",
                f"oci:{tmp_path}/out/pulled:demo"):
        validate_image(ref)


def test_copy_script(tmp_path: Path) -> None:
    random_index(seed=3).write_to(f"oci:{tmp_path}/src:multi",
                                  CopyOptions(multi_arch=MultiArch.ALL))
    out = run("skopeo_copy.py", f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/dst:m", "--all")
    assert "copied" in out
    assert "application/vnd.oci.image.index.v1+json" in out
    assert validate_image(f"oci:{tmp_path}/dst:m").manifests == 4


def test_save_all_tags(tmp_path: Path) -> None:
    for seed in (1, 2):
        random_image(seed=seed).write_to(f"oci:{tmp_path}/layout:v{seed}")
    out = run("save_all_tags.py", str(tmp_path / "layout"), str(tmp_path / "all.tar"),
              "example.com/app")
    assert "wrote 2 images" in out
    from oci_image.transports import parse_image_name

    ref = parse_image_name(f"docker-archive:{tmp_path}/all.tar")
    assert sorted(ref.list_tags()) == ["example.com/app:v1", "example.com/app:v2"]  # type: ignore[attr-defined]
    validate_image(f"docker-archive:{tmp_path}/all.tar:example.com/app:v2")


@pytest.mark.parametrize(("timeout", "expected"), [("60", "sha256:"), ("0", "cancelled")])
def test_asyncio_copy(tmp_path: Path, timeout: str, expected: str) -> None:
    random_image(seed=5, layers=4, files_per_layer=300, max_file_size=32 << 10).write_to(
        f"oci:{tmp_path}/src:x")
    out = run("asyncio_copy.py", f"oci:{tmp_path}/src:x", f"oci:{tmp_path}/dst:x", timeout)
    assert out.startswith(expected) or (expected == "cancelled" and
                                        out.startswith("finished just in time"))
    if expected == "cancelled" and out.startswith("cancelled"):
        assert not (tmp_path / "dst").exists()


def test_sync_repository(registry: Any, tmp_path: Path) -> None:
    from oci_image.interfaces import OpenOptions, RegistryOptions

    plain = OpenOptions(registry=RegistryOptions(tls_verify=False))
    for seed, tag in ((11, "v1"), (12, "v2")):
        random_image(seed=seed).write_to(f"docker://{registry.host}/sync/src:{tag}",
                                         CopyOptions(dest_options=plain))
    random_index(seed=13).write_to(f"docker://{registry.host}/sync/src:multi",
                                   CopyOptions(dest_options=plain, multi_arch=MultiArch.ALL))
    out = run("sync_repository.py", f"docker://{registry.host}/sync/src",
              f"docker://{registry.host}/sync/dst", "--tls-verify=false")
    assert "3 tags" in out
    assert "FAILED" not in out
    assert sorted(registry.tags("sync/dst")) == ["multi", "v1", "v2"]
    assert validate_image(f"docker://{registry.host}/sync/dst:multi", plain).manifests == 4
    again = run("sync_repository.py", f"docker://{registry.host}/sync/src",
                f"oci:{tmp_path}/layout", "--tls-verify=false")
    assert again.count("sha256:") == 3
    validate_image(f"oci:{tmp_path}/layout:v2")


def test_system_containers(tmp_path: Path) -> None:
    from tests.peers import require, require_root

    require_root("installing a system container runs runc")
    require("runc")
    out = run("system_containers.py", str(tmp_path / "out"))
    assert "installed hello from oci:" in out
    assert "host files: ['/usr/local/bin/hello-ctl']" in out
    assert "Description=hello says good morning" in out
    assert "ExecStart exit status 0: container hello is running" in out
    assert "uninstalled; nothing left behind: True" in out
