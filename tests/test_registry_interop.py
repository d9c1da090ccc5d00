"""The ``docker://`` transport against the real registry, with skopeo 1.9 and podman 4.3
as the other side of every exchange.

1. What we push (OCI, schema2, a multi-arch index, zstd), skopeo reads and pulls with the
   same manifest digest; ``skopeo inspect`` reports that digest.
2. What skopeo pushes (schema2, OCI, ``--all``, zstd), we pull with the same manifest,
   config and index digests.
3. podman pulls what we pushed and reports the same digest; what podman pushes, we pull
   with the digest podman wrote.
4. TLS + basic auth: credentials and CA directories work the same for both tools, and
   each tool's ``login`` writes an auth file the other accepts.
5. ``inspect`` of a registry image agrees with ``skopeo inspect``.
6. A copy between two repositories of one registry mounts every blob (the access log).

The registry is tests/registry.py's real distribution registry; skopeo and podman run
with private configuration only (tests/peers.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import zstandard

from oci_image.copy import MultiArch
from oci_image.spec import Compression, ImageIndex, ImageManifest, MediaType
from oci_image.sysconfig.auth import Credentials
from oci_image.testing.random import random_image, random_index
from oci_image.transports import parse_image_name
from oci_image.validate import validate_image
from tests.peers import Podman, Skopeo, run_tool
from tests.registry import RegistryServer, RequestRecord, copy, plain, reg_options

pytestmark = pytest.mark.peers

ROOT = Path(__file__).resolve().parent.parent
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
INSECURE = "--tls-verify=false"


# -- helpers -------------------------------------------------------------------------








def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Our command line, as a user runs it (conftest.py made its environment private)."""
    return subprocess.run([sys.executable, "-m", "oci_image", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)


def cli_ok(*args: str, stdin: str = "") -> str:
    out = cli(*args, stdin=stdin)
    assert out.returncode == 0, f"oci-image {' '.join(args)} failed:\n{out.stderr}"
    return out.stdout


def layout_entry(layout: Path, tag: str) -> dict[str, Any]:
    """The descriptor an ``oci:`` layout's index.json holds for ``tag``, read as a file."""
    index = json.loads((layout / "index.json").read_text())
    found: list[dict[str, Any]] = [
        d for d in index["manifests"]
        if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
    assert len(found) == 1, found
    return found[0]


def layout_blob(layout: Path, digest: str) -> bytes:
    algo, _, hexpart = digest.partition(":")
    data = (layout / "blobs" / algo / hexpart).read_bytes()
    assert sha256(data) == digest
    return data


def dir_manifest(path: Path) -> bytes:
    return (path / "manifest.json").read_bytes()


def write_layout(image: Any, layout: Path, tag: str) -> str:
    """``image`` written to an ``oci:`` layout by us; the skopeo reference to it."""
    ref = f"oci:{layout}:{tag}"
    copy(image.reference, ref, multi_arch=MultiArch.ALL)
    return ref


# -- 1. we push, skopeo pulls --------------------------------------------------------


PUSHED = {
    "oci": lambda: random_image(seed=7001, oci=True),
    "v2s2": lambda: random_image(seed=7002, oci=False),
    "index": lambda: random_index(seed=71),
    "zstd": lambda: random_image(seed=7003, compression=Compression.ZSTD),
}


@pytest.mark.parametrize("kind", list(PUSHED))
def test_skopeo_pulls_what_we_push(kind: str, registry: RegistryServer, skopeo: Skopeo,
                                   tmp_path: Path) -> None:
    image = PUSHED[kind]()
    repo = f"interop/we-push-{kind}"
    ref = f"docker://{registry.host}/{repo}:v1"
    result = copy(image.reference, ref, dst_opts=plain(tmp_path), multi_arch=MultiArch.ALL)
    assert result.manifest_digest == image.digest
    assert registry.manifest_exists(repo, str(image.digest))

    # skopeo reads the very bytes we built
    raw = skopeo.inspect_raw(ref, INSECURE)
    assert raw == image.manifest
    assert sha256(raw) == str(image.digest)

    # skopeo inspect (not raw) agrees on the digest; for an index it describes the
    # linux/amd64 instance but reports the digest of the index it was given
    info = skopeo.inspect(ref, INSECURE, "--override-arch", "amd64", "--override-os", "linux")
    assert info["Digest"] == str(image.digest)
    assert info["Architecture"] == "amd64"
    assert info["RepoTags"] == ["v1"]

    # skopeo pulls it without changing a byte of the manifest
    if kind == "v2s2":
        # dir: keeps a schema2 manifest as it is (an oci: layout would convert it)
        out = tmp_path / "skopeo-dir"
        skopeo.copy(ref, f"dir:{out}", "--src-tls-verify=false")
        assert dir_manifest(out) == image.manifest
        assert skopeo.manifest_digest(out / "manifest.json") == str(image.digest)
    else:
        out = tmp_path / "skopeo-layout"
        flags = ["--src-tls-verify=false"] + (["--all"] if kind == "index" else [])
        skopeo.copy(ref, f"oci:{out}:pulled", *flags)
        desc = layout_entry(out, "pulled")
        assert desc["digest"] == str(image.digest)
        assert layout_blob(out, desc["digest"]) == image.manifest
        validate_image(parse_image_name(f"oci:{out}:pulled"))
        if kind == "index":
            for entry in ImageIndex.from_json(image.manifest).manifests:
                child = layout_blob(out, str(entry.digest))
                config = json.loads(child)["config"]["digest"]
                layout_blob(out, config)  # every instance, with its config
        if kind == "zstd":
            manifest = ImageManifest.from_json(image.manifest)
            for layer in manifest.layers:
                assert layer.media_type == MediaType.OCI_LAYER_ZSTD
                assert layout_blob(out, str(layer.digest))[:4] == ZSTD_MAGIC


CLI_PUSH = {
    "all": ("--all",),
    "v2s2": ("--format", "v2s2"),
    "zstd": ("--dest-compress-format", "zstd"),
}


@pytest.mark.parametrize("how", list(CLI_PUSH))
def test_skopeo_agrees_with_what_our_cli_pushes(how: str, registry: RegistryServer,
                                                skopeo: Skopeo, tmp_path: Path) -> None:
    """Our ``copy`` command line and skopeo's, with the same flags, from the same layout."""
    image = random_index(seed=73) if how == "all" else random_image(seed=7010)
    source = write_layout(image, tmp_path / "src", "t")
    flags = CLI_PUSH[how]
    ours_ref = f"docker://{registry.host}/interop/cli-push-{how}:v1"
    theirs_ref = f"docker://{registry.host}/interop/cli-push-{how}-skopeo:v1"
    cli_ok("copy", "-q", "--dest-tls-verify=false", "--digestfile", str(tmp_path / "ours"),
           *flags, source, ours_ref)
    skopeo.copy(source, theirs_ref, "--dest-tls-verify=false", "--digestfile",
                str(tmp_path / "theirs"), *flags)
    ours_digest = (tmp_path / "ours").read_text().strip()
    ours_raw = skopeo.inspect_raw(ours_ref, INSECURE)
    theirs_raw = skopeo.inspect_raw(theirs_ref, INSECURE)
    assert sha256(ours_raw) == ours_digest
    ours_m, theirs_m = json.loads(ours_raw), json.loads(theirs_raw)
    assert ours_m["mediaType"] == theirs_m["mediaType"]
    if how == "zstd":
        # two zstd encoders: the layer bytes differ, the image (config, diff_ids) not
        assert ours_m["config"] == theirs_m["config"]
        assert [la["mediaType"] for la in ours_m["layers"]] \
            == [la["mediaType"] for la in theirs_m["layers"]] \
            == [MediaType.OCI_LAYER_ZSTD] * 2
        assert skopeo.inspect_raw(ours_ref, INSECURE, "--config") \
            == skopeo.inspect_raw(theirs_ref, INSECURE, "--config")
    else:
        # no recompression: both tools write the same manifest
        assert ours_raw == theirs_raw
        assert ours_digest == (tmp_path / "theirs").read_text().strip()
    # skopeo pulls ours completely (it verifies every blob digest on the way)
    out = tmp_path / "pulled"
    skopeo.copy(ours_ref, f"dir:{out}", "--src-tls-verify=false",
                *(("--all",) if how == "all" else ()))
    assert dir_manifest(out) == ours_raw
    if how == "zstd":
        for layer in ours_m["layers"]:
            data = (out / layer["digest"].split(":", 1)[1]).read_bytes()
            assert data[:4] == ZSTD_MAGIC


# -- 2. skopeo pushes, we pull -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["v2s2", "oci"])
def test_we_pull_what_skopeo_pushes(fmt: str, registry: RegistryServer, skopeo: Skopeo,
                                    tmp_path: Path) -> None:
    image = random_image(seed=7101)
    source = write_layout(image, tmp_path / "src", "t")
    repo = f"interop/skopeo-push-{fmt}"
    ref = f"docker://{registry.host}/{repo}:v1"
    digestfile = tmp_path / "digest"
    skopeo.copy(source, ref, "--dest-tls-verify=false", "--format", fmt,
                "--digestfile", str(digestfile))
    pushed = digestfile.read_text().strip()
    theirs = skopeo.inspect_raw(ref, INSECURE)
    assert sha256(theirs) == pushed
    their_config = skopeo.inspect_raw(ref, INSECURE, "--config")
    expected_type = MediaType.OCI_MANIFEST if fmt == "oci" else MediaType.DOCKER_MANIFEST
    assert json.loads(theirs)["mediaType"] == expected_type
    if fmt == "oci":  # nothing to convert: skopeo pushed our manifest as it is
        assert pushed == str(image.digest)

    # we pull into dir: (keeps the manifest type) and into an oci: layout
    result = copy(ref, f"dir:{tmp_path / 'ours'}", src_opts=plain(tmp_path))
    assert str(result.manifest_digest) == pushed
    ours = dir_manifest(tmp_path / "ours")
    assert ours == theirs
    config_digest = json.loads(ours)["config"]["digest"]
    assert config_digest == sha256(their_config)
    assert (tmp_path / "ours" / config_digest.split(":", 1)[1]).read_bytes() == their_config
    validate_image(parse_image_name(f"dir:{tmp_path / 'ours'}"))
    if fmt == "oci":
        layout = tmp_path / "ours-layout"
        copy(ref, f"oci:{layout}:x", src_opts=plain(tmp_path))
        assert layout_entry(layout, "x")["digest"] == pushed
        assert layout_blob(layout, config_digest) == their_config


def test_we_pull_the_index_skopeo_pushes_with_all(registry: RegistryServer, skopeo: Skopeo,
                                                  tmp_path: Path) -> None:
    index = random_index(seed=72)
    source = write_layout(index, tmp_path / "src", "idx")
    repo = "interop/skopeo-push-all"
    ref = f"docker://{registry.host}/{repo}:v1"
    skopeo.copy(source, ref, "--all", "--dest-tls-verify=false")
    theirs = skopeo.inspect_raw(ref, INSECURE)
    assert sha256(theirs) == str(index.digest)

    layout = tmp_path / "ours"
    result = copy(ref, f"oci:{layout}:all", src_opts=plain(tmp_path),
                  multi_arch=MultiArch.ALL)
    assert str(result.manifest_digest) == sha256(theirs)
    desc = layout_entry(layout, "all")
    assert desc["digest"] == sha256(theirs)
    assert layout_blob(layout, desc["digest"]) == theirs
    for entry in ImageIndex.from_json(theirs).manifests:
        child_ref = f"docker://{registry.host}/{repo}@{entry.digest}"
        child = skopeo.inspect_raw(child_ref, INSECURE)
        their_config = skopeo.inspect_raw(child_ref, INSECURE, "--config")
        assert layout_blob(layout, str(entry.digest)) == child
        assert layout_blob(layout, json.loads(child)["config"]["digest"]) == their_config
    validate_image(parse_image_name(f"oci:{layout}:all"))


def test_we_pull_zstd_that_skopeo_pushes(registry: RegistryServer, skopeo: Skopeo,
                                         tmp_path: Path) -> None:
    image = random_image(seed=7102)  # gzip: skopeo recompresses it
    source = write_layout(image, tmp_path / "src", "t")
    repo = "interop/skopeo-push-zstd"
    ref = f"docker://{registry.host}/{repo}:v1"
    skopeo.copy(source, ref, "--dest-tls-verify=false", "--format", "oci",
                "--dest-compress-format", "zstd")
    theirs = skopeo.inspect_raw(ref, INSECURE)
    their_layers = json.loads(theirs)["layers"]
    assert [la["mediaType"] for la in their_layers] == [MediaType.OCI_LAYER_ZSTD] * 2

    layout = tmp_path / "ours"
    result = copy(ref, f"oci:{layout}:z", src_opts=plain(tmp_path))
    assert str(result.manifest_digest) == sha256(theirs)
    assert layout_blob(layout, layout_entry(layout, "z")["digest"]) == theirs
    for layer in their_layers:
        blob = layout_blob(layout, layer["digest"])
        assert blob[:4] == ZSTD_MAGIC
        zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    # same contents as the gzip original: the config (diff_ids) is unchanged
    assert json.loads(theirs)["config"] == json.loads(image.manifest)["config"]
    report = validate_image(parse_image_name(f"oci:{layout}:z"))
    assert report.blobs >= 3
    validate_image(parse_image_name(ref), plain(tmp_path))  # straight from the registry


# -- 3. podman -----------------------------------------------------------------------


def podman_run(podman: Podman, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``podman`` with the fixture's private store, auth file and blob-info cache
    (``tests/peers.py``: a private /var/lib in its own mount namespace)."""
    return run_tool(podman.argv(*args), env=podman.env())


def our_raw(ref: str) -> bytes:
    """``inspect --raw`` of a plain-HTTP registry image, by our CLI."""
    return cli_ok("inspect", "--raw", INSECURE, ref).encode()


def podman_inspect(podman: Podman, name: str) -> dict[str, Any]:
    infos: list[dict[str, Any]] = json.loads(podman_run(podman, "image", "inspect",
                                                         name).stdout)
    assert len(infos) == 1
    return infos[0]


@pytest.mark.parametrize("oci", [True, False], ids=["oci", "v2s2"])
def test_podman_pulls_and_pushes(oci: bool, registry: RegistryServer, podman: Podman,
                                 tmp_path: Path) -> None:
    fmt = "oci" if oci else "v2s2"
    image = random_image(seed=7201 + oci, oci=oci)
    config_digest = json.loads(image.manifest)["config"]["digest"]
    name = f"{registry.host}/interop/podman-{fmt}:v1"
    copy(image.reference, f"docker://{name}", dst_opts=plain(tmp_path))

    podman_run(podman, "pull", "-q", INSECURE, f"docker://{name}")
    info = podman_inspect(podman, name)
    # podman 4.3 reports the manifest digest it pulled as .Digest and in RepoDigests
    assert info["Digest"] == str(image.digest)
    assert f"{registry.host}/interop/podman-{fmt}@{image.digest}" in info["RepoDigests"]
    assert "sha256:" + info["Id"] == config_digest
    assert info["RepoTags"] == [name]

    back = f"{registry.host}/interop/podman-pushed-{fmt}:v1"
    digestfile = tmp_path / "digest"
    podman_run(podman, "push", "-q", INSECURE, "--format", fmt, "--digestfile", str(digestfile),
               name, f"docker://{back}")
    pushed = digestfile.read_text().strip()
    theirs = json.loads(our_raw(f"docker://{back}"))
    ours = json.loads(image.manifest)
    # podman reused the registry's blobs (its blob-info cache learnt them while pulling):
    # same config, same compressed layers. Rebuilding the manifest from its store, it
    # drops per-layer annotations -- the only difference, and none for schema2.
    assert theirs["config"] == ours["config"]
    assert theirs["layers"] == [{k: v for k, v in la.items() if k != "annotations"}
                                for la in ours["layers"]]
    assert theirs.get("annotations") == ours.get("annotations")
    if not oci:
        assert pushed == str(image.digest)

    result = copy(f"docker://{back}", f"dir:{tmp_path / 'ours'}", src_opts=plain(tmp_path))
    assert str(result.manifest_digest) == pushed
    raw = dir_manifest(tmp_path / "ours")
    assert sha256(raw) == pushed
    expected = MediaType.OCI_MANIFEST if oci else MediaType.DOCKER_MANIFEST
    assert json.loads(raw)["mediaType"] == expected
    validate_image(parse_image_name(f"dir:{tmp_path / 'ours'}"))


# -- 4. TLS and basic auth -----------------------------------------------------------


def test_tls_basic_auth_with_skopeo(tls_registry: RegistryServer, skopeo: Skopeo,
                                    tmp_path: Path) -> None:
    assert tls_registry.username
    assert tls_registry.password
    assert tls_registry.certs_dir
    user, password = tls_registry.username, tls_registry.password
    certs = str(tls_registry.certs_dir)
    image = random_image(seed=7301)
    ref = f"docker://{tls_registry.host}/interop/tls-push:v1"
    opts = reg_options(tmp_path, credentials=Credentials(user, password), cert_dir=certs)
    assert copy(image.reference, ref, dst_opts=opts).manifest_digest == image.digest

    creds = f"{user}:{password}"
    raw = skopeo.inspect_raw(ref, "--creds", creds, "--cert-dir", certs)
    assert raw == image.manifest
    out = tmp_path / "skopeo"
    skopeo.copy(ref, f"oci:{out}:x", "--src-creds", creds, "--src-cert-dir", certs)
    assert layout_entry(out, "x")["digest"] == str(image.digest)
    # without the CA skopeo refuses the server, as we do (the oracle is not lax)
    failed = skopeo.run("inspect", "--raw", "--creds", creds, ref, check=False)
    assert failed.returncode != 0
    assert b"certificate" in failed.stderr


def test_our_login_file_works_for_skopeo(tls_registry: RegistryServer, skopeo: Skopeo,
                                         tmp_path: Path) -> None:
    assert tls_registry.username
    assert tls_registry.password
    certs = str(tls_registry.certs_dir)
    auth = tmp_path / "ours-auth.json"
    cli_ok("login", "--authfile", str(auth), "--cert-dir", certs, "-u", tls_registry.username,
           "--password-stdin", tls_registry.host, stdin=tls_registry.password + "\n")
    assert tls_registry.host in json.loads(auth.read_text())["auths"]

    image = random_image(seed=7302)
    layout = write_layout(image, tmp_path / "src", "t")
    ref = f"docker://{tls_registry.host}/interop/our-login:v1"
    skopeo.copy(layout, ref, "--authfile", str(auth), "--dest-cert-dir", certs)
    assert tls_registry.manifest_exists("interop/our-login", str(image.digest))
    assert skopeo.inspect(ref, "--authfile", str(auth), "--cert-dir", certs)["Digest"] \
        == str(image.digest)
    # skopeo's own answer for the same registry without the file: unauthorized
    failed = skopeo.run("inspect", "--raw", "--cert-dir", certs, ref, check=False)
    assert failed.returncode != 0
    assert b"unauthorized" in failed.stderr.lower() or b"authentication" in failed.stderr


def test_skopeo_login_file_works_for_us(tls_registry: RegistryServer, skopeo: Skopeo,
                                        tmp_path: Path) -> None:
    assert tls_registry.username
    assert tls_registry.password
    certs = str(tls_registry.certs_dir)
    auth = tmp_path / "skopeo-auth.json"
    result = subprocess.run(
        skopeo.argv("login", "--authfile", str(auth), "--cert-dir", certs,
                    "-u", tls_registry.username, "--password-stdin", tls_registry.host),
        env=skopeo._env(), input=tls_registry.password.encode(), capture_output=True,
        timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert tls_registry.host in json.loads(auth.read_text())["auths"]

    image = random_image(seed=7303)
    ref = f"docker://{tls_registry.host}/interop/skopeo-login:v1"
    layout = write_layout(image, tmp_path / "src", "t")
    cli_ok("copy", "-q", "--authfile", str(auth), "--dest-cert-dir", certs, layout, ref)
    pulled = tmp_path / "pulled"
    cli_ok("copy", "-q", "--authfile", str(auth), "--src-cert-dir", certs, ref,
           f"oci:{pulled}:x")
    assert layout_entry(pulled, "x")["digest"] == str(image.digest)
    info = json.loads(cli_ok("inspect", "--authfile", str(auth), "--cert-dir", certs, ref))
    assert info["Digest"] == str(image.digest)
    # and the file is what made the difference
    denied = cli("copy", "-q", "--authfile", str(tmp_path / "empty.json"), "--src-cert-dir",
                 certs, ref, f"oci:{tmp_path / 'denied'}:x")
    assert denied.returncode != 0


# -- 5. inspect parity ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oci", "v2s2", "index"])
def test_cli_inspect_matches_skopeo(kind: str, registry: RegistryServer, skopeo: Skopeo,
                                    tmp_path: Path) -> None:
    image = {"oci": lambda: random_image(seed=7401),
             "v2s2": lambda: random_image(seed=7402, oci=False),
             "index": lambda: random_index(seed=74)}[kind]()
    base = f"docker://{registry.host}/interop/inspect-{kind}"
    for tag in ("v2", "v1", "latest"):
        copy(image.reference, f"{base}:{tag}", dst_opts=plain(tmp_path),
             multi_arch=MultiArch.ALL)
    platform = ("--override-os", "linux", "--override-arch", "amd64")
    ours = json.loads(cli_ok("inspect", INSECURE, *platform, f"{base}:v1"))
    theirs: dict[str, Any] = json.loads(skopeo.run("inspect", INSECURE, *platform,
                                                   f"{base}:v1").stdout)
    for key in ("Digest", "Layers", "Architecture", "Os", "Created", "Labels", "Env"):
        assert ours[key] == theirs[key], key
    assert sorted(ours["RepoTags"]) == sorted(theirs["RepoTags"]) == ["latest", "v1", "v2"]
    assert ours["Digest"] == str(image.digest)
    assert ours["Name"] == theirs["Name"]
    # --raw, --raw --config and --config agree too
    assert cli_ok("inspect", "--raw", INSECURE, f"{base}:v1").encode() \
        == skopeo.inspect_raw(f"{base}:v1", INSECURE) == image.manifest
    assert cli_ok("inspect", "--raw", "--config", INSECURE, *platform, f"{base}:v1").encode() \
        == skopeo.inspect_raw(f"{base}:v1", INSECURE, "--config", *platform)
    assert json.loads(cli_ok("inspect", "--config", INSECURE, *platform, f"{base}:v1")) \
        == json.loads(skopeo.run("inspect", "--config", INSECURE, *platform,
                                 f"{base}:v1").stdout)


# -- 6. cross-repository mount -------------------------------------------------------


def requests_of(registry: RegistryServer, mark: int, target: str) -> list[RequestRecord]:
    """The access-log records since ``mark`` of a copy into ``target``, once the last of
    them -- the manifest PUT -- is logged (lines are written as handlers return)."""
    deadline = time.monotonic() + 10
    while True:
        records = registry.requests(mark)
        if any(r.method == "PUT" and r.path_only.startswith(f"/v2/{target}/manifests/")
               for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.02)


def test_copy_between_repositories_mounts_every_blob(registry: RegistryServer, skopeo: Skopeo,
                                                     tmp_path: Path) -> None:
    image = random_image(seed=7501, layers=3)
    src = f"docker://{registry.host}/interop/mount-a:v1"
    copy(image.reference, src, dst_opts=plain(tmp_path))
    manifest = ImageManifest.from_json(image.manifest)
    blobs = [str(d.digest) for d in (*manifest.layers, manifest.config)]

    mark = registry.log_mark()
    cli_ok("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", src,
           f"docker://{registry.host}/interop/mount-b:v1")
    records = requests_of(registry, mark, "interop/mount-b")
    mounts = [r for r in records if r.method == "POST" and "mount=" in r.path]
    mounted = [urllib.parse.parse_qs(urllib.parse.urlsplit(r.path).query) for r in mounts]
    assert sorted(q["mount"][0] for q in mounted) == sorted(blobs)
    assert all(q["from"] == ["interop/mount-a"] for q in mounted)
    assert all(r.status == 201 for r in mounts)
    uploads = [r for r in records if r.method in ("PUT", "PATCH") and "/blobs/" in r.path]
    assert uploads == []
    # only the config is read (to check the image); no layer crosses the wire
    blob_gets = {r.path_only.rsplit("/", 1)[1] for r in records
                 if r.method == "GET" and "/blobs/" in r.path}
    assert blob_gets <= {str(manifest.config.digest)}
    for digest in blobs:
        assert registry.blob_exists("interop/mount-b", digest)
    assert registry.manifest_exists("interop/mount-b", str(image.digest))

    # skopeo, for comparison, with an empty blob-info cache: it has not yet seen where the
    # blobs live when it decides, so it checks the target, then downloads and uploads
    mark = registry.log_mark()
    skopeo.copy(src, f"docker://{registry.host}/interop/mount-c:v1",
                "--src-tls-verify=false", "--dest-tls-verify=false")
    theirs = requests_of(registry, mark, "interop/mount-c")
    their_mounts = [r for r in theirs if r.method == "POST" and "mount=" in r.path]
    their_uploads = {urllib.parse.parse_qs(urllib.parse.urlsplit(r.path).query)["digest"][0]
                     for r in theirs if r.method == "PUT" and "/blobs/uploads/" in r.path
                     and r.status == 201}
    their_gets = {r.path_only.rsplit("/", 1)[1] for r in theirs
                  if r.method == "GET" and "/blobs/" in r.path}
    assert their_mounts == []
    assert their_uploads == their_gets == set(blobs)
    assert registry.manifest_exists("interop/mount-c", str(image.digest))
