"""docker:// pulls and pushes through a fault-injecting proxy (tests/faultproxy.py) in
front of the real distribution registry (tests/registry.py): broken and truncated blob
bodies resumed with ``Range``, servers that ignore ``Range``, 5xx and 429 answers with and
without ``Retry-After``, connection resets before an answer, slow bodies, failed
monolithic and chunked uploads, the partial-blob cache across runs (cancelled and failed
pulls resumed by the next run), and the guarantee that nothing corrupt or half-written
reaches the destination.

Every pull and push here goes through ``docker://{proxy.host}/...``; images that a pull
needs are pushed to the registry directly first. Layers are a few hundred KiB of mostly
random data, so that a fault "in the middle of a body" really is in the middle.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oci_image.build import BuiltImage
from oci_image.copy import CopyResult, ProgressEvent, ProgressKind
from oci_image.errors import (
    CopyCancelledError,
    DigestMismatchError,
    NetworkError,
    RegistryError,
    TooManyRequestsError,
)
from oci_image.interfaces import OpenOptions
from oci_image.spec import Compression, Descriptor, Digest, ImageManifest
from oci_image.testing.random import random_image
from oci_image.validate import validate_image
from tests.faultproxy import (
    FaultProxy,
    ProxyRequest,
    ignore_range,
    reset_after,
    reset_request,
    slow,
    status,
    truncate_after,
)
from tests.registry import RegistryServer, copy, layers_of, plain

# -- helpers -------------------------------------------------------------------------








@functools.cache
def big_image(seed: int, layers: int = 2) -> BuiltImage:
    """An image whose layers are ~350 KiB each (random content compresses poorly)."""
    return random_image(seed=seed, layers=layers, files_per_layer=40, max_file_size=32 << 10)




def all_blobs(image: BuiltImage) -> list[Digest]:
    manifest = ImageManifest.from_json(image.manifest)
    return [manifest.config.digest] + [layer.digest for layer in manifest.layers]


def blob_bytes(image: BuiltImage, digest: Digest) -> bytes:
    data = image.blobs[digest]
    return data.read_bytes() if isinstance(data, Path) else data


def blob_re(digest: Digest) -> str:
    """The path regex of a blob GET (``/v2/<repo>/blobs/<digest>``)."""
    return rf"/blobs/{digest}$"


def seed_registry(registry: RegistryServer, repo: str, image: BuiltImage,
                  tmp_path: Path) -> str:
    """Push ``image`` to ``repo:v1`` directly (not through any proxy); return ``repo``."""
    copy(image.reference, f"docker://{registry.host}/{repo}:v1", dst_opts=plain(tmp_path))
    return repo


def range_start(entry: ProxyRequest) -> int:
    """N of a ``Range: bytes=N-`` request header."""
    assert entry.range is not None, f"{entry.method} {entry.path} had no Range header"
    match = re.fullmatch(r"bytes=(\d+)-", entry.range)
    assert match is not None, f"unexpected Range header {entry.range!r}"
    return int(match.group(1))


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (directories too, so that left-over temporary
    directories count) with a hash of its content."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): "dir" if p.is_dir()
            else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def prepared_layout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """An OCI layout already holding another image (``:base``), and its snapshot."""
    layout = tmp_path / "layout"
    copy(random_image(seed=999, layers=1).reference, f"oci:{layout}:base")
    return layout, snapshot(layout)


def layout_manifest_digest(layout: Path, tag: str) -> str | None:
    index = json.loads((layout / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return str(entry["digest"])
    return None


def assert_pulled(layout: Path, tag: str, image: BuiltImage, result: CopyResult) -> None:
    """The pull wrote ``image`` unchanged, and every byte of the layout verifies."""
    assert result.manifest_digest == image.digest
    assert layout_manifest_digest(layout, tag) == str(image.digest)
    validate_image(f"oci:{layout}:{tag}")
    for digest in all_blobs(image):
        assert (layout / "blobs" / digest.algorithm / digest.encoded).read_bytes() \
            == blob_bytes(image, digest)


def open_uploads(registry: RegistryServer, repo: str) -> list[str]:
    """Upload sessions the registry still knows. distribution 2.8 answers a ``DELETE``
    of an upload by removing it and then writing its ``hashstates/`` again (the
    handler's deferred ``Close``), so a cancelled upload leaves a directory without
    ``startedat``: to the registry that upload is gone (``GET`` on it is 404
    ``BLOB_UPLOAD_UNKNOWN``), and it is not counted here."""
    uploads = registry.root / "docker/registry/v2/repositories" / repo / "_uploads"
    return [u for u in registry.uploads(repo) if (uploads / u / "startedat").exists()]


def assert_upload_gone(registry: RegistryServer, path: str) -> None:
    """``GET`` on an upload location (asked of the registry itself) says it is unknown."""
    host, _, port = registry.host.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 404, (response.status, body)
    assert b"BLOB_UPLOAD_UNKNOWN" in body


def upload_id(path: str) -> str:
    """The session id of an upload URL path (``.../blobs/uploads/<id>?_state=...``)."""
    return path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[1]


def assert_pushed(registry: RegistryServer, repo: str, image: BuiltImage,
                  tmp_path: Path) -> None:
    """The registry has the manifest, the tag and every blob, with no upload left
    open; pulled back (directly), the image verifies."""
    assert registry.manifest_exists(repo, str(image.digest))
    assert registry.tags(repo) == ["v1"]
    for digest in all_blobs(image):
        assert registry.blob_exists(repo, str(digest)), digest
    assert open_uploads(registry, repo) == []
    back = tmp_path / "pulled-back"
    result = copy(f"docker://{registry.host}/{repo}:v1", f"oci:{back}:v1",
                  src_opts=plain(tmp_path))
    assert_pulled(back, "v1", image, result)


@pytest.fixture
def proxy_for() -> Iterator[Any]:
    """``proxy_for(server)``: a FaultProxy in front of another registry, stopped at
    teardown."""
    started: list[FaultProxy] = []

    def make(server: RegistryServer) -> FaultProxy:
        proxy = FaultProxy(server.url).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


# -- pulls: broken bodies are resumed with Range ---------------------------------------


def test_pull_resumes_a_blob_after_a_reset_mid_body(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(401)
    repo = seed_registry(registry, "faults/reset-mid-body", image, tmp_path)
    layer = layers_of(image)[0]
    cut = layer.size // 2
    rule = fault_proxy.add_rule("GET", blob_re(layer.digest), reset_after(cut))
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path))
    assert rule.fired == 1
    first, *rest = fault_proxy.requests("GET", blob_re(layer.digest))
    assert first.range is None
    assert first.wait().body_bytes == cut
    # one follow-up request, from where the body broke off (not from byte 0)
    assert len(rest) == 1, [(e.range, e.status) for e in rest]
    assert 0 < range_start(rest[0]) <= cut
    assert rest[0].status == 206
    assert_pulled(out, "v1", image, result)


def test_pull_resumes_a_truncated_body(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(402)
    repo = seed_registry(registry, "faults/truncated", image, tmp_path)
    layer = layers_of(image)[1]
    cut = layer.size // 3
    rule = fault_proxy.add_rule("GET", blob_re(layer.digest), truncate_after(cut))
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path))
    assert rule.fired == 1
    gets = fault_proxy.requests("GET", blob_re(layer.digest))
    assert [e.range for e in gets] == [None, f"bytes={cut}-"]  # a FIN loses nothing
    assert gets[1].status == 206
    assert_pulled(out, "v1", image, result)


def test_pull_resumes_from_a_server_that_ignores_range(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(403)
    repo = seed_registry(registry, "faults/ignore-range", image, tmp_path)
    layer = layers_of(image)[0]
    reset = fault_proxy.add_rule("GET", blob_re(layer.digest), reset_after(layer.size // 2))
    ignored = fault_proxy.add_rule("GET", blob_re(layer.digest), ignore_range())
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path))
    assert (reset.fired, ignored.fired) == (1, 1)
    gets = fault_proxy.requests("GET", blob_re(layer.digest))
    assert len(gets) == 2
    assert range_start(gets[1]) > 0
    assert gets[1].status == 200  # the whole blob again: its first N bytes were skipped
    assert_pulled(out, "v1", image, result)


# -- pulls: error answers and connection failures are retried --------------------------


def test_pull_retries_5xx_on_manifest_and_blobs(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(404)
    repo = seed_registry(registry, "faults/5xx", image, tmp_path)
    first, second = layers_of(image)
    for code in (500, 502, 503):
        fault_proxy.add_rule("GET", r"/manifests/v1$", status(code))
    fault_proxy.add_rule("GET", blob_re(first.digest), status(503), times=2)
    fault_proxy.add_rule("GET", blob_re(second.digest), status(502))
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path, retry_times=3))
    assert [e.status for e in fault_proxy.requests("GET", r"/manifests/v1$")] \
        == [500, 502, 503, 200]
    assert [e.status for e in fault_proxy.requests("GET", blob_re(first.digest))] \
        == [503, 503, 200]
    assert [e.status for e in fault_proxy.requests("GET", blob_re(second.digest))] \
        == [502, 200]
    assert_pulled(out, "v1", image, result)


def test_manifest_5xx_beyond_the_retry_budget_is_a_typed_error_and_writes_nothing(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(405)
    repo = seed_registry(registry, "faults/5xx-budget-manifest", image, tmp_path)
    layout, before = prepared_layout(tmp_path)
    fault_proxy.add_rule("GET", r"/manifests/v1$", status(503), times=None)
    with pytest.raises(RegistryError) as failed:
        copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{layout}:v1",
             src_opts=plain(tmp_path, retry_times=1))
    assert failed.value.status == 503
    assert len(fault_proxy.requests("GET", r"/manifests/v1$")) == 2  # one try, one retry
    assert snapshot(layout) == before


@pytest.mark.parametrize("fault", ["503", "reset"])
def test_blob_failure_beyond_the_retry_budget_is_a_typed_error_and_writes_nothing(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path,
        fault: str) -> None:
    image = big_image(406)
    repo = seed_registry(registry, f"faults/budget-blob-{fault}", image, tmp_path)
    layer = layers_of(image)[1]
    layout, before = prepared_layout(tmp_path)
    action = status(503) if fault == "503" else reset_request()
    rule = fault_proxy.add_rule("GET", blob_re(layer.digest), action, times=None)
    with pytest.raises((RegistryError, NetworkError)) as failed:
        copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{layout}:v1",
             src_opts=plain(tmp_path, retry_times=1), blob_retries=0)
    if fault == "503":
        assert isinstance(failed.value, RegistryError)
        assert failed.value.status == 503
    else:
        assert isinstance(failed.value, NetworkError)
    assert rule.fired == 2  # one try, one retry
    assert snapshot(layout) == before  # no index entry, no blob, no temporary file


@pytest.mark.parametrize("fault", ["503-answer", "reset-mid-body"])
def test_blob_copied_again_when_the_request_retries_are_spent(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path,
        fault: str) -> None:
    """``CopyOptions.blob_retries``: a transient failure that outlived the request's own
    retries (a 5xx answer, a body that broke off) starts the blob again."""
    image = big_image(407)
    repo = seed_registry(registry, f"faults/blob-retries-{fault}", image, tmp_path)
    layer = layers_of(image)[0]
    action = status(503) if fault == "503-answer" else reset_after(layer.size // 2)
    rule = fault_proxy.add_rule("GET", blob_re(layer.digest), action, times=2)
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path, retry_times=1), blob_retries=1)
    assert rule.fired == 2
    assert_pulled(out, "v1", image, result)


def test_pull_honours_retry_after_on_429(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(408)
    repo = seed_registry(registry, "faults/429", image, tmp_path)
    fault_proxy.add_rule("GET", r"/manifests/v1$", status(429, {"Retry-After": "1"}))
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path, retry_max_delay=5.0))
    limited, retried = fault_proxy.requests("GET", r"/manifests/v1$")
    assert (limited.status, retried.status) == (429, 200)
    assert retried.time - limited.time >= 0.9  # it waited as the registry asked
    assert_pulled(out, "v1", image, result)


def test_429_forever_is_too_many_requests_error(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(409)
    repo = seed_registry(registry, "faults/429-forever", image, tmp_path)
    layout, before = prepared_layout(tmp_path)
    rule = fault_proxy.add_rule("GET", r"/blobs/sha256:", status(429, {"Retry-After": "1"}),
                                times=None)
    with pytest.raises(TooManyRequestsError) as failed:
        # retry_max_delay caps the wait, to keep the test fast
        copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{layout}:v1",
             src_opts=plain(tmp_path, retry_times=1, retry_max_delay=0.05), blob_retries=0)
    assert failed.value.status == 429
    assert failed.value.retry_after == 1
    assert rule.fired >= 2
    assert snapshot(layout) == before


def test_pull_retries_connections_reset_before_an_answer(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(410)
    repo = seed_registry(registry, "faults/reset-request", image, tmp_path)
    rule = fault_proxy.add_rule("GET", r"/blobs/sha256:", reset_request(), times=2)
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path))
    assert rule.fired == 2
    log = fault_proxy.requests("GET", r"/blobs/sha256:")
    reset = [i for i, e in enumerate(log) if e.rule == rule.name]
    assert len(reset) == 2
    for i in reset:
        assert log[i].status is None  # no answer at all
        assert any(e.path == log[i].path and e.status == 200 for e in log[i + 1:])
    assert_pulled(out, "v1", image, result)


def test_slow_body_completes_within_a_per_read_timeout(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(411)
    repo = seed_registry(registry, "faults/slow", image, tmp_path)
    layer = layers_of(image)[0]
    # ~11 pieces 0.1 s apart: longer in total than the 1 s timeout, never idle that long
    rule = fault_proxy.add_rule("GET", blob_re(layer.digest), slow(0.1, chunk=32 << 10))
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=plain(tmp_path, timeout=1.0))
    assert rule.fired == 1
    [get] = fault_proxy.requests("GET", blob_re(layer.digest))  # no resume was needed
    assert get.wait().body_bytes == layer.size
    assert_pulled(out, "v1", image, result)


# -- pushes ----------------------------------------------------------------------------


def _upload_put_re(digest: Digest) -> str:
    return rf"/blobs/uploads/.*[?&]digest={digest.algorithm}(?::|%3A){digest.encoded}"


def test_push_sends_a_blob_again_after_a_reset_during_its_put(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    """The proxy cuts the connection right after the PUT's headers, while the client is
    sending the layer (the proxy cannot cut a request body after N bytes)."""
    image = big_image(420)
    repo = "faults/push-reset"
    layer = layers_of(image)[0]
    rule = fault_proxy.add_rule("PUT", _upload_put_re(layer.digest), reset_request())
    result = copy(image.reference, f"docker://{fault_proxy.host}/{repo}:v1",
                  dst_opts=plain(tmp_path))
    assert result.manifest_digest == image.digest
    assert rule.fired == 1
    puts = fault_proxy.requests("PUT", _upload_put_re(layer.digest))
    assert [e.status for e in puts] == [None, 201]
    # the broken upload was cancelled, then the blob was sent again in a new one
    deletes = fault_proxy.requests("DELETE", r"/blobs/uploads/")
    assert len(deletes) == 1
    assert deletes[0].path.split("?")[0] == puts[0].path.split("?")[0]
    assert deletes[0].status in (200, 202, 204)
    assert_upload_gone(registry, deletes[0].path)
    assert len(fault_proxy.requests("POST", r"/blobs/uploads/")) == len(all_blobs(image)) + 1
    assert_pushed(registry, repo, image, tmp_path)


def test_push_failure_without_retries_is_typed_and_leaves_no_tag_or_upload(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(421)
    repo = "faults/push-fail"
    layer = layers_of(image)[1]
    fault_proxy.add_rule("PUT", _upload_put_re(layer.digest), reset_request(), times=None)
    with pytest.raises((NetworkError, RegistryError)):
        copy(image.reference, f"docker://{fault_proxy.host}/{repo}:v1",
             dst_opts=plain(tmp_path, retry_times=0), blob_retries=0, jobs=1)
    assert registry.tags(repo) == []
    assert not registry.manifest_exists(repo, str(image.digest))
    assert not registry.blob_exists(repo, str(layer.digest))
    assert open_uploads(registry, repo) == []
    deletes = fault_proxy.requests("DELETE", r"/blobs/uploads/")
    assert deletes
    for entry in deletes:
        assert_upload_gone(registry, entry.path)
    assert not fault_proxy.requests("PUT", r"/manifests/")


@pytest.mark.parametrize("fault", ["500", "416", "reset"])
def test_chunked_push_survives_a_failed_chunk(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path,
        fault: str) -> None:
    image = big_image(422 + (fault == "reset"), layers=1)
    repo = f"faults/chunked-{fault}"
    chunk = 64 << 10
    assert layers_of(image)[0].size > 3 * chunk
    action = {"500": status(500), "416": status(416)}.get(fault, reset_request())
    rule = fault_proxy.add_rule("PATCH", r"/blobs/uploads/", action, skip=2)  # the 3rd chunk
    result = copy(image.reference, f"docker://{fault_proxy.host}/{repo}:v1",
                  dst_opts=plain(tmp_path, upload_chunk_size=chunk), jobs=1)
    assert result.manifest_digest == image.digest
    assert rule.fired == 1
    log = fault_proxy.requests()
    failed = next(i for i, e in enumerate(log) if e.rule == rule.name)
    assert log[failed].content_range == f"{2 * chunk}-{3 * chunk - 1}"
    after = log[failed + 1:]
    resynced = next((i for i, e in enumerate(after)
                     if e.method == "GET" and "/blobs/uploads/" in e.path), None)
    restarted = next((i for i, e in enumerate(after)
                      if e.method == "POST" and "/blobs/uploads/" in e.path), None)
    assert resynced is not None or restarted is not None
    next_patch = next(e for e in after if e.method == "PATCH")
    if resynced is not None and (restarted is None or resynced < restarted):
        assert after[resynced].status == 204
        # the registry said how much it had: the failed chunk is sent again, not the blob
        assert next_patch.content_range == log[failed].content_range
    else:
        # the upload was cancelled and the blob started again in a new one
        [delete] = fault_proxy.requests("DELETE", r"/blobs/uploads/")
        assert upload_id(delete.path) == upload_id(log[failed].path)
        assert delete.status == 204, (
            f"cancelling the upload was refused (HTTP {delete.status}): "
            f"{open_uploads(registry, repo)} left open")
        assert next_patch.content_range is not None
        assert next_patch.content_range.startswith("0-")
    assert_pushed(registry, repo, image, tmp_path)


def test_streamed_push_failing_at_its_final_put_leaves_no_upload_open(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    """Recompressed layers go up in one streamed PATCH and a final PUT (their digest is
    known only at the end); when that PUT fails, the upload is cancelled -- the session
    holding the PATCHed data, not a stale view of it -- and the blob is sent again."""
    image = big_image(424, layers=1)
    repo = "faults/streamed-put"
    rule = fault_proxy.add_rule("PUT", r"/blobs/uploads/", status(500))
    result = copy(image.reference, f"docker://{fault_proxy.host}/{repo}:v1",
                  dst_opts=plain(tmp_path, retry_times=0), jobs=1, compress=True,
                  compression_format=Compression.ZSTD)
    assert rule.fired == 1
    log = fault_proxy.requests()
    failed = next(i for i, e in enumerate(log) if e.rule == rule.name)
    assert any(e.method == "PATCH" and upload_id(e.path) == upload_id(log[failed].path)
               for e in log[:failed])  # the data went up before the PUT failed
    [delete] = fault_proxy.requests("DELETE", r"/blobs/uploads/")
    assert upload_id(delete.path) == upload_id(log[failed].path)
    assert delete.status == 204, (
        f"cancelling the upload was refused (HTTP {delete.status}): "
        f"{open_uploads(registry, repo)} left open")
    assert open_uploads(registry, repo) == []
    assert registry.manifest_exists(repo, str(result.manifest_digest))
    back = tmp_path / "pulled-back"
    pulled = copy(f"docker://{registry.host}/{repo}:v1", f"oci:{back}:v1",
                  src_opts=plain(tmp_path))
    assert pulled.manifest_digest == result.manifest_digest
    validate_image(f"oci:{back}:v1")


# -- the partial-blob cache across runs ------------------------------------------------


def _cache_options(tmp_path: Path, cache: Path, **kw: Any) -> OpenOptions:
    return plain(tmp_path, partial_blob_dir=str(cache), partial_blob_min_size=0, **kw)


def _partial_path(cache: Path, digest: Digest) -> Path:
    return cache / f"{digest.algorithm}-{digest.encoded}.partial"


def _fail_half_way(proxy: FaultProxy, src: str, tmp_path: Path, cache: Path,
                   image: BuiltImage, layer: Descriptor) -> Path:
    """A pull that dies half way through ``layer``; return its partial file."""
    rule = proxy.add_rule("GET", blob_re(layer.digest), reset_after(layer.size // 2),
                          times=None)
    with pytest.raises(NetworkError):
        copy(src, f"oci:{tmp_path}/failed:v1",
             src_opts=_cache_options(tmp_path, cache, retry_times=0), blob_retries=0)
    assert rule.fired >= 1
    partial = _partial_path(cache, layer.digest)
    assert partial.is_file()
    size = partial.stat().st_size
    assert 0 < size <= layer.size // 2
    assert partial.read_bytes() == blob_bytes(image, layer.digest)[:size]
    proxy.clear_rules()
    proxy.clear_log()
    return partial


def test_partial_blob_cache_resumes_a_failed_pull_in_the_next_run(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(430)
    repo = seed_registry(registry, "faults/partial-resume", image, tmp_path)
    layer = layers_of(image)[0]
    cache = tmp_path / "partial-blobs"
    src = f"docker://{fault_proxy.host}/{repo}:v1"
    partial = _fail_half_way(fault_proxy, src, tmp_path, cache, image, layer)
    have = partial.stat().st_size
    out = tmp_path / "out"
    result = copy(src, f"oci:{out}:v1", src_opts=_cache_options(tmp_path, cache))
    [get] = fault_proxy.requests("GET", blob_re(layer.digest))
    assert get.range == f"bytes={have}-"  # only the rest was asked for
    assert get.status == 206
    assert_pulled(out, "v1", image, result)
    assert not partial.exists()
    assert list(cache.glob("*.partial")) == []


def test_corrupt_partial_blob_fails_once_and_is_removed(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(431)
    repo = seed_registry(registry, "faults/partial-corrupt", image, tmp_path)
    layer = layers_of(image)[1]
    cache = tmp_path / "partial-blobs"
    src = f"docker://{fault_proxy.host}/{repo}:v1"
    partial = _fail_half_way(fault_proxy, src, tmp_path, cache, image, layer)
    have = partial.stat().st_size
    good = blob_bytes(image, layer.digest)[:have]
    garbage = bytes(b ^ 0x5A for b in good)  # same size, every byte wrong
    partial.write_bytes(garbage)
    layout, before = prepared_layout(tmp_path)
    with pytest.raises(DigestMismatchError):
        copy(src, f"oci:{layout}:v1", src_opts=_cache_options(tmp_path, cache))
    [get] = fault_proxy.requests("GET", blob_re(layer.digest))
    assert get.range == f"bytes={have}-"  # the garbage prefix was used...
    assert not partial.exists()  # ...and then thrown away
    assert snapshot(layout) == before  # nothing corrupt was written
    fault_proxy.clear_log()
    result = copy(src, f"oci:{layout}:v1", src_opts=_cache_options(tmp_path, cache))
    [get] = fault_proxy.requests("GET", blob_re(layer.digest))
    assert get.range is None
    assert_pulled(layout, "v1", image, result)
    assert not partial.exists()


def test_partial_blob_longer_than_the_blob_is_discarded(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(432)
    repo = seed_registry(registry, "faults/partial-long", image, tmp_path)
    layer = layers_of(image)[0]
    cache = tmp_path / "partial-blobs"
    cache.mkdir()
    partial = _partial_path(cache, layer.digest)
    partial.write_bytes(blob_bytes(image, layer.digest) + os.urandom(100))
    out = tmp_path / "out"
    result = copy(f"docker://{fault_proxy.host}/{repo}:v1", f"oci:{out}:v1",
                  src_opts=_cache_options(tmp_path, cache))
    [get] = fault_proxy.requests("GET", blob_re(layer.digest))
    assert get.range is None  # fetched whole
    assert_pulled(out, "v1", image, result)
    assert not partial.exists()


def test_cancelled_pull_keeps_the_partial_blob_and_the_next_run_resumes(
        registry: RegistryServer, fault_proxy: FaultProxy, tmp_path: Path) -> None:
    image = big_image(433)
    repo = seed_registry(registry, "faults/partial-cancel", image, tmp_path)
    layer = layers_of(image)[0]
    cache = tmp_path / "partial-blobs"
    src = f"docker://{fault_proxy.host}/{repo}:v1"
    # the body arrives in 32 KiB pieces, so that progress is reported along the way
    fault_proxy.add_rule("GET", blob_re(layer.digest), slow(0.01, chunk=32 << 10))
    cancel = threading.Event()
    seen: list[int] = []

    def progress(event: ProgressEvent) -> None:
        if event.kind is ProgressKind.PROGRESS and event.descriptor.digest == layer.digest:
            seen.append(event.offset)
            if event.offset >= 64 << 10:
                cancel.set()

    layout, before = prepared_layout(tmp_path)
    with pytest.raises(CopyCancelledError):
        copy(src, f"oci:{layout}:v1", src_opts=_cache_options(tmp_path, cache),
             progress=progress, cancel=cancel, jobs=1)
    assert cancel.is_set()
    assert snapshot(layout) == before
    partial = _partial_path(cache, layer.digest)
    assert partial.is_file()  # interrupted: kept for the next run
    have = partial.stat().st_size
    assert 0 < have < layer.size, (have, layer.size, seen)
    assert partial.read_bytes() == blob_bytes(image, layer.digest)[:have]
    fault_proxy.clear_rules()
    fault_proxy.clear_log()
    result = copy(src, f"oci:{layout}:v1", src_opts=_cache_options(tmp_path, cache))
    [get] = fault_proxy.requests("GET", blob_re(layer.digest))
    assert get.range == f"bytes={have}-"
    assert_pulled(layout, "v1", image, result)
    assert not partial.exists()


# -- nothing corrupt is ever written ---------------------------------------------------


def test_corrupt_blob_behind_resets_is_rejected_and_nothing_written(
        registry_factory: Any, proxy_for: Any, tmp_path: Path) -> None:
    reg = registry_factory()
    image = big_image(440)
    repo = seed_registry(reg, "faults/corrupt", image, tmp_path)
    layer = layers_of(image)[0]
    data = (reg.root / "docker/registry/v2/blobs" / layer.digest.algorithm
            / layer.digest.encoded[:2] / layer.digest.encoded / "data")
    blob = bytearray(data.read_bytes())
    blob[len(blob) * 3 // 4] ^= 0xFF  # after the resets: only a resumed range carries it
    data.write_bytes(bytes(blob))
    proxy = proxy_for(reg)
    rule = proxy.add_rule("GET", blob_re(layer.digest), reset_after(layer.size // 4), times=2)
    layout, before = prepared_layout(tmp_path)
    with pytest.raises(DigestMismatchError):
        copy(f"docker://{proxy.host}/{repo}:v1", f"oci:{layout}:v1",
             src_opts=plain(tmp_path))
    assert rule.fired == 2
    gets = proxy.requests("GET", blob_re(layer.digest))
    assert len(gets) == 3
    assert all(range_start(e) > 0 for e in gets[1:])  # assembled from resumed ranges
    assert snapshot(layout) == before
    assert not (layout / "blobs" / "sha256" / layer.digest.encoded).exists()
