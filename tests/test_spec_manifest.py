"""Manifests and indexes of every supported format (oci_image.spec.manifest)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci_image.errors import ContentTooLargeError, SpecError, UnsupportedMediaTypeError
from oci_image.spec import (
    DEFAULT_SIZE_LIMIT,
    Compression,
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    Schema1Manifest,
    compression_of,
    guess_media_type,
    is_docker_schema1,
    is_index,
    is_layer,
    is_manifest,
    is_nondistributable,
    is_single_manifest,
    layer_media_type,
    manifest_digest,
    parse_manifest,
)
from oci_image.testing import strategies as ocist


def h(name: str) -> str:
    """A stable fake sha256 hex string."""
    return hashlib.sha256(name.encode()).hexdigest()


def sha(name: str) -> str:
    return f"sha256:{h(name)}"


def dump(obj: object) -> bytes:
    return json.dumps(obj, indent=3).encode()


EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
GZIP_EMPTY_LAYER = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

OCI_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": MediaType.OCI_MANIFEST,
    "config": {"mediaType": MediaType.OCI_CONFIG, "digest": sha("config"), "size": 7023},
    "layers": [
        {"mediaType": MediaType.OCI_LAYER_GZIP, "digest": sha("l1"), "size": 32654},
        {"mediaType": MediaType.OCI_LAYER_ZSTD, "digest": sha("l2"), "size": 16724,
         "annotations": {"org.opencontainers.image.title": "layer2.tar.zst"}},
        {"mediaType": MediaType.OCI_LAYER_NONDIST_GZIP, "digest": sha("l3"), "size": 73109,
         "urls": ["https://mcr.microsoft.com/v2/x/blobs/" + sha("l3")]},
    ],
    "subject": {"mediaType": MediaType.OCI_MANIFEST, "digest": sha("subject"), "size": 7682},
    "annotations": {"com.example.key1": "value1", "com.example.key2": "value2"},
}

OCI_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": MediaType.OCI_INDEX,
    "manifests": [
        {"mediaType": MediaType.OCI_MANIFEST, "digest": sha("ppc"), "size": 7143,
         "platform": {"architecture": "ppc64le", "os": "linux"}},
        {"mediaType": MediaType.OCI_MANIFEST, "digest": sha("amd"), "size": 7682,
         "annotations": {"org.opencontainers.image.ref.name": "1.0"},
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": MediaType.OCI_MANIFEST, "digest": sha("win"), "size": 1000,
         "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5458",
                      "os.features": ["win32k"]}},
        {"mediaType": "application/vnd.example.sbom.v1+json", "digest": sha("sbom"),
         "size": 10, "artifactType": "application/spdx+json"},
    ],
    "annotations": {"com.example.key1": "value1"},
}

DOCKER_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": MediaType.DOCKER_MANIFEST,
    "config": {"mediaType": MediaType.DOCKER_CONFIG, "size": 7023, "digest": sha("config")},
    "layers": [
        {"mediaType": MediaType.DOCKER_LAYER_GZIP, "size": 32654, "digest": sha("l1")},
        {"mediaType": MediaType.DOCKER_FOREIGN_LAYER_GZIP, "size": 16724, "digest": sha("l2"),
         "urls": ["https://mcr.microsoft.com/v2/x/blobs/" + sha("l2")]},
    ],
}

DOCKER_LIST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": MediaType.DOCKER_MANIFEST_LIST,
    "manifests": [
        {"mediaType": MediaType.DOCKER_MANIFEST, "size": 7143, "digest": sha("ppc"),
         "platform": {"architecture": "ppc64le", "os": "linux"}},
        {"mediaType": MediaType.DOCKER_MANIFEST, "size": 7682, "digest": sha("arm"),
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7",
                      "features": ["sse4"]}},
    ],
}


def schema1_history(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"v1Compatibility": json.dumps(e)} for e in entries]


SCHEMA1: dict[str, Any] = {
    "schemaVersion": 1,
    "name": "library/hello",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": GZIP_EMPTY_LAYER}, {"blobSum": sha("base")}],
    "history": schema1_history([
        {"id": h("top"), "parent": h("bottom"), "created": "2016-01-01T00:00:01Z",
         "container_config": {"Cmd": ["/bin/sh -c #(nop) CMD [\"/hello\"]"]},
         "throwaway": True},
        {"id": h("bottom"), "created": "2016-01-01T00:00:00Z", "architecture": "amd64",
         "os": "linux"},
    ]),
}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _format(payload: bytes) -> tuple[int, bytes]:
    """libtrust's formatLength / formatTail: everything up to the last non-space character
    before the closing brace, and the rest."""
    ws = b" \t\r\n"
    close = len(payload.rstrip(ws)) - 1
    assert payload[close:close + 1] == b"}"
    length = len(payload[:close].rstrip(ws))
    return length, payload[length:]


def sign_schema1(payload: bytes, *, signatures: int = 1,
                 headers: list[dict[str, Any]] | None = None) -> bytes:
    """A libtrust "pretty" JWS signed manifest: ``payload`` with a ``signatures`` array
    appended to its top-level object. Signatures are not cryptographically valid (the
    parser does not verify them, containers/image does not either)."""
    length, tail = _format(payload)
    if headers is None:
        headers = [{"formatLength": length, "formatTail": _b64url(tail),
                    "time": f"2016-01-01T00:00:0{i}Z"} for i in range(signatures)]
    sigs = [{
        "header": {"jwk": {"crv": "P-256", "kid": "ABCD:EFGH:IJKL", "kty": "EC",
                           "x": _b64url(b"x" * 32), "y": _b64url(b"y" * 32)},
                   "alg": "ES256"},
        "signature": _b64url(hashlib.sha512(str(i).encode()).digest()),
        "protected": _b64url(json.dumps(header).encode()),
    } for i, header in enumerate(headers)]
    marshalled = json.dumps(sigs, indent=3).replace("\n", "\n   ")
    return payload[:length] + b',\n   "signatures": ' + marshalled.encode() + b"\n}"


# ---------------------------------------------------------------------------------------
# parsing of each format


def test_parse_oci_manifest() -> None:
    raw = dump(OCI_MANIFEST)
    m = parse_manifest(raw)
    assert isinstance(m, ImageManifest)
    assert m.media_type == MediaType.OCI_MANIFEST
    assert m.is_oci
    assert m.has_media_type_field
    assert m.config == Descriptor(MediaType.OCI_CONFIG, Digest.parse(sha("config")), 7023)
    assert [layer.media_type for layer in m.layers] == [
        MediaType.OCI_LAYER_GZIP, MediaType.OCI_LAYER_ZSTD, MediaType.OCI_LAYER_NONDIST_GZIP]
    assert [layer.size for layer in m.layers] == [32654, 16724, 73109]
    assert m.layers[1].annotations == {"org.opencontainers.image.title": "layer2.tar.zst"}
    assert m.layers[2].urls == ("https://mcr.microsoft.com/v2/x/blobs/" + sha("l3"),)
    assert m.subject is not None
    assert m.subject.digest == Digest.parse(sha("subject"))
    assert m.annotations == {"com.example.key1": "value1", "com.example.key2": "value2"}
    assert m.artifact_type is None
    assert m.referenced_blobs() == (m.config, *m.layers)
    assert parse_manifest(raw, MediaType.OCI_MANIFEST) == m
    assert ImageManifest.from_json(raw) == m
    assert manifest_digest(raw) == Digest.from_bytes(raw)


def test_parse_oci_manifest_without_media_type_field() -> None:
    doc = {k: v for k, v in OCI_MANIFEST.items() if k != "mediaType"}
    m = parse_manifest(dump(doc))
    assert isinstance(m, ImageManifest)
    assert m.media_type == MediaType.OCI_MANIFEST
    assert not m.has_media_type_field
    assert "mediaType" not in json.loads(m.to_json())
    assert parse_manifest(m.to_json()) == m


def test_parse_oci_index() -> None:
    raw = dump(OCI_INDEX)
    idx = parse_manifest(raw)
    assert isinstance(idx, ImageIndex)
    assert idx.media_type == MediaType.OCI_INDEX
    assert idx.is_oci
    assert len(idx.manifests) == 4
    assert idx.manifests[0].platform == Platform("linux", "ppc64le")
    assert idx.manifests[1].annotations == {"org.opencontainers.image.ref.name": "1.0"}
    win = idx.manifests[2].platform
    assert win is not None
    assert (win.os, win.os_version, win.os_features) == ("windows", "10.0.17763.5458",
                                                         ("win32k",))
    assert idx.manifests[3].platform is None
    assert idx.manifests[3].artifact_type == "application/spdx+json"
    assert idx.annotations == {"com.example.key1": "value1"}
    assert ImageIndex.from_json(raw) == idx
    assert parse_manifest(raw, MediaType.OCI_INDEX) == idx


def test_parse_oci_index_without_media_type_field() -> None:
    doc = {k: v for k, v in OCI_INDEX.items() if k != "mediaType"}
    idx = parse_manifest(dump(doc))
    assert isinstance(idx, ImageIndex)
    assert idx.media_type == MediaType.OCI_INDEX
    assert not idx.has_media_type_field


def test_parse_docker_schema2() -> None:
    raw = dump(DOCKER_MANIFEST)
    m = parse_manifest(raw)
    assert isinstance(m, ImageManifest)
    assert m.media_type == MediaType.DOCKER_MANIFEST
    assert not m.is_oci
    assert m.config.media_type == MediaType.DOCKER_CONFIG
    assert m.config.digest == Digest.parse(sha("config"))
    assert [layer.digest for layer in m.layers] == [Digest.parse(sha("l1")),
                                                    Digest.parse(sha("l2"))]
    assert m.layers[1].urls == ("https://mcr.microsoft.com/v2/x/blobs/" + sha("l2"),)
    assert parse_manifest(raw, MediaType.DOCKER_MANIFEST) == m


def test_parse_docker_manifest_list() -> None:
    raw = dump(DOCKER_LIST)
    idx = parse_manifest(raw)
    assert isinstance(idx, ImageIndex)
    assert idx.media_type == MediaType.DOCKER_MANIFEST_LIST
    assert not idx.is_oci
    assert [m.platform for m in idx.manifests] == [
        Platform("linux", "ppc64le"), Platform("linux", "arm", "v7", features=("sse4",))]
    assert parse_manifest(raw, MediaType.DOCKER_MANIFEST_LIST) == idx


def test_parse_schema1_unsigned() -> None:
    raw = dump(SCHEMA1)
    m = parse_manifest(raw)
    assert isinstance(m, Schema1Manifest)
    assert m.media_type == MediaType.DOCKER_SCHEMA1
    assert not m.signed
    assert (m.name, m.tag, m.architecture) == ("library/hello", "latest", "amd64")
    assert m.fs_layers == (Digest.parse(GZIP_EMPTY_LAYER), Digest.parse(sha("base")))
    assert len(m.history) == 2
    assert m.payload == raw
    assert manifest_digest(raw) == Digest.from_bytes(raw)
    # from the base layer up, with the throwaway flag of each entry
    assert m.layer_entries() == [(Digest.parse(sha("base")), False),
                                 (Digest.parse(GZIP_EMPTY_LAYER), True)]
    assert [c["id"] for c in m.v1_compatibility()] == [h("top"), h("bottom")]
    assert parse_manifest(raw, MediaType.DOCKER_SCHEMA1) == m


@pytest.mark.parametrize("signatures", [1, 2])
def test_parse_schema1_signed(signatures: int) -> None:
    payload = dump(SCHEMA1)
    raw = sign_schema1(payload, signatures=signatures)
    assert raw != payload
    assert json.loads(raw)["signatures"]
    m = parse_manifest(raw)
    assert isinstance(m, Schema1Manifest)
    assert m.signed
    assert m.media_type == MediaType.DOCKER_SCHEMA1_SIGNED
    assert m.payload == payload
    assert m.fs_layers == (Digest.parse(GZIP_EMPTY_LAYER), Digest.parse(sha("base")))
    assert parse_manifest(raw, MediaType.DOCKER_SCHEMA1_SIGNED) == m
    # the digest of a signed schema1 manifest is the digest of its payload
    assert manifest_digest(raw) == Digest.from_bytes(payload)
    assert manifest_digest(raw) == Digest("sha256", hashlib.sha256(payload).hexdigest())
    assert manifest_digest(raw) != Digest.from_bytes(raw)
    assert manifest_digest(raw, "sha512") == Digest.from_bytes(payload, "sha512")


def test_parse_schema1_signed_compact_payload() -> None:
    payload = json.dumps(SCHEMA1, separators=(",", ":")).encode()
    raw = sign_schema1(payload)
    m = parse_manifest(raw)
    assert isinstance(m, Schema1Manifest)
    assert m.payload == payload
    assert manifest_digest(raw) == Digest.from_bytes(payload)


@pytest.mark.parametrize("headers", [
    pytest.param([{"formatTail": _b64url(b"\n}")}], id="no-formatLength"),
    pytest.param([{"formatLength": 10}], id="no-formatTail"),
    pytest.param([{"formatLength": "10", "formatTail": _b64url(b"\n}")}], id="string-length"),
    pytest.param([{"formatLength": -1, "formatTail": _b64url(b"\n}")}], id="negative-length"),
    pytest.param([{"formatLength": 10**9, "formatTail": _b64url(b"\n}")}], id="huge-length"),
    pytest.param([{"formatLength": 10, "formatTail": 5}], id="int-tail"),
    pytest.param([{"formatLength": 10, "formatTail": "!!not base64!!"}], id="bad-tail"),
    pytest.param(["not an object"], id="header-not-object"),
])
def test_schema1_bad_protected_header(headers: list[Any]) -> None:
    raw = sign_schema1(dump(SCHEMA1), headers=headers)
    with pytest.raises(SpecError):
        parse_manifest(raw)


def test_schema1_signatures_must_agree() -> None:
    payload = dump(SCHEMA1)
    length, tail = _format(payload)
    headers = [{"formatLength": length, "formatTail": _b64url(tail)},
               {"formatLength": length - 1, "formatTail": _b64url(tail)}]
    with pytest.raises(SpecError, match="disagree"):
        parse_manifest(sign_schema1(payload, headers=headers))


@pytest.mark.parametrize("signature", [
    "x", 1, None, {"protected": 5}, {"protected": "!!!"}, {"protected": _b64url(b"not json")},
    {"header": {}},
])
def test_schema1_malformed_signature_entries(signature: Any) -> None:
    doc = {**SCHEMA1, "signatures": [signature]}
    with pytest.raises(SpecError):
        parse_manifest(dump(doc))


def test_schema1_consecutive_duplicate_layers_are_dropped() -> None:
    doc = {**SCHEMA1,
           "fsLayers": [{"blobSum": sha("a")}, {"blobSum": sha("b")}, {"blobSum": sha("c")}],
           "history": schema1_history([
               {"id": h("top"), "parent": h("bottom")},
               {"id": h("bottom")},
               {"id": h("bottom")},
           ])}
    m = parse_manifest(dump(doc))
    assert isinstance(m, Schema1Manifest)
    assert m.fs_layers == (Digest.parse(sha("a")), Digest.parse(sha("c")))
    assert len(m.history) == 2


@pytest.mark.parametrize("change", [
    pytest.param({"fsLayers": []}, id="no-layers"),
    pytest.param({"fsLayers": [{"blobSum": sha("x")}]}, id="length-mismatch"),
    pytest.param({"history": schema1_history([{"id": h("top"), "parent": h("other")},
                                              {"id": h("bottom")}])}, id="broken-chain"),
    pytest.param({"history": schema1_history([{"id": h("top"), "parent": h("bottom")},
                                              {"id": h("bottom"), "parent": h("x")}])},
                 id="base-with-parent"),
    pytest.param({"history": schema1_history([{"id": "short"}, {"id": h("bottom")}])},
                 id="invalid-id"),
    pytest.param({"history": schema1_history([{"parent": h("bottom")}, {"id": h("bottom")}])},
                 id="missing-id"),
    pytest.param({"history": schema1_history([{"id": 5}, {"id": h("bottom")}])},
                 id="int-id"),
    pytest.param({"fsLayers": [{"blobSum": "sha256:nope"}, {"blobSum": sha("b")}]},
                 id="bad-blobsum"),
    pytest.param({"fsLayers": [{}, {"blobSum": sha("b")}]}, id="missing-blobsum"),
    pytest.param({"history": [{"v1Compatibility": "not json"}, {"v1Compatibility": "{}"}]},
                 id="history-not-json"),
    pytest.param({"history": [{"v1Compatibility": "[]"}, {"v1Compatibility": "[]"}]},
                 id="history-not-object"),
    pytest.param({"history": [{"v1Compatibility": 5}, {"v1Compatibility": 5}]},
                 id="history-not-string"),
    pytest.param({"fsLayers": "x"}, id="fslayers-not-array"),
    pytest.param({"signatures": {"a": 1}}, id="signatures-not-array"),
    pytest.param({"name": 5}, id="name-not-string"),
    pytest.param({"schemaVersion": 2, "mediaType": MediaType.DOCKER_SCHEMA1}, id="version-2"),
    pytest.param({"layers": []}, id="ambiguous-layers"),
    pytest.param({"manifests": []}, id="ambiguous-manifests"),
    pytest.param({"config": {}}, id="ambiguous-config"),
])
def test_schema1_invalid(change: dict[str, Any]) -> None:
    doc = {**SCHEMA1, **change}
    with pytest.raises(SpecError):
        parse_manifest(dump(doc))
    with pytest.raises(SpecError):
        parse_manifest(dump(doc), MediaType.DOCKER_SCHEMA1)


def test_schema1_id_appearing_twice_non_consecutively() -> None:
    doc = {**SCHEMA1,
           "fsLayers": [{"blobSum": sha("a")}, {"blobSum": sha("b")}, {"blobSum": sha("c")}],
           "history": schema1_history([
               {"id": h("bottom"), "parent": h("mid")},
               {"id": h("mid"), "parent": h("bottom")},
               {"id": h("bottom")},
           ])}
    with pytest.raises(SpecError, match="multiple"):
        parse_manifest(dump(doc))


def test_unknown_layer_config_and_artifact_types_accepted() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": MediaType.OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1",
        "config": {"mediaType": MediaType.OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2,
                   "data": "e30="},
        "layers": [
            {"mediaType": "application/spdx+json", "digest": sha("sbom"), "size": 123},
            {"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
             "digest": sha("chart"), "size": 4567,
             "artifactType": "application/vnd.example.thing"},
        ],
        "subject": {"mediaType": MediaType.OCI_MANIFEST, "digest": sha("img"), "size": 1},
    }
    m = parse_manifest(dump(doc))
    assert isinstance(m, ImageManifest)
    assert m.artifact_type == "application/vnd.example.sbom.v1"
    assert m.config.data == b"{}"
    assert m.layers[0].media_type == "application/spdx+json"
    assert m.layers[1].artifact_type == "application/vnd.example.thing"
    helm = {**doc, "artifactType": None,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                       "digest": sha("cfg"), "size": 1}}
    assert isinstance(parse_manifest(dump(helm)), ImageManifest)


def test_oci_empty_config_requires_artifact_type() -> None:
    doc = {**OCI_MANIFEST,
           "config": {"mediaType": MediaType.OCI_EMPTY, "digest": EMPTY_JSON_DIGEST,
                      "size": 2}}
    with pytest.raises(SpecError):
        parse_manifest(dump(doc))


def test_descriptor_data_checked() -> None:
    good = {"mediaType": MediaType.OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2,
            "data": "e30="}
    assert Descriptor.from_json(good).data == b"{}"
    for bad in [{**good, "data": "e3A="}, {**good, "data": "not base64!"},
                {**good, "size": 3}, {**good, "data": 5}]:
        with pytest.raises(SpecError):
            Descriptor.from_json(bad)


def test_descriptor_rejects_negative_or_bool_size() -> None:
    d = Digest.parse(sha("x"))
    for size in [-1, True, 1.5]:
        with pytest.raises(SpecError):
            Descriptor(MediaType.OCI_LAYER, d, size)  # type: ignore[arg-type]


@pytest.mark.parametrize(("doc", "expected"), [
    ({"mediaType": "application/x"}, "application/x"),
    ({"schemaVersion": 1}, MediaType.DOCKER_SCHEMA1),
    ({"schemaVersion": 1, "signatures": [{}]}, MediaType.DOCKER_SCHEMA1_SIGNED),
    ({"schemaVersion": 2, "config": {"mediaType": MediaType.DOCKER_CONFIG}},
     MediaType.DOCKER_MANIFEST),
    ({"schemaVersion": 2, "config": {"mediaType": MediaType.OCI_CONFIG}, "layers": []},
     MediaType.OCI_MANIFEST),
    ({"schemaVersion": 2, "manifests": []}, MediaType.OCI_INDEX),
])
def test_guess_media_type(doc: dict[str, Any], expected: str) -> None:
    assert guess_media_type(doc) == expected


@pytest.mark.parametrize("doc", [{}, {"schemaVersion": 3}, {"schemaVersion": "2"}])
def test_guess_media_type_fails(doc: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        guess_media_type(doc)


@pytest.mark.parametrize("served", [
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    " application/vnd.oci.image.manifest.v1+json ",
    "application/json", "text/plain", "application/octet-stream", "", None,
])
def test_served_media_type_parameters_and_generic_types(served: str | None) -> None:
    m = parse_manifest(dump(OCI_MANIFEST), served)
    assert isinstance(m, ImageManifest)
    assert m.media_type == MediaType.OCI_MANIFEST


def test_from_json_type_checks() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        ImageManifest.from_json(dump(OCI_INDEX))
    with pytest.raises(UnsupportedMediaTypeError):
        ImageIndex.from_json(dump(DOCKER_MANIFEST))
    with pytest.raises(UnsupportedMediaTypeError):
        ImageIndex.from_json(dump(SCHEMA1))


# ---------------------------------------------------------------------------------------
# strictness


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``path`` ("a/0/b") set to ``value`` (or deleted: ``DEL``)."""
    out = copy.deepcopy(doc)
    *parents, last = path.split("/")
    target: Any = out
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if value is DEL:
        del target[int(last) if isinstance(target, list) else last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return out


DEL = object()

INVALID: list[Any] = [
    # wrong field types
    (OCI_MANIFEST, "schemaVersion", "2", None, SpecError),
    (OCI_MANIFEST, "schemaVersion", True, None, SpecError),
    (OCI_MANIFEST, "schemaVersion", 2.5, None, SpecError),
    (OCI_MANIFEST, "mediaType", 5, None, SpecError),
    (OCI_MANIFEST, "config", [], None, SpecError),
    (OCI_MANIFEST, "config", "sha256:x", None, SpecError),
    (OCI_MANIFEST, "layers", {}, None, SpecError),
    (OCI_MANIFEST, "layers", [1], None, SpecError),
    (OCI_MANIFEST, "layers/0/size", "32654", None, SpecError),
    (OCI_MANIFEST, "layers/0/size", 1.5, None, SpecError),
    (OCI_MANIFEST, "layers/0/size", True, None, SpecError),
    (OCI_MANIFEST, "layers/0/size", None, None, SpecError),
    (OCI_MANIFEST, "layers/0/digest", 5, None, SpecError),
    (OCI_MANIFEST, "layers/0/digest", "sha256:abc", None, SpecError),
    (OCI_MANIFEST, "layers/0/digest", sha("x").upper(), None, SpecError),
    (OCI_MANIFEST, "layers/0/digest", "md5:d41d8cd98f00b204e9800998ecf8427e", None, SpecError),
    (OCI_MANIFEST, "layers/0/mediaType", 5, None, SpecError),
    (OCI_MANIFEST, "layers/0/urls", "https://x", None, SpecError),
    (OCI_MANIFEST, "layers/0/urls", [1], None, SpecError),
    (OCI_MANIFEST, "layers/0/annotations", [], None, SpecError),
    (OCI_MANIFEST, "layers/0/annotations", {"a": 1}, None, SpecError),
    (OCI_MANIFEST, "layers/0/artifactType", 5, None, SpecError),
    (OCI_MANIFEST, "layers/0/data", 5, None, SpecError),
    (OCI_MANIFEST, "layers/0/data", "aGVsbG8=", None, SpecError),
    (OCI_MANIFEST, "layers/0/platform", "linux/amd64", None, SpecError),
    (OCI_MANIFEST, "annotations", [], None, SpecError),
    (OCI_MANIFEST, "annotations", {"a": None}, None, SpecError),
    (OCI_MANIFEST, "annotations", {"a": {"b": "c"}}, None, SpecError),
    (OCI_MANIFEST, "subject", [], None, SpecError),
    (OCI_MANIFEST, "subject/size", -1, None, SpecError),
    (OCI_MANIFEST, "artifactType", 5, None, SpecError),
    (OCI_INDEX, "manifests", {}, None, SpecError),
    (OCI_INDEX, "manifests/0", None, None, SpecError),
    (OCI_INDEX, "manifests/0/platform/architecture", 5, None, SpecError),
    (OCI_INDEX, "manifests/0/platform/os.features", "x", None, SpecError),
    (DOCKER_LIST, "manifests/0/platform", "linux", None, SpecError),
    # negative sizes
    (OCI_MANIFEST, "config/size", -1, None, SpecError),
    (OCI_MANIFEST, "layers/2/size", -7023, None, SpecError),
    (OCI_INDEX, "manifests/1/size", -1, None, SpecError),
    (DOCKER_MANIFEST, "layers/0/size", -1, None, SpecError),
    (DOCKER_LIST, "manifests/0/size", -1, None, SpecError),
    # missing required fields
    (OCI_MANIFEST, "schemaVersion", DEL, None, SpecError),
    (OCI_MANIFEST, "schemaVersion", DEL, MediaType.OCI_MANIFEST, SpecError),
    (OCI_MANIFEST, "config", DEL, None, SpecError),
    (OCI_MANIFEST, "layers", DEL, None, SpecError),
    (OCI_MANIFEST, "config/mediaType", DEL, None, SpecError),
    (OCI_MANIFEST, "config/digest", DEL, None, SpecError),
    (OCI_MANIFEST, "config/size", DEL, None, SpecError),
    (OCI_MANIFEST, "layers/0/digest", DEL, None, SpecError),
    (OCI_INDEX, "manifests", DEL, MediaType.OCI_INDEX, SpecError),
    (OCI_INDEX, "manifests/0/size", DEL, None, SpecError),
    (DOCKER_MANIFEST, "mediaType", DEL, MediaType.DOCKER_MANIFEST, SpecError),
    (DOCKER_MANIFEST, "config", DEL, None, SpecError),
    (DOCKER_LIST, "mediaType", DEL, MediaType.DOCKER_MANIFEST_LIST, SpecError),
    (DOCKER_LIST, "manifests", DEL, None, SpecError),
    (DOCKER_LIST, "manifests/1/platform", DEL, None, SpecError),
    # wrong schema versions
    (OCI_MANIFEST, "schemaVersion", 1, None, SpecError),
    (OCI_MANIFEST, "schemaVersion", 3, None, SpecError),
    (OCI_INDEX, "schemaVersion", 1, None, SpecError),
    (DOCKER_MANIFEST, "schemaVersion", 1, None, SpecError),
    # unknown manifest media types
    (OCI_MANIFEST, "mediaType", "application/vnd.example.manifest+json", None,
     UnsupportedMediaTypeError),
    (OCI_MANIFEST, "mediaType", MediaType.OCI_CONFIG, None, UnsupportedMediaTypeError),
    (OCI_MANIFEST, "mediaType", DEL, "application/vnd.example.manifest+json",
     UnsupportedMediaTypeError),
    (OCI_MANIFEST, "mediaType", DEL, MediaType.OCI_LAYER_GZIP, UnsupportedMediaTypeError),
    # the body's mediaType disagrees with the served one
    (OCI_MANIFEST, "schemaVersion", 2, MediaType.OCI_INDEX, SpecError),
    (OCI_MANIFEST, "schemaVersion", 2, MediaType.DOCKER_MANIFEST, SpecError),
    (OCI_INDEX, "schemaVersion", 2, MediaType.OCI_MANIFEST, SpecError),
    (DOCKER_MANIFEST, "schemaVersion", 2, MediaType.OCI_MANIFEST, SpecError),
    (DOCKER_LIST, "schemaVersion", 2, MediaType.OCI_INDEX, SpecError),
    (OCI_MANIFEST, "mediaType", MediaType.DOCKER_MANIFEST, MediaType.OCI_MANIFEST, SpecError),
    # served as a type the body cannot be
    (OCI_MANIFEST, "mediaType", DEL, MediaType.OCI_INDEX, SpecError),
    (OCI_INDEX, "mediaType", DEL, MediaType.OCI_MANIFEST, SpecError),
    (OCI_MANIFEST, "mediaType", DEL, MediaType.DOCKER_MANIFEST, SpecError),
    # ambiguous documents
    (OCI_INDEX, "layers", [], None, SpecError),
    (OCI_INDEX, "config", OCI_MANIFEST["config"], None, SpecError),
    (OCI_INDEX, "fsLayers", [], None, SpecError),
    (OCI_MANIFEST, "manifests", [], None, SpecError),
    (OCI_MANIFEST, "manifests", OCI_INDEX["manifests"], None, SpecError),
    (OCI_MANIFEST, "history", [], None, SpecError),
    (DOCKER_MANIFEST, "manifests", [], None, SpecError),
    (DOCKER_LIST, "layers", DOCKER_MANIFEST["layers"], None, SpecError),
    (DOCKER_LIST, "config", DOCKER_MANIFEST["config"], None, SpecError),
]


@pytest.mark.parametrize(("base", "path", "value", "served", "expected"), INVALID,
                         ids=lambda v: str(v)[:40] if isinstance(v, str | int) else None)
def test_invalid_documents(base: dict[str, Any], path: str, value: Any, served: str | None,
                           expected: type[SpecError]) -> None:
    assert issubclass(expected, SpecError)
    raw = dump(_set(base, path, value))
    with pytest.raises(expected):
        parse_manifest(raw, served)


@pytest.mark.parametrize("raw", [
    b"", b" ", b"null", b"[]", b"\"manifest\"", b"42", b"true", b"{", b"{]",
    b"\xff\xfe\x00{", b"\x80\x81", b"{\"schemaVersion\": 2,}", b"[" * 50_000,
    b"{\"a\":" * 50_000,
])
def test_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(SpecError):
        parse_manifest(raw)


def test_size_limit() -> None:
    raw = dump(OCI_MANIFEST)
    assert isinstance(parse_manifest(raw, limit=len(raw)), ImageManifest)
    with pytest.raises(ContentTooLargeError):
        parse_manifest(raw, limit=len(raw) - 1)
    padded = dump({**OCI_MANIFEST, "annotations": {"pad": "x" * DEFAULT_SIZE_LIMIT}})
    assert len(padded) > 4 * 1024 * 1024
    with pytest.raises(ContentTooLargeError) as info:
        parse_manifest(padded)
    assert isinstance(info.value, SpecError)
    with pytest.raises(ContentTooLargeError):
        ImageManifest.from_json(padded)
    with pytest.raises(ContentTooLargeError):
        ImageIndex.from_json(dump({**OCI_INDEX, "annotations": {"p": "x" * DEFAULT_SIZE_LIMIT}}))
    # exactly at the limit is fine
    at_limit = dump({**OCI_MANIFEST, "annotations": {"pad": ""}})
    pad = DEFAULT_SIZE_LIMIT - len(at_limit)
    at_limit = dump({**OCI_MANIFEST, "annotations": {"pad": "x" * pad}})
    assert len(at_limit) == DEFAULT_SIZE_LIMIT
    assert isinstance(parse_manifest(at_limit), ImageManifest)


# ---------------------------------------------------------------------------------------
# known bugs


def test_schema1_deeply_nested_v1_compatibility_is_a_spec_error() -> None:
    doc = {**SCHEMA1, "history": [{"v1Compatibility": "[" * 100_000},
                                  SCHEMA1["history"][1]]}
    with pytest.raises(SpecError):
        parse_manifest(json.dumps(doc).encode())


def test_manifest_digest_of_deeply_nested_json() -> None:
    raw = b"[" * 100_000
    assert manifest_digest(raw) == Digest.from_bytes(raw)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_rejected(constant: bytes) -> None:
    raw = b'{"schemaVersion":2,"mediaType":"' + MediaType.OCI_INDEX.encode() + \
        b'","manifests":[],"x":' + constant + b"}"
    with pytest.raises(SpecError):
        parse_manifest(raw)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_non_utf8_manifest_rejected(encoding: str) -> None:
    raw = json.dumps(OCI_INDEX).encode(encoding)
    with pytest.raises(SpecError):
        parse_manifest(raw)


@pytest.mark.parametrize(("base", "key"), [(OCI_INDEX, "Layers"), (OCI_MANIFEST, "Manifests"),
                                           (OCI_INDEX, "CONFIG")])
def test_ambiguity_check_is_case_insensitive(base: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError):
        parse_manifest(dump({**base, key: []}))


def test_lone_surrogate_annotation_can_be_serialised() -> None:
    raw = dump(OCI_INDEX).replace(b'"value1"', b'"\\ud800"')
    idx = parse_manifest(raw)
    assert isinstance(idx, ImageIndex)
    assert isinstance(parse_manifest(idx.to_json()), ImageIndex)


# ---------------------------------------------------------------------------------------
# serialisation


def test_docker_manifest_to_json_exact_bytes() -> None:
    m = ImageManifest(
        media_type=MediaType.DOCKER_MANIFEST,
        config=Descriptor(MediaType.DOCKER_CONFIG, Digest.parse(sha("config")), 1469),
        layers=(
            Descriptor(MediaType.DOCKER_LAYER_GZIP, Digest.parse(sha("l1")), 977),
            Descriptor(MediaType.DOCKER_FOREIGN_LAYER_GZIP, Digest.parse(sha("l2")), 5,
                       urls=("https://example.com/a?b=c&d",),
                       annotations={"dropped": "yes"}),
        ),
    )
    assert m.to_json() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json",'
        b'"size":1469,"digest":"' + sha("config").encode() + b'"},'
        b'"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",'
        b'"size":977,"digest":"' + sha("l1").encode() + b'"},'
        b'{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",'
        b'"size":5,"digest":"' + sha("l2").encode() + b'",'
        b'"urls":["https://example.com/a?b=c\\u0026d"]}]}'
    )


def test_docker_manifest_list_to_json_exact_bytes() -> None:
    idx = ImageIndex(
        media_type=MediaType.DOCKER_MANIFEST_LIST,
        manifests=(Descriptor(MediaType.DOCKER_MANIFEST, Digest.parse(sha("arm")), 7682,
                              platform=Platform("linux", "arm", "v7")),),
    )
    assert idx.to_json() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2'
        b'+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json'
        b'","size":7682,"digest":"' + sha("arm").encode() + b'",'
        b'"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}'
    )


def test_oci_manifest_to_json_exact_bytes() -> None:
    m = ImageManifest(
        media_type=MediaType.OCI_MANIFEST,
        artifact_type="application/vnd.example+type",
        config=Descriptor(MediaType.OCI_EMPTY, Digest.parse(EMPTY_JSON_DIGEST), 2, data=b"{}"),
        layers=(Descriptor("application/x", Digest.parse(sha("l1")), 3,
                           annotations={"t": "<&>"}),),
        subject=Descriptor(MediaType.OCI_MANIFEST, Digest.parse(sha("s")), 9),
        annotations={"k": "v"},
    )
    assert m.to_json() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"artifactType":"application/vnd.example+type",'
        b'"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"'
        + EMPTY_JSON_DIGEST.encode() + b'","size":2,"data":"e30="},'
        b'"layers":[{"mediaType":"application/x","digest":"' + sha("l1").encode() +
        b'","size":3,"annotations":{"t":"\\u003c\\u0026\\u003e"}}],'
        b'"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"'
        + sha("s").encode() + b'","size":9},"annotations":{"k":"v"}}'
    )


@pytest.mark.parametrize("doc", [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST],
                         ids=["oci-manifest", "oci-index", "docker", "docker-list"])
def test_to_json_of_parsed_examples_is_compact_equivalent(doc: dict[str, Any]) -> None:
    m = parse_manifest(dump(doc))
    assert not isinstance(m, Schema1Manifest)
    out = m.to_json()
    assert out == json.dumps(doc, separators=(",", ":")).encode()
    assert parse_manifest(out) == m


@given(ocist.manifests())
def test_round_trip(m: ImageManifest | ImageIndex) -> None:
    raw = m.to_json()
    assert parse_manifest(raw) == m
    assert parse_manifest(raw, m.media_type) == m
    again = parse_manifest(raw)
    assert not isinstance(again, Schema1Manifest)
    assert again.to_json() == raw
    assert manifest_digest(raw) == Digest.from_bytes(raw)
    assert b"\n" not in raw


@given(ocist.image_manifests())
def test_image_manifest_round_trip_via_from_json(m: ImageManifest) -> None:
    assert ImageManifest.from_json(m.to_json()) == m


@given(ocist.image_indexes())
def test_image_index_round_trip_via_from_json(idx: ImageIndex) -> None:
    assert ImageIndex.from_json(idx.to_json()) == idx


@given(ocist.docker_manifests())
def test_docker_descriptor_field_order(m: ImageManifest) -> None:
    obj = json.loads(m.to_json())
    assert list(obj) == ["schemaVersion", "mediaType", "config", "layers"]
    for desc in [obj["config"], *obj["layers"]]:
        assert list(desc)[:3] == ["mediaType", "size", "digest"]


# ---------------------------------------------------------------------------------------
# fuzzing: nothing but SpecError may come out of the parsers

_MISSING = object()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_manifests(draw: st.DrawFn) -> bytes:
    """A valid manifest (of any format) with one member replaced, deleted or added."""
    base = draw(st.one_of(
        ocist.manifests().map(lambda m: json.loads(m.to_json())),
        st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, SCHEMA1]),
    ))
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        replacement = draw(st.one_of(ocist.json_values(max_leaves=6), st.just(_MISSING),
                                     st.sampled_from([-1, "", "sha256:x", None, 1.0, [], {}])))
        if not path:
            if replacement is not _MISSING:
                doc = replacement
            continue
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        if replacement is _MISSING:
            del parent[path[-1]]
        else:
            parent[path[-1]] = replacement
    return json.dumps(doc).encode()


served_types = st.one_of(st.none(), st.sampled_from(ocist.MANIFEST_MEDIA_TYPES),
                         ocist.media_types())


def _parse_or_spec_error(raw: bytes, served: str | None) -> None:
    try:
        parsed = parse_manifest(raw, served)
    except SpecError:
        return
    assert isinstance(parsed, ImageManifest | ImageIndex | Schema1Manifest)


@given(st.binary(max_size=300), served_types)
def test_fuzz_random_bytes(raw: bytes, served: str | None) -> None:
    _parse_or_spec_error(raw, served)


@given(ocist.json_values(), served_types)
def test_fuzz_random_json(value: Any, served: str | None) -> None:
    _parse_or_spec_error(json.dumps(value).encode(), served)


@given(mutated_manifests(), served_types)
def test_fuzz_mutated_manifests(raw: bytes, served: str | None) -> None:
    _parse_or_spec_error(raw, served)


@given(st.one_of(st.binary(max_size=300), ocist.json_values().map(
    lambda v: json.dumps(v).encode()), mutated_manifests()))
def test_fuzz_manifest_digest(raw: bytes) -> None:
    try:
        d = manifest_digest(raw)
    except SpecError:
        return
    assert isinstance(d, Digest)


# ---------------------------------------------------------------------------------------
# media type predicates


def test_media_type_predicates() -> None:
    assert is_index(MediaType.OCI_INDEX)
    assert is_index(MediaType.DOCKER_MANIFEST_LIST)
    assert not is_index(MediaType.OCI_MANIFEST)
    assert is_single_manifest(MediaType.DOCKER_SCHEMA1_SIGNED)
    assert not is_single_manifest(MediaType.OCI_INDEX)
    assert all(is_manifest(t) for t in ocist.MANIFEST_MEDIA_TYPES)
    assert not is_manifest(MediaType.OCI_CONFIG)
    assert is_docker_schema1(MediaType.DOCKER_SCHEMA1)
    assert not is_docker_schema1(MediaType.DOCKER_MANIFEST)
    assert all(is_layer(t) for t in ocist.OCI_LAYER_MEDIA_TYPES + ocist.DOCKER_LAYER_MEDIA_TYPES)
    assert not is_layer("application/spdx+json")
    assert is_nondistributable(MediaType.DOCKER_FOREIGN_LAYER_GZIP)
    assert not is_nondistributable(MediaType.OCI_LAYER_GZIP)


@pytest.mark.parametrize(("media_type", "compression"), [
    (MediaType.OCI_LAYER, Compression.NONE),
    (MediaType.OCI_LAYER_GZIP, Compression.GZIP),
    (MediaType.OCI_LAYER_ZSTD, Compression.ZSTD),
    (MediaType.DOCKER_LAYER_GZIP, Compression.GZIP),
    (MediaType.DOCKER_FOREIGN_LAYER, Compression.NONE),
    ("application/vnd.example.layer+gzip", Compression.GZIP),
    ("application/vnd.example.layer+zstd", Compression.ZSTD),
    ("application/spdx+json", None),
])
def test_compression_of(media_type: str, compression: Compression | None) -> None:
    assert compression_of(media_type) is compression


def test_layer_media_type() -> None:
    for media_type in ocist.OCI_LAYER_MEDIA_TYPES + ocist.DOCKER_LAYER_MEDIA_TYPES:
        compression = compression_of(media_type)
        assert compression is not None
        assert layer_media_type(oci=media_type.startswith("application/vnd.oci"),
                                compression=compression,
                                nondistributable=is_nondistributable(media_type)) == media_type
    assert layer_media_type(oci=False, compression=Compression.ZSTD) is None
