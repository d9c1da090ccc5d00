"""The skopeo-compatible CLI, run as users run it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from oci_image.copy import CopyOptions, MultiArch
from oci_image.spec import ImageIndex, Reference
from oci_image.testing.random import random_image, random_index
from oci_image.validate import validate_image

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "oci_image", *args], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    random_image(seed=1).write_to(f"oci:{tmp_path}/layout:one")
    random_image(seed=2).write_to(f"oci:{tmp_path}/layout:two")
    return tmp_path / "layout"


def test_copy_and_digestfile(layout: Path, tmp_path: Path) -> None:
    out = cli("copy", "--digestfile", str(tmp_path / "digest"), f"oci:{layout}:one",
              f"dir:{tmp_path}/d")
    digest = (tmp_path / "digest").read_text()
    assert digest == str(random_image(seed=1).digest)
    assert out.stdout == ""  # stdout stays free for piping archives
    assert "Copying blob" in out.stderr
    validate_image(f"dir:{tmp_path}/d")


def test_copy_quiet_prints_nothing(layout: Path, tmp_path: Path) -> None:
    out = cli("copy", "-q", f"oci:{layout}:one", f"oci:{tmp_path}/o:x")
    assert (out.stdout, out.stderr) == ("", "")


def test_progress_json_lines(layout: Path, tmp_path: Path) -> None:
    out = cli("copy", "--progress", "json", f"oci:{layout}:two", f"oci:{tmp_path}/o:x")
    events = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    kinds = {e["event"] for e in events}
    assert {"started", "done", "manifest"} <= kinds
    assert all({"digest", "mediaType", "size", "offset"} <= e.keys() for e in events)


def test_docker_archive_additional_tags(layout: Path, tmp_path: Path) -> None:
    cli("copy", "--additional-tag", "example.com/extra:2", "--additional-tag", "other",
        f"oci:{layout}:one", f"docker-archive:{tmp_path}/a.tar:example.com/app:1")
    out = cli("list-tags", f"docker-archive:{tmp_path}/a.tar")
    assert json.loads(out.stdout)["Tags"] == [
        "example.com/app:1", "example.com/extra:2", "docker.io/library/other:latest"]
    for tag in ("example.com/app:1", "example.com/extra:2", "other"):
        validate_image(f"docker-archive:{tmp_path}/a.tar:{tag}")


def test_inspect_raw_config_and_digest(layout: Path, tmp_path: Path) -> None:
    image = random_image(seed=1)
    raw = subprocess.run([sys.executable, "-m", "oci_image", "inspect", "--raw",
                          f"oci:{layout}:one"], capture_output=True, cwd=ROOT, check=True)
    assert raw.stdout == image.manifest
    (tmp_path / "m.json").write_bytes(raw.stdout)
    assert cli("manifest-digest", str(tmp_path / "m.json")).stdout.strip() == str(image.digest)
    inspected = json.loads(cli("inspect", f"oci:{layout}:one").stdout)
    assert inspected["Digest"] == str(image.digest)
    assert inspected["Labels"] == {"seed": "1"}
    assert inspected["Os"] == "linux"
    assert len(inspected["Layers"]) == len(inspected["LayersData"]) == 2
    config = json.loads(cli("inspect", "--config", f"oci:{layout}:one").stdout)
    assert config["config"]["Env"] == ["SEED=1", "PATH=/bin"]


def test_inspect_index_with_override_arch(tmp_path: Path) -> None:
    index = random_index(seed=3)
    index.write_to(f"oci:{tmp_path}/l:multi", CopyOptions(multi_arch=MultiArch.ALL))
    raw = cli("inspect", "--raw", f"oci:{tmp_path}/l:multi").stdout
    assert ImageIndex.from_json(raw.encode()).manifests
    arm = json.loads(cli("--override-arch", "arm64", "inspect",
                         f"oci:{tmp_path}/l:multi").stdout)
    assert arm["Architecture"] == "arm64"
    assert arm["Variant"] == "v8"
    arm_v7 = json.loads(cli("--override-arch", "arm", "--override-variant", "v7", "inspect",
                            f"oci:{tmp_path}/l:multi").stdout)
    assert arm_v7["Variant"] == "v7"


def test_copy_all_and_multi_arch(tmp_path: Path) -> None:
    index = random_index(seed=4)
    index.write_to(f"oci:{tmp_path}/l:multi", CopyOptions(multi_arch=MultiArch.ALL))
    cli("copy", "--all", f"oci:{tmp_path}/l:multi", f"oci-archive:{tmp_path}/all.tar:m")
    assert validate_image(f"oci-archive:{tmp_path}/all.tar:m").manifests == 4
    cli("copy", "--multi-arch", "index-only", f"oci:{tmp_path}/l:multi", f"oci:{tmp_path}/s:m")
    cli("copy", "--override-arch", "arm64", f"oci:{tmp_path}/l:multi", f"dir:{tmp_path}/d")
    assert json.loads(cli("inspect", f"dir:{tmp_path}/d").stdout)["Architecture"] == "arm64"


def test_list_tags_and_delete(layout: Path) -> None:
    assert json.loads(cli("list-tags", f"oci:{layout}").stdout)["Tags"] == ["one", "two"]
    cli("delete", f"oci:{layout}:one")
    assert json.loads(cli("list-tags", f"oci:{layout}").stdout)["Tags"] == ["two"]
    validate_image(f"oci:{layout}:two")
    shared = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    # only blobs image "two" references are left
    from oci_image.transports import parse_image_name
    from oci_image.transports.oci import OCIReference

    ref = parse_image_name(f"oci:{layout}")
    assert isinstance(ref, OCIReference)
    assert shared == {d.hex for d in ref.layout().referenced_digests()}


@pytest.mark.parametrize(("args", "message"), [
    (["copy", "oci:/nonexistent/layout:x", "dir:/tmp/never"], "no such OCI layout"),
    (["copy", "nosuchtransport:x", "dir:/tmp/never"], "unknown transport 'nosuchtransport'"),
    (["copy", "oci:LAYOUT:missing", "dir:/tmp/never"], "no image named 'missing'"),
    (["copy", "oci:LAYOUT", "dir:/tmp/never"], "more than one image"),
    (["inspect", "docker-archive:LAYOUT/index.json"], "not a valid tar archive"),
    (["list-tags", "dir:/tmp"], "does not support listing tags"),
    (["copy", "--additional-tag", "ex/UPPER", "oci:LAYOUT:one", "dir:/tmp/never"],
     "must be lowercase"),
])
def test_errors_are_one_line(layout: Path, args: list[str], message: str) -> None:
    args = [a.replace("LAYOUT", str(layout)) for a in args]
    out = cli(*args, ok=False)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
    assert "Traceback" not in out.stderr


def test_debug_shows_traceback(layout: Path) -> None:
    out = cli("--debug", "copy", f"oci:{layout}:missing", "dir:/tmp/never", ok=False)
    assert out.returncode != 0
    assert "Traceback" in out.stderr
    assert "ManifestNotFoundError" in out.stderr


def test_version_and_help() -> None:
    assert cli("--version").stdout.startswith("oci-image ")
    helptext = cli("copy", "--help").stdout
    for flag in ("--all", "--multi-arch", "--format", "--dest-compress-format",
                 "--dest-compress-level", "--dest-decompress", "--preserve-digests",
                 "--remove-signatures", "--digestfile", "--additional-tag",
                 "--image-parallel-copies", "--quiet", "--progress"):
        assert flag in helptext


def test_console_script_installed() -> None:
    script = Path(sys.executable).parent / "oci-image"
    if not script.exists():
        pytest.skip("package not installed in this interpreter's environment")
    assert subprocess.run([str(script), "--version"], capture_output=True, check=True,
                          text=True).stdout.startswith("oci-image")


def test_reference_normalisation_matches_docker() -> None:
    assert str(Reference.parse("busybox")) == "docker.io/library/busybox"


def test_terminal_progress_bar_rewrites_one_line() -> None:
    import io

    from oci_image.cli import _Bar
    from oci_image.copy import ProgressEvent, ProgressKind
    from oci_image.spec import Descriptor, Digest

    out = io.StringIO()
    bar = _Bar(out)
    desc = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", Digest.from_bytes(b"x"),
                      2 << 20)
    bar(ProgressEvent(ProgressKind.STARTED, desc))
    bar(ProgressEvent(ProgressKind.DONE, desc, 2 << 20, desc))
    bar.finish()
    text = out.getvalue()
    assert text.startswith("\r")
    assert text.count("\n") == 1
    assert "1/1 done" in text
    assert "2.0 MiB / 2.0 MiB" in text
