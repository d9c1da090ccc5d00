"""Digests, DigestHasher and VerifyingReader (oci_image.spec.digest)."""

from __future__ import annotations

import hashlib
import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci_image.errors import (
    DigestMismatchError,
    SizeMismatchError,
    SpecError,
    UnsupportedDigestError,
    VerificationError,
)
from oci_image.spec import Digest, DigestHasher, VerifiedStream, VerifyingReader
from oci_image.testing import strategies as ocist

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_SHA512 = (
    "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)
HEX64 = "0123456789abcdef" * 4


# ---------------------------------------------------------------------------------------
# Digest


@given(ocist.digest_strings())
def test_parse_str_round_trip(text: str) -> None:
    d = Digest.parse(text)
    assert str(d) == text
    algorithm, _, hex_part = text.partition(":")
    assert (d.algorithm, d.hex, d.encoded) == (algorithm, hex_part, hex_part)
    assert Digest.parse(d) is d
    assert Digest(algorithm, hex_part) == d
    assert hash(Digest(algorithm, hex_part)) == hash(d)


@pytest.mark.parametrize("text", [EMPTY_SHA256, EMPTY_SHA512])
def test_sha256_and_sha512_accepted(text: str) -> None:
    d = Digest.parse(text)
    assert d == Digest.from_bytes(b"", d.algorithm)
    assert str(d) == text


def test_short() -> None:
    assert Digest.parse(EMPTY_SHA256).short() == "e3b0c44298fc"
    assert Digest.parse(EMPTY_SHA256).short(4) == "e3b0"


MALFORMED = [
    pytest.param("sha256:" + HEX64.upper(), id="uppercase-hex"),
    pytest.param("sha256:" + "A" + HEX64[1:], id="one-uppercase-hex"),
    pytest.param("sha256:" + HEX64[:-1], id="too-short"),
    pytest.param("sha256:" + HEX64 + "0", id="too-long"),
    pytest.param("sha512:" + HEX64, id="sha512-with-sha256-length"),
    pytest.param("sha256:" + "g" * 64, id="non-hex"),
    pytest.param("sha256:", id="empty-encoded"),
    pytest.param("sha256" + HEX64, id="missing-colon"),
    pytest.param("", id="empty"),
    pytest.param(":" + HEX64, id="empty-algorithm"),
    pytest.param("SHA256:" + HEX64, id="uppercase-algorithm"),
    pytest.param("sha256+:" + HEX64, id="trailing-separator"),
    pytest.param("+sha256:" + HEX64, id="leading-separator"),
    pytest.param("sha__256:" + HEX64, id="double-separator"),
    pytest.param("sha 256:" + HEX64, id="space-in-algorithm"),
    pytest.param("sha256:" + HEX64 + " ", id="trailing-space"),
    pytest.param(" sha256:" + HEX64, id="leading-space"),
    pytest.param("sha256:" + HEX64 + "\n", id="trailing-newline"),
    pytest.param("sha256:" + HEX64[:32] + ":" + HEX64[32:], id="two-colons"),
    pytest.param("sha256:" + HEX64[:-1] + "/", id="bad-encoded-char"),
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_digest_raises_spec_error(text: str) -> None:
    with pytest.raises(SpecError) as info:
        Digest.parse(text)
    # malformed is not the same thing as "well-formed but unsupported"
    assert not isinstance(info.value, UnsupportedDigestError)


def test_algorithm_with_trailing_newline_is_malformed_not_unsupported() -> None:
    with pytest.raises(SpecError) as info:
        Digest.parse("sha256\n:" + HEX64)
    assert not isinstance(info.value, UnsupportedDigestError)


@pytest.mark.parametrize("value", [None, 42, b"sha256:" + HEX64.encode(), ["sha256", HEX64]])
def test_non_string_digest_raises_spec_error(value: object) -> None:
    with pytest.raises(SpecError):
        Digest.parse(value)


@pytest.mark.parametrize("text", [
    "sha384:" + "a" * 96,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "blake3:" + HEX64,
    "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
    "sha256.v2:" + HEX64,
])
def test_unknown_wellformed_algorithm_is_unsupported(text: str) -> None:
    with pytest.raises(UnsupportedDigestError) as info:
        Digest.parse(text)
    assert isinstance(info.value, SpecError)


def test_constructor_validates() -> None:
    with pytest.raises(SpecError):
        Digest("sha256", HEX64.upper())
    with pytest.raises(UnsupportedDigestError):
        Digest("sha1", "a" * 40)


@given(st.text(alphabet="sha256512:+._-0123456789abcdefABCDEFxyz/ ", max_size=80))
def test_parse_fuzz_only_spec_errors(text: str) -> None:
    try:
        d = Digest.parse(text)
    except SpecError:
        return
    assert str(d) == text


@given(st.binary(max_size=2048), st.sampled_from(["sha256", "sha512"]))
def test_from_bytes_matches_hashlib(data: bytes, algorithm: str) -> None:
    d = Digest.from_bytes(data, algorithm)
    assert d.algorithm == algorithm
    assert d.hex == hashlib.new(algorithm, data).hexdigest()
    assert Digest.from_stream(io.BytesIO(data), algorithm, chunk_size=7) == (d, len(data))


def test_from_bytes_defaults_to_sha256() -> None:
    assert str(Digest.from_bytes(b"")) == EMPTY_SHA256


@given(st.lists(st.binary(max_size=64), max_size=8), st.sampled_from(["sha256", "sha512"]))
def test_hasher_is_incremental(chunks: list[bytes], algorithm: str) -> None:
    h = DigestHasher(algorithm)
    for chunk in chunks:
        h.update(chunk)
    assert h.algorithm == algorithm
    assert h.digest() == Digest.from_bytes(b"".join(chunks), algorithm)
    assert Digest.from_bytes(b"", algorithm).hasher().algorithm == algorithm


def test_hasher_rejects_unknown_algorithm() -> None:
    with pytest.raises(UnsupportedDigestError):
        DigestHasher("md5")
    with pytest.raises(UnsupportedDigestError):
        Digest.from_bytes(b"", "sha1")


# ---------------------------------------------------------------------------------------
# VerifyingReader


class CountingStream:
    """A stream that records every request and how many bytes it handed out; ``tail``
    bytes come after ``data`` (``endless`` makes the stream never end)."""

    def __init__(self, data: bytes, *, endless: bool = False, max_chunk: int | None = None
                 ) -> None:
        self._buf = io.BytesIO(data)
        self.endless = endless
        self.max_chunk = max_chunk
        self.requests: list[int] = []
        self.returned = 0

    def read(self, size: int = -1, /) -> bytes:
        self.requests.append(size)
        if size is None or size < 0:
            raise AssertionError("VerifyingReader asked the inner stream for everything")
        if self.max_chunk is not None:
            size = min(size, self.max_chunk)
        data = self._buf.read(size)
        if self.endless and len(data) < size:
            data += b"\xaa" * (size - len(data))
        self.returned += len(data)
        return data


chunk_patterns = st.lists(st.one_of(st.integers(1, 70), st.just(-1)), min_size=1, max_size=4)


def read_to_eof(reader: VerifyingReader, pattern: list[int], limit: int = 100_000) -> bytes:
    """Read with the chunk sizes of ``pattern`` (cycled) until EOF; fail on a runaway."""
    out = bytearray()
    for n in itertools.cycle(pattern):
        chunk = reader.read(n)
        if not chunk:
            return bytes(out)
        out += chunk
        assert len(out) <= limit, "reader does not stop"
    raise AssertionError("unreachable")


@given(ocist.content_and_digest(max_size=300), chunk_patterns,
       st.none() | st.integers(1, 17), st.booleans())
def test_reader_exact_content(content_digest: tuple[bytes, Digest], pattern: list[int],
                              max_chunk: int | None, size_known: bool) -> None:
    content, digest = content_digest
    inner = CountingStream(content, max_chunk=max_chunk)
    reader = VerifyingReader(inner, digest, len(content) if size_known else None)
    assert isinstance(reader, VerifiedStream)
    verified_before = reader.verified
    assert read_to_eof(reader, pattern) == content
    assert not verified_before
    assert reader.verified
    assert reader.actual_digest == digest
    assert reader.bytes_read == len(content)
    assert reader.expected_digest == digest
    # after the verified EOF, reads keep returning EOF without touching the stream again
    requests = len(inner.requests)
    assert reader.read(10) == b""
    assert reader.read() == b""
    assert len(inner.requests) == requests
    assert inner.returned == len(content)


def test_reader_actual_digest_before_eof() -> None:
    reader = VerifyingReader(io.BytesIO(b"abc"), Digest.from_bytes(b"abc"), 3)
    with pytest.raises(RuntimeError):
        _ = reader.actual_digest
    assert reader.read(0) == b""
    assert not reader.verified
    assert reader.bytes_read == 0
    assert reader.read() == b"abc"
    assert reader.read() == b""
    assert reader.verified


@given(st.binary(min_size=1, max_size=300), st.data(), chunk_patterns,
       st.sampled_from(["sha256", "sha512"]), st.booleans())
def test_reader_single_bit_flip_never_returns_clean_eof(
        content: bytes, data: st.DataObject, pattern: list[int], algorithm: str,
        size_known: bool) -> None:
    digest = Digest.from_bytes(content, algorithm)
    index = data.draw(st.integers(0, len(content) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    corrupted = bytearray(content)
    corrupted[index] ^= 1 << bit
    reader = VerifyingReader(CountingStream(bytes(corrupted)), digest,
                             len(content) if size_known else None)
    with pytest.raises(DigestMismatchError) as info:
        read_to_eof(reader, pattern)
    err = info.value
    assert err.name == str(digest)
    assert err.expected == digest
    assert err.actual == Digest.from_bytes(bytes(corrupted), algorithm)
    assert str(digest) in str(err)
    assert not reader.verified
    # the error sticks: the reader never turns into a clean EOF afterwards
    with pytest.raises(DigestMismatchError):
        reader.read(1)
    with pytest.raises(DigestMismatchError):
        reader.read()


@given(st.binary(min_size=1, max_size=300), st.data(), chunk_patterns)
def test_reader_truncation_raises_size_mismatch(content: bytes, data: st.DataObject,
                                               pattern: list[int]) -> None:
    cut = data.draw(st.integers(0, len(content) - 1), label="cut")
    digest = Digest.from_bytes(content)
    reader = VerifyingReader(CountingStream(content[:cut]), digest, len(content))
    with pytest.raises(SizeMismatchError) as info:
        read_to_eof(reader, pattern)
    assert info.value.name == str(digest)
    assert info.value.expected == len(content)
    assert info.value.actual == cut
    with pytest.raises(SizeMismatchError):
        reader.read(1)


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=50), chunk_patterns)
def test_reader_extension_raises_size_mismatch(content: bytes, extra: bytes,
                                              pattern: list[int]) -> None:
    digest = Digest.from_bytes(content)
    inner = CountingStream(content + extra)
    reader = VerifyingReader(inner, digest, len(content), name="layer.tar")
    with pytest.raises(SizeMismatchError) as info:
        read_to_eof(reader, pattern)
    assert info.value.name == "layer.tar"
    assert "layer.tar" in str(info.value)
    assert info.value.expected == len(content)
    assert info.value.actual == len(content) + 1
    assert inner.returned == len(content) + 1
    with pytest.raises(SizeMismatchError):
        reader.read(1)


@given(st.binary(max_size=200), st.integers(0, 400), chunk_patterns, st.none() | st.integers(1, 9))
def test_reader_never_over_reads_an_endless_stream(content: bytes, size: int,
                                                   pattern: list[int],
                                                   max_chunk: int | None) -> None:
    """Whatever the announced size, at most size+1 bytes are ever requested from (and
    returned by) the inner stream, even when it never ends; no request is unbounded."""
    inner = CountingStream(content, endless=True, max_chunk=max_chunk)
    reader = VerifyingReader(inner, Digest.from_bytes(content), size)
    with pytest.raises(VerificationError):
        read_to_eof(reader, pattern, limit=size + 1)
    assert inner.returned <= size + 1
    consumed = 0
    for request in inner.requests:
        assert 0 <= request <= size + 1 - consumed
        consumed += min(request, max_chunk or request)
    assert consumed == inner.returned


@given(st.integers(0, 5000))
def test_reader_over_a_huge_stream_stops_after_size_plus_one(size: int) -> None:
    inner = CountingStream(b"", endless=True)
    reader = VerifyingReader(inner, None, size)
    with pytest.raises(SizeMismatchError):
        reader.read_all_and_verify()
    assert inner.returned == size + 1
    assert sum(inner.requests) == size + 1


def test_reader_rejects_negative_size() -> None:
    with pytest.raises(SpecError):
        VerifyingReader(io.BytesIO(b""), None, -1)


def test_reader_default_name_without_digest() -> None:
    reader = VerifyingReader(io.BytesIO(b"abcd"), None, 3)
    with pytest.raises(SizeMismatchError) as info:
        reader.read_all_and_verify()
    assert info.value.name == "blob"


def test_read_all_and_verify() -> None:
    content = b"x" * 5000
    reader = VerifyingReader(io.BytesIO(content), Digest.from_bytes(content), len(content))
    reader.read_all_and_verify()
    assert reader.verified
    bad = VerifyingReader(io.BytesIO(content), Digest.from_bytes(b"y"), len(content))
    with pytest.raises(DigestMismatchError):
        bad.read_all_and_verify()


def test_reader_closes_inner_stream() -> None:
    inner = io.BytesIO(b"abc")
    with VerifyingReader(inner, None, None) as reader:
        assert reader.read() == b"abc"
    assert inner.closed
