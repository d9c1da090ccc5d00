"""The oci: layout as a shared, long-lived store: crash safety, tag semantics, deletion."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from oci_image.copy import copy_image
from oci_image.testing.random import random_image
from oci_image.transports import parse_image_name
from oci_image.transports._layout import REF_NAME
from oci_image.transports.oci import OCIReference
from oci_image.validate import validate_image

ROOT = Path(__file__).resolve().parent.parent


def every_blob_is_whole(layout: Path) -> None:
    for path in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path


def test_killed_copy_leaves_no_partial_blob_and_no_entry(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    random_image(seed=1).write_to(f"oci:{layout}:kept")
    index_before = (layout / "index.json").read_bytes()
    ready = tmp_path / "ready"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from oci_image.copy import copy_image, ProgressKind
        from oci_image.testing.random import random_image
        image = random_image(seed=2, layers=3, files_per_layer=200, max_file_size=64 << 10)
        def progress(event):
            # past the first bytes (read to sniff the compression): now streaming into
            # the destination's staged file
            if event.kind is ProgressKind.PROGRESS and event.offset > 64:
                Path({str(ready)!r}).touch()
                time.sleep(60)   # stay in the middle of a blob until killed
        copy_image(image.reference, "oci:{layout}:new", progress=progress)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "copy ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        temps = [p for p in layout.iterdir() if p.name.startswith(".put-blob-")]
        assert temps, "the interrupted blob should be staged in a temp file"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (layout / "index.json").read_bytes() == index_before
    every_blob_is_whole(layout)
    validate_image(f"oci:{layout}:kept")
    # the next writer sweeps what the killed one left behind
    random_image(seed=3).write_to(f"oci:{layout}:later")
    assert not [p for p in layout.iterdir() if p.name.startswith(".put-blob-")]
    assert tags(layout) == ["kept", "later"]


def test_live_writer_temp_is_not_swept(tmp_path: Path) -> None:
    """A temp file whose flock is held (a copy in progress) survives a sweep."""
    import fcntl

    from oci_image.transports._common import sweep_stale_temps

    live = tmp_path / ".put-blob-live.tmp"
    dead = tmp_path / ".put-blob-dead.tmp"
    live.write_bytes(b"x")
    dead.write_bytes(b"y")
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert sweep_stale_temps(tmp_path) == 1
        assert live.exists()
        assert not dead.exists()
    finally:
        os.close(fd)


def tags(layout: Path) -> list[str]:
    ref = parse_image_name(f"oci:{layout}")
    assert isinstance(ref, OCIReference)
    return ref.list_tags()


def test_existing_tag_is_replaced(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    first, second = random_image(seed=4), random_image(seed=5)
    copy_image(first.reference, f"oci:{layout}:v1")
    copy_image(second.reference, f"oci:{layout}:v1")
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [str(second.digest)]
    assert tags(layout) == ["v1"]


def test_replaced_entry_with_other_annotations_is_kept_unnamed(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    copy_image(random_image(seed=6).reference, f"oci:{layout}:v1")
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["org.example.keep"] = "yes"
    index["unknown-field"] = "kept"
    (layout / "index.json").write_text(json.dumps(index))
    copy_image(random_image(seed=7).reference, f"oci:{layout}:v1")
    index = json.loads((layout / "index.json").read_text())
    assert index["unknown-field"] == "kept"
    assert [m["annotations"] for m in index["manifests"]] == [
        {"org.example.keep": "yes"}, {REF_NAME: "v1"}]


def test_same_image_two_names_and_delete_one(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    image = random_image(seed=8)
    copy_image(image.reference, f"oci:{layout}:a")
    copy_image(f"oci:{layout}:a", f"oci:{layout}:b")
    assert tags(layout) == ["a", "b"]
    ref = parse_image_name(f"oci:{layout}:a")
    assert isinstance(ref, OCIReference)
    ref.delete()
    assert tags(layout) == ["b"]
    validate_image(f"oci:{layout}:b")  # shared blobs survive
    other = parse_image_name(f"oci:{layout}:b")
    assert isinstance(other, OCIReference)
    other.delete()
    assert tags(layout) == []
    assert list((layout / "blobs" / "sha256").iterdir()) == []


def test_source_index_reference(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    images = [random_image(seed=s) for s in (9, 10)]
    for i, image in enumerate(images):
        copy_image(image.reference, f"oci:{layout}:t{i}")
    result = copy_image(f"oci:{layout}:@1", f"dir:{tmp_path}/d")
    assert result.manifest_digest == images[1].digest
    assert str(parse_image_name(f"oci:{layout}:@1")) == f"oci:{layout}:@1"


def test_shared_blob_dir(tmp_path: Path) -> None:
    from oci_image.copy import CopyOptions
    from oci_image.interfaces import OpenOptions

    shared = tmp_path / "shared"
    options = CopyOptions(dest_options=OpenOptions(shared_blob_dir=str(shared)))
    image = random_image(seed=11)
    copy_image(image.reference, f"oci:{tmp_path}/layout:x", options)
    assert not list((tmp_path / "layout" / "blobs").rglob("*.*"))
    assert len(list((shared / "sha256").iterdir())) == 4  # manifest, config, 2 layers
    back = copy_image(f"oci:{tmp_path}/layout:x", f"dir:{tmp_path}/d", CopyOptions(
        source_options=OpenOptions(shared_blob_dir=str(shared))))
    assert back.manifest_digest == image.digest
