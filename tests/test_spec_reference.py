"""Docker references (oci_image.spec.reference), checked against the behaviour of
distribution/reference's ``ParseNormalizedNamed`` / ``FamiliarString``."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from oci_image.errors import InvalidReferenceError, SpecError
from oci_image.spec import DEFAULT_DOMAIN, DEFAULT_TAG, Digest, Reference
from oci_image.testing import strategies as ocist

HEX64 = "0123456789abcdef" * 4
SHA256 = f"sha256:{HEX64}"
SHA512 = "sha512:" + "ab" * 64


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest"), [
    ("busybox", "docker.io", "library/busybox", None, None),
    ("library/busybox", "docker.io", "library/busybox", None, None),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("docker.io/library/busybox", "docker.io", "library/busybox", None, None),
    ("index.docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("index.docker.io/x/y", "docker.io", "x/y", None, None),
    ("busybox:latest", "docker.io", "library/busybox", "latest", None),
    ("busybox:1.36.1-musl", "docker.io", "library/busybox", "1.36.1-musl", None),
    (f"busybox@{SHA256}", "docker.io", "library/busybox", None, SHA256),
    (f"localhost:5000/a/b:tag@{SHA256}", "localhost:5000", "a/b", "tag", SHA256),
    ("localhost/foo", "localhost", "foo", None, None),
    ("localhost:5000/foo", "localhost:5000", "foo", None, None),
    ("Foo/bar", "Foo", "bar", None, None),
    ("Docker/docker", "Docker", "docker", None, None),
    ("foo/bar", "docker.io", "foo/bar", None, None),
    ("a/b/c/d/e", "docker.io", "a/b/c/d/e", None, None),
    ("example.com/foo", "example.com", "foo", None, None),
    ("example.com:8080/a/b/c:v1.2.3", "example.com:8080", "a/b/c", "v1.2.3", None),
    ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", None, None),
    ("[::1]:5000/foo:bar", "[::1]:5000", "foo", "bar", None),
    ("[2001:db8::1]/foo", "[2001:db8::1]", "foo", None, None),
    (f"quay.io/a/b@{SHA512}", "quay.io", "a/b", None, SHA512),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
    ("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", None),
    ("a__b/c-d--e.f_g", "docker.io", "a__b/c-d--e.f_g", None, None),
    ("busybox:_", "docker.io", "library/busybox", "_", None),
    ("busybox:" + "T" * 128, "docker.io", "library/busybox", "T" * 128, None),
    ("a" * 63, "docker.io", "library/" + "a" * 63, None, None),
    ("a" * 64 + ":tag", "docker.io", "library/" + "a" * 64, "tag", None),
])
def test_parse_examples(text: str, domain: str, path: str, tag: str | None,
                        digest: str | None) -> None:
    ref = Reference.parse(text)
    assert ref.domain == domain
    assert ref.path == path
    assert ref.tag == tag
    assert ref.digest == (Digest.parse(digest) if digest else None)
    assert ref.name == f"{domain}/{path}"
    assert Reference.parse(str(ref)) == ref


def test_equivalent_spellings_normalise_the_same() -> None:
    spellings = ["busybox", "library/busybox", "docker.io/busybox",
                 "docker.io/library/busybox", "index.docker.io/busybox",
                 "index.docker.io/library/busybox"]
    refs = {Reference.parse(s) for s in spellings}
    assert refs == {Reference(domain=DEFAULT_DOMAIN, path="library/busybox")}
    assert str(refs.pop()) == "docker.io/library/busybox"


def test_str_is_the_full_form() -> None:
    ref = Reference.parse(f"busybox:1@{SHA256}")
    assert str(ref) == f"docker.io/library/busybox:1@{SHA256}"


@pytest.mark.parametrize(("text", "familiar"), [
    ("busybox", "busybox"),
    ("docker.io/library/busybox:1", "busybox:1"),
    ("index.docker.io/library/busybox", "busybox"),
    (f"busybox:1@{SHA256}", f"busybox:1@{SHA256}"),
    ("docker.io/library/a/b", "library/a/b"),
    ("index.docker.io/foo/bar", "foo/bar"),
    ("quay.io/a/b", "quay.io/a/b"),
    ("quay.io/library/b", "quay.io/library/b"),
    (f"localhost:5000/x@{SHA256}", f"localhost:5000/x@{SHA256}"),
    ("Foo/bar:t", "Foo/bar:t"),
])
def test_familiar(text: str, familiar: str) -> None:
    ref = Reference.parse(text)
    assert ref.familiar() == familiar
    assert Reference.parse(familiar) == ref


INVALID = [
    pytest.param("", id="empty"),
    pytest.param("Busybox", id="uppercase-name"),
    pytest.param("library/Busybox", id="uppercase-path"),
    pytest.param("docker/Docker", id="uppercase-second-component"),
    pytest.param("localhost:5000/Foo", id="uppercase-after-domain"),
    pytest.param("quay.io/A/b:tag", id="uppercase-after-dotted-domain"),
    pytest.param(HEX64, id="64-hex-name"),
    pytest.param("a" * 64, id="64-hex-name-letters"),
    pytest.param("a" * 256, id="name-over-255"),
    pytest.param("example.com/" + "a" * 244, id="name-256-with-domain"),
    pytest.param("a/" * 127 + "b", id="many-components-over-255"),
    pytest.param("busybox:", id="empty-tag"),
    pytest.param("busybox:-tag", id="tag-leading-dash"),
    pytest.param("busybox:.tag", id="tag-leading-dot"),
    pytest.param("busybox:" + "a" * 129, id="tag-too-long"),
    pytest.param("busybox:tag!", id="tag-bad-char"),
    pytest.param("busybox:ta g", id="tag-space"),
    pytest.param("busybox:a:b", id="tag-with-colon"),
    pytest.param("busybox@", id="empty-digest"),
    pytest.param("busybox@sha256:abc", id="short-digest"),
    pytest.param("busybox@sha256:" + HEX64.upper(), id="uppercase-digest"),
    pytest.param("busybox@sha256:" + HEX64 + "0", id="digest-too-long"),
    pytest.param("busybox@sha384:" + "a" * 96, id="unsupported-digest"),
    pytest.param("busybox@" + HEX64, id="digest-without-algorithm"),
    pytest.param(f"busybox@{SHA256}:tag", id="tag-after-digest"),
    pytest.param("-foo", id="leading-dash"),
    pytest.param("foo-", id="trailing-dash"),
    pytest.param("foo..bar", id="double-dot"),
    pytest.param("foo___bar", id="triple-underscore"),
    pytest.param("foo/", id="trailing-slash"),
    pytest.param("/foo", id="leading-slash"),
    pytest.param("foo//bar", id="empty-component"),
    pytest.param(" busybox", id="leading-space"),
    pytest.param("busybox ", id="trailing-space"),
    pytest.param("aa/asdf$$^/aa", id="bad-chars"),
    pytest.param("localhost:port/foo", id="non-numeric-port"),
    pytest.param("-example.com/foo", id="domain-leading-dash"),
    pytest.param("example-.com/foo", id="domain-label-trailing-dash"),
    pytest.param("[fe80::1%eth0]:5000/foo", id="ipv6-zone"),
    pytest.param("http://example.com/foo", id="url"),
    pytest.param("quay.io/", id="domain-without-path"),
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, SpecError)


def test_invalid_reference_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        Reference.parse("Busybox")
    with pytest.raises(ValueError, match="64-byte hexadecimal"):
        Reference.parse(HEX64)


def test_name_length_limit_boundary() -> None:
    ok = Reference.parse("example.com/" + "a" * 243)
    assert len(ok.name) == 255
    with pytest.raises(InvalidReferenceError, match="255"):
        Reference.parse("example.com/" + "a" * 244)
    # the limit counts the normalised name, including docker.io/library/
    assert len(Reference.parse("a" * 237).name) == 255
    with pytest.raises(InvalidReferenceError):
        Reference.parse("a" * 238)


@pytest.mark.parametrize("text", ["busybox\n", "busybox:latest\n", f"busybox@{SHA256}\n"])
def test_trailing_newline_rejected(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        Reference.parse(text)


@pytest.mark.parametrize("text", ["busybox:tagé", "busybox:标签", "busybox:٣"])
def test_non_ascii_tag_rejected(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        Reference.parse(text)


@pytest.mark.parametrize("tag", ["latest\n", "é"])
def test_is_valid_tag_rejects_newline_and_non_ascii(tag: str) -> None:
    assert not Reference.is_valid_tag(tag)


@pytest.mark.parametrize(("tag", "valid"), [
    ("latest", True), ("_", True), ("A.b-C_1", True), ("a" * 128, True),
    ("a" * 129, False), ("", False), ("-a", False), (".a", False), ("a b", False),
    ("a:b", False), ("a/b", False),
])
def test_is_valid_tag(tag: str, valid: bool) -> None:
    assert Reference.is_valid_tag(tag) is valid


def test_with_tag_and_digest() -> None:
    ref = Reference.parse("quay.io/a/b")
    assert str(ref.with_tag("v1")) == "quay.io/a/b:v1"
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("bad tag")
    digest = Digest.parse(SHA256)
    assert str(ref.with_digest(digest)) == f"quay.io/a/b@{SHA256}"
    assert ref.with_tag("v1").with_digest(None).digest is None


def test_with_default_tag() -> None:
    assert Reference.parse("busybox").with_default_tag().tag == DEFAULT_TAG == "latest"
    assert Reference.parse("busybox:1").with_default_tag().tag == "1"
    digested = Reference.parse(f"busybox@{SHA256}")
    assert digested.with_default_tag() == digested


def test_parse_named_tagged() -> None:
    assert str(Reference.parse_named_tagged("busybox")) == "docker.io/library/busybox:latest"
    assert Reference.parse_named_tagged("quay.io/a/b:7").tag == "7"
    with pytest.raises(InvalidReferenceError):
        Reference.parse_named_tagged(f"busybox:1@{SHA256}")
    with pytest.raises(InvalidReferenceError):
        Reference.parse_named_tagged("Busybox")


@given(ocist.references())
def test_round_trip(ref: Reference) -> None:
    assert Reference.parse(str(ref)) == ref


@given(ocist.references())
def test_familiar_round_trip(ref: Reference) -> None:
    first = ref.path.split("/", 1)[0]
    # docker.io/foo.bar/baz is written foo.bar/baz, which names the registry foo.bar
    # (the same ambiguity exists in distribution/reference)
    assume(ref.domain != DEFAULT_DOMAIN or ("." not in first and first != "localhost"))
    familiar = ref.familiar()
    assert Reference.parse(familiar) == ref
    assert len(familiar) <= len(str(ref))
    if ref.domain != DEFAULT_DOMAIN:
        assert familiar == str(ref)


@given(ocist.reference_strings())
def test_generated_strings_parse_and_normalise_idempotently(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except InvalidReferenceError:
        # A path whose first component has a "." reads as a (here invalid) registry name,
        # as in distribution/reference: the generator can produce such strings.
        first = text.split("/")[0]
        if "/" in text and ("." in first or ":" in first):
            assume(False)
        raise
    assert Reference.parse(str(ref)) == ref
    first = ref.path.split("/")[0]
    # "docker.io/foo.bar/baz" shortens to "foo.bar/baz", which reads back as registry
    # foo.bar: distribution/reference has the same ambiguity, so such names are excluded.
    looks_like_domain = "." in first or ":" in first or first == "localhost"
    if not (ref.domain == DEFAULT_DOMAIN and looks_like_domain):
        assert Reference.parse(ref.familiar()) == ref
    assert ref.domain != "index.docker.io"
    if ref.domain == DEFAULT_DOMAIN:
        assert "/" in ref.path


@given(st.text(alphabet="abcAB019./:@_-[]x", max_size=40))
def test_parse_fuzz_only_invalid_reference_errors(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except InvalidReferenceError:
        return
    assert Reference.parse(str(ref)) == ref
    assert ref.path == ref.path.lower()
