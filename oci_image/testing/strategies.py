"""Hypothesis strategies for the spec model of :mod:`oci_image.spec`.

Every strategy here generates *valid* values: documents that ``parse_manifest`` /
``ImageConfig.from_json`` accept and that survive a ``to_json()`` / parse round trip
unchanged, and reference strings that follow distribution/reference's grammar.

    from hypothesis import given
    from oci_image.testing import strategies as ocist

    @given(ocist.manifests())
    def test_round_trip(m):
        assert parse_manifest(m.to_json()) == m

Notes on what is (deliberately) not generated:

* Docker schema2 manifests and manifest lists only carry what their JSON can express
  (no annotations, ``data``, ``artifactType`` or ``subject``), so that they round-trip.
* OCI manifests without a ``mediaType`` field never use the Docker config media type:
  such a document is guessed to be a Docker schema2 manifest (as containers/image does).
* An OCI manifest whose config is the empty descriptor always has an ``artifactType``.
* References are normalised (``domain`` set, Docker Hub official images under
  ``library/``); digests in references are sha256 or sha512 (the algorithms supported).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ..spec import (
    SUPPORTED_ALGORITHMS,
    ContainerConfig,
    Descriptor,
    Digest,
    HistoryEntry,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    Reference,
    RootFS,
)

__all__ = [
    "CONFIG_MEDIA_TYPES",
    "DOCKER_LAYER_MEDIA_TYPES",
    "KNOWN_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "OCI_LAYER_MEDIA_TYPES",
    "annotation_maps",
    "config_media_types",
    "content_and_digest",
    "descriptors",
    "digest_strings",
    "digests",
    "docker_manifest_lists",
    "docker_manifests",
    "image_configs",
    "image_indexes",
    "image_manifests",
    "json_values",
    "layer_media_types",
    "manifests",
    "media_types",
    "oci_indexes",
    "oci_manifests",
    "platforms",
    "reference_domains",
    "reference_strings",
    "reference_tags",
    "references",
    "unknown_media_types",
]

OCI_LAYER_MEDIA_TYPES: Final[tuple[str, ...]] = (
    MediaType.OCI_LAYER,
    MediaType.OCI_LAYER_GZIP,
    MediaType.OCI_LAYER_ZSTD,
    MediaType.OCI_LAYER_NONDIST,
    MediaType.OCI_LAYER_NONDIST_GZIP,
    MediaType.OCI_LAYER_NONDIST_ZSTD,
)
DOCKER_LAYER_MEDIA_TYPES: Final[tuple[str, ...]] = (
    MediaType.DOCKER_LAYER,
    MediaType.DOCKER_LAYER_GZIP,
    MediaType.DOCKER_FOREIGN_LAYER,
    MediaType.DOCKER_FOREIGN_LAYER_GZIP,
)
MANIFEST_MEDIA_TYPES: Final[tuple[str, ...]] = (
    MediaType.OCI_MANIFEST,
    MediaType.OCI_INDEX,
    MediaType.DOCKER_MANIFEST,
    MediaType.DOCKER_MANIFEST_LIST,
    MediaType.DOCKER_SCHEMA1,
    MediaType.DOCKER_SCHEMA1_SIGNED,
)
CONFIG_MEDIA_TYPES: Final[tuple[str, ...]] = (
    MediaType.OCI_CONFIG,
    MediaType.DOCKER_CONFIG,
    MediaType.DOCKER_PLUGIN_CONFIG,
    MediaType.OCI_EMPTY,
)
KNOWN_MEDIA_TYPES: Final[tuple[str, ...]] = (
    *MANIFEST_MEDIA_TYPES,
    *CONFIG_MEDIA_TYPES,
    *OCI_LAYER_MEDIA_TYPES,
    *DOCKER_LAYER_MEDIA_TYPES,
    MediaType.OCI_DESCRIPTOR,
    MediaType.OCI_LAYOUT_HEADER,
)

_HEX: Final = "0123456789abcdef"
_GO_INT64_MAX: Final = 2**63 - 1
_EMPTY_JSON: Final = b"{}"
_EMPTY_DIGEST: Final = Digest.from_bytes(_EMPTY_JSON)

# ---------------------------------------------------------------------------------------
# digests


def digests(algorithms: Sequence[str] = ("sha256", "sha512")) -> SearchStrategy[Digest]:
    """Well-formed digests of the given (supported) algorithms."""
    for algorithm in algorithms:
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise ValueError(f"unsupported digest algorithm {algorithm!r}")

    def of(algorithm: str) -> SearchStrategy[Digest]:
        n = SUPPORTED_ALGORITHMS[algorithm] // 2
        return st.binary(min_size=n, max_size=n).map(lambda raw: Digest(algorithm, raw.hex()))

    return st.sampled_from(tuple(algorithms)).flatmap(of)


def digest_strings(algorithms: Sequence[str] = ("sha256", "sha512")) -> SearchStrategy[str]:
    """``algorithm:hex`` strings that :meth:`Digest.parse` accepts."""
    return digests(algorithms).map(str)


def content_and_digest(max_size: int = 256,
                       algorithms: Sequence[str] = ("sha256", "sha512")
                       ) -> SearchStrategy[tuple[bytes, Digest]]:
    """Some bytes and their digest."""
    return st.tuples(st.binary(max_size=max_size), st.sampled_from(tuple(algorithms))).map(
        lambda t: (t[0], Digest.from_bytes(t[0], t[1])))


# ---------------------------------------------------------------------------------------
# media types

_RESTRICTED_FIRST: Final = string.ascii_letters + string.digits
_RESTRICTED_CHARS: Final = _RESTRICTED_FIRST + "!#$&-^_.+"


def _restricted_names(max_size: int = 30) -> SearchStrategy[str]:
    """RFC 6838 ``restricted-name``."""
    return st.builds(
        lambda first, rest: first + rest,
        st.sampled_from(_RESTRICTED_FIRST),
        st.text(_RESTRICTED_CHARS, max_size=max_size),
    )


def unknown_media_types() -> SearchStrategy[str]:
    """Syntactically valid media types (RFC 6838 ``type/subtype``) that this library does
    not know; they must be carried as opaque strings."""
    vendor = st.builds(
        lambda kind, name, suffix: f"application/vnd.{kind}.{name}{suffix}",
        st.sampled_from(["example", "acme", "cncf.helm", "dev.cosign"]),
        st.text(string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=20),
        st.sampled_from(["", "+json", "+tar", "+gzip", ".v1+json", "+zstd"]),
    )
    generic = st.builds(lambda t, s: f"{t}/{s}", _restricted_names(12), _restricted_names())
    return st.one_of(vendor, generic).filter(lambda m: m not in KNOWN_MEDIA_TYPES)


def media_types() -> SearchStrategy[str]:
    """Any media type: a known one of the OCI / Docker formats or an unknown one."""
    return st.one_of(st.sampled_from(KNOWN_MEDIA_TYPES), unknown_media_types())


_any_media_type = media_types


def layer_media_types(*, oci: bool | None = None,
                      unknown: bool = False) -> SearchStrategy[str]:
    """Known layer media types (OCI when ``oci``, Docker when not, both when ``None``);
    with ``unknown`` also opaque artifact layer types."""
    if oci is None:
        known: tuple[str, ...] = OCI_LAYER_MEDIA_TYPES + DOCKER_LAYER_MEDIA_TYPES
    else:
        known = OCI_LAYER_MEDIA_TYPES if oci else DOCKER_LAYER_MEDIA_TYPES
    strategy = st.sampled_from(known)
    return st.one_of(strategy, unknown_media_types()) if unknown else strategy


def config_media_types(*, unknown: bool = True) -> SearchStrategy[str]:
    """Config media types (known ones, and opaque artifact config types)."""
    strategy = st.sampled_from(CONFIG_MEDIA_TYPES)
    return st.one_of(strategy, unknown_media_types()) if unknown else strategy


# ---------------------------------------------------------------------------------------
# platforms, annotations, descriptors

_OSES: Final = ("linux", "windows", "darwin", "freebsd", "Linux", "macos")
_ARCHES: Final = ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le",
                  "x86_64", "aarch64", "armhf", "armel", "i386", "wasm")
_VARIANTS: Final = ("", "", "v5", "v6", "v7", "v8", "7", "8", "v8.0", "v1", "v2", "v3")
_WORDS: Final = string.ascii_letters + string.digits + "._-"


def platforms(*, normalized: bool = False) -> SearchStrategy[Platform]:
    """Platforms as found in indexes; with ``normalized``, already in canonical form."""
    strategy = st.builds(
        Platform,
        os=st.one_of(st.sampled_from(_OSES), st.text(_WORDS, min_size=1, max_size=10)),
        architecture=st.one_of(st.sampled_from(_ARCHES),
                               st.text(_WORDS, min_size=1, max_size=10)),
        variant=st.sampled_from(_VARIANTS),
        os_version=st.sampled_from(["", "", "10.0.17763.5458", "10.0.20348.2322"]),
        os_features=st.lists(st.sampled_from(["win32k", "feature.x"]), max_size=2).map(tuple),
        features=st.lists(st.text(_WORDS, min_size=1, max_size=8), max_size=2).map(tuple),
    )
    return strategy.map(Platform.normalized) if normalized else strategy


def annotation_maps(max_size: int = 4) -> SearchStrategy[dict[str, str]]:
    """Annotation maps: well-known ``org.opencontainers.image.*`` keys and arbitrary text
    (including characters Go's encoder escapes, such as ``<``, ``&`` and U+2028)."""
    keys = st.one_of(
        st.sampled_from([
            "org.opencontainers.image.created", "org.opencontainers.image.ref.name",
            "org.opencontainers.image.title", "io.containerd.image.name",
            "com.example.<weird>&key",
        ]),
        st.text(max_size=15),
    )
    values = st.one_of(st.text(max_size=30), st.sampled_from(["a<b>&c", "\u2028\u2029", ""]))
    return st.dictionaries(keys, values, max_size=max_size)


def _urls() -> SearchStrategy[str]:
    return st.builds(
        lambda host, path: f"https://{host}/{path}",
        st.sampled_from(["mcr.microsoft.com", "example.com", "blobs.example.org:8443"]),
        st.text(string.ascii_letters + string.digits + "/-_.~?=&", max_size=30),
    )


@st.composite
def descriptors(
    draw: st.DrawFn,
    *,
    media_types: SearchStrategy[str] | None = None,
    docker: bool = False,
    platform: bool | None = None,
    data: bool | None = None,
    urls: bool | None = None,
) -> Descriptor:
    """Content descriptors.

    ``docker`` restricts to what a Docker schema2 descriptor can express (media type,
    size, digest, urls). ``platform``, ``data`` and ``urls``: ``True`` always, ``False``
    never, ``None`` sometimes. ``data``, when present, matches the digest and size.
    """
    media_type = draw(media_types if media_types is not None else _any_media_type())
    with_data = (not docker) and (draw(st.booleans()) if data is None else data)
    if with_data:
        content, digest = draw(content_and_digest(max_size=64))
        size = len(content)
        payload: bytes | None = content
    else:
        digest = draw(digests())
        size = draw(st.one_of(st.integers(0, 1 << 32), st.integers(0, _GO_INT64_MAX)))
        payload = None
    url_list: list[str] = []
    if urls or (urls is None and draw(st.integers(0, 4)) == 0):
        url_list = draw(st.lists(_urls(), min_size=1, max_size=2))
    if docker:
        return Descriptor(media_type=media_type, digest=digest, size=size, urls=url_list)
    with_platform = draw(st.booleans()) if platform is None else platform
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=url_list,
        annotations=draw(annotation_maps()),
        data=payload,
        platform=draw(platforms()) if with_platform else None,
        artifact_type=draw(st.one_of(st.none(), unknown_media_types())),
    )


# ---------------------------------------------------------------------------------------
# manifests and indexes


def _oci_subject() -> SearchStrategy[Descriptor | None]:
    return st.one_of(st.none(), descriptors(
        media_types=st.sampled_from([MediaType.OCI_MANIFEST, MediaType.OCI_INDEX]),
        platform=False, data=False, urls=False))


@st.composite
def oci_manifests(draw: st.DrawFn, *, max_layers: int = 5) -> ImageManifest:
    """OCI image manifests, including artifacts (unknown config/layer media types,
    ``artifactType``, the empty config) and ``subject``."""
    has_media_type_field = draw(st.booleans())
    artifact_type = draw(st.one_of(st.none(), unknown_media_types()))
    config_type = draw(st.one_of(
        st.sampled_from([MediaType.OCI_CONFIG, MediaType.OCI_CONFIG, MediaType.OCI_EMPTY]),
        unknown_media_types()))
    if config_type == MediaType.OCI_EMPTY:
        if artifact_type is None:
            artifact_type = draw(unknown_media_types())
        config = Descriptor(
            media_type=MediaType.OCI_EMPTY, digest=_EMPTY_DIGEST, size=len(_EMPTY_JSON),
            data=_EMPTY_JSON if draw(st.booleans()) else None)
    else:
        config = draw(descriptors(media_types=st.just(config_type), platform=False))
    layers = draw(st.lists(
        descriptors(media_types=layer_media_types(oci=True, unknown=True), platform=False),
        max_size=max_layers))
    return ImageManifest(
        media_type=MediaType.OCI_MANIFEST,
        config=config,
        layers=tuple(layers),
        annotations=draw(annotation_maps()),
        subject=draw(_oci_subject()),
        artifact_type=artifact_type,
        has_media_type_field=has_media_type_field,
    )


@st.composite
def docker_manifests(draw: st.DrawFn, *, max_layers: int = 5) -> ImageManifest:
    """Docker schema2 image manifests (foreign layers may carry ``urls``)."""
    config = draw(descriptors(media_types=st.just(MediaType.DOCKER_CONFIG), docker=True,
                              urls=False))
    layers = []
    for _ in range(draw(st.integers(0, max_layers))):
        media_type = draw(layer_media_types(oci=False))
        foreign = media_type in (MediaType.DOCKER_FOREIGN_LAYER,
                                 MediaType.DOCKER_FOREIGN_LAYER_GZIP)
        layers.append(draw(descriptors(media_types=st.just(media_type), docker=True,
                                       urls=None if foreign else False)))
    return ImageManifest(media_type=MediaType.DOCKER_MANIFEST, config=config,
                         layers=tuple(layers))


@st.composite
def oci_indexes(draw: st.DrawFn, *, max_manifests: int = 5) -> ImageIndex:
    """OCI image indexes; entries are manifests, nested indexes or opaque artifacts."""
    entry_types = st.one_of(
        st.sampled_from([MediaType.OCI_MANIFEST, MediaType.OCI_MANIFEST, MediaType.OCI_INDEX,
                         MediaType.DOCKER_MANIFEST]),
        unknown_media_types())
    entries = draw(st.lists(descriptors(media_types=entry_types), max_size=max_manifests))
    return ImageIndex(
        media_type=MediaType.OCI_INDEX,
        manifests=tuple(entries),
        annotations=draw(annotation_maps()),
        subject=draw(_oci_subject()),
        artifact_type=draw(st.one_of(st.none(), unknown_media_types())),
        has_media_type_field=draw(st.booleans()),
    )


@st.composite
def docker_manifest_lists(draw: st.DrawFn, *, max_manifests: int = 5) -> ImageIndex:
    """Docker manifest lists (every entry has a platform)."""
    entries = []
    for _ in range(draw(st.integers(0, max_manifests))):
        entry = draw(descriptors(
            media_types=st.sampled_from([MediaType.DOCKER_MANIFEST,
                                         MediaType.DOCKER_SCHEMA1_SIGNED]),
            docker=True, urls=False))
        plat = draw(platforms())
        entries.append(Descriptor(media_type=entry.media_type, digest=entry.digest,
                                  size=entry.size, platform=plat))
    return ImageIndex(media_type=MediaType.DOCKER_MANIFEST_LIST, manifests=tuple(entries))


def image_manifests() -> SearchStrategy[ImageManifest]:
    """OCI or Docker schema2 single-image manifests."""
    return st.one_of(oci_manifests(), docker_manifests())


def image_indexes() -> SearchStrategy[ImageIndex]:
    """OCI indexes or Docker manifest lists."""
    return st.one_of(oci_indexes(), docker_manifest_lists())


def manifests() -> SearchStrategy[ImageManifest | ImageIndex]:
    """Any manifest or index this library can write."""
    return st.one_of(image_manifests(), image_indexes())


# ---------------------------------------------------------------------------------------
# image configs


def _timestamps() -> SearchStrategy[str]:
    return st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC)).map(
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _strslice() -> SearchStrategy[tuple[str, ...] | None]:
    return st.one_of(st.none(), st.lists(st.text(max_size=20), max_size=3).map(tuple))


def _container_configs() -> SearchStrategy[ContainerConfig]:
    ports = st.builds(lambda n, proto: f"{n}/{proto}", st.integers(1, 65535),
                      st.sampled_from(["tcp", "udp", "sctp"]))
    env = st.builds(lambda k, v: f"{k}={v}",
                    st.text(string.ascii_uppercase + "_", min_size=1, max_size=10),
                    st.text(max_size=20))
    healthcheck = st.one_of(st.none(), st.fixed_dictionaries(
        {"Test": st.lists(st.text(max_size=10), min_size=1, max_size=3)},
        optional={"Interval": st.integers(0, 10**12), "Retries": st.integers(0, 10)}))
    return st.builds(
        ContainerConfig,
        user=st.sampled_from(["", "root", "1000:1000", "nobody"]),
        exposed_ports=st.lists(ports, unique=True, max_size=3).map(tuple),
        env=st.lists(env, max_size=4).map(tuple),
        entrypoint=_strslice(),
        cmd=_strslice(),
        volumes=st.lists(st.text(min_size=1, max_size=15), unique=True, max_size=2).map(tuple),
        working_dir=st.sampled_from(["", "/", "/app"]),
        labels=annotation_maps(max_size=3),
        stop_signal=st.sampled_from(["", "SIGTERM", "SIGQUIT"]),
        args_escaped=st.booleans(),
        shell=_strslice(),
        healthcheck=healthcheck,
        on_build=_strslice(),
    )


def image_configs() -> SearchStrategy[ImageConfig]:
    """Image configurations that survive ``ImageConfig.from_json(c.to_json()) == c``
    (so ``docker_version``, which OCI configs do not carry, is left empty)."""
    history = st.builds(
        HistoryEntry,
        created=st.one_of(st.none(), _timestamps()),
        created_by=st.text(max_size=30),
        author=st.text(max_size=10),
        comment=st.text(max_size=10),
        empty_layer=st.booleans(),
    )
    return st.builds(
        ImageConfig,
        architecture=st.sampled_from(["amd64", "arm64", "arm", "s390x", ""]),
        os=st.sampled_from(["linux", "windows", ""]),
        variant=st.sampled_from(["", "v7", "v8"]),
        os_version=st.sampled_from(["", "10.0.17763.5458"]),
        os_features=st.lists(st.sampled_from(["win32k"]), max_size=1).map(tuple),
        created=st.one_of(st.none(), _timestamps()),
        author=st.text(max_size=10),
        config=_container_configs(),
        rootfs=st.builds(RootFS, type=st.just("layers"),
                         diff_ids=st.lists(digests(("sha256",)), max_size=4).map(tuple)),
        history=st.lists(history, max_size=4).map(tuple),
        docker_version=st.just(""),
    )


# ---------------------------------------------------------------------------------------
# references

_ALNUM: Final = string.ascii_lowercase + string.digits
_TAG_FIRST: Final = string.ascii_letters + string.digits + "_"
_TAG_CHARS: Final = _TAG_FIRST + ".-"


def _path_components() -> SearchStrategy[str]:
    alnum = st.text(_ALNUM, min_size=1, max_size=8)
    separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
    return st.builds(lambda head, rest: head + "".join(s + a for s, a in rest),
                     alnum, st.lists(st.tuples(separator, alnum), max_size=2))


def _domain_labels() -> SearchStrategy[str]:
    inner = string.ascii_letters + string.digits
    return st.one_of(
        st.text(inner, min_size=1, max_size=1),
        st.builds(lambda a, mid, b: a + mid + b, st.sampled_from(inner),
                  st.text(inner + "-", max_size=8), st.sampled_from(inner)),
    )


def reference_domains() -> SearchStrategy[str]:
    """Registry domains that a reference parser recognises as domains: dotted names,
    ``localhost``, bracketed IPv6 addresses and names with capitals, with optional port."""
    dotted = st.lists(_domain_labels(), min_size=2, max_size=4).map(".".join)
    ipv6 = st.one_of(
        st.sampled_from(["[::1]", "[fe80::1]", "[2001:db8::1]", "[2001:DB8:0:0:0:0:0:1]"]),
        st.lists(st.text("0123456789abcdefABCDEF", min_size=1, max_size=4),
                 min_size=2, max_size=8).map(lambda g: "[" + ":".join(g) + "]"),
    )
    capitalised = st.builds(lambda a, rest: a + rest, st.sampled_from(string.ascii_uppercase),
                            st.text(string.ascii_lowercase + string.digits, max_size=8))
    host = st.one_of(
        st.sampled_from(["docker.io", "quay.io", "ghcr.io", "registry.example.com",
                         "index.docker.io", "localhost"]),
        dotted, ipv6, capitalised,
    )
    port = st.one_of(st.none(), st.integers(0, 65535))
    return st.builds(lambda h, p: h if p is None else f"{h}:{p}", host, port)


def reference_tags() -> SearchStrategy[str]:
    """Valid tags: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    return st.builds(lambda a, rest: a + rest, st.sampled_from(_TAG_FIRST),
                     st.text(_TAG_CHARS, max_size=127))


@st.composite
def references(draw: st.DrawFn, *, tag: bool | None = None,
               digest: bool | None = None) -> Reference:
    """Normalised references, as :meth:`Reference.parse` returns them; ``tag`` and
    ``digest``: ``True`` always, ``False`` never, ``None`` sometimes."""
    domain = draw(st.one_of(st.just("docker.io"), reference_domains()))
    if domain == "index.docker.io":
        domain = "docker.io"
    components = draw(st.lists(_path_components(), min_size=1, max_size=4))
    if domain == "docker.io" and len(components) == 1:
        components.insert(0, "library")
    with_tag = draw(st.booleans()) if tag is None else tag
    with_digest = draw(st.booleans()) if digest is None else digest
    return Reference(
        domain=domain,
        path="/".join(components),
        tag=draw(reference_tags()) if with_tag else None,
        digest=draw(digests()) if with_digest else None,
    )


def reference_strings() -> SearchStrategy[str]:
    """Valid reference strings: the full form or the familiar short form (``busybox``,
    ``library/busybox:1``, ``quay.io/a/b@sha256:...``) of generated references."""
    return references().flatmap(lambda r: st.sampled_from([str(r), r.familiar()]))


# ---------------------------------------------------------------------------------------
# arbitrary JSON


def json_values(max_leaves: int = 20) -> SearchStrategy[Any]:
    """Arbitrary JSON values (what ``json.loads`` can return), for fuzzing parsers."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=5),
            st.dictionaries(st.text(max_size=10), children, max_size=5),
        ),
        max_leaves=max_leaves,
    )
