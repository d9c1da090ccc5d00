"""Self-tests of the real-registry fixtures (tests/registry.py, tests/faultproxy.py).

They talk to the registries with httpx directly, not through our transport, so that a
failure here points at the fixtures and not at the client under test.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.faultproxy import (
    FaultProxy,
    RedirectTarget,
    ignore_range,
    passthrough,
    redirect,
    reset_after,
    reset_request,
    slow,
    status,
    truncate_after,
)
from tests.registry import RegistryServer, TokenServer, parse_scope

BLOB = os.urandom(200_000)
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def with_digest(location: str, digest: str) -> str:
    """``location`` with ``digest=`` appended (httpx ``params=`` would drop its query)."""
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def push_blob(client: httpx.Client, base: str, repo: str, data: bytes,
              headers: dict[str, str] | None = None) -> str:
    """POST + PUT (monolithic) upload; returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = client.post(f"{base}/v2/{repo}/blobs/uploads/", headers=headers)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    put = client.put(with_digest(location, digest), content=data,
                     headers={**(headers or {}), "Content-Type": "application/octet-stream"})
    assert put.status_code == 201, put.text
    return digest


@pytest.fixture(scope="module")
def seeded(registry: RegistryServer) -> str:
    """The session registry holds BLOB in ``fixtures/seed``; returns the repo name."""
    with httpx.Client() as client:
        push_blob(client, registry.url, "fixtures/seed", BLOB)
    return "fixtures/seed"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


# -- plain registry ------------------------------------------------------------------


def test_plain_registry_answers_v2(registry: RegistryServer, client: httpx.Client) -> None:
    assert registry.scheme == "http"
    assert registry.url == f"http://{registry.host}"
    assert registry.host.startswith("127.0.0.1:")
    assert registry.ca_cert is None
    assert registry.certs_d_root is None
    assert registry.auth is None
    r = client.get(f"{registry.url}/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_blob_upload_then_get(registry: RegistryServer, client: httpx.Client) -> None:
    data = os.urandom(5000)
    digest = push_blob(client, registry.url, "fixtures/upload", data)
    assert registry.blob_exists("fixtures/upload", digest)
    assert registry.blob_data_exists(digest)
    assert not registry.blob_exists("fixtures/other", digest)
    r = client.get(f"{registry.url}/v2/fixtures/upload/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data
    # delete is enabled
    assert client.delete(f"{registry.url}/v2/fixtures/upload/blobs/{digest}").status_code == 202
    assert not registry.blob_exists("fixtures/upload", digest)


def test_requests_parses_the_access_log(registry: RegistryServer,
                                        client: httpx.Client) -> None:
    mark = registry.log_mark()
    client.get(f"{registry.url}/v2/")
    client.get(f"{registry.url}/v2/fixtures/nothing/tags/list?n=1",
               headers={"User-Agent": "fixture-selftest"})
    records = registry.requests(mark, min_count=2)
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/v2/", 200), ("GET", "/v2/fixtures/nothing/tags/list?n=1", 404)]
    assert records[1].path_only == "/v2/fixtures/nothing/tags/list"
    assert records[1].user_agent == "fixture-selftest"
    assert records[1].remote == "127.0.0.1"
    assert any(e.get("msg") == "response completed" for e in registry.app_log())


def test_registry_factory_gives_an_isolated_registry(
        registry_factory: object, registry: RegistryServer, client: httpx.Client) -> None:
    assert callable(registry_factory)
    extra: RegistryServer = registry_factory()
    assert extra.host != registry.host
    digest = push_blob(client, extra.url, "iso/x", b"isolated")
    assert extra.blob_exists("iso/x", digest)
    assert not registry.blob_data_exists(digest)
    extra.stop()
    assert extra.process.poll() is not None


# -- TLS + basic auth ----------------------------------------------------------------


def test_tls_registry_requires_basic_auth(tls_registry: RegistryServer) -> None:
    assert tls_registry.scheme == "https"
    assert tls_registry.ca_cert is not None
    assert tls_registry.certs_d_root is not None
    assert tls_registry.certs_dir == tls_registry.certs_d_root / tls_registry.host
    assert (tls_registry.certs_d_root / tls_registry.host / "ca.crt").read_bytes() \
        == tls_registry.ca_cert.read_bytes()
    assert tls_registry.auth is not None
    with httpx.Client(verify=tls_registry.ssl_context(), timeout=10) as c:
        r = c.get(f"{tls_registry.url}/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert c.get(f"{tls_registry.url}/v2/",
                     auth=("tlsuser", "wrong")).status_code == 401
        r = c.get(f"{tls_registry.url}/v2/", auth=tls_registry.auth)
        assert r.status_code == 200
        # localhost is in the SAN too
        assert c.get(f"https://localhost:{tls_registry.host.split(':')[1]}/v2/",
                     auth=tls_registry.auth).status_code == 200
        c.auth = tls_registry.auth
        digest = push_blob(c, tls_registry.url, "secure/app", b"tls blob")
    assert tls_registry.blob_exists("secure/app", digest)


def test_tls_registry_is_not_trusted_by_default(tls_registry: RegistryServer) -> None:
    with httpx.Client(timeout=10) as c, pytest.raises(httpx.ConnectError):
        c.get(f"{tls_registry.url}/v2/")


# -- bearer tokens -------------------------------------------------------------------


def get_token(registry: RegistryServer, *scopes: str,
              auth: tuple[str, str] | None = None, **params: str) -> httpx.Response:
    assert registry.token_url is not None
    query: list[tuple[str, str | int | float | bool | None]] = [
        ("service", registry.service or ""), *[("scope", s) for s in scopes],
        *params.items()]
    return httpx.get(registry.token_url, params=query, auth=auth, timeout=10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_registry_challenges(token_registry: RegistryServer,
                                   client: httpx.Client) -> None:
    r = client.get(f"{token_registry.url}/v2/")
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{token_registry.token_url}"' in challenge
    assert f'service="{token_registry.service}"' in challenge
    r = client.get(f"{token_registry.url}/v2/team/app/tags/list")
    assert 'scope="repository:team/app:pull"' in r.headers["WWW-Authenticate"]


def test_token_push_and_pull(token_registry: RegistryServer, token_issuer: TokenServer,
                             client: httpx.Client) -> None:
    r = get_token(token_registry, "repository:team/app:pull,push",
                  auth=token_registry.auth, account=token_registry.username or "")
    assert r.status_code == 200
    body = r.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == TokenServer.DEFAULT_LIFETIME
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" not in body
    claims = TokenServer.claims(body["token"])
    assert claims["access"] == [{"type": "repository", "name": "team/app",
                                 "actions": ["pull", "push"]}]
    assert claims["aud"] == token_registry.service
    headers = bearer(body["token"])
    digest = push_blob(client, token_registry.url, "team/app", b"token blob", headers)
    r = client.get(f"{token_registry.url}/v2/team/app/blobs/{digest}", headers=headers)
    assert r.status_code == 200
    assert r.content == b"token blob"
    assert client.get(f"{token_registry.url}/v2/", headers=headers).status_code == 200
    [entry] = token_issuer.log
    assert entry.method == "GET"
    assert entry.basic_auth
    assert entry.user == token_issuer.username
    assert entry.scopes == ("repository:team/app:pull,push",)
    assert entry.granted == ("repository:team/app:pull,push",)
    assert entry.account == token_issuer.username
    assert not entry.refresh_token_used


def test_token_wrong_credentials(token_registry: RegistryServer,
                                 token_issuer: TokenServer) -> None:
    r = get_token(token_registry, "repository:team/app:pull", auth=("tokenuser", "nope"))
    assert r.status_code == 401
    assert token_issuer.log[-1].status == 401
    assert token_issuer.log[-1].user is None


def test_anonymous_gets_pull_on_public_only(token_registry: RegistryServer,
                                            token_issuer: TokenServer,
                                            client: httpx.Client) -> None:
    r = get_token(token_registry, "repository:team/app:pull,push",
                  "repository:public/base:pull,push")
    assert r.status_code == 200
    token = r.json()["token"]
    assert TokenServer.claims(token)["access"] == [
        {"type": "repository", "name": "public/base", "actions": ["pull"]}]
    headers = bearer(token)
    # pull on public/ is authorized (404: nothing there yet), push is not
    assert client.get(f"{token_registry.url}/v2/public/base/tags/list",
                      headers=headers).status_code == 404
    denied = client.post(f"{token_registry.url}/v2/public/base/blobs/uploads/",
                         headers=headers)
    assert denied.status_code == 401
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]
    assert client.get(f"{token_registry.url}/v2/team/app/tags/list",
                      headers=headers).status_code == 401
    assert not token_issuer.log[-1].basic_auth
    assert token_issuer.log[-1].user is None


def test_denied_repository_never_gets_push(token_registry: RegistryServer,
                                           client: httpx.Client) -> None:
    r = get_token(token_registry, "repository:denied/app:pull,push", auth=token_registry.auth)
    token = r.json()["token"]
    assert TokenServer.claims(token)["access"] == [
        {"type": "repository", "name": "denied/app", "actions": ["pull"]}]
    r = client.post(f"{token_registry.url}/v2/denied/app/blobs/uploads/",
                    headers=bearer(token))
    assert r.status_code == 401


def test_token_expiry_and_leeway(token_registry: RegistryServer, token_issuer: TokenServer,
                                 client: httpx.Client) -> None:
    url = f"{token_registry.url}/v2/team/app/tags/list"
    access = token_issuer.grant("tokenuser", ("repository:team/app:pull",))
    token_issuer.lifetime = 1
    # exp 30 s ago: still inside the registry's 60 s leeway
    token_issuer.clock_offset = -31
    token, _ = token_issuer.issue("tokenuser", access)
    assert client.get(url, headers=bearer(token)).status_code in (200, 404)
    # exp 90 s ago: rejected
    token_issuer.clock_offset = -91
    token, _ = token_issuer.issue("tokenuser", access)
    r = client.get(url, headers=bearer(token))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # a token whose audience is another service is rejected too
    token_issuer.reset()
    token, _ = token_issuer.issue("tokenuser", access, service="someone-else")
    assert client.get(url, headers=bearer(token)).status_code == 401


def test_token_lifetime_is_reported(token_registry: RegistryServer,
                                    token_issuer: TokenServer) -> None:
    token_issuer.lifetime = 2
    body = get_token(token_registry, "repository:team/app:pull",
                     auth=token_registry.auth).json()
    assert body["expires_in"] == 2
    claims = TokenServer.claims(body["token"])
    assert claims["exp"] - claims["iat"] == 2


def test_refresh_token_grants(token_registry: RegistryServer, token_issuer: TokenServer,
                              client: httpx.Client) -> None:
    assert token_registry.token_url is not None
    body = get_token(token_registry, "repository:team/app:pull", auth=token_registry.auth,
                     offline_token="true", client_id="selftest").json()
    refresh = body["refresh_token"]
    assert token_issuer.log[-1].offline_token
    r = client.post(token_registry.token_url, data={
        "grant_type": "refresh_token", "refresh_token": refresh,
        "service": token_registry.service or "", "client_id": "selftest",
        "scope": "repository:team/app:pull repository:team/app:push"})
    assert r.status_code == 200, r.text
    grant = r.json()
    assert grant["refresh_token"] == refresh
    assert grant["expires_in"] == TokenServer.DEFAULT_LIFETIME
    entry = token_issuer.log[-1]
    assert entry.method == "POST"
    assert entry.refresh_token_used
    assert entry.grant_type == "refresh_token"
    assert entry.client_id == "selftest"
    assert entry.scopes == ("repository:team/app:pull", "repository:team/app:push")
    assert client.get(f"{token_registry.url}/v2/team/app/tags/list",
                      headers=bearer(grant["access_token"])).status_code in (200, 404)
    # unknown refresh token, bad password, unknown grant
    assert client.post(token_registry.token_url, data={
        "grant_type": "refresh_token", "refresh_token": "bogus"}).status_code == 401
    assert client.post(token_registry.token_url, data={
        "grant_type": "password", "username": "tokenuser",
        "password": "nope"}).status_code == 401
    assert client.post(token_registry.token_url, data={
        "grant_type": "magic"}).status_code == 400
    # password grant
    r = client.post(token_registry.token_url, data={
        "grant_type": "password", "username": token_registry.username or "",
        "password": token_registry.password or "", "service": token_registry.service or "",
        "scope": "repository:team/app:pull"})
    assert r.status_code == 200
    assert r.json()["refresh_token"] in token_issuer.refresh_tokens


def test_token_request_log_counts(token_registry: RegistryServer,
                                  token_issuer: TokenServer) -> None:
    for _ in range(3):
        get_token(token_registry, "repository:public/x:pull")
    assert len(token_issuer.log) == 3
    token_issuer.reset_log()
    assert token_issuer.log == []


def test_parse_scope() -> None:
    assert parse_scope("repository:a/b:pull,push") == ("repository", "a/b", ["pull", "push"])
    assert parse_scope("registry:catalog:*") == ("registry", "catalog", ["*"])


# -- fault proxy ---------------------------------------------------------------------


def blob_path(repo: str) -> str:
    return f"/v2/{repo}/blobs/{BLOB_DIGEST}"


def read_into(client: httpx.Client, url: str, got: bytearray) -> None:
    """Stream the blob at ``url`` into ``got`` (a 200 with BLOB's full length)."""
    with client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(len(BLOB))
        for chunk in r.iter_raw():
            got += chunk


def test_proxy_passes_through_and_logs(fault_proxy: FaultProxy, seeded: str,
                                       client: httpx.Client) -> None:
    r = client.get(fault_proxy.url + blob_path(seeded), headers={"Authorization": "Bearer x"})
    assert r.status_code == 200
    assert r.content == BLOB
    [entry] = fault_proxy.log
    entry.wait()
    assert (entry.method, entry.path, entry.status, entry.rule) == (
        "GET", blob_path(seeded), 200, None)
    assert entry.has_authorization
    assert entry.upstream
    assert entry.body_bytes == len(BLOB)


def test_proxy_upload_rewrites_location_and_streams_chunked(
        fault_proxy: FaultProxy, registry: RegistryServer, client: httpx.Client) -> None:
    data = os.urandom(300_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = client.post(f"{fault_proxy.url}/v2/fixtures/proxied/blobs/uploads/")
    assert started.status_code == 202
    location = started.headers["Location"]
    assert location.startswith(fault_proxy.url + "/v2/fixtures/proxied/blobs/uploads/")

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(data), 70_000):
            yield data[i:i + 70_000]

    patched = client.patch(location, content=pieces(),
                           headers={"Content-Type": "application/octet-stream"})
    assert patched.status_code == 202, patched.text
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    put = client.put(with_digest(patched.headers["Location"], digest))
    assert put.status_code == 201, put.text
    assert registry.blob_exists("fixtures/proxied", digest)
    patch_entry = fault_proxy.requests("PATCH")[0]
    assert patch_entry.headers.get("transfer-encoding") == "chunked"


def test_status_rule_with_retry_after_exhausts(fault_proxy: FaultProxy,
                                               client: httpx.Client) -> None:
    rule = fault_proxy.add_rule("GET", r"^/v2/$", status(429, headers={"Retry-After": "1"}))
    r = client.get(fault_proxy.url + "/v2/")
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert client.get(fault_proxy.url + "/v2/").status_code == 200
    assert rule.fired == 1
    assert rule.exhausted
    assert [(e.status, e.rule, e.upstream) for e in fault_proxy.log] == [
        (429, rule.name, False), (200, None, True)]


def test_rule_skip_times_and_order(fault_proxy: FaultProxy, client: httpx.Client) -> None:
    first = fault_proxy.add_rule("GET|HEAD", r"^/v2/$", status(503, body="busy"),
                                 skip=1, times=2)
    second = fault_proxy.add_rule("*", r"^/v2/$", status(500))
    codes = [client.get(fault_proxy.url + "/v2/").status_code for _ in range(5)]
    # 1st: skipped by `first`, caught by `second`; 2nd, 3rd: `first`; then passes
    assert codes == [500, 503, 503, 200, 200]
    assert (first.fired, first.seen, second.fired) == (2, 3, 1)
    fault_proxy.clear_rules()
    assert fault_proxy.rules == []


def test_status_rule_drains_request_body(fault_proxy: FaultProxy,
                                         client: httpx.Client) -> None:
    fault_proxy.add_rule("PATCH", r"/blobs/uploads/", status(500, body=b"boom"))
    r = client.patch(fault_proxy.url + "/v2/fixtures/x/blobs/uploads/abc",
                     content=b"x" * 100_000)
    assert r.status_code == 500
    assert r.content == b"boom"
    # the same keep-alive connection still works
    assert client.get(fault_proxy.url + "/v2/").status_code == 200


def test_reset_after_raises_read_error(fault_proxy: FaultProxy, seeded: str,
                                       client: httpx.Client) -> None:
    rule = fault_proxy.add_rule("GET", r"/blobs/sha256:", reset_after(10_000))
    got = bytearray()
    with pytest.raises(httpx.ReadError):
        read_into(client, fault_proxy.url + blob_path(seeded), got)
    assert len(got) <= 10_000
    assert BLOB.startswith(bytes(got))
    assert rule.fired == 1
    assert fault_proxy.log[-1].body_bytes == 10_000
    # exhausted: the next GET is whole
    assert client.get(fault_proxy.url + blob_path(seeded)).content == BLOB


def test_truncate_after_gives_short_body(fault_proxy: FaultProxy, seeded: str,
                                         client: httpx.Client) -> None:
    fault_proxy.add_rule("GET", r"/blobs/", truncate_after(1234))
    got = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        read_into(client, fault_proxy.url + blob_path(seeded), got)
    assert bytes(got) == BLOB[:1234]


def test_reset_request_closes_without_answer(fault_proxy: FaultProxy,
                                             client: httpx.Client) -> None:
    fault_proxy.add_rule("GET", r"^/v2/$", reset_request())
    fault_proxy.add_rule("GET", r"^/v2/$", reset_request(rst=False))
    with pytest.raises(httpx.TransportError):
        client.get(fault_proxy.url + "/v2/")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(fault_proxy.url + "/v2/")
    assert [e.status for e in fault_proxy.log] == [None, None]
    assert client.get(fault_proxy.url + "/v2/").status_code == 200


def test_slow_body(fault_proxy: FaultProxy, seeded: str, client: httpx.Client) -> None:
    fault_proxy.add_rule("GET", r"/blobs/", slow(0.02, chunk=20_000))
    start = time.monotonic()
    r = client.get(fault_proxy.url + blob_path(seeded))
    assert r.content == BLOB
    assert time.monotonic() - start >= 0.18  # 10 chunks, 20 ms after each


def test_redirect_target_records_headers(fault_proxy: FaultProxy,
                                         redirect_target: RedirectTarget, seeded: str,
                                         client: httpx.Client) -> None:
    rule = fault_proxy.add_rule("GET", r"/blobs/sha256:", redirect(redirect_target))
    r = client.get(fault_proxy.url + blob_path(seeded), follow_redirects=True,
                   headers={"Authorization": "Bearer secret", "X-Probe": "1"})
    assert r.status_code == 200
    assert r.content == BLOB
    assert rule.fired == 1
    assert fault_proxy.log[0].status == 307
    [hop] = redirect_target.log
    assert hop.path == blob_path(seeded)
    assert hop.status == 200
    assert hop.headers["x-probe"] == "1"
    assert not hop.has_authorization
    assert not redirect_target.received_authorization


def test_ignore_range(fault_proxy: FaultProxy, registry: RegistryServer, seeded: str,
                      client: httpx.Client) -> None:
    headers = {"Range": "bytes=100-199"}
    direct = client.get(registry.url + blob_path(seeded), headers=headers)
    assert direct.status_code == 206
    assert direct.content == BLOB[100:200]
    fault_proxy.add_rule("GET", r"/blobs/", ignore_range())
    r = client.get(fault_proxy.url + blob_path(seeded), headers=headers)
    assert r.status_code == 200
    assert r.content == BLOB
    assert fault_proxy.log[0].range == "bytes=100-199"
    r = client.get(fault_proxy.url + blob_path(seeded), headers=headers)
    assert r.status_code == 206


def test_passthrough_counts_and_head(fault_proxy: FaultProxy, seeded: str,
                                     client: httpx.Client) -> None:
    rule = fault_proxy.add_rule("HEAD", r"/blobs/", passthrough(), times=None)
    for _ in range(3):
        r = client.head(fault_proxy.url + blob_path(seeded))
        assert r.status_code == 200
        assert r.headers["Content-Length"] == str(len(BLOB))
    assert rule.fired == 3
    assert not rule.exhausted


def test_proxy_in_front_of_token_server(token_registry: RegistryServer,
                                        token_issuer: TokenServer,
                                        client: httpx.Client) -> None:
    with FaultProxy(token_issuer.url) as proxy:
        proxy.add_rule("GET", r"^/token", status(503))
        assert client.get(proxy.url + "/token").status_code == 503
        r = client.get(proxy.url + "/token", params={"scope": "repository:public/a:pull"})
        assert r.status_code == 200
        assert "token" in r.json()
    assert len(token_issuer.log) == 1


def test_proxy_in_front_of_tls_registry_rewrites_realm(tls_registry: RegistryServer,
                                                       client: httpx.Client) -> None:
    with FaultProxy(tls_registry.url, upstream_ssl_context=tls_registry.ssl_context(),
                    realm_rewrite=("ocistack-registry", "via-proxy")) as proxy:
        r = client.get(proxy.url + "/v2/")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="via-proxy"'
        assert client.get(proxy.url + "/v2/", auth=tls_registry.auth).status_code == 200
