"""Hostile inputs (the corpus in :mod:`tests.hostile`) against the copy engine.

Every case, copied to every kind of destination (``oci:``, ``dir:``, ``docker-archive:``,
each both pre-existing with another image in it and not yet existing), must:

1. raise exactly one of the :class:`~oci_image.errors.OCIError` subclasses the case
   names (never a bare KeyError, IndexError, JSONDecodeError or tarfile error);
2. name the blob (digest) or the path concerned in the message;
3. leave the destination as it was (``snapshot`` before and after, directories too),
   with no temporary file anywhere in or next to it.

A few cases also go through the CLI (exit status 1, one ``Error:`` line, no traceback).
Cases that reveal a library bug are ``xfail(strict=True)`` with the reason spelled out;
two processes writing one layout must all succeed.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from oci_image.build import FileEntry, ImageBuilder
from oci_image.copy import CopyOptions, ProgressEvent, ProgressKind, copy_image
from oci_image.errors import (
    ArchiveError,
    BlobNotFoundError,
    CopyCancelledError,
    DigestMismatchError,
    ManifestNotFoundError,
    OCIError,
)
from oci_image.image import open_image
from oci_image.interfaces import OpenOptions
from oci_image.spec import Compression, Platform
from oci_image.testing.conformance import snapshot
from oci_image.testing.random import random_image
from oci_image.transports import parse_image_name
from oci_image.validate import validate_image

from .hostile import (
    CASES,
    LIMIT,
    Entry,
    RawImage,
    blob_path,
    docker_archive_entries,
    docker_image,
    leftovers,
    oci_archive_entries,
    tree,
    write_docker_archive,
    write_layout,
    write_oci_archive,
    write_tar,
)

ROOT = Path(__file__).resolve().parent.parent

# --- known library bugs ----------------------------------------------------------------------

#: cases whose error type or destination handling is wrong
CASE_BUGS: dict[str, str] = {}


# --- destinations ----------------------------------------------------------------------------

DEST_KINDS = ("oci-existing", "oci-new", "dir-existing", "dir-new",
              "docker-archive-existing", "docker-archive-new")


@dataclass(frozen=True)
class Dest:
    ref: str
    #: the file or directory the transport writes
    target: Path
    #: the directory holding it (where staging files may appear)
    parent: Path
    #: a reference to the image that was there before (pre-existing destinations)
    other: str | None


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Pre-existing destinations, each holding another image, copied per test."""
    base = tmp_path_factory.mktemp("templates")
    other = random_image(seed=900, layers=2)
    copy_image(other.reference, f"oci:{base / 'layout'}:other")
    copy_image(other.reference, f"dir:{base / 'dir'}")
    copy_image(other.reference, f"docker-archive:{base / 'archive.tar'}:example.com/other:1")
    return base


def make_dest(kind: str, base: Path, templates: Path) -> Dest:
    parent = base / "out"
    parent.mkdir()
    transport, state = kind.rsplit("-", 1)
    existing = state == "existing"
    if transport == "oci":
        target = parent / "layout"
        if existing:
            shutil.copytree(templates / "layout", target)
        return Dest(f"oci:{target}:victim", target, parent,
                    f"oci:{target}:other" if existing else None)
    if transport == "dir":
        target = parent / "dir"
        if existing:
            shutil.copytree(templates / "dir", target)
        return Dest(f"dir:{target}", target, parent, f"dir:{target}" if existing else None)
    target = parent / "archive.tar"
    if existing:
        shutil.copyfile(templates / "archive.tar", target)
    return Dest(f"docker-archive:{target}:example.com/victim:1", target, parent,
                f"docker-archive:{target}" if existing else None)


@dataclass(frozen=True)
class State:
    snapshot: object
    tree: object


def state_of(dest: Dest) -> State:
    return State(snapshot(dest.target), tree(dest.parent))


def assert_untouched(dest: Dest, before: State, base: Path) -> None:
    assert snapshot(dest.target) == before.snapshot, "the destination changed"
    assert tree(dest.parent) == before.tree, "something was added next to the destination"
    if before.snapshot is None:
        assert not dest.target.exists()
    assert leftovers(base) == [], "temporary files left behind"
    if dest.other is not None:
        validate_image(dest.other)


def assert_mentions(exc: BaseException, mentions: tuple[str, ...]) -> None:
    message = str(exc)
    for wanted in mentions:
        assert wanted in message, f"{wanted!r} not named in {message!r}"


def _params(names: list[str], bugs: dict[str, str]) -> list[object]:
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=bugs[n]))
            if n in bugs else n for n in names]


# --- the corpus, through the API -------------------------------------------------------------


@pytest.mark.parametrize("dest_kind", DEST_KINDS)
@pytest.mark.parametrize("name", _params(sorted(CASES), CASE_BUGS))
def test_hostile_source(name: str, dest_kind: str, tmp_path: Path, templates: Path) -> None:
    case = CASES[name]
    (tmp_path / "src").mkdir()
    built = case.build(tmp_path / "src")
    dest = make_dest(dest_kind, tmp_path, templates)
    spool = tmp_path / "spool"
    spool.mkdir()
    before = state_of(dest)
    options = CopyOptions(jobs=4, source_options=OpenOptions(tmp_dir=str(spool)))

    with pytest.raises(OCIError) as info:
        copy_image(built.source, dest.ref, options)

    exc = info.value
    assert type(exc) in case.errors, \
        f"{case.name}: {type(exc).__name__} ({exc}) is not one of {case.errors}"
    assert_untouched(dest, before, tmp_path)
    assert list(spool.iterdir()) == [], "spooled source copy left behind"
    assert_mentions(exc, built.mentions)


def test_corpus_is_complete() -> None:
    """Every case the brief lists is in the corpus (guards against silent removals)."""
    wanted = {
        "oci-layer-bitflip", "oci-layer-truncated", "oci-layer-one-byte-longer",
        "oci-layer-missing", "oci-layer-symlink-etc-passwd", "oci-config-bitflip",
        "oci-manifest-over-limit", "oci-index-over-limit", "oci-index-not-json",
        "oci-index-manifests-string", "oci-index-negative-size", "oci-diff-id-wrong",
        "oci-diff-ids-fewer", "oci-gzip-bad-deflate", "oci-gzip-bad-crc",
        "da-config-dotdot", "da-config-absolute", "da-config-inner-dotdot",
        "da-layer-symlink-dotdot", "da-layer-symlink-absolute", "da-symlink-loop",
        "da-manifest-missing", "da-two-images-no-tag", "da-tag-not-present",
        "da-layer-listed-twice", "da-truncated-in-layer", "ociarch-truncated-in-layer",
        "ociarch-blob-missing", "ociarch-index-missing", "dir-manifest-missing",
        "dir-version-unknown",
    }
    assert wanted <= set(CASES)
    for case in CASES.values():
        assert case.doc, f"{case.name} has no description"
        assert case.errors
        assert all(issubclass(e, OCIError) for e in case.errors)


def test_ambiguous_docker_archive_lists_the_choice(tmp_path: Path) -> None:
    """With several images and no NAME:TAG or @INDEX, the error lists what to choose."""
    built = CASES["da-two-images-no-tag"].build(tmp_path)
    with pytest.raises(ManifestNotFoundError) as info:
        copy_image(built.source, f"oci:{tmp_path / 'out'}:t")
    assert "example.com/one:1" in str(info.value)
    assert "example.com/two:2" in str(info.value)


def test_manifest_exactly_at_the_limit_is_accepted(tmp_path: Path) -> None:
    """The boundary of ``oci-manifest-over-limit``: 4 MiB exactly is still a manifest."""
    image = RawImage.random(110, layers=1)
    empty = image.with_manifest(lambda o: o.__setitem__("annotations", {"pad": ""}))
    filler = "x" * (LIMIT - len(empty.manifest))
    exact = image.with_manifest(lambda o: o.__setitem__("annotations", {"pad": filler}))
    assert len(exact.manifest) == LIMIT
    write_layout(tmp_path / "src", {"img": exact})
    result = copy_image(f"oci:{tmp_path / 'src'}:img", f"oci:{tmp_path / 'out'}:t")
    assert str(result.manifest_digest) == exact.digest


# --- the symlink in a layout is not taken for the blob ----------------------------------------


def test_layout_blob_symlink_to_host_file_is_not_the_blob(tmp_path: Path) -> None:
    """/etc/passwd behind a blob path: refused or mismatched, and nothing of it copied."""
    built = CASES["oci-layer-symlink-etc-passwd"].build(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(OCIError):
        copy_image(built.source, f"dir:{out}")
    assert not out.exists()
    passwd = Path("/etc/passwd").read_bytes()
    for dirpath, _dirs, files in os.walk(tmp_path):
        for name in files:
            path = Path(dirpath, name)
            if not path.is_symlink():
                assert path.read_bytes() != passwd, f"{path} holds a copy of /etc/passwd"


# --- oci-archive: ``..`` entries are ignored, never extracted ---------------------------------


def _escape_entries(token: str) -> list[Entry]:
    return [
        Entry(f"../escape-{token}", b"escaped"),
        Entry(f"../../escape-{token}", b"escaped"),
        Entry(f"blobs/../../escape-{token}", b"escaped"),
        Entry(f"blobs/sha256/../../../escape-{token}", b"escaped"),
        Entry(f"/tmp/escape-abs-{token}", b"escaped"),
        Entry(f"evil-link-{token}", kind="symlink", target="../../../etc"),
        Entry(f"../evil-hardlink-{token}", kind="hardlink", target="/etc/passwd"),
    ]


@pytest.mark.parametrize("compress", [False, True])
def test_oci_archive_dotdot_entries_are_ignored(tmp_path: Path, compress: bool) -> None:
    token = os.urandom(6).hex()
    image = RawImage.random(180)
    deep = tmp_path / "a" / "b"
    archive = deep / "src.tar"
    write_oci_archive(archive, {"img": image}, extra=_escape_entries(token), compress=compress)

    result = copy_image(f"oci-archive:{archive}:img", f"oci:{tmp_path / 'out'}:t")

    assert str(result.manifest_digest) == image.digest
    validate_image(f"oci:{tmp_path / 'out'}:t")
    escaped = list(tmp_path.rglob(f"*{token}*"))
    for directory in (tmp_path.parent, Path("/tmp"), Path.cwd()):
        escaped += [p for p in directory.iterdir() if token in p.name]
    assert escaped == [], f"archive entries were extracted: {escaped}"
    assert leftovers(tmp_path) == []


def test_oci_archive_dotdot_blob_name_is_not_the_blob(tmp_path: Path) -> None:
    """A ``../blobs/sha256/<hex>`` entry holding the right bytes does not stand in for
    the missing real blob: the blob is reported missing."""
    image = RawImage.random(181)
    layer = image.layer_digests[0]
    hexa = layer.split(":")[1]
    archive = tmp_path / "src.tar"
    entries = [e for e in oci_archive_entries({"img": image}) if hexa not in e.name]
    entries += [Entry(f"../blobs/sha256/{hexa}", image.blobs[layer]),
                Entry(f"x/../../blobs/sha256/{hexa}", image.blobs[layer])]
    write_tar(archive, entries)
    with pytest.raises(OCIError) as info:
        copy_image(f"oci-archive:{archive}:img", f"oci:{tmp_path / 'out'}:t")
    assert type(info.value) is BlobNotFoundError
    assert layer in str(info.value)
    assert not (tmp_path / "out").exists()


# --- dir: destinations that are not ours -------------------------------------------------------


def _foreign_dir(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "important.txt").write_text("keep me\n")
    (path / "sub").mkdir()
    (path / "sub" / "data.bin").write_bytes(b"\0\1\2")


@pytest.mark.parametrize("variant", ["no-version", "unknown-version", "regular-file"])
def test_dir_destination_not_ours_is_refused(tmp_path: Path, variant: str) -> None:
    target = tmp_path / "out" / "dest"
    if variant == "regular-file":
        target.parent.mkdir()
        target.write_text("a file, not a directory\n")
    else:
        _foreign_dir(target)
        if variant == "unknown-version":
            (target / "version").write_text("Directory Transport Version: 7.0\n")
    before = tree(tmp_path / "out")
    image = random_image(seed=190)
    with pytest.raises(OCIError) as info:
        copy_image(image.reference, f"dir:{target}")
    assert type(info.value) is ArchiveError
    assert str(target) in str(info.value)
    assert tree(tmp_path / "out") == before
    assert leftovers(tmp_path) == []


# --- the CLI -------------------------------------------------------------------------------


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "oci_image", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout, check=False)


def assert_cli_error(proc: subprocess.CompletedProcess[str], mentions: tuple[str, ...]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    for wanted in mentions:
        assert wanted in lines[0]
    return lines[0]


CLI_CASES = ["oci-layer-bitflip", "oci-index-not-json", "oci-diff-id-wrong",
             "oci-manifest-over-limit", "ociarch-blob-missing", "da-config-dotdot",
             "da-layer-symlink-dotdot", "da-two-images-no-tag", "dir-version-unknown"]


@pytest.mark.parametrize("dest_kind", ["oci-existing", "docker-archive-new"])
@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_reports_one_error_line(name: str, dest_kind: str, tmp_path: Path,
                                    templates: Path) -> None:
    (tmp_path / "src").mkdir()
    built = CASES[name].build(tmp_path / "src")
    dest = make_dest(dest_kind, tmp_path, templates)
    before = state_of(dest)
    proc = run_cli("copy", "--quiet", built.source, dest.ref)
    assert_cli_error(proc, built.mentions)
    assert_untouched(dest, before, tmp_path)


def test_cli_refuses_foreign_dir(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    image = RawImage.random(191)
    write_layout(tmp_path / "src" / "layout", {"img": image})
    target = tmp_path / "out" / "dest"
    _foreign_dir(target)
    before = tree(tmp_path / "out")
    proc = run_cli("copy", "-q", f"oci:{tmp_path / 'src' / 'layout'}:img", f"dir:{target}")
    assert_cli_error(proc, (str(target),))
    assert tree(tmp_path / "out") == before


# --- a failure in the middle of a parallel copy ---------------------------------------------

BIG = 6 << 20


def _parallel_victim(tmp_path: Path) -> tuple[str, RawImage, str]:
    """A layout whose first layer (small) has a bit flipped and whose three other
    layers are big uncompressed tars (gzipped on their way into ``oci:``)."""
    rng = random.Random(7)
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    builder.add_layer_from_files({"small": b"s" * 1000})
    for i in range(3):
        builder.add_layer_from_files({f"big{i}": FileEntry(data=rng.randbytes(BIG))},
                                     compression=Compression.NONE)
    image = RawImage.from_built(builder.build())
    root = tmp_path / "src"
    write_layout(root, {"img": image})
    first = image.layer_digests[0]
    data = bytearray(blob_path(root, first).read_bytes())
    data[len(data) // 2] ^= 1
    blob_path(root, first).write_bytes(bytes(data))
    return f"oci:{root}:img", image, first


@pytest.mark.parametrize("dest_kind", ["oci-existing", "oci-new", "dir-new",
                                       "docker-archive-existing"])
def test_first_layer_fails_others_stop(tmp_path: Path, templates: Path, dest_kind: str
                                       ) -> None:
    source, image, first = _parallel_victim(tmp_path)
    big = set(image.layer_digests[1:])
    dest = make_dest(dest_kind, tmp_path, templates)
    before = state_of(dest)
    started: set[str] = set()
    done: set[str] = set()
    all_started = threading.Event()
    lock = threading.Lock()

    def progress(event: ProgressEvent) -> None:
        digest = str(event.descriptor.digest)
        with lock:
            if event.kind is ProgressKind.STARTED:
                started.add(digest)
                if big <= started:
                    all_started.set()
            elif event.kind is ProgressKind.DONE:
                done.add(digest)
        if event.kind is ProgressKind.PROGRESS and (digest == first or digest in big):
            # the bad layer fails only once every big layer is in flight (the config
            # must not wait: its worker is needed for the last big layer), and the big
            # layers go slowly from then on: they cannot win the race
            all_started.wait(10)
            if digest in big:
                time.sleep(0.05)

    t0 = time.monotonic()
    with pytest.raises(OCIError) as info:
        copy_image(source, dest.ref, CopyOptions(jobs=4), progress=progress)
    elapsed = time.monotonic() - t0

    assert type(info.value) is DigestMismatchError, repr(info.value)
    assert not isinstance(info.value, CopyCancelledError)
    assert first in str(info.value)
    assert all_started.is_set(), "the big layers were never in flight together"
    assert not (done & big), "layers in flight ran to the end after the failure"
    assert elapsed < 10
    assert_untouched(dest, before, tmp_path)


def test_cli_parallel_failure_reports_real_cause(tmp_path: Path, templates: Path) -> None:
    source, _image, first = _parallel_victim(tmp_path)
    dest = make_dest("oci-existing", tmp_path, templates)
    before = state_of(dest)
    proc = run_cli("copy", "-q", "--image-parallel-copies", "4", source, dest.ref)
    line = assert_cli_error(proc, (first,))
    assert "cancel" not in line.lower()
    assert_untouched(dest, before, tmp_path)


# --- two processes writing one layout -----------------------------------------------------------

ROUNDS = 8


def _concurrent_sources(root: Path) -> dict[str, RawImage]:
    """16 images sharing a base layer (so both writers put the same blob at once)."""
    base_files = {"etc/os-release": b"ID=hostile\n", "bin/sh": b"\x7fELF" + b"\0" * 4000}
    images = {}
    for i in range(ROUNDS):
        for who in "ab":
            builder = ImageBuilder(platform=Platform("linux", "amd64"))
            builder.add_layer_from_files(base_files)
            unique = random.Random(f"{who}{i}").randbytes(2000) * 8
            builder.add_layer_from_files({f"{who}/{i}": unique})
            builder.config(env=[f"WHO={who}{i}"])
            images[f"{who}{i}"] = RawImage.from_built(builder.build())
    write_layout(root, images)
    return images


def _check_shared_layout(layout: Path, images: dict[str, RawImage], base: Path,
                         failed: dict[str, str]) -> None:
    """Every copy succeeded, every tag is listed and valid, nothing temporary is left."""
    assert failed == {}
    tags = parse_image_name(f"oci:{layout}").list_tags()  # type: ignore[attr-defined]
    expected = {f"{who}-{i}" for i in range(ROUNDS) for who in "ab"}
    assert sorted(tags) == sorted(expected)
    for tag in expected:
        report = validate_image(f"oci:{layout}:{tag}")
        assert report.blobs >= 3
        who, i = tag.split("-")
        with open_image(f"oci:{layout}:{tag}") as img:
            assert str(img.digest) == images[f"{who}{i}"].digest
    assert leftovers(base) == []


def test_two_cli_processes_share_one_layout(tmp_path: Path) -> None:
    """Each round, two ``python -m oci_image copy`` processes write one layout."""
    src = tmp_path / "src"
    images = _concurrent_sources(src)
    layout = tmp_path / "out" / "layout"
    layout.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    failed: dict[str, str] = {}
    for i in range(ROUNDS):
        procs = {f"{who}-{i}": subprocess.Popen(
            [sys.executable, "-m", "oci_image", "copy", "-q", f"oci:{src}:{who}{i}",
             f"oci:{layout}:{who}-{i}"], stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
            for who in "ab"}
        for tag, proc in procs.items():
            _out, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                failed[tag] = err
    _check_shared_layout(layout, images, tmp_path, failed)


# Each worker waits for the other before every round (a barrier made of files), so that
# the two copies of a round really run at the same time.
_WORKER = """
import os, sys, time
from oci_image.copy import copy_image
src, layout, who, other, sync, rounds = sys.argv[1:]
for i in range(int(rounds)):
    open(os.path.join(sync, f"{who}-{i}"), "w").close()
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(sync, f"{other}-{i}")):
        if time.monotonic() > deadline:
            sys.exit("the other writer never came")
        time.sleep(0.0005)
    try:
        copy_image(f"oci:{src}:{who}{i}", f"oci:{layout}:{who}-{i}")
    except Exception as exc:
        print(f"FAILED {who}-{i} {type(exc).__name__}: {exc}".replace(chr(10), " "))
"""


def test_two_processes_share_one_layout_in_lockstep(tmp_path: Path) -> None:
    src = tmp_path / "src"
    images = _concurrent_sources(src)
    layout = tmp_path / "out" / "layout"
    layout.parent.mkdir()
    sync = tmp_path / "sync"
    sync.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(src), str(layout), who, other, str(sync),
         str(ROUNDS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=ROOT) for who, other in (("a", "b"), ("b", "a"))]
    failed: dict[str, str] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        for line in out.splitlines():
            _word, tag, message = line.split(" ", 2)
            failed[tag] = message
    _check_shared_layout(layout, images, tmp_path, failed)


def test_other_writers_sweep_spares_a_blob_being_staged(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """A second writer opens the layout (and sweeps it) right after a staging file is
    created, before it is locked: the file must survive (it is created under a name the
    sweeper leaves alone, and renamed only once locked)."""
    from oci_image.transports import _common
    from oci_image.transports._layout import DirectoryLayout, LayoutWriter

    layout = tmp_path / "layout"
    copy_image(random_image(seed=200).reference, f"oci:{layout}:first")
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        if Path(name).name.startswith((".put-blob-", ".new-blob-")):
            LayoutWriter(DirectoryLayout(layout), "other").abort()  # __init__ sweeps
        return fd, name

    monkeypatch.setattr(_common.tempfile, "mkstemp", mkstemp)
    copy_image(random_image(seed=201).reference, f"oci:{layout}:second")
    monkeypatch.undo()
    validate_image(f"oci:{layout}:second")
    validate_image(f"oci:{layout}:first")


# --- sanity: the corpus builders make valid images when not corrupted ----------------------


def test_builders_make_valid_sources(tmp_path: Path) -> None:
    """Without the corruption, each kind of source the corpus writes copies fine (so the
    failures above are caused by the hostile change, not by a broken builder)."""
    image = RawImage.random(101)
    write_layout(tmp_path / "layout", {"img": image})
    copy_image(f"oci:{tmp_path / 'layout'}:img", f"dir:{tmp_path / 'd1'}")
    write_oci_archive(tmp_path / "a.tar", {"img": image})
    copy_image(f"oci-archive:{tmp_path / 'a.tar'}:img", f"dir:{tmp_path / 'd2'}")
    docker = docker_image(150)
    item, entries = docker_archive_entries(docker, ["example.com/hostile:1"])
    write_docker_archive(tmp_path / "d.tar", [item], entries, compress=True)
    copy_image(f"docker-archive:{tmp_path / 'd.tar'}", f"oci:{tmp_path / 'o'}:t")
    copy_image(f"dir:{tmp_path / 'd1'}", f"oci:{tmp_path / 'o'}:d")
    for ref in (f"dir:{tmp_path / 'd1'}", f"dir:{tmp_path / 'd2'}",
                f"oci:{tmp_path / 'o'}:t", f"oci:{tmp_path / 'o'}:d"):
        validate_image(ref)
