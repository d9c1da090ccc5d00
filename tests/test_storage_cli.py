"""``python -m oci_storage``: every command run as a subprocess on a vfs store populated
through the ``containers-storage:`` transport; ``check`` finding and ``--repair`` fixing
planted damage; ``gc``; and containers-storage agreeing with our ``--json`` listings."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import attrs
import pytest

from oci_image.copy import copy_image
from oci_image.testing.random import random_image
from oci_storage.check import open_for_check
from oci_storage.records import INCOMPLETE_FLAG, Layer, random_id
from oci_storage.store import Store

from .peers import require

IMAGE = "localhost/x:1"


@attrs.frozen
class Roots:
    graph: Path
    run: Path

    def cli(self, *args: str, rc: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "oci_storage", "-g", str(self.graph), "-R", str(self.run),
             "-s", "vfs", *args], capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == rc, (proc.returncode, proc.stdout, proc.stderr)
        return proc

    def cli_bytes(self, *args: str) -> bytes:
        proc = subprocess.run(
            [sys.executable, "-m", "oci_storage", "-g", str(self.graph), "-R", str(self.run),
             "-s", "vfs", *args], capture_output=True, timeout=300, check=True)
        return proc.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def layer_dir(self, layer_id: str) -> Path:
        return self.graph / "vfs" / "dir" / layer_id


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    graph, run = tmp_path / "g", tmp_path / "r"
    copy_image(random_image(seed=1).reference, f"containers-storage:[vfs@{graph}+{run}]{IMAGE}")
    return Roots(graph, run)


def _image(roots: Roots) -> dict[str, Any]:
    images = roots.json("images")
    assert len(images) == 1
    image: dict[str, Any] = images[0]
    return image


def _tar(**files: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


# -- listings -------------------------------------------------------------------------


def test_listings(roots: Roots) -> None:
    layers = roots.json("layers")
    assert len(layers) == 2
    bottom, top = layers
    assert "parent" not in bottom
    assert top["parent"] == bottom["id"]
    assert all(layer["diff-digest"].startswith("sha256:") for layer in layers)
    table = roots.cli("layers").stdout.splitlines()
    assert table[0].split() == ["ID", "PARENT", "SIZE", "NAMES"]
    assert {line.split()[0] for line in table[1:]} == {bottom["id"], top["id"]}

    image = _image(roots)
    assert image["names"] == [IMAGE]
    assert image["layer"] == top["id"]
    assert image["digest"].startswith("sha256:")
    assert image["created"]
    table = roots.cli("images").stdout.splitlines()
    assert table[1].split()[:3] == [image["id"], IMAGE, top["id"][:12]]

    assert roots.json("containers") == []
    assert roots.cli("containers").stdout.split() == ["ID", "NAMES", "IMAGE", "LAYER"]


def test_container_create_mount_diff_unmount_delete(roots: Roots, tmp_path: Path) -> None:
    image = _image(roots)
    cid = roots.cli("create", IMAGE, "--name", "c1").stdout.strip()
    assert len(cid) == 64
    (container,) = roots.json("containers")
    assert container["id"] == cid
    assert container["names"] == ["c1"]
    assert container["image"] == image["id"]
    layer = container["layer"]
    assert roots.cli("containers").stdout.splitlines()[1].split()[:2] == [cid, "c1"]

    path = Path(roots.cli("mount", "c1").stdout.strip())
    assert path == roots.layer_dir(layer)
    assert path.is_dir()
    (path / "added.txt").write_bytes(b"hello\n")
    out = tmp_path / "diff.tar"
    roots.cli("diff", "c1", "-o", str(out))
    assert _names(out.read_bytes()) == ["added.txt"]
    assert roots.cli_bytes("diff", cid) == out.read_bytes()

    # mounted: delete needs --force
    err = roots.cli("delete", "c1", rc=1).stderr
    assert err.startswith("Error: ")
    assert "mounted" in err
    assert err.count("\n") == 1
    roots.cli("unmount", "c1")
    assert roots.cli("delete", "c1").stdout.strip() == cid
    assert roots.json("containers") == []
    assert layer not in {x["id"] for x in roots.json("layers")}
    assert not roots.layer_dir(layer).exists()


def test_delete_mounted_container_with_force(roots: Roots) -> None:
    cid = roots.cli("create", IMAGE).stdout.strip()
    roots.cli("mount", cid)
    roots.cli("mount", cid)
    roots.cli("delete", cid, "--force")
    assert roots.json("containers") == []
    assert roots.cli("check").stdout.strip() == "ok"


def test_delete_image_and_layer_semantics(roots: Roots) -> None:
    image = _image(roots)
    bottom, top = (x["id"] for x in roots.json("layers"))
    # a layer in use is refused
    err = roots.cli("delete", top, rc=1).stderr
    assert err.startswith("Error: ")
    assert f"image {image['id']}" in err
    err = roots.cli("delete", bottom, rc=1).stderr
    assert f"layer {top}" in err
    # an image a container uses is refused
    cid = roots.cli("create", IMAGE).stdout.strip()
    err = roots.cli("delete", IMAGE, rc=1).stderr
    assert cid in err
    roots.cli("delete", cid)
    # the image goes with the layers only it used
    assert roots.cli("delete", IMAGE).stdout.split() == [image["id"], top, bottom]
    assert roots.json("images") == []
    assert roots.json("layers") == []
    # unknown names
    err = roots.cli("delete", "nothing-here", rc=1).stderr
    assert err == "Error: no container, image or layer 'nothing-here'\n"
    assert roots.cli("mount", "nothing-here", rc=1).stderr.startswith("Error: ")


def test_delete_unused_layer(roots: Roots) -> None:
    with Store.open(roots.graph, roots.run, "vfs") as store:
        orphan = store.put_layer(None, io.BytesIO(_tar(a=b"1")), diff_id=None)
    assert roots.cli("delete", orphan.id).stdout.strip() == orphan.id
    assert orphan.id not in {x["id"] for x in roots.json("layers")}
    assert not roots.layer_dir(orphan.id).exists()


# -- check -----------------------------------------------------------------------------


def test_check_clean(roots: Roots) -> None:
    roots.cli("create", IMAGE, "--name", "c1")
    roots.cli("mount", "c1")  # a real (vfs) mount is not stale
    proc = roots.cli("check")
    assert proc.stdout == "ok\n"
    assert roots.cli("check", "--repair").stdout == "ok\n"


def _kinds(output: str) -> list[str]:
    return [line.split(":")[0] for line in output.splitlines() if line != "ok"]


def test_check_repairs_missing_layer_dir(roots: Roots) -> None:
    image = _image(roots)
    top = image["layer"]
    os.rename(roots.layer_dir(top), roots.graph / "moved-away")
    out = roots.cli("check", rc=1).stdout
    assert sorted(_kinds(out)) == ["image-layer-missing", "layer-dir-missing"]
    assert top in out
    assert image["id"] in out
    out = roots.cli("check", "--repair").stdout
    assert f"repaired: deleted image {image['id']}" in out
    assert f"repaired: removed damaged layer {top}" in out
    assert out.endswith("ok\n")
    assert roots.json("images") == []
    assert top not in {x["id"] for x in roots.json("layers")}
    assert roots.cli("check").stdout == "ok\n"


def test_check_keeps_image_a_container_uses(roots: Roots) -> None:
    top = _image(roots)["layer"]
    roots.cli("create", IMAGE, "--name", "c1")
    os.rename(roots.layer_dir(top), roots.graph / "moved-away")
    out = roots.cli("check", "--repair", rc=1).stdout
    assert "remaining: image-layer-missing" in out
    assert "remaining: layer-dir-missing" in out
    assert len(roots.json("images")) == 1


def test_check_repairs_incomplete_layer(roots: Roots) -> None:
    store = open_for_check(roots.graph, roots.run, "vfs")
    lid = random_id()
    store.layer_records.create(Layer(id=lid, flags={INCOMPLETE_FLAG: True}))
    store.driver.create(lid)
    out = roots.cli("check", rc=1).stdout
    assert _kinds(out) == ["layer-incomplete"]
    assert lid in out
    out = roots.cli("check", "--repair").stdout
    assert f"repaired: removed incomplete layer {lid}" in out
    assert out.endswith("ok\n")
    assert not roots.layer_dir(lid).exists()
    assert lid not in {x["id"] for x in roots.json("layers")}


def test_check_repairs_orphan_driver_dir(roots: Roots) -> None:
    orphan = roots.layer_dir(random_id())
    (orphan / "etc").mkdir(parents=True)
    (orphan / "etc" / "f").write_text("x")
    out = roots.cli("check", rc=1).stdout
    assert _kinds(out) == ["driver-dir-orphan"]
    assert orphan.name in out
    out = roots.cli("check", "--repair").stdout
    assert "repaired: removed vfs directory" in out
    assert out.endswith("ok\n")
    assert not orphan.exists()
    assert len(roots.json("layers")) == 2  # the real layers are untouched


def test_check_resets_stale_mount_counts(roots: Roots) -> None:
    top = _image(roots)["layer"]
    unknown = random_id()
    store = open_for_check(roots.graph, roots.run, "vfs")
    store.mount_records.change(top, "/nonexistent/mountpoint", 2)
    store.mount_records.change(unknown, "/nonexistent/other", 1)
    out = roots.cli("check", rc=1).stdout
    assert _kinds(out) == ["mount-stale", "mount-stale"]
    out = roots.cli("check", "--repair").stdout
    assert f"repaired: reset mount count 2 of layer {top}" in out
    assert f"repaired: reset mount count 1 of layer {unknown}" in out
    assert out.endswith("ok\n")
    assert open_for_check(roots.graph, roots.run, "vfs").mount_count(top) == 0


def test_check_reports_missing_tar_split(roots: Roots) -> None:
    top = _image(roots)["layer"]
    store = open_for_check(roots.graph, roots.run, "vfs")
    store.layer_records.tar_split_path(top).unlink()
    out = roots.cli("check", rc=1).stdout
    assert _kinds(out) == ["tar-split-missing"]
    assert top in out
    out = roots.cli("check", "--repair", rc=1).stdout  # cannot be fixed safely
    assert "remaining: tar-split-missing" in out


def test_check_reports_missing_parent_and_container_refs(roots: Roots) -> None:
    store = open_for_check(roots.graph, roots.run, "vfs")
    missing = random_id()
    lid = random_id()
    store.layer_records.create(Layer(id=lid, parent=missing))
    store.driver.create(lid)
    cid = roots.cli("create", IMAGE).stdout.strip()
    store.container_records.update(cid, lambda c: attrs.evolve(c, image=missing,
                                                                layer=random_id()))
    out = roots.cli("check", rc=1).stdout
    assert sorted(_kinds(out)) == ["container-image-missing", "container-layer-missing",
                                   "layer-parent-missing"]
    assert f"layer {lid}: parent {missing} is missing" in out
    # neither can be fixed safely; the layer on a missing parent is damaged and unused
    out = roots.cli("check", "--repair", rc=1).stdout
    assert f"repaired: removed damaged layer {lid}" in out
    remaining = [line.split(":")[1].strip() for line in out.splitlines()
                 if line.startswith("remaining: ")]
    assert sorted(remaining) == ["container-image-missing", "container-layer-missing"]


# -- gc ----------------------------------------------------------------------------------


def test_gc_removes_unused_layers_only(roots: Roots) -> None:
    used = {x["id"] for x in roots.json("layers")}
    cid = roots.cli("create", IMAGE).stdout.strip()
    container_layer = roots.json("containers")[0]["layer"]
    with Store.open(roots.graph, roots.run, "vfs") as store:
        orphan = store.put_layer(None, io.BytesIO(_tar(a=b"1")), diff_id=None)
        child = store.put_layer(orphan.id, io.BytesIO(_tar(b=b"2")), diff_id=None)
    out = roots.cli("gc").stdout
    assert out.splitlines() == [f"removed layer {child.id}", f"removed layer {orphan.id}"]
    assert {x["id"] for x in roots.json("layers")} == used | {container_layer}
    assert not roots.layer_dir(orphan.id).exists()
    assert roots.cli("gc").stdout == ""
    roots.cli("delete", cid)
    assert roots.cli("check").stdout == "ok\n"


# -- containers-storage agrees ---------------------------------------------------------


def test_containers_storage_agrees(roots: Roots) -> None:
    require("containers-storage")
    require("unshare")
    roots.cli("create", IMAGE, "--name", "c1")

    def theirs(what: str) -> Any:
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "containers-storage",
             "-g", str(roots.graph), "-R", str(roots.run), "-s", "vfs", what, "--json"],
            capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert theirs("layers") == roots.json("layers")
    assert theirs("images") == roots.json("images")
    assert len(roots.json("layers")) == 3


def test_roots_default_to_storage_conf(roots: Roots, tmp_path: Path) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{roots.graph}"\n'
                    f'runroot = "{roots.run}"\n')
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)}
    proc = subprocess.run([sys.executable, "-m", "oci_storage", "images", "--json"],
                          capture_output=True, text=True, env=env, timeout=300, check=True)
    assert json.loads(proc.stdout) == roots.json("images")
    env["CONTAINERS_STORAGE_CONF"] = str(tmp_path / "missing.conf")
    proc = subprocess.run([sys.executable, "-m", "oci_storage", "layers"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ")
    assert "storage.conf does not exist" in proc.stderr
    assert proc.stderr.count("\n") == 1
