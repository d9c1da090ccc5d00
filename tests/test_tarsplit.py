"""tar-split (oci_storage.tarsplit): the recorded stream re-assembles to the exact bytes
of the layer (its diff_id), in both directions with podman's containers/storage."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from oci_image.build import BuiltImage
from oci_image.copy import copy_image
from oci_image.spec import Digest
from oci_image.testing.random import random_image
from oci_storage.apply import AppliedLayer, apply_layer
from oci_storage.errors import StoreCorruptError, UnsafeArchiveError
from oci_storage.tarsplit import (
    FILE_TYPE,
    SEGMENT_TYPE,
    Crc64,
    TarSplitError,
    TarSplitRecorder,
    TarSplitWriter,
    crc64_iso,
    read_entries,
    reassemble,
    reassemble_stream,
)

from .hostile_layers import TarBuilder, gz
from .peers import Podman, podman  # noqa: F401  (fixture)

IS_ROOT = os.geteuid() == 0


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _apply_recorded(blob: bytes, root: Path, ts_path: Path) -> AppliedLayer:
    with TarSplitWriter(ts_path) as ts:
        return apply_layer(io.BytesIO(blob), root, tar_split=ts)


def _round_trip(blob: bytes, tmp_path: Path) -> tuple[bytes, AppliedLayer, Path]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    ts_path = tmp_path / "layer.tar-split.gz"
    applied = _apply_recorded(blob, root, ts_path)
    out = b"".join(reassemble(ts_path, root))
    assert _sha(out) == str(applied.diff_id)
    return out, applied, ts_path


def _docs(ts_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in gzip.open(ts_path).read().splitlines()]


# --------------------------------------------------------------------------- CRC-64


def test_crc64_iso_known_vectors() -> None:
    # CRC-64/GO-ISO check value, and Go's hash/crc64 golden table ("a", "ab")
    assert crc64_iso(b"123456789") == 0xB90956C775A41001
    assert crc64_iso(b"") == 0
    assert crc64_iso(b"a") == 0x3420000000000000
    assert crc64_iso(b"ab") == 0x36C4200000000000
    data = os.urandom(10_001)
    crc = Crc64()
    for start in range(0, len(data), 777):
        crc.update(data[start:start + 777])
    assert crc.digest() == crc64_iso(data).to_bytes(8, "big")
    assert crc64_iso(data[5000:], crc64_iso(data[:5000])) == crc64_iso(data)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("seed", [1, 2, 3, 7])
def test_random_image_layers_round_trip(seed: int, tmp_path: Path) -> None:
    image = random_image(seed, layers=3, files_per_layer=20, max_file_size=20_000)
    root = tmp_path / "root"
    root.mkdir()
    for i, blob in enumerate(_layer_blobs(image)):
        ts_path = tmp_path / f"{i}.tar-split.gz"
        applied = _apply_recorded(blob, root, ts_path)
        # vfs-like: the root holds the layers below too; only listed entries are read
        assert _sha(b"".join(reassemble(ts_path, root))) == str(applied.diff_id)
        assert _sha(reassemble_stream(ts_path, root).read()) == str(applied.diff_id)


def _layer_blobs(image: BuiltImage) -> list[bytes]:
    out = []
    for layer in json.loads(image.manifest)["layers"]:
        blob = image.blobs[Digest.parse(layer["digest"])]
        out.append(blob if isinstance(blob, bytes) else Path(blob).read_bytes())
    return out


def _tar(fmt: int, members: list[tuple[tarfile.TarInfo, bytes]], *,
         pax_headers: dict[str, str] | None = None, trailer: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_headers,
                      encoding="utf-8", errors="surrogateescape") as tf:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue() + bytes(trailer)


def _info(name: str, kind: bytes = tarfile.REGTYPE, *, linkname: str = "",
          xattrs: dict[str, str] | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.linkname = linkname
    info.mtime = 1_700_000_000
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return info


LONG = "deep/" + "/".join(["component-" + "x" * 40] * 6) + "/file-with-a-long-name.txt"


def _handmade(fmt: int) -> list[tuple[tarfile.TarInfo, bytes]]:
    members = [
        (_info("./", tarfile.DIRTYPE), b""),
        (_info("usr", tarfile.DIRTYPE), b""),
        (_info("usr/bin", tarfile.DIRTYPE), b""),
        (_info("usr/bin/tool"), os.urandom(513)),
        (_info("usr/bin/exact"), os.urandom(1024)),
        (_info("usr/bin/hard", tarfile.LNKTYPE, linkname="usr/bin/tool"), b""),
        (_info("bin", tarfile.SYMTYPE, linkname="usr/bin"), b""),
        (_info("bin/through-link"), b"written through bin -> usr/bin"),
        (_info("empty"), b""),
        (_info("dangling", tarfile.SYMTYPE, linkname="/nowhere/" + "n" * 150), b""),
        (_info("fifo", tarfile.FIFOTYPE), b""),
        (_info("deep", tarfile.DIRTYPE), b""),
        (_info(LONG), os.urandom(3000)),
        (_info("hard-long", tarfile.LNKTYPE, linkname=LONG), b""),
        (_info("ünïcode-名前"), b"utf-8 name"),
        (_info("a&b<c>"), b"html-escaped in Go's JSON"),
    ]
    if fmt == tarfile.PAX_FORMAT:
        members.append((_info("with-xattr", xattrs={"user.comment": "hello"}), b"x"))
    return members


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("trailer", [0, 512, 10_000])
def test_handmade_round_trip(fmt: int, trailer: int, tmp_path: Path) -> None:
    members = _handmade(fmt)
    if fmt == tarfile.USTAR_FORMAT:  # no long names, but a prefix/name split
        members = [m for m in members if m[0].name not in (LONG, "hard-long", "dangling")
                   and not m[0].name.startswith(("ü", "a&"))]
        members.append((_info("p" * 120 + "/" + "n" * 90), b"ustar prefix"))
        members.insert(0, (_info("p" * 120, tarfile.DIRTYPE), b""))
    blob = _tar(fmt, members, trailer=trailer)
    out, applied, ts_path = _round_trip(blob, tmp_path)
    assert out == blob
    docs = _docs(ts_path)
    assert [d["position"] for d in docs] == list(range(len(docs)))
    files = [d for d in docs if d["type"] == FILE_TYPE]
    assert len(files) == len(members) == applied.entries
    by_name = {d.get("name"): d for d in files}
    tool = by_name["usr/bin/tool"]
    assert tool["size"] == 513
    data = {m[0].name: m[1] for m in members}["usr/bin/tool"]
    assert base64.b64decode(str(tool["payload"])) == crc64_iso(data).to_bytes(8, "big")
    assert "size" not in by_name["empty"]
    assert by_name["empty"]["payload"] is None
    assert "size" not in by_name["usr/bin/hard"]
    if fmt != tarfile.USTAR_FORMAT:
        assert LONG in by_name


def test_gzip_layer_and_global_pax_header(tmp_path: Path) -> None:
    blob = _tar(tarfile.PAX_FORMAT, _handmade(tarfile.PAX_FORMAT),
                pax_headers={"comment": "a global header"})
    root = tmp_path / "root"
    root.mkdir()
    ts_path = tmp_path / "ts.gz"
    applied = _apply_recorded(gz(blob), root, ts_path)
    assert applied.compression == "gzip"
    assert b"".join(reassemble(ts_path, root)) == blob
    # Go's reader returns the global header as an entry of its own (size 0)
    first_file = next(d for d in _docs(ts_path) if d["type"] == FILE_TYPE)
    assert first_file["name"] == "././@PaxHeader"
    assert first_file["payload"] is None


def test_non_utf8_name_uses_name_raw(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9")
    blob = _tar(tarfile.GNU_FORMAT, [(_info(name), b"latin-1 name")])
    out, _, ts_path = _round_trip(blob, tmp_path)
    assert out == blob
    doc = next(d for d in _docs(ts_path) if d["type"] == FILE_TYPE)
    assert "name" not in doc
    assert base64.b64decode(str(doc["name_raw"])) == b"caf\xe9"


def test_tarbuilder_layers_and_empty_layer(tmp_path: Path) -> None:
    blob = (TarBuilder().dir("d").file("d/f", b"data" * 300).symlink("l", "d/f")
            .hardlink("h", "d/f").whiteout(".wh.gone").build())
    (tmp_path / "a").mkdir()
    assert _round_trip(blob, tmp_path / "a")[0] == blob
    (tmp_path / "b").mkdir()
    out, applied, ts_path = _round_trip(b"", tmp_path / "b")
    assert out == b""
    assert applied.entries == 0
    assert _docs(ts_path) == []
    (tmp_path / "c").mkdir()
    out, _, _ = _round_trip(bytes(1024), tmp_path / "c")
    assert out == bytes(1024)


def test_recorder_wrapper_and_segments(tmp_path: Path) -> None:
    blob = _tar(tarfile.PAX_FORMAT, [(_info("f"), b"x" * 700)], trailer=3 << 20)
    ts_path = tmp_path / "ts.gz"
    with TarSplitWriter(ts_path) as ts:
        reader = TarSplitRecorder(io.BytesIO(blob), ts)
        while reader.read(333):
            pass
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(b"x" * 700)
    assert b"".join(reassemble(ts_path, root)) == blob
    docs = _docs(ts_path)
    # Go cuts: [header] [file] [padding + end blocks] then 1 MiB pieces of the trailer
    assert [d["type"] for d in docs[:2]] == [SEGMENT_TYPE, FILE_TYPE]
    sizes = [len(base64.b64decode(str(d["payload"]))) for d in docs[2:]]
    assert sizes[0] == (512 - 700 % 512) + 1024
    assert all(s <= 1 << 20 for s in sizes[1:])
    assert sum(sizes) + 700 + 512 == len(blob)


# --------------------------------------------------------------------------- failures


def test_changed_file_is_detected(tmp_path: Path) -> None:
    blob = _tar(tarfile.PAX_FORMAT, _handmade(tarfile.PAX_FORMAT))
    _, _, ts_path = _round_trip(blob, tmp_path)
    root = tmp_path / "root"
    tool = root / "usr/bin/tool"
    data = bytearray(tool.read_bytes())
    data[100] ^= 1
    tool.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError, match="checksum failed for b'usr/bin/tool'"):
        b"".join(reassemble(ts_path, root))
    tool.write_bytes(bytes(data[:-1]))
    with pytest.raises(StoreCorruptError, match="has 512 bytes, expected 513"):
        b"".join(reassemble(ts_path, root))
    tool.unlink()
    with pytest.raises(StoreCorruptError, match="cannot be opened"):
        b"".join(reassemble(ts_path, root))


def test_symlink_out_of_root_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 513)
    blob = _tar(tarfile.PAX_FORMAT, _handmade(tarfile.PAX_FORMAT))
    _, _, ts_path = _round_trip(blob, tmp_path)
    root = tmp_path / "root"
    (root / "usr/bin/tool").unlink()
    (root / "usr/bin/tool").symlink_to(secret)
    with pytest.raises(StoreCorruptError, match="usr/bin/tool"):
        b"".join(reassemble(ts_path, root))
    # a parent symlink pointing outside is resolved inside the root, not followed out
    (root / "usr/bin/tool").unlink()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/tool").write_bytes(b"t" * 513)
    os.rename(root / "usr/bin", root / "usr/bin.real")
    (root / "usr/bin").symlink_to(tmp_path / "outside")
    with pytest.raises(StoreCorruptError, match="missing"):
        b"".join(reassemble(ts_path, root))


def test_duplicate_entries_refused(tmp_path: Path) -> None:
    blob = TarBuilder().file("a", b"1").file("./a", b"2").build()
    root = tmp_path / "root"
    root.mkdir()
    ts_path = tmp_path / "ts.gz"
    with pytest.raises(TarSplitError, match="duplicate"):
        _apply_recorded(blob, root, ts_path)
    assert not ts_path.exists()
    assert list(tmp_path.iterdir()) == [root]


def test_failed_apply_leaves_no_file(tmp_path: Path) -> None:
    blob = _tar(tarfile.PAX_FORMAT, [(_info("f"), b"x" * 2000)])[:1500]
    root = tmp_path / "root"
    root.mkdir()
    ts_path = tmp_path / "ts.gz"
    ts_path.write_bytes(b"old")
    with pytest.raises(UnsafeArchiveError):
        _apply_recorded(blob, root, ts_path)
    assert ts_path.read_bytes() == b"old"
    assert sorted(tmp_path.iterdir()) == [root, ts_path]


@pytest.mark.parametrize("content", [
    b"not gzip", gzip.compress(b'{"type":3,"payload":null,"position":0}\n'),
    gzip.compress(b'{"type":2,"payload":"!!","position":0}\n'),
    gzip.compress(b'{"type":1,"name":"a","size":3,"payload":null,"position":0}\n'),
    gzip.compress(b'{"type":1,"name":"a","payload":null,"position":0}\n'
                  b'{"type":1,"name":"./a","payload":null,"position":1}\n'),
    gzip.compress(b'{"type":1,"name":"../../etc/passwd","size":3,'
                  b'"payload":"AAAAAAAAAAA=","position":0}\n'),
])
def test_corrupt_tar_split(content: bytes, tmp_path: Path) -> None:
    (tmp_path / "ts.gz").write_bytes(content)
    with pytest.raises(StoreCorruptError):
        b"".join(reassemble(tmp_path / "ts.gz", tmp_path))


def test_reads_compact_go_json(tmp_path: Path) -> None:
    # documents as Go's json.Encoder writes them, also without newlines between them
    text = (b'{"type":2,"payload":"aGk=","position":0}'
            b'{"type":1,"name":"e","payload":null,"position":1}\n')
    (tmp_path / "ts.gz").write_bytes(gzip.compress(text))
    entries = list(read_entries(tmp_path / "ts.gz"))
    assert [e.type for e in entries] == [SEGMENT_TYPE, FILE_TYPE]
    assert b"".join(reassemble(tmp_path / "ts.gz", tmp_path)) == b"hi"


# --------------------------------------------------------------------------- podman


def _merged(docs: list[dict[str, object]]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for d in docs:
        if d["type"] == SEGMENT_TYPE:
            data = base64.b64decode(str(d["payload"])) if d["payload"] else b""
            if out and out[-1][0] == SEGMENT_TYPE:
                prev = out[-1][1]
                assert isinstance(prev, bytes)
                out[-1] = (SEGMENT_TYPE, prev + data)
            elif data:
                out.append((SEGMENT_TYPE, data))
        else:
            out.append((d["type"], d.get("name"), d.get("size"), d["payload"]))
    return out


def _podman_store(peer: Podman, tmp_path: Path,
                  seed: int) -> tuple[Path, list[dict[str, object]]]:
    image = random_image(seed, layers=3, files_per_layer=15, max_file_size=30_000)
    layout = tmp_path / "layout"
    copy_image(image.reference, f"oci:{layout}:x")
    archive = tmp_path / "image.tar"
    subprocess.run([sys.executable, "-m", "oci_image", "copy", f"oci:{layout}:x",
                    f"docker-archive:{archive}:localhost/x:1"], check=True)
    peer.run("load", "-i", str(archive))
    store = peer.root / "root"
    layers = json.loads((store / "vfs-layers/layers.json").read_text())
    assert len(layers) == 3
    return store, layers


@pytest.mark.peers
@pytest.mark.skipif(not IS_ROOT, reason="podman with a root-owned store")
def test_reassemble_podman_layers(podman: Podman, tmp_path: Path) -> None:  # noqa: F811
    store, layers = _podman_store(podman, tmp_path, seed=11)
    for layer in layers:
        lid = str(layer["id"])
        ts_path = store / "vfs-layers" / f"{lid}.tar-split.gz"
        types = {d["type"] for d in _docs(ts_path)}
        assert types == {FILE_TYPE, SEGMENT_TYPE}
        out = b"".join(reassemble(ts_path, store / "vfs/dir" / lid))
        assert _sha(out) == layer["diff-digest"]
        assert len(out) == layer["diff-size"]


@pytest.mark.peers
@pytest.mark.skipif(not IS_ROOT, reason="podman with a root-owned store")
def test_podman_accepts_our_tar_split(podman: Podman, tmp_path: Path) -> None:  # noqa: F811
    """Replace podman's tar-split files by ours (recorded while applying the same
    layers) and have podman re-assemble the layers for `podman save`."""
    store, layers = _podman_store(podman, tmp_path, seed=12)
    exported = tmp_path / "exported.tar"
    subprocess.run([sys.executable, "-m", "oci_image", "copy", f"oci:{tmp_path / 'layout'}:x",
                    f"docker-archive:{exported}:localhost/x:1"], check=True)
    blobs = {}
    with tarfile.open(exported) as tf:
        for member in tf.getmembers():
            if member.isreg():
                data = tf.extractfile(member).read()  # type: ignore[union-attr]
                blobs[_sha(data)] = data
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    ours: dict[str, bytes] = {}
    for layer in layers:
        lid = str(layer["id"])
        blob = blobs[str(layer["diff-digest"])]
        ts_path = store / "vfs-layers" / f"{lid}.tar-split.gz"
        theirs = _docs(ts_path)
        _apply_recorded(blob, scratch, tmp_path / "ours.gz")
        mine = _docs(tmp_path / "ours.gz")
        # the same documents as the Go disassembler wrote, up to the end-of-archive
        # blocks; after them Go cuts a segment per Read call (and c/storage 1.43's
        # tar-split adds an empty one), so only the bytes are compared there
        end = max(i for i, d in enumerate(theirs) if d["type"] == FILE_TYPE) + 2
        assert mine[:end] == theirs[:end]
        assert _merged(mine) == _merged(theirs)
        ours[lid] = (tmp_path / "ours.gz").read_bytes()
        ts_path.write_bytes(ours[lid])
    saved = tmp_path / "saved"
    podman.run("save", "--format", "docker-dir", "-o", str(saved), "localhost/x:1")
    manifest = json.loads((saved / "manifest.json").read_text())
    config = json.loads((saved / manifest["config"]["digest"].split(":")[1]).read_text())
    assert config["rootfs"]["diff_ids"] == [layer["diff-digest"] for layer in layers]
    for desc, layer in zip(manifest["layers"], layers, strict=True):
        data = (saved / desc["digest"].split(":")[1]).read_bytes()
        assert _sha(data) == layer["diff-digest"]  # re-assembled byte for byte
    for layer in layers:
        assert (store / "vfs-layers" / f"{layer['id']}.tar-split.gz").read_bytes() == \
            ours[str(layer["id"])]
