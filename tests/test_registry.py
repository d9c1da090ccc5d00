"""The docker:// transport against the real distribution registry (tests/registry.py):
pull and push of every manifest kind, verification, errors, tags, delete, referrers,
mounts, chunked uploads, TLS, basic and bearer-token authentication, registries.conf."""

from __future__ import annotations

import http.server
import json
import logging
import os
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import attrs
import pytest

from oci_image.copy import MultiArch
from oci_image.errors import (
    AccessDeniedError,
    AuthenticationError,
    BlockedRegistryError,
    DigestMismatchError,
    InvalidReferenceError,
    ManifestNotFoundError,
    ManifestUnknownError,
    NetworkError,
    RegistryError,
)
from oci_image.interfaces import OpenOptions, RegistryOptions
from oci_image.spec import Compression, Digest, ImageIndex, ImageManifest, MediaType, Platform
from oci_image.sysconfig.auth import Credentials
from oci_image.testing.random import random_image, random_index
from oci_image.transports import parse_image_name
from oci_image.transports.docker import DockerReference, DockerSource
from oci_image.validate import validate_image
from tests.faultproxy import FaultProxy, RedirectTarget, redirect, status
from tests.registry import RegistryServer, TokenServer, copy, layers_of, plain, reg_options

ROOT = Path(__file__).resolve().parent.parent










# -- references ----------------------------------------------------------------------


def test_reference_normalisation() -> None:
    ref = parse_image_name("docker://busybox")
    assert isinstance(ref, DockerReference)
    assert str(ref.ref) == "docker.io/library/busybox:latest"
    assert ref.string_within_transport() == "//busybox:latest"
    assert parse_image_name("docker://localhost:5000/a/b@sha256:" + "0" * 64) \
        .docker_reference() is not None
    with pytest.raises(InvalidReferenceError):
        parse_image_name("docker:busybox")
    with pytest.raises(InvalidReferenceError):
        parse_image_name("docker://a/b:1@sha256:" + "0" * 64)


# -- pull and push -------------------------------------------------------------------


@pytest.mark.parametrize("oci", [True, False], ids=["oci", "schema2"])
def test_push_pull_round_trip(registry: RegistryServer, tmp_path: Path, oci: bool) -> None:
    image = random_image(seed=301 + oci, oci=oci, layers=3)
    dest = f"docker://{registry.host}/roundtrip/{'oci' if oci else 's2'}:v1"
    pushed = copy(image.reference, dest, dst_opts=plain(tmp_path))
    assert pushed.manifest_digest == image.digest
    assert registry.manifest_exists(f"roundtrip/{'oci' if oci else 's2'}", str(image.digest))
    # dir: keeps the manifest type (oci: would convert schema2 to OCI, as skopeo does)
    pulled = copy(dest, f"dir:{tmp_path}/pulled", src_opts=plain(tmp_path))
    assert pulled.manifest_digest == image.digest
    validate_image(parse_image_name(f"dir:{tmp_path}/pulled"))
    with DockerSource(parse_image_name(dest), plain(tmp_path)) as src:  # type: ignore[arg-type]
        raw, media_type = src.get_manifest()
    assert Digest.from_bytes(raw) == image.digest
    assert media_type == (MediaType.OCI_MANIFEST if oci else MediaType.DOCKER_MANIFEST)


def test_multi_arch_all_and_by_digest(registry: RegistryServer, tmp_path: Path) -> None:
    index = random_index(seed=31)
    dest = f"docker://{registry.host}/multi/app:v1"
    result = copy(index.reference, dest, dst_opts=plain(tmp_path), multi_arch=MultiArch.ALL)
    assert result.manifest_digest == index.digest
    parsed = ImageIndex.from_json(index.manifest)
    for entry in parsed.manifests:
        assert registry.manifest_exists("multi/app", str(entry.digest))
    by_digest = f"docker://{registry.host}/multi/app@{index.digest}"
    pulled = copy(by_digest, f"oci:{tmp_path}/l:all", src_opts=plain(tmp_path),
                  multi_arch=MultiArch.ALL)
    assert pulled.manifest_digest == index.digest
    arm = copy(dest, f"oci:{tmp_path}/l:arm", src_opts=plain(tmp_path),
               platform=Platform("linux", "arm64", "v8"))
    assert arm.manifest_digest == parsed.manifests[1].digest


def test_zstd_layers(registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=33, compression=Compression.ZSTD)
    dest = f"docker://{registry.host}/zstd/app:v1"
    assert copy(image.reference, dest, dst_opts=plain(tmp_path)).manifest_digest == image.digest
    assert copy(dest, f"oci:{tmp_path}/z:x", src_opts=plain(tmp_path)).manifest_digest \
        == image.digest


def test_recompressing_push_uploads_with_digest_known_at_the_end(
        registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=34)
    dest = f"docker://{registry.host}/recompress/app:zstd"
    mark = registry.log_mark()
    result = copy(image.reference, dest, dst_opts=plain(tmp_path),
                  compression_format=Compression.ZSTD, compress=True)
    methods = [(r.method, r.path_only.rsplit("/", 2)[-2]) for r in registry.requests(mark)]
    assert ("PATCH", "uploads") in methods  # streamed: the digest was not known up front
    copy(dest, f"oci:{tmp_path}/r:x", src_opts=plain(tmp_path))
    validate_image(parse_image_name(f"oci:{tmp_path}/r:x"))
    assert result.manifest_digest != image.digest


def test_chunked_upload(registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=35, layers=1, files_per_layer=40, max_file_size=32 << 10)
    dest = f"docker://{registry.host}/chunked/app:v1"
    mark = registry.log_mark()
    copy(image.reference, dest, dst_opts=plain(tmp_path, upload_chunk_size=64 << 10))
    patches = [r for r in registry.requests(mark) if r.method == "PATCH"]
    layer_size = layers_of(image)[0].size
    assert len(patches) >= layer_size // (64 << 10)
    assert copy(dest, f"oci:{tmp_path}/c:x", src_opts=plain(tmp_path)).manifest_digest \
        == image.digest


def test_corrupt_blob_in_registry_is_rejected_and_nothing_written(
        registry_factory: Any, tmp_path: Path) -> None:
    reg = registry_factory()
    image = random_image(seed=36)
    dest = f"docker://{reg.host}/corrupt/app:v1"
    copy(image.reference, dest, dst_opts=plain(tmp_path))
    layer = layers_of(image)[0].digest
    data = reg.root / "docker/registry/v2/blobs/sha256" / layer.encoded[:2] / layer.encoded / "data"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    layout = tmp_path / "out"
    with pytest.raises(DigestMismatchError):
        copy(dest, f"oci:{layout}:x", src_opts=plain(tmp_path))
    blobs = layout / "blobs" / "sha256"
    assert not (blobs / layer.encoded).exists()
    assert not any(p.name.startswith(".") for p in blobs.iterdir()) if blobs.exists() else True


def test_missing_things_are_typed_errors(registry: RegistryServer, tmp_path: Path) -> None:
    copy(random_image(seed=37).reference, f"docker://{registry.host}/exists/app:v1",
         dst_opts=plain(tmp_path))
    with pytest.raises(ManifestUnknownError) as missing_tag:
        copy(f"docker://{registry.host}/exists/app:nope", f"oci:{tmp_path}/x:x",
             src_opts=plain(tmp_path))
    assert missing_tag.value.status == 404
    assert "MANIFEST_UNKNOWN" in missing_tag.value.codes
    assert isinstance(missing_tag.value, ManifestNotFoundError)
    with pytest.raises(RegistryError) as missing_repo:
        copy(f"docker://{registry.host}/no/such/repo:v1", f"oci:{tmp_path}/y:x",
             src_opts=plain(tmp_path))
    assert missing_repo.value.status == 404
    with pytest.raises(NetworkError):
        copy("docker://127.0.0.1:1/x:y", f"oci:{tmp_path}/z:x",
             src_opts=plain(tmp_path, retry_times=1))


# -- tags, delete, referrers, inspect ------------------------------------------------


def test_list_tags_against_the_registry(registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=38)
    for tag in ("a", "b", "c"):
        copy(image.reference, f"docker://{registry.host}/tags/app:{tag}", dst_opts=plain(tmp_path))
    ref = parse_image_name(f"docker://{registry.host}/tags/app")
    assert isinstance(ref, DockerReference)
    assert sorted(ref.list_tags(plain(tmp_path))) == ["a", "b", "c"]


class _PagingRegistry(http.server.BaseHTTPRequestHandler):
    """distribution 2.8 ignores ``n`` on /tags/list (3.0 paginates): this stand-in
    serves only what pagination needs, ``Link: <...>; rel="next"`` pages."""

    TAGS = [f"t{i:02d}" for i in range(7)]
    seen: list[str] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/v2/":
            body, link = b"{}", ""
        elif url.path == "/v2/pag/app/tags/list":
            query = urllib.parse.parse_qs(url.query)
            n = int(query.get("n", ["3"])[0])
            last = query.get("last", [""])[0]
            rest = [t for t in self.TAGS if t > last]
            page, more = rest[:n], rest[n:]
            body = json.dumps({"name": "pag/app", "tags": page}).encode()
            link = f'</v2/pag/app/tags/list?n={n}&last={page[-1]}>; rel="next"' if more else ""
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(body)


def test_list_tags_follows_link_pagination(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PagingRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ref = parse_image_name(f"docker://127.0.0.1:{server.server_address[1]}/pag/app")
        assert isinstance(ref, DockerReference)
        _PagingRegistry.seen = []
        assert ref.list_tags(plain(tmp_path), page_size=2) == _PagingRegistry.TAGS
        pages = [p for p in _PagingRegistry.seen if "/tags/list" in p]
        assert len(pages) == 4
        assert "last=t05" in pages[-1]
    finally:
        server.shutdown()
        server.server_close()


def test_delete_by_tag(registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=39)
    dest = f"docker://{registry.host}/delete/app:v1"
    copy(image.reference, dest, dst_opts=plain(tmp_path))
    ref = parse_image_name(dest)
    assert isinstance(ref, DockerReference)
    ref.delete(plain(tmp_path))
    assert not registry.manifest_exists("delete/app", str(image.digest))
    with pytest.raises(ManifestUnknownError):
        copy(dest, f"oci:{tmp_path}/d:x", src_opts=plain(tmp_path))


def test_referrers_with_tag_schema_fallback(registry: RegistryServer, tmp_path: Path) -> None:
    from oci_image.build import BuiltImage, ImageBuilder

    image = random_image(seed=40)
    dest = f"docker://{registry.host}/refs/app:v1"
    copy(image.reference, dest, dst_opts=plain(tmp_path))
    builder = ImageBuilder(platform=Platform("linux", "amd64"))
    builder.add_layer(b"signature bytes", compression=Compression.NONE,
                      media_type="application/vnd.example.signature")
    builder.artifact(artifact_type="application/vnd.example.sig",
                     config_media_type=MediaType.OCI_EMPTY, config=b"{}")
    plain_sig = builder.build()
    doc = json.loads(plain_sig.manifest)
    doc["subject"] = image.descriptor.to_json()
    sig = BuiltImage(manifest=json.dumps(doc).encode(), media_type=plain_sig.media_type,
                     blobs=plain_sig.blobs)
    copy(sig.reference, f"docker://{registry.host}/refs/app@{sig.digest}",
         dst_opts=plain(tmp_path))
    fallback = f"sha256-{image.digest.encoded}"
    assert fallback in registry.tags("refs/app")  # registry 2.8 has no referrers API
    ref = parse_image_name(dest)
    assert isinstance(ref, DockerReference)
    found = ref.referrers(options=plain(tmp_path))
    assert [d.digest for d in found] == [sig.digest]
    assert found[0].artifact_type == "application/vnd.example.sig"
    assert ref.referrers(options=plain(tmp_path), artifact_type="application/x-other") == []


def test_cli_inspect_list_tags_and_delete(registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=41)
    dest = f"docker://{registry.host}/cli/app:v1"
    copy(image.reference, dest, dst_opts=plain(tmp_path))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "oci_image", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    out = cli("inspect", "--tls-verify=false", dest)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["Digest"] == str(image.digest)
    assert info["RepoTags"] == ["v1"]
    out = cli("list-tags", "--tls-verify=false", f"docker://{registry.host}/cli/app")
    assert json.loads(out.stdout) == {"Repository": f"{registry.host}/cli/app", "Tags": ["v1"]}
    out = cli("delete", "--tls-verify=false", dest)
    assert out.returncode == 0, out.stderr
    out = cli("inspect", "--tls-verify=false", dest)
    assert out.returncode == 1
    assert "MANIFEST_UNKNOWN" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# -- cross-repository mount ----------------------------------------------------------


def test_cross_repository_mount(registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=42, layers=3)
    copy(image.reference, f"docker://{registry.host}/mount/source:v1", dst_opts=plain(tmp_path))
    mark = registry.log_mark()
    copy(f"docker://{registry.host}/mount/source:v1",
         f"docker://{registry.host}/mount/target:v1", src_opts=plain(tmp_path),
         dst_opts=plain(tmp_path))
    records = registry.requests(mark, min_count=5)
    mounts = [r for r in records if r.method == "POST" and "mount=" in r.path]
    assert len(mounts) == 4  # three layers and the config
    assert all((r.status == 201 and "from=mount%2Fsource" in r.path.replace("/", "%2F"))
               or "from=mount/source" in r.path for r in mounts)
    assert not [r for r in records if r.method in ("PUT", "PATCH") and "/blobs/" in r.path]
    for layer in layers_of(image):
        assert registry.blob_exists("mount/target", str(layer.digest))


# -- TLS and basic auth --------------------------------------------------------------


def test_tls_basic_auth(tls_registry: RegistryServer, tmp_path: Path) -> None:
    assert tls_registry.username
    assert tls_registry.password
    assert tls_registry.certs_dir
    creds = Credentials(tls_registry.username, tls_registry.password)
    image = random_image(seed=43)
    dest = f"docker://{tls_registry.host}/tls/app:v1"
    ok = reg_options(tmp_path, credentials=creds, cert_dir=str(tls_registry.certs_dir))
    assert copy(image.reference, dest, dst_opts=ok).manifest_digest == image.digest
    by_certs_d = reg_options(tmp_path, credentials=creds,
                             certs_d_dirs=(str(tls_registry.certs_d_root),))
    assert copy(dest, f"oci:{tmp_path}/t:x", src_opts=by_certs_d).manifest_digest == image.digest
    # an unknown CA is refused at once (no retries), and names the problem
    with pytest.raises(NetworkError, match=r"(?i)certificate"):
        copy(dest, f"oci:{tmp_path}/u:x", src_opts=reg_options(tmp_path, credentials=creds))
    # --tls-verify=false skips verification (still HTTPS)
    unverified = reg_options(tmp_path, credentials=creds, tls_verify=False)
    assert copy(dest, f"oci:{tmp_path}/v:x", src_opts=unverified).manifest_digest == image.digest
    with pytest.raises(AuthenticationError) as no_creds:
        copy(dest, f"oci:{tmp_path}/w:x",
             src_opts=reg_options(tmp_path, cert_dir=str(tls_registry.certs_dir)))
    assert no_creds.value.status == 401
    wrong = Credentials(tls_registry.username, "not-the-password-xyzzy")
    with pytest.raises(AuthenticationError) as bad:
        copy(dest, f"oci:{tmp_path}/x:x",
             src_opts=reg_options(tmp_path, credentials=wrong,
                                  cert_dir=str(tls_registry.certs_dir)))
    assert "xyzzy" not in str(bad.value)
    assert "xyzzy" not in repr(wrong)


def test_credentials_from_auth_file(tls_registry: RegistryServer, tmp_path: Path) -> None:
    import base64

    assert tls_registry.username
    assert tls_registry.password
    auth = tmp_path / "auth.json"
    token = base64.b64encode(f"{tls_registry.username}:{tls_registry.password}".encode())
    auth.write_text(json.dumps({"auths": {f"{tls_registry.host}/authfile": {
        "auth": token.decode()}}}))
    image = random_image(seed=44)
    opts = reg_options(tmp_path, auth_file=str(auth), cert_dir=str(tls_registry.certs_dir))
    dest = f"docker://{tls_registry.host}/authfile/app:v1"
    assert copy(image.reference, dest, dst_opts=opts).manifest_digest == image.digest
    # the namespaced key does not apply to another repository
    with pytest.raises(AuthenticationError):
        copy(image.reference, f"docker://{tls_registry.host}/other/app:v1", dst_opts=opts)


# -- bearer tokens -------------------------------------------------------------------


def token_opts(tmp_path: Path, reg: RegistryServer, **kw: Any) -> OpenOptions:
    creds = Credentials(reg.username or "", reg.password or "")
    kw.setdefault("credentials", creds)
    return plain(tmp_path, **kw)


def test_token_flow_scopes_and_caching(token_registry: RegistryServer,
                                       token_issuer: TokenServer, tmp_path: Path) -> None:
    image = random_image(seed=45, layers=3)
    dest = f"docker://{token_registry.host}/team/app:v1"
    copy(image.reference, dest, dst_opts=token_opts(tmp_path, token_registry))
    pushes = [r for r in token_issuer.log if any("push" in s for s in r.scopes)]
    assert pushes
    assert all(r.basic_auth for r in pushes)
    # one token for the whole push, however many requests and threads
    assert len(token_issuer.log) == 1
    token_issuer.reset_log()
    copy(dest, f"oci:{tmp_path}/tok:x", src_opts=token_opts(tmp_path, token_registry))
    assert len(token_issuer.log) == 1
    assert token_issuer.log[0].scopes == ("repository:team/app:pull",)


def test_anonymous_pull_and_denied_push(token_registry: RegistryServer,
                                        token_issuer: TokenServer, tmp_path: Path) -> None:
    image = random_image(seed=46)
    public = f"docker://{token_registry.host}/public/app:v1"
    copy(image.reference, public, dst_opts=token_opts(tmp_path, token_registry))
    anonymous = plain(tmp_path)
    assert copy(public, f"oci:{tmp_path}/anon:x", src_opts=anonymous).manifest_digest \
        == image.digest
    assert any(not r.basic_auth for r in token_issuer.log)
    with pytest.raises(AuthenticationError):
        copy(image.reference, f"docker://{token_registry.host}/public/app:v2",
             dst_opts=anonymous)
    with pytest.raises(AccessDeniedError):
        copy(image.reference, f"docker://{token_registry.host}/denied/app:v1",
             dst_opts=token_opts(tmp_path, token_registry))


def test_wrong_password_and_expired_tokens(token_registry: RegistryServer,
                                           token_issuer: TokenServer, tmp_path: Path) -> None:
    image = random_image(seed=47)
    dest = f"docker://{token_registry.host}/team/exp:v1"
    bad = Credentials(token_registry.username or "", "wrong-password-plugh")
    with pytest.raises(AuthenticationError) as refused:
        copy(image.reference, dest, dst_opts=token_opts(tmp_path, token_registry,
                                                        credentials=bad))
    assert "plugh" not in str(refused.value)
    token_issuer.clock_offset = -600  # every token is already expired on arrival
    with pytest.raises(AuthenticationError):
        copy(image.reference, dest, dst_opts=token_opts(tmp_path, token_registry))
    # each request tries one fresh token, not a loop (a few blob requests run at once)
    assert 2 <= len(token_issuer.log) <= 12


def test_refresh_token_from_auth_file(token_registry: RegistryServer,
                                      token_issuer: TokenServer, tmp_path: Path) -> None:
    refresh = token_issuer._new_refresh_token(token_registry.username or "")
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {token_registry.host: {
        "auth": "PHRva2VuPjo=", "identitytoken": refresh}}}))  # "<token>:"
    image = random_image(seed=48)
    opts = plain(tmp_path, auth_file=str(auth))
    copy(image.reference, f"docker://{token_registry.host}/team/refresh:v1", dst_opts=opts)
    assert token_issuer.log
    assert all(r.refresh_token_used for r in token_issuer.log)
    assert all(r.method == "POST" for r in token_issuer.log)


def test_secrets_never_logged(token_registry: RegistryServer, token_issuer: TokenServer,
                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    opts = token_opts(tmp_path, token_registry)
    copy(random_image(seed=49).reference, f"docker://{token_registry.host}/team/log:v1",
         dst_opts=opts)
    text = caplog.text + repr(opts)
    assert token_registry.password
    assert token_registry.password not in text
    assert "eyJ" not in text  # no JWT (issued tokens all start with a base64 '{"')
    assert "Authorization" not in text


def test_no_credentials_over_plain_http_unless_insecure(
        token_registry: RegistryServer, token_issuer: TokenServer, tmp_path: Path) -> None:
    # the token registry speaks plain HTTP: without tls_verify=False we must not use it
    opts = reg_options(tmp_path, credentials=Credentials(token_registry.username or "",
                                                         token_registry.password or ""),
                       retry_times=0)
    with pytest.raises(NetworkError):
        copy(random_image(seed=50).reference,
             f"docker://{token_registry.host}/team/plain:v1", dst_opts=opts)
    assert token_issuer.log == []


def test_redirect_to_another_host_gets_no_authorization(
        token_registry: RegistryServer, token_issuer: TokenServer, registry: RegistryServer,
        tmp_path: Path) -> None:
    """Blob GETs redirected to a 'storage backend' on another port: the backend (here a
    recorder in front of the plain registry, which holds the same image) must not see
    the credentials the registry got."""
    image = random_image(seed=51)
    copy(image.reference, f"docker://{token_registry.host}/team/redir:v1",
         dst_opts=token_opts(tmp_path, token_registry))
    copy(image.reference, f"docker://{registry.host}/team/redir:v1", dst_opts=plain(tmp_path))
    target = RedirectTarget(registry.url).start()
    proxy = FaultProxy(token_registry.url).start()
    try:
        proxy.add_rule("GET", r"/blobs/sha256:", redirect(target), times=None)
        src = f"docker://{proxy.host}/team/redir:v1"
        pulled = copy(src, f"oci:{tmp_path}/redir:x", src_opts=token_opts(tmp_path,
                                                                           token_registry))
        assert pulled.manifest_digest == image.digest
        assert target.log, "the blobs were not fetched through the redirect"
        assert not target.received_authorization
        assert any(e.has_authorization for e in proxy.log)
    finally:
        proxy.stop()
        target.stop()


def test_401_loop_ends(registry: RegistryServer, tmp_path: Path) -> None:
    proxy = FaultProxy(registry.url).start()
    try:
        proxy.add_rule("*", r"/v2/loop/", status(401, {"WWW-Authenticate":
                                                      'Basic realm="loop"'}), times=None)
        creds = Credentials("u", "p")
        with pytest.raises(AuthenticationError):
            copy(f"docker://{proxy.host}/loop/app:v1", f"oci:{tmp_path}/loop:x",
                 src_opts=plain(tmp_path, credentials=creds))
        assert len(proxy.requests(path="/v2/loop/")) <= 3
    finally:
        proxy.stop()


# -- registries.conf -----------------------------------------------------------------


def write_conf(tmp_path: Path, text: str) -> OpenOptions:
    conf = tmp_path / "registries.conf"
    conf.write_text(text)
    return reg_options(tmp_path)


def test_mirror_then_primary(registry: RegistryServer, tmp_path: Path) -> None:
    image = random_image(seed=52)
    other = random_image(seed=53)
    copy(image.reference, f"docker://{registry.host}/mirror/app:v1", dst_opts=plain(tmp_path))
    copy(other.reference, f"docker://{registry.host}/primary/app:v2", dst_opts=plain(tmp_path))
    opts = write_conf(tmp_path, f"""
[[registry]]
prefix = "example.test"
location = "{registry.host}/primary"
insecure = true
[[registry.mirror]]
location = "{registry.host}/mirror"
insecure = true
""")
    mark = registry.log_mark()
    got = copy("docker://example.test/app:v1", f"oci:{tmp_path}/m:x", src_opts=opts)
    assert got.manifest_digest == image.digest
    assert any("/v2/mirror/app/manifests/v1" in r.path for r in registry.requests(mark))
    # v2 is only on the primary: the mirror's 404 falls back to it
    got = copy("docker://example.test/app:v2", f"oci:{tmp_path}/m:y", src_opts=opts)
    assert got.manifest_digest == other.digest


def test_digest_only_mirror_is_skipped_for_tags(registry: RegistryServer,
                                                tmp_path: Path) -> None:
    image = random_image(seed=54)
    copy(image.reference, f"docker://{registry.host}/dmirror/app:v1", dst_opts=plain(tmp_path))
    copy(image.reference, f"docker://{registry.host}/dprimary/app:v1", dst_opts=plain(tmp_path))
    opts = write_conf(tmp_path, f"""
[[registry]]
prefix = "digest.test"
location = "{registry.host}/dprimary"
insecure = true
[[registry.mirror]]
location = "{registry.host}/dmirror"
insecure = true
pull-from-mirror = "digest-only"
""")
    mark = registry.log_mark()
    copy("docker://digest.test/app:v1", f"oci:{tmp_path}/d:x", src_opts=opts)
    paths = [r.path for r in registry.requests(mark)]
    assert not any("/v2/dmirror/" in p for p in paths)
    mark = registry.log_mark()
    copy(f"docker://digest.test/app@{image.digest}", f"oci:{tmp_path}/d:y", src_opts=opts)
    assert any("/v2/dmirror/" in r.path for r in registry.requests(mark))


def test_blocked_and_insecure_from_registries_conf(registry: RegistryServer,
                                                   tmp_path: Path) -> None:
    image = random_image(seed=55)
    opts = write_conf(tmp_path, f"""
[[registry]]
location = "{registry.host}"
insecure = true
[[registry]]
prefix = "{registry.host}/blocked"
location = "{registry.host}/blocked"
blocked = true
""")
    # insecure = true: plain HTTP without --tls-verify=false
    copy(image.reference, f"docker://{registry.host}/conf/app:v1", dst_opts=opts)
    with pytest.raises(BlockedRegistryError):
        copy(image.reference, f"docker://{registry.host}/blocked/app:v1", dst_opts=opts)
    with pytest.raises(BlockedRegistryError):
        copy(f"docker://{registry.host}/blocked/app:v1", f"oci:{tmp_path}/b:x", src_opts=opts)


def test_cli_login_logout(tls_registry: RegistryServer, tmp_path: Path) -> None:
    assert tls_registry.username
    assert tls_registry.password
    auth = tmp_path / "auth.json"

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "oci_image", *args], cwd=ROOT,
                              input=stdin, capture_output=True, text=True, timeout=60)

    bad = cli("login", "--authfile", str(auth), "--cert-dir", str(tls_registry.certs_dir),
              "-u", tls_registry.username, "--password-stdin", tls_registry.host,
              stdin="wrong-password\n")
    assert bad.returncode == 1
    assert not auth.exists()
    good = cli("login", "--authfile", str(auth), "--cert-dir", str(tls_registry.certs_dir),
               "-u", tls_registry.username, "--password-stdin", tls_registry.host,
               stdin=tls_registry.password + "\n")
    assert good.returncode == 0, good.stderr
    assert auth.stat().st_mode & 0o777 == 0o600
    assert tls_registry.password not in good.stderr + good.stdout
    got = cli("login", "--get-login", "--authfile", str(auth), tls_registry.host)
    assert got.stdout.strip() == tls_registry.username
    inspect = cli("inspect", "--authfile", str(auth), "--cert-dir",
                  str(tls_registry.certs_dir), f"docker://{tls_registry.host}/nothing/here:v1")
    assert "MANIFEST_UNKNOWN" in inspect.stderr or "NAME_UNKNOWN" in inspect.stderr
    out = cli("logout", "--authfile", str(auth), tls_registry.host)
    assert out.returncode == 0, out.stderr
    assert tls_registry.host not in json.loads(auth.read_text()).get("auths", {})


def test_options_repr_hides_secrets() -> None:
    opts = RegistryOptions(credentials=Credentials("user", "hunter2"), registry_token="tok123")
    assert "hunter2" not in repr(opts)
    assert "tok123" not in repr(opts)
    assert "hunter2" not in repr(attrs.evolve(opts))


class _MinChunkRegistry(http.server.BaseHTTPRequestHandler):
    """distribution 2.8 sends no ``OCI-Chunk-Min-Length``: this stand-in asks for
    256 KiB chunks and records the PATCH sizes (it stores nothing else)."""

    protocol_version = "HTTP/1.1"
    patches: list[int] = []
    received = bytearray()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._reply(200 if self.path == "/v2/" else 404)

    def do_HEAD(self) -> None:
        self._reply(404)

    def do_POST(self) -> None:
        type(self).received = bytearray()
        self._reply(202, {"Location": "/v2/min/app/blobs/uploads/u1",
                          "OCI-Chunk-Min-Length": str(256 << 10), "Range": "0-0"})

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).patches.append(len(body))
        type(self).received += body
        self._reply(202, {"Location": "/v2/min/app/blobs/uploads/u1",
                          "Range": f"0-{len(self.received) - 1}"})

    def do_PUT(self) -> None:
        digest = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)["digest"][0]
        ok = digest == str(Digest.from_bytes(bytes(self.received)))
        self._reply(201 if ok else 400, {"Docker-Content-Digest": digest})


def test_chunked_upload_honours_oci_chunk_min_length(tmp_path: Path) -> None:
    from oci_image.interfaces import BlobInfo
    from oci_image.spec import VerifyingReader

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MinChunkRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        data = bytes(range(256)) * 4096  # 1 MiB
        ref = parse_image_name(f"docker://127.0.0.1:{server.server_address[1]}/min/app:v1")
        _MinChunkRegistry.patches = []
        with ref.open_destination(plain(tmp_path, upload_chunk_size=64 << 10)) as dest:
            import io

            stored = dest.put_blob(VerifyingReader(io.BytesIO(data), None, None),
                                   BlobInfo("application/octet-stream"))
        assert stored.digest == Digest.from_bytes(data)
        assert _MinChunkRegistry.patches == [256 << 10] * 4
    finally:
        server.shutdown()
        server.server_close()


def test_scope_upgrade_on_insufficient_scope(token_registry: RegistryServer,
                                             token_issuer: TokenServer, tmp_path: Path) -> None:
    """A request made with too narrow a token: the registry's ``insufficient_scope``
    challenge names the scope it wants, and one more token request with it succeeds."""
    from oci_image.transports.docker._session import Session

    copy(random_image(seed=56).reference, f"docker://{token_registry.host}/team/wide:v1",
         dst_opts=token_opts(tmp_path, token_registry))
    token_issuer.reset_log()
    session = Session(token_opts(tmp_path, token_registry).registry)
    try:
        client = session.client(token_registry.host, "team/narrow")
        response = client.send("GET", "/v2/team/wide/tags/list",
                               scopes=frozenset({"repository:team/narrow:pull"}))
        assert response.status_code == 200
        assert json.loads(response.content)["tags"] == ["v1"]
    finally:
        session.close()
    requested = [set(r.scopes) for r in token_issuer.log]
    assert requested[0] == {"repository:team/narrow:pull"}
    assert "repository:team/wide:pull" in requested[-1]
    assert len(requested) == 2


class _EvilServer(http.server.BaseHTTPRequestHandler):
    """A host that is not the registry and asks for credentials with its own realm."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="evil"')
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_foreign_host_cannot_collect_credentials(registry: RegistryServer,
                                                   tmp_path: Path) -> None:
    """The registry challenges nobody (its ping answers 200) and the user has
    credentials for it. A blob GET redirected to another host that answers 401 with its
    own token realm must neither receive the credentials nor make us adopt its realm for
    the registry's later requests."""
    image = random_image(seed=57)
    dest = f"docker://{registry.host}/evil/app:v1"
    copy(image.reference, dest, dst_opts=plain(tmp_path))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EvilServer)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    proxy = FaultProxy(registry.url).start()
    try:
        _EvilServer.seen = []
        first_layer = layers_of(image)[0].digest
        proxy.add_rule("GET", f"/blobs/{first_layer}",
                       redirect(f"http://127.0.0.1:{evil.server_address[1]}"), times=1)
        creds = Credentials("alice", "s3cret-pw")
        with pytest.raises(AuthenticationError):
            copy(f"docker://{proxy.host}/evil/app:v1", f"oci:{tmp_path}/evil:x",
                 src_opts=plain(tmp_path, credentials=creds), jobs=1, blob_retries=0)
        assert _EvilServer.seen, "the redirect did not happen"
        assert all(auth is None for _, auth in _EvilServer.seen)
        assert not any(path.startswith("/token") for path, _ in _EvilServer.seen)
        # and the registry itself was never sent credentials either (it asked for none)
        assert not any(e.has_authorization for e in proxy.log)
    finally:
        proxy.stop()
        evil.shutdown()
        evil.server_close()


def test_mount_of_an_unsized_blob_keeps_real_sizes(registry: RegistryServer,
                                                   tmp_path: Path) -> None:
    """Decompressed layers are reused by their diff_id without a known size: a mount
    must not turn that into size 0 in the pushed manifest."""
    image = random_image(seed=58)
    first = copy(image.reference, f"docker://{registry.host}/unsized/a:v1",
                 dst_opts=plain(tmp_path), decompress=True)
    second = copy(image.reference, f"docker://{registry.host}/unsized/b:v1",
                  dst_opts=plain(tmp_path), decompress=True)
    assert second.manifest_digest == first.manifest_digest
    assert all(layer.size > 0 for layer in ImageManifest.from_json(second.manifest).layers)
    validate_image(parse_image_name(f"docker://{registry.host}/unsized/b:v1"), plain(tmp_path))


def test_requests_ask_for_no_content_encoding(registry: RegistryServer,
                                              tmp_path: Path) -> None:
    image = random_image(seed=59)
    copy(image.reference, f"docker://{registry.host}/encoding/app:v1", dst_opts=plain(tmp_path))
    proxy = FaultProxy(registry.url).start()
    try:
        copy(f"docker://{proxy.host}/encoding/app:v1", f"oci:{tmp_path}/enc:x",
             src_opts=plain(tmp_path))
        blob_gets = proxy.requests("GET", "/blobs/")
        assert blob_gets
        assert all(e.headers.get("accept-encoding") == "identity" for e in blob_gets)
    finally:
        proxy.stop()


def test_namespaced_insecure_entry_applies_to_push_and_tags(registry: RegistryServer,
                                                            tmp_path: Path) -> None:
    opts = write_conf(tmp_path, f"""
[[registry]]
prefix = "{registry.host}/nsinsecure"
location = "{registry.host}/nsinsecure"
insecure = true
""")
    image = random_image(seed=60)
    copy(image.reference, f"docker://{registry.host}/nsinsecure/app:v1", dst_opts=opts)
    ref = parse_image_name(f"docker://{registry.host}/nsinsecure/app")
    assert isinstance(ref, DockerReference)
    assert ref.list_tags(opts) == ["v1"]
    with pytest.raises(NetworkError):  # outside the prefix: https only
        copy(image.reference, f"docker://{registry.host}/elsewhere/app:v1",
             dst_opts=write_conf(tmp_path, (tmp_path / "registries.conf").read_text()))


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_blob_reads_come_in_large_pieces(registry: RegistryServer,
                                         tls_registry: RegistryServer, tmp_path: Path,
                                         tls: bool) -> None:
    """Throughput depends on reading more than httpcore's 64 KiB (and TLS's 16 KiB
    records) per call: the large-read network backend must be in use."""
    image = random_image(seed=61, layers=1, files_per_layer=120, max_file_size=64 << 10)
    layer = layers_of(image)[0]
    assert layer.size > 1 << 20
    reg = tls_registry if tls else registry
    opts = (reg_options(tmp_path, credentials=Credentials(reg.username or "",
                                                          reg.password or ""),
                        cert_dir=str(reg.certs_dir)) if tls else plain(tmp_path))
    dest = f"docker://{reg.host}/pieces/app:v1"
    copy(image.reference, dest, dst_opts=opts)
    with DockerSource(parse_image_name(dest), opts) as src:  # type: ignore[arg-type]
        stream = src.get_blob(layer)
        try:
            sizes = []
            while True:
                data = stream.read(4 << 20)
                if not data:
                    break
                sizes.append(len(data))
        finally:
            stream.close()
    assert sum(sizes) == layer.size
    assert max(sizes) > 64 << 10, sizes[:10]


def test_registry_token_is_sent_as_is(token_registry: RegistryServer,
                                      token_issuer: TokenServer, tmp_path: Path) -> None:
    """``--registry-token``: a bearer token obtained elsewhere is used directly; the
    token server is never asked."""
    image = random_image(seed=62)
    dest = f"docker://{token_registry.host}/team/given:v1"
    copy(image.reference, dest, dst_opts=token_opts(tmp_path, token_registry))
    token, _ = token_issuer.issue("someone", [{"type": "repository", "name": "team/given",
                                                "actions": ["pull"]}])
    token_issuer.reset_log()
    pulled = copy(dest, f"oci:{tmp_path}/given:x",
                  src_opts=plain(tmp_path, registry_token=token))
    assert pulled.manifest_digest == image.digest
    assert token_issuer.log == []
    with pytest.raises(AuthenticationError):
        copy(dest, f"oci:{tmp_path}/given:y", src_opts=plain(tmp_path, registry_token="bogus"))


def test_credential_helper_from_the_auth_file(tls_registry: RegistryServer,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``credHelpers`` in auth.json: the docker-credential-<name> program answers for
    the registry (a small script standing in for a real helper such as pass or ecr)."""
    assert tls_registry.username
    assert tls_registry.password
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-ocitest"
    calls = tmp_path / "calls"
    helper.write_text(
        "#!/bin/sh\n"
        f'read server; echo "$1 $server" >> {calls}\n'
        f'printf \'{{"ServerURL": "%s", "Username": "{tls_registry.username}", '
        f'"Secret": "{tls_registry.password}"}}\' "$server"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"credHelpers": {tls_registry.host: "ocitest"}}))
    opts = reg_options(tmp_path, auth_file=str(auth), cert_dir=str(tls_registry.certs_dir))
    image = random_image(seed=63)
    result = copy(image.reference, f"docker://{tls_registry.host}/helper/app:v1",
                  dst_opts=opts)
    assert result.manifest_digest == image.digest
    assert calls.read_text().split() == ["get", tls_registry.host]
