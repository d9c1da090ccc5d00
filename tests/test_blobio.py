"""Compression plumbing: every format, concatenated members, truncation, and bounded
memory against decompression bombs."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from oci_image._blobio import (
    CHUNK,
    CompressingReader,
    DecompressingReader,
    DecompressingSink,
    detect_compression,
    open_decompressed,
)
from oci_image.errors import TransportError
from oci_image.spec import Compression

PAYLOAD = b"layer content " * 5000 + bytes(range(256)) * 50


def compress(kind: str, data: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if kind == "bzip2":
        return bz2.compress(data)
    return lzma.compress(data)


def read_all(reader: object, n: int = 1 << 16) -> bytes:
    out = io.BytesIO()
    while chunk := reader.read(n):  # type: ignore[attr-defined]
        assert len(chunk) <= max(n, CHUNK)
        out.write(chunk)
    return out.getvalue()


def sink_all(kind: str, data: bytes, piece: int = 4096) -> bytes:
    out = io.BytesIO()
    sizes: list[int] = []

    def take(chunk: bytes) -> None:
        sizes.append(len(chunk))
        out.write(chunk)

    sink = DecompressingSink(kind, take)
    for i in range(0, len(data), piece):
        sink.write(data[i:i + piece])
    sink.close()
    assert all(size <= CHUNK for size in sizes)
    return out.getvalue()


KINDS = ["gzip", "zstd", "bzip2", "xz"]


@pytest.mark.parametrize("kind", KINDS)
def test_detect_and_roundtrip(kind: str) -> None:
    blob = compress(kind, PAYLOAD)
    assert detect_compression(blob[:6]) == kind
    assert read_all(DecompressingReader(io.BytesIO(blob), kind)) == PAYLOAD
    assert sink_all(kind, blob) == PAYLOAD
    reader, detected = open_decompressed(io.BytesIO(blob))
    assert detected == kind
    assert read_all(reader) == PAYLOAD


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_concatenated_members(kind: str) -> None:
    blob = compress(kind, b"first ") + compress(kind, b"second")
    assert read_all(DecompressingReader(io.BytesIO(blob), kind)) == b"first second"
    assert sink_all(kind, blob, piece=3) == b"first second"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cut", [1, 10, 100])
def test_truncation_is_an_error(kind: str, cut: int) -> None:
    blob = compress(kind, PAYLOAD)[:-cut]
    with pytest.raises(TransportError, match=r"truncated|invalid"):
        read_all(DecompressingReader(io.BytesIO(blob), kind))
    with pytest.raises(TransportError, match=r"truncated|invalid"):
        sink_all(kind, blob)


def test_garbage_is_an_error() -> None:
    with pytest.raises(TransportError):
        read_all(DecompressingReader(io.BytesIO(b"\x1f\x8b" + b"x" * 100), "gzip"))
    with pytest.raises(TransportError):
        sink_all("zstd", b"\x28\xb5\x2f\xfd" + b"\xff" * 100)


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_bomb_output_is_bounded(kind: str) -> None:
    """64 MiB of zeros compress to a few KiB; no read or sink call returns more than a
    chunk at a time."""
    size = 64 << 20
    if kind == "gzip":
        c = __import__("zlib").compressobj(9, 8, 31)
        blob = b"".join(c.compress(bytes(1 << 20)) for _ in range(size >> 20)) + c.flush()
    else:
        blob = zstandard.ZstdCompressor(level=19).compress(bytes(size))
    assert len(blob) < 200_000
    reader = DecompressingReader(io.BytesIO(blob), kind)
    total = 0
    while chunk := reader.read(1 << 20):
        assert len(chunk) <= 1 << 20
        total += len(chunk)
    assert total == size
    counted = [0]

    def take(chunk: bytes) -> None:
        assert len(chunk) <= CHUNK
        counted[0] += len(chunk)

    sink = DecompressingSink(kind, take)
    sink.write(blob)
    sink.close()
    assert counted[0] == size


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
@given(data=st.binary(max_size=50_000))
def test_compress_then_decompress(compression: Compression, data: bytes) -> None:
    compressed = read_all(CompressingReader(io.BytesIO(data), compression))
    assert detect_compression(compressed[:6]) == compression.value
    assert read_all(DecompressingReader(io.BytesIO(compressed), compression.value)) == data
